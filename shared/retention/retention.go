// Package retention deletes what has been kept for its retention period: by each
// tenant's settings (tenant.Retention), finished routing tasks, ended calls, closed
// and abandoned Interact sessions, processed-event keys and user-state records; app-wide, parked messages after ParkedDays. The provisioning run
// applies it (Sweeper.Run).
//
// Stores delete in bounded calls (Store): one call deletes at most a limit of rows and
// says whether more are left, so a run never takes unbounded time, and what one run
// leaves the next continues.
package retention

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/teamscc/teamscc/shared/tenant"
)

// Kind is one kind of data retention deletes.
type Kind string

// The kinds, as reports and logs name them.
const (
	FinishedTasks Kind = "finishedTasks" // routing tasks that are done
	EndedCalls    Kind = "endedCalls"    // calls that ended (their timelines)
	Sessions      Kind = "sessions"      // Interact sessions closed, or abandoned open
	UserStates    Kind = "userStates"    // user-state records (ended)
	Parked        Kind = "parked"        // parked messages (app-wide)
)

// Kinds lists every kind, in a fixed order (for logs).
var Kinds = []Kind{FinishedTasks, EndedCalls, Sessions, UserStates, Parked}

// ParkedDays is how long parked messages are kept. They belong to a function, not to
// a tenant (a malformed message may name none), so one app-wide period applies: long
// enough to notice and replay a problem after a holiday, short enough that message
// bodies with customer data do not pile up.
const ParkedDays = 14

// MaxLimit is the most rows one Store call deletes: one page of a Table storage query
// and ten transactions of 100.
const MaxLimit = 1000

// Result is what one Store call did: how many items it deleted, and whether more old
// enough ones are left (it stopped at its limit).
type Result struct {
	Deleted int
	More    bool
}

// Store deletes old data in bounded calls. Each method deletes at most limit items
// (limit < 1 or > MaxLimit: MaxLimit) that are old enough by its rule, in transactions
// of one partition (Table storage: up to 100 rows each), and says whether more are
// left. An item that changes between the read and the delete (a task finishing, a
// session recovered, a message parked again) is left alone; nothing newer than the
// cutoff is ever deleted, and a repeated call with the same cutoff deletes nothing
// more. Implementations are safe for concurrent use, also with the writers of the
// data they delete.
type Store interface {
	// PurgeFinishedTasks deletes the service's routing tasks that are done and ended
	// before before (a task without an end time: created before it). Open tasks are
	// never deleted, however old; the id of a deleted task may be used again.
	PurgeFinishedTasks(ctx context.Context, tenantID, serviceID string, before time.Time, limit int) (Result, error)
	// PurgeEndedCalls deletes the tenant's calls that ended before before (a call
	// without an end time: created before it). Calls still going are never deleted.
	PurgeEndedCalls(ctx context.Context, tenantID string, before time.Time, limit int) (Result, error)
	// PurgeSessions deletes the tenant's Interact sessions closed before closedBefore,
	// and those still open that were created before openedBefore (abandoned).
	PurgeSessions(ctx context.Context, tenantID string, closedBefore, openedBefore time.Time, limit int) (Result, error)
	// PurgeUserStates deletes the tenant's user-state records that ended before
	// before. Open records (and the agents' cursors) are never deleted.
	PurgeUserStates(ctx context.Context, tenantID string, before time.Time, limit int) (Result, error)
	// PurgeParked deletes the messages parked before before, of every function.
	PurgeParked(ctx context.Context, before time.Time, limit int) (Result, error)
}

// ClampLimit is the limit a Store applies: n within 1..MaxLimit, else MaxLimit.
func ClampLimit(n int) int {
	if n < 1 || n > MaxLimit {
		return MaxLimit
	}
	return n
}

// Scope is one tenant as a run sees it: the tenant (its retention) and the services
// whose finished tasks to delete (a service pending deletion is removed whole by the
// provisioning run, not here).
type Scope struct {
	Tenant   tenant.Tenant
	Services []string
}

// Options configure a Sweeper.
type Options struct {
	Store Store
	// Now is the clock: cutoffs are counted back from it, and the budget is measured
	// on it. Default time.Now.
	Now func() time.Time
	// Limit is what each Store call may delete (default MaxLimit).
	Limit int
	// Budget bounds a run: no Store call starts after it has passed (the calls under
	// way finish; each is bounded by Limit). Default DefaultBudget.
	Budget time.Duration
	// Workers is how many Store calls run at once (default 4).
	Workers int
}

// DefaultBudget is a run's default time budget: well inside the provisioning run's
// invocation timeout, with the service removals before it.
const DefaultBudget = 2 * time.Minute

// Sweeper applies retention to tenants. Safe for concurrent use.
type Sweeper struct{ o Options }

// NewSweeper returns a Sweeper with o's defaults filled in.
func NewSweeper(o Options) *Sweeper {
	if o.Now == nil {
		o.Now = time.Now
	}
	o.Limit = ClampLimit(o.Limit)
	if o.Budget <= 0 {
		o.Budget = DefaultBudget
	}
	if o.Workers < 1 {
		o.Workers = 4
	}
	return &Sweeper{o: o}
}

// Report is what a run did. It holds counts only, and the failures with the tenant
// they concern (never a customer's or an agent's identifier).
type Report struct {
	Deleted map[Kind]int
	// Calls counts the Store calls made; Pending the (tenant, kind) jobs that still
	// had more to delete when the run stopped (out of budget): the next run goes on.
	Calls, Pending int
	Failures       []Failure
}

// Failure is a job that failed; the next run tries it again.
type Failure struct {
	TenantID string // "" for parked messages
	Kind     Kind
	Err      error
}

// job is one (tenant, kind) deletion: calls of run until it has no more.
type job struct {
	tenantID string
	kind     Kind
	run      func(ctx context.Context, limit int) (Result, error)
}

// Run deletes what is old enough in every scope, and parked messages. Every job gets
// one call first (in random order, so a run cut short by its budget favours nobody
// over many runs); jobs with more left get further calls, round after round, until
// they are done or the budget has passed. A job whose call deleted nothing gets no
// further call in this run (what it found changed under it).
func (s *Sweeper) Run(ctx context.Context, scopes []Scope) Report {
	start := s.o.Now()
	jobs := s.jobs(scopes, start)
	rand.Shuffle(len(jobs), func(i, j int) { jobs[i], jobs[j] = jobs[j], jobs[i] })
	rep := Report{Deleted: map[Kind]int{}}
	var mu sync.Mutex
	out := func() bool { return ctx.Err() != nil || s.o.Now().Sub(start) >= s.o.Budget }
	for len(jobs) > 0 && !out() {
		var next []job
		work := make(chan job)
		var wg sync.WaitGroup
		for range min(s.o.Workers, len(jobs)) {
			wg.Go(func() {
				for j := range work {
					if out() { // checked as each call starts: none starts late
						mu.Lock()
						rep.Pending++
						mu.Unlock()
						continue
					}
					res, err := j.run(ctx, s.o.Limit)
					mu.Lock()
					rep.Calls++
					rep.Deleted[j.kind] += res.Deleted
					switch {
					case err != nil && !errors.Is(err, context.Canceled):
						rep.Failures = append(rep.Failures, Failure{TenantID: j.tenantID, Kind: j.kind, Err: err})
					case err == nil && res.More && res.Deleted > 0:
						next = append(next, j)
					}
					mu.Unlock()
				}
			})
		}
		for _, j := range jobs {
			work <- j
		}
		close(work)
		wg.Wait()
		jobs = next
	}
	rep.Pending += len(jobs)
	return rep
}

// jobs lists the (tenant, kind) deletions of a run started at now.
func (s *Sweeper) jobs(scopes []Scope, now time.Time) []job {
	st := s.o.Store
	// Whole seconds: a cutoff every store compares the same way (Table storage keeps
	// times to 100 ns).
	cut := func(days int) time.Time { return now.Add(-tenant.Days(days)).UTC().Truncate(time.Second) }
	var out []job
	for _, sc := range scopes {
		tid, r := sc.Tenant.ID, sc.Tenant.Retention.Effective()
		add := func(k Kind, f func(ctx context.Context, limit int) (Result, error)) {
			out = append(out, job{tenantID: tid, kind: k, run: f})
		}
		for _, sv := range sc.Services {
			before := cut(r.FinishedTasksDays)
			add(FinishedTasks, func(ctx context.Context, n int) (Result, error) {
				return st.PurgeFinishedTasks(ctx, tid, sv, before, n)
			})
		}
		calls := cut(r.EndedCallsDays)
		add(EndedCalls, func(ctx context.Context, n int) (Result, error) { return st.PurgeEndedCalls(ctx, tid, calls, n) })
		closed, opened := cut(r.ClosedSessionsDays), cut(max(r.ClosedSessionsDays, tenant.AbandonedSessionDays))
		add(Sessions, func(ctx context.Context, n int) (Result, error) { return st.PurgeSessions(ctx, tid, closed, opened, n) })
		states := cut(r.UserStatesDays)
		add(UserStates, func(ctx context.Context, n int) (Result, error) { return st.PurgeUserStates(ctx, tid, states, n) })
	}
	parked := cut(ParkedDays)
	out = append(out, job{kind: Parked, run: func(ctx context.Context, n int) (Result, error) { return st.PurgeParked(ctx, parked, n) }})
	return out
}
