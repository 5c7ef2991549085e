package app

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/urbanbrain/urbanbrain/alerts"
	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/webhook"
)

// 预警 through the whole system: an operator publishes a CAP alert on a 12345 incident, cancels
// the incident as a false alarm, and the public routes serve the Alert and the Cancel that
// references it — valid CAP 1.2 (xmllint against the schema in alerts/testdata) with no one's
// phone number — and the Atom feed carries both; a subscriber (--cap-subscribers) receives
// both, once each, signed with its secret, byte for byte the served documents.
func TestCAPAlertsEndToEnd(t *testing.T) {
	xmllint := requireTool(t, "xmllint")
	type push struct {
		id, sig, ctype string
		body           []byte
	}
	pushes := make(chan push, 16)
	sub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		pushes <- push{req.Header.Get(webhook.HeaderDelivery), req.Header.Get(webhook.HeaderSignature), req.Header.Get("Content-Type"), b}
	}))
	defer sub.Close()
	dir := t.TempDir()
	r := start(t, dir, freeAddr(t), func(c *Config) {
		c.CAPSubscribers = map[string]string{"emergency": sub.URL + "/cap"}
		c.WebhookAllowPrivate = true // the subscriber listens on loopback
	})
	grid := r.app.City().Grids()[9]
	producer := r.token(auth.Claims{Subject: "p", Role: auth.RoleIngest})
	operator := r.token(auth.Claims{Subject: "op", Role: auth.RoleOperator})
	if code := r.do("POST", "/api/v1/events", producer, hotlineTicket("T-cap-1", event.RequestHelp, "0202", "地下通道积水，电话13812345678", "13812345678", grid.Centroid), nil); code != http.StatusAccepted && code != http.StatusOK {
		t.Fatalf("POST event: %d", code)
	}
	var inc event.Incident
	eventually(t, 60*time.Second, "the incident", func() bool {
		var l incidentList
		r.do("GET", "/api/v1/incidents", operator, nil, &l)
		if l.Count == 1 {
			inc = l.Incidents[0]
		}
		return l.Count == 1
	})
	act := func(body map[string]string) {
		t.Helper()
		if code := r.do("POST", "/api/v1/incidents/"+inc.ID+"/actions", operator, body, nil); code != http.StatusOK {
			t.Fatalf("%v: %d", body, code)
		}
	}
	act(map[string]string{"action": "alert", "note": "下穿通道积水，请绕行"})
	act(map[string]string{"action": "cancel", "reason": "核实为误报"})

	get := func(path string) (int, string, []byte) {
		t.Helper()
		resp, err := http.Get(r.base + path) // public: no token
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), b
	}
	var docs [][]byte
	eventually(t, 30*time.Second, "both messages stored", func() bool {
		code, _, _ := get("/api/v1/incidents/" + inc.ID + "/alerts/2")
		return code == http.StatusOK
	})
	for n := 1; n <= 2; n++ {
		code, ctype, b := get("/api/v1/incidents/" + inc.ID + "/alerts/" + string(rune('0'+n)))
		if code != http.StatusOK || ctype != alerts.ContentType {
			t.Fatalf("alert %d: %d %s %s", n, code, ctype, b)
		}
		if strings.Contains(string(b), "13812345678") || strings.Contains(string(b), "王小明") {
			t.Errorf("alert %d carries personal data:\n%s", n, b)
		}
		docs = append(docs, b)
	}
	first, err := alerts.Decode(docs[0])
	if err != nil {
		t.Fatal(err)
	}
	second, err := alerts.Decode(docs[1])
	if err != nil {
		t.Fatal(err)
	}
	if first.MsgType != "Alert" || second.MsgType != "Cancel" || len(second.References) != 1 || second.References[0] != first.Ref() {
		t.Errorf("messages %s then %s referencing %v; want an Alert, then a Cancel referencing it", first.MsgType, second.MsgType, second.References)
	}
	tmp := t.TempDir()
	args := []string{"--noout", "--schema", "../alerts/testdata/CAP-v1.2.xsd"}
	for i, d := range docs {
		p := filepath.Join(tmp, "m"+string(rune('0'+i))+".xml")
		if err := os.WriteFile(p, d, 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	if out, err := exec.Command(xmllint, args...).CombinedOutput(); err != nil {
		t.Errorf("xmllint: %v\n%s", err, out)
	}
	for _, path := range []string{"/api/v1/incidents/" + inc.ID + "/alerts/3", "/api/v1/incidents/" + inc.ID + "/alerts/x", "/api/v1/incidents/INC-none-1/alerts/1"} {
		if code, _, _ := get(path); code != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, code)
		}
	}
	var secrets map[string]string
	if b, err := os.ReadFile(filepath.Join(dir, webhookSecretsFile)); err != nil || yaml.Unmarshal(b, &secrets) != nil || secrets["cap:emergency"] == "" {
		t.Fatalf("the subscriber's secret: %v %v", err, secrets)
	}
	got := map[string][]byte{}
	for len(got) < 2 {
		select {
		case p := <-pushes:
			if !webhook.Verify([]byte(secrets["cap:emergency"]), p.body, p.sig) || p.ctype != alerts.ContentType {
				t.Errorf("push %s: signature or type %q wrong", p.id, p.ctype)
			}
			if _, dup := got[p.id]; dup {
				t.Errorf("push %s delivered twice", p.id)
			}
			got[p.id] = p.body
		case <-time.After(30 * time.Second):
			t.Fatalf("pushes received: %d of 2", len(got))
		}
	}
	for n, doc := range docs {
		if b := got[fmt.Sprintf("%s/alert/%d", inc.ID, n+1)]; string(b) != string(doc) {
			t.Errorf("pushed message %d differs from the served document:\n%s\n%s", n+1, b, doc)
		}
	}
	code, ctype, feed := get("/api/v1/alerts")
	if code != http.StatusOK || ctype != alerts.AtomContentType || !strings.Contains(string(feed), first.Identifier) || !strings.Contains(string(feed), second.Identifier) {
		t.Errorf("feed: %d %s, want both messages:\n%s", code, ctype, feed)
	}
}
