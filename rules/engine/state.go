package engine

import (
	"container/heap"
	"context"
	"hash/maphash"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/urbanbrain/urbanbrain/rules/lang"

	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/event"
)

// Stateful rules, on event time.
//
// State lives per street (the partition key: one consumer owns a street, so one writer) and,
// within it, per rule and group key. Each street has a clock of event time, its frontier, and
// a watermark, the frontier minus AllowedLateness. The frontier is the newest event time the
// street has seen; while the street is idle, Tick runs it on at the pace of the wall clock
// from there (see advance), never from the wall clock itself. So an event that is old by the
// wall clock — a backlog after an outage — counts, while an event older than the watermark
// is late: stateful rules ignore it (Stats().Late counts it), so what a window holds never
// depends on how late a straggler was, only on whether it was within the bound. Silence
// (absent), a held condition (for) and a closed tumbling period are acted on only once the
// watermark has passed their deadline, so an event still allowed to arrive cannot contradict
// a signal already sent. Sliding windows are checked at once, on the frontier itself.
//
// An event that moves the frontier first has the street act on what the new frontier makes
// due, as a tick at that time would have, and only then is applied. Signals raised by time
// carry the event time of their deadline (the end of the absent or for duration, the moment
// an event left the sliding window, the period's end), never the time they were noticed. So
// a street's events handed over all at once, in order, raise the same signals — ids, events,
// times — as the same events arriving live with the clock ticking between them.
//
// A street that was quiet for longer than AllowedLateness may have been cut off rather than
// silent: an event behind its watermark but not behind its newest event minus the lateness
// is an outage's backlog, and takes the clock back to that newest event (rewind) instead of
// being late. Deadlines acted on stay acted on (acted remembers how far), sliding windows
// keep what left them while the clock ran on past the street's newest event (checkWindow,
// kept) and only an event brings it back into a window, and a tumbling period already
// closed does not open again.
//
// Signals of stateful rules are returned as outputs: the state moves first, the signal is
// queued in the street's outbox and handed back with what the event (or the Tick) produced.
// The street remembers its latest events with the outputs they produced (Config.Redelivery),
// so that an event handled again — the runner resumed the partition before its outputs were
// all acknowledged — gives the same outputs and is not applied twice.

// streetMap is the streets with state, sharded to keep lookups cheap under concurrency.
type streetMap struct {
	seed   maphash.Seed
	shards [64]streetShard
	n      atomic.Int64
}

type streetShard struct {
	mu sync.Mutex
	m  map[string]*street
}

func (m *streetMap) init() { m.seed = maphash.MakeSeed() }

func (m *streetMap) shard(key string) *streetShard {
	return &m.shards[maphash.String(m.seed, key)%uint64(len(m.shards))]
}

// get returns the street's state, creating it.
func (m *streetMap) get(key string) *street {
	sh := m.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st := sh.m[key]
	if st == nil {
		if sh.m == nil {
			sh.m = make(map[string]*street)
		}
		st = &street{key: key, rules: make(map[string]*ruleState)}
		sh.m[key] = st
		m.n.Add(1)
	}
	return st
}

// lookup returns the street's state if it has any.
func (m *streetMap) lookup(key string) *street {
	sh := m.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.m[key]
}

func (m *streetMap) all() []*street {
	out := make([]*street, 0, m.n.Load())
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		for _, st := range sh.m {
			out = append(out, st)
		}
		sh.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

func (m *streetMap) len() int { return int(m.n.Load()) }

// remove takes st out of the map if it is still the state held under its key.
func (m *streetMap) remove(st *street) bool {
	sh := m.shard(st.key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.m[st.key] != st {
		return false
	}
	delete(sh.m, st.key)
	m.n.Add(-1)
	return true
}

// street is one partition key's state.
type street struct {
	mu      sync.Mutex // held while the street's state moves and its outbox is drained
	key     string
	gen     uint64    // the rule set generation rules was last reconciled with
	maxTime int64     // newest event time seen (unix ns)
	wall    int64     // the latest Tick before the event of maxTime arrived (unix ns; 0: none yet)
	clock   int64     // the frontier: maxTime, run on by Tick while the street is idle (unix ns)
	acted   int64     // the furthest frontier deadlines were acted on at (ahead of clock after a rewind)
	kept    []keptKey // sliding keys with an empty window that keep entries for a rewind
	keptDue int64     // when maxTime reaches it, some of kept can be pruned (0: none kept)
	rules   map[string]*ruleState
	outbox  []event.Signal // raised by the event or tick being handled; drained before unlock
	recent  recentEvents
	gone    bool // forgotten: out of the map, to be looked up again by whoever still holds it
}

// keptKey is a sliding key whose window is empty but which keeps entries for a rewind.
type keptKey struct {
	rule string
	rs   *ruleState
	ks   *keyState
}

// held says whether the key is still the state of its rule in st (not dropped since).
func (k keptKey) held(st *street) bool {
	return st.rules[k.rule] == k.rs && k.rs.keys[k.ks.group] == k.ks
}

// keepForRewind bounds how long a sliding key of a quiet street keeps what left its window
// for a rewind: a backlog that comes more than this after its street fell quiet still counts,
// but its windows no longer hold what came before the quiet.
const keepForRewind = int64(24 * time.Hour)

// recentEvents are a street's latest events with the outputs that handling each produced,
// oldest first overwritten. They are found by a hash of type and id, checked against the
// event kept in the ring: two events whose hashes collide only make the older one forgotten
// early.
type recentEvents struct {
	ring []recentEvent
	next int
	byID map[uint64]int32 // index into ring
}

type eventRef struct{ typ, id string }

type recentEvent struct {
	ref  eventRef
	hash uint64
	outs event.Outputs
}

var recentSeed = maphash.MakeSeed()

func (r eventRef) hash() uint64 {
	return maphash.String(recentSeed, r.id) ^ maphash.String(recentSeed, r.typ)<<1
}

func (r *recentEvents) get(ref eventRef) (event.Outputs, bool) {
	i, ok := r.byID[ref.hash()]
	if !ok || r.ring[i].ref != ref {
		return nil, false
	}
	return r.ring[i].outs, true
}

func (r *recentEvents) add(ref eventRef, outs event.Outputs, max int) {
	if r.byID == nil {
		r.byID = make(map[uint64]int32)
	}
	h := ref.hash()
	if len(r.ring) < max {
		r.byID[h] = int32(len(r.ring))
		r.ring = append(r.ring, recentEvent{ref: ref, hash: h, outs: outs})
		return
	}
	old := &r.ring[r.next]
	if i, ok := r.byID[old.hash]; ok && int(i) == r.next {
		delete(r.byID, old.hash)
	}
	*old = recentEvent{ref: ref, hash: h, outs: outs}
	r.byID[h] = int32(r.next)
	r.next = (r.next + 1) % len(r.ring)
}

// ruleState is one stateful rule's state in one street.
type ruleState struct {
	fp   string
	c    *counters
	keys map[string]*keyState
	due  deadlines
}

// keyState is one group key's state. Which fields are used depends on the rule's kind.
type keyState struct {
	group string
	next  int64        // deadline of this key's live entry in due; 0: none
	last  *event.Event // the newest event of the key (what a signal raised by time carries)
	lastT int64        // its time (unix ns)
	fired bool         // for, absent, sliding: the signal is out and not cleared
	kept  bool         // sliding: listed in street.kept
	fire  string       // the id of the key's latest fire signal (a clear raised by time takes it)

	since   int64 // for: when the condition started to hold (unix ns)
	holding bool  // for

	entries []windowEntry // sliding: in time order
	from    int           // sliding: entries[from:] are in the window; those before, kept for a rewind
	sum     float64       // sliding: sum of the window's values

	buckets []bucket // tumbling: open periods in time order
}

type windowEntry struct {
	t int64
	v float64
}

type bucket struct {
	start, end int64
	count      int
	sum        float64
	min, max   float64
	last       *event.Event
	lastT      int64
}

// deadlines is a min-heap of (time, group key). Entries go stale when a key's state changes;
// keyState.next says which entry is live, the others are skipped when popped.
type deadlines []deadline

type deadline struct {
	at  int64
	key string
}

func (d deadlines) Len() int           { return len(d) }
func (d deadlines) Less(i, j int) bool { return d[i].at < d[j].at }
func (d deadlines) Swap(i, j int)      { d[i], d[j] = d[j], d[i] }
func (d *deadlines) Push(x any)        { *d = append(*d, x.(deadline)) }
func (d *deadlines) Pop() any {
	old := *d
	x := old[len(old)-1]
	*d = old[:len(old)-1]
	return x
}

func (rs *ruleState) schedule(ks *keyState, at int64) {
	if ks.next != 0 && ks.next <= at {
		return // the live entry comes first; it reschedules when it pops
	}
	ks.next = at
	heap.Push(&rs.due, deadline{at: at, key: ks.group})
}

func (e *Engine) frontier(st *street) int64 { return st.clock }

// advance runs an idle street's clock on to the wall clock's now: it moves at the pace of the
// wall clock from the street's newest event, taken to have arrived at its own event time if
// that lies between the tick before its arrival and now, or else at the nearer of the two.
// A live street, whose events carry about the time they arrive, so follows the wall clock;
// a street whose backlog is being handed over moves at most one tick past its newest event
// between two of its events, so none of the backlog is made late; and a street that falls
// silent runs on, so its absence and for deadlines pass AllowedLateness after their time, by
// the wall clock, as they would have live. An event that arrived before any tick is taken to
// have arrived at the first tick that sees it. The clock never goes back.
func (st *street) advance(now int64) {
	if st.maxTime == 0 {
		return
	}
	if st.wall == 0 {
		st.wall = now
	}
	arrived := min(now, max(st.maxTime, st.wall))
	st.clock = max(st.clock, st.maxTime+(now-arrived))
}

func (e *Engine) lateness() int64 { return int64(e.cfg.AllowedLateness) }

// rewind takes back the run-on of a street that was quiet for longer than the allowed
// lateness: its clock goes back to its newest event, and is taken to have heard it now (so
// the next Tick does not run it on again by the length of the quiet). What the clock decided
// during the quiet stays decided — a device reported silent, a held condition completed, a
// sliding window that emptied, a tumbling period closed — and the backlog's events then act
// on that state as they would have live: a silent device's reading clears it, a window counts
// the complaints before the quiet (kept for this, see checkWindow) and the backlog's own, a
// held condition the backlog breaks clears. A tumbling period already closed stays closed:
// its events are late for that rule (apply).
func (e *Engine) rewind(st *street) {
	st.clock = st.maxTime
	st.wall = e.lastTick.Load()
	e.rewound.Add(1)
}

// handleStreet applies one event to the stateful rules of its street and appends what that
// causes to outs. It runs for every event once any stateful rule is loaded, because an event
// of any kind moves its street's clock.
func (e *Engine) handleStreet(set *ruleSet, ev *event.Event, env any, stateful []*loaded, s *scratch, outs event.Outputs) event.Outputs {
	key := ev.Area.Key()
	if len(stateful) == 0 && len(set.stateful) == 0 {
		if st := e.streets.lookup(key); st == nil {
			return outs
		}
	}
	st := e.streets.get(key)
	st.mu.Lock()
	for st.gone {
		// Forgotten between the lookup and the lock: the event starts the street afresh.
		st.mu.Unlock()
		st = e.streets.get(key)
		st.mu.Lock()
	}
	defer st.mu.Unlock()
	mark := len(outs)
	e.reconcile(st, set, s)
	ref := eventRef{ev.Type, ev.ID}
	if again, ok := st.recent.get(ref); ok {
		// Handled again: applied already. What it produced then is produced again, under
		// the same ids, for the consumers to recognise.
		return append(e.drain(set, st, outs), again...)
	}
	t := ev.Time.UnixNano()
	if late := e.lateness(); st.clock-st.maxTime > late && t < st.clock-late && t >= st.maxTime-late {
		// Behind the watermark only because the street's clock ran on while it was quiet,
		// not behind the newest event it had: the quiet was an outage, and this is its
		// backlog. The run-on is taken back, and the backlog counts as if it had come live.
		e.rewind(st)
	}
	if st.clock != 0 && t < st.clock-e.lateness() {
		if len(stateful) > 0 {
			e.late.Add(1) // behind the street's watermark
		}
	} else {
		if t > st.clock {
			// The event moves the street's clock: what is due by its time is acted on
			// before the event, as a tick at that time would have.
			st.clock = t
			s.Reused = false
			e.due(st, set, s)
			if s.Reused && env != nil {
				env, _ = s.Env(ev) // built once already, so it builds again
			}
		}
		if t >= st.maxTime {
			st.maxTime, st.wall = t, e.lastTick.Load()
			if st.keptDue != 0 && st.maxTime >= st.keptDue {
				e.pruneKept(st, set)
			}
		}
		late := false
		for _, l := range stateful {
			s.Reused = false
			late = !e.apply(st, l, ev, env, s) || late
			if s.Reused {
				env, _ = s.Env(ev) // for the next rule
			}
		}
		if late {
			e.late.Add(1) // in a tumbling period its rule has already closed
		}
	}
	e.due(st, set, s)
	outs = e.drain(set, st, outs)
	var mine event.Outputs
	if len(outs) > mark {
		mine = slices.Clone(outs[mark:])
	}
	st.recent.add(ref, mine, e.cfg.Redelivery)
	return outs
}

// Tick runs every street's clock on with the wall clock now (the wall clock in production,
// the fake clock in tests, the replayed time in a backtest): a street's clock is its newest
// event time plus the wall-clock time that has passed since that event arrived (see
// advance), so an idle street's clock keeps moving while a backlog handed over at once keeps
// its events' own times. It returns the signals stateful rules raise about that: a device
// silent for its absent duration, a condition held for its for duration without a new event,
// a tumbling period that closed, a sliding window whose events aged out — each once the
// street's watermark (its clock minus AllowedLateness) has passed its deadline, and stamped
// with the deadline. The app calls it about once a second; a clock that goes back is ignored.
//
// A tick is not an input that can be handled again: the state has moved once its outputs
// are returned, so the caller must write them (retrying as long as it takes) and not drop
// them. The error is always nil.
func (e *Engine) Tick(_ context.Context, now time.Time) (event.Outputs, error) {
	n := now.UnixNano()
	for {
		old := e.lastTick.Load()
		if n <= old {
			n = old
			break
		}
		if e.lastTick.CompareAndSwap(old, n) {
			break
		}
	}
	set := e.set.Load()
	s := e.scratch.Get().(*scratch)
	defer e.release(s)
	var outs event.Outputs
	for _, st := range e.streets.all() {
		st.mu.Lock()
		if st.gone {
			st.mu.Unlock()
			continue // forgotten since the list was taken
		}
		st.advance(n)
		e.reconcile(st, set, s)
		e.due(st, set, s)
		outs = e.drain(set, st, outs)
		st.mu.Unlock()
	}
	return outs, nil
}

// Forget drops all the state of every street for which gone is true — windows, for and
// absent keys, the clock, the events remembered for redelivery — and returns how many streets
// it dropped. The app calls it when a partition of city.events is revoked: another instance
// now owns those streets and rebuilds their state there, so this one must never again count
// their events nor fire about them on its clock (a device-silent alarm for a sensor that is
// reporting to the new owner). It must never touch a street for which gone is false; of the
// rules' statistics only Keys moves (the keys of the dropped streets are no longer held). A
// street not held is not an error: it is not counted.
//
// It is safe to call while HandleEvent and Tick run: a street is taken out under its own
// lock, and a Tick that listed it before skips it. An event of a forgotten street
// handled afterwards starts that street afresh. gone is called without any lock held.
func (e *Engine) Forget(gone func(street string) bool) int {
	n := 0
	for _, st := range e.streets.all() {
		if !gone(st.key) {
			continue
		}
		st.mu.Lock()
		if !st.gone && e.streets.remove(st) {
			for _, rs := range st.rules {
				rs.c.keys.Add(-int64(len(rs.keys)))
			}
			st.gone = true
			st.gen, st.maxTime, st.wall, st.clock, st.acted = 0, 0, 0, 0, 0
			st.kept, st.keptDue = nil, 0
			st.rules = make(map[string]*ruleState)
			st.outbox = nil // empty between handlings; dropped anyway, nothing may leak out
			st.recent = recentEvents{}
			n++
		}
		st.mu.Unlock()
	}
	return n
}

// pruneKept drops what the street's sliding windows kept for a rewind that can no longer
// take them back: its newest event moved past them. Keys left with nothing are dropped.
func (e *Engine) pruneKept(st *street, set *ruleSet) {
	st.keptDue = 0
	left := st.kept[:0]
	for _, k := range st.kept {
		l := set.byID[k.rule]
		if !k.held(st) || l == nil || l.rule.Window == nil {
			continue // dropped since
		}
		if len(k.ks.window()) > 0 {
			k.ks.kept = false // in use again: checkWindow prunes it
			continue
		}
		size := int64(l.rule.Window.Size)
		k.ks.prune(min(e.frontier(st), st.maxTime) - size)
		if len(k.ks.entries) == 0 {
			k.ks.kept = false
			k.rs.drop(k.ks)
			continue
		}
		e.noteKept(st, k.ks, size)
		left = append(left, k)
	}
	clear(st.kept[len(left):])
	st.kept = left
}

// dropKept gives up what the street's sliding windows keep for a rewind after a day of quiet
// (its newest event has not moved past the oldest of it for keepForRewind): keys whose
// window is empty are dropped.
func (e *Engine) dropKept(st *street) {
	for _, k := range st.kept {
		if !k.held(st) {
			continue // dropped since
		}
		k.ks.kept = false
		if len(k.ks.window()) == 0 {
			k.ks.entries, k.ks.from = nil, 0
			k.rs.drop(k.ks)
		}
	}
	clear(st.kept)
	st.kept, st.keptDue = st.kept[:0], 0
}

// noteKept brings forward the street's keptDue to when ks's kept entries can go.
func (e *Engine) noteKept(st *street, ks *keyState, size int64) {
	due := ks.entries[len(ks.entries)-1].t + size
	if st.keptDue == 0 || due < st.keptDue {
		st.keptDue = due
	}
}

// drain appends the street's queued signals to outs, in order.
func (e *Engine) drain(set *ruleSet, st *street, outs event.Outputs) event.Outputs {
	for i := range st.outbox {
		outs = e.output(set, outs, &st.outbox[i])
	}
	clear(st.outbox)
	st.outbox = st.outbox[:0]
	return outs
}

// reconcile brings a street's state in line with a new rule set: state of rules that are
// gone, disabled, no longer stateful or of another shape is dropped; the rest is kept and its
// deadlines recomputed, since durations may have changed.
//
// A sliding window is judged again at once, since a new condition may hold (or not) for the
// events it already has; the other kinds act at their next event or deadline.
func (e *Engine) reconcile(st *street, set *ruleSet, s *scratch) {
	if st.gen == set.gen {
		return
	}
	st.gen = set.gen
	for _, id := range sortedKeys(st.rules) {
		rs := st.rules[id]
		l := set.byID[id]
		if l == nil || !l.rule.Enabled || l.kind == "" || l.rule.Compiled().Fingerprint != rs.fp {
			rs.c.keys.Add(-int64(len(rs.keys)))
			delete(st.rules, id)
			continue
		}
		rs.due = rs.due[:0]
		for _, g := range sortedKeys(rs.keys) {
			ks := rs.keys[g]
			ks.next = 0
			if l.kind == lang.KindWindow && l.rule.Window.Kind == lang.Sliding && !l.c.quarantined.Load() {
				e.checkWindow(st, rs, l, ks, nil, nil, e.frontier(st), s)
				continue
			}
			e.rearm(rs, l, ks)
		}
	}
}

// sortedKeys returns a map's keys in order, so that what reconcile emits is deterministic.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (st *street) ruleState(l *loaded) *ruleState {
	rs := st.rules[l.rule.ID]
	if rs == nil {
		rs = &ruleState{fp: l.rule.Compiled().Fingerprint, c: l.c, keys: make(map[string]*keyState)}
		st.rules[l.rule.ID] = rs
	}
	return rs
}

func (e *Engine) newKey(rs *ruleState, l *loaded, group string) *keyState {
	if l.c.keys.Load() >= int64(e.cfg.MaxKeys) {
		l.c.overflow.Add(1)
		return nil
	}
	ks := &keyState{group: group}
	rs.keys[group] = ks
	l.c.keys.Add(1)
	return ks
}

func (rs *ruleState) drop(ks *keyState) {
	delete(rs.keys, ks.group)
	rs.c.keys.Add(-1)
}

// keep records ev as the key's newest event, reusing the key's copy.
func keep(dst **event.Event, ev *event.Event) {
	if *dst == nil {
		c := *ev
		*dst = &c
		return
	}
	**dst = *ev
}

// apply runs one stateful rule on one event that is not late for its street. It reports
// false when the event is late for this rule: it falls in a tumbling period the rule has
// already closed (after a rewind).
func (e *Engine) apply(st *street, l *loaded, ev *event.Event, env any, s *scratch) bool {
	r := l.rule
	for _, f := range r.Compiled().Filters {
		if !f.Match(ev) {
			return true // not about this rule at all (see filtersOf)
		}
	}
	l.c.evaluated.Add(1)
	p := r.Compiled().ByType[ev.Type]
	fail := func(field string, err error) {
		e.recordFailure(l, ev, &lang.EvalError{RuleID: r.ID, RuleVersion: r.Version, EventID: ev.ID, Field: field, Err: err})
	}
	out, err := lang.Run(&s.VM, p.When, env)
	if err != nil {
		fail("when", err)
		return true
	}
	holds, _ := out.(bool)
	rs := st.rules[r.ID]
	if !holds && (l.kind != lang.KindFor || rs == nil || len(rs.keys) == 0) {
		e.recordSuccess(l)
		return true
	}
	t := ev.Time.UnixNano()
	if l.kind == lang.KindWindow && r.Window.Kind == lang.Tumbling {
		size := int64(r.Window.Size)
		if bucketStart(t, size)+size+e.lateness() <= st.acted {
			e.recordSuccess(l)
			return false
		}
	}
	out, err = lang.Run(&s.VM, p.GroupBy, env)
	if err != nil {
		fail("group_by", err)
		return true
	}
	group, _ := out.(string)
	if len(group) > lang.MaxKeyBytes {
		fail("group_by", lang.PublicErrorf("group key is %d bytes, more than %d", len(group), lang.MaxKeyBytes))
		return true
	}
	var v float64
	if p.Of != nil && holds {
		out, err := lang.Run(&s.VM, p.Of, env)
		if err != nil {
			fail("window.of", err)
			return true
		}
		v, _ = out.(float64)
	}
	e.recordSuccess(l)
	if rs == nil {
		rs = st.ruleState(l)
	}
	ks := rs.keys[group]
	if ks == nil {
		if !holds {
			return true
		}
		if ks = e.newKey(rs, l, group); ks == nil {
			return true
		}
	}
	switch l.kind {
	case lang.KindFor:
		e.applyFor(st, rs, l, ks, ev, env, holds, t, s)
	case lang.KindAbsent:
		if ks.fired && t >= ks.lastT {
			// (A reading older than the one the silence is counted from, which a rewind
			// can let in, does not disprove the silence.)
			e.emit(st, l, ks, ev, env, true, ev.Time, s)
			ks.fired = false
		}
		if t >= ks.lastT {
			ks.lastT = t
			keep(&ks.last, ev)
		}
		e.rearm(rs, l, ks)
	case lang.KindWindow:
		if r.Window.Kind == lang.Tumbling {
			e.addToBucket(l, ks, ev, v, t)
			e.rearm(rs, l, ks)
			return true
		}
		e.addToWindow(l, ks, v, t, e.frontier(st)-int64(r.Window.Size))
		if t >= ks.lastT {
			ks.lastT = t
			keep(&ks.last, ev)
		}
		e.checkWindow(st, rs, l, ks, ev, env, e.frontier(st), s)
	}
	return true
}

func (e *Engine) applyFor(st *street, rs *ruleState, l *loaded, ks *keyState, ev *event.Event, env any, holds bool, t int64, s *scratch) {
	if t < ks.lastT {
		return // older than what the key already reported: the newer reading is the truth
	}
	ks.lastT = t
	keep(&ks.last, ev)
	if !holds {
		if ks.fired {
			e.emit(st, l, ks, ev, env, true, ev.Time, s)
		}
		rs.drop(ks)
		return
	}
	if !ks.holding {
		ks.holding, ks.since, ks.fired = true, t, false
	}
	if !ks.fired && t-ks.since >= int64(l.rule.For) {
		ks.fired = e.emit(st, l, ks, ev, env, false, ev.Time, s)
	}
	e.rearm(rs, l, ks)
}

// addToWindow inserts one value into a sliding window in time order; cutoff is the window's
// start (exclusive) at the street's frontier.
func (e *Engine) addToWindow(l *loaded, ks *keyState, v float64, t, cutoff int64) {
	ks.slide(cutoff)
	i := len(ks.entries)
	for i > 0 && ks.entries[i-1].t > t {
		i--
	}
	ks.entries = append(ks.entries, windowEntry{})
	copy(ks.entries[i+1:], ks.entries[i:])
	ks.entries[i] = windowEntry{t: t, v: v}
	if i < ks.from || t <= cutoff {
		ks.from++ // already out of the window (only kept, like the entries before it)
	} else {
		ks.sum += v
	}
	if n := len(ks.entries) - e.cfg.MaxWindowEvents; n > 0 {
		for j, old := range ks.entries[:n] {
			if j >= ks.from {
				ks.sum -= old.v
			}
		}
		ks.entries = append(ks.entries[:0], ks.entries[n:]...)
		ks.from = max(0, ks.from-n)
	}
}

// window is the entries in the sliding window.
func (ks *keyState) window() []windowEntry { return ks.entries[ks.from:] }

// slide moves the window's start to cutoff (exclusive): forward as time passes, back when
// an event of a backlog comes after a rewind. Entries before the start stay until prune
// drops them.
func (ks *keyState) slide(cutoff int64) {
	for ks.from > 0 && ks.entries[ks.from-1].t > cutoff {
		ks.from--
		ks.sum += ks.entries[ks.from].v
	}
	ks.advance(cutoff)
}

// advance moves the window's start forward to cutoff, never back.
func (ks *keyState) advance(cutoff int64) {
	for ks.from < len(ks.entries) && ks.entries[ks.from].t <= cutoff {
		ks.sum -= ks.entries[ks.from].v
		ks.from++
	}
	if ks.from == len(ks.entries) {
		ks.sum = 0 // no drift from float subtraction
	}
}

// prune drops the entries at or before cutoff, which no event can bring back into the window.
func (ks *keyState) prune(cutoff int64) {
	n := 0
	for n < ks.from && ks.entries[n].t <= cutoff {
		n++
	}
	if n > 0 {
		ks.entries = append(ks.entries[:0], ks.entries[n:]...)
		ks.from -= n
	}
}

func (ks *keyState) windowValues(minMax bool) lang.WindowValues {
	in := ks.window()
	w := lang.WindowValues{Count: len(in), Sum: ks.sum}
	if w.Count == 0 {
		return w
	}
	w.Avg = w.Sum / float64(w.Count)
	w.Start = time.Unix(0, in[0].t).UTC()
	w.End = time.Unix(0, in[len(in)-1].t).UTC()
	if minMax {
		w.Min, w.Max = in[0].v, in[0].v
		for _, en := range in[1:] {
			w.Min = min(w.Min, en.v)
			w.Max = max(w.Max, en.v)
		}
	}
	return w
}

// checkWindow evaluates a sliding window as of front and fires or clears on a change.
// ev and env are the event that triggered the check, or nil when time did.
func (e *Engine) checkWindow(st *street, rs *ruleState, l *loaded, ks *keyState, ev *event.Event, env any, front int64, s *scratch) {
	size := int64(l.rule.Window.Size)
	if ev == nil {
		// Time moved on, maybe by a lot (a tick a second later, a backlog's next event, a
		// replay's minute): expire one moment at a time and judge the window after each, so
		// that a fire or clear carries the event time it happened at (the moment an event
		// left the window) rather than the time it was noticed, however often time was looked at.
		for in := ks.window(); len(in) > 1 && in[0].t <= front-size; in = ks.window() {
			at := time.Unix(0, in[0].t+size).UTC()
			ks.slide(in[0].t)
			if len(ks.window()) == 0 {
				break // below: cleared at the last one's leaving
			}
			w := ks.windowValues(l.needMinMax)
			holds, err := e.having(l, w, s)
			if err != nil {
				break // recorded below
			}
			switch {
			case holds && !ks.fired:
				ks.fired = e.emitWindow(st, l, ks, nil, nil, false, at, w, s)
			case !holds && ks.fired:
				e.emitWindow(st, l, ks, nil, nil, true, at, w, s)
				ks.fired = false
			}
		}
	}
	if ev == nil {
		ks.advance(front - size) // time alone never brings back what left: see rewind
	} else {
		ks.slide(front - size)
	}
	// Entries that left the window while the street's clock ran on past its newest event are
	// kept: a backlog may yet take the clock back to that event (rewind) and count them.
	ks.prune(min(front, st.maxTime) - size)
	if len(ks.window()) == 0 {
		if ks.fired {
			e.emit(st, l, ks, nil, nil, true, time.Unix(0, min(front, ks.lastT+size)).UTC(), s)
			ks.fired = false
		}
		if len(ks.entries) == 0 {
			rs.drop(ks)
			return
		}
		// Looked at again by its next event, by pruneKept once the street's events have
		// moved past what it keeps, or by dropKept after a day of quiet.
		if !ks.kept {
			ks.kept = true
			st.kept = append(st.kept, keptKey{rule: l.rule.ID, rs: rs, ks: ks})
		}
		e.noteKept(st, ks, size)
		return
	}
	w := ks.windowValues(l.needMinMax)
	holds, err := e.having(l, w, s)
	if err != nil {
		e.recordFailure(l, ks.last, err)
	} else {
		at := time.Unix(0, front).UTC()
		if ev != nil {
			at = ev.Time
		}
		switch {
		case holds && !ks.fired:
			ks.fired = e.emitWindow(st, l, ks, ev, env, false, at, w, s)
		case !holds && ks.fired:
			e.emitWindow(st, l, ks, ev, env, true, at, w, s)
			ks.fired = false
		}
	}
	e.rearm(rs, l, ks)
}

func (e *Engine) having(l *loaded, w lang.WindowValues, s *scratch) (bool, error) {
	s.Having = lang.HavingEnv{WindowValues: w}
	out, err := lang.Run(&s.VM, l.rule.Compiled().Having, &s.Having)
	if err != nil {
		return false, &lang.EvalError{RuleID: l.rule.ID, RuleVersion: l.rule.Version, Field: "window.having", Err: err}
	}
	b, _ := out.(bool)
	return b, nil
}

// bucketStart is the start of the tumbling period of size d holding t, with periods aligned
// to midnight in Beijing (so a 1d window is a calendar day there, 1h an hour).
func bucketStart(t, d int64) int64 {
	const offset = int64(8 * time.Hour)
	x := t + offset
	b := x - ((x%d)+d)%d
	return b - offset
}

func (e *Engine) addToBucket(l *loaded, ks *keyState, ev *event.Event, v float64, t int64) {
	d := int64(l.rule.Window.Size)
	start := bucketStart(t, d)
	i := sort.Search(len(ks.buckets), func(i int) bool { return ks.buckets[i].start >= start })
	if i == len(ks.buckets) || ks.buckets[i].start != start {
		ks.buckets = append(ks.buckets, bucket{})
		copy(ks.buckets[i+1:], ks.buckets[i:])
		ks.buckets[i] = bucket{start: start, end: start + d, min: v, max: v}
	}
	b := &ks.buckets[i]
	b.count++
	b.sum += v
	b.min = min(b.min, v)
	b.max = max(b.max, v)
	if b.last == nil || t >= b.lastT {
		b.lastT = t
		keep(&b.last, ev)
	}
}

// rearm schedules the key's next deadline, if it has one.
func (e *Engine) rearm(rs *ruleState, l *loaded, ks *keyState) {
	late := e.lateness()
	switch l.kind {
	case lang.KindFor:
		if ks.holding && !ks.fired {
			rs.schedule(ks, ks.since+int64(l.rule.For)+late)
		}
	case lang.KindAbsent:
		if !ks.fired {
			rs.schedule(ks, ks.lastT+int64(l.rule.Absent)+late)
		}
	case lang.KindWindow:
		if l.rule.Window.Kind == lang.Tumbling {
			if len(ks.buckets) > 0 {
				rs.schedule(ks, ks.buckets[0].end+late)
			}
		} else if in := ks.window(); len(in) > 0 {
			rs.schedule(ks, in[0].t+int64(l.rule.Window.Size))
		}
	}
}

// due acts on every deadline of the street's stateful rules that its clock has reached.
func (e *Engine) due(st *street, set *ruleSet, s *scratch) {
	front := e.frontier(st)
	st.acted = max(st.acted, front)
	if st.keptDue != 0 && front >= st.keptDue+keepForRewind {
		e.dropKept(st)
	}
	late := e.lateness()
	for _, l := range set.stateful {
		rs := st.rules[l.rule.ID]
		if rs == nil || l.c.quarantined.Load() {
			continue
		}
		for len(rs.due) > 0 && rs.due[0].at <= front {
			d := heap.Pop(&rs.due).(deadline)
			ks := rs.keys[d.key]
			if ks == nil || ks.next != d.at {
				continue // stale
			}
			ks.next = 0
			switch l.kind {
			// A deadline acted on is not armed again when the signal could not be built (the
			// rule's raise failed, and is counted): it would be due at once, for ever. The
			// key's next event arms it again.
			case lang.KindFor:
				if ks.holding && !ks.fired && ks.since+int64(l.rule.For)+late <= front {
					at := time.Unix(0, ks.since+int64(l.rule.For)).UTC()
					if ks.fired = e.emit(st, l, ks, ks.last, nil, false, at, s); !ks.fired {
						continue
					}
				}
				e.rearm(rs, l, ks)
			case lang.KindAbsent:
				if !ks.fired && ks.lastT+int64(l.rule.Absent)+late <= front {
					at := time.Unix(0, ks.lastT+int64(l.rule.Absent)).UTC()
					if ks.fired = e.emit(st, l, ks, ks.last, nil, false, at, s); !ks.fired {
						continue
					}
				}
				e.rearm(rs, l, ks)
			case lang.KindWindow:
				if l.rule.Window.Kind == lang.Sliding {
					e.checkWindow(st, rs, l, ks, nil, nil, front, s)
					continue
				}
				for len(ks.buckets) > 0 && ks.buckets[0].end+late <= front {
					e.closeBucket(st, l, ks, ks.buckets[0], s)
					ks.buckets[0] = bucket{}
					ks.buckets = ks.buckets[1:]
				}
				if len(ks.buckets) == 0 {
					rs.drop(ks)
					continue
				}
				e.rearm(rs, l, ks)
			}
		}
	}
}

func (e *Engine) closeBucket(st *street, l *loaded, ks *keyState, b bucket, s *scratch) {
	w := lang.WindowValues{Count: b.count, Sum: b.sum, Min: b.min, Max: b.max,
		Start: time.Unix(0, b.start).UTC(), End: time.Unix(0, b.end).UTC()}
	if b.count > 0 {
		w.Avg = b.sum / float64(b.count)
	}
	holds, err := e.having(l, w, s)
	if err != nil {
		e.recordFailure(l, b.last, err)
		return
	}
	if holds {
		e.emitWindow(st, l, ks, b.last, nil, false, w.End, w, s)
	}
}

// emit queues a fire or clear signal of a stateful rule, built from ev (with env, its
// environment) or, when ev is nil, from the key's newest event. It reports whether the
// signal was built; a rule whose raise fields fail is counted as failing.
func (e *Engine) emit(st *street, l *loaded, ks *keyState, ev *event.Event, env any, clear bool, at time.Time, s *scratch) bool {
	return e.emitWindow(st, l, ks, ev, env, clear, at, lang.WindowValues{}, s)
}

func (e *Engine) emitWindow(st *street, l *loaded, ks *keyState, ev *event.Event, env any, clear bool, at time.Time, w lang.WindowValues, s *scratch) bool {
	byTime := ev == nil
	if ev == nil {
		ev = ks.last
		env = nil
	}
	if ev == nil {
		return false
	}
	if env == nil {
		var err error
		s.Reused = true
		if env, err = s.Env(ev); err != nil {
			e.log.Warn("stateful rule: stored event has no environment", zap.String("rule_id", l.rule.ID), zap.Error(err))
			return false
		}
	}
	c := lang.CommonOf(env)
	c.Window = w
	r := l.rule
	id := r.ID + ":" + ev.ID
	switch {
	case clear && byTime && ks.fire != "":
		// The clear of the fire it ends, whatever event the key holds now: a straggler older
		// than the key's newest can fill a window again after its clear, and its own clear
		// must not repeat the first one's id.
		id = ks.fire + ":clear"
	case clear:
		id += ":clear"
	}
	sig, err := build(&s.Scratch, r, r.Compiled().ByType[ev.Type], env, ev, id, r.ID+":"+ks.group, at)
	c.Window = lang.WindowValues{}
	if err != nil {
		e.recordFailure(l, ev, err)
		return false
	}
	if clear {
		sig.Clear, sig.Shadow = true, true
	} else if !s.rebuild && !e.cfg.NoExplanations {
		sig.Explanation = l.explain.explain(ev.Type, env)
		explainState(sig.Explanation, l, ks, at, w)
	}
	if !clear {
		ks.fire = id
	}
	st.outbox = append(st.outbox, sig)
	return true
}

// Horizon is how far back in event time the enabled stateful rules can look: the longest
// window, held duration or silence, plus the allowed lateness. An instance that takes over a
// partition rebuilds its rule state by handing the engine that partition's events of the last
// Horizon again (their signals were already raised by the previous owner, so it discards
// them); 0 means no rule keeps state.
func (e *Engine) Horizon() time.Duration {
	var longest time.Duration
	for _, l := range e.set.Load().stateful {
		r := l.rule
		d := time.Duration(r.For)
		if r.Window != nil {
			d = max(d, time.Duration(r.Window.Size))
		}
		longest = max(longest, d, time.Duration(r.Absent))
	}
	if longest == 0 {
		return 0
	}
	return longest + e.cfg.AllowedLateness
}
