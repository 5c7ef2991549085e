package cockpit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
)

// Close codes the hub sends besides the standard ones.
const (
	// CloseSlowConsumer: the client did not read fast enough and its queue filled up. It
	// should reconnect and resume (or take a fresh snapshot).
	CloseSlowConsumer = 4000
)

// Verifier checks a token; *auth.Issuer is one.
type Verifier interface {
	Verify(token string) (auth.Claims, error)
}

var errTooManySubscriptions = errors.New("too many distinct subscriptions on this server; try again later")

// Hub holds the open incidents, the subscriptions and the connected screens.
type Hub struct {
	cfg      Config
	verifier Verifier
	log      *zap.Logger
	upgrader websocket.Upgrader
	origins  map[string]bool // normalised AllowedOrigins
	epoch    string          // this process's; subscription epochs extend it

	mu       sync.Mutex
	seq      uint64 // changes applied since start
	open     map[string]*event.Incident
	closed   *tombstones
	stages   *stageLog
	subs     map[string]*subscription
	madeSubs uint64
	conns    map[*conn]struct{}
	dropped  uint64        // slow clients closed
	timeouts atomic.Uint64 // clients closed because a write did not finish within WriteTimeout
	frames   uint64        // delta frames encoded
	kpiCache map[string]*websocket.PreparedMessage
	mapCache map[string]*websocket.PreparedMessage // by coordsys
	masked   map[string]maskedCopy                 // by incident id, made on first use
	shut     bool
	wg       sync.WaitGroup // one per connection handler

	events *eventStats // own lock: fed at the event rate
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
	var e [6]byte
	_, _ = rand.Read(e[:])
	h := &Hub{
		cfg:      cfg,
		verifier: verifier,
		log:      log,
		origins:  origins,
		epoch:    hex.EncodeToString(e[:]),
		open:     make(map[string]*event.Incident),
		closed:   newTombstones(cfg.TombstoneSize),
		stages:   newStageLog(cfg.StageRecords, cfg.StageLimits),
		subs:     make(map[string]*subscription),
		conns:    make(map[*conn]struct{}),
		kpiCache: make(map[string]*websocket.PreparedMessage),
		mapCache: make(map[string]*websocket.PreparedMessage),
		masked:   make(map[string]maskedCopy),
		events:   newEventStats(),
	}
	h.upgrader = websocket.Upgrader{
		HandshakeTimeout: cfg.WriteTimeout,
		// Idle screens do not each hold a write buffer between messages.
		WriteBufferPool: &sync.Pool{},
		// serve has checked the origin already, answering in the API's error format.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	return h, nil
}

// Stats is a point-in-time view of the hub, for metrics.
type Stats struct {
	Connections   int
	Subscriptions int
	OpenIncidents int
	Changes       uint64 // changelog records that changed the open set
	Frames        uint64 // delta frames encoded (once per subscription and tick)
	SlowDropped   uint64 // clients closed because their queue was full
	WriteTimeouts uint64 // clients closed because a write did not finish in time
}

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	return Stats{Connections: len(h.conns), Subscriptions: len(h.subs), OpenIncidents: len(h.open),
		Changes: h.seq, Frames: h.frames, SlowDropped: h.dropped, WriteTimeouts: h.timeouts.Load()}
}

// HandleIncidentChange applies one record of the city.incidents changelog. Replays and
// older versions change nothing. The change reaches the screens with the next tick (Run).
// It never blocks on a client. The hub keeps ch.Incident; the caller must not modify it
// afterwards.
func (h *Hub) HandleIncidentChange(_ context.Context, ch event.IncidentChange) error {
	if ch.Incident.ID == "" {
		h.log.Warn("incident change without an incident id: skipped")
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.applyLocked(ch)
	return nil
}

// Restore applies a changelog record while the state is rebuilt at start-up. It is the same
// as HandleIncidentChange: before clients connect there is nobody to tell.
func (h *Hub) Restore(ch event.IncidentChange) {
	if ch.Incident.ID == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.applyLocked(ch)
}

// HandleEvent counts one validated event of city.events for the KPIs (events per second by
// source, sensors online). Events are placed in time by when ingest accepted them, so a
// replay of old events does not look like a flood.
func (h *Hub) HandleEvent(_ context.Context, ev event.Event) error {
	h.events.observe(ev, h.cfg.Now())
	return nil
}

func (h *Hub) applyLocked(ch event.IncidentChange) {
	inc := ch.Incident
	prev, wasOpen := h.open[inc.ID]
	if wasOpen && inc.Version <= prev.Version {
		return
	}
	if v, ok := h.closed.get(inc.ID); ok && inc.Version <= v {
		return
	}
	closing := !inc.Status.Open()
	if closing && !wasOpen {
		h.closed.put(inc.ID, inc.Version) // nothing to remove, but remember the close
		return
	}
	next := &inc
	delete(h.masked, inc.ID)
	h.stages.observe(prev, next, ch.Change, h.cfg.Now())
	if closing {
		delete(h.open, inc.ID)
		h.closed.put(inc.ID, inc.Version)
		next = nil
	} else {
		h.open[inc.ID] = next
	}
	h.seq++
	for _, s := range h.subs {
		s.note(inc.ID, prev, next)
	}
}

// maskedCopy is the masked copy of one incident version.
type maskedCopy struct{ of, masked *event.Incident }

// maskedLocked returns inc with personal data masked, made once per incident version and
// shared by every masked subscription, delta and snapshot (masking deep-copies and scans
// text: it is worth doing once). Versions that are no longer current are masked each time.
func (h *Hub) maskedLocked(inc *event.Incident) *event.Incident {
	if m, ok := h.masked[inc.ID]; ok && m.of == inc {
		return m.masked
	}
	m := auth.MaskIncident(*inc, auth.Claims{}) // no role: everything personal is masked
	if h.open[inc.ID] == inc {
		h.masked[inc.ID] = maskedCopy{of: inc, masked: &m}
	}
	return &m
}

// Run sends the coalesced deltas every FlushInterval and the KPIs every KPIInterval until
// ctx ends, then closes every connection (Close).
func (h *Hub) Run(ctx context.Context) error {
	flush := time.NewTicker(h.cfg.FlushInterval)
	defer flush.Stop()
	kpi := time.NewTicker(h.cfg.KPIInterval)
	defer kpi.Stop()
	for {
		select {
		case <-ctx.Done():
			return h.Close()
		case <-flush.C:
			h.flush()
		case <-kpi.C:
			h.publishKPIs()
		}
	}
}

// flush ends a tick: every subscription with changes sends one delta frame, and
// subscriptions idle for longer than IdleTTL are forgotten.
func (h *Hub) flush() {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.cfg.Now()
	for key, s := range h.subs {
		if len(s.conns) == 0 && now.Sub(s.idleSince) > h.cfg.IdleTTL {
			delete(h.subs, key)
			continue
		}
		h.flushSubLocked(s, now)
	}
}

func (h *Hub) flushSubLocked(s *subscription, now time.Time) {
	pm := s.flush(now, h.maskedLocked, h.log)
	if pm == nil {
		return
	}
	h.frames++
	for c := range s.conns {
		h.enqueueLocked(c, outbound{pm: pm})
	}
}

// enqueueLocked hands out to c's writer without ever blocking: a client whose queue is full
// is too slow and is disconnected.
func (h *Hub) enqueueLocked(c *conn, out outbound) {
	select {
	case c.queue <- out:
	default:
		h.dropped++
		h.dropLocked(c, CloseSlowConsumer, "slow consumer: queue full")
		h.log.Warn("cockpit client too slow, disconnected", zap.String("subject", c.claims.Subject),
			zap.String("role", c.claims.Role), zap.Int("queue", cap(c.queue)))
	}
}

// dropLocked unregisters c so it gets no more frames, and tells its writer to close it.
func (h *Hub) dropLocked(c *conn, code int, reason string) {
	h.leaveLocked(c)
	delete(h.conns, c)
	c.stop(code, reason)
}

func (h *Hub) leaveLocked(c *conn) {
	s := c.sub
	if s == nil {
		return
	}
	delete(s.conns, c)
	if len(s.conns) == 0 {
		s.idleSince = h.cfg.Now()
	}
	c.sub = nil
}

// subscribeLocked moves c onto the subscription of r and queues what starts its stream:
// a resume (the missed deltas) or a snapshot, then the map and KPI frames if asked.
func (h *Hub) subscribeLocked(c *conn, r Request) error {
	now := h.cfg.Now()
	key, kpiKey := subKey(c.feed, c.claims, r)
	s := h.subs[key]
	if s == nil {
		if len(h.subs) >= h.cfg.MaxSubscriptions && !h.evictIdleLocked() {
			return errTooManySubscriptions
		}
		h.madeSubs++
		s = newSubscription(key, kpiKey, c.feed, c.claims, r, h.epoch+"-"+strconv.FormatUint(h.madeSubs, 36), h.cfg)
		h.subs[key] = s
	}
	var x extra
	if r.Map {
		pm, err := h.mapLocked(r.CoordSys)
		if err != nil {
			return err
		}
		x.post = append(x.post, pm)
	}
	if c.sub != s {
		h.leaveLocked(c)
		c.sub = s
		s.conns[c] = struct{}{}
	}
	c.kpi = r.KPI

	reload := ""
	if res := r.Resume; res != nil {
		if res.Epoch != s.epoch {
			reload = ReloadEpochChanged
		} else if msgs, ok := s.history.after(res.Seq, s.seq); ok {
			pm, _, err := prepare(resumedFrame{Type: FrameResumed, Epoch: s.epoch, Seq: res.Seq, Last: s.seq})
			if err != nil {
				return err
			}
			x.pre = append([]*websocket.PreparedMessage{pm}, msgs...)
		} else if res.Seq > s.seq {
			reload = ReloadUnknownSeq
		} else {
			reload = ReloadHistoryExceeded
		}
	}
	if r.Resume == nil || reload != "" {
		if reload != "" {
			pm, _, err := prepare(reloadFrame{Type: FrameReload, Reason: reload})
			if err != nil {
				return err
			}
			x.pre = append(x.pre, pm)
		}
		x.snap = s.snapshotJob(h.open, h.maskedLocked, now)
	}
	if r.KPI {
		pm, err := h.kpiLocked(s, now)
		if err != nil {
			return err
		}
		x.post = append(x.post, pm)
	}
	h.enqueueLocked(c, outbound{extra: &x})
	return nil
}

// evictIdleLocked forgets the subscription idle for longest; false if none is idle.
func (h *Hub) evictIdleLocked() bool {
	var oldest *subscription
	for _, s := range h.subs {
		if len(s.conns) == 0 && (oldest == nil || s.idleSince.Before(oldest.idleSince)) {
			oldest = s
		}
	}
	if oldest == nil {
		return false
	}
	delete(h.subs, oldest.key)
	return true
}

var errNoMap = errors.New("no city map is loaded on this server")

// mapLocked returns the grid layer in coordsys, encoded once per coordinate system.
func (h *Hub) mapLocked(coordsys string) (*websocket.PreparedMessage, error) {
	if pm := h.mapCache[coordsys]; pm != nil {
		return pm, nil
	}
	if h.cfg.City == nil {
		return nil, errNoMap
	}
	grids, err := h.cfg.City.GridsGeoJSONIn(coordsys)
	if err != nil {
		return nil, fmt.Errorf("grid layer: %w", err)
	}
	names := make(map[string]string)
	for _, c := range h.cfg.City.Categories() {
		names[c.Code] = c.Name
	}
	pm, _, err := prepare(mapFrame{Type: FrameMap, CoordSys: coordsys, Grids: json.RawMessage(grids), Categories: names})
	if err != nil {
		return nil, err
	}
	h.mapCache[coordsys] = pm
	return pm, nil
}

// kpiLocked returns the latest KPI frame of s's scope and filter, computing it if this
// tick has none yet.
func (h *Hub) kpiLocked(s *subscription, now time.Time) (*websocket.PreparedMessage, error) {
	if pm := h.kpiCache[s.kpiKey]; pm != nil {
		return pm, nil
	}
	k := h.computeKPIsLocked([]*subscription{s}, now)[0]
	pm, _, err := prepare(kpiFrame{Type: FrameKPI, At: now.UTC(), KPI: k})
	if err != nil {
		return nil, err
	}
	h.kpiCache[s.kpiKey] = pm
	return pm, nil
}

// publishKPIs computes the KPIs once per distinct scope and filter and sends them to every
// client that asked for KPIs.
func (h *Hub) publishKPIs() {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.cfg.Now()
	clear(h.kpiCache)
	var subs []*subscription
	wanted := map[string]bool{}
	for c := range h.conns {
		if c.kpi && c.sub != nil && !wanted[c.sub.kpiKey] {
			wanted[c.sub.kpiKey] = true
			subs = append(subs, c.sub)
		}
	}
	if len(subs) == 0 {
		return
	}
	for i, k := range h.computeKPIsLocked(subs, now) {
		pm, _, err := prepare(kpiFrame{Type: FrameKPI, At: now.UTC(), KPI: k})
		if err != nil {
			h.log.Error("cockpit KPIs", zap.Error(err))
			return
		}
		h.kpiCache[subs[i].kpiKey] = pm
	}
	for c := range h.conns {
		if c.kpi && c.sub != nil {
			h.enqueueLocked(c, outbound{pm: h.kpiCache[c.sub.kpiKey]})
		}
	}
}

// sendErrorLocked tells c that its message was refused; its subscription is unchanged.
func (h *Hub) sendErrorLocked(c *conn, code, msg string) {
	pm, _, err := prepare(errorFrame{Type: FrameError, Code: code, Error: msg})
	if err != nil {
		return
	}
	h.enqueueLocked(c, outbound{pm: pm})
}

// ServeHTTP is /ws/cockpit: it checks the origin, the token and the subscription in the
// query before upgrading, then streams until the client goes or the hub closes.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.serve(w, r, feedCockpit) }

// WorkerHandler is /ws/worker: a grid worker's own tasks (dispatched to them, or in their
// grids), with the same snapshot, deltas and resume as /ws/cockpit. Only the worker role may
// open it.
func (h *Hub) WorkerHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.serve(w, r, feedWorker) })
}

func (h *Hub) serve(w http.ResponseWriter, r *http.Request, f feed) {
	if !h.originAllowed(r) {
		auth.WriteError(w, http.StatusForbidden, auth.CodeForbidden, "origin not allowed")
		return
	}
	perm := auth.PermCockpit
	if f == feedWorker {
		perm = auth.PermReadIncidents
	}
	claims, ok := auth.Authorize(w, r, h.verifier, perm)
	if !ok {
		return
	}
	if f == feedWorker && claims.Role != auth.RoleWorker {
		auth.WriteError(w, http.StatusForbidden, auth.CodeForbidden, "the worker feed is for grid workers; use /ws/cockpit")
		return
	}
	req, err := requestFromQuery(r.URL.Query())
	if err == nil {
		err = checkFeed(f, req)
	}
	if err == nil && req.Map && h.cfg.City == nil {
		err = errNoMap
	}
	if err != nil {
		auth.WriteError(w, http.StatusBadRequest, ErrCodeInvalidRequest, err.Error())
		return
	}
	h.mu.Lock()
	shut := h.shut
	h.mu.Unlock()
	if shut {
		auth.WriteError(w, http.StatusServiceUnavailable, ErrCodeUnavailable, "server shutting down")
		return
	}
	ws, err := h.upgrader.Upgrade(w, r, nil) // answers the client itself on failure
	if err != nil {
		h.log.Debug("cockpit upgrade failed", zap.Error(err))
		return
	}
	if tc, ok := ws.NetConn().(*net.TCPConn); ok && h.cfg.SendBuffer > 0 {
		_ = tc.SetWriteBuffer(h.cfg.SendBuffer) // see Config.SendBuffer
	}
	c := newConn(ws, claims, f, h.cfg.QueueSize)

	h.mu.Lock()
	if h.shut {
		h.mu.Unlock()
		_ = ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"), deadline(h.cfg.WriteTimeout))
		_ = ws.Close()
		return
	}
	h.conns[c] = struct{}{}
	if err := h.subscribeLocked(c, req); err != nil {
		h.log.Warn("cockpit subscribe failed", zap.String("subject", claims.Subject), zap.Error(err))
		h.dropLocked(c, websocket.CloseTryAgainLater, "subscription refused")
	}
	h.wg.Add(1)
	h.mu.Unlock()
	defer h.wg.Done()

	h.log.Debug("cockpit client connected", zap.String("feed", f.String()), zap.String("subject", claims.Subject),
		zap.String("role", claims.Role))
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		h.writeLoop(c)
	}()
	h.readLoop(c)
	c.stop(0, "")
	<-writerDone

	h.mu.Lock()
	h.leaveLocked(c)
	delete(h.conns, c)
	h.mu.Unlock()
	h.log.Debug("cockpit client gone", zap.String("subject", claims.Subject), zap.Int("close_code", c.code))
}

// checkFeed refuses what a feed does not offer: the worker feed has no filter, map or KPIs.
func checkFeed(f feed, r Request) error {
	if f != feedWorker {
		return nil
	}
	if r.Filter.key() != (Filter{}).key() || r.Map || r.KPI {
		return errors.New("the worker feed takes no filter, map or kpi: it carries the worker's own tasks")
	}
	return nil
}

// resubscribe handles a subscribe message: c moves to the new subscription.
func (h *Hub) resubscribe(c *conn, r Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.conns[c]; !ok {
		return // dropped meanwhile
	}
	if err := h.subscribeLocked(c, r); err != nil {
		h.sendErrorLocked(c, ErrCodeUnavailable, err.Error())
	}
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
