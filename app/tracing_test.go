package app

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/segmentio/kafka-go"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/transport"
)

// traceReceiver is an agency's webhook on loopback that keeps the traceparent of every
// notification and the traceparent extension of its CloudEvent body.
type traceReceiver struct {
	mu      sync.Mutex
	headers []string
	bodies  []string
}

func (rc *traceReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var ce struct {
		TraceParent string `json:"traceparent"`
	}
	_ = json.Unmarshal(b, &ce)
	rc.mu.Lock()
	rc.headers = append(rc.headers, r.Header.Get("traceparent"))
	rc.bodies = append(rc.bodies, ce.TraceParent)
	rc.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// carried reports whether a notification's header and body both carry traceID.
func (rc *traceReceiver) carried(traceID string) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for i, h := range rc.headers {
		if traceIDOf(h) == traceID && traceIDOf(rc.bodies[i]) == traceID {
			return true
		}
	}
	return false
}

// traceIDOf is the trace-id field of a traceparent ("" if it has none).
func traceIDOf(traceparent string) string {
	parts := strings.Split(traceparent, "-")
	if len(parts) != 4 {
		return ""
	}
	return parts[1]
}

// otlpReceiver is an OTLP/HTTP collector on loopback that keeps the trace ids of the spans
// exported to it.
type otlpReceiver struct {
	mu     sync.Mutex
	traces map[string]int // trace id → spans
}

func (rc *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var req collectortrace.ExportTraceServiceRequest
	if r.URL.Path != "/v1/traces" || proto.Unmarshal(b, &req) != nil {
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				rc.traces[hex.EncodeToString(s.TraceId)]++
			}
		}
	}
	rc.mu.Unlock()
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (rc *otlpReceiver) spans(traceID string) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.traces[traceID]
}

// cityWithWebhook writes the demo city to a directory with the water agency's (categories
// 0104 and 0202) webhook at url.
func cityWithWebhook(t *testing.T, url string) string {
	t.Helper()
	demo, err := fs.Sub(city.DemoFS, "demo")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "city")
	if err := os.CopyFS(dir, demo); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "agencies.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	water := bytes.Index(b, []byte("code: water"))
	hook := bytes.Index(b[water:], []byte(`webhook: ""`))
	if water < 0 || hook < 0 {
		t.Fatal("demo agencies.yaml has no water agency with an empty webhook")
	}
	b = append(b[:water+hook:water+hook], append([]byte("webhook: "+url), b[water+hook+len(`webhook: ""`):]...)...)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestTraceFollowsTicketToWebhook follows one 12345 ticket from the HTTP ingest API through
// ingest, rules, incidents and dispatch to the water agency's webhook by its W3C trace id, and
// the spans of that trace reach an OTLP collector given as --otlp-endpoint.
func TestTraceFollowsTicketToWebhook(t *testing.T) {
	hooks := &traceReceiver{}
	agency := httptest.NewServer(hooks)
	t.Cleanup(agency.Close) // after the App's own cleanup, which stops it
	collector := &otlpReceiver{traces: map[string]int{}}
	otlp := httptest.NewServer(collector)
	t.Cleanup(otlp.Close)

	r := start(t, t.TempDir(), freeAddr(t), func(c *Config) {
		c.CityDir = cityWithWebhook(t, agency.URL+"/hook")
		c.WebhookAllowPrivate = true
		c.OTLPEndpoint = otlp.URL
	})
	grids := r.app.City().Grids()
	producer := r.token(auth.Claims{Subject: "p", Role: auth.RoleIngest})

	const httpTrace = "0af7651916cd43dd8448eb211c80319c"
	ticket := hotlineTicket("T-trace-http", event.RequestHelp, "0104", "小区雨水井堵塞，路面积水很深", "13812345678", grids[7].Centroid)
	if code := postTraced(t, r, "/api/v1/events", producer, "00-"+httpTrace+"-b7ad6b7169203331-01", ticket); code != http.StatusAccepted {
		t.Fatalf("POST /api/v1/events: %d", code)
	}
	eventually(t, 60*time.Second, "the water agency's webhook to carry the HTTP ticket's trace id", func() bool {
		return hooks.carried(httpTrace)
	})

	// A command continues its caller's trace too: the changelog record it causes carries it.
	operator := r.token(auth.Claims{Subject: "op-1", Role: auth.RoleOperator})
	var l incidentList
	eventually(t, 30*time.Second, "the ticket's incident in the store", func() bool {
		r.do("GET", "/api/v1/incidents?grid="+grids[7].Code, operator, nil, &l)
		return l.Count == 1
	})
	const cmdTrace = "9d2f9c0e6a4b4f6e8a1d2c3b4a596877"
	cancel := map[string]string{"action": "cancel", "reason": "核实为误报"}
	if code := postTraced(t, r, "/api/v1/incidents/"+l.Incidents[0].ID+"/actions", operator, "00-"+cmdTrace+"-a3ce929d0e0e4736-01", cancel); code != http.StatusOK {
		t.Fatalf("cancel: %d", code)
	}
	// Read again until both are there: a first read on a loaded machine can time out before
	// the reader has fetched anything.
	eventually(t, 60*time.Second, "the ticket's and the command's trace ids on "+event.TopicIncidents, func() bool {
		on := tracesOn(t, r.app.BrokerAddrs(), event.TopicIncidents)
		if !on[cmdTrace] || !on[httpTrace] {
			t.Logf("traces on %s so far: %v", event.TopicIncidents, on)
			return false
		}
		return true
	})

	// The batch processor exports every few seconds: ingest, rules, incidents, dispatch,
	// webhook stages and the delivery are spans of the one trace.
	eventually(t, 60*time.Second, "the HTTP ticket's spans at the OTLP collector", func() bool {
		return collector.spans(httpTrace) >= 6
	})
}

// postTraced POSTs body as JSON with a bearer token and a traceparent header, and returns the
// status.
func postTraced(t *testing.T, r *running, path, token, traceparent string, body any) int {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", r.base+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", traceparent)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// tracesOn is the set of trace ids the records of topic (three partitions) carry in their
// traceparent headers.
func tracesOn(t *testing.T, brokers []string, topic string) map[string]bool {
	t.Helper()
	on := map[string]bool{}
	for p := range 3 {
		rd := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p, MaxWait: 100 * time.Millisecond})
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		for {
			m, err := rd.ReadMessage(ctx)
			if err != nil {
				break
			}
			on[event.TraceID(transport.ExtractTrace(context.Background(), m.Headers))] = true
			if m.Offset+1 >= m.HighWaterMark {
				break // the partition's end (an empty one waits out the timeout)
			}
		}
		cancel()
		_ = rd.Close()
	}
	return on
}

// TestTraceFollowsKafkaTicketToWebhook is the Kafka input's variant: a ticket produced with
// kcat onto city.ingest.hotline, its traceparent a Kafka header, reaches the webhook with it.
func TestTraceFollowsKafkaTicketToWebhook(t *testing.T) {
	kcat := requireTool(t, "kcat")
	hooks := &traceReceiver{}
	agency := httptest.NewServer(hooks)
	t.Cleanup(agency.Close) // after the App's own cleanup, which stops it
	r := start(t, t.TempDir(), freeAddr(t), func(c *Config) {
		c.CityDir = cityWithWebhook(t, agency.URL+"/hook")
		c.WebhookAllowPrivate = true
	})
	grid := r.app.City().Grids()[40]

	const kafkaTrace = "5b8efff798038103d269b633813fc60c"
	tk := hotlineTicket("T-trace-kafka", event.RequestHelp, "0202", "路口积水没过脚踝", "13900001234", grid.Centroid)
	line, _ := json.Marshal(tk)
	cmd := exec.Command(kcat, "-b", strings.Join(r.app.BrokerAddrs(), ","), "-t", event.TopicIngestHotline, "-P",
		"-k", grid.Street, "-H", "traceparent=00-"+kafkaTrace+"-eee19b7ec3c1b174-01")
	cmd.Stdin = bytes.NewReader(append(line, '\n'))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat produce: %v\n%s", err, out)
	}
	eventually(t, 60*time.Second, "the webhook to carry the Kafka ticket's trace id", func() bool {
		return hooks.carried(kafkaTrace)
	})
}

// TestIngestTraceContextForms: a producer's record gives its trace as a traceparent header, a
// ce_traceparent header (CloudEvents binary mode) or the traceparent extension of a structured
// CloudEvent, in that order of precedence; a record with none starts no trace here.
func TestIngestTraceContextForms(t *testing.T) {
	const a, b = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "00-5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174-01"
	structured := []byte(`{"specversion":"1.0","id":"x","source":"s","type":"city.hotline.ticket","traceparent":"` + b + `","data":{}}`)
	for _, tc := range []struct {
		name    string
		headers []kafka.Header
		value   []byte
		want    string
	}{
		{"header", []kafka.Header{{Key: "traceparent", Value: []byte(a)}}, structured, traceIDOf(a)},
		{"binary mode", []kafka.Header{{Key: "ce_traceparent", Value: []byte(a)}}, []byte(`{}`), traceIDOf(a)},
		{"structured", nil, structured, traceIDOf(b)},
		{"none", nil, []byte(`{"specversion":"1.0","data":{"content":"no trace"}}`), ""},
		{"malformed", []kafka.Header{{Key: "traceparent", Value: []byte("00-zz")}}, []byte(`{}`), ""},
	} {
		ctx := ingestTraceContext(t.Context(), kafka.Message{Headers: tc.headers, Value: tc.value})
		if got := event.TraceID(ctx); got != tc.want {
			t.Errorf("%s: trace %q, want %q", tc.name, got, tc.want)
		}
	}
}
