package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/azurite"
	"github.com/teamscc/teamscc/shared/config"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/simulate"
	"github.com/teamscc/teamscc/shared/tables"
	"github.com/teamscc/teamscc/shared/tenant"
)

func TestMain(m *testing.M) {
	code := m.Run()
	azurite.Stop() // only if a benchmark started it
	os.Exit(code)
}

// tableApp is the app over HTTP on Table storage (Azurite), as in Azure but without a
// calling platform: decisions are recorded, nobody is rung, kicks are kept by bus.
type tableApp struct {
	base   string          // the first instance
	bases  []string        // every instance (each its own app, engine and store client, one storage)
	store  *tables.Store   // the first instance's
	stores []*tables.Store // every instance's
	bus    *busQueue       // shared by the instances, as the queue is
	clk    *clock          // the bus's: set to let scheduled wakes come due
}

// requests is the table requests of every instance so far.
func (a *tableApp) requests() int64 {
	var n int64
	for _, s := range a.stores {
		n += s.RoundTrips()
	}
	return n
}

// newTableApp starts instances apps on one fresh set of tables; store counts the
// requests of all of them.
func newTableApp(tb testing.TB, instances int) *tableApp {
	tb.Helper()
	var id [4]byte
	_, _ = rand.Read(id[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tc := tables.Config{ConnectionString: azurite.ConnectionString(azurite.Need(tb)), TablePrefix: "B" + hex.EncodeToString(id[:])}
	cfg, err := config.Load(envFrom(nil))
	if err != nil {
		tb.Fatal(err)
	}
	clk := &clock{t: time.Now()}
	a := &tableApp{bus: &busQueue{clk: clk, seen: map[string]time.Time{}}, clk: clk}
	for range instances {
		s, err := tables.Open(ctx, tc)
		if err != nil {
			tb.Fatal(err)
		}
		if a.store == nil {
			a.store = s
		}
		a.stores = append(a.stores, s)
		app := newApp(cfg, deps{tenants: s, secrets: s, presences: s, parked: s, userStates: s, interact: s, routes: s, sender: a.bus, audit: s,
			calls: s, dirSyncs: s, admin: localAdmin(s), reader: simulate.NewReader(nil), now: time.Now}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		srv := httptest.NewServer(app)
		tb.Cleanup(srv.Close)
		a.bases = append(a.bases, srv.URL)
	}
	a.base = a.bases[0]
	return a
}

// stormTenant is the tenant of the storm: its services share the same agents.
const stormTenant = "5709e000-0000-4000-8000-0000000057e0"

// seedStorm writes a tenant whose services share agents (Available), with calls
// waiting in each service (created as the call controller creates them), and drops
// the kicks the intake sent (the storm stands in for them).
func (a *tableApp) seedStorm(tb testing.TB, services []string, agents, waiting int) {
	tb.Helper()
	ctx := context.Background()
	if err := a.store.PutTenant(ctx, tenant.Tenant{ID: stormTenant, Name: "Storm"}); err != nil {
		tb.Fatal(err)
	}
	for _, id := range services {
		if err := a.store.PutService(ctx, routing.Service{TenantID: stormTenant, ID: id, Type: routing.TeamsBased}); err != nil {
			tb.Fatal(err)
		}
	}
	ps := make([]presence.Presence, agents)
	for i := range agents {
		id := fmt.Sprintf("a0000000-0000-4000-8000-%012d", i)
		if _, err := a.store.UpdateAgentState(ctx, stormTenant, id, func(x *routing.AgentState) error { x.Services = services; return nil }); err != nil {
			tb.Fatal(err)
		}
		ps[i] = presence.Presence{AgentID: id, Availability: presence.Available, Source: presence.SourceExtended, ObservedAt: time.Now()}
	}
	if err := a.store.SavePresences(ctx, stormTenant, ps); err != nil {
		tb.Fatal(err)
	}
	e := routing.NewEngine(routing.Options{Store: a.store, Tenants: a.store, Presences: a.store, Sender: a.bus, Queue: "calls"})
	for i := range waiting {
		sv := services[i%len(services)]
		if _, err := e.IncomingCall(ctx, routing.IncomingCall{TenantID: stormTenant, ServiceID: sv, CallID: fmt.Sprintf("%s-%04d", sv, i)}); err != nil {
			tb.Fatal(err)
		}
	}
	a.bus.forget()
	a.bus.due()
}

// kick delivers one kick to RouteCall of an instance over HTTP with the host's
// envelope.
func (a *tableApp) kick(tb testing.TB, base, serviceID, messageID string) time.Duration {
	body, _ := json.Marshal(routing.Kick{TenantID: stormTenant, ServiceID: serviceID, Reason: "storm"})
	start := time.Now()
	if status, resp := postTB(tb, base+"/RouteCall", sbEnvelope(string(body), messageID, 1)); status != http.StatusOK {
		tb.Errorf("kick %s: %d %s", serviceID, status, resp)
	}
	return time.Since(start)
}

// followUps delivers the kicks the app sent (wakes, coalesced per window; the ring
// expiries scheduled half a minute ahead stay) one service at a time, as sessions do,
// until none is left, and returns how many there were.
func (a *tableApp) followUps(tb testing.TB) int {
	tb.Helper()
	n := 0
	for {
		a.clk.mu.Lock()
		a.clk.t = time.Now().Add(routing.WakeWindow)
		a.clk.mu.Unlock()
		due := a.bus.due()
		if len(due) == 0 {
			return n
		}
		for _, m := range due {
			n++
			if status, body := postTB(tb, a.base+"/"+queueFunctions[m.queue], sbEnvelope(string(m.m.Body), m.m.ID, 1)); status != http.StatusOK {
				tb.Errorf("follow-up kick: %d %s", status, body)
			}
		}
	}
}

// checkStorm fails unless the invariants hold: no agent offered two tasks at once, no
// task offered to two agents (no broadcast here), every hold an offered task's, and
// as many tasks offered as there are agents (nothing lost while calls wait).
func (a *tableApp) checkStorm(tb testing.TB, services []string, agents int) int {
	tb.Helper()
	ctx := context.Background()
	states, err := a.store.ListAgentStates(ctx, stormTenant)
	if err != nil {
		tb.Fatal(err)
	}
	holds := map[string]string{}
	for _, s := range states {
		if s.Hold != nil {
			holds[s.AgentID] = s.Hold.ServiceID + "/" + s.Hold.TaskID
		}
	}
	offered := map[string]string{}
	for _, sv := range services {
		_, open, err := a.store.LoadQueue(ctx, stormTenant, sv)
		if err != nil {
			tb.Fatal(err)
		}
		for _, t := range open {
			if t.State != routing.Offered {
				continue
			}
			if len(t.OfferedTo) != 1 {
				tb.Errorf("task %s/%s offered to %v", sv, t.ID, t.OfferedTo)
			}
			for _, id := range t.OfferedTo {
				if prev, dup := offered[id]; dup {
					tb.Errorf("agent %s offered %s and %s/%s at once", id, prev, sv, t.ID)
				}
				offered[id] = sv + "/" + t.ID
				if holds[id] != sv+"/"+t.ID {
					tb.Errorf("task %s/%s offered to %s, whose hold is %q", sv, t.ID, id, holds[id])
				}
			}
		}
	}
	for id, h := range holds {
		if offered[id] != h {
			tb.Errorf("agent %s holds %s, which is not offered to it (a leaked reservation)", id, h)
		}
	}
	if len(offered) != agents {
		tb.Errorf("%d of %d agents offered a task while calls wait", len(offered), agents)
	}
	return len(offered)
}

// BenchmarkKickStormOverHTTP: the routing path as it runs in Azure, over HTTP with the
// host's envelope and on Table storage (Azurite), under the worst case: 50 kicks at
// once for two services that share 30 agents, 100 calls waiting, delivered without
// sessions to 1 instance or spread over 5 (each its own engine and store client: they
// race on ETags). One op is one storm on a fresh tenant. It reports the kicks' median
// and slowest latency, the table requests of the storm, and the follow-up kicks the
// app sent (each one more RouteCall invocation; delivered after the storm, untimed);
// the invariants are checked once they are.
func BenchmarkKickStormOverHTTP(b *testing.B) {
	for _, instances := range []int{1, 5} {
		b.Run(fmt.Sprintf("instances=%d", instances), func(b *testing.B) { kickStorm(b, instances) })
	}
}

func kickStorm(b *testing.B, instances int) {
	services := []string{"sales", "support"}
	const agents, waiting, concurrent = 30, 100, 50
	var (
		lat              []time.Duration
		requests, follow int64
	)
	for b.Loop() {
		b.StopTimer()
		a := newTableApp(b, instances)
		a.seedStorm(b, services, agents, waiting)
		before := a.requests()
		b.StartTimer()
		var (
			wg sync.WaitGroup
			mu sync.Mutex
		)
		for i := range concurrent {
			wg.Go(func() {
				d := a.kick(b, a.bases[i%len(a.bases)], services[i%len(services)], fmt.Sprintf("storm-%d", i))
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			})
		}
		wg.Wait()
		b.StopTimer()
		requests += a.requests() - before
		follow += int64(a.followUps(b))
		a.checkStorm(b, services, agents)
		b.StartTimer()
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "ms-median-kick")
	b.ReportMetric(float64(lat[len(lat)-1].Milliseconds()), "ms-slowest-kick")
	b.ReportMetric(float64(requests)/float64(b.N), "table-requests/storm")
	b.ReportMetric(float64(follow)/float64(b.N), "follow-up-kicks/storm")
}

// BenchmarkOneKickOverHTTP: one kick alone over HTTP on Table storage, for the same
// tenant as the storm (30 agents, 100 calls waiting in its service): latency and
// table requests.
func BenchmarkOneKickOverHTTP(b *testing.B) {
	services := []string{"sales", "support"}
	var requests int64
	for b.Loop() {
		b.StopTimer()
		a := newTableApp(b, 1)
		a.seedStorm(b, services, 30, 100)
		before := a.requests()
		b.StartTimer()
		a.kick(b, a.base, "sales", "one")
		b.StopTimer()
		requests += a.requests() - before
		b.StartTimer()
	}
	b.ReportMetric(float64(requests)/float64(b.N), "table-requests/kick")
}
