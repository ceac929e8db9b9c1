package routing_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/inmem"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/queue"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/storetest"
	"github.com/teamscc/teamscc/shared/tenant"
)

const tid = "0d1f6b1e-7c3a-4c59-9a5e-1f2a3b4c5d6e"

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// sender records kicks; it implements queue.Sender.
type sender struct {
	mu   sync.Mutex
	sent []sent
}

type sent struct {
	m  queue.Message
	at time.Time
}

func (s *sender) Send(_ context.Context, _ string, m queue.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, sent{m: m})
	return nil
}

func (s *sender) Schedule(_ context.Context, _ string, m queue.Message, at time.Time) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, sent{m: m, at: at})
	return int64(len(s.sent)), nil
}

func (s *sender) Cancel(context.Context, string, int64) error { return nil }

func (s *sender) reasons() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for _, x := range s.sent {
		var k routing.Kick
		_ = json.Unmarshal(x.m.Body, &k)
		out[k.Reason]++
	}
	return out
}

type fixture struct {
	store  *inmem.Store
	engine *routing.Engine
	clock  *clock
	sender *sender
}

func newFixture(t testing.TB, agents int, services ...routing.Service) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{store: inmem.New(), clock: &clock{t: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}, sender: &sender{}}
	if err := f.store.PutTenant(ctx, tenant.Tenant{ID: tid, Name: "Contoso"}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range services {
		s.TenantID = tid
		if err := f.store.PutService(ctx, s); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, s.ID)
	}
	var ps []presence.Presence
	for i := 0; i < agents; i++ {
		id := fmt.Sprintf("agent%02d", i)
		if _, err := f.store.UpdateAgentState(ctx, tid, id, func(a *routing.AgentState) error {
			a.Services = ids
			a.Duty.Services = ids
			a.LastCallEnded = f.clock.now().Add(-time.Duration(agents-i) * time.Minute) // agent00 idle longest
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		ps = append(ps, presence.Presence{AgentID: id, Availability: presence.Available, Activity: "Available", Source: presence.SourceExtended})
	}
	if err := f.store.SavePresences(ctx, tid, ps); err != nil {
		t.Fatal(err)
	}
	f.engine = routing.NewEngine(routing.Options{Store: f.store, Tenants: f.store, Presences: f.store, Sender: f.sender, Queue: "calls",
		Now: f.clock.now, TenantCacheTTL: -1})
	return f
}

func (f *fixture) call(t *testing.T, service, callID string) routing.Task {
	t.Helper()
	task, err := f.engine.IncomingCall(context.Background(), routing.IncomingCall{TenantID: tid, ServiceID: service, CallID: callID})
	if err != nil {
		t.Fatalf("incoming call: %v", err)
	}
	return task
}

func (f *fixture) kick(t *testing.T, service string) routing.KickResult {
	t.Helper()
	r, err := f.engine.Kick(context.Background(), tid, service, "test")
	if err != nil {
		t.Fatalf("kick %s: %v", service, err)
	}
	return r
}

func (f *fixture) task(t *testing.T, service, id string) routing.Task {
	t.Helper()
	task, err := f.store.GetTask(context.Background(), tid, service, id)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

func (f *fixture) agent(t *testing.T, id string) routing.AgentState {
	t.Helper()
	a, err := f.store.GetAgentState(context.Background(), tid, id)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (f *fixture) event(t *testing.T, service, task, agent string, c routing.Change) (routing.Task, error) {
	t.Helper()
	return f.engine.CallStateChanged(context.Background(), routing.CallEvent{TenantID: tid, ServiceID: service, TaskID: task, AgentID: agent, Change: c})
}

func persistentRONA() routing.Service {
	return routing.Service{ID: "sales", Type: routing.TeamsBased, Distribution: routing.Distribution{
		RingTimeoutSeconds: 20, RONA: routing.RONASettings{Enabled: true, Persistent: true, ResetSeconds: 600},
		ACW: routing.ACWSettings{AllowEarlyEnd: true, MaxExtensionSeconds: 60}}}
}

// The "done means" in one story: routed to an eligible agent, no answer →
// RONA and re-routing, answer, end → ACW blocking in every service, ACW ends.
func TestCallIsRoutedRONAReroutesAndACWBlocksEverywhere(t *testing.T) {
	support := routing.Service{ID: "support", Type: routing.TeamsBased}
	f := newFixture(t, 3, persistentRONA(), support)
	task := f.call(t, "sales", "call-1")
	if task.State != routing.Waiting || f.sender.reasons()[routing.KickNewTask] != 1 {
		t.Fatalf("new task %+v, kicks %v", task, f.sender.reasons())
	}
	if r := f.kick(t, "sales"); r.Offered != 1 {
		t.Fatalf("kick: %+v", r)
	}
	task = f.task(t, "sales", "call-1")
	if task.State != routing.Offered || fmt.Sprint(task.OfferedTo) != "[agent00]" || task.Explain == nil || task.Explain.Chosen[0] != "agent00" {
		t.Fatalf("offered %+v", task)
	}
	if f.sender.reasons()[routing.KickRingExpiry] != 1 {
		t.Fatalf("no ring-expiry kick scheduled: %v", f.sender.reasons())
	}
	// agent00 is held for every service.
	f.call(t, "support", "call-2")
	f.kick(t, "support")
	if got := f.task(t, "support", "call-2"); fmt.Sprint(got.OfferedTo) != "[agent01]" {
		t.Fatalf("support offered %v; agent00 rings for sales", got.OfferedTo)
	}

	// No answer: at ring expiry the kick turns it into RONA and re-routes.
	f.clock.add(21 * time.Second)
	if r := f.kick(t, "sales"); r.NoAnswers != 1 || r.Offered != 1 {
		t.Fatalf("expiry kick: %+v", r)
	}
	a0 := f.agent(t, "agent00")
	if a0.Hold != nil || a0.RONAReason != routing.ResultNoAnswer || !a0.RONAUntil.Equal(f.clock.now().Add(10*time.Minute)) || a0.NoAnswers != 1 {
		t.Fatalf("agent00 after no answer: %+v", a0)
	}
	task = f.task(t, "sales", "call-1")
	if fmt.Sprint(task.OfferedTo) != "[agent02]" || task.Attempts != 2 || task.History[0].Result != routing.ResultNoAnswer {
		t.Fatalf("re-routed %+v", task)
	}
	if task.Explain.Counts[routing.ReasonRONA] != 1 || task.Explain.Counts[routing.ReasonRinging] != 1 {
		t.Fatalf("explain must say agent00 is in RONA and agent01 rings: %+v", task.Explain)
	}

	// Answer, then end: ACW blocks agent02 in sales and support.
	if _, err := f.event(t, "sales", "call-1", "agent02", routing.Answered); err != nil {
		t.Fatal(err)
	}
	task = f.task(t, "sales", "call-1")
	if task.State != routing.Connected || task.FirstAnsweredService != "sales" || f.agent(t, "agent02").Hold.Phase != routing.HoldConnected {
		t.Fatalf("answered %+v", task)
	}
	if _, err := f.event(t, "sales", "call-1", "agent02", routing.Ended); err != nil {
		t.Fatal(err)
	}
	a2 := f.agent(t, "agent02")
	if a2.Hold != nil || !a2.ACWUntil.Equal(f.clock.now().Add(20*time.Second)) || f.task(t, "sales", "call-1").Outcome != routing.Completed {
		t.Fatalf("after end: %+v", a2)
	}
	f.call(t, "support", "call-3")
	f.kick(t, "support")
	ex := f.task(t, "support", "call-3").Explain
	if ex == nil || len(ex.Chosen) != 0 || ex.Counts[routing.ReasonACW] != 1 {
		t.Fatalf("agent02 in ACW must be skipped in support too: %+v", ex)
	}
	if f.sender.reasons()[routing.KickACWEnd] != 2 {
		t.Fatalf("ACW end kicks for both services: %v", f.sender.reasons())
	}
	// Early end is allowed by sales; extension up to 60 s.
	if _, err := f.engine.ExtendACW(context.Background(), tid, "agent02", 61*time.Second); !isField(err) {
		t.Fatalf("extension beyond the maximum: %v", err)
	}
	if _, err := f.engine.ExtendACW(context.Background(), tid, "agent02", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := f.engine.EndACW(context.Background(), tid, "agent02"); err != nil {
		t.Fatal(err)
	}
	if r := f.kick(t, "support"); r.Offered != 1 || fmt.Sprint(f.task(t, "support", "call-3").OfferedTo) != "[agent02]" {
		t.Fatalf("after ACW agent02 takes support's call: %+v", r)
	}
}

func isField(err error) bool {
	var fe *fault.FieldError
	return errors.As(err, &fe)
}

func TestACWReleasesByItselfAndDeclineIsRecordedApart(t *testing.T) {
	svc := persistentRONA()
	svc.Distribution.ACW.AllowEarlyEnd = false
	f := newFixture(t, 2, svc)
	f.call(t, "sales", "c1")
	f.kick(t, "sales")
	f.event(t, "sales", "c1", "agent00", routing.Answered)
	f.event(t, "sales", "c1", "agent00", routing.Ended)
	if _, err := f.engine.EndACW(context.Background(), tid, "agent00"); !isField(err) {
		t.Fatalf("early end not allowed: %v", err)
	}
	f.clock.add(20 * time.Second) // ACW over, read lazily
	f.call(t, "sales", "c2")
	f.kick(t, "sales")
	if got := f.task(t, "sales", "c2"); fmt.Sprint(got.OfferedTo) != "[agent01]" {
		t.Fatalf("longest idle first: %v", got.OfferedTo)
	}
	if _, err := f.event(t, "sales", "c2", "agent01", routing.Declined); err != nil {
		t.Fatal(err)
	}
	a1 := f.agent(t, "agent01")
	if a1.Declines != 1 || a1.NoAnswers != 0 || a1.RONAReason != routing.ResultDeclined {
		t.Fatalf("decline recorded as %+v", a1)
	}
	task := f.task(t, "sales", "c2")
	if task.State != routing.Waiting || task.History[len(task.History)-1].Result != routing.ResultDeclined {
		t.Fatalf("declined task: %+v", task)
	}
	f.kick(t, "sales")
	if got := f.task(t, "sales", "c2"); fmt.Sprint(got.OfferedTo) != "[agent00]" {
		t.Fatalf("after decline: %v", got.OfferedTo)
	}
	// Going Offline resets RONA (SPEC §5): as the refresher stores it, Offline and
	// then Available again carry when the agent went Offline; no state is written.
	f.clock.add(time.Second)
	seen := func(p presence.Presence) {
		t.Helper()
		if err := f.store.SavePresences(context.Background(), tid, []presence.Presence{p}); err != nil {
			t.Fatal(err)
		}
		if err := f.engine.PresenceChanged(context.Background(), tid, []presence.Presence{p}); err != nil {
			t.Fatal(err)
		}
	}
	offAt := f.clock.now()
	seen(presence.Presence{AgentID: "agent01", Availability: presence.Offline, Source: presence.SourceExtended, ObservedAt: offAt, OfflineAt: offAt})
	f.clock.add(time.Second)
	before := f.sender.reasons()[routing.KickPresence]
	seen(presence.Presence{AgentID: "agent01", Availability: presence.Available, Source: presence.SourceExtended, ObservedAt: f.clock.now(), OfflineAt: offAt})
	if f.sender.reasons()[routing.KickPresence] != before+1 {
		t.Fatal("an agent becoming Available must kick its services")
	}
	if a := f.agent(t, "agent01"); !a.RONAUntil.After(f.clock.now()) {
		t.Fatalf("the stored RONA should still run (it is over by the presence rule): %+v", a)
	}
	f.call(t, "sales", "c3") // agent00 rings with c2: only agent01 can take it
	f.kick(t, "sales")
	if got := f.task(t, "sales", "c3"); fmt.Sprint(got.OfferedTo) != "[agent01]" {
		t.Fatalf("RONA not ended by going Offline: c3 offered to %v", got.OfferedTo)
	}
}

// A handler crash between reservation and offer: the reservation lapses and the
// agent returns.
func TestCrashBetweenReservationAndOfferReleasesTheAgent(t *testing.T) {
	f := newFixture(t, 1, persistentRONA())
	f.call(t, "sales", "c1")
	crashing := &crashStore{Store: f.store}
	e := routing.NewEngine(routing.Options{Store: crashing, Tenants: f.store, Presences: f.store, Now: f.clock.now, TenantCacheTTL: -1})
	if _, err := e.Kick(context.Background(), tid, "sales", "test"); !errors.Is(err, errCrash) {
		t.Fatalf("kick: %v; want the crash", err)
	}
	if a := f.agent(t, "agent00"); a.Hold == nil {
		t.Fatal("the reservation must have been written before the crash")
	}
	if r := f.kick(t, "sales"); r.Offered != 0 { // the redelivered kick: still reserved
		t.Fatalf("offered while the reservation holds: %+v", r)
	}
	if ex := f.task(t, "sales", "c1").Explain; ex.Counts[routing.ReasonRinging] != 1 {
		t.Fatalf("explain: %+v", ex)
	}
	f.clock.add(20*time.Second + routing.ReservationGrace)
	if r := f.kick(t, "sales"); r.Offered != 1 {
		t.Fatalf("after the reservation lapsed: %+v", r)
	}
}

var errCrash = errors.New("process died")

// crashStore dies (every call fails) after the first agent reservation.
type crashStore struct {
	routing.Store
	mu   sync.Mutex
	dead bool
}

func (c *crashStore) ReplaceAgentState(ctx context.Context, a routing.AgentState) (routing.AgentState, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return a, errCrash
	}
	c.dead = true
	return c.Store.ReplaceAgentState(ctx, a)
}

func (c *crashStore) ReplaceTask(ctx context.Context, t routing.Task) (routing.Task, error) {
	return t, errCrash
}

func (c *crashStore) UpdateAgentState(ctx context.Context, tenantID, agentID string, fn func(*routing.AgentState) error) (routing.AgentState, error) {
	return routing.AgentState{}, errCrash
}

// Once a kick has lost a task to another matcher it offers the next task before it
// reserves the agents (claim first). A crash between that claim and the reservation:
// the claim's ring expiry was scheduled before it, and ends it like an unanswered
// offer, but the agent, never reserved nor rung, gets no RONA, and the task is
// offered again.
func TestCrashBetweenClaimAndReservation(t *testing.T) {
	f := newFixture(t, 1, persistentRONA())
	f.call(t, "sales", "c1")
	f.clock.add(time.Second)
	f.call(t, "sales", "c2")
	store := &takenThenCrashStore{Store: f.store}
	e := routing.NewEngine(routing.Options{Store: store, Tenants: f.store, Presences: f.store, Sender: f.sender, Queue: "calls",
		Now: f.clock.now, TenantCacheTTL: -1})
	if _, err := e.Kick(context.Background(), tid, "sales", "test"); !errors.Is(err, errCrash) {
		t.Fatalf("kick: %v; want the crash", err)
	}
	if task := f.task(t, "sales", "c2"); task.State != routing.Offered || fmt.Sprint(task.OfferedTo) != "[agent00]" {
		t.Fatalf("c2's claim must have been written before the crash: %+v", task)
	}
	if a := f.agent(t, "agent00"); a.Hold != nil {
		t.Fatalf("the crash came before the reservation (c1's was released when c1 was taken): %+v", a.Hold)
	}
	if f.sender.reasons()[routing.KickRingExpiry] != 2 {
		t.Fatalf("ring expiries scheduled: %v; want c1's and the claim's, before each offer write", f.sender.reasons())
	}
	f.clock.add(20 * time.Second)
	if r := f.kick(t, "sales"); r.NoAnswers != 1 || r.Offered != 1 {
		t.Fatalf("after the claim's expiry: %+v", r)
	}
	if a := f.agent(t, "agent00"); !a.RONAUntil.IsZero() || a.NoAnswers != 0 || a.Hold == nil {
		t.Fatalf("the agent, never rung, was held to account, or not offered again: %+v", a)
	}
}

// takenThenCrashStore: the first offer write loses (another matcher "took" the
// task), the second goes through (a claim), then the process dies.
type takenThenCrashStore struct {
	routing.Store
	mu     sync.Mutex
	writes int
}

func (c *takenThenCrashStore) ReplaceTask(ctx context.Context, t routing.Task) (routing.Task, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	switch c.writes {
	case 1:
		return t, fault.ErrPrecondition
	case 2:
		return c.Store.ReplaceTask(ctx, t)
	}
	return t, errCrash
}

func (c *takenThenCrashStore) ReplaceAgentState(ctx context.Context, a routing.AgentState) (routing.AgentState, error) {
	c.mu.Lock()
	dead := c.writes >= 2
	c.mu.Unlock()
	if dead {
		return a, errCrash
	}
	return c.Store.ReplaceAgentState(ctx, a)
}

func TestReplaysChangeNothing(t *testing.T) {
	f := newFixture(t, 2, persistentRONA())
	first := f.call(t, "sales", "c1")
	again := f.call(t, "sales", "c1")
	if again.ID != first.ID || again.ETag != first.ETag {
		t.Fatalf("replayed incoming call: %+v vs %+v", again, first)
	}
	f.kick(t, "sales")
	snap := snapshot(t, f)
	if r := f.kick(t, "sales"); r.Offered != 0 || snapshot(t, f) != snap {
		t.Fatalf("a second delivery of the kick changed state: %+v", r)
	}
	f.event(t, "sales", "c1", "agent00", routing.Answered)
	snap = snapshot(t, f)
	f.event(t, "sales", "c1", "agent00", routing.Answered)
	f.event(t, "sales", "c1", "agent00", routing.Answered)
	if snapshot(t, f) != snap {
		t.Fatal("a replayed answer changed state")
	}
	f.event(t, "sales", "c1", "agent00", routing.Ended)
	snap = snapshot(t, f)
	f.clock.add(time.Second)
	f.event(t, "sales", "c1", "agent00", routing.Ended)
	if snapshot(t, f) != snap {
		t.Fatal("a replayed end changed state (a second ACW?)")
	}
	if _, err := f.event(t, "sales", "c1", "agent01", routing.Answered); !errors.Is(err, fault.ErrConflict) {
		t.Fatalf("answer by an agent it never rang at: %v", err)
	}
}

func snapshot(t *testing.T, f *fixture) string {
	ctx := context.Background()
	agents, _ := f.store.ListAgentStates(ctx, tid)
	_, tasks, _ := f.store.LoadQueue(ctx, tid, "sales")
	done, _ := f.store.GetTask(ctx, tid, "sales", "c1")
	b, _ := json.Marshal([]any{agents, tasks, done, done.ETag})
	return string(b)
}

func TestPSTNTransferUsesTheFirstAnsweringServicesLicence(t *testing.T) {
	licensed := routing.Service{ID: "sales", Type: routing.TeamsBased, PSTNLicence: true}
	unlicensed := routing.Service{ID: "support", Type: routing.TeamsBased}
	f := newFixture(t, 2, licensed, unlicensed)
	ctx := context.Background()

	// Answered first in support (no licence), transferred to sales (licence): fails.
	f.call(t, "support", "c1")
	f.kick(t, "support")
	f.event(t, "support", "c1", "agent00", routing.Answered)
	moved, err := f.engine.TransferToService(ctx, tid, "support", "c1", "sales")
	if err != nil || moved.FirstAnsweredService != "support" {
		t.Fatalf("internal transfer: %+v %v", moved, err)
	}
	f.kick(t, "sales")
	f.event(t, "sales", "c1", "agent01", routing.Answered)
	got, err := f.engine.TransferToPSTN(ctx, tid, "sales", "c1")
	if err != nil || got.Outcome != routing.TransferFailed || got.FirstAnsweredService != "support" {
		t.Fatalf("PSTN transfer of a call first answered without licence: %+v %v", got, err)
	}
	// Answered first in sales: the transfer uses sales' licence.
	f.clock.add(time.Minute)
	f.call(t, "sales", "c2")
	f.kick(t, "sales")
	task := f.task(t, "sales", "c2")
	f.event(t, "sales", "c2", task.OfferedTo[0], routing.Answered)
	got, err = f.engine.TransferToPSTN(ctx, tid, "sales", "c2")
	if err != nil || got.Outcome != routing.TransferredOut {
		t.Fatalf("licensed transfer: %+v %v", got, err)
	}
}

func TestQueueTimeoutMaxLengthAndPriorities(t *testing.T) {
	svc := routing.Service{ID: "sales", Type: routing.TeamsBased, Distribution: routing.Distribution{QueueTimeoutSecs: 60, MaxQueueLength: 2}}
	f := newFixture(t, 0, svc) // no agents: everything waits
	f.call(t, "sales", "c1")
	f.call(t, "sales", "c2")
	if full := f.call(t, "sales", "c3"); full.State != routing.Done || full.Outcome != routing.QueueFull {
		t.Fatalf("third call over max length 2: %+v", full)
	}
	if f.sender.reasons()[routing.KickQueueTime] != 2 {
		t.Fatalf("queue timeout kicks: %v", f.sender.reasons())
	}
	f.clock.add(60 * time.Second)
	if r := f.kick(t, "sales"); r.TimedOut != 2 {
		t.Fatalf("timeout kick: %+v", r)
	}
	if got := f.task(t, "sales", "c1"); got.Outcome != routing.QueueTimeout {
		t.Fatalf("timed out: %+v", got)
	}

	// Priorities: one agent, three waiting calls; strict goes first, then high, then oldest.
	g := newFixture(t, 1, routing.Service{ID: "sales", Type: routing.TeamsBased})
	ctx := context.Background()
	for i, p := range []routing.Priority{routing.Normal, routing.High, routing.Strict} {
		g.clock.add(time.Second)
		if _, err := g.engine.IncomingCall(ctx, routing.IncomingCall{TenantID: tid, ServiceID: "sales", CallID: fmt.Sprintf("p%d", i), Priority: p}); err != nil {
			t.Fatal(err)
		}
	}
	g.kick(t, "sales")
	if got := g.task(t, "sales", "p2"); got.State != routing.Offered {
		t.Fatalf("strict task not first: %+v", got)
	}
}

func TestUnknownServiceOrTenantIsPermanent(t *testing.T) {
	f := newFixture(t, 1, persistentRONA())
	if _, err := f.engine.Kick(context.Background(), tid, "nope", ""); !fault.IsPermanent(err) || !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("unknown service: %v", err)
	}
	if _, err := f.engine.Kick(context.Background(), "9e8d7c6b-5a49-4837-8261-7f6e5d4c3b2a", "sales", ""); !fault.IsPermanent(err) {
		t.Fatalf("unknown tenant: %v", err)
	}
	svc := persistentRONA()
	svc.TenantID, svc.PendingDeletion = tid, true
	f.call(t, "sales", "c1")
	_ = f.store.PutService(context.Background(), svc)
	if r := f.kick(t, "sales"); r.Offered != 0 || r.Skipped == "" {
		t.Fatalf("pending deletion routed: %+v", r)
	}
}

// 50 concurrent kicks of three services sharing ten agents (no sessions: the worst
// case): no agent is offered two tasks, no task is offered twice, nothing is lost.
func TestConcurrentKicksNeverDoubleBook(t *testing.T) {
	storetest.RunKickRace(t, inmem.New(), 50, 30)
}

// Presence that no credential has read within the bound is stale: nobody is offered a
// task on it (an agent who went home keeps no calls), unless the service routes on
// stale presence, which uses the last availability by the basic rules.
func TestStalePresenceIsUnknownUnlessTheServiceAllowsIt(t *testing.T) {
	f := newFixture(t, 2, routing.Service{ID: "sales", Type: routing.TeamsBased})
	ctx := context.Background()
	readAt := f.clock.now()
	if _, err := f.store.UpdateHealth(ctx, tid, func(h *presence.Health) error {
		h.Active, h.LastReadAt, h.LastPollAt = presence.CredBasic, readAt, readAt
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	f.call(t, "sales", "c1")
	if r := f.kick(t, "sales"); r.Offered != 1 {
		t.Fatalf("presence read just now is good: %+v", r)
	}
	f.clock.add(presence.DefaultMaxAge + time.Second)
	f.call(t, "sales", "c2")
	if r := f.kick(t, "sales"); r.Offered != 0 {
		t.Fatalf("stale presence routed: %+v", r)
	}
	if ex := f.task(t, "sales", "c2").Explain; ex == nil || ex.Counts[routing.ReasonPresenceStale] != 2 {
		t.Fatalf("explain: %+v", ex)
	}
	if _, err := f.store.UpdateService(ctx, tid, "sales", func(s *routing.Service) error {
		s.Distribution.RouteOnStalePresence = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	f.kick(t, "sales")
	if got := f.task(t, "sales", "c2"); got.State != routing.Offered {
		t.Fatalf("a service that routes on stale presence: c2 %s", got.State)
	}
}
