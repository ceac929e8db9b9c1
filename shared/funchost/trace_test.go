package funchost_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/funchost"
	"github.com/teamscc/teamscc/shared/tracecontext"
)

const (
	callerTrace = "0af7651916cd43dd8448eb211c80319c" // sb_traced.json's trace
	callerSpan  = "b7ad6b7169203331"
	otherTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
)

func tp(trace string) string { return "00-" + trace + "-" + callerSpan + "-01" }

var hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)

// seen records the trace context each handler found in its context.
type seen struct {
	mu  sync.Mutex
	got []tracecontext.Context
}

func (s *seen) add(ctx context.Context) {
	c, _ := tracecontext.FromContext(ctx)
	s.mu.Lock()
	s.got = append(s.got, c)
	s.mu.Unlock()
}

func (s *seen) last(t *testing.T) tracecontext.Context {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.got) == 0 {
		t.Fatal("the handler did not run")
	}
	return s.got[len(s.got)-1]
}

// tracedApp registers an HTTP, a Service Bus and a timer function that note their
// trace context and log a line with the invocation's logger.
func tracedApp(t *testing.T) (*harness, *seen) {
	h := newHarness(t, funchost.Options{})
	s := &seen{}
	h.app.HTTP("TeamsNotifications", "POST /api/teams/notifications", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.add(r.Context())
		funchost.Logger(r.Context()).Info("handled")
		w.WriteHeader(http.StatusAccepted)
	}))
	h.app.ServiceBus("RouteCall", func(ctx context.Context, _ funchost.Message) error {
		s.add(ctx)
		funchost.Logger(ctx).Info("handled")
		return nil
	})
	h.app.Timer("CallsReconcile", func(ctx context.Context, _ funchost.Timer) error {
		s.add(ctx)
		funchost.Logger(ctx).Info("handled")
		return nil
	})
	return h, s
}

// send posts body to path with the given headers ("" values are left out).
func send(t *testing.T, h *harness, path string, body []byte, headers map[string]string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+path, bytes.NewReader(body))
	req.Header.Set(funchost.InvocationHeader, "inv-"+strings.TrimPrefix(path, "/"))
	for k, v := range headers {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	status, _ := do(t, req)
	return status
}

// traceIDsLogged returns the trace_id of every log line (a line without one gives "").
func traceIDsLogged(t *testing.T, h *harness) []string {
	t.Helper()
	var out []string
	for _, l := range h.logs.lines(t) {
		id, _ := l["trace_id"].(string)
		out = append(out, id)
	}
	return out
}

// An invocation continues the trace it arrives with: an HTTP request's traceparent
// header; a Service Bus message's traceparent or Diagnostic-Id application property
// (before any header); a timer's header, else a new trace. Its own span is new, the
// trace id is in the handler's context and on every log line of the invocation.
func TestAnInvocationContinuesTheTraceItArrivesWith(t *testing.T) {
	sbWith := func(props string) []byte {
		return fmt.Appendf(nil, `{"Data":{"message":{"serviceId":"sales"}},"Metadata":{"MessageId":"\"m-1\"","DeliveryCount":"1",%s"sys":{}}}`, props)
	}
	timer := fixture(t, "timer_status_null.json")
	tests := []struct {
		name    string
		path    string
		body    []byte
		headers map[string]string
		want    string // the trace id; "" = a new one
		state   string
	}{
		{name: "webhook with traceparent and tracestate", path: "/api/teams/notifications", body: []byte(`{"value":[]}`),
			headers: map[string]string{"traceparent": tp(callerTrace), "tracestate": "rojo=00f067aa0ba902b7"}, want: callerTrace, state: "rojo=00f067aa0ba902b7"},
		{name: "webhook without traceparent", path: "/api/teams/notifications", body: []byte(`{"value":[]}`)},
		{name: "webhook with an invalid traceparent", path: "/api/teams/notifications", body: []byte(`{}`),
			headers: map[string]string{"traceparent": strings.ToUpper(tp(callerTrace))}},
		{name: "a kick as the app sends it", path: "/RouteCall", body: fixture(t, "sb_traced.json"), want: callerTrace, state: "congo=t61rcWkgMzE"},
		{name: "Diagnostic-Id alone, under the older UserProperties", path: "/RouteCall",
			body: sbWith(`"UserProperties":{"Diagnostic-Id":"` + tp(callerTrace) + `"},`), want: callerTrace},
		{name: "a Diagnostic-Id encoded twice", path: "/RouteCall",
			body: sbWith(`"ApplicationProperties":{"Diagnostic-Id":"\"` + tp(callerTrace) + `\""},`), want: callerTrace},
		{name: "the message's trace wins over the host's header", path: "/RouteCall",
			body:    sbWith(`"ApplicationProperties":{"Diagnostic-Id":"` + tp(callerTrace) + `"},`),
			headers: map[string]string{"traceparent": tp(otherTrace)}, want: callerTrace},
		{name: "a message without a trace takes the header's", path: "/RouteCall",
			body: sbWith(`"ApplicationProperties":{"kind":"kick"},`), headers: map[string]string{"traceparent": tp(otherTrace)}, want: otherTrace},
		{name: "a message without any trace", path: "/RouteCall", body: sbWith("")},
		{name: "timer with the host's traceparent", path: "/CallsReconcile", body: timer,
			headers: map[string]string{"traceparent": tp(otherTrace)}, want: otherTrace},
		{name: "timer without one", path: "/CallsReconcile", body: timer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, s := tracedApp(t)
			if status := send(t, h, tt.path, tt.body, tt.headers); status/100 != 2 {
				t.Fatalf("status %d", status)
			}
			got := s.last(t)
			if !got.IsValid() {
				t.Fatalf("the handler's context has no trace: %+v", got)
			}
			switch {
			case tt.want != "" && got.TraceIDString() != tt.want:
				t.Errorf("trace %s, want %s", got.TraceIDString(), tt.want)
			case tt.want == "" && (got.TraceIDString() == callerTrace || got.TraceIDString() == otherTrace):
				t.Errorf("trace %s, want a new one", got.TraceIDString())
			}
			if got.SpanIDString() == callerSpan {
				t.Error("the invocation reuses its caller's span id")
			}
			if got.State != tt.state {
				t.Errorf("tracestate %q, want %q", got.State, tt.state)
			}
			ids := traceIDsLogged(t, h)
			if len(ids) < 2 {
				t.Fatalf("log lines %s", h.logs.String())
			}
			for _, id := range ids {
				if id != got.TraceIDString() {
					t.Errorf("a log line has trace_id %q, want %s:\n%s", id, got.TraceIDString(), h.logs.String())
				}
			}
			if strings.Contains(h.logs.String(), "rojo=") || strings.Contains(h.logs.String(), "congo=") {
				t.Error("the tracestate reached the logs")
			}
		})
	}

	h, s := tracedApp(t)
	send(t, h, "/CallsReconcile", timer, nil)
	send(t, h, "/CallsReconcile", timer, nil)
	if a, b := s.got[0].TraceIDString(), s.got[1].TraceIDString(); a == b || !hex32.MatchString(a) || !hex32.MatchString(b) {
		t.Errorf("two timer runs without a header share trace %s / %s", a, b)
	}
}

// The lines the outer steps write after the handler returns (a parked message, a
// panic, the invocation's last line) carry the trace of the invocation too, even when
// the envelope's Data cannot be decoded.
func TestFailuresAreLoggedWithTheInvocationsTrace(t *testing.T) {
	h := newHarness(t, funchost.Options{})
	h.app.ServiceBus("RouteCall", func(ctx context.Context, m funchost.Message) error {
		if strings.Contains(string(m.Body), "panic") {
			panic("boom")
		}
		return fault.Permanent(errors.New("unknown service"))
	})
	props := `"ApplicationProperties":{"Diagnostic-Id":"` + tp(callerTrace) + `"}`
	for _, body := range []string{
		`{"Data":{"message":{"serviceId":"nope"}},"Metadata":{"MessageId":"\"m-1\"",` + props + `}}`,
		`{"Data":{"message":{"serviceId":"panic"}},"Metadata":{"MessageId":"\"m-2\"",` + props + `}}`,
		`{"Data":{"message":null},"Metadata":{"MessageId":"\"m-3\"",` + props + `}}`, // undecodable: no body
	} {
		send(t, h, "/RouteCall", []byte(body), nil)
	}
	msgs := map[string]bool{}
	for _, l := range h.logs.lines(t) {
		msgs[l["msg"].(string)] = true
		if l["trace_id"] != callerTrace {
			t.Errorf("line without the message's trace: %v", l)
		}
	}
	for _, m := range []string{"message parked", "panic", "invocation done"} {
		if !msgs[m] {
			t.Errorf("no %q line:\n%s", m, h.logs.String())
		}
	}
}
