package main

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/calls"
	"github.com/teamscc/teamscc/shared/graph"
	"github.com/teamscc/teamscc/shared/outbound"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/simulate"
)

var (
	billingLine  = calls.Party{Kind: calls.Phone, ID: "+15555550102"}
	helpdeskLine = calls.Party{Kind: calls.Phone, ID: "+15555550110"}
)

func (a *callsApp) updateService(t testing.TB, tenantID, id string, fn func(*routing.Service)) {
	t.Helper()
	if _, err := a.store.UpdateService(context.Background(), tenantID, id, func(s *routing.Service) error {
		fn(s)
		return s.Validate()
	}); err != nil {
		t.Fatal(err)
	}
}

// ops is the list of request kinds the fake saw since the last reset.
func (a *callsApp) ops() []string {
	var out []string
	for _, r := range a.fake.CallRequests() {
		out = append(out, r.Op)
	}
	return out
}

// Broadcast rings three agents at once; two answer at almost the same moment (their
// notifications race): exactly one of them is connected, the other two legs stop
// ringing and their agents are free again, without RONA.
func TestBroadcastFirstAnswerWinsAndTheOthersStopRinging(t *testing.T) {
	a := newCallsApp(t, graph.CallingOptions{})
	tid := simulate.FabrikamID
	id := a.fake.PlaceCall(tid, caller, helpdeskLine)
	a.settle(t)
	must(t, a.fake.FinishPrompt(id))
	a.settle(t)
	x := a.call(t, tid, id)
	if len(x.Legs) != 3 {
		t.Fatalf("broadcast to 3 rings %d legs", len(x.Legs))
	}
	// Two agents answer at almost the same moment; the platform reports both.
	must(t, a.fake.Answer(x.Legs[1].CallID))
	must(t, a.fake.Answer(x.Legs[2].CallID))
	a.settle(t)
	x = a.call(t, tid, id)
	won := slices.IndexFunc(x.Legs, func(l calls.Leg) bool { return l.AgentID == x.Agent })
	if x.Phase != calls.PhaseConnected || (won != 1 && won != 2) {
		t.Fatalf("not one of those who answered is connected: %+v", x)
	}
	for _, n := range []int{0, 3 - won} {
		if v, _ := a.fake.CallView(x.Legs[n].CallID); v.State != "terminated" {
			t.Errorf("leg %d still up: %+v", n, v)
		}
		if st := a.agent(t, tid, x.Legs[n].AgentID); st.Hold != nil || a.clk.Now().Before(st.RONAUntil) {
			t.Errorf("agent of leg %d not released without RONA: %+v", n, st)
		}
	}
	task := a.task(t, tid, "helpdesk", x.TaskID)
	if task.State != routing.Connected || task.ConnectedAgent != x.Agent {
		t.Fatalf("task %+v", task)
	}
	if v, _ := a.fake.CallView(id); len(v.Participants) != 3 { // the app, the caller, one agent
		t.Fatalf("the caller's call has %d participants: %+v", len(v.Participants), v.Participants)
	}
}

// Nobody can take the call: after the queue timeout the caller hears the
// announcement and the exit hangs up; the task ends QueueTimeout.
func TestQueueTimeoutPlaysTheAnnouncementAndTakesTheExit(t *testing.T) {
	a := newCallsApp(t, graph.CallingOptions{})
	tid := simulate.ContosoID
	a.setPresence(t, tid, presence.Offline)
	id := a.fake.PlaceCall(tid, caller, billingLine)
	a.settle(t)
	must(t, a.fake.FinishPrompt(id))
	a.settle(t)
	if x := a.call(t, tid, id); x.Phase != calls.PhaseQueued || len(x.Legs) != 0 {
		t.Fatalf("queued call: %+v", x)
	}
	a.advance(t, 301*time.Second)
	if v, _ := a.fake.CallView(id); v.Playing != prompt("queue-timeout") {
		t.Fatalf("after the queue timeout the caller hears %q", v.Playing)
	}
	must(t, a.fake.FinishPrompt(id))
	a.settle(t)
	x := a.call(t, tid, id)
	if x.Phase != calls.PhaseEnded || x.EndReason != "ExitQueueTimeout" {
		t.Fatalf("after the announcement: %+v", x)
	}
	if task := a.task(t, tid, "billing", x.TaskID); task.Outcome != routing.QueueTimeout {
		t.Fatalf("task %+v", task)
	}
	equalLines(t, "requests", a.ops(), []string{"answer", "playPrompt", "playPrompt", "cancelMedia", "playPrompt", "hangUp"})
}

// A full queue: the next caller hears the QueueFull announcement and takes the exit;
// the caller already waiting keeps waiting.
func TestAFullQueueTurnsTheNextCallerAway(t *testing.T) {
	a := newCallsApp(t, graph.CallingOptions{})
	tid := simulate.ContosoID
	a.setPresence(t, tid, presence.Offline)
	a.updateService(t, tid, "billing", func(s *routing.Service) { s.Distribution.MaxQueueLength = 1 })
	first := a.fake.PlaceCall(tid, caller, billingLine)
	a.settle(t)
	must(t, a.fake.FinishPrompt(first))
	a.settle(t)
	second := a.fake.PlaceCall(tid, calls.Party{Kind: calls.Phone, ID: "+15555550198"}, billingLine)
	a.settle(t)
	must(t, a.fake.FinishPrompt(second)) // greeting
	a.settle(t)
	if v, _ := a.fake.CallView(second); v.Playing != prompt("queue-full") {
		t.Fatalf("the second caller hears %q", v.Playing)
	}
	must(t, a.fake.FinishPrompt(second))
	a.settle(t)
	if x := a.call(t, tid, second); x.Phase != calls.PhaseEnded || x.EndReason != "ExitQueueFull" {
		t.Fatalf("second call: %+v", x)
	}
	if x := a.call(t, tid, first); x.Phase != calls.PhaseQueued {
		t.Fatalf("first call: %+v", x)
	}
}

// A closed service answers, plays its Closed announcement and takes its exit, here
// another service, where the call queues with the first service's licence kept.
func TestAClosedServiceAnnouncesAndSendsTheCallToItsExitService(t *testing.T) {
	a := newCallsApp(t, graph.CallingOptions{})
	tid := simulate.ContosoID
	a.updateService(t, tid, "sales", func(s *routing.Service) { s.Calls.Closed = true })
	id := a.fake.PlaceCall(tid, caller, salesLine)
	a.settle(t)
	if v, _ := a.fake.CallView(id); v.Playing != prompt("closed") || !v.Answered {
		t.Fatalf("a closed service's caller hears %q", v.Playing)
	}
	must(t, a.fake.FinishPrompt(id))
	a.settle(t)
	x := a.call(t, tid, id)
	if x.Phase != calls.PhaseQueued || x.ServiceID != "support" || x.FirstService != "sales" {
		t.Fatalf("after the exit: %+v", x)
	}
	task := a.task(t, tid, "support", x.TaskID)
	if task.FirstAnsweredService != "sales" || !task.FirstAnsweredPSTN {
		t.Fatalf("task in support: %+v", task)
	}
	if len(x.Legs) == 0 {
		t.Fatal("support rang nobody")
	}
}

// A service of type None redirects before answering when it has a transfer target,
// and rejects without one; a call for a number no service has is rejected; a service
// pending deletion rejects.
func TestCallsTheAppDoesNotAnswer(t *testing.T) {
	a := newCallsApp(t, graph.CallingOptions{})
	tid := simulate.ContosoID
	ctx := context.Background()
	for _, s := range []routing.Service{
		{TenantID: tid, ID: "ivr", Type: routing.None, PSTNLicence: true, PhoneNumbers: []routing.PhoneNumber{{Number: "+15555550150", Kind: routing.DirectRouting}},
			Calls: routing.CallFlow{Exit: routing.Exit{Action: routing.ExitTransfer, Target: "+15555550177"}}},
		{TenantID: tid, ID: "ivr2", Type: routing.None, PhoneNumbers: []routing.PhoneNumber{{Number: "+15555550151", Kind: routing.DirectRouting}}},
		{TenantID: tid, ID: "gone", Type: routing.SkillBased, PendingDeletion: true, PhoneNumbers: []routing.PhoneNumber{{Number: "+15555550152", Kind: routing.DirectRouting}}},
	} {
		must(t, s.Validate())
		must(t, a.store.PutService(ctx, s))
	}
	for _, c := range []struct {
		to, op, target, reason string
	}{
		{"+15555550150", "redirect", "phone:+15555550177", "Redirected"},
		{"+15555550151", "reject", "", "NoRedirectTarget"},
		{"+15555550152", "reject", "", "ServicePendingDeletion"},
		{"+15555550153", "reject", "", ""},
	} {
		a.fake.ResetCallRequests()
		id := a.fake.PlaceCall(tid, caller, calls.Party{Kind: calls.Phone, ID: c.to})
		a.settle(t)
		rq := a.fake.CallRequests()
		if len(rq) != 1 || rq[0].Op != c.op || rq[0].Target != c.target {
			t.Errorf("call to %s: %+v; want one %s", c.to, rq, c.op)
			continue
		}
		x, err := a.store.GetCall(ctx, tid, id)
		switch {
		case c.reason == "" && err == nil:
			t.Errorf("call to %s for no service was stored: %+v", c.to, x)
		case c.reason != "" && (err != nil || x.EndReason != c.reason):
			t.Errorf("call to %s: %+v %v; want ended %s", c.to, x, err, c.reason)
		}
	}
}

// Transfers of a connected call: to another service (queued there, the agent leaves
// into after-call work), to PSTN with the first answering service's licence, and to
// PSTN without it (TransferFailed: announcement, exit).
func TestTransfers(t *testing.T) {
	t.Run("to another service", func(t *testing.T) {
		a := newCallsApp(t, graph.CallingOptions{})
		id := a.fake.PlaceCall(simulate.ContosoID, caller, salesLine)
		a.settle(t)
		agent, _ := a.connect(t, id)
		a.fake.ResetCallRequests()
		status, body := postTB(t, a.base+"/api/tenants/"+simulate.ContosoID+"/calls/"+id+"/transfer", `{"service":"billing"}`)
		if status != http.StatusOK {
			t.Fatalf("transfer: %d %s", status, body)
		}
		a.settle(t)
		x := a.call(t, simulate.ContosoID, id)
		if x.ServiceID != "billing" || x.Agent != "" || x.FirstService != "sales" {
			t.Fatalf("after the transfer: %+v", x)
		}
		if ops := a.ops(); len(ops) < 2 || ops[0] != "removeParticipant" || ops[1] != "playPrompt" {
			t.Fatalf("requests: %v", ops)
		}
		if st := a.agent(t, simulate.ContosoID, agent); !st.InACW(a.clk.Now()) {
			t.Fatalf("the agent who transferred is not in after-call work: %+v", st)
		}
		if task := a.task(t, simulate.ContosoID, "billing", x.TaskID); task.FirstAnsweredService != "sales" || !task.Open() {
			t.Fatalf("task in billing: %+v", task)
		}
	})
	t.Run("to PSTN with the licence", func(t *testing.T) {
		a := newCallsApp(t, graph.CallingOptions{})
		id := a.fake.PlaceCall(simulate.ContosoID, caller, salesLine)
		a.settle(t)
		a.connect(t, id)
		x := a.call(t, simulate.ContosoID, id)
		a.fake.ResetCallRequests()
		if status, body := postTB(t, a.base+"/api/tenants/"+simulate.ContosoID+"/calls/"+id+"/transfer", `{"phone":"+49 30 1234567"}`); status != http.StatusOK {
			t.Fatalf("transfer: %d %s", status, body)
		}
		a.settle(t)
		rq := a.fake.CallRequests()
		if len(rq) != 2 || rq[0].Op != "removeParticipant" || rq[1].Op != "transfer" || rq[1].Target != "phone:+49301234567" ||
			!strings.Contains(rq[1].Detail, "transferee "+x.CustomerParticipant) {
			t.Fatalf("requests: %+v", rq)
		}
		x = a.call(t, simulate.ContosoID, id)
		if x.Phase != calls.PhaseEnded || x.EndReason != "Transferred" {
			t.Fatalf("after the transfer: %+v", x)
		}
		if task := a.task(t, simulate.ContosoID, "sales", x.TaskID); task.Outcome != routing.TransferredOut {
			t.Fatalf("task %+v", task)
		}
	})
	t.Run("to PSTN without the licence", func(t *testing.T) {
		a := newCallsApp(t, graph.CallingOptions{})
		id := a.fake.PlaceCall(simulate.ContosoID, caller, billingLine)
		a.settle(t)
		a.connect(t, id)
		a.fake.ResetCallRequests()
		if status, body := postTB(t, a.base+"/api/tenants/"+simulate.ContosoID+"/calls/"+id+"/transfer", `{"phone":"+4930123456"}`); status != http.StatusOK {
			t.Fatalf("transfer: %d %s", status, body)
		}
		a.settle(t)
		if v, _ := a.fake.CallView(id); v.Playing != prompt("transfer-failed") {
			t.Fatalf("the caller hears %q", v.Playing)
		}
		must(t, a.fake.FinishPrompt(id))
		a.settle(t)
		x := a.call(t, simulate.ContosoID, id)
		if x.Phase != calls.PhaseEnded || x.EndReason != "ExitTransferFailed" {
			t.Fatalf("after the failed transfer: %+v", x)
		}
		if task := a.task(t, simulate.ContosoID, "billing", x.TaskID); task.Outcome != routing.TransferFailed {
			t.Fatalf("task %+v", task)
		}
		if slices.Contains(a.ops(), "transfer") {
			t.Fatal("the platform was asked to transfer without a licence")
		}
	})
	t.Run("the platform fails the transfer", func(t *testing.T) {
		a := newCallsApp(t, graph.CallingOptions{})
		a.fake.FailTransfers(true)
		id := a.fake.PlaceCall(simulate.ContosoID, caller, salesLine)
		a.settle(t)
		a.connect(t, id)
		if status, body := postTB(t, a.base+"/api/tenants/"+simulate.ContosoID+"/calls/"+id+"/transfer", `{"phone":"+4930123456"}`); status != http.StatusOK {
			t.Fatalf("transfer: %d %s", status, body)
		}
		a.settle(t)
		if v, _ := a.fake.CallView(id); v.Playing != prompt("transfer-failed") {
			t.Fatalf("the caller hears %q", v.Playing)
		}
	})
	t.Run("bad requests change nothing", func(t *testing.T) {
		a := newCallsApp(t, graph.CallingOptions{})
		id := a.fake.PlaceCall(simulate.ContosoID, caller, salesLine)
		a.settle(t)
		before := a.call(t, simulate.ContosoID, id)
		for body, field := range map[string]string{
			`{"phone":"12"}`:                        "phone",
			`{"service":"sales"}`:                   "service",
			`{"service":"billing","phone":"+4930"}`: "service",
			`{"queue":"billing"}`:                   "queue",
		} {
			status, b := postTB(t, a.base+"/api/tenants/"+simulate.ContosoID+"/calls/"+id+"/transfer", body)
			if status != http.StatusBadRequest || !strings.Contains(b, `"field":"`+field+`"`) {
				t.Errorf("%s: %d %s; want 400 naming %s", body, status, b, field)
			}
		}
		if status, b := postTB(t, a.base+"/api/tenants/"+simulate.ContosoID+"/calls/"+id+"/transfer", `{"service":"billing"}`); status != http.StatusConflict {
			t.Errorf("a call not connected: %d %s; want 409", status, b)
		}
		if after := a.call(t, simulate.ContosoID, id); after.ETag != before.ETag {
			t.Fatal("a refused transfer changed the call")
		}
	})
}

// An exit that transfers to a phone number: allowed with the PSTN licence of the
// first service that answered, else the TransferFailed announcement and hang-up.
func TestAnExitTransferToPSTNFollowsTheLicenceRule(t *testing.T) {
	for _, licence := range []bool{true, false} {
		a := newCallsApp(t, graph.CallingOptions{})
		tid := simulate.ContosoID
		a.setPresence(t, tid, presence.Offline)
		a.updateService(t, tid, "billing", func(s *routing.Service) {
			s.PSTNLicence = licence
			s.Distribution.QueueTimeoutSecs = 60
			s.Calls.Exit = routing.Exit{Action: routing.ExitTransfer, Target: "+15555550177"}
		})
		id := a.fake.PlaceCall(tid, caller, billingLine)
		a.settle(t)
		must(t, a.fake.FinishPrompt(id))
		a.advance(t, 61*time.Second)
		must(t, a.fake.FinishPrompt(id)) // the queue-timeout announcement
		a.settle(t)
		x := a.call(t, tid, id)
		if licence {
			if x.EndReason != "Transferred" || !slices.Contains(a.ops(), "transfer") {
				t.Fatalf("with the licence: %+v %v", x, a.ops())
			}
			continue
		}
		if v, _ := a.fake.CallView(id); v.Playing != prompt("transfer-failed") || slices.Contains(a.ops(), "transfer") {
			t.Fatalf("without the licence the caller hears %q; requests %v", v.Playing, a.ops())
		}
		must(t, a.fake.FinishPrompt(id))
		a.settle(t)
		if x := a.call(t, tid, id); x.EndReason != "ExitTransferFailed" {
			t.Fatalf("without the licence: %+v", x)
		}
	}
}

// scheduleOutbound schedules an outbound task of Contoso sales for customer, due in
// a minute, and lets it become due.
func (a *callsApp) scheduleOutbound(t *testing.T, taskID, customer string) {
	t.Helper()
	due := a.clk.Now().Add(time.Minute).Format(time.RFC3339)
	status, body := postTB(t, a.base+"/api/tenants/"+simulate.ContosoID+"/services/sales/outbound",
		`{"taskId":"`+taskID+`","customer":"`+customer+`","due":"`+due+`"}`)
	if status != http.StatusCreated {
		t.Fatalf("schedule outbound: %d %s", status, body)
	}
	a.advance(t, 61*time.Second)
}

// An outbound task: due, offered to an agent whose Teams rings; once the agent
// accepts, the service's resource account calls the customer and, when the customer
// answers, joins the agent in (replacing the agent's offer leg). With the tenant's
// "directly invite" flag the customer is invited straight into the agent's call. A
// customer who does not answer ends the task NotReached.
func TestOutboundTasksArePlacedOnceAnAgentAccepts(t *testing.T) {
	customer := calls.Party{Kind: calls.Phone, ID: "+4930111222"}
	t.Run("call the customer, then join the agent", func(t *testing.T) {
		a := newCallsApp(t, graph.CallingOptions{})
		a.scheduleOutbound(t, "ob-1", customer.ID)
		key := outbound.RoutingTaskID("ob-1")
		agent, leg := a.ringingLeg(t, simulate.ContosoID, key)
		must(t, a.fake.Answer(leg))
		a.settle(t)
		ringing := a.fake.Ringing(customer)
		if len(ringing) != 1 {
			t.Fatalf("the customer's phone does not ring: %v", ringing)
		}
		if v, _ := a.fake.CallView(ringing[0]); v.Source != (calls.Party{Kind: calls.ApplicationInstance, ID: demoSalesResourceAccount}) {
			t.Fatalf("the customer is called from %+v, want the service's resource account", v.Source)
		}
		must(t, a.fake.Answer(ringing[0]))
		a.settle(t)
		x := a.call(t, simulate.ContosoID, key)
		if x.Phase != calls.PhaseConnected || x.Agent != agent || x.GraphID != ringing[0] {
			t.Fatalf("outbound call: %+v", x)
		}
		if v, _ := a.fake.CallView(ringing[0]); len(v.Participants) != 3 {
			t.Fatalf("customer's call participants: %+v", v.Participants)
		}
		must(t, a.fake.HangUp(ringing[0], customer))
		a.settle(t)
		if task := a.task(t, simulate.ContosoID, "sales", outbound.RoutingTaskID("ob-1")); task.State != routing.Done || task.Outcome != routing.Completed {
			t.Fatalf("task %+v", task)
		}
	})
	t.Run("directly invited", func(t *testing.T) {
		a := newCallsApp(t, graph.CallingOptions{})
		T := "/api/tenants/" + simulate.ContosoID
		_, _, etag := a.do(t, "GET", T, "")
		if status, b, _ := a.do(t, "PATCH", T, `{"extensions":{"directInvitePstn":true}}`, "If-Match", etag); status != http.StatusOK {
			t.Fatalf("direct invite on: %d %s", status, b)
		}
		a.scheduleOutbound(t, "ob-2", customer.ID)
		key := outbound.RoutingTaskID("ob-2")
		_, leg := a.ringingLeg(t, simulate.ContosoID, key)
		must(t, a.fake.Answer(leg))
		a.settle(t)
		ringing := a.fake.Ringing(customer)
		if len(ringing) != 1 {
			t.Fatalf("the customer is not invited: %v", ringing)
		}
		must(t, a.fake.Answer(ringing[0]))
		a.settle(t)
		x := a.call(t, simulate.ContosoID, key)
		if x.Phase != calls.PhaseConnected || x.GraphID != leg {
			t.Fatalf("directly invited call: %+v", x)
		}
		if slices.Contains(a.ops(), "dial") && strings.Count(strings.Join(a.ops(), " "), "dial") > 1 {
			t.Fatalf("the customer was called as well as invited: %v", a.ops())
		}
	})
	t.Run("a customer given by UPN is called by object id", func(t *testing.T) {
		a := newCallsApp(t, graph.CallingOptions{})
		const jane = "7a4e6b0c-1d2e-4f30-8a9b-0c1d2e3f4a5b"
		a.fake.SetUPN("jane@contoso.com", jane)
		a.scheduleOutbound(t, "ob-4", "jane@contoso.com")
		_, leg := a.ringingLeg(t, simulate.ContosoID, outbound.RoutingTaskID("ob-4"))
		must(t, a.fake.Answer(leg))
		a.settle(t)
		if got := a.fake.Ringing(calls.Party{Kind: calls.User, ID: jane}); len(got) != 1 {
			t.Fatalf("Jane's Teams does not ring: %v %v", got, a.ops())
		}
		a.scheduleOutbound(t, "ob-5", "nobody@contoso.com")
		_, leg = a.ringingLeg(t, simulate.ContosoID, outbound.RoutingTaskID("ob-5"))
		must(t, a.fake.Answer(leg))
		a.settle(t)
		if x := a.call(t, simulate.ContosoID, outbound.RoutingTaskID("ob-5")); x.EndReason != "NotReached" {
			t.Fatalf("a customer the directory does not know: %+v", x)
		}
	})
	t.Run("not reached", func(t *testing.T) {
		a := newCallsApp(t, graph.CallingOptions{})
		a.scheduleOutbound(t, "ob-3", customer.ID)
		key := outbound.RoutingTaskID("ob-3")
		agent, leg := a.ringingLeg(t, simulate.ContosoID, key)
		must(t, a.fake.Answer(leg))
		a.settle(t)
		must(t, a.fake.Decline(a.fake.Ringing(customer)[0]))
		a.settle(t)
		if x := a.call(t, simulate.ContosoID, key); x.Phase != calls.PhaseEnded || x.EndReason != "NotReached" {
			t.Fatalf("call %+v", x)
		}
		if task := a.task(t, simulate.ContosoID, "sales", outbound.RoutingTaskID("ob-3")); task.Outcome != routing.NotReached {
			t.Fatalf("task %+v", task)
		}
		if v, _ := a.fake.CallView(leg); v.State != "terminated" {
			t.Fatalf("the agent's call is still up: %+v", v)
		}
		if st := a.agent(t, simulate.ContosoID, agent); st.Hold != nil {
			t.Fatalf("agent still held: %+v", st)
		}
	})
}
