package simulate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/google/uuid"

	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/event"
)

// Sink receives the simulator's records: topic is one of event.TopicIngest*, key the
// producer's natural key (device, ticket or camera id), value a structured CloudEvent.
type Sink interface {
	Send(ctx context.Context, topic string, key string, value []byte) error
}

// Flusher is implemented by sinks that buffer (HTTPSink): the simulator flushes after each
// burst, so buffering never delays events by more than one tick.
type Flusher interface {
	Flush(ctx context.Context) error
}

// Mix weighs the three sources. Zero everywhere means the default: mostly sensor readings.
type Mix struct {
	Sensor  float64 `json:"sensor" yaml:"sensor"`
	Hotline float64 `json:"hotline" yaml:"hotline"`
	Video   float64 `json:"video" yaml:"video"`
}

// DefaultMix is roughly what a mid-sized city's command centre sees.
var DefaultMix = Mix{Sensor: 0.75, Hotline: 0.10, Video: 0.15}

// Config of a Simulator.
type Config struct {
	Rate     float64       // events per second, all sources together
	Duration time.Duration // 0 = until ctx is done
	Limit    int           // stop after this many events; 0 = no limit
	Seed     int64         // content is reproducible from the seed; ids are always fresh
	Mix      Mix

	Sensors int // size of the sensor fleet; default 4 per grid
	Cameras int // number of AI cameras; default 1 per grid

	// AlarmChance is the chance that a reading starts an alarm excursion of 2–10 minutes on
	// its device; default 0.002. SilenceChance is the chance that a device goes silent for
	// 5–20 minutes after a reading; default 0.0005.
	AlarmChance   float64
	SilenceChance float64
	// RepeatChance is the chance that a ticket or detection is about a problem already
	// reported (and that a new one will be reported again); default 0.3.
	RepeatChance float64
	// Invalid is the fraction of records that are deliberately bad (malformed JSON, unknown
	// type, missing fields, impossible coordinates, invalid UTF-8) to exercise the
	// dead-letter path; default 0.
	Invalid float64

	// MaxConsecutiveErrors stops Run after that many failed sends in a row; default 20.
	MaxConsecutiveErrors int

	// MaxCatchUp is how much schedule a generator that fell behind may make up in a burst
	// (default 1 s); debt beyond it is dropped and reported as Progress.Skipped.
	MaxCatchUp time.Duration

	// Now is the clock events are stamped with; default time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults(grids int) {
	if c.Mix == (Mix{}) {
		c.Mix = DefaultMix
	}
	if c.Sensors == 0 {
		c.Sensors = 4 * grids
	}
	if c.Cameras == 0 {
		c.Cameras = grids
	}
	if c.AlarmChance == 0 {
		c.AlarmChance = 0.002
	}
	if c.SilenceChance == 0 {
		c.SilenceChance = 0.0005
	}
	if c.RepeatChance == 0 {
		c.RepeatChance = 0.3
	}
	if c.MaxConsecutiveErrors == 0 {
		c.MaxConsecutiveErrors = 20
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MaxCatchUp == 0 {
		c.MaxCatchUp = time.Second
	}
}

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if !(c.Rate > 0) || math.IsInf(c.Rate, 0) {
		errs = append(errs, fmt.Errorf("rate %v: must be a positive number", c.Rate))
	}
	if c.Duration < 0 {
		errs = append(errs, fmt.Errorf("duration %v: must not be negative", c.Duration))
	}
	if c.Limit < 0 {
		errs = append(errs, fmt.Errorf("limit %d: must not be negative", c.Limit))
	}
	if c.Mix.Sensor < 0 || c.Mix.Hotline < 0 || c.Mix.Video < 0 {
		errs = append(errs, fmt.Errorf("mix %+v: weights must not be negative", c.Mix))
	}
	if c.Sensors < 0 || c.Cameras < 0 {
		errs = append(errs, errors.New("sensors and cameras must not be negative"))
	}
	if c.Mix.Sensor > 0 && c.Sensors == 0 || c.Mix.Video > 0 && c.Cameras == 0 {
		errs = append(errs, errors.New("a source with a weight needs devices"))
	}
	for name, p := range map[string]float64{"alarm chance": c.AlarmChance, "silence chance": c.SilenceChance,
		"repeat chance": c.RepeatChance, "invalid": c.Invalid} {
		if p < 0 || p > 1 {
			errs = append(errs, fmt.Errorf("%s %v: want a probability in [0, 1]", name, p))
		}
	}
	if c.MaxCatchUp < 0 {
		errs = append(errs, fmt.Errorf("max catch-up %v: must not be negative", c.MaxCatchUp))
	}
	if c.MaxConsecutiveErrors < 0 {
		errs = append(errs, fmt.Errorf("max consecutive errors %d: must not be negative", c.MaxConsecutiveErrors))
	}
	return errors.Join(errs...)
}

// Stats counts what a simulator has sent (Invalid records count only as Invalid).
type Stats struct {
	Sensor, Hotline, Video, Invalid int64
	Errors                          int64 // failed sends
}

// Simulator produces traffic for one city map. Run it once; Stats may be read meanwhile.
type Simulator struct {
	cfg  Config
	sink Sink
	log  *zap.Logger

	// Owned by Run's goroutine.
	rng           *rand.Rand
	grids         []city.Grid
	sensors       []*device
	cameras       []*camera
	camerasByGrid map[string][]*camera
	problems      []*problem
	ticketRun     string // distinguishes this run's ticket numbers from another run's
	ticketSeq     int

	sent    [3]atomic.Int64 // by source: sensor, hotline, video
	invalid atomic.Int64
	errs    atomic.Int64

	started, stopped atomic.Int64 // unix nanoseconds of Run's start and end
	unsent           atomic.Int64 // produced, then refused by the sink because the run ended
	skipped          atomic.Int64 // events dropped from the schedule (too far behind)
	behind           atomic.Int64 // events due but not yet produced, at the last burst
}

const (
	srcSensor = iota
	srcHotline
	srcVideo
)

// New builds a simulator for m that sends to sink. The sensor and camera fleet is placed from
// the seed, so two simulators with the same seed have the same devices.
func New(cfg Config, m *city.Map, sink Sink, log *zap.Logger) (*Simulator, error) {
	if m == nil || sink == nil {
		return nil, errors.New("simulate: map and sink are required")
	}
	if log == nil {
		log = zap.NewNop()
	}
	grids := m.Grids()
	if len(grids) == 0 {
		return nil, errors.New("simulate: the map has no grids")
	}
	cfg.setDefaults(len(grids))
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("simulate: %w", err)
	}
	seed := uint64(cfg.Seed)
	s := &Simulator{
		cfg:           cfg,
		sink:          sink,
		log:           log,
		rng:           rand.New(rand.NewPCG(seed, seed^0x5deece66d)),
		grids:         grids,
		camerasByGrid: map[string][]*camera{},
		ticketRun:     strings.ToUpper(uuid.NewString()[:6]),
	}
	s.sensors = placeSensors(s.rng, grids, cfg.Sensors)
	s.cameras = placeCameras(s.rng, grids, cfg.Cameras)
	for _, c := range s.cameras {
		s.camerasByGrid[c.grid.Code] = append(s.camerasByGrid[c.grid.Code], c)
	}
	return s, nil
}

// Stats returns what has been sent so far.
func (s *Simulator) Stats() Stats {
	return Stats{
		Sensor: s.sent[srcSensor].Load(), Hotline: s.sent[srcHotline].Load(), Video: s.sent[srcVideo].Load(),
		Invalid: s.invalid.Load(), Errors: s.errs.Load(),
	}
}

// Run produces events at Rate until ctx is done, Duration has passed or Limit events were
// produced, and returns nil then. It returns an error only when the sink keeps failing
// (MaxConsecutiveErrors sends in a row).
//
// Events follow a schedule (event i is due at i/Rate after the start) and are produced in
// bursts of up to Rate/50, each flushed if the sink buffers (Flusher). When the generator
// falls behind — the sink blocks (backpressure) or the CPU cannot encode fast enough — it
// catches up, by at most MaxCatchUp of schedule; older debt is dropped and counted as
// Progress.Skipped, so a short stall does not lower the long-run rate but a slow sink cannot
// make it send in a flood. Before returning, Run waits (up to 30 s) for an asynchronous sink
// (Waiter) to settle what it has in flight, so Progress counts are final.
func (s *Simulator) Run(ctx context.Context) error {
	runCtx := ctx
	if s.cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.Duration)
		defer cancel()
	}
	burst := max(1, int64(math.Ceil(s.cfg.Rate/50)))
	maxDebt := max(burst, int64(s.cfg.Rate*s.cfg.MaxCatchUp.Seconds()))
	s.log.Info("simulator started", zap.Float64("rate", s.cfg.Rate), zap.Duration("duration", s.cfg.Duration),
		zap.Int("sensors", len(s.sensors)), zap.Int("cameras", len(s.cameras)), zap.Int64("seed", s.cfg.Seed))
	defer func() {
		st := s.Stats()
		s.log.Info("simulator stopped", zap.Int64("sensor", st.Sensor), zap.Int64("hotline", st.Hotline),
			zap.Int64("video", st.Video), zap.Int64("invalid", st.Invalid), zap.Int64("errors", st.Errors))
	}()
	defer s.settle(runCtx)
	start := time.Now()
	s.started.Store(start.UnixNano())
	defer func() { s.stopped.Store(time.Now().UnixNano()) }()
	var produced, skipped int64 // skipped: schedule debt dropped beyond maxDebt
	failing := 0
	for {
		if s.cfg.Limit > 0 && produced >= int64(s.cfg.Limit) {
			return s.flush(ctx, &failing)
		}
		// Events due so far: the first at once, then one every 1/Rate.
		due := int64(time.Since(start).Seconds()*s.cfg.Rate) + 1 - produced - skipped
		if due > maxDebt {
			skipped += due - maxDebt
			s.skipped.Store(skipped)
			due = maxDebt
		}
		s.behind.Store(max(0, due-burst))
		need := burst
		if s.cfg.Limit > 0 {
			need = min(need, int64(s.cfg.Limit)-produced)
		}
		if due < need {
			// Wait until a whole burst is due; a burst that would only be due after the
			// deadline is not sent, so a run never exceeds Rate × Duration + 1.
			wait := time.Until(start.Add(time.Duration(float64(produced+skipped+need-1) / s.cfg.Rate * float64(time.Second))))
			if dl, ok := ctx.Deadline(); ok && time.Now().Add(wait).After(dl) {
				<-ctx.Done()
				return nil
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			continue
		}
		n := min(due, burst)
		if s.cfg.Limit > 0 {
			n = min(n, int64(s.cfg.Limit)-produced)
		}
		for range n {
			topic, key, value, err := s.next()
			produced++
			if err != nil {
				return err // encoding our own structs cannot fail; if it does, it is a bug
			}
			if err := s.sink.Send(ctx, topic, key, value); err != nil {
				if ctx.Err() != nil {
					s.unsent.Add(1) // the run ended while the sink had no room for it
					return nil
				}
				if err := s.failed(err, &failing); err != nil {
					return err
				}
				continue
			}
			failing = 0
		}
		if err := s.flush(ctx, &failing); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// settle flushes a buffering sink and waits for an asynchronous one to settle what is in
// flight, even when ctx is done (the run's end), so that the counts are final.
func (s *Simulator) settle(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if f, ok := s.sink.(Flusher); ok {
		if err := f.Flush(ctx); err != nil {
			s.errs.Add(1)
			s.log.Warn("simulator: final flush failed", zap.Error(err))
		}
	}
	if w, ok := s.sink.(Waiter); ok {
		if err := w.Wait(ctx); err != nil {
			s.log.Warn("simulator: records still in flight at the end", zap.Error(err))
		}
	}
}

func (s *Simulator) flush(ctx context.Context, failing *int) error {
	f, ok := s.sink.(Flusher)
	if !ok {
		return nil
	}
	if err := f.Flush(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return s.failed(err, failing)
	}
	return nil
}

// failed counts a failed send, logs the first of a run of failures, and gives up after
// MaxConsecutiveErrors in a row.
func (s *Simulator) failed(err error, failing *int) error {
	s.errs.Add(1)
	*failing++
	if *failing == 1 {
		s.log.Warn("simulator: send failed", zap.Error(err))
	}
	if *failing >= s.cfg.MaxConsecutiveErrors {
		return fmt.Errorf("simulate: %d sends failed in a row, last: %w", *failing, err)
	}
	return nil
}

// next produces one record.
func (s *Simulator) next() (topic, key string, value []byte, err error) {
	now := s.cfg.Now()
	if s.cfg.Invalid > 0 && s.rng.Float64() < s.cfg.Invalid {
		s.invalid.Add(1)
		topic, value = s.invalidRecord(now)
		return topic, "invalid", value, nil
	}
	mix := s.cfg.Mix
	r := s.rng.Float64() * (mix.Sensor + mix.Hotline + mix.Video)
	switch {
	case r < mix.Sensor:
		d := s.pickSensor(now)
		reading := s.reading(d, now)
		if s.rng.Float64() < s.cfg.SilenceChance {
			d.silent = now.Add(5*time.Minute + time.Duration(s.rng.Int64N(int64(15*time.Minute))))
		}
		value, err = encode(SourceSensor, event.TypeSensorReading, d.id, now, reading)
		s.sent[srcSensor].Add(1)
		return event.TopicIngestSensor, d.id, value, err
	case r < mix.Sensor+mix.Hotline:
		t := s.ticket(now)
		value, err = encode(SourceHotline, event.TypeHotlineTicket, t.TicketID, now, t)
		s.sent[srcHotline].Add(1)
		return event.TopicIngestHotline, t.TicketID, value, err
	default:
		d := s.detection(now)
		value, err = encode(SourceVideo, event.TypeVideoDetection, d.CameraID, now, d)
		s.sent[srcVideo].Add(1)
		return event.TopicIngestVideo, d.CameraID, value, err
	}
}

// pickSensor chooses a device that is not silent (or any, if the draw keeps hitting silent ones).
func (s *Simulator) pickSensor(now time.Time) *device {
	d := pick(s.rng, s.sensors)
	for range 8 {
		if !now.Before(d.silent) {
			break
		}
		d = pick(s.rng, s.sensors)
	}
	return d
}
