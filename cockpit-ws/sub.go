package cockpit

import (
	"cmp"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/event"
)

// feed is which websocket a subscription belongs to.
type feed int

const (
	feedCockpit feed = iota // /ws/cockpit: everything in scope, narrowed by a filter
	feedWorker              // /ws/worker: a grid worker's own tasks
)

func (f feed) String() string {
	if f == feedWorker {
		return "worker"
	}
	return "cockpit"
}

// viewSpec is how a subscription's incidents are rendered: masked for the role, positions
// in the asked coordinate system. It never changes after the subscription is made, so
// writers may use it without the hub's lock.
type viewSpec struct {
	claims   auth.Claims
	masked   bool
	coordsys string
}

// masker returns the masked copy of an incident version, made once and shared (Hub.maskedLocked).
type masker func(*event.Incident) *event.Incident

// mask returns inc as the subscription's role may see it: the shared masked copy unless the
// role may see personal data.
func (v viewSpec) mask(inc *event.Incident, masked masker) *event.Incident {
	if !v.masked {
		return inc
	}
	return masked(inc)
}

// coords returns inc with its positions in the subscription's coordinate system; inc itself
// is never modified.
func (v viewSpec) coords(inc *event.Incident) *event.Incident {
	if v.coordsys == event.CoordWGS84 {
		return inc
	}
	out := *inc
	convert := func(p *event.Point) *event.Point {
		if p == nil {
			return nil
		}
		q, err := city.FromWGS84(v.coordsys, *p)
		if err != nil { // cannot happen: the coordinate system was validated
			q = *p
		}
		return &q
	}
	out.Location = convert(inc.Location)
	if inc.Reports != nil {
		out.Reports = slices.Clone(inc.Reports)
		for i := range out.Reports {
			out.Reports[i].Location = convert(out.Reports[i].Location)
		}
	}
	return &out
}

// subscription is one distinct stream: a feed, a scope (role, district, grids; the subject
// too on the worker feed), a filter and a view. Every client with the same key shares it, so
// each delta is numbered and encoded once however many screens show it. It outlives its
// clients by Config.IdleTTL so that a screen which reconnects can resume.
type subscription struct {
	key    string
	kpiKey string // feed, scope and filter: what the KPIs depend on
	feed   feed
	filter Filter
	view   viewSpec
	epoch  string
	// owner is the Claims.Key of whoever made it, charged for it by the per-subject limit;
	// reserved says whether it counts against the share kept for the command centre.
	owner    string
	reserved bool

	// Guarded by the hub's lock.
	seq       uint64
	pending   map[string]pendingChange // by incident id: the latest state wins within a tick
	changes   int                      // changelog records merged into pending
	history   *history
	conns     map[*conn]struct{}
	idleSince time.Time
	snap      *snapshotJob // the snapshot at snap.seq, shared by clients joining then
}

// pendingChange is an incident's net change in the current tick: its latest state, or its
// removal with the reason; and what the subscription held of it at the last delta (nil if
// nothing), so that a snapshot taken mid-tick can show exactly the state at that seq.
type pendingChange struct {
	inc    *event.Incident
	reason string
	before *event.Incident
}

func subKey(f feed, c auth.Claims, r Request) (key, kpiKey string) {
	grids := slices.Clone(c.Grids)
	slices.Sort(grids)
	// The scope is spelled out from the claims themselves, not from a reading of CanSee, so
	// two callers share a subscription only if they would see exactly the same.
	scope := f.String() + "|role=" + c.Role + "|district=" + c.District + "|grids=" + strings.Join(grids, ",")
	if f == feedWorker {
		scope += "|subject=" + c.Subject
	}
	kpiKey = scope + "|" + r.Filter.key()
	return kpiKey + "|cs=" + r.CoordSys, kpiKey
}

func newSubscription(key, kpiKey string, f feed, c auth.Claims, r Request, epoch string, cfg Config) *subscription {
	return &subscription{
		key:      key,
		kpiKey:   kpiKey,
		feed:     f,
		filter:   r.Filter,
		view:     viewSpec{claims: c, masked: !auth.Can(c.Role, auth.PermSeePersonalData), coordsys: r.CoordSys},
		epoch:    epoch,
		owner:    c.Key(),
		reserved: reserved(c.Role),
		pending:  make(map[string]pendingChange),
		history:  newHistory(cfg.HistorySize, cfg.HistoryBytes),
		conns:    make(map[*conn]struct{}),
	}
}

// match reports whether inc belongs to the subscription.
func (s *subscription) match(inc *event.Incident) bool {
	c := s.view.claims
	if s.feed == feedWorker {
		// A worker's tasks: whatever is dispatched to them (a fallback dispatch may send them
		// to a neighbouring grid), and everything in their own grids.
		return c.CanSeeIncident(*inc)
	}
	return c.CanSeeIncident(*inc) && s.filter.match(inc)
}

// note records a change of the open set: prev is the incident's previous open state (nil if
// it was not open), next its new open state (nil if it closed).
func (s *subscription) note(id string, prev, next *event.Incident) {
	had := prev != nil && s.match(prev)
	var p pendingChange
	switch {
	case next != nil && s.match(next):
		p = pendingChange{inc: next}
	case had:
		p.reason = RemoveLeft
		if next == nil {
			p.reason = RemoveClosed
		}
	default:
		return
	}
	// The first change of the tick tells what the subscription held at the last delta: prev,
	// if it matched. (An earlier change in the tick that was not noted matched neither before
	// nor after, so the subscription held nothing then.)
	if old, ok := s.pending[id]; ok {
		p.before = old.before
	} else if had {
		p.before = prev
	}
	s.pending[id] = p
	s.changes++
}

// flush turns the pending changes into the next delta frame, numbers it, keeps it in the
// history and returns it; nil if nothing changed in the tick.
func (s *subscription) flush(now time.Time, masked masker, log *zap.Logger) *websocket.PreparedMessage {
	if len(s.pending) == 0 {
		return nil
	}
	ids := make([]string, 0, len(s.pending))
	for id := range s.pending {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	f := deltaFrame{Type: FrameDelta, Seq: s.seq + 1, Changes: s.changes, At: now.UTC(),
		Upsert: []*event.Incident{}, Remove: []removal{}}
	for _, id := range ids {
		p := s.pending[id]
		if p.inc == nil {
			f.Remove = append(f.Remove, removal{ID: id, Reason: p.reason})
			continue
		}
		f.Upsert = append(f.Upsert, s.view.coords(s.view.mask(p.inc, masked)))
	}
	clear(s.pending)
	s.changes = 0
	pm, size, err := prepare(f)
	if err != nil {
		// Bad data (a NaN coordinate, a year past 9999) in some incident: it leaves the
		// subscription, exactly as a snapshot would leave it out, and the rest goes on.
		var keep []*event.Incident
		for _, inc := range f.Upsert {
			if _, err := json.Marshal(inc); err != nil {
				log.Error("cockpit: incident cannot be encoded, removed from the feed", zap.String("incident", inc.ID), zap.Error(err))
				f.Remove = append(f.Remove, removal{ID: inc.ID, Reason: RemoveLeft})
				continue
			}
			keep = append(keep, inc)
		}
		f.Upsert = keep
		if pm, size, err = prepare(f); err != nil { // cannot happen: each part encoded alone
			log.Error("cockpit: delta frame cannot be encoded", zap.Error(err))
			return nil
		}
	}
	s.seq++
	s.history.add(s.seq, pm, size)
	s.snap = nil // its seq is past; let its memory go
	return pm
}

// snapshotJob returns the snapshot at the current seq: the open incidents the subscription
// selects, as they were at its last delta (the changes of the running tick come with the
// next delta). Every client joining before that delta shares it; it is encoded once, later,
// by the first writer that needs it, outside the hub's lock.
func (s *subscription) snapshotJob(open map[string]*event.Incident, masked masker, now time.Time) *snapshotJob {
	if s.snap != nil && s.snap.frame.Seq == s.seq && s.snap.frame.Epoch == s.epoch {
		return s.snap
	}
	var incs []*event.Incident
	for id, inc := range open {
		if _, changed := s.pending[id]; !changed && s.match(inc) {
			incs = append(incs, s.view.mask(inc, masked))
		}
	}
	for _, p := range s.pending {
		if p.before != nil {
			incs = append(incs, s.view.mask(p.before, masked))
		}
	}
	s.snap = &snapshotJob{view: s.view, frame: snapshotFrame{
		Type: FrameSnapshot, Feed: s.feed.String(), Epoch: s.epoch, Seq: s.seq, CoordSys: s.view.coordsys,
		Filter: s.filter, At: now.UTC(), Incidents: incs,
	}}
	return s.snap
}

// snapshotJob is a snapshot waiting to be encoded. Its incidents are immutable values,
// already masked for the view; message encodes them once for every client that joined at
// this seq.
type snapshotJob struct {
	view  viewSpec
	once  sync.Once
	frame snapshotFrame
	pm    *websocket.PreparedMessage
	err   error
}

func (j *snapshotJob) message(log *zap.Logger) (*websocket.PreparedMessage, error) {
	j.once.Do(func() {
		incs := make([]*event.Incident, 0, len(j.frame.Incidents))
		for _, inc := range j.frame.Incidents {
			incs = append(incs, j.view.coords(inc))
		}
		slices.SortFunc(incs, func(a, b *event.Incident) int { return cmp.Compare(a.ID, b.ID) })
		j.frame.Incidents = incs
		j.pm, _, j.err = prepare(j.frame)
		if j.err != nil {
			j.frame.Incidents = slices.DeleteFunc(incs, func(inc *event.Incident) bool {
				_, err := json.Marshal(inc)
				if err != nil {
					log.Error("cockpit: incident cannot be encoded, left out of the snapshot", zap.String("incident", inc.ID), zap.Error(err))
				}
				return err != nil
			})
			j.pm, _, j.err = prepare(j.frame)
		}
		j.frame.Incidents = nil // the encoded frame is all that is needed now
	})
	return j.pm, j.err
}
