package retention_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/retention"
	"github.com/teamscc/teamscc/shared/tenant"
)

// fakeStore records every call and answers from a backlog per (kind, tenant,
// service): each call deletes up to its limit of it.
type fakeStore struct {
	mu      sync.Mutex
	calls   []call
	backlog map[string]int
	fail    map[string]error
	stuck   map[string]bool // answers "more" but deletes nothing
	onCall  func()
}

type call struct {
	key            string
	before, opened time.Time
	limit          int
}

func (f *fakeStore) do(kind retention.Kind, tenantID, serviceID string, before, opened time.Time, limit int) (retention.Result, error) {
	if f.onCall != nil {
		f.onCall()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	key := string(kind) + "/" + tenantID + "/" + serviceID
	f.calls = append(f.calls, call{key, before, opened, limit})
	if err := f.fail[key]; err != nil {
		return retention.Result{}, err
	}
	if f.stuck[key] {
		return retention.Result{More: true}, nil
	}
	n := min(f.backlog[key], limit)
	f.backlog[key] -= n
	return retention.Result{Deleted: n, More: f.backlog[key] > 0}, nil
}

func (f *fakeStore) PurgeFinishedTasks(_ context.Context, tid, sid string, before time.Time, limit int) (retention.Result, error) {
	return f.do(retention.FinishedTasks, tid, sid, before, time.Time{}, limit)
}
func (f *fakeStore) PurgeEndedCalls(_ context.Context, tid string, before time.Time, limit int) (retention.Result, error) {
	return f.do(retention.EndedCalls, tid, "", before, time.Time{}, limit)
}
func (f *fakeStore) PurgeSessions(_ context.Context, tid string, closed, opened time.Time, limit int) (retention.Result, error) {
	return f.do(retention.Sessions, tid, "", closed, opened, limit)
}
func (f *fakeStore) PurgeUserStates(_ context.Context, tid string, before time.Time, limit int) (retention.Result, error) {
	return f.do(retention.UserStates, tid, "", before, time.Time{}, limit)
}
func (f *fakeStore) PurgeParked(_ context.Context, before time.Time, limit int) (retention.Result, error) {
	return f.do(retention.Parked, "", "", before, time.Time{}, limit)
}

func newFake() *fakeStore {
	return &fakeStore{backlog: map[string]int{}, fail: map[string]error{}, stuck: map[string]bool{}}
}

const (
	tenantA = "0d1f6b1e-7c3a-4c59-9a5e-1f2a3b4c5d6e"
	tenantB = "9e8d7c6b-5a49-4837-8261-7f6e5d4c3b2a"
)

var now = time.Date(2026, 11, 24, 10, 30, 15, 500_000_000, time.UTC)

func fixed() time.Time { return now }

// Each kind is purged with its cutoff: the tenant's own settings, else the defaults;
// abandoned sessions after 30 days or the closed-session retention when longer;
// parked messages once for the app. Only the services named are purged of tasks.
func TestEveryKindGetsItsTenantsCutoff(t *testing.T) {
	f := newFake()
	a := tenant.New(tenantA, "Contoso")
	a.Retention = tenant.Retention{FinishedTasksDays: 60, EndedCallsDays: 10, ClosedSessionsDays: 45, UserStatesDays: 365}
	b := tenant.New(tenantB, "Fabrikam")
	rep := retention.NewSweeper(retention.Options{Store: f, Now: fixed}).Run(context.Background(), []retention.Scope{
		{Tenant: a, Services: []string{"sales", "support"}}, {Tenant: b},
	})
	days := func(n int) time.Time { return now.Add(-time.Duration(n) * 24 * time.Hour).Truncate(time.Second) }
	want := map[string][2]time.Time{
		"finishedTasks/" + tenantA + "/sales":   {days(60)},
		"finishedTasks/" + tenantA + "/support": {days(60)},
		"endedCalls/" + tenantA + "/":           {days(10)},
		"sessions/" + tenantA + "/":             {days(45), days(45)},
		"userStates/" + tenantA + "/":           {days(365)},
		"endedCalls/" + tenantB + "/":           {days(30)},
		"sessions/" + tenantB + "/":             {days(7), days(30)},
		"userStates/" + tenantB + "/":           {days(90)},
		"parked//":                              {days(14)},
	}
	if len(f.calls) != len(want) || rep.Calls != len(want) {
		t.Fatalf("%d calls (report: %d), want %d: %+v", len(f.calls), rep.Calls, len(want), f.calls)
	}
	for _, c := range f.calls {
		w, ok := want[c.key]
		if !ok {
			t.Errorf("unexpected call %s", c.key)
			continue
		}
		if !c.before.Equal(w[0]) || !c.opened.Equal(w[1]) || c.limit != retention.MaxLimit {
			t.Errorf("%s: cutoffs %v, %v, limit %d; want %v, %v, %d", c.key, c.before, c.opened, c.limit, w[0], w[1], retention.MaxLimit)
		}
	}
	if rep.Pending != 0 || len(rep.Failures) != 0 {
		t.Errorf("report %+v", rep)
	}
}

// A job with more than a call's limit gets further calls until it is done; the
// report adds up what was deleted per kind.
func TestAJobWithMoreIsCalledAgainUntilDone(t *testing.T) {
	f := newFake()
	f.backlog["finishedTasks/"+tenantA+"/sales"] = 25
	f.backlog["sessions/"+tenantA+"/"] = 7
	f.backlog["parked//"] = 3
	rep := retention.NewSweeper(retention.Options{Store: f, Now: fixed, Limit: 10}).Run(context.Background(),
		[]retention.Scope{{Tenant: tenant.New(tenantA, "Contoso"), Services: []string{"sales"}}})
	if rep.Deleted[retention.FinishedTasks] != 25 || rep.Deleted[retention.Sessions] != 7 || rep.Deleted[retention.Parked] != 3 {
		t.Fatalf("deleted %v", rep.Deleted)
	}
	perKey := map[string]int{}
	for _, c := range f.calls {
		perKey[c.key]++
		if c.limit != 10 {
			t.Errorf("%s called with limit %d, want 10", c.key, c.limit)
		}
	}
	if perKey["finishedTasks/"+tenantA+"/sales"] != 3 || perKey["sessions/"+tenantA+"/"] != 1 || perKey["userStates/"+tenantA+"/"] != 1 {
		t.Errorf("calls per job: %v", perKey)
	}
	if rep.Pending != 0 {
		t.Errorf("pending %d, want 0", rep.Pending)
	}
}

// A job that says "more" but deleted nothing (what it found changed under it) is not
// called again in the same run; a failing job is reported with its tenant and kind and
// the others go on.
func TestStuckAndFailingJobsDoNotHoldTheRun(t *testing.T) {
	f := newFake()
	f.stuck["endedCalls/"+tenantA+"/"] = true
	boom := errors.New("table storage answered 503")
	f.fail["userStates/"+tenantA+"/"] = boom
	f.backlog["sessions/"+tenantA+"/"] = 5
	rep := retention.NewSweeper(retention.Options{Store: f, Now: fixed, Limit: 2}).Run(context.Background(),
		[]retention.Scope{{Tenant: tenant.New(tenantA, "Contoso")}})
	n := 0
	for _, c := range f.calls {
		if c.key == "endedCalls/"+tenantA+"/" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("a stuck job was called %d times, want 1", n)
	}
	if len(rep.Failures) != 1 || rep.Failures[0].TenantID != tenantA || rep.Failures[0].Kind != retention.UserStates || !errors.Is(rep.Failures[0].Err, boom) {
		t.Errorf("failures %+v", rep.Failures)
	}
	if rep.Deleted[retention.Sessions] != 5 {
		t.Errorf("the other jobs did not finish: %v", rep.Deleted)
	}
}

// Once the budget has passed (on the run's clock) no call starts: the jobs not yet
// called and those with more left are reported pending, and the next run goes on.
func TestARunStopsStartingCallsOnceItsBudgetHasPassed(t *testing.T) {
	f := newFake()
	var mu sync.Mutex
	clock := now
	f.onCall = func() { mu.Lock(); clock = clock.Add(time.Minute); mu.Unlock() } // every call takes a minute
	var scopes []retention.Scope
	for i := range 5 {
		id := fmt.Sprintf("0d1f6b1e-7c3a-4c59-9a5e-%012d", i)
		scopes = append(scopes, retention.Scope{Tenant: tenant.New(id, "T")})
		f.backlog["userStates/"+id+"/"] = 100
	}
	s := retention.NewSweeper(retention.Options{Store: f, Limit: 10, Workers: 1, Budget: 10 * time.Minute,
		Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }})
	rep := s.Run(context.Background(), scopes)
	if rep.Calls != 10 || len(f.calls) != 10 {
		t.Fatalf("%d calls (report %d); want 10: one a minute within a 10-minute budget", len(f.calls), rep.Calls)
	}
	// 5 tenants × 3 kinds + parked = 16 jobs; 10 had a call, of which those with user
	// states have more left.
	if rep.Pending < 16-10 {
		t.Errorf("pending %d, want at least 6", rep.Pending)
	}
	// The next run goes on where this one stopped (the backlog shrank).
	left := 0
	for _, n := range f.backlog {
		left += n
	}
	if left == 0 || left == 500 {
		t.Errorf("backlog left %d", left)
	}
}

// Over many runs cut short by their budget, every tenant gets its turn: the order of
// the first round is shuffled.
func TestRunsCutShortReachEveryTenantInTurn(t *testing.T) {
	f := newFake()
	var mu sync.Mutex
	clock := now
	f.onCall = func() { mu.Lock(); clock = clock.Add(time.Minute); mu.Unlock() }
	var scopes []retention.Scope
	for i := range 10 {
		scopes = append(scopes, retention.Scope{Tenant: tenant.New(fmt.Sprintf("0d1f6b1e-7c3a-4c59-9a5e-%012d", i), "T")})
	}
	s := retention.NewSweeper(retention.Options{Store: f, Workers: 1, Budget: 5 * time.Minute,
		Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }})
	for range 200 {
		s.Run(context.Background(), scopes)
	}
	seen := map[string]bool{}
	for _, c := range f.calls {
		seen[c.key] = true
	}
	var missing []string
	for _, sc := range scopes {
		for _, k := range []retention.Kind{retention.EndedCalls, retention.Sessions, retention.UserStates} {
			if key := string(k) + "/" + sc.Tenant.ID + "/"; !seen[key] {
				missing = append(missing, key)
			}
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("never run in 200 runs of 5 calls each: %v", missing)
	}
}
