package outbound_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/inmem"
	"github.com/teamscc/teamscc/shared/outbound"
	"github.com/teamscc/teamscc/shared/queue"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/tenant"
)

const tid = "0d1f6b1e-7c3a-4c59-9a5e-1f2a3b4c5d6e"

// sender keeps scheduled messages; fail makes Schedule fail (a process dying between
// the insert and the schedule looks the same to the store).
type sender struct {
	mu        sync.Mutex
	seq       int64
	scheduled map[int64]queue.Message
	cancelled []int64
	fail      bool
}

func (s *sender) Send(context.Context, string, queue.Message) error { return nil }
func (s *sender) Schedule(_ context.Context, q string, m queue.Message, _ time.Time) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return 0, errors.New("service bus unavailable")
	}
	if q != "outbound-due" {
		return 0, fmt.Errorf("queue %q", q)
	}
	s.seq++
	if s.scheduled == nil {
		s.scheduled = map[int64]queue.Message{}
	}
	s.scheduled[s.seq] = m
	return s.seq, nil
}
func (s *sender) Cancel(_ context.Context, _ string, seq int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cancelled = append(s.cancelled, seq)
	delete(s.scheduled, seq)
	return nil
}

type fixture struct {
	store *inmem.Store
	snd   *sender
	svc   *outbound.Service
	now   time.Time
}

func newFixture(t *testing.T, limit int) *fixture {
	t.Helper()
	ctx := context.Background()
	s := inmem.New()
	te := tenant.New(tid, "Contoso")
	te.Extensions.OutboundCap = limit
	te.Extensions.DirectInviteUPN = true
	if err := s.PutTenant(ctx, te); err != nil {
		t.Fatal(err)
	}
	for _, sv := range []routing.Service{
		{TenantID: tid, ID: "sales", Type: routing.TeamsBased},
		{TenantID: tid, ID: "pstn", Type: routing.TeamsBased, PSTNLicence: true},
		{TenantID: tid, ID: "ivr", Type: routing.None},
	} {
		if err := s.PutService(ctx, sv); err != nil {
			t.Fatal(err)
		}
	}
	f := &fixture{store: s, snd: &sender{}, now: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}
	engine := routing.NewEngine(routing.Options{Store: s, Tenants: s, Presences: s, Now: func() time.Time { return f.now }})
	f.svc = outbound.NewService(outbound.Options{Store: s, Tenants: s, Routes: s, Router: engine, Sender: f.snd,
		Queue: "outbound-due", Now: func() time.Time { return f.now }})
	return f
}

func req(service, id string) outbound.Request {
	return outbound.Request{TenantID: tid, ServiceID: service, TaskID: id, Customer: "jane@contoso.com",
		Due: "2026-11-24T12:00:00Z", Priority: "High", Params: map[string]string{"campaign": "winter"}}
}

func fieldOf(err error) string {
	var fe *fault.FieldError
	if errors.As(err, &fe) {
		return fe.Field
	}
	return ""
}

func TestValidationNamesTheField(t *testing.T) {
	f := newFixture(t, 20)
	ctx := context.Background()
	many := map[string]string{}
	for i := 0; i < 21; i++ {
		many[fmt.Sprint("k", i)] = "v"
	}
	cases := []struct {
		name  string
		edit  func(*outbound.Request)
		field string
	}{
		{"no task id", func(r *outbound.Request) { r.TaskID = "" }, "taskId"},
		{"bad task id", func(r *outbound.Request) { r.TaskID = "a/b" }, "taskId"},
		{"long task id", func(r *outbound.Request) { r.TaskID = strings.Repeat("a", 65) }, "taskId"},
		{"bad number", func(r *outbound.Request) { r.Customer = "+41 44 123" }, "customer"},
		{"neither", func(r *outbound.Request) { r.Customer = "jane" }, "customer"},
		{"number without licence", func(r *outbound.Request) { r.Customer = "+41441234567" }, "customer"},
		{"no due", func(r *outbound.Request) { r.Due = "" }, "due"},
		{"bad due", func(r *outbound.Request) { r.Due = "tomorrow" }, "due"},
		{"beyond the horizon", func(r *outbound.Request) { r.Due = "2027-01-01T00:00:00Z" }, "due"},
		{"priority", func(r *outbound.Request) { r.Priority = "Urgent" }, "priority"},
		{"notes", func(r *outbound.Request) { r.Notes = strings.Repeat("n", 1001) }, "notes"},
		{"params", func(r *outbound.Request) { r.Params = many }, "params"},
		{"service None", func(r *outbound.Request) { r.ServiceID = "ivr" }, "serviceId"},
	}
	for _, c := range cases {
		r := req("sales", "t1")
		c.edit(&r)
		_, err := f.svc.Schedule(ctx, r)
		if got := fieldOf(err); got != c.field {
			t.Errorf("%s: %v; want a field error on %s", c.name, err, c.field)
		}
		if err != nil && strings.Contains(err.Error(), r.Customer) {
			t.Errorf("%s: the error quotes the customer: %v", c.name, err)
		}
	}
	r := req("sales", "t1")
	r.TenantID = "11111111-2222-3333-4444-555555555555"
	if _, err := f.svc.Schedule(ctx, r); !errors.Is(err, fault.ErrNotFound) || !fault.IsPermanent(err) {
		t.Errorf("unknown tenant: %v", err)
	}
	if _, err := f.svc.Schedule(ctx, req("nope", "t1")); !errors.Is(err, fault.ErrNotFound) || !fault.IsPermanent(err) {
		t.Errorf("unknown service: %v", err)
	}
	r = req("pstn", "t1")
	r.Customer = "+41441234567"
	if res, err := f.svc.Schedule(ctx, r); err != nil || res.Task.CustomerKind != outbound.PSTN {
		t.Errorf("a number on a service with a licence: %+v %v", res, err)
	}
	if n, _ := f.store.OutboundCounter(ctx, tid, "sales"); n != 0 {
		t.Errorf("refused requests took %d slots", n)
	}
}

func TestIdempotencyCapAndCancel(t *testing.T) {
	f := newFixture(t, 2)
	ctx := context.Background()
	res, err := f.svc.Schedule(ctx, req("sales", "t1"))
	if err != nil || !res.Created || res.Task.Sequence != 1 || !res.Task.DirectInviteUPN || res.Task.DirectInvitePSTN {
		t.Fatalf("first = %+v %v", res, err)
	}
	again, err := f.svc.Schedule(ctx, req("sales", "t1"))
	if err != nil || again.Created || again.Task.Sequence != 1 {
		t.Fatalf("replay = %+v %v", again, err)
	}
	a, _ := json.Marshal(res.Task)
	b, _ := json.Marshal(again.Task)
	if string(a) != string(b) {
		t.Errorf("replay body differs:\n%s\n%s", a, b)
	}
	if len(f.snd.scheduled) != 1 {
		t.Errorf("%d messages scheduled; a replay schedules none", len(f.snd.scheduled))
	}
	diff := req("sales", "t1")
	diff.Notes = "other"
	if _, err := f.svc.Schedule(ctx, diff); !errors.Is(err, outbound.ErrTaskIDConflict) || !errors.Is(err, fault.ErrConflict) {
		t.Fatalf("different content = %v; want the task id conflict", err)
	}
	if _, err := f.svc.Schedule(ctx, req("sales", "t2")); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.Schedule(ctx, req("sales", "t3"))
	var le *outbound.LimitError
	if !errors.As(err, &le) || le.Limit != 2 || le.Current != 2 || !strings.HasPrefix(err.Error(), "OutboundLimitReached") {
		t.Fatalf("over the cap = %v", err)
	}
	if _, err := f.store.GetOutbound(ctx, tid, "sales", "t3"); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("a refused task was stored: %v", err)
	}
	c, err := f.svc.Cancel(ctx, tid, "sales", "t1")
	if err != nil || c.State != outbound.Cancelled || len(f.snd.cancelled) != 1 || f.snd.cancelled[0] != 1 {
		t.Fatalf("cancel = %+v %v %v", c, err, f.snd.cancelled)
	}
	if c, err := f.svc.Cancel(ctx, tid, "sales", "t1"); err != nil || c.State != outbound.Cancelled {
		t.Fatalf("second cancel = %+v %v", c, err)
	}
	if _, err := f.svc.Schedule(ctx, req("sales", "t3")); err != nil {
		t.Fatalf("the freed slot: %v", err)
	}
	// A fired message of a cancelled task does nothing.
	if err := f.svc.Due(ctx, outbound.DueMessage{TenantID: tid, ServiceID: "sales", TaskID: "t1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.GetTask(ctx, tid, "sales", outbound.RoutingTaskID("t1")); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("a cancelled task was routed: %v", err)
	}
}

// A process killed between the insert and the schedule (here: Schedule failing) leaves
// a task holding a slot without a message; the redelivery or the reconciler schedules
// it, once.
func TestKilledBetweenInsertAndScheduleLeaksNoSlot(t *testing.T) {
	f := newFixture(t, 20)
	ctx := context.Background()
	f.snd.fail = true
	if _, err := f.svc.Schedule(ctx, req("sales", "t1")); err == nil || fault.IsPermanent(err) {
		t.Fatalf("schedule failure = %v; want a transient error", err)
	}
	if _, err := f.svc.Schedule(ctx, req("sales", "t2")); err == nil {
		t.Fatal("want an error")
	}
	f.snd.fail = false
	// The redelivery of t1 finishes the job without a second slot.
	if res, err := f.svc.Schedule(ctx, req("sales", "t1")); err != nil || res.Created || res.Task.Sequence == 0 {
		t.Fatalf("redelivery = %+v %v", res, err)
	}
	// t2 is never redelivered: the reconciler schedules it once it is older than the grace.
	if r, err := f.svc.Reconcile(ctx); err != nil || r.Scheduled != 0 {
		t.Fatalf("reconcile within the grace = %+v %v", r, err)
	}
	f.now = f.now.Add(2 * time.Minute)
	r, err := f.svc.Reconcile(ctx)
	if err != nil || r.Scheduled != 1 || r.Repaired != 0 {
		t.Fatalf("reconcile = %+v %v", r, err)
	}
	t2, _ := f.store.GetOutbound(ctx, tid, "sales", "t2")
	if t2.Sequence == 0 || len(f.snd.scheduled) != 2 {
		t.Fatalf("t2 = %+v, %d scheduled", t2, len(f.snd.scheduled))
	}
	if n, _ := f.store.OutboundCounter(ctx, tid, "sales"); n != 2 {
		t.Fatalf("counter %d; want 2", n)
	}
	// A counter left wrong is repaired to the live count.
	_ = f.store.SetOutboundCounter(ctx, tid, "sales", 9)
	if r, err := f.svc.Reconcile(ctx); err != nil || r.Repaired != 1 {
		t.Fatalf("reconcile = %+v %v", r, err)
	}
	if n, _ := f.store.OutboundCounter(ctx, tid, "sales"); n != 2 {
		t.Fatalf("counter %d after repair; want 2", n)
	}
}

func TestDueTaskIsRoutedAndItsOutcomeFreesTheSlot(t *testing.T) {
	f := newFixture(t, 20)
	ctx := context.Background()
	if _, err := f.svc.Schedule(ctx, req("sales", "t1")); err != nil {
		t.Fatal(err)
	}
	var m outbound.DueMessage
	if err := json.Unmarshal(f.snd.scheduled[1].Body, &m); err != nil || f.snd.scheduled[1].ID != tid+"|sales|t1" {
		t.Fatalf("message %+v %v", f.snd.scheduled[1], err)
	}
	for i := 0; i < 2; i++ { // a redelivery changes nothing
		if err := f.svc.Due(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	rt, err := f.store.GetTask(ctx, tid, "sales", "ob-t1")
	if err != nil || rt.Outbound == nil || rt.Outbound.Customer != "jane@contoso.com" || rt.Priority != routing.High || !rt.Outbound.DirectInviteUPN || rt.State != routing.Waiting {
		t.Fatalf("routing task = %+v %v", rt, err)
	}
	ot, _ := f.store.GetOutbound(ctx, tid, "sales", "t1")
	if ot.State != outbound.Routed || ot.RoutingTaskID != "ob-t1" {
		t.Fatalf("outbound task = %+v", ot)
	}
	if _, err := f.svc.Cancel(ctx, tid, "sales", "t1"); fieldOf(err) != "taskId" {
		t.Fatalf("cancel of a routed task = %v", err)
	}
	if r, _ := f.svc.Reconcile(ctx); r.Finished != 0 {
		t.Fatalf("an open routing task was finished: %+v", r)
	}
	if _, err := f.store.UpdateTask(ctx, tid, "sales", "ob-t1", func(x *routing.Task) error {
		x.State, x.Outcome = routing.Done, routing.Completed
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if r, err := f.svc.Reconcile(ctx); err != nil || r.Finished != 1 {
		t.Fatalf("reconcile = %+v %v", r, err)
	}
	ot, _ = f.store.GetOutbound(ctx, tid, "sales", "t1")
	if n, _ := f.store.OutboundCounter(ctx, tid, "sales"); ot.State != outbound.Completed || n != 0 {
		t.Fatalf("task %s, counter %d", ot.State, n)
	}
}

func TestConcurrentRequestsNeverExceedTheCap(t *testing.T) {
	f := newFixture(t, 20)
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, refused := 0, 0
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.svc.Schedule(ctx, req("sales", fmt.Sprint("t", i)))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, outbound.ErrLimitReached):
				refused++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok != 20 || refused != 180 || len(f.snd.scheduled) != 20 {
		t.Fatalf("%d accepted, %d refused, %d scheduled", ok, refused, len(f.snd.scheduled))
	}
}

// A message that never arrived (expired, dead-lettered) is scheduled again once
// overdue; its task is routed once however many messages arrive.
func TestOverdueTaskIsScheduledAgain(t *testing.T) {
	f := newFixture(t, 20)
	ctx := context.Background()
	r := req("sales", "t1")
	r.Due = "2026-11-24T09:00:00Z" // past: as soon as possible
	if res, err := f.svc.Schedule(ctx, r); err != nil || !res.Task.ScheduledAt.Equal(f.now) {
		t.Fatalf("%+v %v", res, err)
	}
	f.now = f.now.Add(10 * time.Minute)
	if res, _ := f.svc.Reconcile(ctx); res.Scheduled != 0 {
		t.Fatalf("rescheduled too early: %+v", res)
	}
	f.now = f.now.Add(10 * time.Minute)
	if res, _ := f.svc.Reconcile(ctx); res.Scheduled != 1 || len(f.snd.scheduled) != 2 {
		t.Fatalf("not rescheduled: %+v", res)
	}
	for _, m := range f.snd.scheduled {
		var d outbound.DueMessage
		_ = json.Unmarshal(m.Body, &d)
		if err := f.svc.Due(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := f.store.OutboundCounter(ctx, tid, "sales"); n != 1 {
		t.Fatalf("counter %d", n)
	}
}
