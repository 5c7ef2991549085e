package event

import (
	"context"

	"go.opentelemetry.io/otel/trace"
)

// TraceID is the W3C trace id (32 hex digits) of the record being handled in ctx, or "" when
// it has none: the trace_id field of a log line about that record. The stage runner puts the
// record's trace on the handler's ctx (docs/operations.md, "Tracing").
func TraceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	return sc.TraceID().String()
}
