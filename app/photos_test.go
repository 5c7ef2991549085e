package app

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/urbanbrain/urbanbrain/api"
	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/objstore"
)

// testPNG is a small PNG whose pixels encode n, so each n is a different photo.
func testPNG(t testing.TB, n int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 4, 3))
	for x := 0; x < 4; x++ {
		img.Set(x, 0, color.RGBA{uint8(n >> (8 * x)), 0x80, 0x40, 0xff})
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// A worker attaches a photo to their task: the upload is named by its bytes (a retry stores
// nothing new), anything not an image is refused with the reason, the resolve names it, and it
// reads back byte for byte for whoever may see the incident, with headers that keep it an image;
// on files under the data dir and on an S3 store (gofakes3, in-process, through minio-go).
func TestEvidencePhotos(t *testing.T) {
	t.Run("dir", func(t *testing.T) { evidencePhotos(t) })
	t.Run("s3", func(t *testing.T) {
		srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
		t.Cleanup(srv.Close)
		t.Setenv(EnvS3SecretKey, "test-secret")
		evidencePhotos(t, func(c *Config) {
			c.ObjectStore = objstore.Config{Kind: objstore.KindS3, Endpoint: strings.TrimPrefix(srv.URL, "http://"),
				Bucket: "photos", Region: "us-east-1", AccessKey: "test"}
		})
	})
}

func evidencePhotos(t *testing.T, opts ...func(*Config)) {
	r := start(t, t.TempDir(), freeAddr(t), opts...)
	grid := r.app.City().Grids()[5]
	producer := r.token(auth.Claims{Subject: "p", Role: auth.RoleIngest})
	operator := r.token(auth.Claims{Subject: "op", Role: auth.RoleOperator})
	if code := r.do("POST", "/api/v1/events", producer, hotlineTicket("T-photo-1", event.RequestComplaint, "0301", "垃圾满溢", "13900001111", grid.Centroid), nil); code != http.StatusAccepted && code != http.StatusOK {
		t.Fatalf("POST event: %d", code)
	}
	var inc event.Incident
	eventually(t, 60*time.Second, "the ticket to be dispatched", func() bool {
		var l incidentList
		r.do("GET", "/api/v1/incidents?status=dispatched&grid="+grid.Code, operator, nil, &l)
		if l.Count == 1 {
			inc = l.Incidents[0]
		}
		return l.Count == 1
	})
	worker := r.token(auth.Claims{Subject: inc.Assignment.WorkerID, Role: auth.RoleWorker, Grids: []string{grid.Code}})
	stranger := r.token(auth.Claims{Subject: "someone-else", Role: auth.RoleWorker, Grids: []string{grid.Code}})

	upload := func(token string, body []byte, ctype string) (int, map[string]string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, r.base+"/api/v1/incidents/"+inc.ID+"/photos", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", ctype)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]string
		b, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(b, &out)
		return resp.StatusCode, out
	}
	photo := testPNG(t, 7)
	code, up := upload(worker, photo, "image/png")
	if code != http.StatusCreated || !event.IsPhotoName(up["name"]) || up["url"] != "/api/v1/incidents/"+inc.ID+"/photos/"+up["name"] {
		t.Fatalf("upload: %d %v", code, up)
	}
	if code, again := upload(worker, photo, "image/png"); code != http.StatusOK || again["name"] != up["name"] {
		t.Errorf("the same bytes again: %d %v, want 200 and the same name", code, again)
	}
	if code, out := upload(worker, []byte("<svg onload=alert(1)>"), "image/png"); code != http.StatusUnsupportedMediaType || !strings.Contains(out["error"], "JPEG, PNG or WebP") {
		t.Errorf("a script as a photo: %d %v, want 415 with the reason", code, out)
	}
	if code, _ := upload(worker, append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{1}, 100)...), "image/png"); code != http.StatusUnsupportedMediaType {
		t.Errorf("a broken PNG: %d, want 415", code)
	}
	if code, _ := upload(worker, bytes.Repeat([]byte{0xff}, api.MaxPhotoBytes+1), "image/jpeg"); code != http.StatusRequestEntityTooLarge {
		t.Errorf("a photo over the limit: %d, want 413", code)
	}
	if code, _ := upload(stranger, testPNG(t, 8), "image/png"); code != http.StatusForbidden {
		t.Errorf("a worker of the grid the incident is not assigned to: %d, want 403", code)
	}

	for _, a := range []map[string]any{{"action": "accept"}, {"action": "start"},
		{"action": "resolve", "evidence": map[string]any{"note": "已清运", "photos": []string{up["name"]}}}} {
		if code := r.do("POST", "/api/v1/incidents/"+inc.ID+"/actions", worker, a, nil); code != http.StatusOK {
			t.Fatalf("%v: %d", a["action"], code)
		}
	}
	var d struct {
		Incident event.Incident `json:"incident"`
	}
	r.do("GET", "/api/v1/incidents/"+inc.ID, operator, nil, &d)
	if d.Incident.Evidence == nil || len(d.Incident.Evidence.Photos) != 1 || d.Incident.Evidence.Photos[0] != up["name"] {
		t.Fatalf("evidence %+v, want the photo", d.Incident.Evidence)
	}
	req, _ := http.NewRequest(http.MethodGet, r.base+up["url"], nil)
	req.Header.Set("Authorization", "Bearer "+operator)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, photo) || resp.Header.Get("Content-Type") != "image/png" ||
		resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("read back: %d, %d bytes, %q", resp.StatusCode, len(got), resp.Header.Get("Content-Type"))
	}
	if code := r.do("GET", "/api/v1/incidents/"+inc.ID+"/photos/..%2F..%2Fauth.key", operator, nil, nil); code != http.StatusNotFound {
		t.Errorf("a name that climbs: %d, want 404", code)
	}
}
