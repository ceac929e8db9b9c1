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

func agentsVersion(t *testing.T, s tenant.Store, tenantID string) string {
	t.Helper()
	v, err := s.AgentsVersion(context.Background(), tenantID)
	if err != nil {
		t.Fatalf("agents version: %v", err)
	}
	return v
}

func agentsN(prefix string, n int) []tenant.Agent {
	as := make([]tenant.Agent, n)
	for i := range as {
		as[i] = tenant.Agent{ID: fmt.Sprintf("%s-%04d", prefix, i), DisplayName: "Agent"}
	}
	return as
}

// The version of a tenant's agent list: stable while nothing is written, different
// after every write of an agent (never back to an earlier value), untouched by a write
// of nothing or by another tenant's writes.
func testAgentsVersion(t *testing.T, s tenant.Store) {
	ctx := context.Background()
	v0 := agentsVersion(t, s, tenantA)
	if again := agentsVersion(t, s, tenantA); again != v0 {
		t.Fatalf("version without agents changed from %q to %q with no write", v0, again)
	}
	seen := map[string]bool{v0: true}
	changed := func(what string) string {
		t.Helper()
		v := agentsVersion(t, s, tenantA)
		if seen[v] {
			t.Fatalf("after %s the version is %q, a value it had before", what, v)
		}
		seen[v] = true
		if again := agentsVersion(t, s, tenantA); again != v {
			t.Fatalf("after %s the version moved from %q to %q with no write", what, v, again)
		}
		return v
	}
	agents := agentsN("agent", 250) // more than one batch
	if err := s.PutAgents(ctx, tenantA, agents); err != nil {
		t.Fatal(err)
	}
	v := changed("putting 250 agents")
	if err := s.PutAgents(ctx, tenantA, nil); err != nil {
		t.Fatal(err)
	}
	if got := agentsVersion(t, s, tenantA); got != v {
		t.Fatalf("a write of no agents changed the version from %q to %q", v, got)
	}
	if err := s.PutAgents(ctx, tenantB, agents[:2]); err != nil {
		t.Fatal(err)
	}
	if got := agentsVersion(t, s, tenantA); got != v {
		t.Fatalf("another tenant's agents changed this tenant's version from %q to %q", v, got)
	}
	if vb := agentsVersion(t, s, tenantB); vb == "" {
		t.Fatal("tenant B's version is still empty after its first agents")
	}
	agents[7].DisplayName = "Renamed"
	if err := s.PutAgents(ctx, tenantA, agents[7:8]); err != nil {
		t.Fatal(err)
	}
	changed("renaming an agent")
	if err := s.PutAgents(ctx, tenantA, agents[7:8]); err != nil {
		t.Fatal(err)
	}
	changed("writing an agent again as it was")
	if list, err := s.ListAgents(ctx, tenantA); err != nil || len(list) != 250 {
		t.Fatalf("list agents beside the version: %d agents, %v; want 250", len(list), err)
	}
}

// What a reader relies on: it reads the version, then lists, and keeps the list
// while later reads of the version return the same token. So for any two reads of
// one token, the list read after the first must hold every agent whose write had
// finished before the second (whichever came first in time: a write finished between
// them must have changed the token, and a token never comes back). Writers of several
// batches each run concurrently with readers that list and readers that only read the
// version, and that is checked for every pair. A store that shows a new version before
// its agents fails when the race hits that window (the tables package also pins its
// ordering deterministically).
func testAgentsVersionRace(t *testing.T, s tenant.Store) {
	ctx := context.Background()
	if err := s.PutAgents(ctx, tenantA, agentsN("base", 10)); err != nil {
		t.Fatal(err)
	}
	const writers, calls, perCall = 4, 3, 150 // 150: two batches on Table storage
	type read struct {
		version string
		done    int             // writes finished before the version was read: done[:n]
		ids     map[string]bool // the list read after the version; nil for a version-only read
	}
	var (
		mu     sync.Mutex
		done   [][]string // agents of each finished write, in finishing order
		reads  []read
		wg     sync.WaitGroup
		stop   atomic.Bool
		others sync.WaitGroup
	)
	readVersion := func() (read, bool) {
		mu.Lock()
		r := read{done: len(done)}
		mu.Unlock()
		v, err := s.AgentsVersion(ctx, tenantA)
		if err != nil {
			t.Error(err)
			return r, false
		}
		r.version = v
		return r, true
	}
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := 0; c < calls; c++ {
				as := agentsN(fmt.Sprintf("w%d-c%d", w, c), perCall)
				if err := s.PutAgents(ctx, tenantA, as); err != nil {
					t.Error(err)
					return
				}
				ids := make([]string, len(as))
				for i, a := range as {
					ids[i] = a.ID
				}
				mu.Lock()
				done = append(done, ids)
				mu.Unlock()
			}
		}()
	}
	for r := 0; r < 4; r++ {
		others.Add(1)
		go func() {
			defer others.Done()
			for n := 0; n < 1000 && !stop.Load(); n++ {
				rd, ok := readVersion()
				if !ok {
					return
				}
				if r%2 == 0 { // a lister; the others only read the version
					list, err := s.ListAgents(ctx, tenantA)
					if err != nil {
						t.Error(err)
						return
					}
					rd.ids = make(map[string]bool, len(list))
					for _, a := range list {
						rd.ids[a.ID] = true
					}
				}
				mu.Lock()
				reads = append(reads, rd)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	stop.Store(true)
	others.Wait()
	final, ok := readVersion()
	if !ok {
		t.FailNow()
	}
	reads = append(reads, final)
	list, err := s.ListAgents(ctx, tenantA)
	if err != nil {
		t.Fatal(err)
	}
	if want := 10 + writers*calls*perCall; len(list) != want {
		t.Fatalf("after the writers: %d agents, want %d", len(list), want)
	}
	lists, pairs := 0, 0
	for _, kept := range reads {
		if kept.ids == nil {
			continue
		}
		lists++
		for _, later := range reads {
			if later.version != kept.version {
				continue
			}
			pairs++
			for _, w := range done[:later.done] {
				for _, id := range w {
					if !kept.ids[id] {
						t.Fatalf("version %q: agent %s was written before a read of this version, but the list kept under it lacks it", kept.version, id)
					}
				}
			}
		}
	}
	t.Logf("%d reads (%d with a list) during %d concurrent writes; %d pairs of reads of one version checked", len(reads), lists, writers*calls, pairs)
}
