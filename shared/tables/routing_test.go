package tables

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/storetest"
	"github.com/teamscc/teamscc/shared/tenant"
)

func TestRoutingConformance(t *testing.T) {
	needAzurite(t)
	storetest.RunRouting(t, func(t *testing.T) routing.Store { return openAzurite(t) })
}

func TestRosterConformance(t *testing.T) {
	needAzurite(t)
	storetest.RunRosters(t, func(t *testing.T) storetest.RoutingStores { return openAzurite(t) })
}

func TestRoutingKickRaceOnAzurite(t *testing.T) {
	needAzurite(t)
	storetest.RunKickRace(t, openAzurite(t), 50, 30)
}

// Table round trips of one kick that matches one waiting task to one of 20 agents:
// the match (service, open tasks and roster with presences) is one range query; the
// reservation, its copy in the agent's roster and the offer are one write each. The
// tenant and its presence health are cached by the engine (read once per
// TenantCacheTTL).
func TestRoutingRoundTripsPerDecision(t *testing.T) {
	s := openAzurite(t)
	ctx := context.Background()
	const tid = "0d1f6b1e-7c3a-4c59-9a5e-1f2a3b4c5d6e"
	if err := s.PutTenant(ctx, tenant.Tenant{ID: tid}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutService(ctx, routing.Service{TenantID: tid, ID: "sales", Type: routing.TeamsBased}); err != nil {
		t.Fatal(err)
	}
	var ps []presence.Presence
	for i := 0; i < 20; i++ {
		id := fmt.Sprintf("agent%02d", i)
		if _, err := s.ReplaceAgentState(ctx, routing.AgentState{TenantID: tid, AgentID: id, Services: []string{"sales"}}); err != nil {
			t.Fatal(err)
		}
		ps = append(ps, presence.Presence{AgentID: id, Availability: presence.Available, Source: presence.SourceExtended, ObservedAt: time.Now()})
	}
	if err := s.SavePresences(ctx, tid, ps); err != nil {
		t.Fatal(err)
	}
	e := routing.NewEngine(routing.Options{Store: s, Tenants: s, Presences: s, TenantCacheTTL: time.Hour})
	const decisions = 10
	for i := 0; i < decisions; i++ {
		if _, err := e.IncomingCall(ctx, routing.IncomingCall{TenantID: tid, ServiceID: "sales", CallID: fmt.Sprintf("c%d", i)}); err != nil {
			t.Fatal(err)
		}
		before := s.RoundTrips()
		r, err := e.Kick(ctx, tid, "sales", "test")
		if err != nil || r.Offered != 1 {
			t.Fatalf("kick: %+v %v", r, err)
		}
		want := int64(4)
		if i == 0 {
			want++ // the tenant's presence health, read with the first match, then cached
		}
		if n := s.RoundTrips() - before; n != want {
			t.Errorf("decision %d: %d round trips; want %d (1 read + 3 writes)", i, n, want)
		}
	}
}
