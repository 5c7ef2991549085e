package app

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
	"github.com/urbanbrain/urbanbrain/transport"
)

// A storage sink is the consumer that projects one topic into the store. It is not a watermill
// route, because a route hands over one message and waits for its ack before fetching the next,
// so a handler can never hold more than one message: batching would mean acking before the
// write, and a crash would then lose what was acked. A sink instead reads the topic with its own
// kafka-go group reader and:
//
//   - collects records until the batch has --store-batch-size of them or its first record has
//     waited --store-flush-interval;
//   - writes the batch, and only after the store has it commits the batch's offsets;
//   - when the store fails, retries the same batch with backoff and fetches nothing meanwhile:
//     the backlog stays in Kafka, not in memory (what is held is one batch plus the reader's
//     bounded prefetch), and a shutdown during the outage commits nothing, so the batch is
//     delivered again after the restart;
//   - dead-letters, with the reason, the records it cannot decode and those the store refuses
//     for good (a *storage.RejectedError: the backend isolated them, everything else of the
//     batch is stored).
//
// A retried or redelivered batch is rebuilt from the same records, and the stores write
// idempotently (events by type and id, incidents by id and version), so nothing is counted
// twice.
type storageSink struct {
	name  string // consumer group urbanbrain.<name>
	topic string
	write sinkWriter
}

// sinkWriter decodes and stores a batch of records. It returns the records to dead-letter,
// and an error only when the whole batch must be retried.
type sinkWriter func(ctx context.Context, recs []kafka.Message) ([]sinkReject, error)

type sinkReject struct {
	index        int
	code, reason string // the dead letter's
}

// batchOf adapts a store's batch handler for records of the given CloudEvents types.
func batchOf[T any](a *App, types []string, write func(context.Context, []T) error) sinkWriter {
	consumer := a.decodes.consumer()
	return func(ctx context.Context, recs []kafka.Message) ([]sinkReject, error) {
		var rejects []sinkReject
		vals := make([]T, 0, len(recs))
		from := make([]int, 0, len(recs))
		for i, r := range recs {
			var v T
			if err := decodeShared(a.decodes, consumer, r, types, &v); err != nil {
				rejects = append(rejects, sinkReject{index: i, code: event.DeadLetterUndecodable, reason: err.Error()})
				continue
			}
			vals = append(vals, v)
			from = append(from, i)
		}
		if len(vals) == 0 {
			return rejects, nil
		}
		err := write(ctx, vals)
		if rows, ok := storage.Rejections(err); ok {
			for _, row := range rows {
				rejects = append(rejects, sinkReject{index: from[row.Index], code: event.DeadLetterStoreRefused, reason: "refused by the store: " + row.Reason})
			}
			err = nil
		}
		return rejects, err
	}
}

// sinkMetrics are the storage sinks' Prometheus metrics, and the high-water mark of rows held
// in memory, which the fault test reads.
type sinkMetrics struct {
	rows, deadLettered, failures *prometheus.CounterVec
	pending                      *prometheus.GaugeVec
	maxPending                   atomic.Int64
}

func newSinkMetrics(reg prometheus.Registerer) *sinkMetrics {
	m := &sinkMetrics{
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "urbanbrain", Subsystem: "storage",
			Name: "rows_total", Help: "Records written to the store, by sink."}, []string{"sink"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "urbanbrain", Subsystem: "storage",
			Name: "dead_lettered_total", Help: "Records sent to city.deadletter by the storage sinks (undecodable or refused by the store)."}, []string{"sink"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "urbanbrain", Subsystem: "storage",
			Name: "write_failures_total", Help: "Batch writes that failed and will be retried (the store is down or overloaded)."}, []string{"sink"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "urbanbrain", Subsystem: "storage",
			Name: "pending_rows", Help: "Records fetched from Kafka and not yet written, by sink (at most --store-batch-size)."}, []string{"sink"}),
	}
	for _, c := range []prometheus.Collector{m.rows, m.deadLettered, m.failures, m.pending} {
		_ = reg.Register(c) // a second Run of the same App registers the same collectors again
	}
	return m
}

// runStorageSinks runs every storage sink until ctx ends.
func (a *App) runStorageSinks(ctx context.Context) error {
	sinks := a.storageSinks()
	if len(sinks) == 0 {
		return nil
	}
	if a.sinks == nil {
		a.sinks = newSinkMetrics(a.registry)
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, s := range sinks {
		// Every sink's series exist from the start, at 0: a scraper (or bench, which reads the
		// stored rows before and after its load) sees a count, not a missing series.
		for _, c := range []*prometheus.CounterVec{a.sinks.rows, a.sinks.deadLettered, a.sinks.failures} {
			c.WithLabelValues(s.name)
		}
		if s.topic == event.TopicIncidents {
			s.write = a.notifyStored(s.write) // wakes commands waiting to be readable (store.go)
		}
		s.write = a.authenticSink(s.write) // records no instance signed are dead-lettered (signing.go)
		g.Go(func() error {
			return runLabelled(gctx, "sink", s.name, func(ctx context.Context) error { return a.runSink(ctx, s) })
		})
	}
	return g.Wait()
}

// sink reader limits: what one sink holds in memory besides its batch, however large the
// backlog in Kafka is.
const (
	sinkQueueCapacity = 256     // records kafka-go prefetches into its queue
	sinkMaxBytes      = 1 << 20 // bytes of one fetch, per partition
	// sinkMaxWait bounds a fetch that finds nothing new. kafka-go's reader asks the broker to
	// wait a quarter of it less than the connection waits for the answer, and a late answer is
	// an i/o timeout that costs a new connection and a backoff: with 250 ms the margin was
	// 62 ms, which the embedded broker's one goroutine overran while it fsynced batches under
	// load (dozens of such warnings in a 30 s flat-out bench). A record that arrives ends the
	// wait at once (MinBytes 1), so this costs no latency; an idle partition asks less often.
	// It must stay below 1 s: from 1 s on, kafka-go subtracts a whole second (its default
	// round trip, time.go adjustDeadlineForRTT) and asks the broker not to wait at all.
	sinkMaxWait = 900 * time.Millisecond
)

// sinkGroup is a storage sink's consumer group. A shared store (ClickHouse) is written once by
// all instances together: one group. An embedded SQLite database is this instance's own read
// model, so it must see every partition: a group per instance (its id is kept in the data
// directory, so a restart resumes). Either way every node's API answers for the whole city.
func (a *App) sinkGroup(name string) string {
	if a.cfg.Store == StoreSQLite {
		return "urbanbrain." + name + "." + a.instanceID
	}
	return "urbanbrain." + name
}

func (a *App) runSink(ctx context.Context, s storageSink) error {
	log := a.log.Named("storage").With(zap.String("sink", s.name))
	rc := kafka.ReaderConfig{
		Brokers:           a.brokers,
		GroupID:           a.sinkGroup(s.name),
		Topic:             s.topic,
		Dialer:            transport.Dialer(), // the process's TLS and SASL
		QueueCapacity:     sinkQueueCapacity,
		MinBytes:          1,
		MaxBytes:          sinkMaxBytes,
		MaxWait:           sinkMaxWait,
		ReadLagInterval:   -1,
		CommitInterval:    0, // CommitMessages returns once the broker has the offsets
		HeartbeatInterval: time.Second,
		SessionTimeout:    10 * time.Second,
		RebalanceTimeout:  10 * time.Second,
		JoinGroupBackoff:  500 * time.Millisecond,
		StartOffset:       kafka.FirstOffset,
		ReadBackoffMin:    100 * time.Millisecond,
		ReadBackoffMax:    5 * time.Second,
		Logger: kafka.LoggerFunc(func(format string, args ...any) {
			if ce := log.Check(zap.DebugLevel, "kafka-go"); ce != nil {
				ce.Write(zap.String("detail", fmt.Sprintf(format, args...)))
			}
		}),
		ErrorLogger: kafka.LoggerFunc(func(format string, args ...any) {
			log.Warn("kafka-go", zap.String("detail", fmt.Sprintf(format, args...)))
		}),
	}
	if err := rc.Validate(); err != nil {
		return fmt.Errorf("storage sink %s: %w", s.name, err)
	}
	r := kafka.NewReader(rc)
	defer func() {
		if err := r.Close(); err != nil {
			log.Warn("closing reader", zap.Error(err))
		}
	}()

	size, interval := a.cfg.StoreBatchSize, a.cfg.StoreFlushInterval
	batch := make([]kafka.Message, 0, size)
	var due time.Time // when the batch's first record has waited long enough
	fetchBackoff := time.Duration(0)
	for {
		fctx, cancel := ctx, context.CancelFunc(func() {})
		if len(batch) > 0 {
			fctx, cancel = context.WithDeadline(ctx, due)
		}
		m, err := r.FetchMessage(fctx)
		cancel()
		switch {
		case err == nil:
			fetchBackoff = 0
			if len(batch) == 0 {
				due = time.Now().Add(interval)
			}
			batch = append(batch, m)
			a.notePending(s.name, len(batch))
			if len(batch) < size {
				continue
			}
		case ctx.Err() != nil:
			// Shutting down: what is already fetched is written if the store takes it within
			// the grace period; otherwise it is not committed and comes again after restart.
			if len(batch) > 0 {
				gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.ShutdownGrace)
				err := a.flushSink(gctx, log, r, s, batch)
				cancel()
				if err != nil {
					log.Warn("batch not written before shutdown; it will be delivered again", zap.Int("records", len(batch)), zap.Error(err))
				}
			}
			return nil
		case errors.Is(err, context.DeadlineExceeded):
			// The batch's time is up.
		default:
			fetchBackoff = min(max(2*fetchBackoff, 100*time.Millisecond), 5*time.Second)
			log.Warn("fetch failed, retrying", zap.Error(err), zap.Duration("backoff", fetchBackoff))
			sleepCtx(ctx, fetchBackoff) // on shutdown the next fetch fails and the branch above runs
			continue
		}
		if err := a.flushSink(ctx, log, r, s, batch); err != nil {
			if ctx.Err() != nil {
				log.Info("shutdown during a store outage; the batch will be delivered again", zap.Int("records", len(batch)))
				return nil
			}
			return err
		}
		batch = batch[:0]
		a.notePending(s.name, 0)
	}
}

// flushSink writes a batch, retrying until the store takes it or ctx ends, dead-letters what
// the store refused, and commits the batch's offsets. While it retries, nothing is fetched.
func (a *App) flushSink(ctx context.Context, log *zap.Logger, r *kafka.Reader, s storageSink, batch []kafka.Message) error {
	var rejects []sinkReject
	for wait := time.Duration(0); ; {
		var err error
		rejects, err = s.write(ctx, batch)
		if err == nil {
			if wait > 0 {
				log.Info("store is back; batch written", zap.Int("records", len(batch)))
			}
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		a.sinks.failures.WithLabelValues(s.name).Inc()
		wait = min(max(2*wait, 100*time.Millisecond), 5*time.Second)
		log.Warn("store write failed; retrying the batch and not consuming meanwhile",
			zap.Int("records", len(batch)), zap.Duration("backoff", wait), zap.Error(err))
		if !sleepCtx(ctx, wait) {
			return ctx.Err()
		}
	}
	for _, rj := range rejects {
		// Until the dead letter is out, the batch is not committed: a record is never dropped
		// silently. The broker being down is as transient as the store being down.
		for wait := time.Duration(0); ; {
			err := a.deadLetterRecord(ctx, batch[rj.index], rj.code, rj.reason)
			if err == nil {
				break
			}
			wait = min(max(2*wait, 100*time.Millisecond), 5*time.Second)
			log.Warn("dead-letter publish failed; retrying", zap.Duration("backoff", wait), zap.Error(err))
			if !sleepCtx(ctx, wait) {
				return ctx.Err()
			}
		}
	}
	a.sinks.rows.WithLabelValues(s.name).Add(float64(len(batch) - len(rejects)))
	a.sinks.deadLettered.WithLabelValues(s.name).Add(float64(len(rejects)))
	if err := r.CommitMessages(ctx, batch...); err != nil {
		// The records are stored; after a rebalance or restart they come again and are
		// absorbed by the idempotent writes.
		log.Warn("commit failed; the batch may be delivered again", zap.Error(err))
	}
	return nil
}

// deadLetterRecord sends a record the store will never take to city.deadletter. Its id is
// derived from the record's position, so a retried flush does not make a second dead letter
// with a different id.
func (a *App) deadLetterRecord(ctx context.Context, m kafka.Message, code, reason string) error {
	a.log.Warn("dead-lettering a record the store cannot take", zap.String("topic", m.Topic),
		zap.Int("partition", m.Partition), zap.Int64("offset", m.Offset), zap.String("code", code), zap.String("reason", reason))
	dl := event.DeadLetter{Code: code, Reason: reason, Topic: m.Topic, Key: string(m.Key), Original: m.Value, At: time.Now().UTC()}
	id := "storage:" + m.Topic + "/" + strconv.Itoa(m.Partition) + "/" + strconv.FormatInt(m.Offset, 10)
	b, err := event.Encode(event.TypeDeadLetter, id, dl.At, dl)
	if err != nil {
		return err
	}
	key := dl.Key
	if key == "" {
		key = event.UnknownStreet
	}
	return a.Publish(ctx, event.TopicDeadLetter, key, b)
}

func (a *App) notePending(sink string, n int) {
	a.sinks.pending.WithLabelValues(sink).Set(float64(n))
	for {
		cur := a.sinks.maxPending.Load()
		if int64(n) <= cur || a.sinks.maxPending.CompareAndSwap(cur, int64(n)) {
			return
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
