package transport

import (
	"context"
	"errors"
	"fmt"
	"runtime/pprof"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"golang.org/x/sync/semaphore"
)

// ProducerConfig configures a Producer.
type ProducerConfig struct {
	// Brokers are the bootstrap addresses (host:port).
	Brokers []string
	// Security secures the connections (TLS, SASL); nil uses the process's (UseSecurity).
	Security *Security

	// Linger is how long a partition's batch waits for more records before it is sent
	// (default 5 ms). Records from every stage and every input share these batches, so the
	// linger costs latency, never throughput: nothing waits for it but the batch itself.
	Linger time.Duration

	// BatchSize and BatchBytes cap one produce request per partition (defaults 64 records
	// and 1 MiB). kafka-go allocates every batch at BatchSize capacity, so a large value costs
	// memory and clearing on every linger of every partition, busy or not.
	BatchSize  int
	BatchBytes int64

	// MaxInFlightBytes bounds the bytes handed to the producer and not yet acknowledged
	// (default 64 MiB). A stage that would exceed it waits: that is the pipeline's
	// backpressure when the broker is slow or away.
	MaxInFlightBytes int64

	// MaxAttempts is how often a batch is tried before its records are failed back to their
	// owners (default 1,000; with the 100 ms–1 s backoff, about a quarter of an hour). The
	// writer retries a partition's batches in order, so a long attempt budget is what keeps
	// outputs in order through a broker outage; a stage retries what still fails.
	MaxAttempts int

	// WriteTimeout bounds one produce request (default 10 s).
	WriteTimeout time.Duration
}

func (c *ProducerConfig) setDefaults() {
	if c.Linger == 0 {
		c.Linger = 5 * time.Millisecond
	}
	if c.BatchSize == 0 {
		c.BatchSize = 64
	}
	if c.BatchBytes == 0 {
		c.BatchBytes = 1 << 20
	}
	if c.MaxInFlightBytes == 0 {
		c.MaxInFlightBytes = 64 << 20
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 1000
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
}

// Validate reports every problem in the configuration at once.
func (c ProducerConfig) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("producer: no brokers"))
	}
	if c.Linger < 0 || c.WriteTimeout < 0 {
		errs = append(errs, errors.New("producer: durations must not be negative"))
	}
	if c.BatchSize < 1 || c.BatchBytes < 1 || c.MaxInFlightBytes < 1 || c.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("producer: BatchSize %d, BatchBytes %d, MaxInFlightBytes %d and MaxAttempts %d must be positive",
			c.BatchSize, c.BatchBytes, c.MaxInFlightBytes, c.MaxAttempts))
	}
	return errors.Join(errs...)
}

// Producer writes records asynchronously through one kafka-go Writer shared by every stage
// of the process, so records of many inputs and many stages share produce requests. Each
// record carries its owner's completion (a stage's pending input, or a synchronous caller
// waiting in Write); the writer's Completion callback hands the broker's answer back to it.
type Producer struct {
	cfg ProducerConfig
	log *zap.Logger
	w   *kafka.Writer
	tr  *kafka.Transport
	mem *semaphore.Weighted

	closed   atomic.Bool
	failures atomic.Uint64
}

// producerLabels mark the goroutines kafka-go starts for the shared writer (one per partition,
// and its connections, started by whichever caller writes first): their work is the
// producer's, not that caller's stage, in a CPU profile (go tool pprof -tags).
var producerLabels = pprof.WithLabels(context.Background(), pprof.Labels("producer", "shared"))

// owner is told the broker's answer for one record it produced.
type owner interface {
	produced(m kafka.Message, err error)
}

// NewProducer returns a Producer writing to cfg.Brokers. It does not dial until the first
// record.
func NewProducer(cfg ProducerConfig, log *zap.Logger) (*Producer, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	log = log.Named("producer")
	info, errLog := kafkaLoggers(log)
	p := &Producer{cfg: cfg, log: log, mem: semaphore.NewWeighted(cfg.MaxInFlightBytes)}
	p.tr = cfg.Security.Transport()
	p.w = &kafka.Writer{
		Addr:                   kafka.TCP(cfg.Brokers...),
		Balancer:               &kafka.Hash{},
		MaxAttempts:            cfg.MaxAttempts,
		WriteBackoffMin:        100 * time.Millisecond,
		WriteBackoffMax:        time.Second,
		BatchSize:              cfg.BatchSize,
		BatchBytes:             cfg.BatchBytes,
		BatchTimeout:           cfg.Linger,
		WriteTimeout:           cfg.WriteTimeout,
		RequiredAcks:           kafka.RequireAll,
		AllowAutoTopicCreation: true,
		Async:                  true,
		Completion:             p.complete,
		Transport:              p.tr,
		Logger:                 info,
		ErrorLogger:            errLog,
	}
	return p, nil
}

// Failures counts records the writer gave up on (after MaxAttempts) and handed back.
func (p *Producer) Failures() uint64 { return p.failures.Load() }

// weight is what a record takes from the in-flight budget until it is acknowledged; a record
// larger than the whole budget takes all of it.
func (p *Producer) weight(m *kafka.Message) int64 {
	return min(int64(len(m.Key)+len(m.Value)+64), p.cfg.MaxInFlightBytes)
}

// send hands msgs to the writer, each with o as its owner. It waits while the in-flight
// budget is spent; it fails only when ctx ends first or the producer is closed.
func (p *Producer) send(ctx context.Context, o owner, msgs []kafka.Message) error {
	if p.closed.Load() {
		return ErrClosed
	}
	// Acquire in parts no larger than the budget, or a large batch would wait forever.
	var taken, part int64
	for i := range msgs {
		msgs[i].WriterData = o
		w := p.weight(&msgs[i])
		if part+w > p.cfg.MaxInFlightBytes {
			if err := p.mem.Acquire(ctx, part); err != nil {
				p.mem.Release(taken)
				return err
			}
			taken, part = taken+part, 0
		}
		part += w
	}
	if err := p.mem.Acquire(ctx, part); err != nil {
		p.mem.Release(taken)
		return err
	}
	taken += part
	pprof.SetGoroutineLabels(producerLabels)
	err := p.w.WriteMessages(ctx, msgs...)
	pprof.SetGoroutineLabels(ctx) // the caller's labels, which its context must carry (withLabelsOf)
	if err != nil {
		// Async writes fail only before they are queued (closed writer, no metadata for the
		// topic): nothing of msgs was taken.
		p.mem.Release(taken)
		return fmt.Errorf("produce %d record(s): %w", len(msgs), err)
	}
	return nil
}

// complete is the writer's Completion callback: one partition's batch, written or failed.
func (p *Producer) complete(msgs []kafka.Message, err error) {
	if err != nil {
		p.failures.Add(uint64(len(msgs)))
		p.log.Warn("produce failed after every attempt; handing the records back to their owners",
			zap.Int("records", len(msgs)), zap.Error(err))
	}
	var n int64
	for i := range msgs {
		n += p.weight(&msgs[i])
		if o, ok := msgs[i].WriterData.(owner); ok {
			o.produced(msgs[i], err)
		}
	}
	p.mem.Release(n)
}

// Write produces msgs and waits until the broker acknowledged every one of them (or one
// failed, or ctx ended). It is for the few writers outside a stage (HTTP commands, clocks,
// the simulator): their records share batches with the stages' traffic.
func (p *Producer) Write(ctx context.Context, msgs ...kafka.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	w := &waiter{done: make(chan struct{})}
	w.left.Store(int64(len(msgs)))
	if err := p.send(ctx, w, msgs); err != nil {
		return err
	}
	select {
	case <-w.done:
		if e := w.err.Load(); e != nil {
			return fmt.Errorf("produce %d record(s): %w", len(msgs), *e)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Send hands one record to the producer and returns without waiting for the broker; done is
// called once with the broker's answer (nil when acknowledged). It waits only while the
// in-flight budget is spent, and fails only if ctx ends first or the producer is closed (then
// done is not called).
func (p *Producer) Send(ctx context.Context, topic, key string, value []byte, done func(error)) error {
	return p.send(ctx, callback(done), []kafka.Message{{Topic: topic, Key: []byte(key), Value: value}})
}

// callback is the owner of a record handed over by Send.
type callback func(error)

func (c callback) produced(_ kafka.Message, err error) { c(err) }

// waiter is the owner of a synchronous Write.
type waiter struct {
	left atomic.Int64
	err  atomic.Pointer[error]
	done chan struct{}
}

func (w *waiter) produced(_ kafka.Message, err error) {
	if err != nil {
		w.err.CompareAndSwap(nil, &err)
	}
	if w.left.Add(-1) == 0 {
		close(w.done)
	}
}

// Close stops taking records and waits up to grace for those in flight; then it releases the
// writer's connections. Records still unacknowledged after grace are abandoned: their owners
// never committed them, so they are produced again after a restart.
func (p *Producer) Close(grace time.Duration) error {
	if !p.closed.CompareAndSwap(false, true) {
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- p.w.Close() }()
	select {
	case err := <-done:
		p.tr.CloseIdleConnections()
		if err != nil {
			return fmt.Errorf("close producer: %w", err)
		}
		return nil
	case <-time.After(grace):
		p.log.Warn("producer closed with records still unacknowledged; they will be produced again after restart")
		return nil
	}
}
