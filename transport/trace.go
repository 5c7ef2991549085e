package transport

import (
	"context"
	"slices"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
)

// W3C Trace Context on records. Every record an event causes carries the trace of that event
// in a `traceparent` header (and `tracestate` when it has one), read and written by the
// OpenTelemetry W3C propagator: a stage reads it from the input, handles the record in a span
// that is the input's child, and writes that span's context on every output (stage.go).

// Trace context header names (W3C Trace Context; the same in HTTP and in Kafka headers).
const (
	TraceParentHeader = "traceparent"
	TraceStateHeader  = "tracestate"
)

// traceContext is the W3C propagator: the one reader and writer of traceparent.
var traceContext propagation.TraceContext

// HeaderCarrier reads and writes a record's Kafka headers for the propagator. Header keys
// are compared exactly (Kafka headers are case-sensitive; W3C names are lower case).
type HeaderCarrier struct{ Headers *[]kafka.Header }

// Get returns the first value of key.
func (c HeaderCarrier) Get(key string) string {
	for _, h := range *c.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// Set replaces every value of key with value.
func (c HeaderCarrier) Set(key, value string) {
	hs := slices.DeleteFunc(*c.Headers, func(h kafka.Header) bool { return h.Key == key })
	*c.Headers = append(hs, kafka.Header{Key: key, Value: []byte(value)})
}

// Keys lists the header keys.
func (c HeaderCarrier) Keys() []string {
	keys := make([]string, len(*c.Headers))
	for i, h := range *c.Headers {
		keys[i] = h.Key
	}
	return keys
}

// ExtractTrace returns ctx with the remote span context of headers, if they carry a valid
// traceparent; otherwise ctx unchanged.
func ExtractTrace(ctx context.Context, headers []kafka.Header) context.Context {
	if !hasHeader(headers, TraceParentHeader) {
		return ctx // the common miss costs no parsing
	}
	return traceContext.Extract(ctx, HeaderCarrier{Headers: &headers})
}

// InjectTrace sets the trace headers of ctx's span context on every record of msgs that
// carries none yet (a handler that set its own keeps it). The header values are formatted
// once and shared by the records. Nothing is set when ctx has no valid span context.
func InjectTrace(ctx context.Context, msgs []kafka.Message) {
	if len(msgs) == 0 || !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	var formatted []kafka.Header
	traceContext.Inject(ctx, HeaderCarrier{Headers: &formatted})
	for i := range msgs {
		if hasHeader(msgs[i].Headers, TraceParentHeader) {
			continue
		}
		msgs[i].Headers = append(msgs[i].Headers, formatted...)
	}
}

// TraceParent is the traceparent value of ctx's span context ("" without a valid one), for
// the CloudEvents traceparent extension.
func TraceParent(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	var hs []kafka.Header
	traceContext.Inject(ctx, HeaderCarrier{Headers: &hs})
	return HeaderCarrier{Headers: &hs}.Get(TraceParentHeader)
}

// TraceField is the trace_id log field of ctx's span (no field without one), for log lines
// about the record being handled.
func TraceField(ctx context.Context) zap.Field {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return zap.Skip()
	}
	return zap.Stringer("trace_id", sc.TraceID())
}

// RecordTraceField is TraceField of the trace a record's headers carry.
func RecordTraceField(rec kafka.Message) zap.Field {
	return TraceField(ExtractTrace(context.Background(), rec.Headers))
}

func hasHeader(hs []kafka.Header, key string) bool {
	for _, h := range hs {
		if h.Key == key {
			return true
		}
	}
	return false
}
