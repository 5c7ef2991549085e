package app

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/transport"
)

// Trace context (docs/operations.md, "Tracing"). An event's W3C trace starts where it enters
// — the traceparent of the HTTP request or of the Kafka record, else a new trace — and every
// record it causes carries it: the traceparent header on each output record (set by the stage
// runner from the span of each record's handling, and by write for records written outside a
// stage), the CloudEvents traceparent extension inside each record the instance encodes, and
// the traceparent header of the agency webhook. Log lines about a record carry its trace_id.
//
// Spans are made by an OpenTelemetry SDK tracer provider, so a trace that starts here has
// real ids; they are exported (batch processor, OTLP over HTTP) only with --otlp-endpoint.
// Without it no span leaves the process, the stages behind ingest make none (stageTracer),
// and propagation works the same.

// tracerName is the instrumentation scope of urbanbrain's spans.
const tracerName = "github.com/urbanbrain/urbanbrain"

func (c *Config) registerTracingFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.OTLPEndpoint, "otlp-endpoint", "", "export trace spans with OTLP over HTTP to this collector (host:port or an http(s) URL; empty: no export, traceparent is still carried)")
	fs.BoolVar(&c.OTLPInsecure, "otlp-insecure", false, "export spans over plain HTTP instead of HTTPS (a collector on loopback or an inner network)")
}

func (c *Config) validateTracing() []error {
	if c.OTLPEndpoint == "" {
		return nil
	}
	if _, err := otlpOptions(c.OTLPEndpoint, c.OTLPInsecure); err != nil {
		return []error{err}
	}
	return nil
}

// otlpOptions are the exporter's options for --otlp-endpoint: a URL sets scheme, host and
// path (without a path, the standard /v1/traces), host:port the host alone (HTTPS unless
// --otlp-insecure).
func otlpOptions(endpoint string, insecure bool) ([]otlptracehttp.Option, error) {
	var opts []otlptracehttp.Option
	if u, err := url.Parse(endpoint); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		if u.Host == "" {
			return nil, fmt.Errorf("--otlp-endpoint %q: no host", endpoint)
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = "/v1/traces" // a collector's address alone means its standard path
		}
		opts = append(opts, otlptracehttp.WithEndpointURL(u.String()))
		if u.Scheme == "http" {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
	} else {
		opts = append(opts, otlptracehttp.WithEndpoint(endpoint))
	}
	if insecure {
		opts = append(opts, otlptracehttp.WithInsecure())
	}
	return opts, nil
}

// newTracing makes the tracer provider of this App: spans with real ids, no processor until
// Run starts the exporter.
func (a *App) newTracing() {
	res := resource.NewSchemaless(attribute.String("service.name", "urbanbrain"),
		attribute.String("service.instance.id", a.instanceID))
	a.tracing = sdktrace.NewTracerProvider(sdktrace.WithResource(res))
	a.tracer = a.tracing.Tracer(tracerName)
}

// startExport registers the OTLP batch exporter when --otlp-endpoint is set; the function it
// returns flushes what is left (bounded by --shutdown-grace) and unregisters it.
func (a *App) startExport() (stop func(), err error) {
	if a.cfg.OTLPEndpoint == "" {
		return func() {}, nil
	}
	opts, err := otlpOptions(a.cfg.OTLPEndpoint, a.cfg.OTLPInsecure)
	if err != nil {
		return nil, err
	}
	exp, err := otlptracehttp.New(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("--otlp-endpoint: %w", err)
	}
	bsp := sdktrace.NewBatchSpanProcessor(exp)
	a.tracing.RegisterSpanProcessor(bsp)
	return func() {
		a.tracing.UnregisterSpanProcessor(bsp)
		ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownGrace)
		defer cancel()
		if err := bsp.Shutdown(ctx); err != nil { // flushes, then closes the exporter
			a.log.Warn("exporting the last spans failed", zap.Error(err))
		}
	}, nil
}

// traceHTTP continues the caller's trace (traceparent and tracestate headers) in a server
// span around every request that may write records, and around any request that sends a
// traceparent: what the request emits (events, commands) carries that span's context. Plain
// reads without one make no span, so scrapes and polling do not flood the collector.
func (a *App) traceHTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reads := r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions
		if reads && r.Header.Get(transport.TraceParentHeader) == "" {
			next.ServeHTTP(w, r)
			return
		}
		ctx := propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		// Named by the method alone (the path holds ids); the route's pattern when the mux
		// set it on this request.
		ctx, span := a.tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path)))
		defer span.End()
		rr := r.WithContext(ctx)
		// The writer is passed through as it is: a wrapper would hide http.Hijacker from a
		// websocket upgrade that sends a traceparent.
		next.ServeHTTP(w, rr)
		if rr.Pattern != "" {
			span.SetName(rr.Pattern)
			span.SetAttributes(attribute.String("http.route", rr.Pattern))
		}
	})
}

// stageTracer is the tracer of a stage of topics. Ingest stages always make spans: a record
// that comes without a trace starts one there. The stages behind them make spans only when
// they are exported: without --otlp-endpoint nobody would see them, so they hand each
// input's trace context on to its outputs as it came, at half the cost per record
// (docs/performance.md), and every record of an event carries the trace id of its ingest.
func (a *App) stageTracer(topics []string) trace.Tracer {
	if a.cfg.OTLPEndpoint == "" && len(topics) > 0 && signedTopic(topics[0]) {
		return nil
	}
	return a.tracer
}

// recordTraceContext is how a stage of topics reads the trace context its input carries. On
// internal topics that is the traceparent header this system wrote. Producers' topics
// (city.ingest.*) also accept the CloudEvents Kafka binding's forms: a ce_traceparent header
// (binary mode), or the traceparent extension attribute of a structured event.
func (a *App) recordTraceContext(topics []string) func(context.Context, kafka.Message) context.Context {
	if len(topics) == 0 || signedTopic(topics[0]) {
		return nil // the stage's default: the traceparent header
	}
	return ingestTraceContext
}

func ingestTraceContext(ctx context.Context, rec kafka.Message) context.Context {
	if out := transport.ExtractTrace(ctx, rec.Headers); trace.SpanContextFromContext(out).IsValid() {
		return out
	}
	carrier := propagation.MapCarrier{}
	for _, h := range rec.Headers {
		switch h.Key {
		case "ce_" + transport.TraceParentHeader:
			carrier[transport.TraceParentHeader] = string(h.Value)
		case "ce_" + transport.TraceStateHeader:
			carrier[transport.TraceStateHeader] = string(h.Value)
		}
	}
	if carrier[transport.TraceParentHeader] == "" && bytes.Contains(rec.Value, []byte(`"traceparent"`)) {
		// Only records that name the attribute pay for this second read of the envelope.
		var ext struct {
			TraceParent string `json:"traceparent"`
			TraceState  string `json:"tracestate"`
		}
		if json.Unmarshal(rec.Value, &ext) == nil {
			carrier[transport.TraceParentHeader] = ext.TraceParent
			carrier[transport.TraceStateHeader] = ext.TraceState
		}
	}
	if carrier[transport.TraceParentHeader] == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, carrier)
}
