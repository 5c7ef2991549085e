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
	"unicode/utf8"

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

var errTooManySubscriptions = &limitError{websocket.CloseTryAgainLater, "too many distinct subscriptions on this server; try again later"}

// limitError is a connection or subscription refused by a limit, with the close code that
// refuses it at the handshake (its message is the close reason, and the error frame's text).
type limitError struct {
	code int
	msg  string
}

func (e *limitError) Error() string { return e.msg }

// reserved reports whether role may use the share of the hub kept for the command centre
// (Config.ReservedShare): the desks that act on incidents must never be locked out by
// read-only screens.
func reserved(role auth.Role) bool {
	return role == auth.RoleAdmin || role == auth.RoleSupervisor || role == auth.RoleOperator
}

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
	// What the limits count (Config.MaxConnections and the rest), by Claims.Key.
	subjectConns map[string]int
	lowConns     int // connections of roles without the reservation
	subjectSubs  map[string]int
	lowSubs      int           // subscriptions made by roles without the reservation
	refused      uint64        // connections and subscriptions refused by a limit
	histBytes    int           // delta frames kept for resuming, all subscriptions, at the last tick
	dropped      uint64        // slow clients closed
	timeouts     atomic.Uint64 // clients closed because a write did not finish within WriteTimeout
	frames       uint64        // delta frames encoded
	kpiCache     map[string]*websocket.PreparedMessage
	mapCache     map[string]*websocket.PreparedMessage // by coordsys
	masked       map[string]maskedCopy                 // by incident id, made on first use
	shut         bool
	wg           sync.WaitGroup // one per connection handler

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

		subjectConns: make(map[string]int),
		subjectSubs:  make(map[string]int),
		kpiCache:     make(map[string]*websocket.PreparedMessage),
		mapCache:     make(map[string]*websocket.PreparedMessage),
		masked:       make(map[string]maskedCopy),
		events:       newEventStats(),
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
	Refused       uint64 // connections and subscriptions refused by a limit
	HistoryBytes  int    // delta frames kept for resuming, at the last tick
}

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	return Stats{Connections: len(h.conns), Subscriptions: len(h.subs), OpenIncidents: len(h.open),
		Changes: h.seq, Frames: h.frames, SlowDropped: h.dropped, WriteTimeouts: h.timeouts.Load(),
		Refused: h.refused, HistoryBytes: h.histBytes}
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
func (h *Hub) HandleEvent(ctx context.Context, ev event.Event) error {
	return h.HandleSeen(ctx, SeenOf(ev))
}

// HandleSeen is HandleEvent for what the KPIs read of the event (the route decodes no more).
func (h *Hub) HandleSeen(_ context.Context, ev Seen) error {
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

// flush ends a tick: every subscription with changes sends one delta frame, subscriptions
// idle for longer than IdleTTL are forgotten, and the histories are held to HistoryBudget.
func (h *Hub) flush() {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.cfg.Now()
	total := 0
	for _, s := range h.subs {
		if len(s.conns) == 0 && now.Sub(s.idleSince) > h.cfg.IdleTTL {
			h.removeSubLocked(s)
			continue
		}
		h.flushSubLocked(s, now)
		if len(s.conns) == 0 {
			s.snap = nil // nobody is waiting for it; a joining client makes a new one
		}
		total += s.history.bytes
	}
	if total > h.cfg.HistoryBudget {
		// Every subscription above an equal share gives up its oldest frames: a resume
		// further back than that becomes a reload, which is always correct.
		share := h.cfg.HistoryBudget / len(h.subs)
		total = 0
		for _, s := range h.subs {
			s.history.trim(share)
			total += s.history.bytes
		}
	}
	h.histBytes = total
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
	h.unregisterLocked(c)
	c.stop(code, reason)
}

// admitConnLocked checks the connection limits for a new connection of claims.
func (h *Hub) admitConnLocked(claims auth.Claims) error {
	switch {
	case h.subjectConns[claims.Key()] >= h.cfg.SubjectConnections:
		return &limitError{websocket.ClosePolicyViolation,
			fmt.Sprintf("this token already holds %d connections, the most one token may", h.cfg.SubjectConnections)}
	case len(h.conns) >= h.cfg.MaxConnections:
		return &limitError{websocket.CloseTryAgainLater, "the server holds as many connections as it may; try again later"}
	case !reserved(claims.Role) && h.lowConns >= h.cfg.shareOf(h.cfg.MaxConnections):
		return &limitError{websocket.CloseTryAgainLater,
			fmt.Sprintf("the connections open to role %s are all in use; try again later", claims.Role)}
	}
	return nil
}

func (h *Hub) registerLocked(c *conn) {
	h.conns[c] = struct{}{}
	h.subjectConns[c.claims.Key()]++
	if !reserved(c.claims.Role) {
		h.lowConns++
	}
}

// unregisterLocked takes c off its subscription and out of the counts; a second call does
// nothing.
func (h *Hub) unregisterLocked(c *conn) {
	h.leaveLocked(c)
	if _, ok := h.conns[c]; !ok {
		return
	}
	delete(h.conns, c)
	key := c.claims.Key()
	if h.subjectConns[key]--; h.subjectConns[key] <= 0 {
		delete(h.subjectConns, key)
	}
	if !reserved(c.claims.Role) {
		h.lowConns--
	}
}

// admitSubLocked makes room for a new subscription of claims, forgetting an idle one if
// that is what a limit needs, or says which limit refuses it.
func (h *Hub) admitSubLocked(claims auth.Claims) error {
	key := claims.Key()
	if h.subjectSubs[key] >= h.cfg.SubjectSubscriptions &&
		!h.evictIdleLocked(func(s *subscription) bool { return s.owner == key }) {
		return &limitError{websocket.ClosePolicyViolation,
			fmt.Sprintf("this token already holds %d subscriptions, the most one token may; use fewer filters", h.cfg.SubjectSubscriptions)}
	}
	if !reserved(claims.Role) && h.lowSubs >= h.cfg.shareOf(h.cfg.MaxSubscriptions) &&
		!h.evictIdleLocked(func(s *subscription) bool { return !s.reserved }) {
		return &limitError{websocket.CloseTryAgainLater,
			fmt.Sprintf("the subscriptions open to role %s are all in use; try again later, or use a common filter", claims.Role)}
	}
	if len(h.subs) >= h.cfg.MaxSubscriptions && !h.evictIdleLocked(func(*subscription) bool { return true }) {
		return errTooManySubscriptions
	}
	return nil
}

func (h *Hub) addSubLocked(s *subscription) {
	h.subs[s.key] = s
	h.subjectSubs[s.owner]++
	if !s.reserved {
		h.lowSubs++
	}
}

func (h *Hub) removeSubLocked(s *subscription) {
	delete(h.subs, s.key)
	if h.subjectSubs[s.owner]--; h.subjectSubs[s.owner] <= 0 {
		delete(h.subjectSubs, s.owner)
	}
	if !s.reserved {
		h.lowSubs--
	}
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
		if err := h.admitSubLocked(c.claims); err != nil {
			h.refused++
			return err
		}
		h.madeSubs++
		s = newSubscription(key, kpiKey, c.feed, c.claims, r, h.epoch+"-"+strconv.FormatUint(h.madeSubs, 36), h.cfg)
		h.addSubLocked(s)
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

// evictIdleLocked forgets the subscription idle for longest among those which selects;
// false if none of them is idle.
func (h *Hub) evictIdleLocked(which func(*subscription) bool) bool {
	var oldest *subscription
	for _, s := range h.subs {
		if len(s.conns) == 0 && which(s) && (oldest == nil || s.idleSince.Before(oldest.idleSince)) {
			oldest = s
		}
	}
	if oldest == nil {
		return false
	}
	h.removeSubLocked(oldest)
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
// query before upgrading, then streams until the client goes or the hub closes. Being a
// websocket route, it accepts the token as ?access_token= (auth.AcceptQueryToken).
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	auth.AcceptQueryToken(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.serve(w, r, feedCockpit) })).ServeHTTP(w, r)
}

// WorkerHandler is /ws/worker: a grid worker's own tasks (dispatched to them, or in their
// grids), with the same snapshot, deltas and resume as /ws/cockpit. Only the worker role may
// open it; like /ws/cockpit it accepts the token as ?access_token=.
func (h *Hub) WorkerHandler() http.Handler {
	return auth.AcceptQueryToken(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.serve(w, r, feedWorker) }))
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
	// The HTTP server's read and write timeouts bound requests; a websocket lives for hours
	// and sets its own deadline on every read and write (readLoop, writeLoop).
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
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
	if err := h.admitConnLocked(claims); err != nil {
		h.refused++
		h.mu.Unlock()
		h.log.Warn("cockpit connection refused", zap.String("subject", claims.Subject), zap.String("role", claims.Role), zap.Error(err))
		le := err.(*limitError)
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(le.code, closeReason(le.msg)), deadline(h.cfg.WriteTimeout))
		_ = ws.Close()
		return
	}
	h.registerLocked(c)
	if err := h.subscribeLocked(c, req); err != nil {
		h.log.Warn("cockpit subscribe failed", zap.String("subject", claims.Subject), zap.Error(err))
		code, reason := websocket.CloseTryAgainLater, "subscription refused"
		if le, ok := errors.AsType[*limitError](err); ok {
			code, reason = le.code, closeReason(le.msg)
		}
		h.dropLocked(c, code, reason)
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
	h.unregisterLocked(c)
	h.mu.Unlock()
	h.log.Debug("cockpit client gone", zap.String("subject", claims.Subject), zap.Int("close_code", c.code))
}

// closeReason fits msg in a close frame (123 bytes of reason), cutting at a rune boundary.
func closeReason(msg string) string {
	if len(msg) <= 123 {
		return msg
	}
	cut := 123
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut]
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
