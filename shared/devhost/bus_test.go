package devhost

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/queue"
	"github.com/teamscc/teamscc/shared/tracecontext"
)

func TestServiceBusEnvelopeMatchesTheHost(t *testing.T) {
	handler := newFakeHandler(t, nil)
	logs := &logBuffer{}
	h := startHost(t, Options{
		AppRoot:    writeApp(t, forwardingHostJSON, map[string]string{"RouteCall": queueFunction("calls", false)}),
		HandlerURL: handler.URL,
		Logger:     logs.logger(),
	})
	ctx := context.Background()

	body := `{"serviceId":"s1","MessageId":"from-body","customer":"secret-customer-data"}`
	err := h.Send(ctx, "calls", queue.Message{ID: "m-1", ContentType: "application/json", Body: []byte(body), Properties: map[string]string{"kind": "kick"}})
	if err != nil {
		t.Fatal(err)
	}
	inv := handler.next(t)
	if inv.path != "/RouteCall" || !guidPattern.MatchString(inv.header.Get("X-Azure-Functions-InvocationId")) || inv.header.Get("X-Azure-Functions-HostVersion") == "" {
		t.Errorf("path %s, headers %v", inv.path, inv.header)
	}
	var gotBody, wantBody map[string]any
	json.Unmarshal(inv.data["msg"], &gotBody)
	json.Unmarshal([]byte(body), &wantBody)
	if !reflect.DeepEqual(gotBody, wantBody) {
		t.Errorf("Data.msg = %s, want the body as an object", inv.data["msg"])
	}
	for key, want := range map[string]string{
		"DeliveryCount":   "1",
		"MessageId":       "from-body", // the body's property overwrites the message id, as the host does
		"serviceId":       "s1",
		"ContentType":     "application/json",
		"EnqueuedTimeUtc": "",
		"SequenceNumber":  "",
		"LockToken":       "",
	} {
		got := inv.metaString(t, key)
		if want != "" && got != want {
			t.Errorf("Metadata.%s = %q, want %q", key, got, want)
		}
		if got == "" {
			t.Errorf("Metadata.%s is empty", key)
		}
	}
	if _, err := strconv.ParseInt(inv.metaString(t, "SequenceNumber"), 10, 64); err != nil {
		t.Errorf("SequenceNumber is not a number: %v", err)
	}
	if _, err := time.Parse(time.RFC3339Nano, inv.metaString(t, "EnqueuedTimeUtc")); err != nil {
		t.Errorf("EnqueuedTimeUtc: %v", err)
	}
	for _, key := range []string{"SessionId", "CorrelationId", "sys"} {
		if _, ok := inv.meta[key]; !ok {
			t.Errorf("Metadata has no %s", key)
		}
	}
	for _, key := range []string{"ApplicationProperties", "UserProperties"} {
		var props map[string]string
		_ = json.Unmarshal(inv.meta[key], &props)
		if props["kind"] != "kick" || props["Diagnostic-Id"] == "" || props["traceparent"] != props["Diagnostic-Id"] {
			t.Errorf("Metadata.%s = %s; want the message's properties and its trace", key, inv.meta[key])
		}
	}

	if err := h.Send(ctx, "calls", queue.Message{ID: "m-2", Body: []byte("plain text")}); err != nil {
		t.Fatal(err)
	}
	inv = handler.next(t)
	if string(inv.data["msg"]) != `"plain text"` {
		t.Errorf("a non-object body: Data.msg = %s, want a JSON string", inv.data["msg"])
	}
	if inv.metaString(t, "MessageId") != "m-2" {
		t.Errorf("MessageId = %s", inv.meta["MessageId"])
	}
	eventually(t, "both messages completed", func() bool { return h.Pending("calls") == 0 })
	if strings.Contains(logs.String(), "secret-customer-data") || strings.Contains(logs.String(), "plain text") {
		t.Error("a message body reached the logs")
	}
	if logs.count("message delivered") != 2 {
		t.Errorf("logs:\n%s", logs)
	}
}

func TestDoubleEncodeStringsMimicsTheHostCode(t *testing.T) {
	handler := newFakeHandler(t, nil)
	h := startHost(t, Options{
		AppRoot:             writeApp(t, forwardingHostJSON, map[string]string{"RouteCall": queueFunction("calls", false)}),
		HandlerURL:          handler.URL,
		DoubleEncodeStrings: true,
	})
	if err := h.Send(context.Background(), "calls", queue.Message{ID: "m-1", Body: []byte("hello")}); err != nil {
		t.Fatal(err)
	}
	inv := handler.next(t)
	if string(inv.data["msg"]) != `"\"hello\""` {
		t.Errorf("Data.msg = %s", inv.data["msg"])
	}
	if string(inv.meta["MessageId"]) != `"\"m-1\""` || string(inv.meta["DeliveryCount"]) != `"1"` {
		t.Errorf("MessageId = %s, DeliveryCount = %s", inv.meta["MessageId"], inv.meta["DeliveryCount"])
	}
}

func TestFailingMessageIsRedeliveredThenDeadLettered(t *testing.T) {
	handler := newFakeHandler(t, func(*http.Request, invocation) int { return http.StatusInternalServerError })
	h := startHost(t, Options{
		AppRoot:          writeApp(t, forwardingHostJSON, map[string]string{"RouteCall": queueFunction("calls", false)}),
		HandlerURL:       handler.URL,
		MaxDeliveryCount: 3,
		RedeliveryDelay:  time.Millisecond,
	})
	msg := queue.Message{ID: "m-1", Body: []byte(`{"serviceId":"s1"}`)}
	if err := h.Send(context.Background(), "calls", msg); err != nil {
		t.Fatal(err)
	}
	for want := 1; want <= 3; want++ {
		if got := handler.next(t).metaString(t, "DeliveryCount"); got != strconv.Itoa(want) {
			t.Fatalf("delivery %d has DeliveryCount %s", want, got)
		}
	}
	eventually(t, "the message dead-lettered", func() bool { return len(h.DeadLetters("calls")) == 1 })
	dl := h.DeadLetters("calls")[0]
	if dl.Reason != "MaxDeliveryCountExceeded" || dl.DeliveryCount != 3 || dl.Queue != "calls" || dl.Message.ID != "m-1" || string(dl.Message.Body) != string(msg.Body) {
		t.Errorf("dead letter = %+v", dl)
	}
	if n := h.Pending("calls"); n != 0 {
		t.Errorf("%d messages still pending", n)
	}
	if n := len(handler.calls); n != 0 {
		t.Errorf("%d deliveries after MaxDeliveryCount", n)
	}
}

func TestMessageIsRedeliveredAfterAConnectionError(t *testing.T) {
	var calls atomic.Int32
	handler := newFakeHandler(t, func(r *http.Request, _ invocation) int {
		if calls.Add(1) == 1 {
			panic(http.ErrAbortHandler) // drop the connection without an answer
		}
		return http.StatusOK
	})
	h := startHost(t, Options{
		AppRoot:         writeApp(t, forwardingHostJSON, map[string]string{"RouteCall": queueFunction("calls", false)}),
		HandlerURL:      handler.URL,
		RedeliveryDelay: time.Millisecond,
	})
	if err := h.Send(context.Background(), "calls", queue.Message{ID: "m-1", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	handler.next(t)
	if got := handler.next(t).metaString(t, "DeliveryCount"); got != "2" {
		t.Errorf("redelivery has DeliveryCount %s, want 2", got)
	}
	eventually(t, "the message completed", func() bool { return h.Pending("calls") == 0 })
	if len(h.DeadLetters("calls")) != 0 {
		t.Error("message dead-lettered")
	}
}

func TestScheduledMessageWaitsForItsTimeAndCancelRemovesIt(t *testing.T) {
	handler := newFakeHandler(t, nil)
	clock := newFakeClock("2026-01-01T00:00:00Z")
	h := startHost(t, Options{
		AppRoot:    writeApp(t, forwardingHostJSON, map[string]string{"RouteCall": queueFunction("calls", false)}),
		HandlerURL: handler.URL,
		Now:        clock.Now,
	})
	ctx := context.Background()
	seqA, err := h.Schedule(ctx, "calls", queue.Message{ID: "a", Body: []byte("a")}, clock.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	seqB, err := h.Schedule(ctx, "calls", queue.Message{ID: "b", Body: []byte("b")}, clock.Now().Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if seqB <= seqA {
		t.Errorf("sequence numbers %d then %d, want increasing", seqA, seqB)
	}
	if err := h.Send(ctx, "calls", queue.Message{ID: "now", Body: []byte("now")}); err != nil {
		t.Fatal(err)
	}
	// The message sent after the scheduled ones comes first: they are not visible yet.
	if id := handler.next(t).metaString(t, "MessageId"); id != "now" {
		t.Fatalf("first delivery is %q, want the unscheduled message", id)
	}
	if err := h.Cancel(ctx, "calls", seqB); err != nil {
		t.Fatal(err)
	}
	if err := h.Cancel(ctx, "calls", 9999); err != nil {
		t.Errorf("cancelling an unknown sequence number: %v", err)
	}
	eventually(t, "only the scheduled message left", func() bool { return h.Pending("calls") == 1 })
	if n := len(handler.calls); n != 0 {
		t.Fatalf("%d deliveries before the scheduled time", n)
	}

	clock.Advance(3 * time.Hour)
	inv := handler.next(t)
	if id := inv.metaString(t, "MessageId"); id != "a" {
		t.Fatalf("delivered %q, want the scheduled message a", id)
	}
	if got := inv.metaString(t, "EnqueuedTimeUtc"); got != "2026-01-01T01:00:00Z" {
		t.Errorf("EnqueuedTimeUtc = %s, want the scheduled time", got)
	}
	eventually(t, "the queue to drain", func() bool { return h.Pending("calls") == 0 })
	if err := h.Cancel(ctx, "calls", seqA); err != nil {
		t.Errorf("cancelling a delivered message: %v", err)
	}
}

func TestDuplicateMessageIDIsDroppedWithinTheWindow(t *testing.T) {
	handler := newFakeHandler(t, nil)
	clock := newFakeClock("2026-01-01T00:00:00Z")
	logs := &logBuffer{}
	h := startHost(t, Options{
		AppRoot:    writeApp(t, forwardingHostJSON, map[string]string{"RouteCall": queueFunction("calls", false)}),
		HandlerURL: handler.URL,
		Now:        clock.Now,
		Logger:     logs.logger(),
	})
	ctx := context.Background()
	for _, id := range []string{"x", "x", "y"} {
		if err := h.Send(ctx, "calls", queue.Message{ID: id, Body: []byte(id)}); err != nil {
			t.Fatal(err)
		}
	}
	ids := map[string]int{}
	for range 2 {
		ids[handler.next(t).metaString(t, "MessageId")]++
	}
	eventually(t, "the queue to drain", func() bool { return h.Pending("calls") == 0 })
	if len(handler.calls) != 0 || ids["x"] != 1 || ids["y"] != 1 {
		t.Errorf("delivered %v and %d more, want x and y once", ids, len(handler.calls))
	}
	if logs.count("duplicate message dropped") != 1 {
		t.Errorf("want one duplicate logged; logs:\n%s", logs)
	}

	clock.Advance(11 * time.Minute) // past the 10-minute window
	if err := h.Send(ctx, "calls", queue.Message{ID: "x", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if id := handler.next(t).metaString(t, "MessageId"); id != "x" {
		t.Errorf("delivered %q after the window, want x", id)
	}
}

func TestSessionsDeliverInOrderOneAtATimeAndInParallelAcrossSessions(t *testing.T) {
	gate := make(chan struct{})
	var mu sync.Mutex
	inFlight := map[string]int{}
	order := map[string][]string{}
	violations := 0
	var failedA2 atomic.Bool
	handler := newFakeHandler(t, func(r *http.Request, inv invocation) int {
		var sid, body string
		json.Unmarshal(inv.meta["SessionId"], &sid)
		json.Unmarshal(inv.data["msg"], &body)
		mu.Lock()
		inFlight[sid]++
		if inFlight[sid] > 1 {
			violations++
		}
		order[sid] = append(order[sid], body)
		mu.Unlock()
		select {
		case <-gate:
		case <-r.Context().Done():
		}
		mu.Lock()
		inFlight[sid]--
		mu.Unlock()
		if body == "A2" && failedA2.CompareAndSwap(false, true) {
			return http.StatusServiceUnavailable // redelivered before A3
		}
		return http.StatusOK
	})
	h := startHost(t, Options{
		AppRoot:         writeApp(t, forwardingHostJSON, map[string]string{"RouteCall": queueFunction("calls", true)}),
		HandlerURL:      handler.URL,
		RedeliveryDelay: time.Millisecond,
	})
	ctx := context.Background()
	if err := h.Send(ctx, "calls", queue.Message{ID: "no-session", Body: []byte("x")}); err == nil {
		t.Error("a session-enabled queue accepted a message without SessionID")
	}
	for _, m := range []string{"A1", "A2", "B1", "A3", "B2", "B3"} {
		if err := h.Send(ctx, "calls", queue.Message{ID: m, SessionID: m[:1], Body: []byte(m)}); err != nil {
			t.Fatal(err)
		}
	}
	// Both sessions' first messages arrive while neither has been answered.
	first := map[string]bool{}
	for range 2 {
		first[handler.next(t).metaString(t, "MessageId")] = true
	}
	if !first["A1"] || !first["B1"] {
		t.Fatalf("first deliveries %v, want A1 and B1 in parallel", first)
	}
	close(gate)
	eventually(t, "the queue to drain", func() bool { return h.Pending("calls") == 0 })

	mu.Lock()
	defer mu.Unlock()
	if violations != 0 {
		t.Errorf("%d times two messages of one session were in flight at once", violations)
	}
	if want := []string{"A1", "A2", "A2", "A3"}; !reflect.DeepEqual(order["A"], want) {
		t.Errorf("session A order %v, want %v", order["A"], want)
	}
	if want := []string{"B1", "B2", "B3"}; !reflect.DeepEqual(order["B"], want) {
		t.Errorf("session B order %v, want %v", order["B"], want)
	}
}

func TestMessagesForAQueueWithoutFunctionStayQueued(t *testing.T) {
	handler := newFakeHandler(t, nil)
	logs := &logBuffer{}
	h := startHost(t, Options{
		AppRoot:    writeApp(t, forwardingHostJSON, map[string]string{"RouteCall": queueFunction("calls", false)}),
		HandlerURL: handler.URL,
		Logger:     logs.logger(),
	})
	ctx := context.Background()
	for _, id := range []string{"1", "2"} {
		if err := h.Send(ctx, "nobody", queue.Message{ID: id, Body: []byte(id)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Send(ctx, "calls", queue.Message{ID: "sync", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if id := handler.next(t).metaString(t, "MessageId"); id != "sync" {
		t.Fatalf("delivered %q", id)
	}
	if n := h.Pending("nobody"); n != 2 {
		t.Errorf("Pending(nobody) = %d, want 2", n)
	}
	if n := logs.count("no function listens"); n != 1 {
		t.Errorf("logged %d times that no function listens, want once", n)
	}
}

func TestMaxConcurrentCallsLimitsParallelDeliveries(t *testing.T) {
	gate := make(chan struct{})
	var running, maxRunning atomic.Int32
	handler := newFakeHandler(t, func(r *http.Request, _ invocation) int {
		n := running.Add(1)
		for {
			m := maxRunning.Load()
			if n <= m || maxRunning.CompareAndSwap(m, n) {
				break
			}
		}
		select {
		case <-gate:
		case <-r.Context().Done():
		}
		running.Add(-1)
		return http.StatusOK
	})
	hostJSON := `{"customHandler":{"enableForwardingHttpRequest":true},"extensions":{"serviceBus":{"maxConcurrentCalls":2}}}`
	h := startHost(t, Options{
		AppRoot:    writeApp(t, hostJSON, map[string]string{"RouteCall": queueFunction("calls", false)}),
		HandlerURL: handler.URL,
	})
	for i := range 5 {
		if err := h.Send(context.Background(), "calls", queue.Message{ID: strconv.Itoa(i), Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	handler.next(t)
	handler.next(t)
	eventually(t, "two deliveries in flight", func() bool { return running.Load() == 2 })
	close(gate)
	eventually(t, "the queue to drain", func() bool { return h.Pending("calls") == 0 })
	if m := maxRunning.Load(); m != 2 {
		t.Errorf("%d deliveries at once, want maxConcurrentCalls = 2", m)
	}
}

// A message carries the trace context of the context it was sent under into the
// envelope, as Service Bus and the host deliver it: Diagnostic-Id and traceparent, a new
// span of the sender's trace, and tracestate; a scheduled message and a redelivery keep
// it; a message sent through the admin endpoint continues the request's traceparent.
func TestMessagesCarryTheSendersTraceIntoTheEnvelope(t *testing.T) {
	const trace = "0af7651916cd43dd8448eb211c80319c"
	var failed atomic.Bool
	handler := newFakeHandler(t, func(_ *http.Request, inv invocation) int {
		if strings.Contains(string(inv.data["msg"]), "fail-once") && failed.CompareAndSwap(false, true) {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	clk := newFakeClock("2026-11-24T10:00:00Z")
	logs := &logBuffer{}
	h := startHost(t, Options{
		AppRoot:         writeApp(t, forwardingHostJSON, map[string]string{"RouteCall": queueFunction("calls", false)}),
		HandlerURL:      handler.URL,
		Now:             clk.Now,
		RedeliveryDelay: time.Millisecond,
		Logger:          logs.logger(),
	})
	sender, _ := tracecontext.Parse("00-"+trace+"-b7ad6b7169203331-01", "congo=t61rcWkgMzE")
	ctx := tracecontext.NewContext(context.Background(), sender)

	traceOf := func(inv invocation) (app, user map[string]string) {
		t.Helper()
		_ = json.Unmarshal(inv.meta["ApplicationProperties"], &app)
		_ = json.Unmarshal(inv.meta["UserProperties"], &user)
		return app, user
	}
	check := func(what string, inv invocation) string {
		t.Helper()
		app, user := traceOf(inv)
		if !reflect.DeepEqual(app, user) {
			t.Errorf("%s: ApplicationProperties %v, UserProperties %v", what, app, user)
		}
		c, ok := tracecontext.FromProperties(app)
		if !ok || c.TraceIDString() != trace || c.SpanID == sender.SpanID || app["Diagnostic-Id"] != app["traceparent"] || app["tracestate"] != "congo=t61rcWkgMzE" {
			t.Errorf("%s: properties %v; want a new span of trace %s", what, app, trace)
		}
		return app["Diagnostic-Id"]
	}

	if err := h.Send(ctx, "calls", queue.Message{ID: "now", Body: []byte(`{"n":1}`)}); err != nil {
		t.Fatal(err)
	}
	first := check("sent", handler.next(t))
	if _, err := h.Schedule(ctx, "calls", queue.Message{ID: "later", Body: []byte(`{"n":2}`)}, clk.Now().Add(20*time.Second)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(21 * time.Second)
	if later := check("scheduled", handler.next(t)); later == first {
		t.Error("two messages share a span")
	}
	if err := h.Send(ctx, "calls", queue.Message{ID: "retry", Body: []byte(`{"fail-once":true}`)}); err != nil {
		t.Fatal(err)
	}
	a := check("first delivery", handler.next(t))
	eventually(t, "the failed delivery abandoned", func() bool { return logs.count("message abandoned") == 1 })
	clk.Advance(time.Second) // past the redelivery delay
	if b := check("redelivery", handler.next(t)); a != b {
		t.Errorf("a redelivery has trace %s, the first delivery %s", b, a)
	}
	if !strings.Contains(logs.String(), "traceId="+trace) {
		t.Errorf("the runner's delivery lines do not name the trace:\n%s", logs)
	}

	req, _ := http.NewRequest(http.MethodPost, "http://"+h.Addr()+"/admin/functions/RouteCall", strings.NewReader(`{"input":"{\"n\":3}"}`))
	req.Header.Set("traceparent", "00-"+trace+"-00f067aa0ba902b7-01")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	app, _ := traceOf(handler.next(t))
	if c, ok := tracecontext.FromProperties(app); res.StatusCode != http.StatusAccepted || !ok || c.TraceIDString() != trace {
		t.Errorf("admin invocation: %d, properties %v", res.StatusCode, app)
	}
}
