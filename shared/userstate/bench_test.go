package userstate_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/inmem"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/tenant"
	"github.com/teamscc/teamscc/shared/userstate"
)

// BenchmarkAdvance: the pure cost of one observation that changes the routing phase.
func BenchmarkAdvance(b *testing.B) {
	c, _ := userstate.Advance(userstate.Cursor{}, seen(nil), services, t0)
	ring := seen(func(s *userstate.Seen) {
		s.Agent.Hold = &routing.Hold{Phase: routing.HoldOffered, Since: t0, Until: t0.Add(time.Minute)}
	})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s := ring
		if i%2 == 1 {
			s = seen(nil)
		}
		c, _ = userstate.Advance(c, s, services, c.At.Add(time.Second))
	}
}

// BenchmarkTrackedAgentWrite: an agent-state write through TrackedRoutes on the
// embedded store, for a tenant with tracking off and on; compare the two as a ratio.
func BenchmarkTrackedAgentWrite(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("tracking=%v", on), func(b *testing.B) {
			ctx := context.Background()
			mem := inmem.New()
			tn := tenant.Tenant{ID: tid}
			tn.Privacy.TrackUserStates = on
			_ = mem.PutTenant(ctx, tn)
			_ = mem.PutService(ctx, services[0])
			_ = mem.SavePresences(ctx, tid, []presence.Presence{{AgentID: "a1", Availability: presence.Available}})
			_, _ = mem.ReplaceAgentState(ctx, seen(nil).Agent)
			now := t0
			tr := userstate.NewTracker(userstate.Options{Store: mem, Routes: mem, Tenants: mem, Presences: mem, Now: func() time.Time { return now }})
			routes := userstate.TrackedRoutes{Store: mem, Tracker: tr}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				now = now.Add(time.Second)
				if _, err := routes.UpdateAgentState(ctx, tid, "a1", func(a *routing.AgentState) error {
					a.Hold = nil
					if i%2 == 0 {
						a.Hold = &routing.Hold{Phase: routing.HoldOffered, Since: now, Until: now.Add(time.Minute)}
					}
					return nil
				}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
