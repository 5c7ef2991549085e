package simulate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/transport"
)

// KafkaSinkConfig configures a KafkaSink.
type KafkaSinkConfig struct {
	Brokers []string
	// Security secures the connections (TLS, SASL); nil: the process's (transport.UseSecurity).
	Security *transport.Security

	// MaxInFlight is how many records may await the broker's acknowledgement; Send waits
	// (backpressure, counted in Delivery.Blocked) when that many do. Default 20,000.
	MaxInFlight int

	// Linger is how long a partition's batch waits for more records (default 5 ms).
	Linger time.Duration

	// MaxAttempts is how often a batch is tried before its records count as failed
	// (default 5).
	MaxAttempts int
}

func (c *KafkaSinkConfig) setDefaults() {
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 20000
	}
	if c.Linger == 0 {
		c.Linger = 5 * time.Millisecond
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 5
	}
}

// Validate reports every problem with the configuration.
func (c KafkaSinkConfig) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("kafka sink: no brokers"))
	}
	if c.MaxInFlight < 0 || c.Linger < 0 || c.MaxAttempts < 0 {
		errs = append(errs, errors.New("kafka sink: limits must not be negative"))
	}
	return errors.Join(errs...)
}

// KafkaSink produces the simulator's records to Kafka asynchronously: Send queues a record
// and returns; records of many Sends share a partition's batch, every partition has a request
// in flight, and the broker's acknowledgements (all in-sync replicas) arrive in the
// background, counted in Delivery. Records are keyed by their producer's key (device, ticket,
// camera), so they spread over the partitions and each producer keeps its order. A load
// generator reports loss rather than queueing without bound: at most MaxInFlight records
// await acknowledgement, and a record that fails after MaxAttempts is counted as failed.
type KafkaSink struct {
	p   *transport.Producer
	log *zap.Logger
	sem chan struct{} // a token per record in flight

	acked, failed atomic.Int64
	blocked       atomic.Int64 // nanoseconds Send waited for room
	handoff       atomic.Int64 // nanoseconds Send spent in the writer
	inflight      sync.WaitGroup

	mu      sync.Mutex
	lastErr error
	unseen  error // a failure not yet returned by Send
}

var _ interface {
	Sink
	Waiter
	DeliveryReporter
} = (*KafkaSink)(nil)

// NewKafkaSink returns a sink producing to cfg.Brokers. It does not dial until the first Send.
func NewKafkaSink(cfg KafkaSinkConfig, log *zap.Logger) (*KafkaSink, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	k := &KafkaSink{log: log, sem: make(chan struct{}, cfg.MaxInFlight)}
	var err error
	k.p, err = transport.NewProducer(transport.ProducerConfig{Brokers: cfg.Brokers, Security: cfg.Security, Linger: cfg.Linger, MaxAttempts: cfg.MaxAttempts}, log)
	if err != nil {
		return nil, fmt.Errorf("kafka sink: %w", err)
	}
	return k, nil
}

// Send queues one record. It waits while MaxInFlight records await acknowledgement, and
// returns the error of a batch that failed since the last Send (once), so that a simulator
// stops when the broker stays unreachable.
func (k *KafkaSink) Send(ctx context.Context, topic, key string, value []byte) error {
	select {
	case k.sem <- struct{}{}:
	default:
		start := time.Now()
		select {
		case k.sem <- struct{}{}:
			k.blocked.Add(int64(time.Since(start)))
		case <-ctx.Done():
			k.blocked.Add(int64(time.Since(start)))
			return ctx.Err() // not sent, not counted
		}
	}
	k.inflight.Add(1)
	// Once there is room the record is sent even if ctx ends meanwhile: ctx would only
	// bound the writer's metadata lookup, and a record cut off there would count as lost.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	start := time.Now()
	err := k.p.Send(wctx, topic, key, value, func(err error) { k.completed(topic, err) })
	k.handoff.Add(int64(time.Since(start)))
	if err != nil {
		// Async writes fail here only before queueing (closed writer, no metadata).
		<-k.sem
		k.inflight.Done()
		k.failed.Add(1)
		k.noteErr(err)
		return fmt.Errorf("produce to %s: %w", topic, err)
	}
	k.mu.Lock()
	err = k.unseen
	k.unseen = nil
	k.mu.Unlock()
	return err
}

func (k *KafkaSink) completed(topic string, err error) {
	if err != nil {
		k.failed.Add(1)
		k.noteErr(fmt.Errorf("produce to %s: %w", topic, err))
	} else {
		k.acked.Add(1)
	}
	<-k.sem
	k.inflight.Done()
}

func (k *KafkaSink) noteErr(err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.lastErr == nil {
		k.log.Warn("simulator: produce failed", zap.Error(err))
	}
	k.lastErr, k.unseen = err, err
}

// Wait returns once every record sent so far is acknowledged or failed, or ctx is done.
func (k *KafkaSink) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { k.inflight.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%d records still in flight: %w", len(k.sem), ctx.Err())
	}
}

// Delivery counts acknowledgements and failures so far.
func (k *KafkaSink) Delivery() Delivery {
	d := Delivery{Acked: k.acked.Load(), Failed: k.failed.Load(), InFlight: int64(len(k.sem)),
		Blocked: time.Duration(k.blocked.Load()), Handoff: time.Duration(k.handoff.Load())}
	k.mu.Lock()
	if k.lastErr != nil {
		d.LastErr = k.lastErr.Error()
	}
	k.mu.Unlock()
	return d
}

// Close flushes what is queued, waits for it, and releases the connections.
func (k *KafkaSink) Close() error {
	if err := k.Wait(context.Background()); err != nil {
		return err
	}
	return k.p.Close(10 * time.Second)
}
