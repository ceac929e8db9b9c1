package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/config"
	"github.com/teamscc/teamscc/shared/inmem"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/queue"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/simulate"
	"github.com/teamscc/teamscc/shared/tenant"
)

// kickQueue is the calls queue for tests: it keeps what the app sends; deliver posts
// each message to RouteCall with the host's envelope.
type kickQueue struct {
	mu   sync.Mutex
	msgs []queue.Message
}

func (q *kickQueue) Send(_ context.Context, _ string, m queue.Message) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.msgs = append(q.msgs, m)
	return nil
}

func (q *kickQueue) Schedule(context.Context, string, queue.Message, time.Time) (int64, error) {
	return 1, nil // scheduled kicks are not delivered here: the tests kick explicitly
}

func (q *kickQueue) Cancel(context.Context, string, int64) error { return nil }

func (q *kickQueue) take() []queue.Message {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.msgs
	q.msgs = nil
	return out
}

// sbEnvelope is a Service Bus invocation as the host sends it: the body a JSON string
// encoded twice in Data, its properties merged into Metadata.
func sbEnvelope(body, messageID string, deliveryCount int) string {
	once, _ := json.Marshal(body)
	twice, _ := json.Marshal(string(once))
	return fmt.Sprintf(`{"Data":{"message":%s},"Metadata":{"DeliveryCount":"%d","MessageId":%q,"SessionId":"s","sys":{"MethodName":"RouteCall","UtcNow":"2026-11-24T10:00:00Z"}}}`,
		twice, deliveryCount, messageID)
}

type routingApp struct {
	base  string
	store *inmem.Store
	queue *kickQueue
}

// newRoutingApp serves the app over HTTP on an embedded store holding the simulated
// tenants and their demo services, every agent Available.
func newRoutingApp(t testing.TB) *routingApp { return newRoutingAppEnv(t, nil) }

// newRoutingAppEnv is newRoutingApp with settings (e.g. TeamsClientState).
func newRoutingAppEnv(t testing.TB, env map[string]string) *routingApp {
	t.Helper()
	ctx := context.Background()
	s := inmem.New()
	if err := simulate.Seed(ctx, s, s, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := seedRouting(ctx, s, s); err != nil {
		t.Fatal(err)
	}
	for _, tid := range []string{simulate.ContosoID, simulate.FabrikamID} {
		agents, _ := s.ListAgents(ctx, tid)
		var ps []presence.Presence
		for _, a := range agents {
			ps = append(ps, presence.Presence{AgentID: a.ID, Availability: presence.Available, Activity: "Available", Source: presence.SourceSimulated, ObservedAt: time.Now()})
		}
		if err := s.SavePresences(ctx, tid, ps); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Load(envFrom(env))
	if err != nil {
		t.Fatal(err)
	}
	q := &kickQueue{}
	app := newApp(cfg, deps{tenants: s, secrets: s, presences: s, parked: s, userStates: s, interact: s, routes: s, sender: q, audit: s,
		admin: localAdmin(s), reader: simulate.NewReader(nil), now: time.Now}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	srv := httptest.NewServer(app)
	t.Cleanup(srv.Close)
	return &routingApp{base: srv.URL, store: s, queue: q}
}

// deliver posts every queued kick to RouteCall until the queue is empty.
func (a *routingApp) deliver(t testing.TB) int {
	t.Helper()
	n := 0
	for ms := a.queue.take(); len(ms) > 0; ms = a.queue.take() {
		for _, m := range ms {
			status, body := postTB(t, a.base+"/RouteCall", sbEnvelope(string(m.Body), m.ID, 1))
			if status != http.StatusOK {
				t.Fatalf("RouteCall: %d %s", status, body)
			}
			n++
		}
	}
	return n
}

func postTB(t testing.TB, url, body string) (int, string) {
	t.Helper()
	res, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestRouteCallParksBadKicks(t *testing.T) {
	a := newRoutingApp(t)
	for name, tc := range map[string]struct{ body, reason string }{
		"malformed":       {`{"tenantId":`, "body: must be a JSON object"},
		"unknown field":   {`{"tenantId":"` + simulate.ContosoID + `","service":"sales"}`, "service: unknown field"},
		"wrong type":      {`{"tenantId":1,"serviceId":"sales"}`, "tenantId: must be a string"},
		"missing service": {`{"tenantId":"` + simulate.ContosoID + `"}`, "serviceId: required"},
		"bad service id":  {`{"tenantId":"` + simulate.ContosoID + `","serviceId":"a/b"}`, "serviceId: only letters"},
		"unknown tenant":  {`{"tenantId":"11111111-1111-1111-1111-111111111111","serviceId":"sales"}`, "tenantId: unknown tenant"},
		"unknown service": {`{"tenantId":"` + simulate.ContosoID + `","serviceId":"nope"}`, "serviceId: unknown service"},
	} {
		id := "bad-" + strings.ReplaceAll(name, " ", "-")
		status, resp := postTB(t, a.base+"/RouteCall", sbEnvelope(tc.body, id, 1))
		if status != http.StatusOK || !strings.Contains(resp, `"Outputs"`) {
			t.Errorf("%s: %d %s; want 200 (parked, not retried)", name, status, resp)
		}
		ms, _ := a.store.ListParked(context.Background(), "RouteCall", 100)
		found := false
		for _, m := range ms {
			if m.MessageID == id && strings.Contains(m.Reason, tc.reason) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: not parked with reason %q: %+v", name, tc.reason, ms)
		}
	}
}

type explainView struct {
	State   routing.TaskState
	Explain *routing.Explain
	Agents  map[string]AgentRef
	History []routing.Attempt
}

func (a *routingApp) explain(t *testing.T, service, task string) explainView {
	t.Helper()
	var v explainView
	if status := getJSON(t, a.base+"/api/tenants/"+simulate.ContosoID+"/services/"+service+"/tasks/"+task+"/explain", &v); status != http.StatusOK {
		t.Fatalf("explain: %d", status)
	}
	return v
}

// Over HTTP: a call is routed, explained, a redelivered kick changes nothing, the
// answer and the end drive the agent into ACW, which the agent ends early.
func TestRoutingOverHTTP(t *testing.T) {
	a := newRoutingApp(t)
	c := a.base + "/api/tenants/" + simulate.ContosoID
	status, body := postTB(t, c+"/services/sales/calls", `{"callId":"call-1"}`)
	if status != http.StatusAccepted || !strings.Contains(body, `"state":"Waiting"`) {
		t.Fatalf("incoming call: %d %s", status, body)
	}
	if status, body := postTB(t, c+"/services/sales/calls", `{"callId":"call-1","prio":"High"}`); status != http.StatusBadRequest || !strings.Contains(body, `"field":"prio"`) {
		t.Errorf("unknown field: %d %s", status, body)
	}
	if status, _ := postTB(t, c+"/services/nope/calls", `{"callId":"x"}`); status != http.StatusNotFound {
		t.Errorf("unknown service: %d; want 404", status)
	}
	a.deliver(t)
	v := a.explain(t, "sales", "call-1")
	if v.State != routing.Offered || v.Explain == nil || len(v.Explain.Chosen) != 1 {
		t.Fatalf("after the kick: %+v", v)
	}
	agent := v.Explain.Chosen[0]
	if v.Agents[agent].UPN == "" || !strings.HasSuffix(v.Agents[agent].UPN, "@contoso.example") {
		t.Errorf("explain names the agent: %+v", v.Agents[agent])
	}

	// The same kick delivered again (another delivery, the same MessageId; and a new
	// MessageId, as after a restart) changes nothing.
	before, _ := a.store.GetTask(context.Background(), simulate.ContosoID, "sales", "call-1")
	kick := `{"tenantId":"` + simulate.ContosoID + `","serviceId":"sales","reason":"newTask"}`
	for _, id := range []string{"again", "again", "after-restart"} {
		if status, _ := postTB(t, a.base+"/RouteCall", sbEnvelope(kick, id, 2)); status != http.StatusOK {
			t.Fatalf("redelivery: %d", status)
		}
	}
	after, _ := a.store.GetTask(context.Background(), simulate.ContosoID, "sales", "call-1")
	if after.ETag != before.ETag {
		t.Fatalf("a redelivered kick changed the task: %+v", after)
	}

	ev := func(change, key string) (int, string) {
		return postTB(t, c+"/services/sales/tasks/call-1/events", `{"agentId":"`+agent+`","change":"`+change+`","key":"`+key+`"}`)
	}
	if status, body := ev("answered", "call-1/answered"); status != http.StatusOK || !strings.Contains(body, `"state":"Connected"`) {
		t.Fatalf("answered: %d %s", status, body)
	}
	if status, body := ev("hungup", ""); status != http.StatusBadRequest || !strings.Contains(body, `"field":"change"`) {
		t.Errorf("bad change: %d %s", status, body)
	}
	if status, body := ev("ended", "call-1/ended"); status != http.StatusOK || !strings.Contains(body, `"outcome":"Completed"`) {
		t.Fatalf("ended: %d %s", status, body)
	}
	st, _ := a.store.GetAgentState(context.Background(), simulate.ContosoID, agent)
	if !st.InACW(time.Now()) {
		t.Fatalf("agent not in ACW: %+v", st)
	}
	acw := c + "/agents/" + agent + "/acw"
	if status, body := postTB(t, acw, `{"action":"extend","seconds":61}`); status != http.StatusBadRequest {
		t.Errorf("extension over the max: %d %s", status, body)
	}
	if status, body := postTB(t, acw, `{"action":"end"}`); status != http.StatusOK {
		t.Errorf("early end: %d %s", status, body)
	}
	st, _ = a.store.GetAgentState(context.Background(), simulate.ContosoID, agent)
	if st.InACW(time.Now()) {
		t.Fatalf("ACW not ended: %+v", st)
	}
}

// BenchmarkKicksOverHTTP: one decision per op — a call created over HTTP and its
// kick delivered to RouteCall with the host's envelope, on the embedded store. The
// offered task is ended so agents stay free.
func BenchmarkKicksOverHTTP(b *testing.B) {
	a := newRoutingApp(b)
	ctx := context.Background()
	// No ACW, so ended calls free their agent at once.
	svc, _ := a.store.GetService(ctx, simulate.ContosoID, "billing")
	zero := 0
	svc.Distribution.ACW.Seconds = &zero
	_ = a.store.PutService(ctx, svc)
	i := 0
	for b.Loop() {
		i++
		id := fmt.Sprintf("bench-%d", i)
		if status, body := postTB(b, a.base+"/api/tenants/"+simulate.ContosoID+"/services/billing/calls", `{"callId":"`+id+`"}`); status != http.StatusAccepted {
			b.Fatalf("%d %s", status, body)
		}
		a.deliver(b)
		task, err := a.store.GetTask(ctx, simulate.ContosoID, "billing", id)
		if err != nil || task.State != routing.Offered {
			b.Fatalf("not offered: %+v %v", task, err)
		}
		b.StopTimer()
		e := routing.NewEngine(routing.Options{Store: a.store, Tenants: a.store, Presences: a.store})
		_, _ = e.CallStateChanged(ctx, routing.CallEvent{TenantID: simulate.ContosoID, ServiceID: "billing", TaskID: id, Change: routing.Ended})
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}

var _ tenant.Store = (*inmem.Store)(nil)
