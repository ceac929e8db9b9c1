package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/routing"
)

// RunRouting is the conformance suite of routing.Store. newStore must return an
// empty, isolated store each call.
func RunRouting(t *testing.T, newStore func(t *testing.T) routing.Store) {
	t.Run("Services", func(t *testing.T) { testServices(t, newStore(t)) })
	t.Run("ServiceUpdates", func(t *testing.T) { testServiceUpdates(t, newStore(t)) })
	t.Run("Tasks", func(t *testing.T) { testTasks(t, newStore(t)) })
	t.Run("AgentStates", func(t *testing.T) { testAgentStates(t, newStore(t)) })
	t.Run("ReservationRaceHasOneWinner", func(t *testing.T) { testReservationRace(t, newStore(t)) })
	t.Run("AgentUpdatesLoseNothing", func(t *testing.T) { testAgentUpdateRace(t, newStore(t)) })
	t.Run("TaskUpdatesLoseNothing", func(t *testing.T) { testTaskUpdateRace(t, newStore(t)) })
	t.Run("ServiceByTarget", func(t *testing.T) { testServiceByTarget(t, newStore(t)) })
	t.Run("PurgeService", func(t *testing.T) { testPurgeService(t, newStore(t)) })
}

func testServiceByTarget(t *testing.T, s routing.Store) {
	ctx := context.Background()
	const ra = "0d1e2f3a-4b5c-4d6e-8f70-81a2b3c4d5e6"
	_, err := s.ServiceByTarget(ctx, tenantA, ra)
	mustNotFound(t, "no services at all", err)
	put := func(sv routing.Service) {
		t.Helper()
		if err := sv.Validate(); err != nil {
			t.Fatalf("validate %s: %v", sv.ID, err)
		}
		if err := s.PutService(ctx, sv); err != nil {
			t.Fatal(err)
		}
	}
	put(routing.Service{TenantID: tenantA, ID: "sales", Type: routing.TeamsBased, Targets: []string{ra, "+15555550100"}})
	put(routing.Service{TenantID: tenantA, ID: "support", Type: routing.SkillBased, Targets: []string{"+15555550101"}})
	put(routing.Service{TenantID: tenantB, ID: "helpdesk", Type: routing.TeamsBased, Targets: []string{"+15555550102"}})
	for target, want := range map[string]string{
		ra:                    "sales",
		strings.ToUpper(ra):   "sales", // GUIDs compare case-insensitively
		"+15555550100":        "sales",
		"tel:+1 555-555 0100": "sales", // normalized
		"+15555550101":        "support",
	} {
		got, err := s.ServiceByTarget(ctx, tenantA, target)
		if err != nil || got.ID != want || got.TenantID != tenantA {
			t.Errorf("target %q: %q, %v; want %s", target, got.ID, err, want)
		}
	}
	for _, target := range []string{"+15555550102", "+15555550199", "", "11111111-1111-1111-1111-111111111111"} {
		_, err := s.ServiceByTarget(ctx, tenantA, target)
		mustNotFound(t, "target "+target+" of no service of the tenant", err)
	}
	if got, err := s.ServiceByTarget(ctx, tenantB, "+15555550102"); err != nil || got.ID != "helpdesk" {
		t.Errorf("other tenant: %+v %v", got, err)
	}
	// A number moved to a new service while the old one awaits deletion: the live one.
	put(routing.Service{TenantID: tenantA, ID: "old", Type: routing.TeamsBased, PendingDeletion: true, Targets: []string{"+15555550101"}})
	if got, err := s.ServiceByTarget(ctx, tenantA, "+15555550101"); err != nil || got.ID != "support" {
		t.Errorf("pending-deletion duplicate: %q %v; want support", got.ID, err)
	}
	// Two live services claiming one target: refused, not guessed.
	put(routing.Service{TenantID: tenantA, ID: "billing", Type: routing.TeamsBased, Targets: []string{"+15555550101"}})
	if _, err := s.ServiceByTarget(ctx, tenantA, "+15555550101"); !errors.Is(err, fault.ErrConflict) {
		t.Errorf("target on two services = %v; want fault.ErrConflict", err)
	}
	// A target removed from a service no longer finds it.
	put(routing.Service{TenantID: tenantA, ID: "sales", Type: routing.TeamsBased, Targets: []string{ra}})
	_, err = s.ServiceByTarget(ctx, tenantA, "+15555550100")
	mustNotFound(t, "removed target", err)
}

func testServices(t *testing.T, s routing.Store) {
	ctx := context.Background()
	_, err := s.GetService(ctx, tenantA, "sales")
	mustNotFound(t, "unknown service", err)
	_, _, err = s.LoadQueue(ctx, tenantA, "sales")
	mustNotFound(t, "queue of an unknown service", err)
	acw := 45
	sales := routing.Service{TenantID: tenantA, ID: "sales", Name: "Sales", Type: routing.TeamsBased, PSTNLicence: true, UpdatedAt: at,
		Distribution: routing.Distribution{AllowBusy: true, Strategy: routing.Broadcast, BroadcastN: 3, Weights: map[string]int{"a": 2},
			RONA: routing.RONASettings{Enabled: true, Persistent: true, ResetSeconds: 60}, ACW: routing.ACWSettings{Seconds: &acw, AllowEarlyEnd: true},
			Skills: []routing.SkillRequirement{{Skill: "de", MinLevel: 3}}, Relax: []routing.RelaxStep{{AfterSeconds: 30}}},
		PhoneNumbers: []routing.PhoneNumber{{Number: "+41441234567", Kind: routing.CallingPlanService}, {Number: "+15555550100", Kind: routing.DirectRouting}},
		Owners:       []string{"0d1e2f3a-4b5c-4d6e-8f70-81a2b3c4d5e6"}, Version: 7}
	support := routing.Service{TenantID: tenantA, ID: "support", Type: routing.SkillBased, UpdatedAt: at}
	other := routing.Service{TenantID: tenantB, ID: "sales", Type: routing.None, UpdatedAt: at}
	for _, sv := range []routing.Service{support, sales, other} {
		if err := s.PutService(ctx, sv); err != nil {
			t.Fatalf("put service: %v", err)
		}
	}
	got, err := s.GetService(ctx, tenantA, "sales")
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(sales)
	if err != nil || string(gj) != string(wj) || !got.UpdatedAt.Equal(at) {
		t.Fatalf("get service = %+v, %v; want %+v", got, err, sales)
	}
	list, err := s.ListServices(ctx, tenantA)
	if err != nil || len(list) != 2 || list[0].ID != "sales" || list[1].ID != "support" {
		t.Fatalf("list services = %+v, %v", list, err)
	}
	svc, tasks, err := s.LoadQueue(ctx, tenantB, "sales")
	if err != nil || svc.Type != routing.None || len(tasks) != 0 {
		t.Fatalf("load empty queue = %+v %v %v", svc, tasks, err)
	}
}

func testTasks(t *testing.T, s routing.Store) {
	ctx := context.Background()
	if err := s.PutService(ctx, routing.Service{TenantID: tenantA, ID: "sales", Type: routing.TeamsBased}); err != nil {
		t.Fatal(err)
	}
	_, err := s.GetTask(ctx, tenantA, "sales", "t1")
	mustNotFound(t, "unknown task", err)
	t1 := routing.Task{TenantID: tenantA, ServiceID: "sales", ID: "t1", CallID: "call-1", Priority: routing.High, Created: at, State: routing.Waiting,
		Explain: &routing.Explain{TaskID: "t1", Counts: map[string]int{"RONA": 2}, Agents: []routing.Entry{{AgentID: "a", Reason: "RONA"}}}}
	c1, err := s.CreateTask(ctx, t1)
	if err != nil || c1.ETag == "" {
		t.Fatalf("create task = %+v, %v; want an ETag", c1, err)
	}
	if _, err := s.CreateTask(ctx, t1); !errors.Is(err, fault.ErrConflict) {
		t.Fatalf("second create = %v; want fault.ErrConflict", err)
	}
	done := routing.Task{TenantID: tenantA, ServiceID: "sales", ID: "t2", Created: at, State: routing.Done, Outcome: routing.QueueFull}
	if _, err := s.CreateTask(ctx, done); err != nil {
		t.Fatal(err)
	}
	// The same task id in another service is another task.
	if err := s.PutService(ctx, routing.Service{TenantID: tenantA, ID: "support", Type: routing.TeamsBased}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateTask(ctx, routing.Task{TenantID: tenantA, ServiceID: "support", ID: "t1", Created: at, State: routing.Waiting}); err != nil {
		t.Fatalf("same id in another service: %v", err)
	}
	_, open, err := s.LoadQueue(ctx, tenantA, "sales")
	if err != nil || len(open) != 1 || open[0].ID != "t1" || open[0].ETag != c1.ETag || open[0].Priority != routing.High ||
		!open[0].Created.Equal(at) || open[0].Explain == nil || open[0].Explain.Counts["RONA"] != 2 {
		t.Fatalf("load queue = %+v, %v; want the one open task with its ETag", open, err)
	}
	got, err := s.GetTask(ctx, tenantA, "sales", "t2")
	if err != nil || got.Outcome != routing.QueueFull {
		t.Fatalf("get done task = %+v, %v", got, err)
	}
	upd := open[0]
	upd.State, upd.OfferedTo, upd.RingExpiry = routing.Offered, []string{"a"}, at.Add(time.Minute)
	r1, err := s.ReplaceTask(ctx, upd)
	if err != nil || r1.ETag == c1.ETag {
		t.Fatalf("replace = %+v, %v; want a new ETag", r1, err)
	}
	if _, err := s.ReplaceTask(ctx, upd); !errors.Is(err, fault.ErrPrecondition) {
		t.Fatalf("replace with a stale ETag = %v; want fault.ErrPrecondition", err)
	}
	u, err := s.UpdateTask(ctx, tenantA, "sales", "t1", func(x *routing.Task) error {
		if x.State != routing.Offered || len(x.OfferedTo) != 1 || !x.RingExpiry.Equal(at.Add(time.Minute)) {
			return fmt.Errorf("fn saw %+v", x)
		}
		x.State = routing.Done
		return nil
	})
	if err != nil || u.State != routing.Done {
		t.Fatalf("update task = %+v, %v", u, err)
	}
	boom := errors.New("boom")
	if _, err := s.UpdateTask(ctx, tenantA, "sales", "t1", func(*routing.Task) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("fn error = %v; want it returned", err)
	}
	if _, err := s.UpdateTask(ctx, tenantA, "sales", "nope", func(*routing.Task) error { return nil }); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("update of a missing task = %v; want fault.ErrNotFound", err)
	}
	if _, open, _ := s.LoadQueue(ctx, tenantA, "sales"); len(open) != 0 {
		t.Fatalf("done tasks must leave the queue: %+v", open)
	}
}

func testAgentStates(t *testing.T, s routing.Store) {
	ctx := context.Background()
	_, err := s.GetAgentState(ctx, tenantA, "a")
	mustNotFound(t, "unknown agent", err)
	a := routing.AgentState{TenantID: tenantA, AgentID: "a", Services: []string{"sales"}, Skills: map[string]int{"de": 4},
		Duty: routing.Duty{Services: []string{"support"}}, LastCallEnded: at,
		Hold: &routing.Hold{ServiceID: "sales", TaskID: "t1", Attempt: 1, Phase: routing.HoldOffered, Since: at, Until: at.Add(time.Minute)}}
	ins, err := s.ReplaceAgentState(ctx, a)
	if err != nil || ins.ETag == "" {
		t.Fatalf("insert = %+v, %v", ins, err)
	}
	if _, err := s.ReplaceAgentState(ctx, a); !errors.Is(err, fault.ErrConflict) {
		t.Fatalf("second insert = %v; want fault.ErrConflict", err)
	}
	if _, err := s.UpdateAgentState(ctx, tenantB, "b", func(x *routing.AgentState) error {
		if x.ETag != "" || x.AgentID != "b" || x.TenantID != tenantB {
			return fmt.Errorf("a new agent must start empty with its ids: %+v", x)
		}
		x.Services = []string{"helpdesk"}
		return nil
	}); err != nil {
		t.Fatalf("update creating: %v", err)
	}
	list, err := s.ListAgentStates(ctx, tenantA)
	if err != nil || len(list) != 1 || list[0].ETag != ins.ETag || list[0].Hold == nil || !list[0].Hold.Until.Equal(at.Add(time.Minute)) ||
		list[0].Skills["de"] != 4 || !list[0].LastCallEnded.Equal(at) {
		t.Fatalf("list agents = %+v, %v", list, err)
	}
	next := list[0]
	next.Hold = nil
	if _, err := s.ReplaceAgentState(ctx, next); err != nil {
		t.Fatalf("replace: %v", err)
	}
	if _, err := s.ReplaceAgentState(ctx, next); !errors.Is(err, fault.ErrPrecondition) {
		t.Fatalf("replace with stale ETag = %v; want fault.ErrPrecondition", err)
	}
}

// N goroutines reserve one agent with the ETag they all read: exactly one wins.
func testReservationRace(t *testing.T, s routing.Store) {
	ctx := context.Background()
	base, err := s.ReplaceAgentState(ctx, routing.AgentState{TenantID: tenantA, AgentID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	won := oneWinner(t, 16, is(fault.ErrPrecondition), "fault.ErrPrecondition", func(i int) error {
		a := base
		a.Hold = &routing.Hold{ServiceID: fmt.Sprintf("svc%d", i), TaskID: "t", Phase: routing.HoldOffered, Until: at}
		_, err := s.ReplaceAgentState(ctx, a)
		return err
	})
	got, _ := s.GetAgentState(ctx, tenantA, "a")
	if got.Hold == nil || got.Hold.ServiceID != fmt.Sprintf("svc%d", won) {
		t.Fatalf("stored hold %+v is not the winner's (svc%d)", got.Hold, won)
	}
}

func testAgentUpdateRace(t *testing.T, s routing.Store) {
	ctx := context.Background()
	const n = 16
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.UpdateAgentState(ctx, tenantA, "a", func(a *routing.AgentState) error {
				a.NoAnswers++
				return nil
			}); err != nil {
				t.Errorf("update: %v", err)
			}
		}()
	}
	wg.Wait()
	got, err := s.GetAgentState(ctx, tenantA, "a")
	if err != nil || got.NoAnswers != n {
		t.Fatalf("after %d concurrent increments: %d (%v); an update was lost", n, got.NoAnswers, err)
	}
}

func testTaskUpdateRace(t *testing.T, s routing.Store) {
	ctx := context.Background()
	if err := s.PutService(ctx, routing.Service{TenantID: tenantA, ID: "sales", Type: routing.TeamsBased}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateTask(ctx, routing.Task{TenantID: tenantA, ServiceID: "sales", ID: "t", Created: at, State: routing.Waiting}); err != nil {
		t.Fatal(err)
	}
	const n = 16
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.UpdateTask(ctx, tenantA, "sales", "t", func(x *routing.Task) error {
				x.Attempts++
				return nil
			}); err != nil {
				t.Errorf("update: %v", err)
			}
		}()
	}
	wg.Wait()
	got, err := s.GetTask(ctx, tenantA, "sales", "t")
	if err != nil || got.Attempts != n {
		t.Fatalf("after %d concurrent increments: %d (%v)", n, got.Attempts, err)
	}
}

// testServiceUpdates: create refuses an existing id; updates are conditional, count
// the version, lose nothing under a race, and write nothing when fn fails.
func testServiceUpdates(t *testing.T, s routing.Store) {
	ctx := context.Background()
	_, err := s.UpdateService(ctx, tenantA, "sales", func(*routing.Service) error { return nil })
	mustNotFound(t, "update of an unknown service", err)
	sv := routing.Service{TenantID: tenantA, ID: "sales", Name: "Sales", Type: routing.TeamsBased, UpdatedAt: at}
	got, err := s.CreateService(ctx, sv)
	if err != nil || got.Version != 1 {
		t.Fatalf("create service = %+v, %v; want version 1", got, err)
	}
	if _, err := s.CreateService(ctx, sv); !errors.Is(err, fault.ErrConflict) {
		t.Fatalf("create an existing service: %v, want fault.ErrConflict", err)
	}
	boom := errors.New("boom")
	if _, err := s.UpdateService(ctx, tenantA, "sales", func(sv *routing.Service) error { sv.Name = "X"; return boom }); !errors.Is(err, boom) {
		t.Fatalf("fn error: %v", err)
	}
	if cur, _ := s.GetService(ctx, tenantA, "sales"); cur.Name != "Sales" || cur.Version != 1 {
		t.Fatalf("a failed update wrote: %+v", cur)
	}
	const n = 6
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.UpdateService(ctx, tenantA, "sales", func(sv *routing.Service) error {
				sv.Owners = append(sv.Owners, fmt.Sprintf("0d1e2f3a-4b5c-4d6e-8f70-81a2b3c4d5e%d", i))
				sv.ID = "renamed" // ignored: the ids cannot change
				return nil
			})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent update: %v", err)
		}
	}
	cur, err := s.GetService(ctx, tenantA, "sales")
	if err != nil || cur.Version != 1+n || len(cur.Owners) != n || cur.ID != "sales" {
		t.Fatalf("after %d concurrent updates: %+v, %v; want version %d and every owner", n, cur, err, 1+n)
	}
	if _, err := s.GetService(ctx, tenantA, "renamed"); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("fn changed the id: %v", err)
	}
}

func testPurgeService(t *testing.T, s routing.Store) {
	ctx := context.Background()
	for _, id := range []string{"old", "kept"} {
		if err := s.PutService(ctx, routing.Service{TenantID: tenantA, ID: id, Type: routing.TeamsBased}); err != nil {
			t.Fatal(err)
		}
		for i := range 130 { // more than one batch of deletes
			if _, err := s.CreateTask(ctx, routing.Task{TenantID: tenantA, ServiceID: id, ID: fmt.Sprint("t", i), State: routing.Waiting,
				Priority: routing.Normal, Created: at}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := s.PurgeService(ctx, tenantA, "old"); !errors.Is(err, fault.ErrPrecondition) {
		t.Fatalf("purging a live service = %v; want ErrPrecondition", err)
	}
	if _, tasks, err := s.LoadQueue(ctx, tenantA, "old"); err != nil || len(tasks) != 130 {
		t.Fatalf("a refused purge removed something: %d tasks, %v", len(tasks), err)
	}
	if _, err := s.UpdateService(ctx, tenantA, "old", func(sv *routing.Service) error { sv.PendingDeletion = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PurgeService(ctx, tenantA, "old"); err != nil || n != 130 {
		t.Fatalf("purge = %d %v; want 130 tasks", n, err)
	}
	if _, err := s.GetService(ctx, tenantA, "old"); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("purged service still there: %v", err)
	}
	if _, err := s.GetTask(ctx, tenantA, "old", "t7"); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("purged task still there: %v", err)
	}
	if _, err := s.PurgeService(ctx, tenantA, "old"); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("second purge = %v; want ErrNotFound", err)
	}
	if _, tasks, err := s.LoadQueue(ctx, tenantA, "kept"); err != nil || len(tasks) != 130 {
		t.Fatalf("the other service lost tasks: %d %v", len(tasks), err)
	}
}
