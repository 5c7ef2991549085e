package transport_test

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap/zaptest"

	"github.com/urbanbrain/urbanbrain/transport"
	"github.com/urbanbrain/urbanbrain/transport/transporttest"
)

// TestStageCarriesTraceContext: an output of a stage carries the trace of its input, in a
// span that is the input's child and the outputs' parent; an input without a trace starts one.
func TestStageCarriesTraceContext(t *testing.T) {
	t.Parallel()
	b := transporttest.NewBroker(t, transport.EmbeddedConfig{Partitions: 2, Topics: []string{"tr.in", "tr.out"}})
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	w := rawWriter(t, b.Addrs())
	if err := w.WriteMessages(t.Context(),
		kafka.Message{Topic: "tr.in", Key: []byte("traced"), Value: []byte("1"), Headers: []kafka.Header{
			{Key: transport.TraceParentHeader, Value: []byte(parent)}, {Key: transport.TraceStateHeader, Value: []byte("city=yc")}}},
		kafka.Message{Topic: "tr.in", Key: []byte("untraced"), Value: []byte("2")},
	); err != nil {
		t.Fatal(err)
	}

	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	seen := make(chan trace.SpanContext, 2)
	h := func(ctx context.Context, in kafka.Message) ([]kafka.Message, error) {
		seen <- trace.SpanContextFromContext(ctx) // the handler runs inside the stage's span
		return []kafka.Message{{Topic: "tr.out", Key: in.Key, Value: in.Value}}, nil
	}
	st, err := transport.NewStage(transport.StageConfig{Brokers: b.Addrs(), GroupID: "tr", Topics: []string{"tr.in"},
		Tracer: tp.Tracer("test")}, h, newProducer(t, b.Addrs()), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: b.Addrs(), Topic: "tr.out", GroupID: "tr-check",
		MaxWait: 100 * time.Millisecond, StartOffset: kafka.FirstOffset, ReadLagInterval: -1})
	defer r.Close()
	rctx, rcancel := context.WithTimeout(t.Context(), waitFor)
	defer rcancel()
	outs := map[string]trace.SpanContext{}
	for len(outs) < 2 {
		m, err := r.FetchMessage(rctx)
		if err != nil {
			t.Fatalf("reading tr.out: %v", err)
		}
		sc := trace.SpanContextFromContext(transport.ExtractTrace(context.Background(), m.Headers))
		if !sc.IsValid() {
			t.Fatalf("output %s has no valid traceparent: %v", m.Key, m.Headers)
		}
		outs[string(m.Key)] = sc
	}

	want, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	traced := outs["traced"]
	if traced.TraceID() != want || traced.TraceState().Get("city") != "yc" || !traced.IsSampled() {
		t.Errorf("traced output: trace %s state %q sampled %v; want the input's trace %s, its state and flags",
			traced.TraceID(), traced.TraceState().String(), traced.IsSampled(), want)
	}
	if outs["untraced"].TraceID() == want {
		t.Errorf("an input without a trace continued another one")
	}
	spans := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		spans[s.SpanContext().SpanID()] = s
	}
	for key, sc := range outs {
		s, ok := spans[sc.SpanID()]
		if !ok {
			t.Fatalf("output %s: its parent span %s is not a span of the stage", key, sc.SpanID())
		}
		if s.Name() != "process tr.in" || s.SpanKind() != trace.SpanKindConsumer {
			t.Errorf("output %s: span %q kind %v; want process tr.in, consumer", key, s.Name(), s.SpanKind())
		}
	}
	if p := spans[traced.SpanID()].Parent(); p.SpanID().String() != "00f067aa0ba902b7" || !p.IsRemote() {
		t.Errorf("stage span's parent = %v; want the input's span 00f067aa0ba902b7", p)
	}
	if p := spans[outs["untraced"].SpanID()].Parent(); p.IsValid() {
		t.Errorf("an input without a trace: stage span has parent %v; want a new root", p)
	}
	for range 2 {
		if sc := <-seen; !sc.IsValid() {
			t.Errorf("handler ctx has no span context")
		}
	}
}

// BenchmarkStageTrace is the per-record cost of carrying the trace through a stage: read the
// input's traceparent, start and end the span, write the headers on two outputs — with the
// SDK provider and no exporter (the default), and without a tracer (pass-through only).
func BenchmarkStageTrace(b *testing.B) {
	in := kafka.Message{Topic: "city.events", Headers: []kafka.Header{{Key: "urbanbrain-sig", Value: make([]byte, 47)},
		{Key: transport.TraceParentHeader, Value: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")}}}
	run := func(b *testing.B, tracer trace.Tracer) {
		b.ReportAllocs()
		for b.Loop() {
			ctx := transport.ExtractTrace(context.Background(), in.Headers)
			var span trace.Span
			if tracer != nil {
				ctx, span = tracer.Start(ctx, "process city.events", trace.WithSpanKind(trace.SpanKindConsumer))
			}
			outs := []kafka.Message{{Topic: "city.signals"}, {Topic: "city.signals"}}
			transport.InjectTrace(ctx, outs)
			if span != nil {
				span.End()
			}
		}
	}
	b.Run("sdk-no-exporter", func(b *testing.B) { run(b, sdktrace.NewTracerProvider().Tracer("bench")) })
	b.Run("pass-through", func(b *testing.B) { run(b, nil) })
	b.Run("none", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = []kafka.Message{{Topic: "city.signals"}, {Topic: "city.signals"}}
		}
	})
}
