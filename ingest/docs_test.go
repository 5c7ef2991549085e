package ingest_test

import (
	"bytes"
	"errors"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/ingest"
	"github.com/urbanbrain/urbanbrain/ingest/ingesttest"
)

// docSection returns the text of a markdown file from the heading that contains heading to
// the next heading of the same or a higher level.
func docSection(t *testing.T, file, heading string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	at := strings.Index(doc, heading)
	if at < 0 {
		t.Fatalf("%s has no heading %q", file, heading)
	}
	start := strings.LastIndex(doc[:at], "\n") + 1
	level := strings.Index(doc[start:], " ")
	rest := doc[at+len(heading):]
	for _, line := range strings.SplitAfter(rest, "\n") {
		if strings.HasPrefix(line, "#") && strings.Index(line, " ") <= level {
			return doc[at : at+len(heading)+strings.Index(rest, line)]
		}
	}
	return doc[at:]
}

// Issue 12 item 7: a single event to POST /api/v1/events answered 202 while docs/api.md said
// 200. Every status the page lists is what the server answers in the case it describes, and
// the page lists every status the server answers.
func TestHTTPAnswersAsDocumented(t *testing.T) {
	t.Parallel()
	section := docSection(t, "../docs/api.md", "### `POST /api/v1/events`")
	var documented []int
	for _, m := range regexp.MustCompile(`(?m)^\| (\d{3}) \|`).FindAllStringSubmatch(section, -1) {
		n, _ := strconv.Atoi(m[1])
		documented = append(documented, n)
	}
	g := grid(t, 3)
	good := func(id string) []byte {
		return ingesttest.Structured(t, event.TypeSensorReading, id, now, ingesttest.Sensor(g.Centroid, ""))
	}
	bad := envelopeJSON(event.TypeSensorReading, "bad", sensorData("lat", "91"))
	batch := func(items ...[]byte) []byte { return []byte("[" + string(bytes.Join(items, []byte(","))) + "]") }
	cases := map[int]func(t *testing.T) *http.Response{
		http.StatusAccepted: func(t *testing.T) *http.Response {
			s, _ := newService(t, ingest.Config{})
			w := post(s, ingest.MediaCloudEvent, good("one"))
			if !strings.Contains(w.Body.String(), `"status":"accepted"`) {
				t.Errorf("single event: %s", w.Body)
			}
			if again := post(s, ingest.MediaJSON, good("one")); again.Code != w.Code || !strings.Contains(again.Body.String(), `"status":"duplicate"`) {
				t.Errorf("its replay: %d %s, want %d and status duplicate", again.Code, again.Body, w.Code)
			}
			return w.Result()
		},
		http.StatusOK: func(t *testing.T) *http.Response {
			s, _ := newService(t, ingest.Config{})
			return post(s, ingest.MediaBatch, batch(good("b-1"), good("b-2"), good("b-1"))).Result()
		},
		http.StatusMultiStatus: func(t *testing.T) *http.Response {
			s, _ := newService(t, ingest.Config{})
			return post(s, ingest.MediaBatch, batch(good("m-1"), bad)).Result()
		},
		http.StatusBadRequest: func(t *testing.T) *http.Response {
			s, _ := newService(t, ingest.Config{})
			return post(s, ingest.MediaCloudEvent, []byte("not json")).Result()
		},
		http.StatusRequestEntityTooLarge: func(t *testing.T) *http.Response {
			s, _ := newService(t, ingest.Config{MaxEventBytes: 100})
			return post(s, ingest.MediaCloudEvent, good("big")).Result()
		},
		http.StatusUnsupportedMediaType: func(t *testing.T) *http.Response {
			s, _ := newService(t, ingest.Config{})
			return post(s, "text/plain", good("txt")).Result()
		},
		http.StatusUnprocessableEntity: func(t *testing.T) *http.Response {
			s, _ := newService(t, ingest.Config{})
			if w := post(s, ingest.MediaBatch, batch(bad)); w.Code != http.StatusUnprocessableEntity {
				t.Errorf("a batch of only rejected events: %d, want 422", w.Code)
			}
			return post(s, ingest.MediaCloudEvent, bad).Result()
		},
		http.StatusServiceUnavailable: func(t *testing.T) *http.Response {
			s, rec := newService(t, ingest.Config{})
			rec.Err = errors.New("broker down")
			return post(s, ingest.MediaCloudEvent, good("down")).Result()
		},
	}
	for status, send := range cases {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			t.Parallel()
			if !slices.Contains(documented, status) {
				t.Errorf("the server answers %d but docs/api.md does not list it", status)
			}
			if got := send(t).StatusCode; got != status {
				t.Errorf("the case docs/api.md describes for %d answers %d", status, got)
			}
		})
	}
	for _, status := range documented {
		if _, ok := cases[status]; !ok {
			t.Errorf("docs/api.md lists %d, which this test does not know the server to answer", status)
		}
	}
}

// Issue 12 item 7: the 415 message named application/json only "with ce-* headers", and
// nothing about what each type carries. It names every accepted type.
func TestHTTPUnsupportedMediaTypeNamesTheAcceptedOnes(t *testing.T) {
	t.Parallel()
	s, _ := newService(t, ingest.Config{})
	for _, ct := range []string{"text/plain", "", "application/xml"} {
		w := post(s, ct, []byte(`{}`))
		if w.Code != http.StatusUnsupportedMediaType {
			t.Errorf("%q: %d, want 415", ct, w.Code)
		}
		msg := w.Body.String()
		for _, want := range []string{ingest.MediaCloudEvent, ingest.MediaJSON, ingest.MediaBatch, "a batch", "one event"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%q: the 415 message %s does not name %q", ct, msg, want)
			}
		}
		if strings.Contains(msg, "application/json with ce-* headers") {
			t.Errorf("%q: the message %s still says application/json needs ce-* headers", ct, msg)
		}
	}
}

// Issue 12 item 7: docs/events.md lists every dead-letter code, ingest's and the stages'.
func TestDeadLetterCodesDocumented(t *testing.T) {
	t.Parallel()
	section := docSection(t, "../docs/events.md", "## Dead letters")
	codes := append(slices.Clone(ingestCodes), event.DeadLetterUnsigned, event.DeadLetterBadSignature,
		event.DeadLetterUndecodable, event.DeadLetterStaleCommand, event.DeadLetterStoreRefused)
	for _, c := range codes {
		if !strings.Contains(section, "| `"+c+"` |") {
			t.Errorf("docs/events.md, Dead letters, does not list the code `%s`", c)
		}
	}
}
