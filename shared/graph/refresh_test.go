package graph_test

// The presence refresh end to end at HTTP level: the domain refresher, this adapter,
// and a fake Entra + Graph (httptest TLS). These are the scenarios a tenant admin
// lives through: an account refused, both refused, recovery, throttling.

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/graph"
	"github.com/teamscc/teamscc/shared/inmem"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/tenant"
)

const (
	tid      = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
	clientID = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"
	upn1     = "presence1@guests.example"
	upn2     = "presence2@guests.example"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type rig struct {
	fake  *graph.Fake
	store *inmem.Store
	clk   *clock
	r     *presence.Refresher
	ids   []string
}

func newRig(tb testing.TB, agents int, cfg presence.Config) *rig {
	tb.Helper()
	ctx := context.Background()
	g := &rig{fake: graph.NewFake(), store: inmem.New(), clk: &clock{t: time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)}}
	tb.Cleanup(g.fake.Close)
	g.fake.SetPassword(upn1, "pw-one")
	g.fake.SetPassword(upn2, "pw-two")
	t := tenant.Tenant{ID: tid, Name: "Contoso", Presence: tenant.PresenceSettings{Enabled: true, Mode: tenant.ModeAccounts, Account1: upn1, Account2: upn2}}
	check(tb, g.store.PutTenant(ctx, t))
	check(tb, g.store.PutSecret(ctx, tid, tenant.SecretAccount1Password, "pw-one"))
	check(tb, g.store.PutSecret(ctx, tid, tenant.SecretAccount2Password, "pw-two"))
	g.ids = make([]string, agents)
	as := make([]tenant.Agent, agents)
	for i := range as {
		g.ids[i] = fmt.Sprintf("a0000000-0000-4000-8000-%012d", i)
		as[i] = tenant.Agent{ID: g.ids[i]}
	}
	check(tb, g.store.PutAgents(ctx, tid, as))
	g.fake.SetPresences(g.ids, "Available", "Available")
	reader, err := graph.New(g.fake.Options(clientID))
	check(tb, err)
	g.r = presence.NewRefresher(cfg, g.store, g.store, g.store, reader, g.clk.now)
	return g
}

func check(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

func (g *rig) poll(tb testing.TB) presence.Result {
	tb.Helper()
	g.clk.advance(15 * time.Second)
	res, err := g.r.RefreshTenant(context.Background(), tid)
	check(tb, err)
	return res
}

func TestRefreshReadsIn650IdChunksAndWritesOnlyChanges(t *testing.T) {
	g := newRig(t, 1400, presence.Config{})
	res := g.poll(t)
	st := g.fake.Stats()
	if res.Changed != 1400 || st.GraphRequests != 3 || st.MaxIDsPerRequest != 650 || st.IDsSeen != 1400 {
		t.Fatalf("first poll: changed %d, %+v; want 1400 written, 3 requests of at most 650 ids", res.Changed, st)
	}
	if g.fake.RequestsBy(upn1) != 3 {
		t.Fatalf("account 1's token reached Graph %d times, want 3", g.fake.RequestsBy(upn1))
	}
	writes := g.store.PresenceWrites()
	if res := g.poll(t); res.Changed != 0 || g.store.PresenceWrites() != writes {
		t.Fatalf("unchanged poll wrote %d rows", g.store.PresenceWrites()-writes)
	}
	for _, i := range []int{0, 649, 650, 1399} {
		g.fake.SetPresence(g.ids[i], "Busy", "InACall")
	}
	if res := g.poll(t); res.Changed != 4 || g.store.PresenceWrites()-writes != 4 {
		t.Fatalf("4 changed: result %d, rows written %d", res.Changed, g.store.PresenceWrites()-writes)
	}
}

func TestAccount1RefusedThenBothRefusedThenRecovery(t *testing.T) {
	g := newRig(t, 10, presence.Config{AccountRetry: time.Minute})
	g.fake.DenyGraph(graph.AppPrincipal(clientID), 403) // no consent to the application permission: nothing between the accounts and basic
	g.fake.SetPresence(g.ids[0], "Busy", "InACall")
	// Entra refuses account 1 at sign-in. (A token already issued stays valid until it
	// expires, so a refusal shows at the next sign-in, as in production.)
	g.fake.FailToken(upn1, 50076) // MFA required
	res := g.poll(t)
	if res.Active != presence.CredAccount2 || res.Health.Account1.ErrorCode != "AADSTS50076" {
		t.Fatalf("account 1 needs MFA: active %s switched %v account1 %+v", res.Active, res.Switched, res.Health.Account1)
	}
	if g.fake.RequestsBy(upn2) == 0 {
		t.Fatal("account 2's token never reached Graph")
	}

	g.fake.DenyGraph(upn2, 403) // consent withdrawn for account 2
	res = g.poll(t)
	if res.Active != presence.CredBasic || res.Health.Account2.ErrorCode != "HTTP403" {
		t.Fatalf("both refused: active %s health %+v", res.Active, res.Health)
	}
	ps, _ := g.store.LoadPresences(context.Background(), tid)
	for _, p := range ps {
		if p.Source != presence.SourceBasic || p.Activity != "" {
			t.Fatalf("basic fallback left %+v", p)
		}
		if p.AgentID == g.ids[0] && p.Availability != presence.Busy {
			t.Fatalf("basic fallback lost the last availability: %+v", p)
		}
	}

	g.fake.FailToken(upn1, 0)
	g.fake.DenyGraph(upn2, 0)
	g.clk.advance(time.Minute) // past the retry window
	res = g.poll(t)
	if res.Active != presence.CredAccount1 || !res.Switched || len(res.Health.Warnings) != 0 {
		t.Fatalf("after recovery: active %s, warnings %+v", res.Active, res.Health.Warnings)
	}
	p, _ := g.store.LoadPresences(context.Background(), tid)
	for _, x := range p {
		if x.Source != presence.SourceExtended {
			t.Fatalf("extended presence not restored: %+v", x)
		}
	}
}

func TestThrottledRequestsAreRetriedAfterRetryAfter(t *testing.T) {
	g := newRig(t, 700, presence.Config{MaxInFlight: 1})
	g.fake.Throttle(1, "0.05")
	res := g.poll(t)
	st := g.fake.Stats()
	if res.Changed != 700 || st.Throttled != 1 || st.GraphRequests != 3 {
		t.Fatalf("throttled once: changed %d, %+v; want all 700 read with one retry (3 requests)", res.Changed, st)
	}
}

func TestApplicationModeUsesTheAppToken(t *testing.T) {
	g := newRig(t, 5, presence.Config{})
	tn, _ := g.store.GetTenant(context.Background(), tid)
	tn.Presence = tenant.PresenceSettings{Enabled: true, Mode: tenant.ModeApplication}
	check(t, g.store.PutTenant(context.Background(), tn))
	if res := g.poll(t); res.Active != presence.CredApplication || g.fake.RequestsBy(graph.AppPrincipal(clientID)) != 1 {
		t.Fatalf("application mode: %+v", res)
	}
}

// BenchmarkPresenceRefresh is the presence benchmark: one tenant, a fake Graph
// adding 50 ms to every request, 1% of presences changing between polls. Reported:
// wall time per poll (ns/op), Graph requests per poll, presence rows written per poll.
func BenchmarkPresenceRefresh(b *testing.B) {
	for _, n := range []int{10_000, 50_000} {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) {
			g := newRig(b, n, presence.Config{})
			g.poll(b) // first poll stores everyone
			g.fake.SetLatency(50 * time.Millisecond)
			g.fake.ResetCounters()
			writes := g.store.PresenceWrites()
			flip := false
			polls := 0
			for b.Loop() {
				b.StopTimer()
				flip = !flip
				state := "Available"
				if flip {
					state = "Busy"
				}
				for i := 0; i < n; i += 100 { // 1%
					g.fake.SetPresence(g.ids[i], state, state)
				}
				b.StartTimer()
				g.poll(b)
				polls++
			}
			b.ReportMetric(float64(g.fake.GraphRequests())/float64(polls), "graph-requests/op")
			b.ReportMetric(float64(g.store.PresenceWrites()-writes)/float64(polls), "rows-written/op")
		})
	}
}

func TestMemberOfAnswersGroupOverageWithTheAppCredential(t *testing.T) {
	f := graph.NewFake()
	defer f.Close()
	r, err := graph.New(f.Options(clientID))
	check(t, err)
	const user = "7e57e57e-0000-4000-8000-000000000001"
	f.SetGroups(user, "aaaaaaaa-0000-4000-8000-000000000001", "cccccccc-0000-4000-8000-000000000003")
	got, err := r.MemberOf(context.Background(), tid, user, []string{"AAAAAAAA-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000002"})
	if err != nil || len(got) != 1 || got[0] != "AAAAAAAA-0000-4000-8000-000000000001" {
		t.Fatalf("member of = %v, %v", got, err)
	}
	if f.RequestsBy(graph.AppPrincipal(clientID)) != 1 {
		t.Fatal("checkMemberGroups did not use the application credential")
	}
}
