package incidents

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/event"
)

// Config configures a Service. The zero value is usable.
type Config struct {
	// Now is the clock (default time.Now); tests inject a fake one. Records carry its time in UTC.
	Now func() time.Time
	// NewID returns a new incident id for a street. It must embed the street so that
	// event.IncidentStreet recovers it (default "INC-<street>-<time-ordered base32>").
	NewID func(street string) string
	// CommandMemory is how many command outcomes each street remembers to answer a repeated
	// command id with its first outcome (default 10000).
	CommandMemory int
	// Policy is the correlation and SLA policy. The zero value joins by correlation key only
	// and gives every stage 72 h around the clock; the application uses DefaultPolicy or a file.
	Policy Policy
}

func (c *Config) setDefaults() {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.NewID == nil {
		c.NewID = newIDFunc(c.Now)
	}
	if c.CommandMemory == 0 {
		c.CommandMemory = 10000
	}
	c.Policy.setDefaults()
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if c.CommandMemory < 0 {
		errs = append(errs, fmt.Errorf("incidents: CommandMemory %d is negative", c.CommandMemory))
	}
	if err := c.Policy.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("incidents: policy: %w", err))
	}
	return errors.Join(errs...)
}

// Service holds the open and closed incidents of the streets it owns. Closed incidents stay in
// memory with their linked ids, so a replay of their signals stays dropped; a retention limit
// belongs with the full loop (重办 needs them too).
//
// Its handlers return the records they produce as event.Outputs, in the order they must be
// written; the composition root's routes bind each payload type to its topic. An output's
// payload shares memory with the service's state (immutable snapshots: a change replaces them,
// never writes into them), so it may be encoded on another goroutine while handling goes on.
type Service struct {
	cfg Config
	log *zap.Logger

	mu     sync.RWMutex
	shards map[string]*shard // by street

	cal    calendar  // the policy's working hours
	clocks deadlines // next SLA deadline of every running clock

	stats struct {
		opened, linked, evidence, duplicate, shadow, invalid atomic.Uint64
		commands, rejected                                   atomic.Uint64
		spatial, ticks, slaFired                             atomic.Uint64
	}
}

// New returns a Service.
func New(cfg Config, log *zap.Logger) (*Service, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	cal, err := cfg.Policy.SLA.WorkingHours.compile()
	if err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, log: log, shards: make(map[string]*shard), cal: cal,
		clocks: deadlines{armed: make(map[string]time.Time)}}, nil
}

// Stats counts what the service has done since it started.
type Stats struct {
	Opened    uint64 // incidents opened
	Linked    uint64 // reports linked to an open incident
	Evidence  uint64 // further rules' signals on events an incident holds (action signal)
	Duplicate uint64 // signals dropped as already linked (replays)
	Shadow    uint64 // shadow-mode signals ignored
	Invalid   uint64 // signals without an id, skipped
	Commands  uint64 // commands evaluated (repeats excluded)
	Rejected  uint64 // commands refused with a domain error
	Spatial   uint64 // reports joined by place and time rather than correlation key
	Ticks     uint64 // SLA commands Tick produced
	SLAFired  uint64 // SLA warnings and breaches applied
}

// Stats returns a snapshot of the counters.
func (s *Service) Stats() Stats {
	return Stats{
		Opened:    s.stats.opened.Load(),
		Linked:    s.stats.linked.Load(),
		Evidence:  s.stats.evidence.Load(),
		Duplicate: s.stats.duplicate.Load(),
		Shadow:    s.stats.shadow.Load(),
		Invalid:   s.stats.invalid.Load(),
		Commands:  s.stats.commands.Load(),
		Rejected:  s.stats.rejected.Load(),
		Spatial:   s.stats.spatial.Load(),
		Ticks:     s.stats.ticks.Load(),
		SLAFired:  s.stats.slaFired.Load(),
	}
}

// Get returns an incident by id, open or closed. The result shares memory with the service:
// treat it as read-only.
func (s *Service) Get(id string) (event.Incident, bool) {
	sh := s.lookupShard(streetOf(id))
	if sh == nil {
		return event.Incident{}, false
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	inc, ok := sh.incidents[id]
	if !ok {
		return event.Incident{}, false
	}
	return view(inc), true
}

// Open returns every incident that is not closed, oldest first. The results are read-only.
func (s *Service) Open() []event.Incident {
	s.mu.RLock()
	shards := make([]*shard, 0, len(s.shards))
	for _, sh := range s.shards {
		shards = append(shards, sh)
	}
	s.mu.RUnlock()

	var open []event.Incident
	for _, sh := range shards {
		sh.mu.Lock()
		for _, inc := range sh.incidents {
			if inc.Status.Open() {
				open = append(open, view(inc))
			}
		}
		sh.mu.Unlock()
	}
	slices.SortFunc(open, func(a, b event.Incident) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return open
}

// view returns a copy whose Reports cannot be appended to in place: an append by the caller
// must not write into the backing array the next link will use.
func view(inc *event.Incident) event.Incident {
	v := *inc
	v.Reports = slices.Clip(v.Reports)
	return v
}

// streetOf is the street that owns an incident id (its partition key).
func streetOf(id string) string {
	if st := event.IncidentStreet(id); st != "" {
		return st
	}
	return event.UnknownStreet
}

func (s *Service) lookupShard(street string) *shard {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.shards[street]
}

func (s *Service) shard(street string) *shard {
	if sh := s.lookupShard(street); sh != nil {
		return sh
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sh, ok := s.shards[street]
	if !ok {
		sh = newShard(s.cfg.CommandMemory, s.cfg.Policy.Correlation)
		s.shards[street] = sh
	}
	return sh
}

// change appends one changelog record to out, after the incident's live alert, if any, has
// followed the change. Its CloudEvent id "<incident>/<version>" lets
// every projection upsert it idempotently.
func change(out *event.Outputs, inc *event.Incident, ch event.Change) {
	followAlert(inc, ch.At) // alerts.go: a live alert follows every change
	*out = append(*out, event.Output{
		Key:  inc.Area.Key(),
		ID:   fmt.Sprintf("%s/%d", inc.ID, inc.Version),
		Time: ch.At,
		Data: event.IncidentChange{Incident: view(inc), Change: ch},
	})
}

// audit appends one audit record to out.
func audit(out *event.Outputs, rec event.AuditRecord) {
	*out = append(*out, event.Output{Key: streetOf(rec.IncidentID), ID: rec.ID, Time: rec.At, Data: rec})
}

// result appends a command's outcome to out. Its id is the command's, which the HTTP caller
// waits for; id stands in for a command without one (a record needs an id to be read).
func result(out *event.Outputs, res event.CommandResult, id string) {
	if res.CommandID != "" {
		id = res.CommandID
	}
	*out = append(*out, event.Output{Key: streetOf(res.IncidentID), ID: id, Time: res.At, Data: res})
}
