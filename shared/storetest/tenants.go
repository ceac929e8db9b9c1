package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/tenant"
)

func testTenantUpdate(t *testing.T, s tenant.Store) {
	ctx := context.Background()
	tn := tenant.New(tenantA, "Contoso")
	tn.UpdatedAt = at
	if err := s.CreateTenant(ctx, tn); err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := s.CreateTenant(ctx, tn); !errors.Is(err, fault.ErrConflict) {
		t.Fatalf("create twice: %v, want fault.ErrConflict", err)
	}
	got, err := s.GetTenant(ctx, tenantA)
	if err != nil || got.Version != 1 || got.Extensions.OutboundCap != tenant.DefaultOutboundCap {
		t.Fatalf("created tenant = %+v, %v; want version 1 with defaults", got, err)
	}
	boom := errors.New("boom")
	if _, err := s.UpdateTenant(ctx, tenantA, func(x *tenant.Tenant) error { x.Name = "lost"; return boom }); !errors.Is(err, boom) {
		t.Fatalf("failing update: %v", err)
	}
	up, err := s.UpdateTenant(ctx, tenantA, func(x *tenant.Tenant) error {
		x.Details.Billing.City = "Zürich"
		x.ID = "someone-else" // ignored: the id never changes
		return nil
	})
	if err != nil || up.Version != 2 || up.ID != tenantA || up.Details.Billing.City != "Zürich" || up.Name != "Contoso" {
		t.Fatalf("update = %+v, %v", up, err)
	}
	if got, _ := s.GetTenant(ctx, tenantA); got.Version != 2 || got.Details.Billing.City != "Zürich" {
		t.Fatalf("stored after update = %+v", got)
	}
	if _, err := s.UpdateTenant(ctx, tenantB, func(*tenant.Tenant) error { return nil }); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("update of an unknown tenant: %v", err)
	}
}

// N writers all based on version 1 (If-Match 1): exactly one wins, the others see a
// newer version inside their update function and give up with ErrPrecondition. And
// N unconditional increments lose nothing.
func testTenantRace(t *testing.T, s tenant.Store) {
	ctx := context.Background()
	if err := s.CreateTenant(ctx, tenant.New(tenantA, "Contoso")); err != nil {
		t.Fatal(err)
	}
	const n = 12
	var wins, stale atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.UpdateTenant(ctx, tenantA, func(x *tenant.Tenant) error {
				if x.Version != 1 {
					return fmt.Errorf("based on version 1, found %d: %w", x.Version, fault.ErrPrecondition)
				}
				x.Details.CRMID = fmt.Sprint("writer-", i)
				return nil
			})
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, fault.ErrPrecondition):
				stale.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 || stale.Load() != n-1 {
		t.Fatalf("%d writers on one version: %d won, %d stale; want exactly one winner", n, wins.Load(), stale.Load())
	}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.UpdateTenant(ctx, tenantA, func(x *tenant.Tenant) error { x.Extensions.OutboundCap++; return nil }); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, _ := s.GetTenant(ctx, tenantA)
	if got.Extensions.OutboundCap != tenant.DefaultOutboundCap+n || got.Version != 2+n {
		t.Fatalf("after %d increments cap %d version %d: an update was lost", n, got.Extensions.OutboundCap, got.Version)
	}
}
