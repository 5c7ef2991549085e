package cockpit_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/auth/authtest"
	cockpit "github.com/urbanbrain/urbanbrain/cockpit-ws"
	"github.com/urbanbrain/urbanbrain/event"
)

// hangGuard only stops a broken test from hanging; no assertion depends on it.
const hangGuard = 20 * time.Second

var (
	admin      = auth.Claims{Subject: "admin", Role: auth.RoleAdmin}
	operator   = auth.Claims{Subject: "op-1", Role: auth.RoleOperator}
	supervisor = auth.Claims{Subject: "sup-1", Role: auth.RoleSupervisor}
)

type fixture struct {
	hub *cockpit.Hub
	srv *httptest.Server
	iss *auth.Issuer
}

func start(t testing.TB, cfg cockpit.Config) *fixture {
	t.Helper()
	return startWithLog(t, cfg, zaptest.NewLogger(t))
}

func startWithLog(t testing.TB, cfg cockpit.Config, log *zap.Logger) *fixture {
	t.Helper()
	iss := authtest.NewIssuer(t)
	hub, err := cockpit.New(cfg, iss, log)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(hub)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { _ = hub.Close() }) // runs first: closes the websockets srv.Close does not track
	return &fixture{hub: hub, srv: srv, iss: iss}
}

func (f *fixture) url() string { return "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/ws/cockpit" }

// dial opens a websocket with a header token (or none if token is "").
func (f *fixture) dial(d *websocket.Dialer, token string, hdr http.Header) (*websocket.Conn, *http.Response, error) {
	if hdr == nil {
		hdr = http.Header{}
	}
	if token != "" {
		hdr.Set("Authorization", "Bearer "+token)
	}
	if d == nil {
		d = websocket.DefaultDialer
	}
	return d.Dial(f.url(), hdr)
}

type frame struct {
	Type      string           `json:"type"`
	Seq       uint64           `json:"seq"`
	Epoch     string           `json:"epoch"`
	Op        string           `json:"op"`
	ID        string           `json:"id"`
	Incident  *event.Incident  `json:"incident"`
	Incidents []event.Incident `json:"incidents"`
}

type client struct {
	t  testing.TB
	ws *websocket.Conn
}

// connect opens a websocket for c, through the query parameter as a browser would.
func (f *fixture) connect(t testing.TB, c auth.Claims) *client {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(f.url()+"?access_token="+authtest.Token(t, f.iss, c), nil)
	if err != nil {
		t.Fatalf("dial as %s: %v (%s)", c.Role, err, body(resp))
	}
	t.Cleanup(func() { _ = ws.Close() })
	return &client{t: t, ws: ws}
}

func (c *client) raw() []byte {
	c.t.Helper()
	_ = c.ws.SetReadDeadline(time.Now().Add(hangGuard))
	_, b, err := c.ws.ReadMessage()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return b
}

func (c *client) next() frame {
	c.t.Helper()
	var f frame
	if err := json.Unmarshal(c.raw(), &f); err != nil {
		c.t.Fatalf("decode frame: %v", err)
	}
	return f
}

func (c *client) snapshot(wantSeq uint64, wantIDs ...string) frame {
	c.t.Helper()
	f := c.next()
	if f.Type != "snapshot" || f.Seq != wantSeq || f.Epoch == "" {
		c.t.Fatalf("first frame %+v, want snapshot seq %d", f, wantSeq)
	}
	if got := ids(f.Incidents); !slices.Equal(got, wantIDs) {
		c.t.Fatalf("snapshot holds %v, want %v", got, wantIDs)
	}
	return f
}

// delta reads the next frame and checks it is delta seq with op on id ("" for no id).
func (c *client) delta(seq uint64, op, id string) frame {
	c.t.Helper()
	f := c.next()
	if f.Type != "delta" || f.Seq != seq || f.Op != op || f.ID != id {
		c.t.Fatalf("frame {type %s seq %d op %s id %s}, want delta seq %d op %s id %q", f.Type, f.Seq, f.Op, f.ID, seq, op, id)
	}
	return f
}

func ids(incs []event.Incident) []string {
	out := []string{}
	for _, inc := range incs {
		out = append(out, inc.ID)
	}
	return out
}

func body(resp *http.Response) string {
	if resp == nil {
		return "no response"
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.Status + " " + string(b)
}

func incident(id string, version int64, status event.Status, district, grid string) event.IncidentChange {
	return event.IncidentChange{Incident: event.Incident{
		ID: id, Version: version, Status: status, Category: "waterlogging", Severity: event.SeverityYellow,
		Title: "积水 " + id, Area: event.Area{District: district, Street: district + "001", Grid: grid},
	}, Change: event.Change{Action: "test", To: status}}
}

func (f *fixture) change(t testing.TB, ch event.IncidentChange) {
	t.Helper()
	if err := f.hub.HandleIncidentChange(context.Background(), ch); err != nil {
		t.Fatal(err)
	}
}

func TestHandshakeRejected(t *testing.T) {
	t.Parallel()
	f := start(t, cockpit.Config{})
	other := authtest.NewIssuer(t)
	cases := []struct {
		name   string
		token  string
		origin string
		status int
		code   string
	}{
		{"no token", "", "", 401, "unauthenticated"},
		{"garbage token", "abc.def.ghi", "", 401, "unauthenticated"},
		{"token of another key", authtest.Token(t, other, admin), "", 401, "unauthenticated"},
		{"ingest role", authtest.Token(t, f.iss, auth.Claims{Subject: "feeder", Role: auth.RoleIngest}), "", 403, "forbidden"},
		{"foreign origin", authtest.Token(t, f.iss, admin), "http://evil.example", 403, "forbidden"},
		{"foreign origin, no token", "", "https://evil.example", 403, "forbidden"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hdr := http.Header{}
			if tc.origin != "" {
				hdr.Set("Origin", tc.origin)
			}
			ws, resp, err := f.dial(nil, tc.token, hdr)
			if err == nil {
				_ = ws.Close()
				t.Fatal("handshake succeeded")
			}
			if !errors.Is(err, websocket.ErrBadHandshake) || resp.StatusCode != tc.status {
				t.Fatalf("err %v, response %s; want status %d", err, body(resp), tc.status)
			}
			var e struct{ Code, Error string }
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Code != tc.code {
				t.Fatalf("error body %+v (%v), want code %q", e, err, tc.code)
			}
		})
	}
	if n := f.hub.Stats().Connections; n != 0 {
		t.Errorf("%d connections after refused handshakes", n)
	}
}

func TestOrigins(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		allowed []string
		origin  func(f *fixture) string
		ok      bool
	}{
		{"no origin header", nil, func(*fixture) string { return "" }, true},
		{"same host", nil, func(f *fixture) string { return f.srv.URL }, true},
		{"other host", nil, func(*fixture) string { return "http://127.0.0.2:1" }, false},
		{"listed", []string{"https://wall.example.gov.cn"}, func(*fixture) string { return "https://wall.example.gov.cn" }, true},
		{"listed, other case", []string{"https://Wall.Example.gov.cn/"}, func(*fixture) string { return "https://wall.example.gov.cn" }, true},
		{"listed, other scheme", []string{"https://wall.example.gov.cn"}, func(*fixture) string { return "http://wall.example.gov.cn" }, false},
		{"list excludes same host", []string{"https://wall.example.gov.cn"}, func(f *fixture) string { return f.srv.URL }, false},
		{"star", []string{"*"}, func(*fixture) string { return "https://anything.example" }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := start(t, cockpit.Config{AllowedOrigins: tc.allowed})
			hdr := http.Header{}
			if o := tc.origin(f); o != "" {
				hdr.Set("Origin", o)
			}
			ws, resp, err := f.dial(nil, authtest.Token(t, f.iss, admin), hdr)
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v %s", err, body(resp))
				}
				_ = ws.Close()
				return
			}
			if err == nil {
				_ = ws.Close()
				t.Fatal("accepted")
			}
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("status %s, want 403", resp.Status)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	iss := authtest.NewIssuer(t)
	for name, cfg := range map[string]cockpit.Config{
		"negative queue":   {QueueSize: -1},
		"negative limit":   {ReadLimit: -5},
		"origin with path": {AllowedOrigins: []string{"https://wall.example/screen"}},
		"origin no scheme": {AllowedOrigins: []string{"wall.example"}},
	} {
		if _, err := cockpit.New(cfg, iss, nil); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
	if _, err := cockpit.New(cockpit.Config{}, nil, nil); err == nil {
		t.Error("New accepted a nil verifier")
	}
}

func TestSnapshotThenDeltas(t *testing.T) {
	t.Parallel()
	f := start(t, cockpit.Config{})
	f.hub.Restore(incident("INC-B", 1, event.StatusNew, "D1", "G1"))
	f.hub.Restore(incident("INC-A", 1, event.StatusNew, "D1", "G1"))
	f.hub.Restore(incident("INC-Z", 1, event.StatusNew, "D1", "G1"))
	f.hub.Restore(incident("INC-Z", 2, event.StatusClosed, "D1", "G1"))

	c := f.connect(t, admin)
	c.snapshot(0, "INC-A", "INC-B")

	f.change(t, incident("INC-A", 2, event.StatusDispatched, "D1", "G1"))
	f.change(t, incident("INC-C", 1, event.StatusNew, "D1", "G2"))
	f.change(t, incident("INC-B", 2, event.StatusClosed, "D1", "G1"))

	if d := c.delta(1, cockpit.OpUpsert, "INC-A"); d.Incident == nil || d.Incident.Version != 2 || d.Incident.Status != event.StatusDispatched {
		t.Fatalf("delta 1 incident %+v", d.Incident)
	}
	c.delta(2, cockpit.OpUpsert, "INC-C")
	if d := c.delta(3, cockpit.OpRemove, "INC-B"); d.Incident == nil || d.Incident.Status != event.StatusClosed {
		t.Fatalf("remove of a closed incident carries %+v, want its closed state", d.Incident)
	}

	// A screen that connects now starts where the first one is.
	later := f.connect(t, admin)
	snap := later.snapshot(3, "INC-A", "INC-C")
	if snap.Incidents[0].Version != 2 {
		t.Errorf("snapshot holds INC-A version %d, want 2", snap.Incidents[0].Version)
	}
	f.change(t, incident("INC-C", 2, event.StatusDispatched, "D1", "G2"))
	c.delta(4, cockpit.OpUpsert, "INC-C")
	later.delta(4, cockpit.OpUpsert, "INC-C")

	if s := f.hub.Stats(); s.Seq != 4 || s.OpenIncidents != 2 || s.Connections != 2 {
		t.Errorf("stats %+v", s)
	}
}

func TestOlderVersionsIgnored(t *testing.T) {
	t.Parallel()
	f := start(t, cockpit.Config{})
	f.hub.Restore(incident("INC-A", 3, event.StatusDispatched, "D1", "G1"))
	f.hub.Restore(incident("INC-A", 2, event.StatusNew, "D1", "G1")) // replay during restore
	c := f.connect(t, admin)
	if s := c.snapshot(0, "INC-A"); s.Incidents[0].Version != 3 {
		t.Fatalf("restore kept version %d, want 3", s.Incidents[0].Version)
	}

	f.change(t, incident("INC-A", 2, event.StatusNew, "D1", "G1"))
	f.change(t, incident("INC-A", 3, event.StatusDispatched, "D1", "G1"))
	f.change(t, incident("INC-A", 4, event.StatusAccepted, "D1", "G1"))
	// Had the replays produced frames, this would be seq 3 or a stale version.
	if d := c.delta(1, cockpit.OpUpsert, "INC-A"); d.Incident.Version != 4 {
		t.Fatalf("delta 1 carries version %d, want 4", d.Incident.Version)
	}

	f.change(t, incident("INC-A", 5, event.StatusClosed, "D1", "G1"))
	c.delta(2, cockpit.OpRemove, "INC-A")
	// A redelivered open version of a closed incident must not reopen it.
	f.change(t, incident("INC-A", 4, event.StatusAccepted, "D1", "G1"))
	// Closing an incident that was never open changes nothing either.
	f.change(t, incident("INC-X", 1, event.StatusClosed, "D1", "G1"))
	f.change(t, incident("INC-X", 1, event.StatusNew, "D1", "G1"))
	f.change(t, incident("INC-B", 1, event.StatusNew, "D1", "G1"))
	c.delta(3, cockpit.OpUpsert, "INC-B")
	f.connect(t, admin).snapshot(3, "INC-B")

	// Reopening (重办) a closed incident comes with a higher version, and counts.
	f.change(t, incident("INC-A", 6, event.StatusDispatched, "D1", "G1"))
	c.delta(4, cockpit.OpUpsert, "INC-A")
}

func withCaller(ch event.IncidentChange) event.IncidentChange {
	ch.Incident.Title = "地下通道积水 来电13812345678"
	ch.Incident.Reports = []event.Report{{EventID: "e1", EventType: event.TypeHotlineTicket,
		Summary: "积水很深，联系13812345678", Caller: &event.Caller{Name: "张三丰", Phone: "13812345678"}}}
	ch.Incident.ReportCount = 1
	return ch
}

func TestMasking(t *testing.T) {
	t.Parallel()
	f := start(t, cockpit.Config{})
	f.hub.Restore(withCaller(incident("INC-A", 1, event.StatusNew, "D1", "G1")))
	op := f.connect(t, operator)
	sup := f.connect(t, supervisor)
	f.change(t, withCaller(incident("INC-A", 2, event.StatusDispatched, "D1", "G1")))

	for _, raw := range [][]byte{op.raw(), op.raw()} {
		if strings.Contains(string(raw), "13812345678") || strings.Contains(string(raw), "张三丰") {
			t.Fatalf("operator received personal data: %s", raw)
		}
		if !strings.Contains(string(raw), `"phone":"138****5678"`) || !strings.Contains(string(raw), `"name":"张**"`) {
			t.Fatalf("operator frame lacks the masked caller: %s", raw)
		}
	}
	snap := sup.snapshot(0, "INC-A")
	if c := snap.Incidents[0].Reports[0].Caller; c.Phone != "13812345678" || c.Name != "张三丰" {
		t.Fatalf("supervisor snapshot caller %+v, want unmasked", c)
	}
	if d := sup.delta(1, cockpit.OpUpsert, "INC-A"); d.Incident.Reports[0].Caller.Phone != "13812345678" {
		t.Fatalf("supervisor delta caller %+v, want unmasked", d.Incident.Reports[0].Caller)
	}
}

func TestScope(t *testing.T) {
	t.Parallel()
	f := start(t, cockpit.Config{})
	f.hub.Restore(incident("INC-A", 1, event.StatusNew, "D1", "G1"))
	f.hub.Restore(incident("INC-B", 1, event.StatusNew, "D1", "G2"))
	worker := f.connect(t, auth.Claims{Subject: "w-1", Role: auth.RoleWorker, Grids: []string{"G1"}})
	d2 := f.connect(t, auth.Claims{Subject: "op-d2", Role: auth.RoleOperator, District: "D2"})
	d1 := f.connect(t, auth.Claims{Subject: "op-d1", Role: auth.RoleOperator, District: "D1"})
	worker.snapshot(0, "INC-A")
	d2.snapshot(0)
	d1.snapshot(0, "INC-A", "INC-B")

	f.change(t, incident("INC-A", 2, event.StatusDispatched, "D1", "G1")) // 1: worker's grid
	f.change(t, incident("INC-B", 2, event.StatusDispatched, "D1", "G2")) // 2: another grid
	f.change(t, incident("INC-A", 3, event.StatusDispatched, "D1", "G2")) // 3: moves out of G1
	f.change(t, incident("INC-B", 3, event.StatusClosed, "D1", "G2"))     // 4: closed, never the worker's
	f.change(t, incident("INC-C", 1, event.StatusNew, "D2", "G9"))        // 5: district D2

	worker.delta(1, cockpit.OpUpsert, "INC-A")
	worker.delta(2, cockpit.OpNoop, "")
	if d := worker.delta(3, cockpit.OpRemove, "INC-A"); d.Incident != nil {
		t.Fatalf("an incident that left the worker's scope was sent with its new state: %+v", d.Incident)
	}
	worker.delta(4, cockpit.OpNoop, "")
	worker.delta(5, cockpit.OpNoop, "")

	for seq := uint64(1); seq <= 4; seq++ {
		d2.delta(seq, cockpit.OpNoop, "")
	}
	d2.delta(5, cockpit.OpUpsert, "INC-C")

	d1.delta(1, cockpit.OpUpsert, "INC-A")
	d1.delta(2, cockpit.OpUpsert, "INC-B")
	d1.delta(3, cockpit.OpUpsert, "INC-A")
	d1.delta(4, cockpit.OpRemove, "INC-B")
	d1.delta(5, cockpit.OpNoop, "")
}

func TestCloseGoingAway(t *testing.T) {
	t.Parallel()
	f := start(t, cockpit.Config{})
	a, b := f.connect(t, admin), f.connect(t, operator)
	a.snapshot(0)
	b.snapshot(0)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.hub.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, c := range []*client{a, b} {
		_ = c.ws.SetReadDeadline(time.Now().Add(hangGuard))
		if _, _, err := c.ws.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
			t.Fatalf("after Run ended: %v, want going away", err)
		}
	}
	if n := f.hub.Stats().Connections; n != 0 {
		t.Errorf("%d connections after Close", n)
	}
	_, resp, err := f.dial(nil, authtest.Token(t, f.iss, admin), nil)
	if err == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial after Close: %v %s, want 503", err, body(resp))
	}
	// Changes after Close go nowhere and do not block.
	f.change(t, incident("INC-A", 1, event.StatusNew, "D1", "G1"))
}

func TestReadLimit(t *testing.T) {
	t.Parallel()
	f := start(t, cockpit.Config{ReadLimit: 1024})
	c := f.connect(t, admin)
	c.snapshot(0)
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe"}`)); err != nil {
		t.Fatal(err)
	}
	f.change(t, incident("INC-A", 1, event.StatusNew, "D1", "G1"))
	c.delta(1, cockpit.OpUpsert, "INC-A") // a small message is fine
	if err := c.ws.WriteMessage(websocket.TextMessage, make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	_ = c.ws.SetReadDeadline(time.Now().Add(hangGuard))
	if _, _, err := c.ws.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Fatalf("after an oversized message: %v, want close 1009", err)
	}
}

func TestPings(t *testing.T) {
	t.Parallel()
	f := start(t, cockpit.Config{PingInterval: 10 * time.Millisecond})
	c := f.connect(t, admin)
	pinged := make(chan struct{}, 1)
	c.ws.SetPingHandler(func(data string) error {
		select {
		case pinged <- struct{}{}:
		default:
		}
		return c.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	c.snapshot(0)
	go func() {
		for {
			if _, _, err := c.ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	select {
	case <-pinged:
	case <-time.After(hangGuard):
		t.Fatal("no ping")
	}
}
