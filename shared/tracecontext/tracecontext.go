// Package tracecontext carries the W3C Trace Context (https://www.w3.org/TR/trace-context/)
// of an operation across the app's HTTP requests and Service Bus messages, so that
// Application Insights can show a webhook, the kicks it causes and their matches and
// offers as one operation (one trace id, its "operation_Id").
//
// Where it comes from and goes to (see docs/PLATFORM.md):
//   - an HTTP request: its traceparent and tracestate headers (FromHeader);
//   - a Service Bus message: its application properties traceparent (with tracestate) or,
//     failing that, Diagnostic-Id, as Azure's SDKs read them (FromProperties);
//   - a message the app sends: Diagnostic-Id and traceparent (and tracestate when there
//     is one) set to a child of the sender's context, as the .NET SDK writes them
//     (MessageProperties).
//
// funchost puts an invocation's Context into its context.Context (NewContext); the queue
// senders read it from there (FromContext). The package has no state; its functions are
// safe for concurrent use.
package tracecontext

import (
	"context"
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"strings"
)

// Header and property names.
const (
	// Traceparent is the W3C header, and the application property the Azure SDKs
	// write beside Diagnostic-Id when they trace with an ActivitySource.
	Traceparent = "traceparent"
	// Tracestate is the W3C vendor state that travels with Traceparent.
	Tracestate = "tracestate"
	// DiagnosticID is the application property Service Bus defines for the trace
	// context of a message, in traceparent format; the Functions Service Bus
	// extension makes it the parent of the invocation it triggers.
	DiagnosticID = "Diagnostic-Id"
)

// maxState is the longest tracestate passed on: the W3C limit for propagation (512
// characters); a longer one is dropped rather than cut, which could break a member.
const maxState = 512

// Context is the trace context of one span: which trace it belongs to and which span
// it is. The zero value is invalid (no trace).
type Context struct {
	TraceID [16]byte
	SpanID  [8]byte
	// Flags are the trace-flags; bit 0 is "sampled".
	Flags byte
	// State is the tracestate, passed on untouched; it never reaches the logs.
	State string
}

// IsValid reports whether c names a trace and a span (neither all zeros).
func (c Context) IsValid() bool {
	return c.TraceID != [16]byte{} && c.SpanID != [8]byte{}
}

// TraceIDString is the trace id as 32 lower-case hex digits: Application Insights'
// operation_Id.
func (c Context) TraceIDString() string { return hex.EncodeToString(c.TraceID[:]) }

// SpanIDString is the span id as 16 lower-case hex digits.
func (c Context) SpanIDString() string { return hex.EncodeToString(c.SpanID[:]) }

// Traceparent is c as a version-00 traceparent value:
// "00-<trace id>-<span id>-<flags>".
func (c Context) Traceparent() string {
	var b [55]byte
	b[0], b[1], b[2] = '0', '0', '-'
	hex.Encode(b[3:35], c.TraceID[:])
	b[35] = '-'
	hex.Encode(b[36:52], c.SpanID[:])
	b[52] = '-'
	hex.Encode(b[53:55], []byte{c.Flags})
	return string(b[:])
}

// New starts a new trace: random trace and span ids, sampled.
func New() Context {
	var c Context
	for c.TraceID == [16]byte{} {
		putUint64(c.TraceID[:8], rand.Uint64())
		putUint64(c.TraceID[8:], rand.Uint64())
	}
	c.SpanID = newSpanID()
	c.Flags = 0x01
	return c
}

// Child is a new span of c's trace: the same trace id, flags and state, a new random
// span id. The child of an invalid Context is a new trace.
func (c Context) Child() Context {
	if !c.IsValid() {
		return New()
	}
	c.SpanID = newSpanID()
	return c
}

func newSpanID() [8]byte {
	var s [8]byte
	for s == [8]byte{} {
		putUint64(s[:], rand.Uint64())
	}
	return s
}

func putUint64(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (56 - 8*i))
	}
}

// Parse reads a traceparent value (with its tracestate, which may be empty) by the W3C
// rules: lower-case hex; version ff, an all-zero trace or parent id refused; a version
// above 00 may carry more fields after a '-', which are ignored. ok is false when
// traceparent is not valid: the caller then starts a new trace. A tracestate longer
// than 512 characters or with characters outside printable ASCII is dropped.
func Parse(traceparent, tracestate string) (c Context, ok bool) {
	s := strings.TrimSpace(traceparent)
	if len(s) < 55 || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return Context{}, false
	}
	version, vok := hexByte(s[0:2])
	if !vok || version == 0xff || (version == 0 && len(s) != 55) || (len(s) > 55 && s[55] != '-') {
		return Context{}, false
	}
	if !lowerHex(s[3:35]) || !lowerHex(s[36:52]) {
		return Context{}, false
	}
	_, _ = hex.Decode(c.TraceID[:], []byte(s[3:35]))
	_, _ = hex.Decode(c.SpanID[:], []byte(s[36:52]))
	flags, fok := hexByte(s[53:55])
	if !fok || !c.IsValid() {
		return Context{}, false
	}
	c.Flags = flags
	c.State = cleanState(tracestate)
	return c, true
}

// hexByte decodes two lower-case hex digits.
func hexByte(s string) (byte, bool) {
	if len(s) != 2 || !lowerHex(s) {
		return 0, false
	}
	var b [1]byte
	_, _ = hex.Decode(b[:], []byte(s))
	return b[0], true
}

func lowerHex(s string) bool {
	for i := range len(s) {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// cleanState returns the tracestate to pass on, or "" when it is too long or holds a
// character a header may not.
func cleanState(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > maxState {
		return ""
	}
	for i := range len(s) {
		if s[i] < 0x20 || s[i] > 0x7e {
			return ""
		}
	}
	return s
}

// FromHeader reads the trace context an HTTP request carries. A request with no
// traceparent, an invalid one or more than one (which W3C treats as invalid) has none.
// Several tracestate headers are joined, as the specification says.
func FromHeader(h http.Header) (Context, bool) {
	tp := h.Values(Traceparent)
	if len(tp) != 1 {
		return Context{}, false
	}
	return Parse(tp[0], strings.Join(h.Values(Tracestate), ","))
}

// FromProperties reads the trace context of a Service Bus message from its application
// properties, as Azure.Core's messaging diagnostics do: traceparent (with tracestate)
// when it is a valid string, else Diagnostic-Id. Values that are not strings are
// ignored. It works on the decoded envelope (map[string]any) and on the app's own
// messages (map[string]string).
func FromProperties[V any](props map[string]V) (Context, bool) {
	str := func(key string) string {
		v, ok := props[key]
		if !ok {
			return ""
		}
		s, _ := any(v).(string)
		return s
	}
	if c, ok := Parse(str(Traceparent), str(Tracestate)); ok {
		return c, true
	}
	return Parse(str(DiagnosticID), "")
}

type key struct{}

// NewContext returns ctx carrying c as the current span.
func NewContext(ctx context.Context, c Context) context.Context {
	return context.WithValue(ctx, key{}, c)
}

// FromContext returns the current span carried by ctx; ok is false when there is none.
func FromContext(ctx context.Context) (c Context, ok bool) {
	c, ok = ctx.Value(key{}).(Context)
	return c, ok && c.IsValid()
}

// MessageProperties returns the application properties of a message sent under ctx: a
// copy of props with Diagnostic-Id and traceparent set to a new span of ctx's trace (a
// new trace when ctx carries none), and tracestate when the trace has one. As the .NET
// SDK does, a message whose props already hold Diagnostic-Id or traceparent keeps them.
// Every message gets its own span id.
func MessageProperties(ctx context.Context, props map[string]string) map[string]string {
	out := make(map[string]string, len(props)+3)
	for k, v := range props {
		out[k] = v
	}
	if _, ok := out[DiagnosticID]; ok {
		return out
	}
	if _, ok := out[Traceparent]; ok {
		return out
	}
	cur, _ := FromContext(ctx)
	span := cur.Child()
	tp := span.Traceparent()
	out[DiagnosticID] = tp
	out[Traceparent] = tp
	if span.State != "" {
		out[Tracestate] = span.State
	}
	return out
}
