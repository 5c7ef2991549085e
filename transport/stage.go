package transport

import (
	"context"
	"errors"
	"fmt"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
)

// StageHandler turns one input record into the records it produces. It must be idempotent
// by the input's identity: after a crash, inputs whose outputs were not all acknowledged come
// again. An error means "not handled": the same record is handed over again after a backoff,
// and nothing behind it on its partition is handled meanwhile.
type StageHandler func(ctx context.Context, rec kafka.Message) ([]kafka.Message, error)

// StageConfig configures a Stage.
type StageConfig struct {
	Brokers []string
	GroupID string
	// Security secures the connections (TLS, SASL); nil uses the process's (UseSecurity).
	Security *Security
	// Topics are read by one group. Several topics must be co-partitioned (the same
	// partition count, keyed alike): the range assignor then gives each member the same
	// partition numbers of every topic, so one member owns all the records of a key.
	Topics []string

	// StartAtLatest makes a new group begin at the end of the topic instead of its start.
	StartAtLatest bool

	// MaxBytes caps one fetch of a partition (default 1 MiB): a partition holds its records
	// in memory while it hands them over. MaxWait is how long a fetch waits on the broker for
	// new records (default 250 ms).
	MaxBytes int
	MaxWait  time.Duration
	// FetchPace is how long a partition that has caught up waits before it fetches again
	// (default 10 ms; negative: not at all): its next fetch then brings what came meanwhile,
	// not one producer batch. A partition with a backlog fetches back to back, an idle one
	// waits on the broker (MaxWait). It is the most a record waits here for its fetch.
	FetchPace time.Duration

	// MaxPending bounds the records of one partition whose outputs are not yet all
	// acknowledged (default 20,000); past it the partition waits for the broker.
	MaxPending int

	// CommitInterval is how often acknowledged offsets are committed (default 100 ms). An
	// offset is committable only when every output of its record and of every earlier
	// record of its partition is acknowledged, so the interval only bounds what is handled
	// again after a crash.
	CommitInterval time.Duration

	// RetryBackoff is the pause before a failed record is handed over again and before a
	// failed fetch or join is retried (default 100 ms, doubling up to 5 s).
	RetryBackoff time.Duration

	// DrainTimeout bounds how long a revoked partition waits for its outputs to be
	// acknowledged before it gives up committing them (default 10 s).
	DrainTimeout time.Duration

	// Consumer group timing (defaults 1 s, 10 s, 10 s, 500 ms).
	HeartbeatInterval time.Duration
	SessionTimeout    time.Duration
	RebalanceTimeout  time.Duration
	JoinGroupBackoff  time.Duration

	// OnAssigned, if set, runs when a partition is assigned, before any of its records is
	// handled (a stage loads the partition's state here), with the offset of each topic where
	// handling will start (the group's committed offset, or kafka.FirstOffset/LastOffset for
	// a new group); an error ends the generation and the group rebalances. OnRevoked runs after the partition's last record was handled and
	// its outputs were drained, before another member can own it.
	OnAssigned func(ctx context.Context, partition int, start map[string]int64) error
	OnRevoked  func(partition int)

	// Tracer starts the span each record is handled in ("process <topic>"): a child of the
	// trace context the record carries, or the root of a new trace. The span is on the
	// handler's ctx, and its context is written on every output that carries none
	// (InjectTrace), so each stage of an event's path is one span of the event's trace. Nil:
	// no spans; the input's own trace context is handed on to the outputs unchanged.
	Tracer trace.Tracer
	// TraceContext reads the trace context an input record carries; nil reads its traceparent
	// header (ExtractTrace). The ingest stages also read the CloudEvents extension.
	TraceContext func(ctx context.Context, rec kafka.Message) context.Context
}

func (c *StageConfig) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = 1 << 20
	}

	if c.MaxPending == 0 {
		c.MaxPending = 20000
	}
	if c.TraceContext == nil {
		c.TraceContext = func(ctx context.Context, rec kafka.Message) context.Context {
			return ExtractTrace(ctx, rec.Headers)
		}
	}
	def(&c.MaxWait, 250*time.Millisecond)
	def(&c.FetchPace, 10*time.Millisecond)
	def(&c.CommitInterval, 100*time.Millisecond)
	def(&c.RetryBackoff, 100*time.Millisecond)
	def(&c.DrainTimeout, 10*time.Second)
	def(&c.HeartbeatInterval, time.Second)
	def(&c.SessionTimeout, 10*time.Second)
	def(&c.RebalanceTimeout, 10*time.Second)
	def(&c.JoinGroupBackoff, 500*time.Millisecond)
}

// Validate reports every problem in the configuration at once.
func (c StageConfig) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("stage: no brokers"))
	}
	if c.GroupID == "" || len(c.Topics) == 0 {
		errs = append(errs, errors.New("stage: GroupID and Topics are required"))
	}
	if c.MaxBytes < 1 || c.MaxPending < 1 {
		errs = append(errs, fmt.Errorf("stage: MaxBytes %d and MaxPending %d must be positive", c.MaxBytes, c.MaxPending))
	}
	if c.HeartbeatInterval >= c.SessionTimeout {
		errs = append(errs, fmt.Errorf("stage: HeartbeatInterval %v must be below SessionTimeout %v", c.HeartbeatInterval, c.SessionTimeout))
	}
	return errors.Join(errs...)
}

// Stage is one processing stage of the pipeline: a consumer group on one topic whose
// partitions run in parallel, each in order. For every record it calls the handler, hands
// the outputs to the shared Producer without waiting, and goes on with the next record; a
// partition's offset is committed once every output of it and of all earlier records is
// acknowledged. So a stage never waits for a produce round trip per record (which capped a
// stream at about 1/linger records a second), yet keeps at-least-once delivery and the
// order within a partition:
//
//   - outputs are produced in the order the handler returned them, and the writer retries a
//     partition's batches in order (ProducerConfig.MaxAttempts), so a broker outage delays
//     outputs but neither drops nor reorders them;
//   - a handler error hands the same record over again after a backoff, with nothing behind
//     it handled meanwhile;
//   - a crash loses only uncommitted offsets: their records come again, and handlers are
//     idempotent by the record's identity.
//
// Assignment and revocation are a lifecycle (OnAssigned, OnRevoked): a partition is loaded
// before its first record and drained before it is given up.
type Stage struct {
	cfg     StageConfig
	log     *zap.Logger
	handle  StageHandler
	produce *Producer

	handled, outputs, retries atomic.Uint64
	fetches                   atomic.Uint64
	mu                        sync.Mutex
	owned                     map[string]*partitionTask // by "topic/partition"
	loaded                    map[int]bool              // partition numbers loaded (OnAssigned) and not given up
	generations               int                       // generations joined so far
	// kept are the partitions whose state this member still holds between two generations,
	// with the offset of each topic it had handled up to: if the next generation gives a
	// partition back at exactly those offsets (nobody handled it meanwhile), its state is
	// still right and is neither dropped nor loaded again. kafka-go rebalances eagerly — every
	// member gives up everything — so without this every join or leave would reload every
	// partition of every member. Only runGeneration's goroutine touches it.
	kept map[int]map[string]int64
}

// NewStage returns a Stage that reads cfg.Topics in group cfg.GroupID, hands records to h and
// writes their outputs through p.
func NewStage(cfg StageConfig, h StageHandler, p *Producer, log *zap.Logger) (*Stage, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if h == nil || p == nil {
		return nil, errors.New("stage: nil handler or producer")
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Stage{cfg: cfg, log: log.Named("stage").With(zap.String("group", cfg.GroupID), zap.Strings("topics", cfg.Topics)),
		handle: h, produce: p, owned: make(map[string]*partitionTask), loaded: make(map[int]bool),
		kept: make(map[int]map[string]int64)}, nil
}

// StageStats are a stage's counters since it started, and what it owns now.
type StageStats struct {
	Handled, Outputs, Retries uint64
	Fetches                   uint64 // fetch requests answered, with records or without
	// Lag maps each owned "topic/partition" to its lag: records behind the end of the
	// partition as of the last fetch.
	Lag map[string]int64
}

// Loaded returns the partition numbers this member owns and has loaded (OnAssigned returned),
// sorted, and whether it has joined its group at least once.
func (s *Stage) Loaded() (partitions []int, joined bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.loaded {
		partitions = append(partitions, id)
	}
	slices.Sort(partitions)
	return partitions, s.generations > 0
}

// Stats returns the stage's counters.
func (s *Stage) Stats() StageStats {
	st := StageStats{Handled: s.handled.Load(), Outputs: s.outputs.Load(), Retries: s.retries.Load(),
		Fetches: s.fetches.Load(), Lag: map[string]int64{}}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, t := range s.owned {
		st.Lag[k] = t.lag.Load()
	}
	return st
}

// Run joins the group and processes the partitions it is given until ctx ends. Then it stops
// fetching, waits (up to DrainTimeout) for outputs in flight, commits, and leaves the group.
func (s *Stage) Run(ctx context.Context) error {
	start := kafka.FirstOffset
	if s.cfg.StartAtLatest {
		start = kafka.LastOffset
	}
	info, errLog := kafkaLoggers(s.log)
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                s.cfg.GroupID,
		Brokers:           s.cfg.Brokers,
		Dialer:            s.cfg.Security.Dialer(),
		Topics:            s.cfg.Topics,
		GroupBalancers:    []kafka.GroupBalancer{coPartitioned{}},
		HeartbeatInterval: s.cfg.HeartbeatInterval,
		SessionTimeout:    s.cfg.SessionTimeout,
		RebalanceTimeout:  s.cfg.RebalanceTimeout,
		JoinGroupBackoff:  s.cfg.JoinGroupBackoff,
		StartOffset:       start,
		Logger:            info,
		ErrorLogger:       errLog,
	})
	if err != nil {
		return fmt.Errorf("stage %s: %w", s.cfg.GroupID, err)
	}
	defer func() {
		if err := cg.Close(); err != nil {
			s.log.Debug("leaving group", zap.Error(err))
		}
	}()
	retry := backoff{min: s.cfg.RetryBackoff, max: 5 * time.Second}
	for {
		gen, err := cg.Next(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			wait := retry.next()
			s.log.Warn("joining the group failed, retrying", zap.Error(err), zap.Duration("backoff", wait))
			if !sleepCtx(ctx, wait) {
				return nil
			}
			continue
		}
		retry.reset()
		done := make(chan struct{})
		gen.Start(func(gctx context.Context) {
			defer close(done)
			s.runGeneration(ctx, withLabelsOf(gctx, ctx), gen)
		})
		select {
		case <-done:
		case <-ctx.Done():
			<-done // runGeneration drains, commits and gives everything up on ctx too
			return nil
		}
	}
}

// coPartitioned is kafka-go's range assignor given the partitions in order. The range assignor
// sorts the members alike for every topic so that member i gets the same partition numbers of
// each, but it takes the partitions in the order the broker's metadata lists them, which is
// not always by id (the embedded broker's is a map's order): a member could get signals of
// partition 0 and commands of partition 2, and two members would then both hold partition 0's
// incidents. Sorting first makes the assignment co-partitioned.
type coPartitioned struct{ kafka.RangeGroupBalancer }

func (b coPartitioned) AssignGroups(members []kafka.GroupMember, partitions []kafka.Partition) kafka.GroupMemberAssignments {
	sorted := slices.Clone(partitions)
	slices.SortFunc(sorted, func(x, y kafka.Partition) int {
		if c := strings.Compare(x.Topic, y.Topic); c != 0 {
			return c
		}
		return x.ID - y.ID
	})
	return b.RangeGroupBalancer.AssignGroups(members, sorted)
}

// runGeneration runs every partition of one generation until the generation ends (a
// rebalance) or ctx ends (shutdown), then drains them and commits a last time. A partition
// number is loaded (OnAssigned) before any of its topics' records is handled, and given up
// (OnRevoked) after all of them are drained.
func (s *Stage) runGeneration(ctx, gctx context.Context, gen *kafka.Generation) {
	runCtx, cancel := context.WithCancel(gctx)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()

	s.mu.Lock()
	s.generations++
	s.mu.Unlock()
	byPartition := map[int][]*partitionTask{}
	var tasks []*partitionTask
	for _, topic := range s.cfg.Topics {
		for _, pa := range gen.Assignments[topic] {
			t := &partitionTask{stage: s, topic: topic, spanName: "process " + topic, id: pa.ID, start: pa.Offset, committed: -1, done: -1, freed: make(chan struct{}, 1)}
			tasks = append(tasks, t)
			byPartition[pa.ID] = append(byPartition[pa.ID], t)
		}
	}
	// Partitions held from the last generation: those not given back are given up now, before
	// anything is handled, and those given back at other offsets are reset.
	keep := map[int]bool{}
	for id, handled := range s.kept {
		pts, back := byPartition[id]
		same := back
		for _, t := range pts {
			if h, ok := handled[t.topic]; !ok || h != t.start || t.start < 0 {
				same = false
			}
		}
		if same {
			keep[id] = true
		} else if s.cfg.OnRevoked != nil {
			s.cfg.OnRevoked(id)
		}
	}
	clear(s.kept)

	var wg sync.WaitGroup
	var loaded []int
	var loadedMu sync.Mutex
	for id, pts := range byPartition {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s.cfg.OnAssigned != nil && !keep[id] {
				start := map[string]int64{}
				for _, t := range pts {
					start[t.topic] = t.start
				}
				if err := s.cfg.OnAssigned(runCtx, id, start); err != nil {
					if runCtx.Err() == nil {
						s.log.Error("loading the partition failed; rebalancing", zap.Int("partition", id), zap.Error(err))
						cancel()
					}
					return
				}
			}
			loadedMu.Lock()
			loaded = append(loaded, id)
			loadedMu.Unlock()
			s.mu.Lock()
			s.loaded[id] = true
			s.mu.Unlock()
			var pwg sync.WaitGroup
			for _, t := range pts {
				pwg.Add(1)
				go func() {
					defer pwg.Done()
					t.run(runCtx)
				}()
			}
			pwg.Wait()
		}()
	}
	workers := make(chan struct{})
	go func() {
		wg.Wait()
		close(workers)
	}()
	tick := time.NewTicker(s.cfg.CommitInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			s.commit(gen, tasks)
			continue
		case <-workers:
		}
		break
	}
	s.commit(gen, tasks)
	s.mu.Lock()
	for _, t := range tasks {
		if s.owned[t.key()] == t {
			delete(s.owned, t.key())
		}
	}
	for _, id := range loaded {
		delete(s.loaded, id)
	}
	s.mu.Unlock()
	if ctx.Err() != nil { // shutting down: no next generation to give anything back
		if s.cfg.OnRevoked != nil {
			for _, id := range loaded {
				s.cfg.OnRevoked(id)
			}
		}
		return
	}
	// A rebalance: hold the state until the next generation says whether it comes back.
	for _, id := range loaded {
		handled := map[string]int64{}
		for _, t := range byPartition[id] {
			// What the group hands back if nobody moves the partition: the state is right for
			// it only if everything handled was committed (or nothing was handled).
			h := t.start
			if t.done >= 0 {
				h = t.done
				if t.committed != t.done {
					h = -1
				}
			}
			if t.dirty.Load() {
				h = -1
			}
			handled[t.topic] = h
		}
		s.kept[id] = handled
	}
}

// commit commits every partition whose acknowledged offset moved since the last commit.
func (s *Stage) commit(gen *kafka.Generation, tasks []*partitionTask) {
	offsets := map[string]map[int]int64{}
	for _, t := range tasks {
		if next := t.committable(); next > t.committed {
			if offsets[t.topic] == nil {
				offsets[t.topic] = map[int]int64{}
			}
			offsets[t.topic][t.id] = next
		}
	}
	if len(offsets) == 0 {
		return
	}
	if err := gen.CommitOffsets(offsets); err != nil {
		// Not fatal: the next commit covers these offsets, and if none comes (the
		// generation ended) the records are handled again by the next owner.
		s.log.Debug("commit failed", zap.Error(err))
		return
	}
	for _, t := range tasks {
		if o, ok := offsets[t.topic][t.id]; ok {
			t.committed = o
		}
	}
}

// partitionTask is one owned partition: it fetches, handles in order, and tracks which of
// its records still wait for outputs.
type partitionTask struct {
	stage     *Stage
	topic     string
	spanName  string // "process <topic>", the span of each record's handling
	id        int
	start     int64
	committed int64 // last committed offset (the next record to read), -1 before the first
	lag       atomic.Int64
	dirty     atomic.Bool // a handled record's outputs never reached the producer

	mu      sync.Mutex
	pending []*pendingRecord // in offset order
	done    int64            // offset after the last record whose outputs, and all before, are acknowledged; -1 if none
	freed   chan struct{}    // signalled when pending shrinks

	send sendContext // only run's goroutine uses it
}

// sendContext is the context handle gives the producer a record's outputs with: not cancelled
// with the partition, and ending DrainTimeout after it was made. One serves the records of
// about a tenth of DrainTimeout, so every record's outputs still have at least nine tenths of
// it; a context and timer per record were 0.7 % of the server's CPU at 5,000 events/s.
type sendContext struct {
	ctx    context.Context
	cancel context.CancelFunc
}

func (c *sendContext) get(parent context.Context, timeout time.Duration) context.Context {
	if c.ctx != nil {
		if until, _ := c.ctx.Deadline(); time.Until(until) >= timeout-timeout/10 {
			return c.ctx
		}
		c.stop()
	}
	c.ctx, c.cancel = context.WithTimeout(context.WithoutCancel(parent), timeout)
	return c.ctx
}

func (c *sendContext) stop() {
	if c.cancel != nil {
		c.cancel()
	}
	c.ctx, c.cancel = nil, nil
}

// pendingRecord is an input record whose outputs are not all acknowledged.
type pendingRecord struct {
	task   *partitionTask
	offset int64
	left   atomic.Int32
	failed []kafka.Message // outputs the producer handed back, to be sent again
}

func (t *partitionTask) key() string { return t.topic + "/" + strconv.Itoa(t.id) }

func (t *partitionTask) run(ctx context.Context) {
	s := t.stage
	log := s.log.With(zap.String("topic", t.topic), zap.Int("partition", t.id))
	s.mu.Lock()
	s.owned[t.key()] = t
	s.mu.Unlock()

	f := newFetcher(s.cfg.Security, s.cfg.Brokers, t.topic, t.id, t.start, s.cfg.MaxBytes, s.cfg.MaxWait, s.cfg.FetchPace)
	defer f.close()
	defer t.send.stop()
	fetchRetry := backoff{min: s.cfg.RetryBackoff, max: 5 * time.Second}
fetching:
	for ctx.Err() == nil {
		recs, err := f.fetch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			wait := fetchRetry.next()
			log.Warn("fetch failed, retrying", zap.Error(err), zap.Duration("backoff", wait))
			sleepCtx(ctx, wait)
			continue
		}
		fetchRetry.reset()
		s.fetches.Add(1)
		t.lag.Store(f.lag())
		for _, rec := range recs {
			t.lag.Store(max(rec.HighWaterMark-rec.Offset-1, 0))
			if ctx.Err() != nil || !t.handle(ctx, log, rec) {
				// Revoked or stopped: the rest of the fetch is the next owner's.
				break fetching
			}
		}
	}
	t.drain(log)
}

// handle runs the handler on rec until it succeeds, then hands its outputs to the producer.
// It returns false when ctx ended first.
func (t *partitionTask) handle(ctx context.Context, log *zap.Logger, rec kafka.Message) bool {
	s := t.stage
	// Wait for room before the handler runs: once it has run, its effects on the stage's
	// state (a dedup set, an incident) are applied, and its outputs must go out.
	if !t.waitForRoom(ctx) {
		return false
	}
	partition := ctx
	ctx = s.cfg.TraceContext(ctx, rec)
	if s.cfg.Tracer != nil {
		var span trace.Span
		ctx, span = s.cfg.Tracer.Start(ctx, t.spanName, trace.WithSpanKind(trace.SpanKindConsumer))
		defer span.End()
		if span.IsRecording() {
			span.SetAttributes(attribute.String("messaging.system", "kafka"),
				attribute.String("messaging.consumer.group.name", s.cfg.GroupID),
				attribute.String("messaging.destination.name", t.topic),
				attribute.Int("messaging.destination.partition.id", t.id),
				attribute.Int64("messaging.kafka.offset", rec.Offset))
		}
	}
	retry := backoff{min: s.cfg.RetryBackoff, max: 5 * time.Second}
	var outs []kafka.Message
	for {
		var err error
		outs, err = t.call(ctx, rec)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return false // a failed handler applied nothing
		}
		s.retries.Add(1)
		wait := retry.next()
		trace.SpanFromContext(ctx).AddEvent("handler failed; retrying", trace.WithAttributes(attribute.String("error", err.Error())))
		log.Warn("handler failed; handing the record over again", zap.Int64("offset", rec.Offset),
			zap.Error(err), zap.Duration("backoff", wait), TraceField(ctx))
		if !sleepCtx(ctx, wait) {
			return false
		}
	}
	s.handled.Add(1)
	InjectTrace(ctx, outs)
	if len(outs) == 0 {
		t.track(&pendingRecord{task: t, offset: rec.Offset})
		return true
	}
	p := &pendingRecord{task: t, offset: rec.Offset}
	p.left.Store(int32(len(outs)))
	s.outputs.Add(uint64(len(outs)))
	// The outputs go to the producer even when the partition is being revoked meanwhile:
	// dropping them would leave the handler's effects without their records (an event marked
	// seen and never written — lost when the record is handled again as a replay). Only a
	// producer that takes nothing for DrainTimeout (at least nine tenths of it: sendContext)
	// stops this, and then the partition's state is marked dirty so that it is not kept into
	// the next generation.
	sctx := t.send.get(partition, s.cfg.DrainTimeout)
	for {
		// Tracked only once the producer has the outputs: a record whose outputs never left
		// must not hold up the drain. An answer that comes before track finds the record
		// done when track appends it.
		err := s.produce.send(sctx, p, outs)
		if err == nil {
			t.track(p)
			return true
		}
		if sctx.Err() != nil || errors.Is(err, ErrClosed) {
			t.dirty.Store(true)
			log.Error("outputs of a handled record not handed to the producer; the partition will be loaded afresh",
				zap.Int64("offset", rec.Offset), zap.Error(err), TraceField(ctx))
			return false
		}
		log.Warn("handing outputs to the producer failed; retrying", zap.Int64("offset", rec.Offset), zap.Error(err), TraceField(ctx))
		if !sleepCtx(sctx, s.cfg.RetryBackoff) {
			continue // the next send fails on sctx and takes the branch above
		}
	}
}

// call runs the handler, turning a panic into an error: a bug in one record's handling must
// not take the process down.
func (t *partitionTask) call(ctx context.Context, rec kafka.Message) (outs []kafka.Message, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panic: %v", p)
		}
	}()
	return t.stage.handle(ctx, rec)
}

// waitForRoom waits while MaxPending records of this partition wait for the broker.
func (t *partitionTask) waitForRoom(ctx context.Context) bool {
	for {
		t.mu.Lock()
		n := len(t.pending)
		t.mu.Unlock()
		if n < t.stage.cfg.MaxPending {
			return true
		}
		select {
		case <-t.freed:
		case <-ctx.Done():
			return false
		}
	}
}

// track appends a handled record. One whose outputs are all acknowledged (or that has none)
// and that waits for nobody before it is done at once.
func (t *partitionTask) track(p *pendingRecord) {
	t.mu.Lock()
	t.pending = append(t.pending, p)
	t.advanceLocked()
	t.mu.Unlock()
}

// produced is the producer's answer for one output of p. A failed output is sent again: the
// writer already retried it MaxAttempts times in order, so this happens only after a long
// outage or a refusal, and it is logged by the producer.
func (p *pendingRecord) produced(m kafka.Message, err error) {
	t := p.task
	if err != nil {
		m.WriterData = nil
		m.Partition, m.Offset = 0, 0
		go t.resend(p, m)
		return
	}
	if p.left.Add(-1) == 0 {
		t.mu.Lock()
		t.advanceLocked()
		t.mu.Unlock()
	}
}

// withLabelsOf is ctx with the profiler labels of from. kafka-go starts a generation with a
// context of its own; the stage's label must travel with it, because the producer sets a
// goroutine's labels back from the context it was called with (Producer.send).
func withLabelsOf(ctx, from context.Context) context.Context {
	var kv []string
	pprof.ForLabels(from, func(k, v string) bool {
		kv = append(kv, k, v)
		return true
	})
	if len(kv) == 0 {
		return ctx
	}
	return pprof.WithLabels(ctx, pprof.Labels(kv...))
}

// resend produces one failed output again after a backoff, until it is acknowledged or the
// producer is closed (then the record stays uncommitted and comes again after a restart).
func (t *partitionTask) resend(p *pendingRecord, m kafka.Message) {
	time.Sleep(t.stage.cfg.RetryBackoff)
	if err := t.stage.produce.send(producerLabels, p, []kafka.Message{m}); err != nil { // no deadline; runs on the producer's goroutines
		t.stage.log.Warn("output abandoned: the producer is closed", zap.Int("partition", t.id),
			zap.Int64("offset", p.offset), zap.Error(err))
	}
}

// advanceLocked pops the records at the head that are done and moves the committable offset.
func (t *partitionTask) advanceLocked() {
	n := 0
	for n < len(t.pending) && t.pending[n].left.Load() == 0 {
		t.done = t.pending[n].offset + 1
		n++
	}
	if n == 0 {
		return
	}
	clear(t.pending[:n])
	t.pending = t.pending[n:]
	select {
	case t.freed <- struct{}{}:
	default:
	}
}

// committable is the offset to commit: the record after the last one done.
func (t *partitionTask) committable() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.done
}

// drain waits, up to DrainTimeout, until every handled record's outputs are acknowledged.
func (t *partitionTask) drain(log *zap.Logger) {
	deadline := time.Now().Add(t.stage.cfg.DrainTimeout)
	for {
		t.mu.Lock()
		n := len(t.pending)
		t.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			log.Warn("partition given up with outputs unacknowledged; their records will be handled again", zap.Int("records", n))
			return
		}
		select {
		case <-t.freed:
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// CoPartitionedBalancer is the group balancer stages use (exported for its test).
func CoPartitionedBalancer() kafka.GroupBalancer { return coPartitioned{} }
