package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/outbound"
)

// OutboundStore is an outbound.Store that tests can also damage: a counter left wrong
// by a process that died.
type OutboundStore interface {
	outbound.Store
	SetOutboundCounter(ctx context.Context, tenantID, serviceID string, n int) error
}

func obTask(service, id string) outbound.Task {
	now := time.Now().UTC().Truncate(time.Millisecond)
	return outbound.Task{TenantID: tenantA, ServiceID: service, ID: id, Customer: "jane@contoso.com", CustomerKind: outbound.UPN,
		Due: now.Add(time.Hour), Priority: "Normal", State: outbound.Scheduled, Accepted: now, UpdatedAt: now}
}

// RunOutbound holds an outbound.Store to the contract: the cap is atomic under any
// concurrency, a replay takes no second slot, a slot is freed exactly once, and the
// repair makes the counter the count of live tasks. newStore returns an empty store.
func RunOutbound(t *testing.T, newStore func(t *testing.T) OutboundStore) {
	t.Run("LifeCycle", func(t *testing.T) {
		s := newStore(t)
		ctx := context.Background()
		in := obTask("sales", "t1")
		in.Params = map[string]string{"campaign": "winter"}
		got, created, err := s.ReserveOutbound(ctx, in, 2)
		if err != nil || !created || got.State != outbound.Scheduled {
			t.Fatalf("reserve = %+v %v %v", got, created, err)
		}
		again, created, err := s.ReserveOutbound(ctx, in, 2)
		if err != nil || created || again.ID != "t1" || outbound.Fingerprint(again) != outbound.Fingerprint(in) {
			t.Fatalf("replay = %+v %v %v; want the stored task, not created", again, created, err)
		}
		if n, _ := s.OutboundCounter(ctx, tenantA, "sales"); n != 1 {
			t.Fatalf("counter after a replay = %d; want 1", n)
		}
		at := time.Now().UTC().Add(time.Hour).Truncate(time.Millisecond)
		if err := s.SetOutboundSchedule(ctx, tenantA, "sales", "t1", 42, at); err != nil {
			t.Fatal(err)
		}
		g, err := s.GetOutbound(ctx, tenantA, "sales", "t1")
		if err != nil || g.Sequence != 42 || !g.ScheduledAt.Equal(at) || g.Params["campaign"] != "winter" {
			t.Fatalf("get = %+v %v", g, err)
		}
		if _, err := s.GetOutbound(ctx, tenantA, "sales", "nope"); !errors.Is(err, fault.ErrNotFound) {
			t.Fatalf("get unknown = %v; want ErrNotFound", err)
		}
		if _, _, err := s.ReserveOutbound(ctx, obTask("sales", "t2"), 2); err != nil {
			t.Fatal(err)
		}
		var le *outbound.LimitError
		if _, _, err := s.ReserveOutbound(ctx, obTask("sales", "t3"), 2); !errors.As(err, &le) || le.Limit != 2 || le.Current != 2 || !errors.Is(err, outbound.ErrLimitReached) {
			t.Fatalf("over the cap = %v; want LimitError{2,2}", err)
		}
		// Other services have their own cap.
		if _, created, err := s.ReserveOutbound(ctx, obTask("support", "t3"), 2); err != nil || !created {
			t.Fatalf("other service = %v %v", created, err)
		}
		r, err := s.MarkOutboundRouted(ctx, tenantA, "sales", "t1", "ob-t1", time.Now())
		if err != nil || r.State != outbound.Routed || r.RoutingTaskID != "ob-t1" {
			t.Fatalf("routed = %+v %v", r, err)
		}
		g, _ = s.GetOutbound(ctx, tenantA, "sales", "t1")
		if g.Sequence != 42 {
			t.Fatalf("the sequence number was lost by a later write: %+v", g)
		}
		f, err := s.FinishOutbound(ctx, tenantA, "sales", "t1", outbound.Completed, time.Now())
		if err != nil || f.State != outbound.Completed {
			t.Fatalf("finish = %+v %v", f, err)
		}
		if f, err := s.FinishOutbound(ctx, tenantA, "sales", "t1", outbound.Cancelled, time.Now()); err != nil || f.State != outbound.Completed {
			t.Fatalf("second finish = %+v %v; want the task unchanged", f, err)
		}
		if n, _ := s.OutboundCounter(ctx, tenantA, "sales"); n != 1 {
			t.Fatalf("counter after one finish (twice) = %d; want 1", n)
		}
		live, err := s.ListOutbound(ctx, tenantA, "sales", true)
		if err != nil || len(live) != 1 || live[0].ID != "t2" {
			t.Fatalf("live = %+v %v", live, err)
		}
		all, _ := s.ListOutbound(ctx, tenantA, "sales", false)
		if len(all) != 2 || all[0].ID != "t1" || all[1].ID != "t2" {
			t.Fatalf("all = %+v", all)
		}
		if _, created, err := s.ReserveOutbound(ctx, obTask("sales", "t4"), 2); err != nil || !created {
			t.Fatalf("a freed slot is taken again: %v %v", created, err)
		}
		cs, err := s.ListOutboundCounters(ctx)
		if err != nil || len(cs) != 2 {
			t.Fatalf("counters = %+v %v", cs, err)
		}
	})

	t.Run("LoweredLimitBlocksButCancelsNothing", func(t *testing.T) {
		s := newStore(t)
		ctx := context.Background()
		for i := 0; i < 5; i++ {
			if _, _, err := s.ReserveOutbound(ctx, obTask("sales", fmt.Sprint("t", i)), 5); err != nil {
				t.Fatal(err)
			}
		}
		var le *outbound.LimitError
		if _, _, err := s.ReserveOutbound(ctx, obTask("sales", "x"), 3); !errors.As(err, &le) || le.Current != 5 || le.Limit != 3 {
			t.Fatalf("with the limit lowered to 3: %v", err)
		}
		if live, _ := s.ListOutbound(ctx, tenantA, "sales", true); len(live) != 5 {
			t.Fatalf("%d live; lowering the limit must cancel nothing", len(live))
		}
	})

	t.Run("RepairMakesTheCounterTheLiveCount", func(t *testing.T) {
		s := newStore(t)
		ctx := context.Background()
		for i := 0; i < 3; i++ {
			if _, _, err := s.ReserveOutbound(ctx, obTask("sales", fmt.Sprint("t", i)), 20); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.SetOutboundCounter(ctx, tenantA, "sales", 17); err != nil { // a process died mid-way
			t.Fatal(err)
		}
		before, after, err := s.RepairOutboundCounter(ctx, tenantA, "sales")
		if err != nil || before != 17 || after != 3 {
			t.Fatalf("repair = %d→%d %v; want 17→3", before, after, err)
		}
		if n, _ := s.OutboundCounter(ctx, tenantA, "sales"); n != 3 {
			t.Fatalf("counter = %d", n)
		}
		if b, a, err := s.RepairOutboundCounter(ctx, tenantA, "sales"); err != nil || b != 3 || a != 3 {
			t.Fatalf("second repair = %d→%d %v", b, a, err)
		}
	})

	t.Run("ConcurrentReplaysTakeOneSlot", func(t *testing.T) {
		s := newStore(t)
		ctx := context.Background()
		var wg sync.WaitGroup
		var mu sync.Mutex
		created := 0
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, c, err := s.ReserveOutbound(ctx, obTask("sales", "same"), 20)
				if err != nil {
					t.Error(err)
				}
				if c {
					mu.Lock()
					created++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if n, _ := s.OutboundCounter(ctx, tenantA, "sales"); created != 1 || n != 1 {
			t.Fatalf("%d created, counter %d; want 1 and 1", created, n)
		}
	})

	t.Run("CapRace", func(t *testing.T) { RunOutboundCapRace(t, newStore(t), 200, 20) })
}

// RunOutboundCapRace sends n concurrent reservations of distinct tasks at one service
// with a cap of limit: exactly limit are accepted, the rest refused with the limit
// error naming the limit and a full count, and the counter equals the live tasks.
// Then it frees and takes slots concurrently and checks the counter again.
func RunOutboundCapRace(t *testing.T, s OutboundStore, n, limit int) {
	t.Helper()
	ctx := context.Background()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		accepted []string
		refused  int
	)
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			id := fmt.Sprintf("task-%03d", i)
			_, created, err := s.ReserveOutbound(ctx, obTask("sales", id), limit)
			var le *outbound.LimitError
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && created:
				accepted = append(accepted, id)
			case errors.As(err, &le):
				if le.Limit != limit || le.Current != limit {
					t.Errorf("limit error %+v; want limit %d current %d", le, limit, limit)
				}
				refused++
			default:
				t.Errorf("reserve %s: created=%v err=%v", id, created, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(accepted) != limit || refused != n-limit {
		t.Fatalf("%d accepted, %d refused; want %d and %d", len(accepted), refused, limit, n-limit)
	}
	checkCounter(t, s, limit)

	// Half the slots freed while as many new requests race for them.
	wg = sync.WaitGroup{}
	var took int
	for i, id := range accepted[:limit/2] {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if _, err := s.FinishOutbound(ctx, tenantA, "sales", id, outbound.Cancelled, time.Now()); err != nil {
				t.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			_, created, err := s.ReserveOutbound(ctx, obTask("sales", fmt.Sprint("late-", i)), limit)
			if err != nil && !errors.Is(err, outbound.ErrLimitReached) {
				t.Error(err)
			}
			if created {
				mu.Lock()
				took++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	checkCounter(t, s, limit-limit/2+took)
}

func checkCounter(t *testing.T, s OutboundStore, want int) {
	t.Helper()
	ctx := context.Background()
	live, err := s.ListOutbound(ctx, tenantA, "sales", true)
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.OutboundCounter(ctx, tenantA, "sales")
	if err != nil {
		t.Fatal(err)
	}
	if n != len(live) || n != want {
		t.Fatalf("counter %d, live tasks %d; want both %d", n, len(live), want)
	}
}

// BenchOutboundCapBoundary measures reservations at the cap boundary: the service
// holds limit-1 live tasks; concurrent callers each take the last slot (accepted) or
// find it taken (refused) and free it again once accepted. It reports accepted and
// refused reservations per second.
func BenchOutboundCapBoundary(b *testing.B, s outbound.Store) {
	ctx := context.Background()
	const limit = 20
	for i := 0; i < limit-1; i++ {
		if _, _, err := s.ReserveOutbound(ctx, obTask("bench", fmt.Sprint("fill-", i)), limit); err != nil {
			b.Fatal(err)
		}
	}
	var accepted, refused, seq atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprint("b-", seq.Add(1))
			_, created, err := s.ReserveOutbound(ctx, obTask("bench", id), limit)
			if errors.Is(err, outbound.ErrLimitReached) {
				refused.Add(1)
				continue
			}
			if err != nil || !created {
				b.Error(created, err)
				return
			}
			accepted.Add(1)
			if _, err := s.FinishOutbound(ctx, tenantA, "bench", id, outbound.Completed, time.Now()); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(accepted.Load())/secs, "accepted/s")
	b.ReportMetric(float64(refused.Load())/secs, "refused/s")
}
