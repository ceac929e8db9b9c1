package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/teamscc/teamscc/shared/calls"
	"github.com/teamscc/teamscc/shared/graph"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/simulate"
)

// sbEnvelope is a Service Bus invocation as the host sends it: the body a JSON string
// encoded twice in Data, its properties merged into Metadata.
func sbEnvelope(body, messageID string, deliveryCount int) string {
	once, _ := json.Marshal(body)
	twice, _ := json.Marshal(string(once))
	return fmt.Sprintf(`{"Data":{"message":%s},"Metadata":{"DeliveryCount":"%d","MessageId":%q,"SessionId":"s","sys":{"MethodName":"RouteCall","UtcNow":"2026-11-24T10:00:00Z"}}}`,
		twice, deliveryCount, messageID)
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
	a := newCallsApp(t, graph.CallingOptions{})
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

func (a *callsApp) explain(t *testing.T, service, task string) explainView {
	t.Helper()
	var v explainView
	if status := getJSON(t, a.base+"/api/tenants/"+simulate.ContosoID+"/services/"+service+"/tasks/"+task+"/explain", &v); status != http.StatusOK {
		t.Fatalf("explain: %d", status)
	}
	return v
}

// connect takes call id (to a Contoso service with a greeting) until an agent is
// connected: the greeting ends, the offered agent answers.
func (a *callsApp) connect(t *testing.T, id string) (agent, leg string) {
	t.Helper()
	must(t, a.fake.FinishPrompt(id))
	a.settle(t)
	agent, leg = a.ringingLeg(t, simulate.ContosoID, id)
	must(t, a.fake.Answer(leg))
	a.settle(t)
	if x := a.call(t, simulate.ContosoID, id); x.Phase != calls.PhaseConnected {
		t.Fatalf("not connected: %+v", x)
	}
	return agent, leg
}

// Over HTTP: a call is routed and explained, a redelivered kick changes nothing, the
// answer and the end drive the agent into ACW, which the agent ends early.
func TestRoutingOverHTTP(t *testing.T) {
	a := newCallsApp(t, graph.CallingOptions{})
	c := a.base + "/api/tenants/" + simulate.ContosoID
	id := a.fake.PlaceCall(simulate.ContosoID, caller, salesLine)
	a.settle(t)
	must(t, a.fake.FinishPrompt(id))
	a.settle(t)
	v := a.explain(t, "sales", id)
	if v.State != routing.Offered || v.Explain == nil || len(v.Explain.Chosen) != 1 {
		t.Fatalf("after the kick: %+v", v)
	}
	agent := v.Explain.Chosen[0]
	if v.Agents[agent].UPN == "" || !strings.HasSuffix(v.Agents[agent].UPN, "@contoso.example") {
		t.Errorf("explain names the agent: %+v", v.Agents[agent])
	}

	// The same kick delivered again (another delivery, the same MessageId; and a new
	// MessageId, as after a restart) changes nothing and rings nobody else.
	before, _ := a.store.GetTask(context.Background(), simulate.ContosoID, "sales", id)
	dials := len(a.fake.CallRequests())
	kick := `{"tenantId":"` + simulate.ContosoID + `","serviceId":"sales","reason":"newTask"}`
	for _, mid := range []string{"again", "again", "after-restart"} {
		if status, _ := postTB(t, a.base+"/RouteCall", sbEnvelope(kick, mid, 2)); status != http.StatusOK {
			t.Fatalf("redelivery: %d", status)
		}
	}
	after, _ := a.store.GetTask(context.Background(), simulate.ContosoID, "sales", id)
	if after.ETag != before.ETag || len(a.fake.CallRequests()) != dials {
		t.Fatalf("a redelivered kick changed the task or rang again: %+v", after)
	}

	_, leg := a.ringingLeg(t, simulate.ContosoID, id)
	must(t, a.fake.Answer(leg))
	a.settle(t)
	must(t, a.fake.HangUp(id, caller))
	a.settle(t)
	st, _ := a.store.GetAgentState(context.Background(), simulate.ContosoID, agent)
	if !st.InACW(a.clk.Now()) {
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
	if st.InACW(a.clk.Now()) {
		t.Fatalf("ACW not ended: %+v", st)
	}
}
