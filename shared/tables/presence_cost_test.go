package tables

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/graph"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/tenant"
)

// presenceReader is a presence.Reader answering from a map (the Graph side is not what
// these tests count).
type presenceReader struct {
	mu sync.Mutex
	m  map[string]presence.Availability
}

func (r *presenceReader) set(id string, a presence.Availability) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m[id] = a
}

func (r *presenceReader) ReadPresences(_ context.Context, _ string, _ presence.Credential, ids []string) ([]presence.Observation, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]presence.Observation, 0, len(ids))
	for _, id := range ids {
		if a, ok := r.m[id]; ok {
			out = append(out, presence.Observation{UserID: id, Availability: a, Activity: string(a)})
		}
	}
	return out, nil
}

func (r *presenceReader) ReadPresence(ctx context.Context, tid string, c presence.Credential, user string) (presence.Observation, error) {
	got, err := r.ReadPresences(ctx, tid, c, []string{user})
	if err != nil {
		return presence.Observation{}, err
	}
	if len(got) == 0 {
		return presence.Observation{}, fault.ErrNotFound
	}
	return got[0], nil
}

func agentObjectID(i int) string { return fmt.Sprintf("a0000000-0000-4000-8000-%012d", i) }

// seedMembers makes the agents routing members of one service, so a presence change
// also reaches its roster. Written directly, 100 to a transaction (the routing path
// writes them one by one, which on Azurite takes minutes at 10,000).
func seedMembers(tb testing.TB, s *Store, tid, service string, agents []tenant.Agent) {
	tb.Helper()
	var states, roster []row
	for _, a := range agents {
		st := routing.AgentState{TenantID: tid, AgentID: a.ID, Services: []string{service}}
		r1, err := agentEntity(st)
		if err != nil {
			tb.Fatal(err)
		}
		r2, err := rosterRow(st, service, "", nil)
		if err != nil {
			tb.Fatal(err)
		}
		states, roster = append(states, r1), append(roster, r2)
	}
	ctx := context.Background()
	if err := upsertAll(ctx, s.client(tableRoutingAgents), states); err != nil {
		tb.Fatal(err)
	}
	if err := upsertAll(ctx, s.client(tableRoutingQueues), roster); err != nil {
		tb.Fatal(err)
	}
}

// What a presence poll costs in table requests on Azurite, with 10 and with 2,500
// agents of one service (three pages of a listing; BenchmarkPresenceRefreshAzurite
// counts 10,000): a poll that finds nothing changed costs the same whatever the agent
// count (the tenant, the agent list's version, the health read and its conditional
// write); a poll with changes costs that, two reads of the membership version, and per
// 100 changed rows one batch of presences and one of the service's roster. Logged, and
// pinned exactly, so a change that reads or writes per agent fails.
func TestAPresencePollsTableStorageRequests(t *testing.T) {
	ctx := context.Background()
	const tid = "0d1f6b1e-7c3a-4c59-9a5e-1f2a3b4c5d6e"
	sizes := []int{10, 2_500} // Azurite slows down with the rows of a partition: 10,000 agents take minutes to seed here
	steady := map[int]int64{}
	for _, n := range sizes {
		s := openAzurite(t)
		if err := s.PutTenant(ctx, tenant.Tenant{ID: tid, Name: "Contoso",
			Presence: tenant.PresenceSettings{Enabled: true, Mode: tenant.ModeApplication}}); err != nil {
			t.Fatal(err)
		}
		rd := &presenceReader{m: map[string]presence.Availability{}}
		agents := make([]tenant.Agent, n)
		for i := range agents {
			agents[i] = tenant.Agent{ID: agentObjectID(i)}
			rd.set(agents[i].ID, presence.Available)
		}
		if err := s.PutAgents(ctx, tid, agents); err != nil {
			t.Fatal(err)
		}
		seedMembers(t, s, tid, "sales", agents)
		at := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
		r := presence.NewRefresher(presence.Config{OfflineDamping: -1}, s, s, s, rd, func() time.Time { return at })
		poll := func(what string, changed int) int64 {
			t.Helper()
			at = at.Add(15 * time.Second)
			start := s.RoundTrips()
			res, err := r.RefreshTenant(ctx, tid)
			if err != nil || res.Agents != n || res.Changed != changed {
				t.Fatalf("%d agents, %s: %+v, %v; want %d changed", n, what, res, err, changed)
			}
			return s.RoundTrips() - start
		}
		first := poll("first poll", n)
		quiet := poll("nothing changed", 0)
		if again := poll("nothing changed again", 0); again != quiet {
			t.Fatalf("%d agents: unchanged polls cost %d, then %d table requests", n, quiet, again)
		}
		flip := func(k int, a presence.Availability) {
			for i := 0; i < k; i++ {
				rd.set(agentObjectID(i*(n/k)), a)
			}
		}
		flip(1, presence.Busy)
		one := poll("1 changed", 1)
		k := min(250, n)
		flip(k, presence.Away)
		many := poll(fmt.Sprintf("%d changed", k), k)
		t.Logf("table requests with %d agents: first poll %d; nothing changed %d; 1 changed %d; %d changed %d", n, first, quiet, one, k, many)
		// With changes: the membership version read before and after the copy to the
		// rosters, and per 100 changed rows one batch of presences and one of roster rows.
		want := func(k int) int64 { return quiet + 2 + 2*int64((k+99)/100) }
		if one != want(1) || many != want(k) {
			t.Errorf("%d agents: %d and %d table requests with 1 and %d changes; want %d and %d (one batch per 100 changed rows, to presences and to the roster)",
				n, one, many, k, want(1), want(k))
		}
		steady[n] = quiet
	}
	if steady[2_500] != steady[10] {
		t.Errorf("a poll with nothing changed costs %d table requests with 10 agents and %d with 2,500; want the same", steady[10], steady[2_500])
	}
	if steady[10] > 5 {
		t.Errorf("a poll with nothing changed costs %d table requests; want at most 5 (tenant, agents version, health, health read and write)", steady[10])
	}
}

// BenchmarkPresenceRefreshAzurite is the presence benchmark with presences on Table
// storage (Azurite): one tenant of 10,000 agents of one service (a change is written to
// the presences and to the service's roster), the real refresher and Graph adapter
// against the fake Graph adding 50 ms to every Graph request, 1% of presences changing
// between polls. Reported: wall time per poll (ns/op), table requests, the time spent
// in them, Graph requests and presence rows written per poll.
func BenchmarkPresenceRefreshAzurite(b *testing.B) {
	const n = 10_000
	const tid, clientID = "3f2504e0-4f89-41d3-9a0c-0305e82c3301", "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"
	ctx := context.Background()
	var inTables atomic.Int64 // ns spent in table requests
	cfg := azuriteConfig(b)
	cfg.HTTPClient = &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		start := time.Now()
		defer func() { inTables.Add(int64(time.Since(start))) }()
		return http.DefaultTransport.RoundTrip(req)
	})}
	s := openAzuriteWith(b, cfg)
	fake := graph.NewFake()
	b.Cleanup(fake.Close)
	const upn1, upn2 = "presence1@guests.example", "presence2@guests.example"
	fake.SetPassword(upn1, "pw-one")
	fake.SetPassword(upn2, "pw-two")
	check := func(err error) {
		b.Helper()
		if err != nil {
			b.Fatal(err)
		}
	}
	check(s.PutTenant(ctx, tenant.Tenant{ID: tid, Name: "Contoso",
		Presence: tenant.PresenceSettings{Enabled: true, Mode: tenant.ModeAccounts, Account1: upn1, Account2: upn2}}))
	check(s.PutSecret(ctx, tid, tenant.SecretAccount1Password, "pw-one"))
	check(s.PutSecret(ctx, tid, tenant.SecretAccount2Password, "pw-two"))
	ids := make([]string, n)
	agents := make([]tenant.Agent, n)
	for i := range agents {
		ids[i] = agentObjectID(i)
		agents[i] = tenant.Agent{ID: ids[i]}
	}
	check(s.PutAgents(ctx, tid, agents))
	seedMembers(b, s, tid, "sales", agents)
	fake.SetPresences(ids, "Available", "Available")
	reader, err := graph.New(fake.Options(clientID))
	check(err)
	var mu sync.Mutex
	at := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return at }
	r := presence.NewRefresher(presence.Config{}, s, s, s, reader, now)
	poll := func() presence.Result {
		mu.Lock()
		at = at.Add(15 * time.Second)
		mu.Unlock()
		res, err := r.RefreshTenant(ctx, tid)
		check(err)
		return res
	}
	poll() // the first poll lists the agents and stores everyone
	fake.SetLatency(50 * time.Millisecond)
	fake.ResetCounters()
	start, startNs := s.RoundTrips(), inTables.Load()
	written, polls, flip := 0, 0, false
	for b.Loop() {
		b.StopTimer()
		flip = !flip
		state := "Available"
		if flip {
			state = "Busy"
		}
		for i := 0; i < n; i += 100 { // 1%
			fake.SetPresence(ids[i], state, state)
		}
		b.StartTimer()
		written += poll().Changed
		polls++
	}
	b.ReportMetric(float64(s.RoundTrips()-start)/float64(polls), "table-requests/op")
	b.ReportMetric(float64(inTables.Load()-startNs)/1e6/float64(polls), "table-ms/op")
	b.ReportMetric(float64(fake.GraphRequests())/float64(polls), "graph-requests/op")
	b.ReportMetric(float64(written)/float64(polls), "rows-written/op")
}
