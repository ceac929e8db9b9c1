package main

import (
	"container/heap"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/calls"
	"github.com/teamscc/teamscc/shared/config"
	"github.com/teamscc/teamscc/shared/entra"
	"github.com/teamscc/teamscc/shared/graph"
	"github.com/teamscc/teamscc/shared/inmem"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/queue"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/simulate"
)

// testBotAppID is the bot's app id in the call tests.
const testBotAppID = "b07b07b0-0000-4000-8000-0000000000b0"

// clock is a fake clock the app's routing and call controller read.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// busQueue plays Service Bus for the tests: it keeps every message the app sends,
// with the time it becomes visible, drops a repeated MessageId within the duplicate
// window as Service Bus does, and delivers due messages to their functions with the
// host's envelope.
type busQueue struct {
	clk       *clock
	mu        sync.Mutex
	msgs      busHeap              // by visibility time, then sequence
	cancelled map[int64]bool       // sequence numbers cancelled while scheduled
	seen      map[string]time.Time // queue + message id → when sent
	seq       int64
}

type busMessage struct {
	queue string
	m     queue.Message
	at    time.Time
	seq   int64
}

// busHeap orders messages by when they become visible, then by sequence: due takes
// what is visible without walking what is scheduled later.
type busHeap []busMessage

func (h busHeap) Len() int { return len(h) }
func (h busHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h busHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *busHeap) Push(x any)   { *h = append(*h, x.(busMessage)) }
func (h *busHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (q *busQueue) add(name string, m queue.Message, at time.Time) int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	key := name + "\x00" + m.ID
	if t, ok := q.seen[key]; ok && q.clk.Now().Sub(t) < 10*time.Minute {
		return 0
	}
	q.seen[key] = q.clk.Now()
	q.seq++
	heap.Push(&q.msgs, busMessage{queue: name, m: m, at: at, seq: q.seq})
	return q.seq
}

func (q *busQueue) Send(_ context.Context, name string, m queue.Message) error {
	q.add(name, m, time.Time{})
	return nil
}

func (q *busQueue) Schedule(_ context.Context, name string, m queue.Message, at time.Time) (int64, error) {
	return q.add(name, m, at), nil
}

func (q *busQueue) Cancel(_ context.Context, _ string, seq int64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.cancelled == nil {
		q.cancelled = map[int64]bool{}
	}
	q.cancelled[seq] = true
	return nil
}

// forget drops every message not yet due and every remembered id (benchmarks that
// never deliver them: the broker holds those, not the app).
func (q *busQueue) forget() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.msgs, q.cancelled = nil, nil
	clear(q.seen)
}

// due takes the messages visible now, in the order they were sent.
func (q *busQueue) due() []busMessage {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.clk.Now()
	var out []busMessage
	for len(q.msgs) > 0 && !q.msgs[0].at.After(now) {
		b := heap.Pop(&q.msgs).(busMessage)
		if q.cancelled[b.seq] {
			delete(q.cancelled, b.seq)
			continue
		}
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}

var queueFunctions = map[string]string{"calls": "RouteCall", "outbound-due": "OutboundDue", "outbound-requests": "ScheduleOutbound",
	"presence-refresh": "PresenceRefreshTenant"}

// callsApp is the whole app over HTTP on the embedded store, with the fake calling
// platform (Graph's call API and signed notifications) playing Teams.
type callsApp struct {
	base  string
	store *inmem.Store
	fake  *graph.Fake
	bus   *busQueue
	clk   *clock
}

// newCallsApp serves the app with the simulated tenants, their demo services and
// every agent Available; opts adjusts the fake calling platform.
func newCallsApp(t testing.TB, opts graph.CallingOptions) *callsApp {
	t.Helper()
	return newCallsAppWith(t, opts, nil)
}

// newCallsAppTuned is newCallsApp with the app's dependencies adjusted by tune.
func newCallsAppTuned(t testing.TB, tune func(*deps)) *callsApp {
	t.Helper()
	return newCallsAppWith(t, graph.CallingOptions{}, tune)
}

func newCallsAppWith(t testing.TB, opts graph.CallingOptions, tune func(*deps)) *callsApp {
	t.Helper()
	ctx := context.Background()
	s := inmem.New()
	if err := simulate.Seed(ctx, s, s, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := seedRouting(ctx, s, s); err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)}
	a := &callsApp{store: s, fake: graph.NewFake(), clk: clk, bus: &busQueue{clk: clk, seen: map[string]time.Time{}}}
	t.Cleanup(a.fake.Close)
	for _, tid := range []string{simulate.ContosoID, simulate.FabrikamID} {
		a.setPresence(t, tid, presence.Available)
	}
	var app http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { app.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	a.base = srv.URL
	webhook := srv.URL + "/api/teams/notifications"
	opts.BotAppID, opts.Webhook = testBotAppID, webhook
	a.fake.EnableCalling(opts)
	gopts := a.fake.Options(testBotAppID)
	gopts.MaxRetries, gopts.MaxRetryWait = 1, 10*time.Millisecond // a failed request fails fast
	platform, err := graph.New(gopts)
	if err != nil {
		t.Fatal(err)
	}
	v, err := entra.NewCallingValidator(entra.CallingOptions{MetadataURL: a.fake.CallingMetadataURL(), Audience: testBotAppID, HTTPClient: a.fake.Client()})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(envFrom(map[string]string{"CallingWebhookUrl": webhook}))
	if err != nil {
		t.Fatal(err)
	}
	d := deps{tenants: s, secrets: s, presences: s, parked: s, userStates: s, interact: s, routes: s, sender: a.bus, audit: s,
		calls: s, platform: platform, callAuth: callingAuth{v}, admin: localAdmin(s), reader: simulate.NewReader(nil), now: clk.Now}
	if tune != nil {
		tune(&d)
	}
	app = newApp(cfg, d, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return a
}

func (a *callsApp) setPresence(t testing.TB, tenantID string, av presence.Availability) {
	t.Helper()
	ctx := context.Background()
	agents, _ := a.store.ListAgents(ctx, tenantID)
	var ps []presence.Presence
	for _, ag := range agents {
		ps = append(ps, presence.Presence{AgentID: ag.ID, Availability: av, Activity: string(av), Source: presence.SourceSimulated, ObservedAt: time.Now()})
	}
	if err := a.store.SavePresences(ctx, tenantID, ps); err != nil {
		t.Fatal(err)
	}
}

// settle waits for the fake's notifications, then delivers due Service Bus messages,
// until nothing moves.
func (a *callsApp) settle(t testing.TB) {
	t.Helper()
	for range 50 {
		if err := a.fake.Settle(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		msgs := a.bus.due()
		if len(msgs) == 0 {
			if err := a.fake.Settle(10 * time.Second); err != nil {
				t.Fatal(err)
			}
			if len(a.bus.due()) == 0 {
				return
			}
			continue
		}
		for _, b := range msgs {
			fn := queueFunctions[b.queue]
			status, body := postTB(t, a.base+"/"+fn, sbEnvelope(string(b.m.Body), b.m.ID, 1))
			if status != http.StatusOK {
				t.Fatalf("%s: %d %s", fn, status, body)
			}
		}
	}
	t.Fatal("the app never settled")
}

// advance settles, moves the clock and settles again (scheduled kicks that became
// due run).
func (a *callsApp) advance(t testing.TB, d time.Duration) {
	t.Helper()
	a.settle(t)
	a.clk.Advance(d)
	a.settle(t)
}

// reconcile runs the CallsReconcile timer once.
func (a *callsApp) reconcile(t testing.TB) {
	t.Helper()
	status, body := postTB(t, a.base+"/CallsReconcile", `{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":false}},"Metadata":{"sys":{"MethodName":"CallsReconcile"}}}`)
	if status != http.StatusOK {
		t.Fatalf("CallsReconcile: %d %s", status, body)
	}
	a.settle(t)
}

func (a *callsApp) call(t testing.TB, tenantID, id string) calls.Call {
	t.Helper()
	x, err := a.store.GetCall(context.Background(), tenantID, id)
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	return x
}

func (a *callsApp) task(t testing.TB, tenantID, service, id string) routing.Task {
	t.Helper()
	x, err := a.store.GetTask(context.Background(), tenantID, service, id)
	if err != nil {
		t.Fatalf("task: %v", err)
	}
	return x
}

func (a *callsApp) agent(t testing.TB, tenantID, id string) routing.AgentState {
	t.Helper()
	x, err := a.store.GetAgentState(context.Background(), tenantID, id)
	if err != nil {
		t.Fatalf("agent: %v", err)
	}
	return x
}

// ringingLeg is the single offer leg ringing now in call: its agent and leg call id.
func (a *callsApp) ringingLeg(t testing.TB, tenantID, id string) (agent, leg string) {
	t.Helper()
	x := a.call(t, tenantID, id)
	var live []calls.Leg
	for _, l := range x.Legs {
		if l.State == calls.LegRinging || l.State == calls.LegDialing {
			live = append(live, l)
		}
	}
	if len(live) != 1 {
		t.Fatalf("want one ringing leg, have %+v", x.Legs)
	}
	if got := a.fake.Ringing(calls.Party{Kind: calls.User, ID: live[0].AgentID}); !slices.Contains(got, live[0].CallID) {
		t.Fatalf("the agent's Teams does not ring for leg %s (ringing: %v)", live[0].CallID, got)
	}
	return live[0].AgentID, live[0].CallID
}

// requests summarises the calling requests since the last reset: "op target detail"
// with call ids replaced by names given in ids.
func (a *callsApp) requests(ids map[string]string) []string {
	var out []string
	for _, r := range a.fake.CallRequests() {
		s := r.Op
		if n, ok := ids[r.CallID]; ok {
			s += " " + n
		}
		if r.Target != "" {
			s += " " + r.Target
		}
		if r.Op == "playPrompt" || r.Op == "invite" {
			d := r.Detail
			for id, n := range ids {
				d = strings.ReplaceAll(d, id, n)
			}
			s += " " + d
		}
		out = append(out, s)
	}
	return out
}

func (a *callsApp) get(t testing.TB, path string, v any) int {
	t.Helper()
	res, err := http.Get(a.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if v != nil {
		if err := json.NewDecoder(res.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	return res.StatusCode
}

// steps lists a timeline's steps as "what[ agent][ (detail)]" with agent ids named.
func steps(x calls.Call, names map[string]string) []string {
	var out []string
	for _, s := range x.Steps {
		e := s.What
		if s.Agent != "" {
			e += " " + names[s.Agent]
		}
		if s.Detail != "" {
			e += " (" + s.Detail + ")"
		}
		out = append(out, e)
	}
	return out
}

func equalLines(t testing.TB, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got:\n  %s\nwant:\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var _ = fmt.Sprint
