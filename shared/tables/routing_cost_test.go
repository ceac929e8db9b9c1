package tables

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/tenant"
)

const costTenant = "0d1f6b1e-7c3a-4c59-9a5e-1f2a3b4c5d6e"

// routingFixture seeds a tenant whose services all share the same agents (Available),
// with waiting tasks in each service, and returns an engine on it (no calling
// platform, no sender: the kicks are the test's).
func routingFixture(t *testing.T, s *Store, services []string, agents, waiting int) *routing.Engine {
	t.Helper()
	ctx := context.Background()
	if err := s.PutTenant(ctx, tenant.Tenant{ID: costTenant, Name: "Contoso"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range services {
		if err := s.PutService(ctx, routing.Service{TenantID: costTenant, ID: id, Type: routing.TeamsBased}); err != nil {
			t.Fatal(err)
		}
	}
	ps := make([]presence.Presence, agents)
	for i := range agents {
		id := fmt.Sprintf("a0000000-0000-4000-8000-%012d", i)
		if _, err := s.ReplaceAgentState(ctx, routing.AgentState{TenantID: costTenant, AgentID: id, Services: services}); err != nil {
			t.Fatal(err)
		}
		ps[i] = presence.Presence{AgentID: id, Availability: presence.Available, Source: presence.SourceExtended, ObservedAt: time.Now()}
	}
	if err := s.SavePresences(ctx, costTenant, ps); err != nil {
		t.Fatal(err)
	}
	e := routing.NewEngine(routing.Options{Store: s, Tenants: s, Presences: s, TenantCacheTTL: time.Hour})
	for _, sv := range services {
		for i := range waiting {
			if _, err := e.IncomingCall(ctx, routing.IncomingCall{TenantID: costTenant, ServiceID: sv, CallID: fmt.Sprintf("%s-call-%03d", sv, i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := e.Kick(ctx, costTenant, "warm-the-tenant-cache", ""); err == nil {
		t.Fatal("a kick of an unknown service succeeded")
	}
	return e
}

// kickAll runs one kick of each service at once and returns the table requests they
// made together.
func kickAll(t *testing.T, s *Store, e *routing.Engine, services ...string) int64 {
	t.Helper()
	before := s.RoundTrips()
	var wg sync.WaitGroup
	for _, sv := range services {
		wg.Go(func() {
			if _, err := e.Kick(context.Background(), costTenant, sv, "test"); err != nil {
				t.Errorf("kick %s: %v", sv, err)
			}
		})
	}
	wg.Wait()
	return s.RoundTrips() - before
}

// Two services share 30 agents and have 100 calls waiting each. One kick offers 30
// calls; two concurrent kicks share the 30 agents between them and must not cost
// much more than one: a lost reservation reads that agent and the kick never tries it
// again, so the waste is bounded by the agents lost, not by tasks × agents.
func TestConcurrentKicksOfServicesSharingAgents(t *testing.T) {
	services := []string{"sales", "support"}
	s1 := openAzurite(t)
	e1 := routingFixture(t, s1, services, 30, 100)
	one := kickAll(t, s1, e1, "sales")
	s2 := openAzurite(t)
	e2 := routingFixture(t, s2, services, 30, 100)
	two := kickAll(t, s2, e2, services...)
	t.Logf("table requests: one kick %d, two concurrent kicks %d (%.2f×)", one, two, float64(two)/float64(one))
	if two >= 2*one {
		t.Errorf("two concurrent kicks cost %d table requests, one alone %d: want less than twice", two, one)
	}
}

// A kick reads its service's roster, never the tenant's other agents: with 10 or
// 10,000 agents in other services it makes the same requests.
func TestKickRequestsDoNotGrowWithOtherAgents(t *testing.T) {
	counts := map[int]int64{}
	for _, others := range []int{10, 10000} {
		s := openAzurite(t)
		e := routingFixture(t, s, []string{"sales"}, 5, 1)
		// The other agents are written directly, 100 to a transaction: their
		// services' rosters do not matter here, their rows in the tenant's partition do.
		rows := make([]row, others)
		for i := range rows {
			r, err := agentEntity(routing.AgentState{TenantID: costTenant, AgentID: fmt.Sprintf("b0000000-0000-4000-8000-%012d", i), Services: []string{"billing"}})
			if err != nil {
				t.Fatal(err)
			}
			rows[i] = r
		}
		if err := upsertAll(context.Background(), s.client(tableRoutingAgents), rows); err != nil {
			t.Fatal(err)
		}
		counts[others] = kickAll(t, s, e, "sales")
	}
	t.Logf("table requests of a kick: %d with 10 other agents, %d with 10,000", counts[10], counts[10000])
	if counts[10] != counts[10000] {
		t.Errorf("a kick's requests grew with the tenant's other agents: %v", counts)
	}
}
