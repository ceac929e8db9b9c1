package routing_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/routing"
)

// callControl records what routing asks of the call controller and answers Ring as told.
type callControl struct {
	mu      sync.Mutex
	log     []string
	ringErr error
	failed  func(agents []string) []string
}

func (c *callControl) Ring(_ context.Context, t routing.Task, _ routing.Service, agents []string) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.log = append(c.log, fmt.Sprintf("ring %s %v", t.ID, agents))
	if c.ringErr != nil {
		return nil, c.ringErr
	}
	if c.failed != nil {
		return c.failed(agents), nil
	}
	return nil, nil
}

func (c *callControl) StopRinging(_ context.Context, t routing.Task, agents []string, why string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.log = append(c.log, fmt.Sprintf("stop %s %v %s", t.ID, agents, why))
}

func (c *callControl) Exit(_ context.Context, t routing.Task, _ routing.Service) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.log = append(c.log, fmt.Sprintf("exit %s %s", t.ID, t.Outcome))
}

func (c *callControl) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.log
	c.log = nil
	return out
}

func withCalls(f *fixture) *callControl {
	c := &callControl{}
	f.engine.SetCalls(c)
	return c
}

func TestTheCallControllerIsToldToRingStopAndExit(t *testing.T) {
	ctx := context.Background()
	svc := routing.Service{ID: "s", Type: routing.SkillBased, Distribution: routing.Distribution{RingTimeoutSeconds: 20, QueueTimeoutSecs: 300,
		RONA: routing.RONASettings{Enabled: true}}}
	f := newFixture(t, 2, svc)
	c := withCalls(f)
	f.call(t, "s", "c1")
	f.kick(t, "s")
	if got := c.take(); !slices.Equal(got, []string{"ring c1 [agent00]"}) {
		t.Fatalf("after the kick: %v", got)
	}
	f.clock.add(21 * time.Second)
	f.kick(t, "s")
	if got := c.take(); !slices.Equal(got, []string{"stop c1 [agent00] noAnswer", "ring c1 [agent01]"}) {
		t.Fatalf("after the ring timeout: %v", got)
	}
	// The caller hangs up while agent01 rings: agent01's ringing stops.
	if _, err := f.engine.CallStateChanged(ctx, routing.CallEvent{TenantID: tid, ServiceID: "s", TaskID: "c1", Change: routing.Ended}); err != nil {
		t.Fatal(err)
	}
	if got := c.take(); !slices.Equal(got, []string{"stop c1 [agent01] callerGone"}) {
		t.Fatalf("after the caller left: %v", got)
	}
	// A task nobody takes leaves after the queue timeout through the exit.
	for _, id := range []string{"agent00", "agent01"} {
		if _, err := f.engine.ResetRONA(ctx, tid, id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.store.UpdateService(ctx, tid, "s", func(s *routing.Service) error {
		s.Distribution.Skills = []routing.SkillRequirement{{Skill: "klingon", MinLevel: 1}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	f.clock.add(time.Hour)
	f.call(t, "s", "c2")
	f.clock.add(301 * time.Second)
	f.kick(t, "s")
	if got := c.take(); !slices.Contains(got, "exit c2 QueueTimeout") {
		t.Fatalf("after the queue timeout: %v", got)
	}
}

func TestAnOfferThatCannotRingIsTakenBackWithoutRONA(t *testing.T) {
	svc := routing.Service{ID: "s", Type: routing.SkillBased, Distribution: routing.Distribution{RONA: routing.RONASettings{Enabled: true, Persistent: true}}}
	t.Run("transient", func(t *testing.T) {
		f := newFixture(t, 1, svc)
		c := withCalls(f)
		c.ringErr = errors.New("platform down")
		f.call(t, "s", "c1")
		if _, err := f.engine.Kick(context.Background(), tid, "s", "test"); err == nil {
			t.Fatal("a kick whose offer could not ring must fail (and be retried)")
		}
		task := f.task(t, "s", "c1")
		a, _ := f.store.GetAgentState(context.Background(), tid, "agent00")
		if task.State != routing.Waiting || a.Hold != nil || f.clock.now().Before(a.RONAUntil) || slices.Contains(task.Tried, "agent00") {
			t.Fatalf("task %+v, agent %+v", task, a)
		}
	})
	t.Run("the call is gone", func(t *testing.T) {
		f := newFixture(t, 1, svc)
		c := withCalls(f)
		c.ringErr = fmt.Errorf("no call: %w", fault.ErrNotFound)
		f.call(t, "s", "c1")
		f.kick(t, "s")
		task := f.task(t, "s", "c1")
		a, _ := f.store.GetAgentState(context.Background(), tid, "agent00")
		if task.State != routing.Done || task.Outcome != routing.Abandoned || a.Hold != nil {
			t.Fatalf("task %+v, agent %+v", task, a)
		}
	})
	t.Run("one agent of a broadcast cannot be rung", func(t *testing.T) {
		b := svc
		b.Distribution.Strategy, b.Distribution.BroadcastN = routing.Broadcast, 3
		f := newFixture(t, 3, b)
		c := withCalls(f)
		c.failed = func([]string) []string { return []string{"agent01"} }
		f.call(t, "s", "c1")
		f.kick(t, "s")
		task := f.task(t, "s", "c1")
		a, _ := f.store.GetAgentState(context.Background(), tid, "agent01")
		if task.State != routing.Offered || slices.Contains(task.OfferedTo, "agent01") || len(task.OfferedTo) != 2 || a.Hold != nil ||
			f.clock.now().Before(a.RONAUntil) {
			t.Fatalf("task %+v, agent01 %+v", task, a)
		}
	})
}

func TestNoAnswerUnreachableAndDroppedReleaseTheAgent(t *testing.T) {
	ctx := context.Background()
	svc := routing.Service{ID: "s", Type: routing.SkillBased, Distribution: routing.Distribution{RONA: routing.RONASettings{Enabled: true, Persistent: true}}}
	for _, c := range []struct {
		change routing.Change
		rona   string
		result string
	}{
		{routing.NoAnswer, routing.ResultNoAnswer, routing.ResultNoAnswer},
		{routing.Unreachable, "", routing.ResultUnreachable},
		{routing.Declined, routing.ResultDeclined, routing.ResultDeclined},
	} {
		f := newFixture(t, 2, svc)
		f.call(t, "s", "c1")
		f.kick(t, "s")
		task, err := f.engine.CallStateChanged(ctx, routing.CallEvent{TenantID: tid, ServiceID: "s", TaskID: "c1", AgentID: "agent00", Change: c.change})
		if err != nil {
			t.Fatal(err)
		}
		a, _ := f.store.GetAgentState(ctx, tid, "agent00")
		if task.State != routing.Waiting || a.Hold != nil || a.RONAReason != c.rona || task.History[len(task.History)-1].Result != c.result {
			t.Errorf("%s: task %+v agent %+v", c.change, task, a)
		}
		// A replay changes nothing.
		again, _ := f.engine.CallStateChanged(ctx, routing.CallEvent{TenantID: tid, ServiceID: "s", TaskID: "c1", AgentID: "agent00", Change: c.change})
		if again.ETag != task.ETag {
			t.Errorf("%s replayed changed the task", c.change)
		}
	}
	f := newFixture(t, 2, svc)
	f.call(t, "s", "c1")
	f.kick(t, "s")
	if _, err := f.engine.CallStateChanged(ctx, routing.CallEvent{TenantID: tid, ServiceID: "s", TaskID: "c1", AgentID: "agent00", Change: routing.Answered}); err != nil {
		t.Fatal(err)
	}
	task, err := f.engine.CallStateChanged(ctx, routing.CallEvent{TenantID: tid, ServiceID: "s", TaskID: "c1", AgentID: "agent00", Change: routing.Dropped})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := f.store.GetAgentState(ctx, tid, "agent00")
	if task.State != routing.Waiting || task.ConnectedAgent != "" || a.Hold != nil || a.InACW(f.clock.now()) || !slices.Contains(task.Tried, "agent00") {
		t.Fatalf("dropped: task %+v agent %+v", task, a)
	}
	f.kick(t, "s")
	if task := f.task(t, "s", "c1"); !slices.Equal(task.OfferedTo, []string{"agent01"}) {
		t.Fatalf("after the drop the task goes to the other agent: %+v", task)
	}
}
