package funchost

import (
	"context"
	"log/slog"

	"github.com/teamscc/teamscc/shared/tracecontext"
)

// incomingTrace is the trace context the invocation continues: for a Service Bus
// message, the one it carries in its application properties (traceparent or
// Diagnostic-Id, which the app's senders set); else, and for HTTP and timers, the
// traceparent header of the request (a forwarded HTTP request keeps its caller's
// header). ok is false when there is none: the invocation starts a new trace.
//
// Why the message first: its properties are what the sender wrote; a header on a
// trigger invocation comes from the host's own instrumentation, which we cannot rely
// on being there.
func (inv *invocation) incomingTrace() (tracecontext.Context, bool) {
	if inv.fn.Kind == KindServiceBus && inv.msg.ApplicationProperties != nil {
		props := make(map[string]string, 3)
		for _, k := range []string{tracecontext.Traceparent, tracecontext.Tracestate, tracecontext.DiagnosticID} {
			if s, ok := inv.msg.ApplicationProperties[k].(string); ok {
				if inner, ok := innerString(s); ok {
					s = inner // tolerate a value encoded twice, like every other string from the host
				}
				props[k] = s
			}
		}
		if c, ok := tracecontext.FromProperties(props); ok {
			return c, true
		}
	}
	return tracecontext.FromHeader(inv.r.Header)
}

// startTrace gives the invocation its span: a child of the incoming trace context, or
// a new trace. The span goes into the context (the queue senders put it on every
// message sent) and trace_id and span_id into the invocation's logger, so every line
// of one operation can be joined. The tracestate is never logged.
func (inv *invocation) startTrace(ctx context.Context) context.Context {
	in, _ := inv.incomingTrace()
	span := in.Child() // a new trace when there is no incoming one
	inv.log = inv.log.With(slog.String("trace_id", span.TraceIDString()), slog.String("span_id", span.SpanIDString()))
	ctx = tracecontext.NewContext(ctx, span)
	return context.WithValue(ctx, loggerKey{}, inv.log)
}
