package tables

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/outbound"
	"github.com/teamscc/teamscc/shared/queue"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/storetest"
	"github.com/teamscc/teamscc/shared/tenant"
)

func TestOutboundConformance(t *testing.T) {
	needAzurite(t)
	storetest.RunOutbound(t, func(t *testing.T) storetest.OutboundStore { return openAzurite(t) })
}

// Table round trips of one accepted reservation: one query (counter + task) and one
// transaction; recording the sequence number is one merge.
func TestOutboundRoundTripsPerAcceptedTask(t *testing.T) {
	s := openAzurite(t)
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		before := s.RoundTrips()
		tk := outbound.Task{TenantID: "0d1f6b1e-7c3a-4c59-9a5e-1f2a3b4c5d6e", ServiceID: "sales", ID: fmt.Sprint("t", i),
			Customer: "jane@contoso.com", CustomerKind: outbound.UPN, Due: time.Now().UTC(), Priority: "Normal"}
		if _, created, err := s.ReserveOutbound(ctx, tk, 20); err != nil || !created {
			t.Fatal(created, err)
		}
		if err := s.SetOutboundSchedule(ctx, tk.TenantID, tk.ServiceID, tk.ID, int64(i+1), time.Now()); err != nil {
			t.Fatal(err)
		}
		if n := s.RoundTrips() - before; n != 3 {
			t.Errorf("task %d: %d round trips; want 3 (query, transaction, merge)", i, n)
		}
	}
}

func BenchmarkOutboundReserveAtTheCapAzurite(b *testing.B) {
	s := openAzurite(b)
	storetest.BenchOutboundCapBoundary(b, s)
}

type nopScheduler struct{ n atomic.Int64 }

func (*nopScheduler) Send(context.Context, string, queue.Message) error { return nil }
func (s *nopScheduler) Schedule(context.Context, string, queue.Message, time.Time) (int64, error) {
	return s.n.Add(1), nil
}
func (*nopScheduler) Cancel(context.Context, string, int64) error { return nil }

// The whole accepted request through outbound.Service: tenant and service reads, the
// reservation's query and transaction, and the merge of the sequence number.
func TestOutboundScheduleRoundTrips(t *testing.T) {
	s := openAzurite(t)
	ctx := context.Background()
	const tid = "0d1f6b1e-7c3a-4c59-9a5e-1f2a3b4c5d6e"
	if err := s.PutTenant(ctx, tenant.New(tid, "Contoso")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutService(ctx, routing.Service{TenantID: tid, ID: "sales", Type: routing.TeamsBased}); err != nil {
		t.Fatal(err)
	}
	svc := outbound.NewService(outbound.Options{Store: s, Tenants: s, Routes: s, Sender: &nopScheduler{}, Queue: "outbound-due"})
	for i := 0; i < 5; i++ {
		before := s.RoundTrips()
		res, err := svc.Schedule(ctx, outbound.Request{TenantID: tid, ServiceID: "sales", TaskID: fmt.Sprint("t", i),
			Customer: "jane@contoso.com", Due: time.Now().UTC().Format(time.RFC3339)})
		if err != nil || !res.Created {
			t.Fatal(res, err)
		}
		if n := s.RoundTrips() - before; n != 5 {
			t.Errorf("request %d: %d round trips; want 5 (tenant, service, query, transaction, merge)", i, n)
		}
	}
}
