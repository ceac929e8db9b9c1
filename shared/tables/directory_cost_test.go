package tables

import (
	"context"
	"fmt"
	"testing"

	"github.com/teamscc/teamscc/shared/directory"
	"github.com/teamscc/teamscc/shared/graph"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/tenant"
)

// What a Team sync costs in table requests on Azurite, the fake Graph playing the
// directory: the first sync of a Team of 500 (every member a new agent) and a steady
// sync after 1% of it changed (5 left, 5 joined). Logged per member and pinned as
// upper bounds, so a change that reads or writes per member more than it should fails.
func TestATeamSyncsTableStorageRequests(t *testing.T) {
	s := openAzurite(t)
	ctx := context.Background()
	const tid, team, members = "0d1f6b1e-7c3a-4c59-9a5e-1f2a3b4c5d6e", "5a1e5a1e-0000-4000-8000-000000005a1e", 500
	uid := func(i int) string { return fmt.Sprintf("a0000000-0000-4000-8000-%012d", i) }
	fake := graph.NewFake()
	defer fake.Close()
	ids := make([]string, 0, members+5)
	for i := 1; i <= members+5; i++ {
		fake.AddUser(directory.User{ID: uid(i), UPN: fmt.Sprintf("u%d@contoso.example", i), DisplayName: fmt.Sprintf("User %d", i)})
		ids = append(ids, uid(i))
	}
	fake.AddGroup(directory.Group{ID: team, DisplayName: "Sales"})
	fake.AddMembers(team, ids[:members]...)
	fake.AddOwners(team, ids[0])
	if err := s.PutTenant(ctx, tenant.Tenant{ID: tid, Name: "Contoso"}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutService(ctx, routing.Service{TenantID: tid, ID: "sales", Type: routing.TeamsBased, Team: team}); err != nil {
		t.Fatal(err)
	}
	g, err := graph.New(fake.Options("app"))
	if err != nil {
		t.Fatal(err)
	}
	dir := directory.New(directory.Options{Graph: g, Store: s, Tenants: s, Secrets: s, Routes: s})
	sync := func(what string, added, removed int) int64 {
		t.Helper()
		start := s.RoundTrips()
		res, err := dir.SyncService(ctx, tid, "sales")
		if err != nil || res.Added != added || res.Removed != removed {
			t.Fatalf("%s: %+v %v", what, res, err)
		}
		return s.RoundTrips() - start
	}
	first := sync("first sync", members, 0)
	fake.RemoveMembers(team, ids[:5]...)
	fake.AddMembers(team, ids[members:]...)
	steady := sync("1% changed", 5, 5)
	t.Logf("table requests: first sync of %d members %d (%.1f a member); 1%% changed %d", members, first, float64(first)/members, steady)
	// A member joining: its routing state read, its presence read, the copy into the
	// roster before and after the write, the write (a transaction with the membership
	// version) and its read-back, the presence read again (routing.go putAgent).
	if first > 8*members {
		t.Errorf("first sync: %d table requests; want at most 8 a member (%d)", first, 8*members)
	}
	if steady > 80 {
		t.Errorf("steady sync with 10 changes: %d table requests; want at most 80", steady)
	}
}
