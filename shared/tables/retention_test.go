package tables

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/interact"
	"github.com/teamscc/teamscc/shared/retention"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/storetest"
)

// The retention conformance suite against Azurite, each case on its own tables.
func TestRetentionConformance(t *testing.T) {
	needAzurite(t)
	storetest.RunRetention(t, func(t *testing.T) storetest.RetentionStores { return openAzurite(t) })
}

// Rows that change or go between a purge's read and its delete are left out of the
// transaction, and the rest of it is deleted: a session recovered (rewritten) in the
// middle of a batch of old ones, and one deleted by someone else.
func TestAPurgeSkipsRowsThatChangedSinceItsRead(t *testing.T) {
	s := openAzurite(t)
	ctx := context.Background()
	const tid = "0d1f6b1e-7c3a-4c59-9a5e-1f2a3b4c5d6e"
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	for i := range 10 {
		v := interact.Session{TenantID: tid, ID: fmt.Sprintf("s%02d", i), CustomerID: "c", State: interact.SessionClosed,
			CreatedAt: now.Add(-30 * 24 * time.Hour), ClosedAt: now.Add(-20 * 24 * time.Hour)}
		if err := s.CreateSession(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	c := s.interactSessions()
	filter := "PartitionKey eq '" + tid + "'"
	vs, more, err := collect(ctx, c, filter, "PartitionKey,RowKey", 100, nil)
	if err != nil || len(vs) != 10 || more {
		t.Fatalf("collect = %d rows, more %v, %v", len(vs), more, err)
	}
	if _, err := s.UpdateSession(ctx, tid, "s04", func(x *interact.Session) error { x.Recoveries++; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteEntity(ctx, tid, "s07", nil); err != nil {
		t.Fatal(err)
	}
	before := s.RoundTrips()
	n, err := deleteAll(ctx, c, vs)
	if err != nil || n != 8 {
		t.Fatalf("deleteAll = %d, %v; want the 8 unchanged rows deleted", n, err)
	}
	// The service names the failed action: a transaction per row that changed, and
	// the one that commits.
	if got := s.RoundTrips() - before; got != 3 {
		t.Errorf("%d table requests; want 3 (two transactions failing at a changed row, then the rest)", got)
	}
	if _, err := s.GetSession(ctx, tid, "s04"); err != nil {
		t.Fatalf("the session that changed was deleted: %v", err)
	}
	left, _, err := collect(ctx, c, filter, "PartitionKey,RowKey", 100, nil)
	if err != nil || len(left) != 1 {
		t.Fatalf("left: %+v, %v; want only s04", left, err)
	}
}

// An open task's stub (its id's claim in the done range, with no columns but Stub)
// is never taken for a finished task, however old the task.
func TestAPurgeLeavesOpenTasksAndTheirStubs(t *testing.T) {
	s := openAzurite(t)
	ctx := context.Background()
	const tid = "0d1f6b1e-7c3a-4c59-9a5e-1f2a3b4c5d6e"
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := s.CreateTask(ctx, routing.Task{TenantID: tid, ServiceID: "sales", ID: "open", Priority: routing.Normal, Created: old, State: routing.Waiting}); err != nil {
		t.Fatal(err)
	}
	res, err := s.PurgeFinishedTasks(ctx, tid, "sales", time.Now(), 0)
	if err != nil || res != (retention.Result{}) {
		t.Fatalf("purge = %+v, %v; want nothing deleted", res, err)
	}
	c := s.client(tableRoutingQueues)
	for _, rk := range []string{taskPrefix + "open", donePrefix + "open"} {
		if _, err := c.GetEntity(ctx, queuePK(tid, "sales"), rk, nil); err != nil {
			t.Errorf("row %s: %v", rk, classify(err))
		}
	}
}
