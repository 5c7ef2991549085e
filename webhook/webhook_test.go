package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/incidents/incidentstest"
	"github.com/urbanbrain/urbanbrain/webhook"
)

const secret = "s3cret-for-the-water-bureau"

var dispatchRec = event.Dispatch{
	ID: "INC-990101001-0001/2", IncidentID: "INC-990101001-0001",
	Assignment: event.Assignment{WorkerID: "W-1", Agency: "water", AgencyName: "市水务局"},
	Reason:     "grid on-duty least loaded", At: time.Date(2025, 6, 3, 2, 0, 0, 0, time.UTC),
}

// receiver is a local agency endpoint that answers with the given statuses in turn (the last
// one repeated) and keeps what it received.
type receiver struct {
	mu       sync.Mutex
	statuses []int
	got      []*http.Request
	bodies   [][]byte
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, req)
	r.bodies = append(r.bodies, b)
	st := r.statuses[min(len(r.got)-1, len(r.statuses)-1)]
	w.WriteHeader(st)
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(_ context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.d = append(s.d, d)
	return nil
}

func newNotifier(t *testing.T, url string, allowLoopback bool, sl *sleeps) (*webhook.Notifier, *incidentstest.Bus) {
	t.Helper()
	bus := &incidentstest.Bus{}
	cfg := webhook.Config{
		Targets:       map[string]webhook.Target{"water": {URL: url, Secret: secret}},
		AllowLoopback: allowLoopback,
		MaxAttempts:   4,
		Timeout:       5 * time.Second,
	}
	if sl != nil {
		cfg.Sleep = sl.sleep
	}
	n, err := webhook.New(cfg, bus, nil)
	if err != nil {
		t.Fatal(err)
	}
	return n, bus
}

func audit(t *testing.T, bus *incidentstest.Bus) []event.AuditRecord {
	t.Helper()
	return bus.Audit(t)
}

func TestSignedNotificationVerifies(t *testing.T) {
	t.Parallel()
	rcv := &receiver{statuses: []int{http.StatusNoContent}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	n, bus := newNotifier(t, srv.URL+"/hooks/urbanbrain", true, nil) // the receiver is on loopback

	if err := n.Notify(t.Context(), dispatchRec); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	if rcv.count() != 1 {
		t.Fatalf("receiver got %d requests, want 1", rcv.count())
	}
	req, body := rcv.got[0], rcv.bodies[0]
	sig := req.Header.Get(webhook.HeaderSignature)
	if !webhook.Verify([]byte(secret), body, sig) || !strings.HasPrefix(sig, "sha256=") {
		t.Errorf("signature %q does not verify over the body", sig)
	}
	if webhook.Verify([]byte("another-agency-secret!"), body, sig) {
		t.Error("the signature verifies under another secret")
	}
	if webhook.Verify([]byte(secret), append(body, ' '), sig) {
		t.Error("the signature verifies over a changed body")
	}
	if req.Header.Get(webhook.HeaderDelivery) != dispatchRec.ID || req.Header.Get(webhook.HeaderAttempt) != "1" ||
		req.Header.Get("Content-Type") != "application/cloudevents+json" {
		t.Errorf("headers %v", req.Header)
	}
	var got event.Dispatch
	if _, err := event.Decode(body, event.TypeDispatch, &got); err != nil || got.IncidentID != dispatchRec.IncidentID {
		t.Errorf("body is not the dispatch CloudEvent: %v %+v", err, got)
	}
	a := audit(t, bus)
	if len(a) != 1 || !a[0].OK || a[0].Kind != event.AuditNotify || a[0].Code != "204" || a[0].Attempt != 1 ||
		a[0].Target != "water" || a[0].IncidentID != dispatchRec.IncidentID {
		t.Errorf("audit %+v, want one successful attempt", a)
	}
	if recs := bus.Records(event.TopicAudit); len(recs) != 1 || recs[0].Key != "990101001" {
		t.Errorf("audit records %+v, want one keyed by the incident's street", recs)
	}
}

// The audit log is best effort for notifications: an attempt that cannot be recorded is
// logged, and the notification is not sent a second time because of it.
func TestUnrecordedAttemptIsNotRetried(t *testing.T) {
	t.Parallel()
	rcv := &receiver{statuses: []int{http.StatusOK}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	n, bus := newNotifier(t, srv.URL, true, &sleeps{})
	bus.FailOn(event.TopicAudit, errors.New("broker down"))
	if err := n.Notify(t.Context(), dispatchRec); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	if rcv.count() != 1 || len(audit(t, bus)) != 0 || n.Stats().Delivered != 1 {
		t.Errorf("%d requests, %d audit records, stats %+v; want one delivery, unrecorded", rcv.count(), len(audit(t, bus)), n.Stats())
	}
}

func TestRetriesOn5xxWithBackoff(t *testing.T) {
	t.Parallel()
	rcv := &receiver{statuses: []int{500, 503, 200}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	sl := &sleeps{}
	n, bus := newNotifier(t, srv.URL, true, sl)
	if err := n.Notify(t.Context(), dispatchRec); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	if rcv.count() != 3 {
		t.Fatalf("receiver got %d requests, want 3", rcv.count())
	}
	for i, r := range rcv.got {
		if r.Header.Get(webhook.HeaderAttempt) != []string{"1", "2", "3"}[i] || r.Header.Get(webhook.HeaderDelivery) != dispatchRec.ID {
			t.Errorf("attempt %d headers %v", i+1, r.Header)
		}
	}
	if len(sl.d) != 2 || sl.d[0] < time.Second || sl.d[0] > 1200*time.Millisecond || sl.d[1] < 2*time.Second || sl.d[1] > 2400*time.Millisecond {
		t.Errorf("backoff %v, want ~1s then ~2s", sl.d)
	}
	a := audit(t, bus)
	if len(a) != 3 || a[0].OK || a[0].Code != "500" || a[1].Code != "503" || !a[2].OK || a[2].Attempt != 3 {
		t.Errorf("audit %+v, want two failed attempts then a success", a)
	}
	if st := n.Stats(); st.Attempts != 3 || st.Delivered != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestGivesUpAndDoesNotRetryClientErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status   int
		attempts int
	}{{500, 4}, {400, 1}, {429, 4}, {404, 1}} {
		rcv := &receiver{statuses: []int{tc.status}}
		srv := httptest.NewServer(rcv)
		n, bus := newNotifier(t, srv.URL, true, &sleeps{})
		if err := n.Notify(t.Context(), dispatchRec); err == nil {
			t.Errorf("%d: Notify succeeded", tc.status)
		}
		if rcv.count() != tc.attempts || len(audit(t, bus)) != tc.attempts {
			t.Errorf("%d: %d requests, %d audit records; want %d", tc.status, rcv.count(), len(audit(t, bus)), tc.attempts)
		}
		srv.Close()
	}
}

// The same local receiver, without the explicit allowance: refused at dial time, so the
// request never arrives, and the refusal is recorded and not retried.
func TestLoopbackRefusedByDefault(t *testing.T) {
	t.Parallel()
	rcv := &receiver{statuses: []int{200}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	for _, url := range []string{srv.URL, strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)} {
		n, bus := newNotifier(t, url, false, &sleeps{})
		err := n.Notify(t.Context(), dispatchRec)
		if !errors.Is(err, webhook.ErrRefusedAddress) || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("%s: Notify error %v, want the loopback refused", url, err)
		}
		if a := audit(t, bus); len(a) != 1 || a[0].OK || !strings.Contains(a[0].Error, "refused") {
			t.Errorf("%s: audit %+v, want one refused attempt", url, a)
		}
	}
	if rcv.count() != 0 {
		t.Errorf("the receiver got %d requests, want none", rcv.count())
	}
}

// A redirect is dialled through the same guard: an allowed receiver that redirects to the
// cloud metadata address or a private address gets the request refused. (Refused before
// connect(): nothing is sent to those addresses.)
func TestRedirectsAreRechecked(t *testing.T) {
	t.Parallel()
	for _, to := range []string{"http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/internal", "http://100.100.100.200/latest/meta-data/", "file:///etc/passwd"} {
		srv := httptest.NewServer(http.RedirectHandler(to, http.StatusFound))
		n, _ := newNotifier(t, srv.URL, true, &sleeps{})
		err := n.Notify(t.Context(), dispatchRec)
		if !errors.Is(err, webhook.ErrRefusedAddress) {
			t.Errorf("redirect to %s: error %v, want refused", to, err)
		}
		srv.Close()
	}
}

// Run's workers deliver what HandleDispatch queued, in a bubble on the synctest clock: Wait
// returns once the worker has delivered and is idle again, so nothing polls.
func TestHandleDispatchQueuesForRun(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		mem := newMemNet(t)
		rcv := &receiver{statuses: []int{200}}
		n, bus := newNotifier(t, mem.serve("water.test", rcv), true, nil)
		n.SetDial(mem.dial)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- n.Run(ctx) }()

		other := dispatchRec
		other.Assignment.Agency = "gas" // no webhook: not notified
		if err := n.HandleDispatch(t.Context(), other); err != nil {
			t.Fatal(err)
		}
		if err := n.HandleDispatch(t.Context(), dispatchRec); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // every worker is idle again: whatever was queued has been attempted
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if rcv.count() != 1 || n.Stats().Queued != 1 || len(audit(t, bus)) != 1 {
			t.Errorf("%d requests, %d audit records, stats %+v; want the water dispatch only", rcv.count(), len(audit(t, bus)), n.Stats())
		}
	})
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	_, err := webhook.New(webhook.Config{Targets: map[string]webhook.Target{
		"a": {URL: "ftp://x/", Secret: secret},
		"b": {URL: "https://user:pw@x/", Secret: secret},
		"c": {URL: "https://x/", Secret: "short"},
	}}, &incidentstest.Bus{}, nil)
	for _, want := range []string{"webhook a", "webhook b", "webhook c"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want it to name %s", err, want)
		}
	}
	if _, err := webhook.New(webhook.Config{}, nil, nil); err == nil || !strings.Contains(err.Error(), "Emitter") {
		t.Errorf("nil Emitter: error %v", err)
	}
}

// Regression: a failing agency delayed another's notifications by 34 s, because every
// agency shared two workers that sat in the failing one's timeouts and backoff. Each agency
// now has its own queue and workers: gas is notified while water's receiver still hangs.
// In a synctest bubble no time passes before Wait returns, so gas got through with water's
// requests still hanging, not after their timeouts.
func TestFailingAgencyDoesNotDelayAnother(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		mem := newMemNet(t)
		release := make(chan struct{})
		defer close(release)
		var waterGot atomic.Int64
		waterURL := mem.serve("water.test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			waterGot.Add(1)
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		gasRcv := &receiver{statuses: []int{http.StatusNoContent}}
		gasURL := mem.serve("gas.test", gasRcv)
		bus := &incidentstest.Bus{}
		n, err := webhook.New(webhook.Config{
			Targets: map[string]webhook.Target{
				"water": {URL: waterURL, Secret: secret},
				"gas":   {URL: gasURL, Secret: secret},
			},
			Timeout: time.Minute, // no time passes before the assertion: only isolation can get gas through
			Sleep:   (&sleeps{}).sleep,
		}, bus, nil)
		if err != nil {
			t.Fatal(err)
		}
		n.SetDial(mem.dial)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- n.Run(ctx) }()
		defer func() { cancel(); <-done }()

		for i := range 4 { // more hanging water notifications than the old shared pool had workers
			d := dispatchRec
			d.ID = d.ID + "-w" + string(rune('0'+i))
			if err := n.HandleDispatch(t.Context(), d); err != nil {
				t.Fatal(err)
			}
		}
		g := dispatchRec
		g.ID, g.Assignment.Agency = "INC-990101001-0002/1", "gas"
		if err := n.HandleDispatch(t.Context(), g); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // every worker is idle or stuck in water's receiver
		if gasRcv.count() != 1 {
			t.Fatalf("gas got %d notifications while water hung, want 1", gasRcv.count())
		}
		if got := waterGot.Load(); got != 2 {
			t.Fatalf("water's receiver holds %d requests, want its 2 workers' (the test must hang water's workers)", got)
		}
	})
}

// memNet serves receivers in memory: each dial is a net.Pipe handed to the receiver's
// http.Server, so a notifier and its receivers can run in a synctest bubble (which cannot
// wait on real sockets). Hosts are looked up by the dialled host:port.
type memNet struct {
	t         *testing.T
	mu        sync.Mutex
	listeners map[string]*pipeListener
}

func newMemNet(t *testing.T) *memNet {
	return &memNet{t: t, listeners: map[string]*pipeListener{}}
}

// serve starts h for host and returns its URL; the server is closed when the test ends.
func (m *memNet) serve(host string, h http.Handler) string {
	l := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
	m.mu.Lock()
	m.listeners[host+":80"] = l
	m.mu.Unlock()
	srv := &http.Server{Handler: h}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(l) }()
	m.t.Cleanup(func() { _ = srv.Close(); <-served })
	return "http://" + host
}

func (m *memNet) dial(ctx context.Context, _, addr string) (net.Conn, error) {
	m.mu.Lock()
	l := m.listeners[addr]
	m.mu.Unlock()
	if l == nil {
		return nil, fmt.Errorf("memNet: no receiver at %s", addr)
	}
	cli, srv := net.Pipe()
	select {
	case l.conns <- srv:
		return cli, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error { l.once.Do(func() { close(l.done) }); return nil }

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// A full agency queue is recorded as that agency's failure, not returned: an error would
// hold the shared city.dispatch stream behind it.
func TestFullAgencyQueueIsAuditedNotBlocking(t *testing.T) {
	t.Parallel()
	bus := &incidentstest.Bus{}
	n, err := webhook.New(webhook.Config{
		Targets: map[string]webhook.Target{"water": {URL: "https://water.example/hook", Secret: secret}},
		Queue:   1,
	}, bus, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // Run is not running: the second does not fit
		d := dispatchRec
		d.ID += string(rune('a' + i))
		if err := n.HandleDispatch(t.Context(), d); err != nil {
			t.Fatalf("dispatch %d: %v", i, err)
		}
	}
	recs := audit(t, bus)
	if len(recs) != 1 || recs[0].OK || !strings.Contains(recs[0].Error, "queue") || recs[0].Target != "water" {
		t.Fatalf("audit %+v, want one failed record for water's full queue", recs)
	}
	if s := n.Stats(); s.Queued != 1 || s.Failed != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// TestNotificationCarriesTrace: the request continues the trace of the dispatch record it
// was queued from, in its traceparent header and its CloudEvent's traceparent extension.
func TestNotificationCarriesTrace(t *testing.T) {
	t.Parallel()
	rcv := &receiver{statuses: []int{http.StatusNoContent}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	n, _ := newNotifier(t, srv.URL+"/hooks/urbanbrain", true, nil)

	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(t.Context(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true}))
	if err := n.Notify(ctx, dispatchRec); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	const want = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if got := rcv.got[0].Header.Get("traceparent"); got != want {
		t.Errorf("traceparent header %q, want %q (no tracer: the record's own span)", got, want)
	}
	var ce struct {
		TraceParent string `json:"traceparent"`
	}
	if err := json.Unmarshal(rcv.bodies[0], &ce); err != nil || ce.TraceParent != want {
		t.Errorf("CloudEvent traceparent %q (%v), want %q", ce.TraceParent, err, want)
	}
}
