package app

import (
	"context"
	"errors"
	"fmt"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/transport"
)

// route is one topic → handler line of routes.go: a stage of the pipeline.
type route struct {
	name        string
	topics      []string // several only when co-partitioned (same key, same partition count)
	perInstance bool
	handle      handler
	// assigned loads the state of a partition number before its records are handled;
	// revoked drops it after they are drained (ownership.go).
	assigned func(ctx context.Context, partition int, start map[string]int64) error
	revoked  func(partition int)
}

// byTopic hands each record to the handler of its topic.
func byTopic(hs map[string]handler) handler {
	return func(ctx context.Context, rec kafka.Message) (event.Outputs, error) {
		h, ok := hs[rec.Topic]
		if !ok {
			return nil, fmt.Errorf("no handler for topic %s", rec.Topic)
		}
		return h(ctx, rec)
	}
}

// fetchPace is the stage's FetchPace for the flag's value (0, not to wait, is negative there).
func fetchPace(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// handler handles one record of a route's topic and returns what it produced; outputTopic
// (routes.go) decides where each output goes.
type handler func(ctx context.Context, rec kafka.Message) (event.Outputs, error)

// typed decodes a CloudEvent of one of the given types into T and hands it to fn. A record
// that cannot be decoded is dead-lettered: it must not block its partition.
func typed[T any](a *App, types []string, fn func(context.Context, T) (event.Outputs, error)) handler {
	consumer := a.decodes.consumer()
	return func(ctx context.Context, rec kafka.Message) (event.Outputs, error) {
		var v T
		if err := decodeShared(a.decodes, consumer, rec, types, &v); err != nil {
			return event.Outputs{a.deadLetterOf(rec, "stage", event.DeadLetterUndecodable, err.Error())}, nil
		}
		outs, err := fn(ctx, v)
		var refused refusedRecord
		if errors.As(err, &refused) {
			return event.Outputs{a.deadLetterOf(rec, "stage", refused.code, refused.reason)}, nil
		}
		return outs, err
	}
}

// refusedRecord is what a typed handler returns for a record it will not take, whatever
// happens: the record is dead-lettered with the code (event.DeadLetter…) and the reason.
type refusedRecord struct{ code, reason string }

func (r refusedRecord) Error() string { return r.reason }

// none adapts a handler that produces nothing (views that only read the stream).
func none[T any](fn func(context.Context, T) error) func(context.Context, T) (event.Outputs, error) {
	return func(ctx context.Context, v T) (event.Outputs, error) { return nil, fn(ctx, v) }
}

// deadLetterOf is the dead letter for a record that cannot be handled, with its code
// (event.DeadLetter…) and the reason. Its id is the record's position, so a record handled
// again makes the same dead letter.
func (a *App) deadLetterOf(rec kafka.Message, by, code, reason string) event.Output {
	a.log.Warn("dead-lettering a record", zap.String("by", by), zap.String("topic", rec.Topic),
		zap.Int("partition", rec.Partition), zap.Int64("offset", rec.Offset), zap.String("code", code), zap.String("reason", reason),
		transport.RecordTraceField(rec))
	dl := event.DeadLetter{Code: code, Reason: reason, Topic: rec.Topic, Key: string(rec.Key), Original: rec.Value, At: time.Now().UTC()}
	key := dl.Key
	if key == "" {
		key = event.UnknownStreet
	}
	id := by + ":" + rec.Topic + "/" + strconv.Itoa(rec.Partition) + "/" + strconv.FormatInt(rec.Offset, 10)
	return event.Output{Key: key, ID: id, Time: dl.At, Data: dl}
}

// encode turns outputs into Kafka records on the topics routes.go binds them to. Each
// record's CloudEvent carries the traceparent extension of ctx's span (tracing.go); the
// header is set by whoever writes the record (write, the stage runner).
func encode(ctx context.Context, outs event.Outputs) ([]kafka.Message, error) {
	if len(outs) == 0 {
		return nil, nil
	}
	msgs := make([]kafka.Message, len(outs))
	traceparent := transport.TraceParent(ctx) // once for all the outputs of one input
	for i, o := range outs {
		topic, ceType, err := outputTopic(o)
		if err != nil {
			return nil, err
		}
		b, err := event.EncodeTraced(ceType, o.ID, o.Time, traceparent, o.Data)
		if err != nil {
			return nil, err
		}
		msgs[i] = kafka.Message{Topic: topic, Key: []byte(o.Key), Value: b}
	}
	return msgs, nil
}

// emit writes outputs made outside a stage (the clocks, HTTP calls, webhook deliveries) and
// waits for the broker's acknowledgement; they share producer batches with the stages.
func (a *App) emit(ctx context.Context, outs event.Outputs) error {
	msgs, err := encode(ctx, outs)
	if err != nil {
		return err
	}
	return a.write(ctx, msgs...)
}

// write produces raw records synchronously; before Run has started the producer it fails.
// The records carry the trace of ctx (an HTTP request's, a clock's tick) in their headers.
func (a *App) write(ctx context.Context, msgs ...kafka.Message) error {
	p := a.producer.Load()
	if p == nil {
		return errors.New("producer not started")
	}
	a.sign(msgs)
	transport.InjectTrace(ctx, msgs)
	return p.Write(ctx, msgs...)
}

// Publish sends one encoded record (the one-method publisher some callers take).
func (a *App) Publish(ctx context.Context, topic, key string, value []byte) error {
	return a.write(ctx, kafka.Message{Topic: topic, Key: []byte(key), Value: value})
}

// stageMetrics are the stages' Prometheus metrics.
type stageMetrics struct {
	handled, outputs, retries *prometheus.GaugeVec
	lag                       *prometheus.GaugeVec
}

func (a *App) newStageMetrics() *stageMetrics {
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "urbanbrain", Subsystem: "stage", Name: name, Help: help}, labels)
		_ = a.registry.Register(g) // a second Run of the same App registers the same collectors again
		return g
	}
	return &stageMetrics{
		handled: gauge("records_handled", "Records handled by the stage since the process started.", "stage"),
		outputs: gauge("records_produced", "Output records the stage handed to the producer.", "stage"),
		retries: gauge("handler_retries", "Records handed to the handler again after it failed.", "stage"),
		lag:     gauge("lag_records", "Records behind the end of an owned partition (topic/partition), as of its last fetch.", "stage", "partition"),
	}
}

// runStages runs every route of routes.go as a stage until ctx ends; each then drains its
// outputs and commits. started is closed once every stage is running.
func (a *App) runStages(ctx context.Context, started chan<- struct{}) error {
	p := a.producer.Load()
	var stages []*transport.Stage
	names := map[*transport.Stage]string{}
	for _, rt := range a.routes() {
		group := "urbanbrain." + rt.name
		if rt.perInstance {
			group += "." + a.instanceID
		}
		h := rt.handle
		st, err := transport.NewStage(transport.StageConfig{
			Brokers:        a.brokers,
			GroupID:        group,
			Topics:         rt.topics,
			OnAssigned:     rt.assigned,
			OnRevoked:      rt.revoked,
			MaxBytes:       a.cfg.StageFetchBytes,
			FetchPace:      fetchPace(a.cfg.StageFetchPace),
			MaxPending:     a.cfg.StageMaxPending,
			CommitInterval: a.cfg.CommitInterval,
			DrainTimeout:   a.cfg.ShutdownGrace,
			Tracer:         a.stageTracer(rt.topics), // tracing.go
			TraceContext:   a.recordTraceContext(rt.topics),
		}, func(ctx context.Context, rec kafka.Message) ([]kafka.Message, error) {
			var outs event.Outputs
			if err := a.authentic(rec); err != nil {
				outs = event.Outputs{a.deadLetterOf(rec, "stage", signatureCode(err), err.Error())}
			} else if outs, err = h(ctx, rec); err != nil {
				return nil, err
			}
			msgs, err := encode(ctx, outs) // ctx carries the span of this record's handling
			a.sign(msgs)
			return msgs, err // the stage runner sets the trace headers
		}, p, a.log.Named("kafka"))
		if err != nil {
			return fmt.Errorf("stage %s: %w", rt.name, err)
		}
		stages = append(stages, st)
		names[st] = rt.name
	}
	a.stages.Store(&names) // complete before /readyz reads it
	m := a.newStageMetrics()
	g, gctx := errgroup.WithContext(ctx)
	for _, st := range stages {
		g.Go(func() error { return runLabelled(gctx, "stage", names[st], st.Run) })
	}
	g.Go(func() error {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-t.C:
			}
			for st, name := range names {
				s := st.Stats()
				m.handled.WithLabelValues(name).Set(float64(s.Handled))
				m.outputs.WithLabelValues(name).Set(float64(s.Outputs))
				m.retries.WithLabelValues(name).Set(float64(s.Retries))
				for part, lag := range s.Lag {
					m.lag.WithLabelValues(name, part).Set(float64(lag))
				}
			}
		}
	})
	close(started)
	return g.Wait()
}

// runLabelled runs fn with a profiler label naming its stage or sink, which every goroutine
// it starts inherits, so a CPU profile (--pprof-addr) splits the process's work by route:
// go tool pprof -tagfocus=stage=rules, or -tags for the split.
func runLabelled(ctx context.Context, kind, name string, fn func(context.Context) error) error {
	var err error
	pprof.Do(ctx, pprof.Labels(kind, name), func(ctx context.Context) { err = fn(ctx) })
	return err
}
