package storetest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/tenant"
	"github.com/teamscc/teamscc/shared/userstate"
)

// UserStateStores is what user-state tracking runs on: its own store and the routing,
// tenant and presence stores it reads.
type UserStateStores interface {
	userstate.Store
	routing.Store
	tenant.Store
	presence.Store
}

// RunUserStates holds a userstate.Store to its contract — conditional cursors, record
// upserts by key, listing by overlap with paging and filters — and runs the tracker on
// it under concurrency: observers of one agent never lose, overlap or double a record,
// and Stop racing observers leaves nothing open. newStore returns an empty store.
func RunUserStates(t *testing.T, newStore func(t *testing.T) UserStateStores) {
	t.Run("CursorConditions", func(t *testing.T) { testCursorConditions(t, newStore(t)) })
	t.Run("ListingOverlapPagingFilters", func(t *testing.T) { testUserStateListing(t, newStore(t)) })
	t.Run("ConcurrentObserversKeepOneTimeline", func(t *testing.T) { testObserverRace(t, newStore(t)) })
	t.Run("StopRacingObserversLeavesNothingOpen", func(t *testing.T) { testStopRace(t, newStore(t)) })
}

func testCursorConditions(t *testing.T, s UserStateStores) {
	ctx := context.Background()
	if _, err := s.GetUserStateCursor(ctx, tenantA, "a1"); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("get missing cursor = %v; want ErrNotFound", err)
	}
	c := userstate.Cursor{TenantID: tenantA, AgentID: "a1", At: at}
	rec := userstate.Record{TenantID: tenantA, AgentID: "a1", Kind: userstate.KindDuty, Value: userstate.OnDuty, Start: at}
	if err := s.CommitUserStates(ctx, c, false, []userstate.Record{rec}); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitUserStates(ctx, c, false, nil); !errors.Is(err, fault.ErrConflict) {
		t.Fatalf("second insert = %v; want ErrConflict", err)
	}
	got, err := s.GetUserStateCursor(ctx, tenantA, "a1")
	if err != nil || got.ETag == "" || !got.At.Equal(at) {
		t.Fatalf("get = %+v %v", got, err)
	}
	stale := got
	got.At = at.Add(time.Second)
	closed := rec
	closed.End = at.Add(time.Second)
	if err := s.CommitUserStates(ctx, got, false, []userstate.Record{closed}); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitUserStates(ctx, stale, false, []userstate.Record{{TenantID: tenantA, AgentID: "a1", Kind: userstate.KindDuty, Value: "lost", Start: at.Add(time.Hour)}}); !errors.Is(err, fault.ErrPrecondition) {
		t.Fatalf("stale update = %v; want ErrPrecondition", err)
	}
	recs, _, err := s.ListUserStates(ctx, tenantA, userstate.Query{From: at.Add(-time.Hour), To: at.Add(2 * time.Hour)})
	if err != nil || len(recs) != 1 || recs[0].Value != userstate.OnDuty || !recs[0].End.Equal(at.Add(time.Second)) {
		t.Fatalf("records = %+v %v; want the one record, closed by the upsert, and nothing of the lost commit", recs, err)
	}
	cur, _ := s.GetUserStateCursor(ctx, tenantA, "a1")
	if err := s.CommitUserStates(ctx, stale, true, nil); !errors.Is(err, fault.ErrPrecondition) {
		t.Fatalf("stale delete = %v; want ErrPrecondition", err)
	}
	if err := s.CommitUserStates(ctx, cur, true, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitUserStates(ctx, cur, true, nil); err == nil {
		t.Fatal("deleting a deleted cursor succeeded")
	}
	if cs, err := s.ListUserStateCursors(ctx, tenantA); err != nil || len(cs) != 0 {
		t.Fatalf("cursors after delete = %v %v", cs, err)
	}
	// More records than one transaction takes.
	many := make([]userstate.Record, 150)
	for i := range many {
		many[i] = userstate.Record{TenantID: tenantA, AgentID: "a2", Kind: userstate.KindPresence, Value: "Available",
			Start: at.Add(time.Duration(i) * time.Minute), End: at.Add(time.Duration(i+1) * time.Minute)}
	}
	if err := s.CommitUserStates(ctx, userstate.Cursor{TenantID: tenantA, AgentID: "a2", At: at}, false, many); err != nil {
		t.Fatal(err)
	}
	recs, _, err = s.ListUserStates(ctx, tenantA, userstate.Query{From: at, To: at.Add(24 * time.Hour), AgentID: "a2"})
	if err != nil || len(recs) != 150 {
		t.Fatalf("listed %d of 150 records (%v)", len(recs), err)
	}
}

func testUserStateListing(t *testing.T, s UserStateStores) {
	ctx := context.Background()
	day := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	var recs []userstate.Record
	add := func(agent string, kind userstate.Kind, value string, from, to time.Duration) {
		r := userstate.Record{TenantID: tenantA, AgentID: agent, Kind: kind, Value: value, Start: day.Add(from)}
		if to > 0 {
			r.End = day.Add(to)
		}
		recs = append(recs, r)
	}
	add("a1", userstate.KindPresence, "Available", 8*time.Hour, 9*time.Hour)
	add("a1", userstate.KindPresence, "Busy", 9*time.Hour, 0) // open
	add("a2", userstate.KindPresence, "Away", 7*time.Hour, 8*time.Hour+30*time.Minute)
	add("a2", userstate.KindRouting, "ACW", 10*time.Hour, 10*time.Hour+time.Minute)
	add("a2", userstate.KindRouting, "Idle", 10*time.Hour+time.Minute, 0)
	add("a3", userstate.KindDuty, "OnDuty", 1*time.Hour, 2*time.Hour) // ends before the window
	if err := s.CommitUserStates(ctx, userstate.Cursor{TenantID: tenantA, AgentID: "x", At: day}, false, recs); err != nil {
		t.Fatal(err)
	}
	other := userstate.Record{TenantID: tenantB, AgentID: "b1", Kind: userstate.KindDuty, Value: "OnDuty", Start: day.Add(9 * time.Hour)}
	if err := s.CommitUserStates(ctx, userstate.Cursor{TenantID: tenantB, AgentID: "b1", At: day}, false, []userstate.Record{other}); err != nil {
		t.Fatal(err)
	}
	describe := func(rs []userstate.Record) []string {
		out := make([]string, len(rs))
		for i, r := range rs {
			out[i] = r.AgentID + "/" + string(r.Kind) + "/" + r.Value
		}
		return out
	}
	window := userstate.Query{From: day.Add(8*time.Hour + 15*time.Minute), To: day.Add(10*time.Hour + 30*time.Second)}
	got, next, err := s.ListUserStates(ctx, tenantA, window)
	want := []string{"a2/presence/Away", "a1/presence/Available", "a1/presence/Busy", "a2/routing/ACW"}
	if err != nil || next != "" || fmt.Sprint(describe(got)) != fmt.Sprint(want) {
		t.Fatalf("window = %v next %q %v; want %v (overlap, start order, no other tenant)", describe(got), next, err, want)
	}
	// Paging with Top 1 walks the same list.
	var paged []userstate.Record
	q := window
	q.Top = 1
	for range 10 {
		page, next, err := s.ListUserStates(ctx, tenantA, q)
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, page...)
		if next == "" {
			break
		}
		q.After = next
	}
	if fmt.Sprint(describe(paged)) != fmt.Sprint(want) {
		t.Fatalf("paged = %v; want %v", describe(paged), want)
	}
	// Filters.
	f := userstate.Query{From: day, To: day.Add(24 * time.Hour), AgentID: "a2", Kind: userstate.KindRouting}
	got, _, _ = s.ListUserStates(ctx, tenantA, f)
	if fmt.Sprint(describe(got)) != "[a2/routing/ACW a2/routing/Idle]" {
		t.Fatalf("agent+kind filter = %v", describe(got))
	}
	f = userstate.Query{From: day, To: day.Add(24 * time.Hour), Value: "Busy"}
	got, _, _ = s.ListUserStates(ctx, tenantA, f)
	if fmt.Sprint(describe(got)) != "[a1/presence/Busy]" || !got[0].Open() {
		t.Fatalf("value filter = %v; want the open Busy record", describe(got))
	}
}

// steppingClock returns a clock, safe for concurrent use, that moves on by 1 ms at
// every reading, so concurrent observers see distinct, ordered instants.
func steppingClock() func() time.Time {
	var mu sync.Mutex
	clock := at
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(time.Millisecond)
		return clock
	}
}

// userStateRig seeds a tracking tenant, a service and agents on s.
func userStateRig(t *testing.T, s UserStateStores, agents int, now func() time.Time) *userstate.Tracker {
	t.Helper()
	ctx := context.Background()
	tn := tenant.Tenant{ID: tenantA, Name: "Contoso"}
	tn.Privacy.TrackUserStates = true
	if err := s.PutTenant(ctx, tn); err != nil {
		t.Fatal(err)
	}
	if err := s.PutService(ctx, routing.Service{TenantID: tenantA, ID: "sales", Type: routing.TeamsBased}); err != nil {
		t.Fatal(err)
	}
	var ps []presence.Presence
	for i := range agents {
		id := fmt.Sprintf("agent-%02d", i)
		if _, err := s.ReplaceAgentState(ctx, routing.AgentState{TenantID: tenantA, AgentID: id, Services: []string{"sales"}}); err != nil {
			t.Fatal(err)
		}
		ps = append(ps, presence.Presence{AgentID: id, Availability: presence.Available, Source: presence.SourceExtended, ObservedAt: now()})
	}
	if err := s.SavePresences(ctx, tenantA, ps); err != nil {
		t.Fatal(err)
	}
	return userstate.NewTracker(userstate.Options{Store: s, Routes: s, Tenants: s, Presences: s, Now: now, TenantCacheTTL: -1})
}

// checkTimelines asserts that each agent's records of each kind follow one another
// without gap or overlap, with at most one open (none when stopped).
func checkTimelines(t *testing.T, s UserStateStores, stopped bool) map[string][]userstate.Record {
	t.Helper()
	var all []userstate.Record
	q := userstate.Query{From: at.Add(-24 * time.Hour), To: at.Add(72 * time.Hour)}
	for {
		page, next, err := s.ListUserStates(context.Background(), tenantA, q)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if next == "" {
			break
		}
		q.After = next
	}
	by := map[string][]userstate.Record{}
	for _, r := range all {
		k := r.AgentID + "/" + string(r.Kind)
		by[k] = append(by[k], r)
	}
	for k, rs := range by {
		sort.Slice(rs, func(i, j int) bool { return rs[i].Start.Before(rs[j].Start) })
		for i, r := range rs {
			if r.Open() && (stopped || i != len(rs)-1) {
				t.Fatalf("%s: record %d of %d is open (stopped %v): %+v", k, i, len(rs), stopped, rs)
			}
			if i > 0 && !rs[i-1].End.Equal(r.Start) {
				t.Fatalf("%s: gap or overlap between %+v and %+v", k, rs[i-1], r)
			}
			if i > 0 && rs[i-1].Value == r.Value && rs[i-1].Detail == r.Detail && userstate.DayStart(r.Start) != r.Start {
				t.Fatalf("%s: two records in a row with the same value %q: a change was doubled", k, r.Value)
			}
		}
	}
	return by
}

// testObserverRace: many goroutines change one agent's state (ring, connect, ACW,
// back) through the tracked store while others observe it; every change is in one
// seamless timeline per kind.
func testObserverRace(t *testing.T, s UserStateStores) {
	ctx := context.Background()
	now := steppingClock()
	tr := userStateRig(t, s, 4, now)
	routes := userstate.TrackedRoutes{Store: s, Tracker: tr}
	const writers, rounds = 8, 6
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds+writers)
	for w := range writers {
		wg.Go(func() {
			for r := range rounds {
				_, err := routes.UpdateAgentState(ctx, tenantA, "agent-00", func(a *routing.AgentState) error {
					n := now()
					switch (w + r) % 3 {
					case 0:
						a.Hold = &routing.Hold{ServiceID: "sales", TaskID: "t", Phase: routing.HoldOffered, Since: n, Until: n.Add(time.Hour)}
					case 1:
						a.Hold = &routing.Hold{ServiceID: "sales", TaskID: "t", Phase: routing.HoldConnected, Since: n, Until: n.Add(time.Hour)}
					default:
						a.Hold, a.ACWUntil = nil, n.Add(5*time.Millisecond)
					}
					return nil
				})
				if err != nil {
					errs <- err
				}
			}
		})
		wg.Go(func() {
			if err := tr.ObserveAgent(ctx, tenantA, "agent-00"); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// No sweep here: the observers alone must have recorded the final state.
	by := checkTimelines(t, s, false)
	if len(by["agent-00/routing"]) < 2 {
		t.Fatalf("routing records = %+v; want the changes recorded", by["agent-00/routing"])
	}
	// The last record is what the agent was at the last observation.
	a, _ := s.GetAgentState(ctx, tenantA, "agent-00")
	c, err := s.GetUserStateCursor(ctx, tenantA, "agent-00")
	if err != nil {
		t.Fatal(err)
	}
	rs := by["agent-00/routing"]
	if want := string(a.PhaseAt(c.At, time.Time{})); rs[len(rs)-1].Value != want {
		t.Fatalf("last routing record %q; the agent is %q", rs[len(rs)-1].Value, want)
	}
}

// testStopRace: tracking is turned off while observers run; once Stop and the
// observers are done nothing is open and no cursor is left.
func testStopRace(t *testing.T, s UserStateStores) {
	ctx := context.Background()
	now := steppingClock()
	tr := userStateRig(t, s, 4, now)
	if err := tr.SyncTenant(ctx, tenantA); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateTenant(ctx, tenantA, func(tn *tenant.Tenant) error {
		tn.Privacy.TrackUserStates = false
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 16 {
		wg.Go(func() {
			if err := tr.ObserveAgent(ctx, tenantA, fmt.Sprintf("agent-%02d", i%4)); err != nil {
				errs <- err
			}
		})
	}
	wg.Go(func() {
		if err := tr.Stop(ctx, tenantA); err != nil {
			errs <- err
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if cs, err := s.ListUserStateCursors(ctx, tenantA); err != nil || len(cs) != 0 {
		t.Fatalf("cursors left after Stop: %d (%v)", len(cs), err)
	}
	by := checkTimelines(t, s, true)
	if len(by) != 16 {
		t.Fatalf("kinds×agents recorded = %d; want 16 (4 agents × 4 kinds)", len(by))
	}
	// Off means off: a later observation records nothing.
	before := len(by["agent-01/routing"])
	if err := tr.ObserveAgent(ctx, tenantA, "agent-01"); err != nil {
		t.Fatal(err)
	}
	if after := checkTimelines(t, s, true); len(after["agent-01/routing"]) != before {
		t.Fatal("an observation after Stop recorded something")
	}
}
