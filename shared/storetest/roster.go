package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/routing"
)

// RunRosters is the conformance suite of routing.Store's rosters (with the presence
// store they share): what a kick reads of its service's members. newStore must return
// an empty, isolated store each call.
func RunRosters(t *testing.T, newStore func(t *testing.T) RoutingStores) {
	t.Run("RostersFollowAgentWrites", func(t *testing.T) { testRosterFollowsAgents(t, newStore(t)) })
	t.Run("RostersCarryPresence", func(t *testing.T) { testRosterPresence(t, newStore(t)) })
	t.Run("ConcurrentWritesLeaveRostersCurrent", func(t *testing.T) { testRosterRace(t, newStore(t)) })
	t.Run("DoneTasksLeaveTheMatch", func(t *testing.T) { testDoneTasks(t, newStore(t)) })
}

// roster returns the service's members by agent id.
func roster(t *testing.T, s routing.Store, serviceID string) (map[string]routing.Member, routing.Queue) {
	t.Helper()
	q, err := s.LoadMatch(context.Background(), tenantA, serviceID)
	if err != nil {
		t.Fatalf("load match %s: %v", serviceID, err)
	}
	out := map[string]routing.Member{}
	for _, m := range q.Members {
		out[m.State.AgentID] = m
	}
	return out, q
}

func ids(m map[string]routing.Member) []string {
	var out []string
	for id := range m {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// current fails unless the member's copy is the agent's stored state, ETag included.
func current(t *testing.T, s routing.Store, what string, m routing.Member) {
	t.Helper()
	a, err := s.GetAgentState(context.Background(), tenantA, m.State.AgentID)
	if err != nil {
		t.Fatal(err)
	}
	if m.State.ETag != a.ETag || fmt.Sprint(m.State.Hold) != fmt.Sprint(a.Hold) || !slices.Equal(m.State.AllServices(), a.AllServices()) ||
		m.State.NoAnswers != a.NoAnswers {
		t.Fatalf("%s: roster copy %+v (ETag %q) is not the stored state %+v (ETag %q)", what, m.State, m.State.ETag, a, a.ETag)
	}
}

func testRosterFollowsAgents(t *testing.T, s RoutingStores) {
	ctx := context.Background()
	for _, sv := range []routing.Service{{TenantID: tenantA, ID: "sales", Type: routing.TeamsBased}, {TenantID: tenantA, ID: "support", Type: routing.SkillBased}} {
		if err := s.PutService(ctx, sv); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range []routing.AgentState{
		{TenantID: tenantA, AgentID: "a1", Services: []string{"sales"}},
		{TenantID: tenantA, AgentID: "a2", Duty: routing.Duty{Services: []string{"support"}}},
		{TenantID: tenantA, AgentID: "a3", Services: []string{"sales"}, Duty: routing.Duty{Services: []string{"support"}}},
		{TenantID: tenantA, AgentID: "a4"},
	} {
		if _, err := s.ReplaceAgentState(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	// Another tenant's agent of a service with the same id is not a member.
	if _, err := s.ReplaceAgentState(ctx, routing.AgentState{TenantID: tenantB, AgentID: "b1", Services: []string{"sales"}}); err != nil {
		t.Fatal(err)
	}
	sales, q := roster(t, s, "sales")
	support, _ := roster(t, s, "support")
	if fmt.Sprint(ids(sales)) != "[a1 a3]" || fmt.Sprint(ids(support)) != "[a2 a3]" || q.Service.ID != "sales" {
		t.Fatalf("rosters: sales %v, support %v", ids(sales), ids(support))
	}
	for _, m := range sales {
		current(t, s, "after insert", m)
	}
	// Moving an agent between services moves it between rosters.
	if _, err := s.UpdateAgentState(ctx, tenantA, "a1", func(a *routing.AgentState) error {
		a.Services, a.Duty.Services = nil, []string{"support"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sales, _ = roster(t, s, "sales")
	support, _ = roster(t, s, "support")
	if fmt.Sprint(ids(sales)) != "[a3]" || fmt.Sprint(ids(support)) != "[a1 a2 a3]" {
		t.Fatalf("after a1 moved: sales %v, support %v", ids(sales), ids(support))
	}
	current(t, s, "after a move", support["a1"])
	got, err := s.Memberships(ctx, tenantA, []string{"a1", "a2", "a3", "a4", "nobody"})
	if err != nil || fmt.Sprint(got) != "map[a1:[support] a2:[support] a3:[sales support]]" {
		t.Fatalf("memberships = %v, %v", got, err)
	}

	// A reservation based on the roster's copy wins, and every roster of the agent
	// shows it with the new ETag.
	copy3 := sales["a3"].State
	res := copy3.Clone()
	res.Hold = &routing.Hold{ServiceID: "sales", TaskID: "t1", Attempt: 1, Phase: routing.HoldOffered, Since: at, Until: at.Add(time.Minute)}
	won, err := s.ReplaceAgentState(ctx, res)
	if err != nil {
		t.Fatalf("reservation on a current copy: %v", err)
	}
	support, _ = roster(t, s, "support")
	if h := support["a3"].State.Hold; h == nil || h.TaskID != "t1" || support["a3"].State.ETag != won.ETag {
		t.Fatalf("the other roster does not show the reservation: %+v", support["a3"].State)
	}
	// A copy taken before is outdated: reserving on it loses.
	stale := copy3.Clone()
	stale.Hold = &routing.Hold{ServiceID: "support", TaskID: "t2", Attempt: 1, Phase: routing.HoldOffered, Since: at, Until: at.Add(time.Minute)}
	if _, err := s.ReplaceAgentState(ctx, stale); !errors.Is(err, fault.ErrPrecondition) {
		t.Fatalf("reservation on an outdated copy = %v; want fault.ErrPrecondition", err)
	}
	// Releasing shows in the rosters at once.
	if _, err := s.UpdateAgentState(ctx, tenantA, "a3", func(a *routing.AgentState) error { a.Hold = nil; return nil }); err != nil {
		t.Fatal(err)
	}
	sales, _ = roster(t, s, "sales")
	if sales["a3"].State.Hold != nil {
		t.Fatalf("released agent still held in the roster: %+v", sales["a3"].State.Hold)
	}
	current(t, s, "after the release", sales["a3"])
}

func testRosterPresence(t *testing.T, s RoutingStores) {
	ctx := context.Background()
	for _, id := range []string{"sales", "support"} {
		if err := s.PutService(ctx, routing.Service{TenantID: tenantA, ID: id, Type: routing.TeamsBased}); err != nil {
			t.Fatal(err)
		}
	}
	avail := func(id string, a presence.Availability, when time.Time) presence.Presence {
		return presence.Presence{AgentID: id, Availability: a, Activity: string(a), Source: presence.SourceExtended, ObservedAt: when}
	}
	// Presence stored before the agent joins: the join copies it.
	if err := s.SavePresences(ctx, tenantA, []presence.Presence{avail("early", presence.Available, at)}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"early", "late"} {
		if _, err := s.UpdateAgentState(ctx, tenantA, id, func(a *routing.AgentState) error { a.Services = []string{"sales"}; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	sales, _ := roster(t, s, "sales")
	if m := sales["early"]; !m.HasPresence || m.Presence.Availability != presence.Available || !m.Presence.ObservedAt.Equal(at) {
		t.Fatalf("presence stored before the join: %+v", m)
	}
	if m := sales["late"]; m.HasPresence {
		t.Fatalf("an agent without presence has one in the roster: %+v", m)
	}
	// Presence stored after the join reaches the roster.
	off := at.Add(time.Minute)
	gone := avail("late", presence.Offline, off)
	gone.OfflineAt = off
	if err := s.SavePresences(ctx, tenantA, []presence.Presence{gone, avail("early", presence.Busy, off)}); err != nil {
		t.Fatal(err)
	}
	sales, _ = roster(t, s, "sales")
	if m := sales["late"]; !m.HasPresence || m.Presence.Availability != presence.Offline || !m.Presence.OfflineAt.Equal(off) {
		t.Fatalf("presence stored after the join: %+v", m)
	}
	if m := sales["early"]; m.Presence.Availability != presence.Busy {
		t.Fatalf("changed presence not in the roster: %+v", m)
	}
	// Joining another service takes the presence along; an agent write keeps it.
	if _, err := s.UpdateAgentState(ctx, tenantA, "early", func(a *routing.AgentState) error {
		a.Services = append(a.Services, "support")
		a.NoAnswers++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	support, _ := roster(t, s, "support")
	sales, _ = roster(t, s, "sales")
	for what, m := range map[string]routing.Member{"joined": support["early"], "kept": sales["early"]} {
		if !m.HasPresence || m.Presence.Availability != presence.Busy || m.State.NoAnswers != 1 {
			t.Fatalf("%s roster entry: %+v", what, m)
		}
	}
}

// Writers race on one agent of two services, loosening and tightening it; whatever
// the interleaving, once they are done both rosters hold its stored state and ETag.
func testRosterRace(t *testing.T, s RoutingStores) {
	ctx := context.Background()
	for _, id := range []string{"sales", "support"} {
		if err := s.PutService(ctx, routing.Service{TenantID: tenantA, ID: id, Type: routing.TeamsBased}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.ReplaceAgentState(ctx, routing.AgentState{TenantID: tenantA, AgentID: "a", Services: []string{"sales", "support"}}); err != nil {
		t.Fatal(err)
	}
	const writers, rounds = 6, 5
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for r := range rounds {
				if (w+r)%2 == 0 { // a reservation on the roster's copy (may lose: fine)
					m, _ := roster(t, s, "sales")
					a := m["a"].State.Clone()
					a.Hold = &routing.Hold{ServiceID: "sales", TaskID: fmt.Sprint("t", w, r), Phase: routing.HoldOffered, Since: at, Until: at.Add(time.Hour)}
					if _, err := s.ReplaceAgentState(ctx, a); err != nil && !errors.Is(err, fault.ErrPrecondition) {
						t.Errorf("reserve: %v", err)
					}
					continue
				}
				if _, err := s.UpdateAgentState(ctx, tenantA, "a", func(a *routing.AgentState) error {
					a.Hold = nil
					a.NoAnswers++
					return nil
				}); err != nil {
					t.Errorf("release: %v", err)
				}
			}
		})
	}
	wg.Wait()
	for _, sv := range []string{"sales", "support"} {
		m, _ := roster(t, s, sv)
		current(t, s, "roster of "+sv, m["a"])
	}
}

func testDoneTasks(t *testing.T, s RoutingStores) {
	ctx := context.Background()
	if err := s.PutService(ctx, routing.Service{TenantID: tenantA, ID: "sales", Type: routing.TeamsBased}); err != nil {
		t.Fatal(err)
	}
	task := routing.Task{TenantID: tenantA, ServiceID: "sales", ID: "t1", Priority: routing.Normal, Created: at, State: routing.Waiting}
	created, err := s.CreateTask(ctx, task)
	if err != nil {
		t.Fatal(err)
	}
	if _, q := roster(t, s, "sales"); len(q.Tasks) != 1 || q.Tasks[0].ETag != created.ETag {
		t.Fatalf("open task in the match: %+v", q.Tasks)
	}
	done := created.Clone()
	done.State, done.Outcome, done.EndedAt = routing.Done, routing.Completed, at
	d1, err := s.ReplaceTask(ctx, done)
	if err != nil || d1.ETag == "" || d1.ETag == created.ETag {
		t.Fatalf("finish = %+v, %v", d1, err)
	}
	if _, q := roster(t, s, "sales"); len(q.Tasks) != 0 {
		t.Fatalf("a done task is still read by the match: %+v", q.Tasks)
	}
	if _, open, _ := s.LoadQueue(ctx, tenantA, "sales"); len(open) != 0 {
		t.Fatalf("a done task is still in the queue: %+v", open)
	}
	if got, err := s.GetTask(ctx, tenantA, "sales", "t1"); err != nil || got.State != routing.Done || got.ETag != d1.ETag {
		t.Fatalf("get done task = %+v, %v", got, err)
	}
	// Its id stays taken, open or done.
	for _, st := range []routing.TaskState{routing.Waiting, routing.Done} {
		again := task
		again.State = st
		if _, err := s.CreateTask(ctx, again); !errors.Is(err, fault.ErrConflict) {
			t.Fatalf("create a %s task with a done task's id = %v; want fault.ErrConflict", st, err)
		}
	}
	// The stale open version cannot write; the done one can, and is not reopened.
	if _, err := s.ReplaceTask(ctx, created); !errors.Is(err, fault.ErrPrecondition) {
		t.Fatalf("replace with the open task's ETag after it was done = %v; want fault.ErrPrecondition", err)
	}
	note := d1.Clone()
	note.Outcome = routing.Transferred
	d2, err := s.ReplaceTask(ctx, note)
	if err != nil || d2.ETag == d1.ETag {
		t.Fatalf("replace a done task = %+v, %v", d2, err)
	}
	if _, err := s.ReplaceTask(ctx, note); !errors.Is(err, fault.ErrPrecondition) {
		t.Fatalf("replace a done task with a stale ETag = %v; want fault.ErrPrecondition", err)
	}
	if got, err := s.UpdateTask(ctx, tenantA, "sales", "t1", func(x *routing.Task) error { x.Attempts = 9; return nil }); err != nil || got.Attempts != 9 {
		t.Fatalf("update a done task = %+v, %v", got, err)
	}
	if _, err := s.GetTask(ctx, tenantA, "sales", "nope"); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("get missing task = %v", err)
	}
}
