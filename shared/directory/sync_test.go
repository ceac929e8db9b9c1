package directory_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/teamscc/teamscc/shared/directory"
	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/graph"
	"github.com/teamscc/teamscc/shared/inmem"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/tenant"
)

const (
	tid  = "d1d1d1d1-0000-4000-8000-00000000d1d1"
	team = "5a1e5a1e-0000-4000-8000-000000005a1e"
)

func uid(i int) string { return fmt.Sprintf("a0000000-0000-4000-8000-%012d", i) }

type fixture struct {
	fake  *graph.Fake
	store *inmem.Store
	dir   *directory.Directory
}

// newFixture: a tenant of users people, a Team of the first members of them, a
// Teams-based service following it.
func newFixture(tb testing.TB, people, members int) *fixture {
	tb.Helper()
	f := &fixture{fake: graph.NewFake()}
	tb.Cleanup(f.fake.Close)
	for i := 1; i <= people; i++ {
		f.fake.AddUser(directory.User{ID: uid(i), UPN: fmt.Sprintf("u%d@contoso.example", i), DisplayName: fmt.Sprintf("User %d", i)})
	}
	f.fake.AddGroup(directory.Group{ID: team, DisplayName: "Sales"})
	ids := make([]string, members)
	for i := range ids {
		ids[i] = uid(i + 1)
	}
	f.fake.AddMembers(team, ids...)
	f.fake.AddOwners(team, uid(1))
	f.reset(tb)
	return f
}

// reset starts over on an empty store (the tenant and its service only).
func (f *fixture) reset(tb testing.TB) {
	tb.Helper()
	ctx := context.Background()
	f.store = inmem.New()
	if err := f.store.PutTenant(ctx, tenant.Tenant{ID: tid, Name: "Contoso"}); err != nil {
		tb.Fatal(err)
	}
	if err := f.store.PutService(ctx, routing.Service{TenantID: tid, ID: "sales", Type: routing.TeamsBased, Team: team}); err != nil {
		tb.Fatal(err)
	}
	r, err := graph.New(f.fake.Options("app"))
	if err != nil {
		tb.Fatal(err)
	}
	f.dir = directory.New(directory.Options{Graph: r, Store: f.store, Tenants: f.store, Secrets: f.store, Routes: f.store})
}

func (f *fixture) members(tb testing.TB) []string {
	tb.Helper()
	states, err := f.store.ListAgentStates(context.Background(), tid)
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, s := range states {
		if slices.Contains(s.Services, "sales") {
			out = append(out, s.AgentID)
		}
	}
	slices.Sort(out)
	return out
}

func TestATeamsMembersBecomeTheServicesAgents(t *testing.T) {
	f := newFixture(t, 30, 10)
	ctx := context.Background()
	res, err := f.dir.SyncService(ctx, tid, "sales")
	if err != nil || !res.Full || res.Added != 10 || res.Members != 10 || res.OwnersAdded != 1 {
		t.Fatalf("first sync: %+v %v", res, err)
	}
	if got := f.members(t); len(got) != 10 {
		t.Fatalf("members: %v", got)
	}
	// Nothing changed: one delta page, nothing written.
	res, err = f.dir.SyncService(ctx, tid, "sales")
	if err != nil || res.Full || res.Added+res.Removed != 0 || res.GraphRequests != 1 || res.AgentsWritten != 0 || res.ServiceWritten {
		t.Fatalf("an idle sync: %+v %v", res, err)
	}
	// A member leaves, another joins, an owner changes.
	f.fake.RemoveMembers(team, uid(3))
	f.fake.AddMembers(team, uid(20))
	f.fake.RemoveOwners(team, uid(1))
	f.fake.AddOwners(team, uid(20))
	res, err = f.dir.SyncService(ctx, tid, "sales")
	if err != nil || res.Added != 1 || res.Removed != 1 || res.OwnersAdded != 1 || res.OwnersRemoved != 1 {
		t.Fatalf("a sync of changes: %+v %v", res, err)
	}
	got := f.members(t)
	if slices.Contains(got, uid(3)) || !slices.Contains(got, uid(20)) || len(got) != 10 {
		t.Fatalf("members: %v", got)
	}
	svc, _ := f.store.GetService(ctx, tid, "sales")
	if !slices.Equal(svc.Owners, []string{uid(20)}) {
		t.Fatalf("owners: %v", svc.Owners)
	}
	// An expired delta link: a full read, which also finds who left meanwhile.
	f.fake.ExpireDeltaLinks()
	f.fake.RemoveMembers(team, uid(4))
	res, err = f.dir.SyncService(ctx, tid, "sales")
	if err != nil || !res.Full || res.Removed != 1 || slices.Contains(f.members(t), uid(4)) {
		t.Fatalf("after an expired link: %+v %v", res, err)
	}
	// The service follows another Team: a full read; the old Team's members leave.
	other := "07e07e07-0000-4000-8000-000000000007"
	f.fake.AddGroup(directory.Group{ID: other, DisplayName: "Sales EMEA"})
	f.fake.AddMembers(other, uid(25), uid(26))
	if _, err := f.store.UpdateService(ctx, tid, "sales", func(s *routing.Service) error { s.Team = other; return nil }); err != nil {
		t.Fatal(err)
	}
	res, err = f.dir.SyncService(ctx, tid, "sales")
	if err != nil || !res.Full || !slices.Equal(f.members(t), []string{uid(25), uid(26)}) {
		t.Fatalf("another Team: %+v %v %v", res, err, f.members(t))
	}
}

func TestConcurrentSyncsOfOneServiceLoseNothing(t *testing.T) {
	f := newFixture(t, 40, 20)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A concurrent sync that lost the race to store the delta link is told
			// so; the memberships it wrote are the same either way.
			_, err := f.dir.SyncService(context.Background(), tid, "sales")
			if err != nil && !errors.Is(err, fault.ErrPrecondition) && !errors.Is(err, fault.ErrConflict) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := f.members(t); len(got) != 20 {
		t.Fatalf("after concurrent syncs: %d members", len(got))
	}
}

func TestTheApplicationCredentialFallsBackToThePresenceAccounts(t *testing.T) {
	f := newFixture(t, 5, 3)
	ctx := context.Background()
	f.fake.DenyDirectory(graph.AppPrincipal("app"), 403)
	if _, err := f.dir.SyncService(ctx, tid, "sales"); !errors.Is(err, directory.ErrNoCredential) {
		t.Fatalf("no consent and no presence account: %v", err)
	}
	if _, err := f.store.UpdateTenant(ctx, tid, func(tn *tenant.Tenant) error {
		tn.Presence = tenant.PresenceSettings{Enabled: true, Mode: tenant.ModeAccounts, Account1: "presence1@contoso.example"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := f.store.PutSecret(ctx, tid, tenant.SecretAccount1Password, "pw"); err != nil {
		t.Fatal(err)
	}
	res, err := f.dir.SyncService(ctx, tid, "sales")
	if err != nil || res.Added != 3 {
		t.Fatalf("with a presence account: %+v %v", res, err)
	}
	if f.fake.RequestsBy("presence1@contoso.example") == 0 {
		t.Fatal("the presence account was not used")
	}
}

// BenchmarkTeamSync: a tenant of 50,000 users, a Team of 5,000 members; the first sync
// (on an empty store: 5,000 new agents) and a steady-state sync with 1% of the members
// changed (25 leave, 25 join), on the embedded store against the fake Graph over HTTPS
// on loopback (100 members a delta page). Reports Graph requests per sync.
func BenchmarkTeamSync(b *testing.B) {
	for _, c := range []struct {
		name  string
		first bool
	}{{"first/5000-of-50000", true}, {"1pct-change/5000-of-50000", false}} {
		b.Run(c.name, func(b *testing.B) {
			f := newFixture(b, 50000, 5000)
			ctx := context.Background()
			if !c.first {
				if _, err := f.dir.SyncService(ctx, tid, "sales"); err != nil {
					b.Fatal(err)
				}
			}
			next := 5001
			requests := 0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				if c.first {
					f.reset(b)
				} else {
					var out, in []string
					for range 25 {
						out = append(out, uid(next-5000))
						in = append(in, uid(next))
						next++
					}
					f.fake.RemoveMembers(team, out...)
					f.fake.AddMembers(team, in...)
				}
				b.StartTimer()
				res, err := f.dir.SyncService(ctx, tid, "sales")
				if err != nil {
					b.Fatal(err)
				}
				requests += res.GraphRequests
			}
			b.ReportMetric(float64(requests)/float64(b.N), "graph-requests/sync")
		})
	}
}
