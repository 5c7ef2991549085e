package cockpit

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
)

// Close codes the hub sends besides the standard ones.
const (
	// CloseSlowConsumer: the client did not read fast enough and its queue filled up. It
	// should reconnect and take a fresh snapshot.
	CloseSlowConsumer = 4000
)

// Verifier checks a token; *auth.Issuer is one.
type Verifier interface {
	Verify(token string) (auth.Claims, error)
}

// Hub holds the open incidents and the connected cockpit screens.
type Hub struct {
	cfg      Config
	verifier Verifier
	log      *zap.Logger
	upgrader websocket.Upgrader
	origins  map[string]bool // normalised AllowedOrigins
	epoch    string

	mu      sync.Mutex
	seq     uint64
	open    map[string]event.Incident
	closed  *tombstones
	history *history
	conns   map[*conn]struct{}
	dropped uint64 // slow clients closed
	shut    bool
	wg      sync.WaitGroup // one per connection handler
}

// New returns a Hub. verifier checks the tokens of connecting clients.
func New(cfg Config, verifier Verifier, log *zap.Logger) (*Hub, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cockpit config: %w", err)
	}
	if verifier == nil {
		return nil, errors.New("cockpit: verifier is nil")
	}
	if log == nil {
		log = zap.NewNop()
	}
	origins := make(map[string]bool, len(cfg.AllowedOrigins))
	for _, o := range cfg.AllowedOrigins {
		n, _ := normalizeOrigin(o) // validated above
		origins[n] = true
	}
	var e [8]byte
	_, _ = rand.Read(e[:])
	h := &Hub{
		cfg:      cfg,
		verifier: verifier,
		log:      log,
		origins:  origins,
		epoch:    hex.EncodeToString(e[:]),
		open:     make(map[string]event.Incident),
		closed:   newTombstones(cfg.TombstoneSize),
		history:  newHistory(cfg.HistorySize),
		conns:    make(map[*conn]struct{}),
	}
	h.upgrader = websocket.Upgrader{
		HandshakeTimeout: cfg.WriteTimeout,
		// Idle screens do not each hold a write buffer between messages.
		WriteBufferPool: &sync.Pool{},
		// ServeHTTP has checked the origin already, answering in the API's error format.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	return h, nil
}

// Stats is a point-in-time view of the hub, for metrics.
type Stats struct {
	Connections   int
	OpenIncidents int
	Seq           uint64 // number of the last change
	SlowDropped   uint64 // clients closed because their queue was full
}

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	return Stats{Connections: len(h.conns), OpenIncidents: len(h.open), Seq: h.seq, SlowDropped: h.dropped}
}

// HandleIncidentChange applies one record of the city.incidents changelog and pushes the
// change to every connected screen. Replays and older versions change nothing and send
// nothing. It never blocks on a client: a client whose queue is full is disconnected.
// The hub keeps ch.Incident; the caller must not modify it afterwards.
func (h *Hub) HandleIncidentChange(_ context.Context, ch event.IncidentChange) error {
	if ch.Incident.ID == "" {
		h.log.Warn("incident change without an incident id: skipped")
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.publishLocked(ch.Incident)
	return nil
}

// Restore applies a changelog record while the state is rebuilt at start-up, before clients
// connect: nothing is numbered or sent. Should a client already be connected, the change is
// published as by HandleIncidentChange so its stream stays whole.
func (h *Hub) Restore(ch event.IncidentChange) {
	if ch.Incident.ID == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.conns) > 0 {
		h.publishLocked(ch.Incident)
		return
	}
	if d := h.diffLocked(ch.Incident); d != nil {
		h.applyLocked(d)
	}
}

// diffLocked returns the delta inc makes to the open set, or nil if it changes nothing: an
// older or repeated version, or the closing of an incident that was not open.
func (h *Hub) diffLocked(inc event.Incident) *delta {
	prev, wasOpen := h.open[inc.ID]
	if wasOpen && inc.Version <= prev.Version {
		return nil
	}
	if v, ok := h.closed.get(inc.ID); ok && inc.Version <= v {
		return nil
	}
	d := &delta{op: OpUpsert, inc: inc}
	if wasOpen {
		area := prev.Area
		d.prevArea = &area
	}
	if !inc.Status.Open() {
		if !wasOpen {
			h.closed.put(inc.ID, inc.Version) // nothing to remove, but remember the close
			return nil
		}
		d.op = OpRemove
	}
	return d
}

func (h *Hub) applyLocked(d *delta) {
	if d.op == OpRemove {
		delete(h.open, d.inc.ID)
		h.closed.put(d.inc.ID, d.inc.Version)
		return
	}
	h.open[d.inc.ID] = d.inc
}

func (h *Hub) publishLocked(inc event.Incident) {
	d := h.diffLocked(inc)
	if d == nil {
		return
	}
	d.seq = h.seq + 1
	// Encode before changing anything: an incident that cannot be encoded (a NaN coordinate)
	// is bad data, skipped without leaving a hole in the numbering.
	if _, err := d.frame(viewFull, auth.Claims{}); err != nil {
		h.log.Error("incident change skipped", zap.String("incident", inc.ID), zap.Int64("version", inc.Version), zap.Error(err))
		return
	}
	h.applyLocked(d)
	h.seq = d.seq
	h.history.add(d)
	for c := range h.conns {
		pm, err := d.frame(d.viewFor(c.claims, c.seeAll), c.claims)
		if err != nil { // cannot happen once the full view encoded; never send a hole
			h.dropLocked(c, websocket.CloseInternalServerErr, "internal error")
			h.log.Error("cockpit frame", zap.Error(err))
			continue
		}
		select {
		case c.queue <- pm:
		default:
			h.dropped++
			h.dropLocked(c, CloseSlowConsumer, "slow consumer: queue full")
			h.log.Warn("cockpit client too slow, disconnected", zap.String("subject", c.claims.Subject),
				zap.String("role", c.claims.Role), zap.Int("queue", cap(c.queue)), zap.Uint64("seq", d.seq))
		}
	}
}

// dropLocked unregisters c so it gets no more frames, and tells its writer to close it.
func (h *Hub) dropLocked(c *conn, code int, reason string) {
	delete(h.conns, c)
	c.stop(code, reason)
}

// ServeHTTP is /ws/cockpit: it checks the origin and the token before upgrading, then
// streams a snapshot and the deltas until the client goes or the hub closes.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.originAllowed(r) {
		auth.WriteError(w, http.StatusForbidden, auth.CodeForbidden, "origin not allowed")
		return
	}
	claims, ok := auth.Authorize(w, r, h.verifier, auth.PermCockpit)
	if !ok {
		return
	}
	h.mu.Lock()
	shut := h.shut
	h.mu.Unlock()
	if shut {
		auth.WriteError(w, http.StatusServiceUnavailable, "unavailable", "server shutting down")
		return
	}
	ws, err := h.upgrader.Upgrade(w, r, nil) // answers the client itself on failure
	if err != nil {
		h.log.Debug("cockpit upgrade failed", zap.Error(err))
		return
	}
	c := newConn(ws, claims, h.cfg.QueueSize)

	// Snapshot and subscription under one lock: every change is either in the snapshot or
	// in the queue, never both, never neither.
	h.mu.Lock()
	if h.shut {
		h.mu.Unlock()
		_ = ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"), deadline(h.cfg.WriteTimeout))
		_ = ws.Close()
		return
	}
	snap := make([]event.Incident, 0, len(h.open))
	for _, inc := range h.open {
		if claims.CanSee(inc.Area) {
			snap = append(snap, inc)
		}
	}
	seq := h.seq
	h.conns[c] = struct{}{}
	h.wg.Add(1)
	h.mu.Unlock()
	defer h.wg.Done()

	h.log.Debug("cockpit client connected", zap.String("subject", claims.Subject), zap.String("role", claims.Role),
		zap.Uint64("seq", seq), zap.Int("incidents", len(snap)))
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		h.writeLoop(c, snap, seq)
	}()
	h.readLoop(c)
	c.stop(0, "")
	<-writerDone

	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
	h.log.Debug("cockpit client gone", zap.String("subject", claims.Subject), zap.Int("close_code", c.code))
}

func (h *Hub) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || h.origins["*"] {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if len(h.origins) == 0 {
		return strings.EqualFold(u.Host, r.Host)
	}
	return h.origins[strings.ToLower(u.Scheme+"://"+u.Host)]
}

// snapshotMessage encodes the first message of a connection, masked for its caller.
func (h *Hub) snapshotMessage(c *conn, snap []event.Incident, seq uint64) ([]byte, error) {
	if !c.seeAll {
		for i := range snap {
			snap[i] = auth.MaskIncident(snap[i], c.claims)
		}
	}
	slices.SortFunc(snap, func(a, b event.Incident) int { return cmp.Compare(a.ID, b.ID) })
	return json.Marshal(snapshotFrame{Type: "snapshot", Seq: seq, Epoch: h.epoch, Incidents: snap})
}

// Run waits for ctx to end, then closes every connection (Close).
func (h *Hub) Run(ctx context.Context) error {
	<-ctx.Done()
	return h.Close()
}

// Close sends every client a going-away close frame, refuses new connections and waits for
// the connection goroutines to end. It is safe to call more than once.
func (h *Hub) Close() error {
	h.mu.Lock()
	h.shut = true
	for c := range h.conns {
		h.dropLocked(c, websocket.CloseGoingAway, "server shutting down")
	}
	h.mu.Unlock()
	h.wg.Wait()
	return nil
}
