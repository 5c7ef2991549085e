package ingest_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/ingest"
	"github.com/urbanbrain/urbanbrain/ingest/ingesttest"
)

type batchAnswer struct {
	Accepted, Duplicates, Rejected int
	Results                        []struct {
		Index                    int
		ID, Status, Code, Reason string
	}
}

func TestHTTPSingleEvent(t *testing.T) {
	t.Parallel()
	s, rec := newService(t, ingest.Config{})
	g := grid(t, 9)
	body := ingesttest.Structured(t, event.TypeHotlineTicket, "http-1", now, ingesttest.Hotline("T-http", g.Centroid, ""))

	for i, want := range []string{ingest.OutcomeAccepted, ingest.OutcomeDuplicate} {
		w := post(s, ingest.MediaCloudEvent, body)
		var got struct{ ID, Status string }
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		if w.Code != http.StatusAccepted || got.ID != "http-1" || got.Status != want {
			t.Errorf("POST #%d = %d %s, want 202 with status %s", i+1, w.Code, w.Body, want)
		}
	}
	got := rec.Records()
	if len(got) != 1 || got[0].Key != g.Street {
		t.Fatalf("records = %+v, want one event keyed %s", got, g.Street)
	}
	if ev := decodeEvent(t, got[0], event.TypeHotlineTicket); ev.Area != g.Area() || ev.Hotline.TicketID != "T-http" {
		t.Errorf("event = %+v", ev)
	}
}

func TestHTTPBinaryMode(t *testing.T) {
	t.Parallel()
	s, rec := newService(t, ingest.Config{})
	g := grid(t, 11)
	data := mustJSON(t, ingesttest.Video(g.Centroid, ""))
	w := post(s, "application/json; charset=utf-8", data,
		"Ce-Specversion", "1.0", "Ce-Id", "bin-http-1", "Ce-Type", event.TypeVideoDetection,
		"Ce-Source", "/cameras/7", "Ce-Time", now.Add(-time.Second).Format(time.RFC3339Nano),
		"Authorization", "Bearer secret")
	if w.Code != http.StatusAccepted {
		t.Fatalf("status = %d %s, want 202", w.Code, w.Body)
	}
	ev := decodeEvent(t, rec.Records()[0], event.TypeVideoDetection)
	if ev.ID != "bin-http-1" || ev.Source != "/cameras/7" || ev.Area != g.Area() {
		t.Errorf("event = %+v", ev)
	}

	// A binary-mode event whose data is not JSON is refused as a media type, and the dead
	// letter never carries the caller's credentials.
	rec.Reset()
	w = post(s, "text/plain", []byte("hello"), "Ce-Specversion", "1.0", "Ce-Id", "bin-http-2",
		"Ce-Type", event.TypeVideoDetection, "Ce-Source", "/cameras/7", "Authorization", "Bearer secret")
	if w.Code != http.StatusUnsupportedMediaType {
		t.Errorf("status = %d %s, want 415", w.Code, w.Body)
	}
	dl := decodeDeadLetter(t, rec.Records()[0])
	if dl.Headers["ce-id"] != "bin-http-2" || dl.Headers["authorization"] != "" || dl.Headers["Authorization"] != "" {
		t.Errorf("dead letter headers = %v, want ce-* kept and no Authorization", dl.Headers)
	}
}

// TestHTTPBatch: each item is judged on its own; the status says whether all, none or some
// were rejected, and the rejected ones are dead-lettered too.
func TestHTTPBatch(t *testing.T) {
	t.Parallel()
	good := func(id string, i int) json.RawMessage {
		return ingesttest.Structured(t, event.TypeSensorReading, id, now, ingesttest.Sensor(grid(t, i).Centroid, ""))
	}
	bad := json.RawMessage(envelopeJSON(event.TypeSensorReading, "bad-1", sensorData("lat", "91")))
	badUTF8 := json.RawMessage(envelopeJSON(event.TypeHotlineTicket, "bad-2", "{\"content\":\"\xff\"}"))
	batch := func(items ...json.RawMessage) []byte {
		parts := make([][]byte, len(items))
		for i, it := range items {
			parts[i] = it
		}
		return []byte("[" + string(bytes.Join(parts, []byte(","))) + "]")
	}
	tests := []struct {
		name          string
		body          []byte
		status        int
		wantStatuses  []string
		published     int // events
		deadLetters   int
		reasonContain string
	}{
		{"all good", batch(good("b-1", 1), good("b-2", 2)), http.StatusOK, []string{"accepted", "accepted"}, 2, 0, ""},
		{"one bad among good ones", batch(good("m-1", 1), bad, good("m-2", 2), badUTF8), http.StatusMultiStatus,
			[]string{"accepted", "rejected", "accepted", "rejected"}, 2, 2, "lat 91 out of range"},
		{"a duplicate inside the batch", batch(good("d-1", 1), good("d-1", 1)), http.StatusOK, []string{"accepted", "duplicate"}, 1, 0, ""},
		{"all bad", batch(bad, badUTF8), http.StatusUnprocessableEntity, []string{"rejected", "rejected"}, 0, 2, "invalid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, rec := newService(t, ingest.Config{})
			w := post(s, ingest.MediaBatch, tt.body)
			if w.Code != tt.status {
				t.Errorf("status = %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			var ans batchAnswer
			if err := json.Unmarshal(w.Body.Bytes(), &ans); err != nil {
				t.Fatal(err)
			}
			var statuses []string
			for i, r := range ans.Results {
				statuses = append(statuses, r.Status)
				if r.Index != i {
					t.Errorf("result %d has index %d", i, r.Index)
				}
				if (r.Status == "rejected") != (r.Reason != "" && r.Code != "") {
					t.Errorf("result %d = %+v: a rejection needs a code and a reason, nothing else has them", i, r)
				}
			}
			if fmt.Sprint(statuses) != fmt.Sprint(tt.wantStatuses) {
				t.Errorf("statuses = %v, want %v", statuses, tt.wantStatuses)
			}
			if ans.Accepted+ans.Duplicates+ans.Rejected != len(tt.wantStatuses) {
				t.Errorf("counts %+v do not add up to %d", ans, len(tt.wantStatuses))
			}
			if n := len(rec.Topic(event.TopicEvents)); n != tt.published {
				t.Errorf("published %d events, want %d", n, tt.published)
			}
			dls := rec.Topic(event.TopicDeadLetter)
			if len(dls) != tt.deadLetters {
				t.Fatalf("dead letters = %d, want %d", len(dls), tt.deadLetters)
			}
			if tt.deadLetters > 0 {
				var reasons []string
				for _, p := range dls {
					dl := decodeDeadLetter(t, p)
					reasons = append(reasons, dl.Reason)
					if dl.Topic != ingest.OriginHTTP {
						t.Errorf("dead letter topic = %q, want http", dl.Topic)
					}
				}
				if !strings.Contains(strings.Join(reasons, "|"), tt.reasonContain) {
					t.Errorf("dead-letter reasons %q, want one containing %q", reasons, tt.reasonContain)
				}
			}
		})
	}
}

func TestHTTPRequestLimits(t *testing.T) {
	t.Parallel()
	s, rec := newService(t, ingest.Config{MaxBatchItems: 3})
	items := make([]string, 4)
	for i := range items {
		items[i] = string(ingesttest.Structured(t, event.TypeSensorReading, fmt.Sprintf("l-%d", i), now, ingesttest.Sensor(grid(t, i).Centroid, "")))
	}
	w := post(s, ingest.MediaBatch, []byte("["+strings.Join(items, ",")+"]"))
	if w.Code != http.StatusRequestEntityTooLarge || !strings.Contains(w.Body.String(), "batch of 4 events, limit 3") {
		t.Errorf("4 items with a limit of 3 = %d %s, want 413", w.Code, w.Body)
	}
	if n := len(rec.Topic(event.TopicEvents)); n != 0 {
		t.Errorf("published %d events from a refused batch", n)
	}

	req := httptest.NewRequest(http.MethodGet, "/api/v1/events", nil)
	rw := httptest.NewRecorder()
	s.ServeHTTP(rw, req)
	if rw.Code != http.StatusMethodNotAllowed || rw.Header().Get("Allow") != http.MethodPost {
		t.Errorf("GET = %d (Allow %q), want 405 with Allow: POST", rw.Code, rw.Header().Get("Allow"))
	}
}

// TestHTTPPublishFailure: when the broker is down the caller is told to retry, and a retry
// after recovery is accepted.
func TestHTTPPublishFailure(t *testing.T) {
	t.Parallel()
	s, rec := newService(t, ingest.Config{})
	body := ingesttest.Structured(t, event.TypeSensorReading, "pf-http", now, ingesttest.Sensor(grid(t, 0).Centroid, ""))
	rec.Err = errors.New("broker down")
	if w := post(s, ingest.MediaCloudEvent, body); w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Errorf("status = %d, want 503 with Retry-After", w.Code)
	}
	if w := post(s, ingest.MediaBatch, []byte("["+string(body)+"]")); w.Code != http.StatusServiceUnavailable {
		t.Errorf("batch status = %d, want 503", w.Code)
	}
	if n := len(rec.Records()); n != 0 || s.Stats().Total().Accepted != 0 {
		t.Errorf("a failed write left %d records and counted %+v", n, s.Stats().Total())
	}
	rec.Err = nil
	if w := post(s, ingest.MediaCloudEvent, body); w.Code != http.StatusAccepted || !strings.Contains(w.Body.String(), `"accepted"`) {
		t.Errorf("retry = %d %s, want 202 accepted", w.Code, w.Body)
	}

	// A batch is written in one go: when that fails, none of its events is remembered, so
	// the retry of the whole batch is accepted item by item.
	other := ingesttest.Structured(t, event.TypeSensorReading, "pf-http-2", now, ingesttest.Sensor(grid(t, 1).Centroid, ""))
	third := ingesttest.Structured(t, event.TypeSensorReading, "pf-http-3", now, ingesttest.Sensor(grid(t, 2).Centroid, ""))
	batch := []byte("[" + string(other) + "," + string(third) + "]")
	rec.Err = errors.New("broker down again")
	if w := post(s, ingest.MediaBatch, batch); w.Code != http.StatusServiceUnavailable {
		t.Errorf("batch status = %d, want 503", w.Code)
	}
	rec.Err = nil
	w := post(s, ingest.MediaBatch, batch)
	var ans batchAnswer
	if err := json.Unmarshal(w.Body.Bytes(), &ans); err != nil || w.Code != http.StatusOK || ans.Accepted != 2 {
		t.Errorf("batch retry = %d %s, want 200 with both accepted", w.Code, w.Body)
	}
	if c := s.Stats().Total(); c.Accepted != 3 || c.Rejected != 0 {
		t.Errorf("counts = %+v, want the 3 written events only", c)
	}
}
