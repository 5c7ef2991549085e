// Package replay runs a file of events through the ingest decoder and the rules engine, with
// no broker and no store: `urbanbrain rules replay`. Rule authors use it to test rules against
// a dataset exported from another system; it is also the engine's own throughput benchmark.
//
// A file holds one event per line (JSON lines): a CloudEvent in structured mode, or a bare
// payload when Config.Type says what every line is. Each line goes through ingest exactly as
// a Kafka record would — validated, located on the city map, deduplicated, or rejected with a
// reason — and each accepted event through the rules on event time, the clock ticking every
// minute of it and running on past the last event by the allowed lateness, as a backtest does.
//
// It must never connect to anything: what the engine returns is counted (in its stats) and
// dropped.
package replay

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/ingest"
	"github.com/urbanbrain/urbanbrain/rules/engine"
	"github.com/urbanbrain/urbanbrain/rules/lang"
)

// Config configures a replay.
type Config struct {
	// Type is the event type of bare payload lines (city.sensor.reading, …). Empty: every
	// line must be a CloudEvent, which says its own type.
	Type string
	// Rules are the rules to run (all of them, enabled or not as they say).
	Rules []lang.Rule
	// Areas locates events on the city map (city.LoadDemo() for the demo city).
	Areas ingest.AreaResolver
	// MaxAge is how old an event may be; default 100 years, since exported datasets are old.
	MaxAge time.Duration
	// Now is the clock ingest checks event times against (default time.Now).
	Now func() time.Time
	// Engine configures the rules engine (AllowedLateness and so on).
	Engine engine.Config
	// MaxSamples caps the example rejections kept per reason (default 5).
	MaxSamples int
}

// Report is what a replay did.
type Report struct {
	Lines      int `json:"lines"`
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
	Rejected   int `json:"rejected"`
	// RejectedBy counts rejected lines by reason class (malformed, payload, too_large, …).
	RejectedBy map[string]int `json:"rejected_by"`
	// Samples are the first rejected lines of each class, with their line numbers.
	Samples []Rejection `json:"samples,omitempty"`
	// Rules are each rule's counts, in rule order.
	Rules []engine.RuleStats `json:"rules"`
	Late  uint64             `json:"late"` // events too late for stateful rules
	// Signals and Clears count everything the rules raised.
	Signals int `json:"signals"`
	Clears  int `json:"clears"`

	Elapsed             time.Duration `json:"elapsed"`
	CPU                 time.Duration `json:"cpu"`
	RecordsPerSecond    float64       `json:"records_per_second"`
	RecordsPerCPUSecond float64       `json:"records_per_cpu_second,omitempty"`
}

// Rejection is one rejected line.
type Rejection struct {
	Line   int    `json:"line"`
	Class  string `json:"class"`
	Reason string `json:"reason"`
}

// MaxLineBytes caps one line; ingest refuses a bigger event anyway.
const MaxLineBytes = 1 << 20

// Run replays every line of r.
func Run(ctx context.Context, cfg Config, r io.Reader, log *zap.Logger) (Report, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if cfg.Areas == nil {
		return Report{}, errors.New("replay: no city map (Areas)")
	}
	if cfg.Type != "" && lang.EnvFor(cfg.Type) == nil {
		return Report{}, fmt.Errorf("replay: --type %q is not one of %v", cfg.Type, lang.EventTypes)
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = 100 * 365 * 24 * time.Hour
	}
	if cfg.MaxSamples == 0 {
		cfg.MaxSamples = 5
	}
	in, err := ingest.New(ingest.Config{MaxAge: cfg.MaxAge, Now: cfg.Now}, cfg.Areas, noSink{}, log.Named("ingest"))
	if err != nil {
		return Report{}, err
	}
	cfg.Engine.Registerer = nil
	cfg.Engine.NoExplanations = true // the signals are only counted
	eng, err := engine.New(cfg.Engine, cfg.Rules, log.Named("rules"))
	if err != nil {
		return Report{}, err
	}
	// A bare payload's type comes from the topic it arrives on; without --type the lines come
	// on a topic that gives none, so a bare line is rejected rather than guessed.
	topic := "replay"
	for t, typ := range event.IngestTopics {
		if typ == cfg.Type && cfg.Type != "" {
			topic = t
		}
	}

	rep := Report{RejectedBy: map[string]int{}}
	startWall, startCPU := time.Now(), cpuTime()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxLineBytes)
	var clock time.Time
	var last time.Time
	samples := map[string]int{}
	rec := ingest.Record{Topic: topic, Key: "replay"}
	for sc.Scan() {
		rep.Lines++
		line := sc.Bytes()
		if len(trimSpace(line)) == 0 {
			rep.Lines--
			continue
		}
		if rep.Lines%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return rep, err
			}
		}
		// Decode is what HandleRecord does short of encoding the event for the broker,
		// which a replay would only decode back.
		rec.Value = line
		ev, err := in.Decode(rec)
		var rej *ingest.RejectError
		switch {
		case err == nil:
			rep.Accepted++
		case errors.Is(err, ingest.ErrDuplicate):
			rep.Duplicates++
			continue
		case errors.As(err, &rej):
			rep.Rejected++
			class := rej.Class.String()
			rep.RejectedBy[class]++
			if samples[class] < cfg.MaxSamples {
				samples[class]++
				reason := rejection(in, rec, rej)
				rep.Samples = append(rep.Samples, Rejection{Line: rep.Lines, Class: class, Reason: reason})
			}
			continue
		default:
			return rep, fmt.Errorf("line %d: %w", rep.Lines, err)
		}
		if clock.IsZero() || ev.Time.Sub(clock) >= time.Minute {
			clock = ev.Time
			if _, err := eng.Tick(ctx, clock); err != nil {
				return rep, err
			}
		}
		if ev.Time.After(last) {
			last = ev.Time
		}
		if _, err := eng.HandleEvent(ctx, ev); err != nil {
			return rep, fmt.Errorf("line %d: %w", rep.Lines, err)
		}
	}
	if err := sc.Err(); err != nil {
		return rep, fmt.Errorf("line %d: %w", rep.Lines+1, err)
	}
	if !last.IsZero() {
		lateness := cfg.Engine.AllowedLateness
		if lateness == 0 {
			lateness = engine.DefaultAllowedLateness
		}
		if _, err := eng.Tick(ctx, last.Add(lateness)); err != nil {
			return rep, err
		}
	}
	rep.Elapsed, rep.CPU = time.Since(startWall), cpuTime()-startCPU

	rep.Rules = eng.Stats()
	rep.Late = eng.EngineStats().Late
	for _, r := range rep.Rules {
		rep.Signals += int(r.Matched)
		rep.Clears += int(r.Cleared)
	}
	if s := rep.Elapsed.Seconds(); s > 0 {
		rep.RecordsPerSecond = float64(rep.Lines) / s
	}
	if c := rep.CPU.Seconds(); c > 0 {
		rep.RecordsPerCPUSecond = float64(rep.Lines) / c
	}
	return rep, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// rejection is the reason the dead letter of a rejected line gives: the rejection's, noting
// a truncated original.
func rejection(in *ingest.Service, rec ingest.Record, rej *ingest.RejectError) string {
	if dl, ok := in.DeadLetter(rec, rej).Data.(event.DeadLetter); ok {
		return dl.Reason
	}
	return rej.Reason
}

// noSink is ingest's sink, which only its HTTP path writes to: a replay writes nothing.
type noSink struct{}

func (noSink) Write(context.Context, event.Outputs) error {
	return errors.New("replay: nothing is written")
}
