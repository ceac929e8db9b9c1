package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/calls"
	"github.com/teamscc/teamscc/shared/graph"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/simulate"
)

var (
	caller    = calls.Party{Kind: calls.Phone, ID: "+15555550199"}
	salesLine = calls.Party{Kind: calls.Phone, ID: "+15555550100"}
	prompt    = func(name string) string { return "https://media.example/contoso/" + name + ".wav" }
)

// One call through the fake calling platform, on a fake clock: answered within 15 s,
// greeting, music; agent A rings and times out (its leg hung up, RONA); agent B
// declines (RONA, recorded as a decline); agent C answers and is connected into the
// caller's call, music stops; the caller hangs up, C goes to after-call work. The fake
// platform sees exactly the expected requests.
func TestACallIsAnsweredQueuedRungAndConnected(t *testing.T) {
	a := newCallsApp(t, graph.CallingOptions{})
	tid := simulate.ContosoID
	id := a.fake.PlaceCall(tid, caller, salesLine)
	a.settle(t)

	x := a.call(t, tid, id)
	if x.Phase != calls.PhaseGreeting || x.ServiceID != "sales" || x.Caller != caller {
		t.Fatalf("after the incoming call: %+v", x)
	}
	rq := a.fake.CallRequests()
	if len(rq) == 0 || rq[0].Op != "answer" || rq[0].Elapsed >= 15*time.Second || rq[0].Tenant != tid {
		t.Fatalf("first request: %+v; want an answer within 15 s with the tenant's token", rq)
	}
	if !strings.Contains(rq[0].Detail, "call="+id) {
		t.Errorf("answer's callbackUri names the call: %q", rq[0].Detail)
	}
	must(t, a.fake.FinishPrompt(id)) // the greeting
	a.settle(t)
	if v, _ := a.fake.CallView(id); v.Playing != prompt("music") {
		t.Fatalf("the caller hears %q, want the music", v.Playing)
	}
	agentA, legA := a.ringingLeg(t, tid, id)

	a.advance(t, 21*time.Second) // sales rings 20 s
	if v, _ := a.fake.CallView(legA); v.State != "terminated" {
		t.Fatalf("agent A's leg after the ring timeout: %+v", v)
	}
	if st := a.agent(t, tid, agentA); st.RONAReason != routing.ResultNoAnswer || !a.clk.Now().Before(st.RONAUntil) {
		t.Fatalf("agent A not in RONA: %+v", st)
	}
	agentB, legB := a.ringingLeg(t, tid, id)
	if agentB == agentA {
		t.Fatal("the same agent rang twice")
	}
	must(t, a.fake.Decline(legB))
	a.settle(t)
	if st := a.agent(t, tid, agentB); st.RONAReason != routing.ResultDeclined || st.Declines != 1 {
		t.Fatalf("agent B after declining: %+v", st)
	}
	agentC, legC := a.ringingLeg(t, tid, id)
	if agentC == agentA || agentC == agentB {
		t.Fatal("an agent in RONA rang again")
	}
	if v, _ := a.fake.CallView(id); v.Playing != prompt("music") {
		t.Fatalf("while agents ring the caller hears %q, want the music", v.Playing)
	}
	must(t, a.fake.Answer(legC))
	a.settle(t)
	x = a.call(t, tid, id)
	v, _ := a.fake.CallView(id)
	if x.Phase != calls.PhaseConnected || x.Agent != agentC || v.Playing != "" || !v.Group {
		t.Fatalf("after agent C answered: phase %s agent %s; fake %+v", x.Phase, x.Agent, v)
	}
	if task := a.task(t, tid, "sales", x.TaskID); task.State != routing.Connected || task.ConnectedAgent != agentC {
		t.Fatalf("task: %+v", task)
	}

	must(t, a.fake.HangUp(id, caller))
	a.settle(t)
	x = a.call(t, tid, id)
	if x.Phase != calls.PhaseEnded || x.EndReason != "CallerHungUp" {
		t.Fatalf("after the caller hung up: %+v", x)
	}
	if task := a.task(t, tid, "sales", x.TaskID); task.State != routing.Done || task.Outcome != routing.Completed {
		t.Fatalf("task: %+v", task)
	}
	if st := a.agent(t, tid, agentC); !st.InACW(a.clk.Now()) || st.Hold != nil {
		t.Fatalf("agent C not in after-call work: %+v", st)
	}
	if v, _ := a.fake.CallView(id); v.State != "terminated" {
		t.Fatalf("the call is still up at the platform: %+v", v)
	}

	names := map[string]string{id: "call", legA: "legA", legB: "legB", legC: "legC"}
	equalLines(t, "requests", a.requests(names), []string{
		"answer call",
		"playPrompt call " + prompt("greeting") + " greeting:1",
		"playPrompt call " + prompt("music") + " music:2",
		"dial legA user:" + agentA,
		"hangUp legA",
		"dial legB user:" + agentB,
		"dial legC user:" + agentC,
		"cancelMedia call",
		"invite call user:" + agentC + " legC invite:2",
		"cancelMedia call",
		"hangUp call",
	})
	who := map[string]string{agentA: "A", agentB: "B", agentC: "C"}
	equalLines(t, "timeline", steps(x, who), []string{
		"incoming (to phone)", "answered", "established", "greeting", "queued (sales)", "music",
		"offered A (attempt 1)", "ringing A", "ringingStopped A (noAnswer)",
		"offered B (attempt 2)", "ringing B", "declined B (code 603)",
		"offered C (attempt 3)", "ringing C", "accepted C", "connected C",
		"afterCallWork C", "ended (CallerHungUp)",
	})

	var view CallView
	if status := a.get(t, "/api/tenants/"+tid+"/calls/"+id, &view); status != http.StatusOK || len(view.Steps) != len(x.Steps) ||
		view.Agents[agentC].UPN == "" || len(view.Offers) != 3 || view.Caller == nil || view.Caller.ID != caller.ID {
		t.Fatalf("timeline: %d %+v", status, view)
	}
}
