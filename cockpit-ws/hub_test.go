package cockpit_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
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
	viewer     = auth.Claims{Subject: "wall-1", Role: auth.RoleViewer}
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
	mux := http.NewServeMux()
	mux.Handle("/ws/cockpit", hub)
	mux.Handle("/ws/worker", hub.WorkerHandler())
	mux.Handle("/", cockpit.Page())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { _ = hub.Close() }) // runs first: closes the websockets srv.Close does not track
	return &fixture{hub: hub, srv: srv, iss: iss}
}

func (f *fixture) url() string { return f.wsURL("/ws/cockpit") }

func (f *fixture) wsURL(path string) string {
	return "ws" + strings.TrimPrefix(f.srv.URL, "http") + path
}

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
	Feed      string           `json:"feed"`
	Seq       uint64           `json:"seq"`
	Last      uint64           `json:"last"`
	Epoch     string           `json:"epoch"`
	Reason    string           `json:"reason"`
	Code      string           `json:"code"`
	Error     string           `json:"error"`
	CoordSys  string           `json:"coordsys"`
	Changes   int              `json:"changes"`
	Upsert    []event.Incident `json:"upsert"`
	Remove    []removal        `json:"remove"`
	Incidents []event.Incident `json:"incidents"`
	Grids     json.RawMessage  `json:"grids"`
	KPI       *cockpit.KPIs    `json:"kpi"`

	raw []byte
}

type removal struct{ ID, Reason string }

type client struct {
	t  testing.TB
	ws *websocket.Conn
}

// connect opens /ws/cockpit for c with query parameters q, through the query token as a
// browser would.
func (f *fixture) connect(t testing.TB, c auth.Claims, q ...string) *client {
	t.Helper()
	return f.connectTo(t, "/ws/cockpit", c, q...)
}

func (f *fixture) connectTo(t testing.TB, path string, c auth.Claims, q ...string) *client {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(f.wsURL(path)+"?"+query(authtest.Token(t, f.iss, c), q...), nil)
	if err != nil {
		t.Fatalf("dial %s as %s: %v (%s)", path, c.Role, err, body(resp))
	}
	t.Cleanup(func() { _ = ws.Close() })
	return &client{t: t, ws: ws}
}

// query builds a query string from the token and key=value pairs.
func query(token string, kv ...string) string {
	v := url.Values{"access_token": {token}}
	for _, p := range kv {
		k, val, _ := strings.Cut(p, "=")
		v.Add(k, val)
	}
	return v.Encode()
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
	b := c.raw()
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		c.t.Fatalf("decode frame: %v", err)
	}
	f.raw = b
	return f
}

func (c *client) send(msg string) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) expect(typ string) frame {
	c.t.Helper()
	f := c.next()
	if f.Type != typ {
		c.t.Fatalf("frame %s (%s), want %s", f.Type, f.raw, typ)
	}
	return f
}

func (c *client) snapshot(wantSeq uint64, wantIDs ...string) frame {
	c.t.Helper()
	f := c.next()
	if f.Type != "snapshot" || f.Seq != wantSeq || f.Epoch == "" {
		c.t.Fatalf("frame %s, want snapshot seq %d", f.raw, wantSeq)
	}
	if got := ids(f.Incidents); !slices.Equal(got, wantIDs) {
		c.t.Fatalf("snapshot holds %v, want %v", got, wantIDs)
	}
	return f
}

// delta reads the next frame and checks it is delta seq upserting up and removing rm
// (both sorted by id).
func (c *client) delta(seq uint64, up []string, rm []string) frame {
	c.t.Helper()
	f := c.next()
	var gotRm []string
	for _, r := range f.Remove {
		gotRm = append(gotRm, r.ID)
	}
	if f.Type != "delta" || f.Seq != seq || !slices.Equal(ids(f.Upsert), orEmpty(up)) || !slices.Equal(orEmpty(gotRm), orEmpty(rm)) {
		c.t.Fatalf("frame %s, want delta seq %d upsert %v remove %v", f.raw, seq, up, rm)
	}
	return f
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func list(s ...string) []string { return s }

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
		ID: id, Version: version, Status: status, Category: "0202", Severity: event.SeverityYellow,
		Title: "积水 " + id, Area: event.Area{District: district, Street: district + "001", Grid: grid},
	}, Change: event.Change{Action: "test", To: status}}
}

func (f *fixture) change(t testing.TB, ch event.IncidentChange) {
	t.Helper()
	if err := f.hub.HandleIncidentChange(context.Background(), ch); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) flush() { cockpit.Flush(f.hub) }

func TestHandshakeRejected(t *testing.T) {
	t.Parallel()
	f := start(t, cockpit.Config{})
	other := authtest.NewIssuer(t)
	workerTok := authtest.Token(t, f.iss, auth.Claims{Subject: "w-1", Role: auth.RoleWorker, Grids: []string{"G1"}})
	cases := []struct {
		name   string
		path   string
		token  string
		query  string
		origin string
		status int
		code   string
	}{
		{"no token", "/ws/cockpit", "", "", "", 401, "unauthenticated"},
		{"garbage token", "/ws/cockpit", "abc.def.ghi", "", "", 401, "unauthenticated"},
		{"token of another key", "/ws/cockpit", authtest.Token(t, other, admin), "", "", 401, "unauthenticated"},
		{"ingest role", "/ws/cockpit", authtest.Token(t, f.iss, auth.Claims{Subject: "feeder", Role: auth.RoleIngest}), "", "", 403, "forbidden"},
		{"foreign origin", "/ws/cockpit", authtest.Token(t, f.iss, admin), "", "http://evil.example", 403, "forbidden"},
		{"foreign origin, no token", "/ws/cockpit", "", "", "https://evil.example", 403, "forbidden"},
		{"unknown severity", "/ws/cockpit", authtest.Token(t, f.iss, admin), "severity=purple", "", 400, "invalid_request"},
		{"unknown coordsys", "/ws/cockpit", authtest.Token(t, f.iss, admin), "coordsys=mercator", "", 400, "invalid_request"},
		{"seq without epoch", "/ws/cockpit", authtest.Token(t, f.iss, admin), "seq=4", "", 400, "invalid_request"},
		{"map without a city", "/ws/cockpit", authtest.Token(t, f.iss, admin), "map=1", "", 400, "invalid_request"},
		{"worker feed, operator", "/ws/worker", authtest.Token(t, f.iss, operator), "", "", 403, "forbidden"},
		{"worker feed with a filter", "/ws/worker", workerTok, "district=D1", "", 400, "invalid_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hdr := http.Header{}
			if tc.origin != "" {
				hdr.Set("Origin", tc.origin)
			}
			if tc.token != "" {
				hdr.Set("Authorization", "Bearer "+tc.token)
			}
			ws, resp, err := websocket.DefaultDialer.Dial(f.wsURL(tc.path)+"?"+tc.query, hdr)
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
		"negative queue":       {QueueSize: -1},
		"negative limit":       {ReadLimit: -5},
		"negative flush":       {FlushInterval: -time.Second},
		"negative history":     {HistoryBytes: -1},
		"negative stage limit": {StageLimits: cockpit.StageLimits{event.StageSignFor: {"red": -time.Minute}}},
		"origin with path":     {AllowedOrigins: []string{"https://wall.example/screen"}},
		"origin no scheme":     {AllowedOrigins: []string{"wall.example"}},
	} {
		if _, err := cockpit.New(cfg, iss, nil); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
	if _, err := cockpit.New(cockpit.Config{}, nil, nil); err == nil {
		t.Error("New accepted a nil verifier")
	}
}

// A snapshot carries the subscription's seq; each tick with changes is one delta with the
// next seq, holding the net change of the tick: the latest version of each incident.
func TestSnapshotThenConsecutiveDeltas(t *testing.T) {
	t.Parallel()
	f := start(t, cockpit.Config{})
	f.hub.Restore(incident("INC-B", 1, event.StatusNew, "D1", "G1"))
	f.hub.Restore(incident("INC-A", 1, event.StatusNew, "D1", "G1"))
	f.hub.Restore(incident("INC-Z", 1, event.StatusNew, "D1", "G1"))
	f.hub.Restore(incident("INC-Z", 2, event.StatusClosed, "D1", "G1"))

	c := f.connect(t, admin)
	snap := c.snapshot(0, "INC-A", "INC-B")

	f.change(t, incident("INC-A", 2, event.StatusDispatched, "D1", "G1"))
	f.change(t, incident("INC-C", 1, event.StatusNew, "D1", "G2"))
	f.change(t, incident("INC-B", 2, event.StatusClosed, "D1", "G1"))
	f.change(t, incident("INC-A", 3, event.StatusAccepted, "D1", "G1"))
	f.flush()
	d := c.delta(1, list("INC-A", "INC-C"), list("INC-B"))
	if d.Upsert[0].Version != 3 || d.Upsert[0].Status != event.StatusAccepted {
		t.Errorf("coalesced upsert carries version %d %s, want the latest: 3 accepted", d.Upsert[0].Version, d.Upsert[0].Status)
	}
	if d.Remove[0].Reason != cockpit.RemoveClosed || d.Changes != 4 {
		t.Errorf("remove reason %q, changes %d; want closed, 4", d.Remove[0].Reason, d.Changes)
	}

	f.flush() // a tick without changes sends nothing and uses no number
	f.change(t, incident("INC-C", 2, event.StatusDispatched, "D1", "G2"))
	f.flush()
	c.delta(2, list("INC-C"), nil)

	// A screen that connects now starts where the first one is, in the same epoch.
	later := f.connect(t, admin)
	s2 := later.snapshot(2, "INC-A", "INC-C")
	if s2.Epoch != snap.Epoch || s2.Incidents[0].Version != 3 {
		t.Errorf("second snapshot epoch %s (first %s), INC-A version %d", s2.Epoch, snap.Epoch, s2.Incidents[0].Version)
	}
	f.change(t, incident("INC-C", 3, event.StatusAccepted, "D1", "G2"))
	f.flush()
	a, b := c.delta(3, list("INC-C"), nil), later.delta(3, list("INC-C"), nil)
	if string(a.raw) != string(b.raw) {
		t.Errorf("two screens on one subscription got different bytes:\n%s\n%s", a.raw, b.raw)
	}
	if s := f.hub.Stats(); s.Frames != 3 || s.OpenIncidents != 2 || s.Connections != 2 || s.Subscriptions != 1 {
		t.Errorf("stats %+v", s)
	}
}

// A client that joins while changes wait for the tick gets the snapshot at the last delta,
// exactly as it was then, and the waiting changes with everyone else in the next delta: all
// the clients that join within one tick share one snapshot.
func TestJoinMidTick(t *testing.T) {
	t.Parallel()
	f := start(t, cockpit.Config{})
	f.hub.Restore(incident("INC-A", 1, event.StatusNew, "D1", "G1"))
	f.hub.Restore(incident("INC-B", 1, event.StatusNew, "D1", "G1"))
	f.hub.Restore(incident("INC-C", 1, event.StatusNew, "D1", "G1"))
	first := f.connect(t, operator, "district=D1")
	first.snapshot(0, "INC-A", "INC-B", "INC-C")
	f.change(t, incident("INC-A", 2, event.StatusDispatched, "D1", "G1")) // changed
	f.change(t, incident("INC-B", 2, event.StatusClosed, "D1", "G1"))     // closed
	f.change(t, incident("INC-C", 2, event.StatusNew, "D2", "G9"))        // moved out of D1
	f.change(t, incident("INC-C", 3, event.StatusNew, "D1", "G1"))        // and back
	f.change(t, incident("INC-D", 1, event.StatusNew, "D1", "G1"))        // new
	second := f.connect(t, operator, "district=D1")
	third := f.connect(t, operator, "district=D1")
	s2, s3 := second.snapshot(0, "INC-A", "INC-B", "INC-C"), third.snapshot(0, "INC-A", "INC-B", "INC-C")
	for _, inc := range s2.Incidents {
		if inc.Version != 1 {
			t.Errorf("mid-tick snapshot holds %s version %d, want the state at seq 0 (version 1)", inc.ID, inc.Version)
		}
	}
	if string(s2.raw) != string(s3.raw) {
		t.Error("two clients joining in one tick got different snapshots")
	}
	f.flush()
	first.delta(1, list("INC-A", "INC-C", "INC-D"), list("INC-B"))
	second.delta(1, list("INC-A", "INC-C", "INC-D"), list("INC-B"))
	third.delta(1, list("INC-A", "INC-C", "INC-D"), list("INC-B"))
	if s := f.hub.Stats(); s.Frames != 1 {
		t.Errorf("%d frames encoded, want one for the one subscription", s.Frames)
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
	f.flush() // replays only: no frame
	f.change(t, incident("INC-A", 4, event.StatusAccepted, "D1", "G1"))
	f.flush()
	if d := c.delta(1, list("INC-A"), nil); d.Upsert[0].Version != 4 || d.Changes != 1 {
		t.Fatalf("delta 1 carries version %d after %d changes, want 4 after 1", d.Upsert[0].Version, d.Changes)
	}

	f.change(t, incident("INC-A", 5, event.StatusClosed, "D1", "G1"))
	f.flush()
	c.delta(2, nil, list("INC-A"))
	// A redelivered open version of a closed incident must not reopen it, and closing one
	// that was never open changes nothing.
	f.change(t, incident("INC-A", 4, event.StatusAccepted, "D1", "G1"))
	f.change(t, incident("INC-X", 1, event.StatusClosed, "D1", "G1"))
	f.change(t, incident("INC-X", 1, event.StatusNew, "D1", "G1"))
	f.change(t, incident("INC-B", 1, event.StatusNew, "D1", "G1"))
	f.flush()
	c.delta(3, list("INC-B"), nil)
	f.connect(t, admin).snapshot(3, "INC-B")

	// Reopening (重办) a closed incident comes with a higher version, and counts.
	f.change(t, incident("INC-A", 6, event.StatusDispatched, "D1", "G1"))
	f.flush()
	c.delta(4, list("INC-A"), nil)
}

// A screen whose connection drops resumes from its last seq and gets exactly the frames it
// missed, byte for byte, then the live stream: no gap, no duplicate, no new snapshot.
func TestResumeAfterDroppedConnection(t *testing.T) {
	t.Parallel()
	f := start(t, cockpit.Config{})
	c := f.connect(t, operator, "district=D1")
	snap := c.snapshot(0)
	for i := 1; i <= 2; i++ {
		f.change(t, incident(fmt.Sprintf("INC-%d", i), 1, event.StatusNew, "D1", "G1"))
		f.flush()
		c.delta(uint64(i), list(fmt.Sprintf("INC-%d", i)), nil)
	}
	// A second screen on the same subscription stays connected and records what the first
	// one misses.
	witness := f.connect(t, operator, "district=D1")
	witness.snapshot(2, "INC-1", "INC-2")
	_ = c.ws.Close() // the network goes away

	var missed [][]byte
	for i := 3; i <= 5; i++ {
		f.change(t, incident(fmt.Sprintf("INC-%d", i), 1, event.StatusNew, "D1", "G1"))
		f.change(t, incident("INC-1", int64(i), event.StatusDispatched, "D1", "G1"))
		f.flush()
		missed = append(missed, witness.delta(uint64(i), list("INC-1", fmt.Sprintf("INC-%d", i)), nil).raw)
	}

	back := f.connect(t, operator, "district=D1", "epoch="+snap.Epoch, "seq=2")
	r := back.expect(cockpit.FrameResumed)
	if r.Seq != 2 || r.Last != 5 || r.Epoch != snap.Epoch {
		t.Fatalf("resumed frame %s, want seq 2 last 5", r.raw)
	}
	for i, want := range missed {
		if got := back.raw(); string(got) != string(want) {
			t.Fatalf("replayed frame %d:\n%s\nwant the frame the others got:\n%s", i+3, got, want)
		}
	}
	f.change(t, incident("INC-6", 1, event.StatusNew, "D1", "G1"))
	f.flush()
	back.delta(6, list("INC-6"), nil)
	witness.delta(6, list("INC-6"), nil)

	// Resuming at the current seq is a resume with nothing to replay.
	now := f.connect(t, operator, "district=D1", "epoch="+snap.Epoch, "seq=6")
	if r := now.expect(cockpit.FrameResumed); r.Seq != 6 || r.Last != 6 {
		t.Fatalf("resume at the head: %s", r.raw)
	}
}

// When the missed frames are no longer kept, or the epoch is another one, the server says
// reload and sends a fresh snapshot; the client never silently misses anything.
func TestReloadWhenResumeImpossible(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	f := start(t, cockpit.Config{HistorySize: 3, IdleTTL: time.Minute, Now: clock.Now})
	c := f.connect(t, viewer)
	snap := c.snapshot(0)
	f.change(t, incident("INC-1", 1, event.StatusNew, "D1", "G1"))
	f.flush()
	c.delta(1, list("INC-1"), nil)
	_ = c.ws.Close()
	for i := 2; i <= 6; i++ { // five more frames; only three are kept
		f.change(t, incident(fmt.Sprintf("INC-%d", i), 1, event.StatusNew, "D1", "G1"))
		f.flush()
	}

	cases := []struct {
		name, epoch, seq, reason string
	}{
		{"history exceeded", snap.Epoch, "1", cockpit.ReloadHistoryExceeded},
		{"epoch of another run", "0123abcd-1", "1", cockpit.ReloadEpochChanged},
		{"seq from the future", snap.Epoch, "99", cockpit.ReloadUnknownSeq},
	}
	for _, tc := range cases {
		back := f.connect(t, viewer, "epoch="+tc.epoch, "seq="+tc.seq)
		if r := back.expect(cockpit.FrameReload); r.Reason != tc.reason {
			t.Errorf("%s: reload reason %q, want %q", tc.name, r.Reason, tc.reason)
		}
		back.snapshot(6, "INC-1", "INC-2", "INC-3", "INC-4", "INC-5", "INC-6")
	}
	// Within the history, resume works.
	ok := f.connect(t, viewer, "epoch="+snap.Epoch, "seq=3")
	ok.expect(cockpit.FrameResumed)
	ok.delta(4, list("INC-4"), nil)

	// A subscription left without clients beyond IdleTTL is forgotten: its epoch with it.
	f.hub.Close()
	f2 := start(t, cockpit.Config{IdleTTL: time.Minute, Now: clock.Now})
	c2 := f2.connect(t, viewer)
	s2 := c2.snapshot(0)
	_ = c2.ws.Close()
	waitFor(t, func() bool { return f2.hub.Stats().Connections == 0 })
	clock.Advance(2 * time.Minute)
	f2.flush()
	if n := f2.hub.Stats().Subscriptions; n != 0 {
		t.Fatalf("%d subscriptions after the idle TTL", n)
	}
	back := f2.connect(t, viewer, "epoch="+s2.Epoch, "seq=0")
	if r := back.expect(cockpit.FrameReload); r.Reason != cockpit.ReloadEpochChanged {
		t.Fatalf("resume of an expired subscription: %s", r.raw)
	}
	if s := back.snapshot(0); s.Epoch == s2.Epoch {
		t.Fatal("a new subscription reused the epoch of the expired one")
	}
}

// waitFor polls cond for something that happens asynchronously on the server (a closed
// socket noticed); it asserts no timing.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 7, 1, 9, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func withCaller(ch event.IncidentChange) event.IncidentChange {
	ch.Incident.Title = "地下通道积水 来电13812345678"
	ch.Incident.Reports = []event.Report{{EventID: "e1", EventType: event.TypeHotlineTicket,
		Summary: "积水很深，联系13812345678", Caller: &event.Caller{Name: "张三丰", Phone: "13812345678"}}}
	ch.Incident.ReportCount = 1
	return ch
}

// Personal data is masked per role in snapshots, deltas and resumed frames alike; the
// masked and unmasked views are separate subscriptions, never mixed.
func TestMaskingPerRole(t *testing.T) {
	t.Parallel()
	f := start(t, cockpit.Config{})
	f.hub.Restore(withCaller(incident("INC-A", 1, event.StatusNew, "D1", "G1")))
	op := f.connect(t, operator)
	sup := f.connect(t, supervisor)
	vw := f.connect(t, viewer)
	opSnap := op.next()
	f.change(t, withCaller(incident("INC-A", 2, event.StatusDispatched, "D1", "G1")))
	f.flush()
	opDelta := op.raw()
	_ = op.ws.Close()
	f.change(t, withCaller(incident("INC-A", 3, event.StatusAccepted, "D1", "G1")))
	f.flush()
	opBack := f.connect(t, operator, "epoch="+opSnap.Epoch, "seq=1")

	masked := [][]byte{opSnap.raw, opDelta, opBack.raw(), opBack.raw(), vw.raw(), vw.raw(), vw.raw()}
	for _, raw := range masked {
		if strings.Contains(string(raw), "13812345678") || strings.Contains(string(raw), "张三丰") {
			t.Fatalf("masked role received personal data: %s", raw)
		}
		if strings.Contains(string(raw), "INC-A") && (!strings.Contains(string(raw), `"phone":"138****5678"`) || !strings.Contains(string(raw), `"name":"张**"`)) {
			t.Fatalf("frame lacks the masked caller: %s", raw)
		}
	}
	snap := sup.snapshot(0, "INC-A")
	if c := snap.Incidents[0].Reports[0].Caller; c.Phone != "13812345678" || c.Name != "张三丰" {
		t.Fatalf("supervisor snapshot caller %+v, want unmasked", c)
	}
	if d := sup.delta(1, list("INC-A"), nil); d.Upsert[0].Reports[0].Caller.Phone != "13812345678" {
		t.Fatalf("supervisor delta caller %+v, want unmasked", d.Upsert[0].Reports[0].Caller)
	}
}

// Scope comes from the token and a filter only narrows it: a worker sees its grids, a
// district operator its district, and an incident that leaves the scope is removed without
// its new state.
func TestScope(t *testing.T) {
	t.Parallel()
	f := start(t, cockpit.Config{})
	f.hub.Restore(incident("INC-A", 1, event.StatusNew, "D1", "G1"))
	f.hub.Restore(incident("INC-B", 1, event.StatusNew, "D1", "G2"))
	worker := f.connect(t, auth.Claims{Subject: "w-1", Role: auth.RoleWorker, Grids: []string{"G1"}})
	d2 := f.connect(t, auth.Claims{Subject: "op-d2", Role: auth.RoleOperator, District: "D2"})
	d1 := f.connect(t, auth.Claims{Subject: "op-d1", Role: auth.RoleOperator, District: "D1"})
	wider := f.connect(t, auth.Claims{Subject: "op-d2b", Role: auth.RoleOperator, District: "D2"}, "district=D1")
	worker.snapshot(0, "INC-A")
	d2.snapshot(0)
	d1.snapshot(0, "INC-A", "INC-B")
	wider.snapshot(0) // asking for D1 does not widen a D2 token

	f.change(t, incident("INC-A", 2, event.StatusDispatched, "D1", "G1"))
	f.flush()
	f.change(t, incident("INC-B", 2, event.StatusDispatched, "D1", "G2"))
	f.flush()
	f.change(t, incident("INC-A", 3, event.StatusDispatched, "D1", "G2")) // moves out of G1
	f.flush()
	f.change(t, incident("INC-C", 1, event.StatusNew, "D2", "G9"))
	f.flush()

	worker.delta(1, list("INC-A"), nil)
	if d := worker.delta(2, nil, list("INC-A")); d.Remove[0].Reason != cockpit.RemoveLeft {
		t.Fatalf("an incident that left the worker's grid: reason %q", d.Remove[0].Reason)
	}
	d2.delta(1, list("INC-C"), nil)
	d1.delta(1, list("INC-A"), nil)
	d1.delta(2, list("INC-B"), nil)
	d1.delta(3, list("INC-A"), nil)
	// Nothing else reached the worker or the D2-with-D1-filter screen.
	f.change(t, incident("INC-D", 1, event.StatusNew, "D2", "G1"))
	f.flush()
	worker.delta(3, list("INC-D"), nil)
	// Moved to its own district, the next frame it gets is the new snapshot: no delta was
	// ever queued for it before.
	wider.send(`{"type":"subscribe","filter":{"district":["D2"]}}`)
	wider.snapshot(0, "INC-C", "INC-D")
}

// Frames are encoded once per distinct subscription, however many screens share it.
func TestEncodedOncePerSubscription(t *testing.T) {
	t.Parallel()
	f := start(t, cockpit.Config{SubjectConnections: 64}) // 20 screens share the wall token
	var wall, desk []*client
	for range 20 {
		wall = append(wall, f.connect(t, viewer, "severity=red,orange"))
		desk = append(desk, f.connect(t, operator))
	}
	for _, c := range append(slices.Clone(wall), desk...) {
		c.next()
	}
	for i := range 10 {
		ch := incident(fmt.Sprintf("INC-%d", i), 1, event.StatusNew, "D1", "G1")
		ch.Incident.Severity = event.SeverityRed
		f.change(t, ch)
	}
	f.flush()
	if s := f.hub.Stats(); s.Frames != 2 || s.Subscriptions != 2 {
		t.Fatalf("stats %+v: want 2 frames for 2 subscriptions", s)
	}
	want := wall[0].next().raw
	for _, c := range wall[1:] {
		if got := c.raw(); string(got) != string(want) {
			t.Fatal("screens of one subscription got different frames")
		}
	}
}
