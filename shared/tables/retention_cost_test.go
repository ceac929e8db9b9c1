package tables

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/calls"
	"github.com/teamscc/teamscc/shared/interact"
	"github.com/teamscc/teamscc/shared/parking"
	"github.com/teamscc/teamscc/shared/retention"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/tenant"
	"github.com/teamscc/teamscc/shared/userstate"
)

// requestCounter counts a Store's table requests by kind, at the HTTP transport.
type requestCounter struct {
	mu                        sync.Mutex
	queries, batches, deletes int
	other                     int
}

func (c *requestCounter) take() (q, b, d, o int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	q, b, d, o = c.queries, c.batches, c.deletes, c.other
	c.queries, c.batches, c.deletes, c.other = 0, 0, 0, 0
	return
}

// openCounting opens a Store on Azurite whose requests c counts.
func openCounting(t *testing.T) (*Store, *requestCounter) {
	c := &requestCounter{}
	cfg := azuriteConfig(t)
	cfg.HTTPClient = &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		c.mu.Lock()
		switch {
		case req.Method == http.MethodGet:
			c.queries++
		case req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "$batch"):
			c.batches++
		case req.Method == http.MethodDelete:
			c.deletes++
		default:
			c.other++
		}
		c.mu.Unlock()
		return http.DefaultTransport.RoundTrip(req)
	})}
	return openAzuriteWith(t, cfg), c
}

// retentionData writes n rows of each kind for one tenant (services "sales" and
// "support": n done tasks each), all ended (or written) at when, straight into the
// tables (seeding is not measured). Parked messages, one request per row to write,
// get min(n, 200).
func retentionData(t *testing.T, s *Store, tid string, n int, when time.Time, tag string) {
	t.Helper()
	ctx := context.Background()
	write := func(table string, rows []row) {
		t.Helper()
		if err := upsertAll(ctx, s.client(table), rows); err != nil {
			t.Fatal(err)
		}
	}
	rows := func(build func(i int) (row, error)) []row {
		t.Helper()
		out := make([]row, n)
		for i := range out {
			r, err := build(i)
			if err != nil {
				t.Fatal(err)
			}
			out[i] = r
		}
		return out
	}
	for _, sv := range []string{"sales", "support"} {
		write(tableRoutingQueues, rows(func(i int) (row, error) {
			return taskEntity(routing.Task{TenantID: tid, ServiceID: sv, ID: fmt.Sprintf("%s-%05d", tag, i), Priority: routing.Normal,
				Created: when.Add(-time.Hour), State: routing.Done, Outcome: routing.Completed, EndedAt: when}, donePrefix)
		}))
	}
	write(tableCalls, rows(func(i int) (row, error) {
		return callEntity(calls.Call{TenantID: tid, ID: fmt.Sprintf("%s-call-%05d", tag, i), Direction: calls.Inbound, ServiceID: "sales",
			Phase: calls.PhaseEnded, Created: when.Add(-time.Hour), EndedAt: when})
	}))
	write(tableInteractSessions, rows(func(i int) (row, error) {
		return sessionEntity(interact.Session{TenantID: tid, ID: fmt.Sprintf("%s-session-%05d", tag, i), CustomerID: "c", State: interact.SessionClosed,
			CreatedAt: when.Add(-time.Hour), ClosedAt: when})
	}))
	write(tableUserStates, rows(func(i int) (row, error) {
		start := when.Add(-time.Duration(i+1) * time.Second)
		return userStateEntity(userstate.Record{TenantID: tid, AgentID: fmt.Sprintf("%s-agent", tag), Kind: userstate.KindPresence, Value: "Available",
			Start: start, End: start.Add(time.Second)})
	}))
	for i := range min(n, 200) {
		fn := []string{"ScheduleOutbound", "PresenceRefreshTenant"}[i%2]
		if err := s.Park(ctx, parking.Message{Function: fn, MessageID: fmt.Sprintf("%s-%s-m%05d", tid, tag, i), Reason: "bad", Body: "{}", ParkedAt: when}); err != nil {
			t.Fatal(err)
		}
	}
}

// Retention on Table storage (Azurite), counted at the transport: a run with nothing
// old enough costs one query per (tenant, kind) and per service, whatever the data;
// deleting costs one query per call and one transaction per 100 rows of a partition.
// Logged and pinned.
func TestARetentionRunsTableStorageRequests(t *testing.T) {
	ctx := context.Background()
	const tid = "0d1f6b1e-7c3a-4c59-9a5e-1f2a3b4c5d6e"
	now := time.Now().UTC()
	scopes := []retention.Scope{{Tenant: tenant.New(tid, "Contoso"), Services: []string{"sales", "support"}}}
	fixed := func() time.Time { return now }

	// Nothing old enough: recent rows of every kind, few or many.
	idle := map[int]int64{}
	for _, n := range []int{10, 1000} {
		s, c := openCounting(t)
		retentionData(t, s, tid, n, now.Add(-time.Hour), "recent")
		c.take()
		before := s.RoundTrips()
		rep := retention.NewSweeper(retention.Options{Store: s, Now: fixed}).Run(ctx, scopes)
		idle[n] = s.RoundTrips() - before
		q, b, d, o := c.take()
		if rep.Calls != 6 || len(rep.Failures) != 0 || b+d+o != 0 || int64(q) != idle[n] {
			t.Fatalf("idle run with %d recent rows per kind: %+v; %d queries, %d transactions, %d deletes, %d other", n, rep, q, b, d, o)
		}
	}
	t.Logf("table requests of a retention run with nothing old enough (1 tenant, 2 services): %d with 10 recent rows of each kind, %d with 1,000", idle[10], idle[1000])
	// One per service (its finished tasks), three per tenant (calls, sessions, user
	// states), one for parked messages.
	if idle[10] != 6 || idle[1000] != 6 {
		t.Errorf("an idle run costs %v table requests; want 6 whatever the data (2 services + 3 per tenant + 1)", idle)
	}

	// Deleting: 1,000 old rows of each kind beside 1,000 recent ones (parked messages
	// 200 and 200 over two functions), one kind at a time
	// through the store, calls of the default limit until none is left.
	s, c := openCounting(t)
	old := now.Add(-400 * 24 * time.Hour)
	retentionData(t, s, tid, 1000, old, "old")
	retentionData(t, s, tid, 1000, now.Add(-time.Hour), "recent")
	cut := now.Add(-365 * 24 * time.Hour)
	kinds := []struct {
		kind      retention.Kind
		rows      int // rows deleted
		purge     func() (retention.Result, error)
		wantLimit int // at most this many requests
	}{
		{retention.FinishedTasks, 1000, func() (retention.Result, error) { return s.PurgeFinishedTasks(ctx, tid, "sales", cut, 0) }, 1 + 10 + 1},
		{retention.FinishedTasks, 1000, func() (retention.Result, error) { return s.PurgeFinishedTasks(ctx, tid, "support", cut, 0) }, 1 + 10 + 1},
		{retention.EndedCalls, 1000, func() (retention.Result, error) { return s.PurgeEndedCalls(ctx, tid, cut, 0) }, 1 + 10 + 1},
		{retention.Sessions, 1000, func() (retention.Result, error) { return s.PurgeSessions(ctx, tid, cut, cut, 0) }, 1 + 10 + 1},
		{retention.UserStates, 1000, func() (retention.Result, error) { return s.PurgeUserStates(ctx, tid, cut, 0) }, 1 + 10 + 1},
		// 200 messages = 400 rows (record and index) in two partitions.
		{retention.Parked, 200, func() (retention.Result, error) { return s.PurgeParked(ctx, cut, 0) }, 1 + 4 + 1},
	}
	c.take()
	for _, k := range kinds {
		deleted, calls := 0, 0
		for {
			res, err := k.purge()
			if err != nil {
				t.Fatalf("%s: %v", k.kind, err)
			}
			deleted, calls = deleted+res.Deleted, calls+1
			if !res.More {
				break
			}
		}
		q, b, d, o := c.take()
		n := q + b + d + o
		t.Logf("table requests to delete %d %s: %d (%.1f per 100 rows deleted): %d queries in %d calls, %d transactions, %d single deletes",
			k.rows, k.kind, n, 100*float64(n)/float64(k.rows), q, calls, b, d)
		if deleted != k.rows {
			t.Errorf("%s: deleted %d, want %d", k.kind, deleted, k.rows)
		}
		if n > k.wantLimit {
			t.Errorf("%s: %d table requests, want at most %d", k.kind, n, k.wantLimit)
		}
	}
	// What is left is recent: a run finds nothing more, at the idle cost.
	before := s.RoundTrips()
	rep := retention.NewSweeper(retention.Options{Store: s, Now: fixed}).Run(ctx, scopes)
	deleted := 0
	for _, n := range rep.Deleted {
		deleted += n
	}
	if n := s.RoundTrips() - before; n != 6 || deleted != 0 || len(rep.Failures) != 0 {
		t.Errorf("run after the purge: %d table requests, %+v", n, rep)
	}
}
