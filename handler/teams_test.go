package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/simulate"
)

// What the fixtures in shared/teams/testdata carry, and what the tests swap in.
const (
	fixtureClientState = "cs-7f3e9a1c5b2d4e6f8a0b1c2d3e4f5a6b"
	fixtureTenant      = "72f988bf-0000-4000-8000-2d7cd011db47"
	fixtureCustomer    = "421f0c00-83a1-4b3a-a9b0-5d4e2c1f7a10" // incoming_created, terminated
	fixtureSubCall     = "9a7c3b10-2e4d-4f6a-8b1c-0d2e3f4a5b6c" // incoming_subscription
	fixtureLeg         = "7e1d0500-d4bf-4224-8b19-1581168d3201" // offer_ringing, established_agent, declined, no_answer
	fixtureAgent       = "550fae72-d251-43ec-868c-373732c2704f"
	testClientState    = "test-client-state-0123456789"
)

// teamsFixture reads a captured-style notification, for Contoso and the test's
// clientState, with further old→new replacements (call ids, the agent).
func teamsFixture(t testing.TB, name string, repl ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "shared", "teams", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), fixtureClientState, testClientState)
	s = strings.ReplaceAll(s, fixtureTenant, simulate.ContosoID)
	for i := 0; i+1 < len(repl); i += 2 {
		s = strings.ReplaceAll(s, repl[i], repl[i+1])
	}
	return s
}

func newTeamsApp(t *testing.T) *routingApp {
	return newRoutingAppEnv(t, map[string]string{"TeamsClientState": testClientState})
}

func (a *routingApp) notify(t *testing.T, body string) (int, string) {
	t.Helper()
	return postTB(t, a.base+"/api/teams/notifications", body)
}

func (a *routingApp) task(t *testing.T, service, id string) routing.Task {
	t.Helper()
	task, err := a.store.GetTask(context.Background(), simulate.ContosoID, service, id)
	if err != nil {
		t.Fatalf("task %s/%s: %v", service, id, err)
	}
	return task
}

// incoming posts an incoming-call notification for callID to the sales resource
// account, delivers the kicks and returns the agent the call was offered to.
func (a *routingApp) offered(t *testing.T, callID string) string {
	t.Helper()
	if status, body := a.notify(t, teamsFixture(t, "incoming_created.json", fixtureCustomer, callID)); status != http.StatusAccepted {
		t.Fatalf("incoming call: %d %s", status, body)
	}
	if n := a.deliver(t); n == 0 {
		t.Fatal("the incoming call kicked nothing")
	}
	task := a.task(t, "sales", callID)
	if task.State != routing.Offered || len(task.OfferedTo) != 1 {
		t.Fatalf("after the kick: %+v; want offered to one agent", task)
	}
	return task.OfferedTo[0]
}

func TestTeamsWebhookHandshake(t *testing.T) {
	a := newTeamsApp(t)
	q, err := os.ReadFile("../shared/teams/testdata/handshake_query.txt")
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.Post(a.base+"/api/teams/notifications?"+strings.TrimSpace(string(q)), "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	want := "Validation: Testing client application reachability for subscription Request-Id: 6aa9d9b7-4c5a-4f3e-9d1e-2b7c8a0f1e23"
	if res.StatusCode != http.StatusOK || string(b) != want || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("handshake: %d %q %q", res.StatusCode, res.Header.Get("Content-Type"), b)
	}
}

func TestTeamsWebhookWrongClientStateIsRefusedAndStoresNothing(t *testing.T) {
	a := newTeamsApp(t)
	body := strings.ReplaceAll(teamsFixture(t, "incoming_created.json"), testClientState, testClientState+"x")
	if status, resp := a.notify(t, body); status != http.StatusForbidden {
		t.Fatalf("wrong clientState: %d %s; want 403", status, resp)
	}
	if status, _ := a.notify(t, teamsFixture(t, "missing_clientstate.json")); status != http.StatusForbidden {
		t.Fatalf("missing clientState: %d; want 403", status)
	}
	ctx := context.Background()
	if _, err := a.store.GetTask(ctx, simulate.ContosoID, "sales", fixtureCustomer); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("a task was created: %v", err)
	}
	if _, err := a.store.GetCallIndex(ctx, fixtureCustomer); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("the call was indexed: %v", err)
	}
	if ms := a.queue.take(); len(ms) != 0 {
		t.Fatalf("kicks sent: %d", len(ms))
	}
}

func TestTeamsWebhookWithoutClientStateAnswers503(t *testing.T) {
	a := newRoutingApp(t) // no TeamsClientState
	for _, url := range []string{"/api/teams/notifications", "/api/teams/notifications?validationToken=abc"} {
		status, body := postTB(t, a.base+url, teamsFixture(t, "incoming_created.json"))
		if status != http.StatusServiceUnavailable || !strings.Contains(body, "webhook not configured") {
			t.Errorf("POST %s: %d %s; want 503", url, status, body)
		}
	}
}

// An incoming call creates a task in the service that has the called resource account
// or number, and its kick routes it; the same notification again changes nothing.
func TestTeamsIncomingCallCreatesATaskForTheCalledService(t *testing.T) {
	a := newTeamsApp(t)
	// By resource account (calling-bot shape) → sales.
	agent := a.offered(t, fixtureCustomer)
	if agent == "" {
		t.Fatal("no agent")
	}
	before := a.task(t, "sales", fixtureCustomer)
	ref, err := a.store.GetCallIndex(context.Background(), fixtureCustomer)
	if err != nil || ref.ServiceID != "sales" || ref.TaskID != fixtureCustomer || ref.AgentID != "" {
		t.Fatalf("call index: %+v %v", ref, err)
	}
	// Replayed (Graph redelivers): 202, nothing changes, no kick.
	if status, body := a.notify(t, teamsFixture(t, "incoming_created.json")); status != http.StatusAccepted {
		t.Fatalf("replay: %d %s", status, body)
	}
	if ms := a.queue.take(); len(ms) != 0 {
		t.Errorf("the replay sent %d kicks", len(ms))
	}
	if after := a.task(t, "sales", fixtureCustomer); after.ETag != before.ETag {
		t.Errorf("the replay changed the task: %+v", after)
	}

	// By phone number (subscription shape): +15555550100 → sales, +15555550101 → support.
	for number, service := range map[string]string{"+15555550100": "sales", "+15555550101": "support"} {
		callID := "c-" + service
		body := teamsFixture(t, "incoming_subscription.json", fixtureSubCall, callID, "+15555550100", number)
		if status, resp := a.notify(t, body); status != http.StatusAccepted {
			t.Fatalf("%s: %d %s", number, status, resp)
		}
		if task := a.task(t, service, callID); task.State != routing.Waiting {
			t.Fatalf("%s: %+v; want a waiting task", service, task)
		}
		a.deliver(t)
		if task := a.task(t, service, callID); task.State != routing.Offered {
			t.Errorf("%s after the kick: %+v; want offered", service, task)
		}
	}
}

func TestTeamsIncomingCallToAnUnknownTargetCreatesNothing(t *testing.T) {
	a := newTeamsApp(t)
	for name, body := range map[string]string{
		"resource account": teamsFixture(t, "incoming_created.json", "0d1e2f3a-4b5c-4d6e-8f70-81a2b3c4d5e6", "11111111-2222-4333-8444-555555555555"),
		"phone number":     teamsFixture(t, "incoming_subscription.json", "+15555550100", "+15555550199"),
		"unknown tenant":   teamsFixture(t, "incoming_created.json", simulate.ContosoID, "99999999-0000-4000-8000-000000000000"),
	} {
		if status, resp := a.notify(t, body); status != http.StatusAccepted {
			t.Errorf("%s: %d %s; want 202 (Graph must not retry)", name, status, resp)
		}
	}
	ctx := context.Background()
	for _, id := range []string{fixtureCustomer, fixtureSubCall} {
		if _, err := a.store.GetCallIndex(ctx, id); !errors.Is(err, fault.ErrNotFound) {
			t.Errorf("call %s indexed: %v", id, err)
		}
	}
	for _, svc := range []string{"sales", "support", "billing"} {
		if _, open, _ := a.store.LoadQueue(ctx, simulate.ContosoID, svc); len(open) != 0 {
			t.Errorf("%s has tasks: %+v", svc, open)
		}
	}
	if ms := a.queue.take(); len(ms) != 0 {
		t.Errorf("kicks sent: %d", len(ms))
	}
}

// The customer's call: answered with the agent connects the agent; terminated ends
// the task and starts the agent's ACW; replays change nothing.
func TestTeamsCustomerCallAnsweredAndTerminated(t *testing.T) {
	a := newTeamsApp(t)
	agent := a.offered(t, fixtureCustomer)
	// A sparse "established" on the customer's call (our app answering it to queue
	// it) names no agent: ignored.
	sparse := `{"value":[{"clientState":"` + testClientState + `","changeType":"updated","resourceUrl":"/communications/calls/` + fixtureCustomer +
		`","resourceData":{"@odata.type":"#microsoft.graph.call","state":"established"}}]}`
	if status, body := a.notify(t, sparse); status != http.StatusAccepted {
		t.Fatalf("sparse established: %d %s", status, body)
	}
	if task := a.task(t, "sales", fixtureCustomer); task.State != routing.Offered {
		t.Fatalf("a sparse established moved the task: %+v", task)
	}
	answered := teamsFixture(t, "established_agent.json", fixtureLeg, fixtureCustomer, fixtureAgent, agent)
	for i := 0; i < 2; i++ {
		if status, body := a.notify(t, answered); status != http.StatusAccepted {
			t.Fatalf("answered #%d: %d %s", i+1, status, body)
		}
	}
	task := a.task(t, "sales", fixtureCustomer)
	if task.State != routing.Connected || task.ConnectedAgent != agent || task.FirstAnsweredService != "sales" {
		t.Fatalf("after answered: %+v", task)
	}
	ctx := context.Background()
	if st, _ := a.store.GetAgentState(ctx, simulate.ContosoID, agent); st.Hold == nil || st.Hold.Phase != routing.HoldConnected {
		t.Fatalf("agent not connected: %+v", st.Hold)
	}
	terminated := teamsFixture(t, "terminated.json")
	if status, body := a.notify(t, terminated); status != http.StatusAccepted {
		t.Fatalf("terminated: %d %s", status, body)
	}
	task = a.task(t, "sales", fixtureCustomer)
	if task.State != routing.Done || task.Outcome != routing.Completed {
		t.Fatalf("after terminated: %+v", task)
	}
	st, _ := a.store.GetAgentState(ctx, simulate.ContosoID, agent)
	if st.Hold != nil || !st.InACW(time.Now()) {
		t.Fatalf("agent not in ACW: %+v", st)
	}
	acwUntil := st.ACWUntil
	a.queue.take()
	if status, _ := a.notify(t, terminated); status != http.StatusAccepted {
		t.Fatal("replay of terminated")
	}
	if st, _ := a.store.GetAgentState(ctx, simulate.ContosoID, agent); !st.ACWUntil.Equal(acwUntil) {
		t.Errorf("the replay restarted ACW: %v → %v", acwUntil, st.ACWUntil)
	}
	if ms := a.queue.take(); len(ms) != 0 {
		t.Errorf("the replay sent %d kicks", len(ms))
	}
}

// An offer leg: first seen ringing with its agent (indexed), then sparse updates on
// the leg's call id only. Declined → RONA and the task waits again; no answer is left
// to the ring timeout; answered then ended → connected, then ACW.
func TestTeamsOfferLegs(t *testing.T) {
	a := newTeamsApp(t)
	ctx := context.Background()

	// Declined.
	agent := a.offered(t, fixtureCustomer)
	ringing := teamsFixture(t, "offer_ringing.json", fixtureAgent, agent)
	if status, body := a.notify(t, ringing); status != http.StatusAccepted {
		t.Fatalf("ringing: %d %s", status, body)
	}
	ref, err := a.store.GetCallIndex(ctx, fixtureLeg)
	if err != nil || ref.AgentID != agent || ref.TaskID != fixtureCustomer || ref.ServiceID != "sales" {
		t.Fatalf("leg not indexed: %+v %v", ref, err)
	}
	if status, body := a.notify(t, teamsFixture(t, "declined.json")); status != http.StatusAccepted {
		t.Fatalf("declined: %d %s", status, body)
	}
	st, _ := a.store.GetAgentState(ctx, simulate.ContosoID, agent)
	if st.Hold != nil || !time.Now().Before(st.RONAUntil) || st.RONAReason != routing.ResultDeclined || st.Declines != 1 || st.NoAnswers != 0 {
		t.Fatalf("agent after decline: %+v; want RONA (declined)", st)
	}
	if task := a.task(t, "sales", fixtureCustomer); task.State != routing.Waiting || len(task.Tried) != 1 {
		t.Fatalf("task after decline: %+v; want waiting again", task)
	}
	a.deliver(t) // re-routed to someone else
	task := a.task(t, "sales", fixtureCustomer)
	if task.State != routing.Offered || task.OfferedTo[0] == agent {
		t.Fatalf("not re-routed to another agent: %+v", task)
	}

	// No answer on the new agent's leg: ignored (the ring timeout makes the RONA).
	second := task.OfferedTo[0]
	const leg2 = "2b2b2b2b-0000-4000-8000-000000000002"
	if status, _ := a.notify(t, teamsFixture(t, "offer_ringing.json", fixtureAgent, second, fixtureLeg, leg2)); status != http.StatusAccepted {
		t.Fatal("ringing 2")
	}
	if status, _ := a.notify(t, teamsFixture(t, "no_answer.json", fixtureLeg, leg2)); status != http.StatusAccepted {
		t.Fatal("no answer")
	}
	if task := a.task(t, "sales", fixtureCustomer); task.State != routing.Offered || task.OfferedTo[0] != second {
		t.Fatalf("no-answer moved the task: %+v", task)
	}
	if st, _ := a.store.GetAgentState(ctx, simulate.ContosoID, second); st.NoAnswers != 0 || st.Hold == nil {
		t.Fatalf("no-answer moved the agent: %+v", st)
	}

	// Answered, then the agent's leg ends.
	const call2, leg3 = "3c3c3c3c-0000-4000-8000-000000000003", "4d4d4d4d-0000-4000-8000-000000000004"
	third := a.offered(t, call2)
	if status, _ := a.notify(t, teamsFixture(t, "offer_ringing.json", fixtureAgent, third, fixtureLeg, leg3)); status != http.StatusAccepted {
		t.Fatal("ringing 3")
	}
	answered := `{"value":[{"clientState":"` + testClientState + `","changeType":"updated","resourceUrl":"/communications/calls/` + leg3 +
		`","resourceData":{"@odata.type":"#microsoft.graph.call","state":"established"}}]}`
	if status, body := a.notify(t, answered); status != http.StatusAccepted {
		t.Fatalf("answered leg: %d %s", status, body)
	}
	if task := a.task(t, "sales", call2); task.State != routing.Connected || task.ConnectedAgent != third {
		t.Fatalf("after the leg answered: %+v", task)
	}
	if status, _ := a.notify(t, teamsFixture(t, "terminated.json", fixtureCustomer, leg3)); status != http.StatusAccepted {
		t.Fatal("leg ended")
	}
	if task := a.task(t, "sales", call2); task.State != routing.Done || task.Outcome != routing.Completed {
		t.Fatalf("after the leg ended: %+v", task)
	}
	if st, _ := a.store.GetAgentState(ctx, simulate.ContosoID, third); !st.InACW(time.Now()) {
		t.Fatalf("agent not in ACW: %+v", st)
	}
}

// The local runner serves the webhook through its host front end: the handshake,
// 403 for a wrong clientState, and a fixture-style incoming call becomes a task.
func TestTeamsWebhookInTheLocalRunner(t *testing.T) {
	base := startLocal(t, map[string]string{"LogLevel": "warn"})
	url := base + "/api/teams/notifications"
	if a := call(t, http.MethodPost, url+"?validationToken=hello+graph", ""); a.status != http.StatusOK || a.body != "hello graph" {
		t.Fatalf("handshake: %d %q", a.status, a.body)
	}
	body := strings.ReplaceAll(teamsFixture(t, "incoming_created.json"), testClientState, localClientState)
	if a := call(t, http.MethodPost, url, strings.ReplaceAll(body, localClientState, "nope")); a.status != http.StatusForbidden {
		t.Fatalf("wrong clientState: %d %s", a.status, a.body)
	}
	if a := call(t, http.MethodPost, url, body); a.status != http.StatusAccepted {
		t.Fatalf("incoming call: %d %s", a.status, a.body)
	}
	var v explainView
	if status := getJSON(t, base+"/api/tenants/"+simulate.ContosoID+"/services/sales/tasks/"+fixtureCustomer+"/explain", &v); status != http.StatusOK || v.State == "" {
		t.Fatalf("task: %d %+v", status, v)
	}
}
