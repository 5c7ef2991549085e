// Package loadbench is urbanbrain's end-to-end load benchmark (`urbanbrain bench`): it drives
// a running urbanbrain with the simulator's traffic at a rate or flat out, watches the topics
// and the cockpit websockets as a client would, and reports what got through, how fast, how
// late, and whether anything was lost. It only observes: it never joins a consumer group of
// the server and never writes anywhere but the ingest topics.
//
// What it measures, and how (docs/performance.md, "End-to-end load"):
//
//   - accepted: records ingest put on city.events during the run (read from the topic);
//   - completed: for every consumer group that reads city.events (rules, storage, cockpit),
//     how far its committed offsets advanced; the least of them is what went through every
//     stage, and per second of load it is the sustained rate;
//   - latency event → incident change: the timestamp of each open/link record on
//     city.incidents (set by the server's producer) minus the event's `received` (set by
//     ingest), matched by the report's event id; event → cockpit frame: when a websocket
//     client read the delta frame carrying the report, minus `received`;
//   - lag: per consumer group, end offsets minus committed offsets, at the end of the load
//     and after the drain;
//   - nothing lost: accepted = stored (the storage sink's committed offsets and, when the
//     server is ours, its rows_total metric), raising signals = open + link records (+ the
//     signals the incident service drops because the event is already reported).
package loadbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/simulate"
	"github.com/urbanbrain/urbanbrain/transport"
)

// Server is the urbanbrain under test, as far as the benchmark needs it.
type Server interface {
	// Usage is the server's CPU time so far and its peak resident memory (over the process's
	// life); ok is false when the server is not ours to measure (an external cluster not named
	// by --server-pid) or its process is gone.
	Usage() (cpu time.Duration, peakRSS int64, ok bool)
	// Metric reads one sample of the server's /metrics ("" if unknown).
	Metric(name, labels string) (float64, bool)
}

// Config of a run.
type Config struct {
	Brokers    []string            // where the ingest topics and the server's topics are
	Security   *transport.Security // TLS and SASL to Brokers; nil: the process's (transport.UseSecurity)
	CockpitURL string              // base URL of the cockpit websockets, e.g. ws://127.0.0.1:8080; empty: no clients
	Token      string              // token for /ws/cockpit (any role but ingest)
	Clients    int                 // cockpit websocket clients
	Rate       float64             // events per second; 0 = flat out, bounded by MaxBacklog
	Duration   time.Duration       // of the load
	MaxBacklog int64               // flat out: acknowledged events not yet through every stage (default 5,000)
	Drain      time.Duration       // how long to wait after the load for the lag to reach zero (default 2 min)
	Seed       int64
	Server     Server    // nil: not measurable (an external cluster, no --server-pid or --server-metrics)
	Progress   io.Writer // a line every 5 s; nil: none
	Log        *zap.Logger
}

func (c *Config) setDefaults() {
	if c.MaxBacklog == 0 {
		c.MaxBacklog = 5000
	}
	if c.Drain == 0 {
		c.Drain = 2 * time.Minute
	}
	if c.Log == nil {
		c.Log = zap.NewNop()
	}
}

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("no brokers"))
	}
	if c.Rate < 0 || math.IsInf(c.Rate, 0) || math.IsNaN(c.Rate) {
		errs = append(errs, fmt.Errorf("rate %v: want ≥ 0 (0: flat out)", c.Rate))
	}
	if c.Duration <= 0 {
		errs = append(errs, errors.New("duration must be positive"))
	}
	if c.Clients < 0 || c.Clients > 0 && (c.CockpitURL == "" || c.Token == "") {
		errs = append(errs, errors.New("cockpit clients need a cockpit URL and a token"))
	}
	return errors.Join(errs...)
}

// Latency is a distribution in milliseconds.
type Latency struct {
	Samples int     `json:"samples"`
	P50     float64 `json:"p50_ms"`
	P99     float64 `json:"p99_ms"`
	Max     float64 `json:"max_ms"`
}

// GroupLag is one consumer group's lag over the topics it reads.
type GroupLag struct {
	Group string `json:"group"`
	AtEnd int64  `json:"at_end_of_load"`
	Final int64  `json:"after_drain"`
}

// Report is what a run found.
type Report struct {
	Target   float64 `json:"target_rate"` // 0: flat out
	Duration float64 `json:"duration_s"`
	Clients  int     `json:"cockpit_clients"`

	Sent         int64   `json:"sent"`          // acknowledged by the broker
	SendFailed   int64   `json:"send_failed"`   // not acknowledged
	SentRate     float64 `json:"sent_rate"`     // per second of load
	Accepted     int64   `json:"accepted"`      // on city.events
	DeadLettered int64   `json:"dead_lettered"` // on city.deadletter

	// Through every stage by the end of the load, per second of load: the sustained rate.
	Sustained float64          `json:"sustained_rate"`
	Completed map[string]int64 `json:"completed_at_end_of_load"` // by consumer group of city.events
	DrainS    float64          `json:"drain_s"`                  // after the load, until every lag was zero
	Drained   bool             `json:"drained"`

	Stored        int64 `json:"stored"`                   // storage sink's committed offsets on city.events
	StoredRows    int64 `json:"stored_rows_metric"`       // urbanbrain_storage_rows_total{sink="storage.events"} gained during the run, -1 if unknown
	Signals       int64 `json:"signals"`                  // raising signals (not shadow) on city.signals
	ShadowSignals int64 `json:"shadow_signals"`           // recorded only
	Opened        int64 `json:"incidents_opened"`         // open records on city.incidents
	Linked        int64 `json:"reports_linked"`           // link records
	OtherChanges  int64 `json:"other_changes"`            // dispatch, SLA and the rest
	Lost          bool  `json:"lost"`                     // accepted ≠ stored after a complete drain
	Unlinked      int64 `json:"signals_without_a_change"` // signals − opened − linked (dropped as already reported)

	ToIncident Latency `json:"event_to_incident_change"`
	ToCockpit  Latency `json:"event_to_cockpit_frame"`
	Frames     int64   `json:"cockpit_frames"`
	Dropped    int     `json:"cockpit_clients_disconnected"`

	ServerCPU     float64    `json:"server_cpu_cores"` // CPU seconds per second of load; -1 if not measured
	ServerPeakRSS int64      `json:"server_peak_rss_bytes"`
	BenchCPU      float64    `json:"bench_cpu_cores"` // this process: generator, observers, clients
	Lag           []GroupLag `json:"lag"`
	Notes         []string   `json:"notes,omitempty"`
}

// Run drives the server for cfg.Duration, drains, and reports.
func Run(ctx context.Context, cfg Config, m *city.Map) (*Report, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("loadbench: %w", err)
	}
	b := &bench{cfg: cfg, client: cfg.Security.Client(cfg.Brokers),
		received: map[string]int64{}}
	return b.run(ctx, m)
}

type bench struct {
	cfg    Config
	client *kafka.Client

	mu       sync.Mutex
	received map[string]int64 // event id → received, unix ns
	toInc    []seen           // open/link records: event id, record time
	toFrame  []seen           // cockpit: event id, frame read

	accepted, deadLetters, signals, shadows atomic.Int64
	opened, linked, other, frames           atomic.Int64
	dropped                                 atomic.Int64
	completed                               atomic.Int64 // least advance over city.events groups
}

type seen struct {
	id string
	at int64
}

func (b *bench) run(ctx context.Context, m *city.Map) (*Report, error) {
	rep := &Report{Target: b.cfg.Rate, Duration: b.cfg.Duration.Seconds(), Clients: b.cfg.Clients, StoredRows: -1, ServerCPU: -1}
	obsCtx, stopObs := context.WithCancel(ctx)
	defer stopObs()
	var obs sync.WaitGroup
	defer obs.Wait()
	defer stopObs()

	// Observers start at the current end of each topic, before any traffic.
	for _, t := range []struct {
		topic string
		fn    func(kafka.Message)
	}{
		{event.TopicEvents, b.onEvent},
		{event.TopicSignals, b.onSignal},
		{event.TopicIncidents, b.onChange},
		{event.TopicDeadLetter, func(kafka.Message) { b.deadLetters.Add(1) }},
	} {
		if err := b.observe(obsCtx, &obs, t.topic, t.fn); err != nil {
			return nil, err
		}
	}
	var clients sync.WaitGroup
	cctx, stopClients := context.WithCancel(ctx)
	defer stopClients()
	for i := range b.cfg.Clients {
		if err := b.cockpitClient(cctx, &clients, i); err != nil {
			stopClients()
			clients.Wait()
			return nil, err
		}
	}

	start0, err := b.groupOffsets(ctx)
	if err != nil {
		return nil, err
	}
	cpu0, _, measurable := b.usage()
	bcpu0 := processCPU()
	rows0, rowsKnown := b.storedRows() // a server bench did not start has stored rows before this run

	// The load.
	sink, err := simulate.NewKafkaSink(simulate.KafkaSinkConfig{Brokers: b.cfg.Brokers, Security: b.cfg.Security}, b.cfg.Log.Named("producer"))
	if err != nil {
		return nil, err
	}
	defer func() { _ = sink.Close() }()
	rate := b.cfg.Rate
	var s simulate.Sink = sink
	if rate == 0 {
		rate = 1e6 // far above what one node carries: the backlog gate sets the pace
		s = &gate{Sink: sink, bench: b, max: b.cfg.MaxBacklog}
	}
	sim, err := simulate.New(simulate.Config{Rate: rate, Duration: b.cfg.Duration, Seed: b.cfg.Seed}, m, s, b.cfg.Log.Named("simulate"))
	if err != nil {
		return nil, err
	}
	pollCtx, stopPoll := context.WithCancel(ctx)
	pollDone := make(chan struct{})
	go func() { defer close(pollDone); b.poll(pollCtx, start0, sim) }()
	loadStart := time.Now()
	runErr := sim.Run(ctx)
	loadEnd := time.Now()
	stopPoll()
	<-pollDone
	if runErr != nil {
		return nil, fmt.Errorf("simulator: %w", runErr)
	}
	loadS := loadEnd.Sub(loadStart).Seconds()
	cpu1, _, stillThere := b.usage()
	bcpu1 := processCPU()
	gone := measurable && !stillThere // the server's process ended during the load
	measurable = measurable && stillThere
	atEnd, err := b.groupOffsets(ctx)
	if err != nil {
		return nil, err
	}
	p := sim.Progress()
	rep.Sent, rep.SendFailed = p.Delivery.Acked, p.Delivery.Failed
	rep.SentRate = float64(rep.Sent) / loadS
	rep.Completed = map[string]int64{}
	least := int64(-1)
	for g, adv := range advance(start0, atEnd, event.TopicEvents) {
		rep.Completed[g] = adv
		if least < 0 || adv < least {
			least = adv
		}
	}
	rep.Sustained = float64(max(least, 0)) / loadS
	switch {
	case measurable:
		rep.ServerCPU = (cpu1 - cpu0).Seconds() / loadS
	case gone:
		rep.Notes = append(rep.Notes, "server CPU and memory not measured: the server's process was gone by the end of the load")
	default:
		rep.Notes = append(rep.Notes, "server CPU and memory not measured: the server is not ours (external cluster; bench --server-pid measures one on this machine)")
	}
	rep.BenchCPU = (bcpu1 - bcpu0).Seconds() / loadS
	lagEnd, err := b.lag(ctx, atEnd)
	if err != nil {
		return nil, err
	}

	// Drain: until every group has caught up and the observers have read everything.
	drainStart := time.Now()
	var final map[string]map[string]map[int]int64
	var lagFinal map[string]int64
	for {
		final, err = b.groupOffsets(ctx)
		if err != nil {
			return nil, err
		}
		if lagFinal, err = b.lag(ctx, final); err != nil {
			return nil, err
		}
		total := int64(0)
		for _, l := range lagFinal {
			total += l
		}
		if total == 0 && b.accepted.Load() >= advance(start0, final, event.TopicEvents)[b.storageGroup(final)] {
			rep.Drained = true
			break
		}
		if time.Since(drainStart) > b.cfg.Drain || ctx.Err() != nil {
			rep.Notes = append(rep.Notes, fmt.Sprintf("the lag did not reach zero within %v of the load's end", b.cfg.Drain))
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	rep.DrainS = time.Since(drainStart).Seconds()
	// The last changes reach the cockpit within a coalescing tick; give them two seconds.
	time.Sleep(2 * time.Second)
	stopClients()
	clients.Wait()
	stopObs()
	obs.Wait()

	if _, peak, ok := b.usage(); ok && measurable {
		rep.ServerPeakRSS = peak
	}
	for g, l := range lagFinal {
		rep.Lag = append(rep.Lag, GroupLag{Group: g, AtEnd: lagEnd[g], Final: l})
	}
	slices.SortFunc(rep.Lag, func(a, b GroupLag) int { return strings.Compare(a.Group, b.Group) })

	rep.Accepted, rep.DeadLettered = b.accepted.Load(), b.deadLetters.Load()
	if g := b.storageGroup(final); g != "" {
		rep.Stored = advance(start0, final, event.TopicEvents)[g]
	} else {
		rep.Notes = append(rep.Notes, "no storage consumer group found on city.events")
	}
	if rows1, ok := b.storedRows(); ok && rowsKnown {
		rep.StoredRows = rows1 - rows0
	} else if b.cfg.Server != nil {
		rep.Notes = append(rep.Notes, "store rows metric not read: no /metrics to read it from (bench --server-metrics), or no urbanbrain_storage_rows_total there")
	}
	rep.Signals, rep.ShadowSignals = b.signals.Load(), b.shadows.Load()
	rep.Opened, rep.Linked, rep.OtherChanges = b.opened.Load(), b.linked.Load(), b.other.Load()
	rep.Unlinked = rep.Signals - rep.Opened - rep.Linked
	rep.Lost = rep.Drained && rep.Accepted != rep.Stored
	rep.Frames, rep.Dropped = b.frames.Load(), int(b.dropped.Load())
	b.mu.Lock()
	rep.ToIncident = b.latency(b.toInc)
	rep.ToCockpit = b.latency(b.toFrame)
	b.mu.Unlock()
	if b.cfg.Rate == 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("flat out: the generator keeps at most %d events acknowledged and not yet through every stage; latencies then measure that queue", b.cfg.MaxBacklog))
	}
	return rep, nil
}

// storageGroup is the storage sink's consumer group on city.events.
func (b *bench) storageGroup(offs map[string]map[string]map[int]int64) string {
	for g, topics := range offs {
		if _, ok := topics[event.TopicEvents]; ok && strings.Contains(g, "storage") {
			return g
		}
	}
	return ""
}

// gate holds the generator back while more than max acknowledged events have not gone
// through every stage: flat out, but with a bounded queue.
type gate struct {
	simulate.Sink
	bench *bench
	max   int64
}

func (g *gate) Send(ctx context.Context, topic, key string, value []byte) error {
	for {
		d := g.Sink.(simulate.DeliveryReporter).Delivery()
		if d.Acked+d.InFlight-g.bench.completed.Load() <= g.max {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return g.Sink.Send(ctx, topic, key, value)
}

// Wait and Delivery pass through, so the simulator settles and counts as with the sink itself.
func (g *gate) Wait(ctx context.Context) error { return g.Sink.(simulate.Waiter).Wait(ctx) }
func (g *gate) Delivery() simulate.Delivery    { return g.Sink.(simulate.DeliveryReporter).Delivery() }

// poll updates the completed count (for the gate) and prints progress.
func (b *bench) poll(ctx context.Context, start map[string]map[string]map[int]int64, sim *simulate.Simulator) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		offs, err := b.groupOffsets(ctx)
		if err != nil {
			continue
		}
		least := int64(-1)
		for _, adv := range advance(start, offs, event.TopicEvents) {
			if least < 0 || adv < least {
				least = adv
			}
		}
		b.completed.Store(max(least, 0))
		if b.cfg.Progress != nil && time.Since(last) >= 5*time.Second {
			last = time.Now()
			p := sim.Progress()
			fmt.Fprintf(b.cfg.Progress, "bench: %5.0fs  sent %d (%.0f/s)  accepted %d  through every stage %d  incident changes %d  frames %d\n",
				p.Elapsed.Seconds(), p.Delivery.Acked, p.Rate(), b.accepted.Load(), b.completed.Load(),
				b.opened.Load()+b.linked.Load()+b.other.Load(), b.frames.Load())
		}
	}
}

// storedRows is the server's count of events stored so far (its /metrics).
func (b *bench) storedRows() (int64, bool) {
	if b.cfg.Server == nil {
		return 0, false
	}
	v, ok := b.cfg.Server.Metric("urbanbrain_storage_rows_total", `sink="storage.events"`)
	return int64(v), ok
}

func (b *bench) usage() (time.Duration, int64, bool) {
	if b.cfg.Server == nil {
		return 0, 0, false
	}
	return b.cfg.Server.Usage()
}

func (b *bench) latency(pairs []seen) Latency {
	var ms []float64
	for _, p := range pairs {
		if r, ok := b.received[p.id]; ok {
			ms = append(ms, float64(p.at-r)/1e6)
		}
	}
	if len(ms) == 0 {
		return Latency{}
	}
	slices.Sort(ms)
	q := func(f float64) float64 { return ms[min(len(ms)-1, int(f*float64(len(ms))))] }
	return Latency{Samples: len(ms), P50: q(0.50), P99: q(0.99), Max: ms[len(ms)-1]}
}

// observe reads every partition of topic from its current end.
func (b *bench) observe(ctx context.Context, wg *sync.WaitGroup, topic string, fn func(kafka.Message)) error {
	ends, err := b.endOffsets(ctx, map[string][]int{topic: nil})
	if err != nil {
		return err
	}
	for part, off := range ends[topic] {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: b.cfg.Brokers, Dialer: b.cfg.Security.Dialer(), Topic: topic, Partition: part,
			MinBytes: 1, MaxBytes: 4 << 20, MaxWait: 100 * time.Millisecond, ReadLagInterval: -1})
		if err := r.SetOffset(off); err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.Close()
			for {
				msg, err := r.ReadMessage(ctx)
				if err != nil {
					return
				}
				fn(msg)
			}
		}()
	}
	return nil
}

func (b *bench) onEvent(msg kafka.Message) {
	var e struct {
		Data struct {
			ID       string    `json:"id"`
			Received time.Time `json:"received"`
		} `json:"data"`
	}
	if json.Unmarshal(msg.Value, &e) != nil {
		return
	}
	b.accepted.Add(1)
	b.mu.Lock()
	b.received[e.Data.ID] = e.Data.Received.UnixNano()
	b.mu.Unlock()
}

func (b *bench) onSignal(msg kafka.Message) {
	var s struct {
		Data struct {
			Shadow bool `json:"shadow"`
		} `json:"data"`
	}
	if json.Unmarshal(msg.Value, &s) != nil {
		return
	}
	if s.Data.Shadow {
		b.shadows.Add(1)
	} else {
		b.signals.Add(1)
	}
}

type reportIDs struct {
	EventID     string `json:"event_id"`
	SignalID    string `json:"signal_id"`
	LastEventID string `json:"last_event_id"`
}

// Events are the readings the report names (event.Report.Events).
func (r reportIDs) Events() []string {
	return event.Report{EventID: r.EventID, LastEventID: r.LastEventID}.Events()
}

func (b *bench) onChange(msg kafka.Message) {
	var c struct {
		Data struct {
			Incident struct {
				Reports []reportIDs `json:"reports"`
			} `json:"incident"`
			Change struct {
				Action   string `json:"action"`
				SignalID string `json:"signal_id"`
			} `json:"change"`
		} `json:"data"`
	}
	if json.Unmarshal(msg.Value, &c) != nil {
		return
	}
	switch c.Data.Change.Action {
	case "open":
		b.opened.Add(1)
	case "link":
		b.linked.Add(1)
	default:
		b.other.Add(1)
		return
	}
	// The change's reading is the report its signal opened, or the latest reading of the
	// episode it continued.
	reps, sid := c.Data.Incident.Reports, c.Data.Change.SignalID
	for i := len(reps) - 1; i >= 0; i-- {
		ev := ""
		switch {
		case reps[i].SignalID == sid:
			ev = reps[i].EventID
		case reps[i].LastEventID != "" && strings.HasSuffix(sid, reps[i].LastEventID):
			ev = reps[i].LastEventID
		default:
			continue
		}
		b.mu.Lock()
		b.toInc = append(b.toInc, seen{ev, msg.Time.UnixNano()})
		b.mu.Unlock()
		return
	}
}

// cockpitClient connects one websocket client that notes, for every report it sees first
// in a delta frame, when it read that frame.
func (b *bench) cockpitClient(ctx context.Context, wg *sync.WaitGroup, i int) error {
	u := strings.TrimRight(b.cfg.CockpitURL, "/") + "/ws/cockpit?kpi=1&access_token=" + url.QueryEscape(b.cfg.Token)
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 64 << 10}
	conn, resp, err := d.DialContext(ctx, u, http.Header{})
	if err != nil {
		if resp != nil {
			return fmt.Errorf("cockpit client %d: %s: %w", i, resp.Status, err)
		}
		return fmt.Errorf("cockpit client %d: %w", i, err)
	}
	wg.Add(2)
	go func() { defer wg.Done(); <-ctx.Done(); _ = conn.Close() }()
	go func() {
		defer wg.Done()
		first := map[string]bool{}
		var local []seen
		defer func() {
			b.mu.Lock()
			b.toFrame = append(b.toFrame, local...)
			b.mu.Unlock()
		}()
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				if ctx.Err() == nil {
					b.dropped.Add(1)
				}
				return
			}
			at := time.Now().UnixNano()
			var f struct {
				Type      string `json:"type"`
				Incidents []struct {
					Reports []reportIDs `json:"reports"`
				} `json:"incidents"`
				Upsert []struct {
					Reports []reportIDs `json:"reports"`
				} `json:"upsert"`
			}
			if json.Unmarshal(data, &f) != nil {
				continue
			}
			switch f.Type {
			case "snapshot": // what was there before: not a latency sample
				for _, inc := range f.Incidents {
					for _, r := range inc.Reports {
						for _, ev := range r.Events() {
							first[ev] = true
						}
					}
				}
			case "delta":
				b.frames.Add(1)
				for _, inc := range f.Upsert {
					for _, r := range inc.Reports {
						for _, ev := range r.Events() {
							if !first[ev] {
								first[ev] = true
								local = append(local, seen{ev, at})
							}
						}
					}
				}
			}
		}
	}()
	return nil
}

// groupOffsets returns the committed offsets of every urbanbrain.* consumer group:
// group → topic → partition → offset.
func (b *bench) groupOffsets(ctx context.Context) (map[string]map[string]map[int]int64, error) {
	gr, err := b.client.ListGroups(ctx, &kafka.ListGroupsRequest{})
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	out := map[string]map[string]map[int]int64{}
	for _, g := range gr.Groups {
		if !strings.HasPrefix(g.GroupID, "urbanbrain.") {
			continue
		}
		resp, err := b.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: g.GroupID})
		if err != nil {
			return nil, fmt.Errorf("offsets of %s: %w", g.GroupID, err)
		}
		topics := map[string]map[int]int64{}
		for t, parts := range resp.Topics {
			topics[t] = map[int]int64{}
			for _, p := range parts {
				topics[t][p.Partition] = p.CommittedOffset
			}
		}
		out[g.GroupID] = topics
	}
	return out, nil
}

// advance is, per group reading topic, how far its committed offsets moved from start to now.
func advance(start, now map[string]map[string]map[int]int64, topic string) map[string]int64 {
	out := map[string]int64{}
	for g, topics := range now {
		parts, ok := topics[topic]
		if !ok {
			continue
		}
		n := int64(0)
		for p, off := range parts {
			from := start[g][topic][p]
			n += max(off, 0) - max(from, 0)
		}
		out[g] = n
	}
	return out
}

// lag is, per group, the end offsets of the partitions it has committed on minus its
// committed offsets.
func (b *bench) lag(ctx context.Context, offs map[string]map[string]map[int]int64) (map[string]int64, error) {
	want := map[string][]int{}
	for _, topics := range offs {
		for t := range topics {
			want[t] = nil
		}
	}
	ends, err := b.endOffsets(ctx, want)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for g, topics := range offs {
		n := int64(0)
		for t := range topics {
			for p, end := range ends[t] {
				n += end - max(topics[t][p], 0)
			}
		}
		out[g] = n
	}
	return out, nil
}

// endOffsets returns topic → partition → end offset, for every partition of the topics.
func (b *bench) endOffsets(ctx context.Context, topics map[string][]int) (map[string]map[int]int64, error) {
	names := make([]string, 0, len(topics))
	for t := range topics {
		names = append(names, t)
	}
	md, err := b.client.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, t := range md.Topics {
		if t.Error != nil {
			return nil, fmt.Errorf("metadata of %s: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			req.Topics[t.Name] = append(req.Topics[t.Name], kafka.LastOffsetOf(p.ID))
		}
	}
	resp, err := b.client.ListOffsets(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("end offsets: %w", err)
	}
	out := map[string]map[int]int64{}
	for t, parts := range resp.Topics {
		out[t] = map[int]int64{}
		for _, p := range parts {
			if p.Error != nil {
				return nil, fmt.Errorf("end offset of %s/%d: %w", t, p.Partition, p.Error)
			}
			out[t][p.Partition] = p.LastOffset
		}
	}
	return out, nil
}
