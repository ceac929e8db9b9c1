package funchost_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/funchost"
	"github.com/teamscc/teamscc/shared/parking"
)

// fakeParker records Park calls; err, when set, is returned instead.
type fakeParker struct {
	mu     sync.Mutex
	err    error
	parked []parking.Message
}

func (p *fakeParker) Park(_ context.Context, m parking.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	p.parked = append(p.parked, m)
	return nil
}

func (p *fakeParker) ListParked(context.Context, string, int) ([]parking.Message, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]parking.Message(nil), p.parked...), nil
}

func (p *fakeParker) all() []parking.Message {
	m, _ := p.ListParked(context.Background(), "", 0)
	return m
}

// logBuffer collects JSON log lines written concurrently.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines returns every log line decoded.
func (b *logBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		out = append(out, m)
	}
	return out
}

var fixedNow = time.Date(2026, 11, 24, 10, 30, 0, 0, time.UTC)

// harness is an App behind a real HTTP server, with a fake parker and captured logs.
type harness struct {
	app    *funchost.App
	srv    *httptest.Server
	parker *fakeParker
	logs   *logBuffer
}

func newHarness(t *testing.T, opts funchost.Options) *harness {
	t.Helper()
	h := &harness{parker: &fakeParker{}, logs: &logBuffer{}}
	opts.Logger = slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.Parker = h.parker
	if opts.Now == nil {
		opts.Now = func() time.Time { return fixedNow }
	}
	h.app = funchost.New(opts)
	h.srv = httptest.NewServer(h.app)
	t.Cleanup(h.srv.Close)
	return h
}

// post sends an envelope to /{function} as the host does and returns status and body.
func (h *harness) post(t *testing.T, function string, envelope []byte, invocationID string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.srv.URL+"/"+function, bytes.NewReader(envelope))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if invocationID != "" {
		req.Header.Set(funchost.InvocationHeader, invocationID)
	}
	req.Header.Set("X-Azure-Functions-HostVersion", "4.1043.200.1")
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// envelope builds a Service Bus envelope the way the host encodes it: strings twice,
// numbers as strings, a JSON-object body as an object also merged into Metadata.
func envelope(messageID, body string) []byte {
	twice := func(s string) string {
		once, _ := json.Marshal(s)
		b, _ := json.Marshal(string(once))
		return string(b)
	}
	return fmt.Appendf(nil, `{"Data":{"msg":%s},"Metadata":{"MessageId":%s,"DeliveryCount":"1","ContentType":%s,"sys":{"MethodName":"RouteCall","UtcNow":"2026-11-24T10:00:00Z","RandGuid":"r"}}}`,
		body, twice(messageID), twice("application/json"))
}

const okJSON = `{"Outputs":{},"Logs":[],"ReturnValue":null}`

func TestReadinessAnswers200(t *testing.T) {
	h := newHarness(t, funchost.Options{})
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		t.Run(method, func(t *testing.T) {
			req, _ := http.NewRequest(method, h.srv.URL+"/", nil)
			if status, _ := do(t, req); status != http.StatusOK {
				t.Fatalf("%s / = %d, want 200", method, status)
			}
		})
	}
	if logs := h.logs.String(); logs != "" {
		t.Errorf("readiness polls are logged: %s", logs)
	}
}

func TestTimerHandlerReceivesDecodedTimer(t *testing.T) {
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	tests := []struct {
		name     string
		envelope []byte
		want     funchost.Timer
	}{
		{
			name:     "ScheduleStatus null reads as nil",
			envelope: fixture(t, "timer_status_null.json"),
			want:     funchost.Timer{},
		},
		{
			name:     "ScheduleStatus set, zone-less time read as UTC",
			envelope: fixture(t, "timer_status_set.json"),
			want: funchost.Timer{
				IsPastDue:      true,
				Schedule:       struct{ AdjustForDST bool }{true},
				ScheduleStatus: &funchost.ScheduleStatus{Last: at("2026-11-24T09:55:00.0021487Z"), Next: at("2026-11-24T10:00:00Z"), LastUpdated: at("2026-11-24T09:55:00.0021487Z")},
			},
		},
		{
			name:     "booleans as strings and timer as a JSON string",
			envelope: []byte(`{"Data":{"t":"{\"Schedule\":{\"AdjustForDST\":\"True\"},\"ScheduleStatus\":null,\"IsPastDue\":\"true\"}"},"Metadata":{}}`),
			want:     funchost.Timer{IsPastDue: true, Schedule: struct{ AdjustForDST bool }{true}},
		},
		{
			name:     "first value that decodes when Data has several",
			envelope: []byte(`{"Data":{"input":null,"other":"\"text\"","myTimer":{"IsPastDue":true,"ScheduleStatus":null}}}`),
			want:     funchost.Timer{IsPastDue: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, funchost.Options{})
			var got []funchost.Timer
			h.app.Timer("PresenceRefresh", func(_ context.Context, tm funchost.Timer) error {
				got = append(got, tm)
				return nil
			})
			status, body := h.post(t, "PresenceRefresh", tt.envelope, "inv-1")
			if status != http.StatusOK || body != okJSON {
				t.Fatalf("answer = %d %s, want 200 %s", status, body, okJSON)
			}
			if len(got) != 1 {
				t.Fatalf("handler called %d times, want 1", len(got))
			}
			if !reflect.DeepEqual(got[0], tt.want) {
				t.Errorf("timer = %+v (status %+v), want %+v (status %+v)", got[0], got[0].ScheduleStatus, tt.want, tt.want.ScheduleStatus)
			}
		})
	}
}

func TestServiceBusHandlerReceivesDecodedMessage(t *testing.T) {
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	tests := []struct {
		fixture string
		want    funchost.Message
	}{
		{
			fixture: "sb_object_body.json",
			want: funchost.Message{
				Body:      []byte(`{"tenantId":"contoso","serviceId":"sales","reason":"agent-free"}`),
				MessageID: "kick-sales-20261124T100000Z", SessionID: "sales", CorrelationID: "c-42",
				ContentType: "application/json", Subject: "kick", LockToken: "7f0b8a3e-61c2-4d0e-b1a5-5e2f9c7d3a41",
				DeliveryCount: 3, SequenceNumber: 42, EnqueuedTime: at("2026-11-24T10:00:00.1234567Z"),
				ApplicationProperties: map[string]any{"origin": "presence", "attempt": 1.0},
			},
		},
		{
			// The body's MessageId (a number) and DeliveryCount ("x") overwrote the host's:
			// neither is well-formed, so both read as zero and the body is intact.
			fixture: "sb_object_body_colliding.json",
			want: funchost.Message{
				Body:        []byte(`{"serviceId":"sales","MessageId":5,"DeliveryCount":"x"}`),
				SessionID:   "sales",
				ContentType: "application/json", LockToken: "3c9e1f70-0a2b-4c8d-9e6f-1a2b3c4d5e6f",
				SequenceNumber: 43, EnqueuedTime: at("2026-11-24T10:05:00Z"),
			},
		},
		{
			fixture: "sb_string_double_encoded.json",
			want: funchost.Message{
				Body: []byte("hello, agent"), MessageID: "m-double", ContentType: "text/plain",
				LockToken: "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d", DeliveryCount: 2, SequenceNumber: 44,
				EnqueuedTime: at("2026-11-24T10:10:00.5Z"),
			},
		},
		{
			fixture: "sb_string_once_encoded.json",
			want: funchost.Message{
				Body: []byte("hello, agent"), MessageID: "m-once", ContentType: "text/plain",
				LockToken: "6b7c8d9e-0f1a-4b2c-8d3e-4f5a6b7c8d9e", DeliveryCount: 4, SequenceNumber: 45,
				EnqueuedTime: at("2026-11-24T10:15:00Z"),
			},
		},
		{
			fixture: "sb_json_string_body.json",
			want: funchost.Message{
				Body:      []byte(`{"tenantId":"contoso","serviceId":"support"}`),
				MessageID: "m-json-string", ContentType: "application/json",
				LockToken: "7c8d9e0f-1a2b-4c3d-8e4f-5a6b7c8d9e0f", DeliveryCount: 1, SequenceNumber: 46,
				EnqueuedTime: at("2026-11-24T10:20:00Z"),
			},
		},
		{
			fixture: "sb_base64_body.json",
			want: funchost.Message{
				Body: []byte("\x00\x01\x02\xffteamscc"), MessageID: "m-bytes", ContentType: "application/octet-stream",
				Subject: "legacy-import", LockToken: "8d9e0f1a-2b3c-4d4e-8f5a-6b7c8d9e0f1a", DeliveryCount: 1,
				SequenceNumber: 47, EnqueuedTime: at("2026-11-24T10:25:00.75Z"),
				ApplicationProperties: map[string]any{"origin": "legacy"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			h := newHarness(t, funchost.Options{})
			var got []funchost.Message
			h.app.ServiceBus("RouteCall", func(_ context.Context, m funchost.Message) error {
				got = append(got, m)
				return nil
			})
			status, body := h.post(t, "RouteCall", fixture(t, tt.fixture), "inv-1")
			if status != http.StatusOK || body != okJSON {
				t.Fatalf("answer = %d %s, want 200 %s", status, body, okJSON)
			}
			if len(got) != 1 {
				t.Fatalf("handler called %d times, want 1", len(got))
			}
			m := got[0]
			if !sameBody(m.Body, tt.want.Body) {
				t.Errorf("Body = %q, want %q", m.Body, tt.want.Body)
			}
			m.Body, tt.want.Body = nil, nil
			if !reflect.DeepEqual(m, tt.want) {
				t.Errorf("message =\n%+v\nwant\n%+v", m, tt.want)
			}
			if len(h.parker.all()) != 0 {
				t.Errorf("a decodable message was parked: %+v", h.parker.all())
			}
		})
	}
}

// sameBody compares bodies, ignoring insignificant whitespace when both are JSON (an
// object body is kept as received, indentation included).
func sameBody(got, want []byte) bool {
	if json.Valid(got) && json.Valid(want) {
		var g, w bytes.Buffer
		_ = json.Compact(&g, got)
		_ = json.Compact(&w, want)
		return g.String() == w.String()
	}
	return bytes.Equal(got, want)
}

func TestSuccessAnswersTheHostEnvelope(t *testing.T) {
	h := newHarness(t, funchost.Options{})
	h.app.ServiceBus("RouteCall", func(context.Context, funchost.Message) error { return nil })
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/RouteCall", bytes.NewReader(envelope("m-1", `{"a":1}`)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status = %d, want 200", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if string(body) != okJSON {
		t.Errorf("body = %s, want %s", body, okJSON)
	}
}

func TestInvocationOutcomes(t *testing.T) {
	transient := errors.New("table storage: 503 server busy")
	tests := []struct {
		name       string
		kind       string
		handlerErr error
		parkErr    error
		wantStatus int
		wantReason string // "" = nothing parked
	}{
		{name: "message success acknowledged", kind: funchost.KindServiceBus, wantStatus: 200},
		{name: "message transient error is retried", kind: funchost.KindServiceBus, handlerErr: transient, wantStatus: 500},
		{name: "message permanent error is parked", kind: funchost.KindServiceBus, handlerErr: fault.Permanent(errors.New("unknown tenant")), wantStatus: 200, wantReason: "unknown tenant"},
		{name: "message field error is parked", kind: funchost.KindServiceBus, handlerErr: fmt.Errorf("decode kick: %w", fault.Invalid("serviceId", "required")), wantStatus: 200, wantReason: "decode kick: serviceId: required"},
		{name: "parking failure is retried", kind: funchost.KindServiceBus, handlerErr: fault.Permanent(errors.New("unknown tenant")), parkErr: transient, wantStatus: 500},
		{name: "timeout-like context error is retried", kind: funchost.KindServiceBus, handlerErr: context.DeadlineExceeded, wantStatus: 500},
		{name: "timer success", kind: funchost.KindTimer, wantStatus: 200},
		{name: "timer transient error fails the run", kind: funchost.KindTimer, handlerErr: transient, wantStatus: 500},
		{name: "timer permanent error is logged, not parked", kind: funchost.KindTimer, handlerErr: fault.Permanent(errors.New("no tenants configured")), wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, funchost.Options{})
			h.parker.err = tt.parkErr
			calls := 0
			var env []byte
			if tt.kind == funchost.KindTimer {
				h.app.Timer("Fn", func(context.Context, funchost.Timer) error { calls++; return tt.handlerErr })
				env = fixture(t, "timer_status_null.json")
			} else {
				h.app.ServiceBus("Fn", func(context.Context, funchost.Message) error { calls++; return tt.handlerErr })
				env = envelope("m-7", `{"serviceId":"sales"}`)
			}
			status, body := h.post(t, "Fn", env, "inv-outcome")
			if status != tt.wantStatus {
				t.Fatalf("status = %d (%s), want %d", status, body, tt.wantStatus)
			}
			if status == 200 && body != okJSON {
				t.Errorf("body = %s, want %s", body, okJSON)
			}
			if calls != 1 {
				t.Errorf("handler called %d times, want 1", calls)
			}
			parked := h.parker.all()
			if tt.wantReason == "" {
				if len(parked) != 0 {
					t.Fatalf("parked %+v, want nothing", parked)
				}
				return
			}
			want := parking.Message{Function: "Fn", MessageID: "m-7", InvocationID: "inv-outcome", DeliveryCount: 1,
				Reason: tt.wantReason, Body: `{"serviceId":"sales"}`, ParkedAt: fixedNow}
			if len(parked) != 1 || parked[0] != want {
				t.Errorf("parked %+v, want [%+v]", parked, want)
			}
		})
	}
}

func TestUndecodableEnvelopeIsParkedAndAcknowledged(t *testing.T) {
	tests := []struct {
		name          string
		envelope      string
		wantMessageID string
		wantDelivery  int
	}{
		{name: "not JSON", envelope: `{"Data":{"msg":`},
		{name: "envelope is an array", envelope: `[1,2]`},
		{name: "no Data", envelope: `{"Metadata":{"MessageId":"\"m-9\""}}`, wantMessageID: "m-9"},
		{name: "Data is not an object", envelope: `{"Data":"oops","Metadata":{}}`},
		{name: "Data holds only null", envelope: `{"Data":{"msg":null},"Metadata":{"MessageId":"\"m-10\"","DeliveryCount":"3"}}`, wantMessageID: "m-10", wantDelivery: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, funchost.Options{})
			called := false
			h.app.ServiceBus("RouteCall", func(context.Context, funchost.Message) error { called = true; return nil })
			status, body := h.post(t, "RouteCall", []byte(tt.envelope), "inv-bad")
			if status != http.StatusOK || body != okJSON {
				t.Fatalf("answer = %d %s, want 200 %s", status, body, okJSON)
			}
			if called {
				t.Error("handler called for an undecodable envelope")
			}
			parked := h.parker.all()
			if len(parked) != 1 {
				t.Fatalf("parked %d messages, want 1", len(parked))
			}
			p := parked[0]
			if p.Body != tt.envelope || p.MessageID != tt.wantMessageID || p.DeliveryCount != tt.wantDelivery ||
				p.Function != "RouteCall" || p.InvocationID != "inv-bad" || !strings.Contains(p.Reason, "undecodable envelope") {
				t.Errorf("parked %+v; want body %q, MessageID %q, DeliveryCount %d, reason about the envelope",
					p, tt.envelope, tt.wantMessageID, tt.wantDelivery)
			}
		})
	}
}

func TestUndecodableTimerEnvelopeIsLoggedAndAcknowledged(t *testing.T) {
	h := newHarness(t, funchost.Options{})
	called := false
	h.app.Timer("PresenceRefresh", func(context.Context, funchost.Timer) error { called = true; return nil })
	status, _ := h.post(t, "PresenceRefresh", []byte(`{"Data":{"timer":"not a timer"}}`), "inv-t")
	if status != http.StatusOK {
		t.Fatalf("status = %d, want 200", status)
	}
	if called {
		t.Error("handler called for an undecodable timer")
	}
	if !strings.Contains(h.logs.String(), "timer run failed permanently") {
		t.Errorf("no log of the failure: %s", h.logs.String())
	}
}

func TestParkedBinaryBodyKeepsItsBase64Form(t *testing.T) {
	h := newHarness(t, funchost.Options{})
	h.app.ServiceBus("OutboundIntake", func(context.Context, funchost.Message) error {
		return fault.Permanent(errors.New("not a kick"))
	})
	if status, _ := h.post(t, "OutboundIntake", fixture(t, "sb_base64_body.json"), "inv-b"); status != http.StatusOK {
		t.Fatalf("status = %d, want 200", status)
	}
	parked := h.parker.all()
	if len(parked) != 1 || parked[0].Body != "AAEC/3RlYW1zY2M=" {
		t.Errorf("parked %+v, want body AAEC/3RlYW1zY2M=", parked)
	}
}

func TestPanicAnswers500AndTheAppKeepsServing(t *testing.T) {
	h := newHarness(t, funchost.Options{})
	var calls atomic.Int32
	h.app.ServiceBus("RouteCall", func(context.Context, funchost.Message) error {
		if calls.Add(1) == 1 {
			panic("nil map write")
		}
		return nil
	})
	h.app.HTTP("Admin", "GET /api/boom", http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("handler bug")
	}))

	if status, _ := h.post(t, "RouteCall", envelope("m-p", `{}`), "inv-p1"); status != http.StatusInternalServerError {
		t.Errorf("panicking trigger: status = %d, want 500", status)
	}
	req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/api/boom", nil)
	status, body := do(t, req)
	if status != http.StatusInternalServerError || body != `{"error":{"code":"internal","message":"internal error"}}` {
		t.Errorf("panicking HTTP handler: %d %s, want 500 with a generic JSON error", status, body)
	}
	if status, _ := h.post(t, "RouteCall", envelope("m-p", `{}`), "inv-p2"); status != http.StatusOK {
		t.Errorf("after a panic: status = %d, want 200", status)
	}
	if len(h.parker.all()) != 0 {
		t.Error("a panic parked the message; it must be retried")
	}
	if !strings.Contains(h.logs.String(), `"panic":"nil map write"`) {
		t.Errorf("panic not logged: %s", h.logs.String())
	}
}

func TestDedupSkipsCompletedMessagesAndRetriesFailedOnes(t *testing.T) {
	type delivery struct {
		function, messageID string
		fail                bool
		wantStatus          int
		wantCall            bool
	}
	tests := []struct {
		name       string
		body       string
		dedupSize  int
		deliveries []delivery
	}{
		{
			name: "completed id is acknowledged without the handler",
			body: `{"serviceId":"sales"}`,
			deliveries: []delivery{
				{"RouteCall", "m-1", false, 200, true},
				{"RouteCall", "m-1", false, 200, false},
				{"RouteCall", "m-2", false, 200, true},
			},
		},
		{
			name: "failed id is retried",
			body: `{"serviceId":"sales"}`,
			deliveries: []delivery{
				{"RouteCall", "m-1", true, 500, true},
				{"RouteCall", "m-1", false, 200, true},
				{"RouteCall", "m-1", false, 200, false},
			},
		},
		{
			name: "same id in another function runs",
			body: `{"serviceId":"sales"}`,
			deliveries: []delivery{
				{"RouteCall", "m-1", false, 200, true},
				{"OutboundIntake", "m-1", false, 200, true},
			},
		},
		{
			name:      "only the last DedupSize completions are remembered",
			body:      `{"serviceId":"sales"}`,
			dedupSize: 2,
			deliveries: []delivery{
				{"RouteCall", "m-1", false, 200, true},
				{"RouteCall", "m-2", false, 200, true},
				{"RouteCall", "m-3", false, 200, true},
				{"RouteCall", "m-1", false, 200, true},
				{"RouteCall", "m-3", false, 200, false},
			},
		},
		{
			// The MessageId may be the body's own property: it is not trusted.
			name: "body with its own MessageId is not deduplicated",
			body: `{"MessageId":"order-1"}`,
			deliveries: []delivery{
				{"RouteCall", "order-1", false, 200, true},
				{"RouteCall", "order-1", false, 200, true},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, funchost.Options{DedupSize: tt.dedupSize})
			called, fail := false, false
			handler := func(context.Context, funchost.Message) error {
				called = true
				if fail {
					return errors.New("transient")
				}
				return nil
			}
			h.app.ServiceBus("RouteCall", handler)
			h.app.ServiceBus("OutboundIntake", handler)
			for i, d := range tt.deliveries {
				called, fail = false, d.fail
				status, _ := h.post(t, d.function, envelope(d.messageID, tt.body), fmt.Sprintf("inv-%d", i))
				if status != d.wantStatus || called != d.wantCall {
					t.Errorf("delivery %d (%s %s): status %d, handler called %v; want %d, %v",
						i, d.function, d.messageID, status, called, d.wantStatus, d.wantCall)
				}
			}
		})
	}
}

func TestUnknownFunctionIs404(t *testing.T) {
	h := newHarness(t, funchost.Options{})
	h.app.Timer("PresenceRefresh", func(context.Context, funchost.Timer) error { return nil })
	h.app.HTTP("Admin", "GET /api/admin/ping", http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))

	if status, _ := h.post(t, "RouteCall", envelope("m-1", `{}`), "inv-404"); status != http.StatusNotFound {
		t.Errorf("POST /RouteCall: status = %d, want 404", status)
	}
	req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/api/admin/nope", nil)
	if status, _ := do(t, req); status != http.StatusNotFound {
		t.Errorf("GET /api/admin/nope: status = %d, want 404", status)
	}
	logs := h.logs.String()
	if !strings.Contains(logs, `"function":"RouteCall"`) || !strings.Contains(logs, `"invocation_id":"inv-404"`) {
		t.Errorf("unknown function not logged with its name and invocation id: %s", logs)
	}
	if strings.Contains(logs, "nope") {
		t.Errorf("an unknown HTTP path was logged: %s", logs)
	}
}

func TestLogsCarryInvocationIDAndNoSecrets(t *testing.T) {
	h := newHarness(t, funchost.Options{})
	h.app.HTTP("PresenceHealth", "GET /api/tenants/{tenantId}/presence/health",
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			funchost.Logger(r.Context()).Info("health checked")
			funchost.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		}))
	h.app.ServiceBus("RouteCall", func(ctx context.Context, _ funchost.Message) error {
		funchost.Logger(ctx).Info("routing")
		return fault.Permanent(errors.New("unknown service"))
	})

	raw := fixture(t, "http_forwarded.txt")
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	req.RequestURI = ""
	req.URL.Scheme, req.URL.Host = "http", strings.TrimPrefix(h.srv.URL, "http://")
	if status, body := do(t, req); status != http.StatusOK || body != `{"status":"ok"}` {
		t.Fatalf("forwarded request: %d %s, want 200 {\"status\":\"ok\"}", status, body)
	}
	h.post(t, "RouteCall", envelope("m-log", `{"serviceId":"BODY-CONTENT-7"}`), "inv-sb")

	lines := h.logs.lines(t)
	if len(lines) < 4 {
		t.Fatalf("got %d log lines, want at least 4:\n%s", len(lines), h.logs.String())
	}
	wantID := map[string]string{"PresenceHealth": "0f3c5a2e-8b1d-4e6f-9a7c-2d4e6f8a0b1c", "RouteCall": "inv-sb"}
	var httpDone map[string]any
	for _, l := range lines {
		fn, _ := l["function"].(string)
		if id, ok := wantID[fn]; !ok || l["invocation_id"] != id {
			t.Errorf("log line without the invocation's id and function: %v", l)
		}
		if l["msg"] == "invocation done" && fn == "PresenceHealth" {
			httpDone = l
		}
	}
	if httpDone == nil || httpDone["method"] != "GET" || httpDone["route"] != "GET /api/tenants/{tenantId}/presence/health" ||
		httpDone["status"] != 200.0 || httpDone["duration_ms"] == nil {
		t.Errorf("HTTP line = %v, want method, route pattern, status 200, duration", httpDone)
	}
	logs := h.logs.String()
	for _, secret := range []string{
		"SECRET-TOKEN-PAYLOAD", "FUNCTIONS-KEY-SECRET-123", "WIDGET-KEY-SECRET-456", // secret headers
		"QUERY-SECRET", "alice", "contoso-tenant-0042", // query string and raw path
		"203.0.113.7",    // client address
		"BODY-CONTENT-7", // message body
	} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain %q:\n%s", secret, logs)
		}
	}
}

func TestInvocationIDIsGeneratedWhenAbsent(t *testing.T) {
	h := newHarness(t, funchost.Options{})
	h.app.Timer("PresenceRefresh", func(context.Context, funchost.Timer) error { return nil })
	h.post(t, "PresenceRefresh", fixture(t, "timer_status_null.json"), "")
	h.post(t, "PresenceRefresh", fixture(t, "timer_status_null.json"), "")
	ids := map[string]bool{}
	for _, l := range h.logs.lines(t) {
		id, _ := l["invocation_id"].(string)
		if len(id) != 36 {
			t.Errorf("invocation_id = %q, want a generated UUID", id)
		}
		ids[id] = true
	}
	if len(ids) != 2 {
		t.Errorf("got ids %v, want two distinct", ids)
	}
}

func TestTimeoutEndsAnInvocationAsTransient(t *testing.T) {
	h := newHarness(t, funchost.Options{Timeout: 10 * time.Millisecond})
	h.app.ServiceBus("RouteCall", func(ctx context.Context, _ funchost.Message) error {
		select {
		case <-ctx.Done():
			return fmt.Errorf("route: %w", ctx.Err())
		case <-time.After(10 * time.Second): // no timeout applied: fail rather than hang
			return nil
		}
	})
	if status, _ := h.post(t, "RouteCall", envelope("m-slow", `{}`), "inv-slow"); status != http.StatusInternalServerError {
		t.Errorf("status = %d, want 500", status)
	}
	if len(h.parker.all()) != 0 {
		t.Error("a timed-out message was parked; it must be retried")
	}
}

func TestHTTPHandlersGetNoTimeout(t *testing.T) {
	h := newHarness(t, funchost.Options{Timeout: time.Nanosecond})
	h.app.HTTP("Admin", "GET /api/admin/ping", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.Context().Deadline(); ok {
			t.Error("HTTP handler context has a deadline")
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/api/admin/ping", nil)
	if status, _ := do(t, req); status != http.StatusNoContent {
		t.Errorf("status = %d, want 204", status)
	}
}

func TestWriteErrorMapsErrorsOnce(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantBody   string
	}{
		{"field error", fmt.Errorf("create tenant: %w", fault.Invalid("displayName", "required")), 400,
			`{"error":{"code":"invalid","field":"displayName","rule":"required","message":"displayName: required"}}`},
		{"not found", fmt.Errorf("get tenant t1: %w", fault.ErrNotFound), 404, `{"error":{"code":"not_found","message":"not found"}}`},
		{"conflict", fmt.Errorf("add agent: %w", fault.ErrConflict), 409, `{"error":{"code":"conflict","message":"already exists"}}`},
		{"precondition", fmt.Errorf("update agent: %w", fault.ErrPrecondition), 412, `{"error":{"code":"precondition_failed","message":"precondition failed"}}`},
		{"other permanent", fault.Permanent(errors.New("body is not JSON")), 400, `{"error":{"code":"bad_request","message":"body is not JSON"}}`},
		{"anything else", errors.New("dial tcp 10.0.0.4:443: connection refused"), 500, `{"error":{"code":"internal","message":"internal error"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &logBuffer{}
			h := newHarness(t, funchost.Options{})
			h.app = funchost.New(funchost.Options{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
			h.app.HTTP("Admin", "POST /api/admin/x", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				funchost.WriteError(w, r, tt.err)
			}))
			rec := httptest.NewRecorder()
			h.app.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/admin/x", nil))
			if rec.Code != tt.wantStatus || rec.Body.String() != tt.wantBody {
				t.Errorf("answer = %d %s, want %d %s", rec.Code, rec.Body, tt.wantStatus, tt.wantBody)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if tt.wantStatus == 500 && !strings.Contains(logs.String(), "connection refused") {
				t.Errorf("500 detail not logged: %s", logs)
			}
		})
	}
}

func TestConcurrentInvocations(t *testing.T) {
	h := newHarness(t, funchost.Options{})
	var calls atomic.Int32
	h.app.ServiceBus("RouteCall", func(_ context.Context, m funchost.Message) error {
		calls.Add(1)
		if strings.HasSuffix(m.MessageID, "0") {
			return fault.Permanent(fmt.Errorf("refused %s", m.MessageID))
		}
		return nil
	})
	h.app.Timer("PresenceRefresh", func(context.Context, funchost.Timer) error { calls.Add(1); return nil })

	const n = 100
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := range n {
		wg.Go(func() {
			fn, env := "RouteCall", envelope(fmt.Sprintf("m-%d", i), fmt.Sprintf(`{"n":%d}`, i))
			if i%4 == 3 {
				fn, env = "PresenceRefresh", fixture(t, "timer_status_set.json")
			}
			req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/"+fn, bytes.NewReader(env))
			req.Header.Set(funchost.InvocationHeader, fmt.Sprintf("inv-%d", i))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(body) != okJSON {
				errs <- fmt.Sprintf("%s %d: %d %s", fn, i, resp.StatusCode, body)
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if got := calls.Load(); got != n {
		t.Errorf("handlers called %d times, want %d", got, n)
	}
	// Message ids ending in 0 among the Service Bus deliveries (i%4 != 3): 0, 10, ..., 90.
	if got := len(h.parker.all()); got != 10 {
		t.Errorf("parked %d, want 10", got)
	}
}

func TestFunctionsListsEveryRegistration(t *testing.T) {
	h := newHarness(t, funchost.Options{})
	nop := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	h.app.Timer("PresenceRefresh", func(context.Context, funchost.Timer) error { return nil })
	h.app.ServiceBus("RouteCall", func(context.Context, funchost.Message) error { return nil })
	h.app.HTTP("Admin", "GET /api/admin/tenants", nop)
	h.app.HTTP("Admin", "PUT /api/admin/tenants/{tenantId}", nop)
	want := []funchost.Function{
		{Name: "PresenceRefresh", Kind: "timer"},
		{Name: "RouteCall", Kind: "serviceBus"},
		{Name: "Admin", Kind: "http", Pattern: "GET /api/admin/tenants"},
		{Name: "Admin", Kind: "http", Pattern: "PUT /api/admin/tenants/{tenantId}"},
	}
	if got := h.app.Functions(); !reflect.DeepEqual(got, want) {
		t.Errorf("Functions() = %+v, want %+v", got, want)
	}
}

func TestRegistrationRejectsMistakes(t *testing.T) {
	nopTimer := func(context.Context, funchost.Timer) error { return nil }
	nopMessage := func(context.Context, funchost.Message) error { return nil }
	nopHTTP := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	tests := []struct {
		name     string
		register func(a *funchost.App)
	}{
		{"empty name", func(a *funchost.App) { a.Timer("", nopTimer) }},
		{"name with a slash", func(a *funchost.App) { a.Timer("a/b", nopTimer) }},
		{"name starting with a digit", func(a *funchost.App) { a.Timer("1Route", nopTimer) }},
		{"duplicate trigger", func(a *funchost.App) { a.Timer("T", nopTimer); a.ServiceBus("T", nopMessage) }},
		{"HTTP name used by a trigger", func(a *funchost.App) { a.Timer("T", nopTimer); a.HTTP("T", "GET /api/t", nopHTTP) }},
		{"conflicting HTTP pattern", func(a *funchost.App) { a.HTTP("A", "GET /api/x", nopHTTP); a.HTTP("B", "GET /api/x", nopHTTP) }},
		{"nil handler", func(a *funchost.App) { a.ServiceBus("S", nil) }},
		{"Service Bus without a Parker", func(a *funchost.App) {
			funchost.New(funchost.Options{}).ServiceBus("S", nopMessage)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("registration did not panic")
				}
			}()
			tt.register(funchost.New(funchost.Options{Parker: &fakeParker{}}))
		})
	}
}
