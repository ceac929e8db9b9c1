package tables

import (
	"context"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/storetest"
	"github.com/teamscc/teamscc/shared/tenant"
	"github.com/teamscc/teamscc/shared/userstate"
)

func TestUserStateConformanceAzurite(t *testing.T) {
	needAzurite(t)
	storetest.RunUserStates(t, func(t *testing.T) storetest.UserStateStores { return openAzurite(t) })
}

// The cost of tracking, in round trips: an agent-state write of a tenant that does not
// track costs nothing more (the tenant's flag is cached); one that tracks costs four
// more (services, agent state, cursor, one transaction).
func TestUserStateTrackingRoundTrips(t *testing.T) {
	s := openAzurite(t)
	ctx := context.Background()
	for _, tc := range []struct {
		tid   string
		track bool
		extra int64
	}{{"0d1f6b1e-7c3a-4c59-9a5e-1f2a3b4c5d6e", false, 0}, {"9e8d7c6b-5a49-4837-8261-7f6e5d4c3b2a", true, 4}} {
		tn := tenant.New(tc.tid, "Contoso")
		tn.Privacy.TrackUserStates = tc.track
		if err := s.PutTenant(ctx, tn); err != nil {
			t.Fatal(err)
		}
		if err := s.PutService(ctx, routing.Service{TenantID: tc.tid, ID: "sales", Type: routing.TeamsBased}); err != nil {
			t.Fatal(err)
		}
		tr := userstate.NewTracker(userstate.Options{Store: s, Routes: s, Tenants: s, Presences: s})
		tracked := userstate.TrackedRoutes{Store: s, Tracker: tr}
		for i := range 4 {
			before := s.RoundTrips()
			if _, err := tracked.UpdateAgentState(ctx, tc.tid, "a1", func(a *routing.AgentState) error {
				a.Services, a.Hold = []string{"sales"}, nil
				if i%2 == 1 {
					a.Hold = &routing.Hold{Phase: routing.HoldOffered, Since: time.Now(), Until: time.Now().Add(time.Minute)}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			// The first write reads the tenant (then cached) and starts the cursor; after
			// it, the write itself is a read, a conditional write and the copy in the
			// roster after it, and, when it frees the agent, the copy before it too.
			want := 3 + tc.extra
			if i%2 == 0 {
				want++
			}
			if got := s.RoundTrips() - before; i > 0 && got != want {
				t.Errorf("tracking %v, write %d: %d round trips; want %d", tc.track, i, got, want)
			}
		}
	}
}
