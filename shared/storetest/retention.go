package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/calls"
	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/interact"
	"github.com/teamscc/teamscc/shared/parking"
	"github.com/teamscc/teamscc/shared/retention"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/userstate"
)

// RetentionStores is every store retention deletes from, as one adapter implements
// them.
type RetentionStores interface {
	retention.Store
	routing.Store
	calls.Store
	interact.Store
	userstate.Store
	parking.Store
}

// RunRetention holds a retention.Store to its contract: only what is older than the
// cutoff goes (by each kind's rule), open tasks, running calls and open user-state
// records never do, other tenants and services are untouched, every call stays within
// its limit and says whether more are left, a task finishing while a purge runs is
// kept, and a repeated run deletes nothing more. newStore returns an empty store.
func RunRetention(t *testing.T, newStore func(t *testing.T) RetentionStores) {
	t.Run("FinishedTasks", func(t *testing.T) { testPurgeFinishedTasks(t, newStore(t)) })
	t.Run("FinishedTasksBeyondOneTransaction", func(t *testing.T) { testPurgeManyTasks(t, newStore(t)) })
	t.Run("ATaskFinishingDuringAPurgeIsKept", func(t *testing.T) { testPurgeRacesFinishingTasks(t, newStore(t)) })
	t.Run("EndedCalls", func(t *testing.T) { testPurgeEndedCalls(t, newStore(t)) })
	t.Run("Sessions", func(t *testing.T) { testPurgeSessions(t, newStore(t)) })
	t.Run("UserStates", func(t *testing.T) { testPurgeUserStates(t, newStore(t)) })
	t.Run("Parked", func(t *testing.T) { testPurgeParked(t, newStore(t)) })
}

const day = 24 * time.Hour

// drain calls purge with limit until it says nothing is left, checking every call
// stays within the limit, and returns the total deleted. Then it calls once more: a
// repeated run must find nothing.
func drain(t *testing.T, what string, limit int, purge func(limit int) (retention.Result, error)) int {
	t.Helper()
	total := 0
	for i := 0; ; i++ {
		res, err := purge(limit)
		if err != nil {
			t.Fatalf("%s: call %d: %v", what, i, err)
		}
		if res.Deleted > limit || res.Deleted < 0 {
			t.Fatalf("%s: call %d deleted %d with a limit of %d", what, i, res.Deleted, limit)
		}
		total += res.Deleted
		if !res.More {
			break
		}
		if i > 1000 {
			t.Fatalf("%s: still more after %d calls", what, i)
		}
	}
	if res, err := purge(limit); err != nil || res != (retention.Result{}) {
		t.Fatalf("%s: a repeated run = %+v, %v; want nothing deleted, nothing left", what, res, err)
	}
	return total
}

func mustFail(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func testPurgeFinishedTasks(t *testing.T, s RetentionStores) {
	ctx := context.Background()
	cutoff := at.Add(-30 * day)
	for _, sv := range []routing.Service{{TenantID: tenantA, ID: "sales"}, {TenantID: tenantA, ID: "support"}, {TenantID: tenantB, ID: "sales"}} {
		mustFail(t, "put service", s.PutService(ctx, sv))
	}
	task := func(tenantID, serviceID, id string, created, ended time.Time, open bool) routing.Task {
		x := routing.Task{TenantID: tenantID, ServiceID: serviceID, ID: id, Priority: routing.Normal, Created: created, State: routing.Waiting}
		if !open {
			x.State, x.Outcome, x.EndedAt = routing.Done, routing.Completed, ended
		}
		return x
	}
	old, recent := at.Add(-40*day), at.Add(-day)
	gone := []routing.Task{
		task(tenantA, "sales", "done-old-1", old, old.Add(time.Hour), false),
		task(tenantA, "sales", "done-old-2", old, cutoff.Add(-time.Second), false),
		task(tenantA, "sales", "done-no-end", old, time.Time{}, false), // judged by Created
	}
	kept := []routing.Task{
		task(tenantA, "sales", "open-old", at.Add(-400*day), time.Time{}, true),
		task(tenantA, "sales", "open-new", recent, time.Time{}, true),
		task(tenantA, "sales", "done-late", old, recent, false), // created long ago, ended lately
		task(tenantA, "sales", "done-at-cutoff", old, cutoff, false),
		task(tenantA, "sales", "done-no-end-new", recent, time.Time{}, false),
		task(tenantA, "support", "done-old", old, old, false),
		task(tenantB, "sales", "done-old", old, old, false),
	}
	for _, tk := range append(slices.Clone(gone), kept...) {
		_, err := s.CreateTask(ctx, tk)
		mustFail(t, "create "+tk.ID, err)
	}
	// Two more that finish the usual way: created open, then done.
	for _, id := range []string{"finished-old", "finished-late"} {
		_, err := s.CreateTask(ctx, task(tenantA, "sales", id, old, time.Time{}, true))
		mustFail(t, "create "+id, err)
		ended := old.Add(time.Hour)
		if id == "finished-late" {
			ended = recent
		}
		done, err := s.UpdateTask(ctx, tenantA, "sales", id, func(x *routing.Task) error {
			x.State, x.Outcome, x.EndedAt = routing.Done, routing.Completed, ended
			return nil
		})
		mustFail(t, "finish "+id, err)
		if id == "finished-old" {
			gone = append(gone, done)
		} else {
			kept = append(kept, done)
		}
	}
	n := drain(t, "purge finished tasks", 2, func(limit int) (retention.Result, error) {
		return s.PurgeFinishedTasks(ctx, tenantA, "sales", cutoff, limit)
	})
	if n != len(gone) {
		t.Errorf("deleted %d tasks, want %d", n, len(gone))
	}
	for _, tk := range gone {
		if _, err := s.GetTask(ctx, tk.TenantID, tk.ServiceID, tk.ID); !errors.Is(err, fault.ErrNotFound) {
			t.Errorf("task %s (ended %v) still there: %v", tk.ID, tk.EndedAt, err)
		}
	}
	for _, tk := range kept {
		got, err := s.GetTask(ctx, tk.TenantID, tk.ServiceID, tk.ID)
		if err != nil || got.State != tk.State {
			t.Errorf("task %s/%s/%s: %+v, %v; want it kept", tk.TenantID, tk.ServiceID, tk.ID, got, err)
		}
	}
	_, open, err := s.LoadQueue(ctx, tenantA, "sales")
	if err != nil || len(open) != 2 {
		t.Fatalf("open tasks after the purge: %+v, %v; want open-old and open-new", open, err)
	}
	// A purged task's id may be used again.
	if _, err := s.CreateTask(ctx, task(tenantA, "sales", "done-old-1", at, time.Time{}, true)); err != nil {
		t.Fatalf("creating a task with a purged id: %v", err)
	}
}

// More old tasks than one transaction takes, in one call and over several.
func testPurgeManyTasks(t *testing.T, s RetentionStores) {
	ctx := context.Background()
	mustFail(t, "put service", s.PutService(ctx, routing.Service{TenantID: tenantA, ID: "sales"}))
	const n = 230
	old := at.Add(-60 * day)
	for i := range n {
		_, err := s.CreateTask(ctx, routing.Task{TenantID: tenantA, ServiceID: "sales", ID: fmt.Sprintf("t%04d", i), Priority: routing.Normal,
			Created: old, State: routing.Done, Outcome: routing.Abandoned, EndedAt: old})
		mustFail(t, "create", err)
	}
	res, err := s.PurgeFinishedTasks(ctx, tenantA, "sales", at, 150)
	if err != nil || res.Deleted != 150 || !res.More {
		t.Fatalf("first call = %+v, %v; want 150 deleted and more left", res, err)
	}
	res, err = s.PurgeFinishedTasks(ctx, tenantA, "sales", at, 0) // 0: the most a call takes
	if err != nil || res.Deleted != n-150 || res.More {
		t.Fatalf("second call = %+v, %v; want the other %d deleted, none left", res, err, n-150)
	}
}

// Tasks created long ago finish (end now) while purges of the old done tasks run:
// every one of them is kept, every old one goes.
func testPurgeRacesFinishingTasks(t *testing.T, s RetentionStores) {
	ctx := context.Background()
	mustFail(t, "put service", s.PutService(ctx, routing.Service{TenantID: tenantA, ID: "sales"}))
	const finishing, oldDone = 20, 40
	old := at.Add(-100 * day)
	for i := range finishing {
		_, err := s.CreateTask(ctx, routing.Task{TenantID: tenantA, ServiceID: "sales", ID: fmt.Sprintf("live-%02d", i), Priority: routing.Normal,
			Created: old, State: routing.Waiting})
		mustFail(t, "create", err)
	}
	for i := range oldDone {
		_, err := s.CreateTask(ctx, routing.Task{TenantID: tenantA, ServiceID: "sales", ID: fmt.Sprintf("old-%02d", i), Priority: routing.Normal,
			Created: old, State: routing.Done, Outcome: routing.Completed, EndedAt: old})
		mustFail(t, "create", err)
	}
	cutoff := at.Add(-30 * day)
	var wg sync.WaitGroup
	errs := make(chan error, finishing+1)
	wg.Go(func() {
		for range 50 {
			res, err := s.PurgeFinishedTasks(ctx, tenantA, "sales", cutoff, 3)
			if err != nil {
				errs <- err
				return
			}
			if !res.More && res.Deleted == 0 {
				return
			}
		}
	})
	for i := range finishing {
		wg.Go(func() {
			_, err := s.UpdateTask(ctx, tenantA, "sales", fmt.Sprintf("live-%02d", i), func(x *routing.Task) error {
				x.State, x.Outcome, x.EndedAt = routing.Done, routing.Completed, at
				return nil
			})
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	drain(t, "purge after the race", 3, func(limit int) (retention.Result, error) {
		return s.PurgeFinishedTasks(ctx, tenantA, "sales", cutoff, limit)
	})
	for i := range finishing {
		got, err := s.GetTask(ctx, tenantA, "sales", fmt.Sprintf("live-%02d", i))
		if err != nil || got.State != routing.Done || !got.EndedAt.Equal(at) {
			t.Errorf("a task that finished during the purge: %+v, %v; want it kept, done", got, err)
		}
	}
	for i := range oldDone {
		if _, err := s.GetTask(ctx, tenantA, "sales", fmt.Sprintf("old-%02d", i)); !errors.Is(err, fault.ErrNotFound) {
			t.Errorf("old-%02d still there: %v", i, err)
		}
	}
}

func testPurgeEndedCalls(t *testing.T, s RetentionStores) {
	ctx := context.Background()
	cutoff := at.Add(-30 * day)
	old, recent := at.Add(-40*day), at.Add(-day)
	call := func(tenantID, id string, created, ended time.Time, open bool) calls.Call {
		c := calls.Call{TenantID: tenantID, ID: id, Direction: calls.Inbound, ServiceID: "sales", Phase: calls.PhaseQueued, Created: created}
		if !open {
			c.Phase, c.EndedAt, c.EndReason = calls.PhaseEnded, ended, "CallerHungUp"
		}
		return c
	}
	gone := []calls.Call{
		call(tenantA, "ended-old-1", old, old.Add(time.Minute), false),
		call(tenantA, "ended-old-2", old, old.Add(2*time.Minute), false),
		call(tenantA, "ended-old-3", old, cutoff.Add(-time.Second), false),
		call(tenantA, "ended-no-end", old, time.Time{}, false),
	}
	kept := []calls.Call{
		call(tenantA, "running-old", at.Add(-400*day), time.Time{}, true),
		call(tenantA, "ended-late", old, recent, false),
		call(tenantA, "ended-at-cutoff", old, cutoff, false),
		call(tenantB, "ended-old", old, old, false),
	}
	for _, c := range append(slices.Clone(gone), kept...) {
		_, err := s.CreateCall(ctx, c)
		mustFail(t, "create call "+c.ID, err)
	}
	n := drain(t, "purge ended calls", 3, func(limit int) (retention.Result, error) {
		return s.PurgeEndedCalls(ctx, tenantA, cutoff, limit)
	})
	if n != len(gone) {
		t.Errorf("deleted %d calls, want %d", n, len(gone))
	}
	for _, c := range gone {
		if _, err := s.GetCall(ctx, c.TenantID, c.ID); !errors.Is(err, fault.ErrNotFound) {
			t.Errorf("call %s still there: %v", c.ID, err)
		}
	}
	for _, c := range kept {
		if got, err := s.GetCall(ctx, c.TenantID, c.ID); err != nil || got.Phase != c.Phase {
			t.Errorf("call %s: %+v, %v; want it kept", c.ID, got, err)
		}
	}
}

func testPurgeSessions(t *testing.T, s RetentionStores) {
	ctx := context.Background()
	closedBefore, openedBefore := at.Add(-7*day), at.Add(-30*day)
	sess := func(tenantID, id string, created, closed time.Time) interact.Session {
		v := interact.Session{TenantID: tenantID, ID: id, CustomerID: "customer-1", State: interact.SessionOpen, CreatedAt: created}
		if !closed.IsZero() {
			v.State, v.ClosedAt = interact.SessionClosed, closed
		}
		return v
	}
	gone := []interact.Session{
		sess(tenantA, "closed-old-1", at.Add(-60*day), at.Add(-8*day)),
		sess(tenantA, "closed-old-2", at.Add(-9*day), at.Add(-9*day)),
		sess(tenantA, "open-abandoned", at.Add(-31*day), time.Time{}),
	}
	kept := []interact.Session{
		sess(tenantA, "closed-new", at.Add(-60*day), at.Add(-day)),
		sess(tenantA, "closed-at-cutoff", at.Add(-60*day), closedBefore),
		sess(tenantA, "open-recent", at.Add(-10*day), time.Time{}),
		sess(tenantB, "closed-old", at.Add(-60*day), at.Add(-60*day)),
	}
	for _, v := range append(slices.Clone(gone), kept...) {
		mustFail(t, "create session "+v.ID, s.CreateSession(ctx, v))
	}
	if n := drain(t, "purge sessions", 2, func(limit int) (retention.Result, error) {
		return s.PurgeSessions(ctx, tenantA, closedBefore, openedBefore, limit)
	}); n != len(gone) {
		t.Errorf("deleted %d sessions, want %d", n, len(gone))
	}
	for _, v := range gone {
		if _, err := s.GetSession(ctx, v.TenantID, v.ID); !errors.Is(err, fault.ErrNotFound) {
			t.Errorf("session %s still there: %v", v.ID, err)
		}
	}
	for _, v := range kept {
		if got, err := s.GetSession(ctx, v.TenantID, v.ID); err != nil || got.State != v.State {
			t.Errorf("session %s: %+v, %v; want it kept", v.ID, got, err)
		}
	}
}

func testPurgeUserStates(t *testing.T, s RetentionStores) {
	ctx := context.Background()
	cutoff := at.Add(-90 * day)
	rec := func(agent string, k userstate.Kind, start, end time.Time) userstate.Record {
		return userstate.Record{TenantID: tenantA, AgentID: agent, Kind: k, Value: "v", Start: start, End: end}
	}
	oldDay := userstate.DayStart(at.Add(-100 * day))
	gone := []userstate.Record{
		rec("a1", userstate.KindDuty, oldDay, oldDay.Add(time.Hour)),
		rec("a1", userstate.KindPresence, oldDay.Add(time.Minute), oldDay.Add(2*time.Hour)),
		rec("a2", userstate.KindDuty, oldDay.Add(time.Hour), cutoff.Add(-time.Second)),
	}
	kept := []userstate.Record{
		rec("a1", userstate.KindRouting, oldDay, time.Time{}), // open, however old
		rec("a2", userstate.KindPresence, cutoff.Add(-time.Hour), cutoff),
		rec("a1", userstate.KindDuty, at.Add(-day), at.Add(-day+time.Hour)),
	}
	for _, agent := range []string{"a1", "a2"} {
		var rs []userstate.Record
		for _, r := range append(slices.Clone(gone), kept...) {
			if r.AgentID == agent {
				rs = append(rs, r)
			}
		}
		mustFail(t, "commit", s.CommitUserStates(ctx, userstate.Cursor{TenantID: tenantA, AgentID: agent, At: at}, false, rs))
	}
	other := userstate.Record{TenantID: tenantB, AgentID: "a1", Kind: userstate.KindDuty, Value: "v", Start: oldDay, End: oldDay.Add(time.Hour)}
	mustFail(t, "commit", s.CommitUserStates(ctx, userstate.Cursor{TenantID: tenantB, AgentID: "a1", At: at}, false, []userstate.Record{other}))
	if n := drain(t, "purge user states", 2, func(limit int) (retention.Result, error) {
		return s.PurgeUserStates(ctx, tenantA, cutoff, limit)
	}); n != len(gone) {
		t.Errorf("deleted %d records, want %d", n, len(gone))
	}
	all := func(tenantID string) []userstate.Record {
		recs, _, err := s.ListUserStates(ctx, tenantID, userstate.Query{From: oldDay.Add(-day), To: at.Add(day)})
		mustFail(t, "list", err)
		return recs
	}
	recs := all(tenantA)
	if len(recs) != len(kept) {
		t.Fatalf("records left: %+v; want %d", recs, len(kept))
	}
	for _, r := range recs {
		if !slices.ContainsFunc(kept, func(k userstate.Record) bool { return userstate.Key(k) == userstate.Key(r) }) {
			t.Errorf("record %s is left but was old enough", userstate.Key(r))
		}
	}
	if cs, err := s.ListUserStateCursors(ctx, tenantA); err != nil || len(cs) != 2 {
		t.Errorf("cursors after the purge: %d, %v; want both", len(cs), err)
	}
	if len(all(tenantB)) != 1 {
		t.Error("another tenant's record was deleted")
	}
}

func testPurgeParked(t *testing.T, s RetentionStores) {
	ctx := context.Background()
	cutoff := at.Add(-14 * day)
	msg := func(fn, id string, when time.Time) parking.Message {
		return parking.Message{Function: fn, MessageID: id, Reason: "bad", Body: "{}", ParkedAt: when}
	}
	gone := []parking.Message{
		msg("ScheduleOutbound", "m-old-1", at.Add(-20*day)),
		msg("ScheduleOutbound", "", at.Add(-20*day)),
		msg("ScheduleOutbound", "m old/2?", at.Add(-15*day)),
		msg("RouteCall", "m-old-3", cutoff.Add(-time.Millisecond)),
	}
	kept := []parking.Message{
		msg("ScheduleOutbound", "m-new", at.Add(-day)),
		msg("RouteCall", "m-at-cutoff", cutoff),
	}
	for _, m := range append(slices.Clone(gone), kept...) {
		mustFail(t, "park", s.Park(ctx, m))
	}
	// Parked again later: the record moves to its new time and stays.
	mustFail(t, "re-park", s.Park(ctx, msg("RouteCall", "m-reparked", at.Add(-30*day))))
	mustFail(t, "re-park", s.Park(ctx, msg("RouteCall", "m-reparked", at.Add(-2*day))))
	kept = append(kept, msg("RouteCall", "m-reparked", at.Add(-2*day)))
	if n := drain(t, "purge parked", 2, func(limit int) (retention.Result, error) {
		return s.PurgeParked(ctx, cutoff, limit)
	}); n != len(gone) {
		t.Errorf("deleted %d messages, want %d", n, len(gone))
	}
	left, err := s.ListParked(ctx, "", 0)
	mustFail(t, "list parked", err)
	if len(left) != len(kept) {
		t.Fatalf("parked after the purge: %+v; want %d", left, len(kept))
	}
	for _, m := range left {
		if !slices.ContainsFunc(kept, func(k parking.Message) bool { return k.MessageID == m.MessageID && k.ParkedAt.Equal(m.ParkedAt) }) {
			t.Errorf("message %q parked %v is left", m.MessageID, m.ParkedAt)
		}
	}
	// A purged message parked again is one record, as if it were new.
	mustFail(t, "park again", s.Park(ctx, msg("ScheduleOutbound", "m-old-1", at)))
	mustFail(t, "park again", s.Park(ctx, msg("ScheduleOutbound", "m-old-1", at.Add(time.Second))))
	list, err := s.ListParked(ctx, "ScheduleOutbound", 0)
	mustFail(t, "list parked", err)
	count := 0
	for _, m := range list {
		if m.MessageID == "m-old-1" {
			count++
		}
	}
	if count != 1 {
		t.Errorf("a purged message parked twice again is %d records; want 1", count)
	}
}
