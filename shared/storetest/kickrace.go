package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/queue"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/tenant"
)

// RoutingStores is one implementation of the stores the routing engine runs on.
type RoutingStores interface {
	routing.Store
	tenant.Store
	presence.Store
}

// RunKickRace fires kicks concurrently (no sessions, several instances: the worst
// case) at three services sharing ten Available agents, with tasks waiting in each,
// then delivers the kicks the matchers sent meanwhile, as the queue would. It checks: no agent is
// offered two tasks at once, no task is offered twice at once, every hold belongs to
// an offered task (no leaked reservation), and nothing is lost (every task still
// open, every agent busy while tasks wait). s must be empty.
func RunKickRace(t *testing.T, s RoutingStores, kicks, tasks int) {
	t.Helper()
	ctx := context.Background()
	services := []string{"sales", "support", "billing"}
	if err := s.PutTenant(ctx, tenant.Tenant{ID: tenantA, Name: "Contoso"}); err != nil {
		t.Fatal(err)
	}
	for i, id := range services {
		sv := routing.Service{TenantID: tenantA, ID: id, Type: routing.TeamsBased}
		if i == 2 {
			sv.Distribution = routing.Distribution{Strategy: routing.Broadcast, BroadcastN: 3}
		}
		if err := s.PutService(ctx, sv); err != nil {
			t.Fatal(err)
		}
	}
	var ps []presence.Presence
	for i := 0; i < 10; i++ {
		id := fmt.Sprintf("agent%02d", i)
		if _, err := s.ReplaceAgentState(ctx, routing.AgentState{TenantID: tenantA, AgentID: id, Services: services}); err != nil {
			t.Fatal(err)
		}
		ps = append(ps, presence.Presence{AgentID: id, Availability: presence.Available, Source: presence.SourceExtended, ObservedAt: at})
	}
	if err := s.SavePresences(ctx, tenantA, ps); err != nil {
		t.Fatal(err)
	}
	snd := &recorder{}
	// Several engines stand for several instances: kicks of one service in one engine
	// coalesce, across engines they race on ETags.
	engines := make([]*routing.Engine, 5)
	for i := range engines {
		engines[i] = routing.NewEngine(routing.Options{Store: s, Tenants: s, Presences: s, Sender: snd, Queue: "calls"})
	}
	e := engines[0]
	for i := 0; i < tasks; i++ {
		if _, err := e.IncomingCall(ctx, routing.IncomingCall{TenantID: tenantA, ServiceID: services[i%len(services)], CallID: fmt.Sprintf("call-%03d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	snd.take() // the intake kicks: the concurrent kicks below stand in for them
	var wg sync.WaitGroup
	for i := 0; i < kicks; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := engines[i%len(engines)].Kick(ctx, tenantA, services[i%len(services)], "load"); err != nil {
				t.Errorf("kick: %v", err)
			}
		}()
	}
	wg.Wait()
	for ks := snd.take(); len(ks) > 0; ks = snd.take() {
		for _, k := range ks {
			if _, err := e.Kick(ctx, k.TenantID, k.ServiceID, k.Reason); err != nil {
				t.Fatal(err)
			}
		}
	}
	agents, err := s.ListAgentStates(ctx, tenantA)
	if err != nil {
		t.Fatal(err)
	}
	holder := map[string]string{}
	for _, a := range agents {
		if a.Hold != nil {
			holder[a.AgentID] = a.Hold.ServiceID + "/" + a.Hold.TaskID
		}
	}
	offeredAgents := map[string]string{}
	total, offered := 0, 0
	for _, svc := range services {
		_, open, err := s.LoadQueue(ctx, tenantA, svc)
		if err != nil {
			t.Fatal(err)
		}
		total += len(open)
		for _, task := range open {
			switch task.State {
			case routing.Offered:
				offered++
				for _, a := range task.OfferedTo {
					if prev, dup := offeredAgents[a]; dup {
						t.Errorf("agent %s offered %s and %s/%s at once", a, prev, svc, task.ID)
					}
					offeredAgents[a] = svc + "/" + task.ID
					if holder[a] != svc+"/"+task.ID {
						t.Errorf("task %s/%s offered to %s, whose hold is %q", svc, task.ID, a, holder[a])
					}
				}
			case routing.Waiting:
			default:
				t.Errorf("task %s/%s in state %s", svc, task.ID, task.State)
			}
		}
	}
	for a, h := range holder {
		if offeredAgents[a] != h {
			t.Errorf("agent %s holds %s but no open task is offered to it (a leaked reservation)", a, h)
		}
	}
	if total != tasks {
		t.Errorf("%d open tasks after the kicks; want all %d (nothing lost)", total, tasks)
	}
	if len(offeredAgents) != len(agents) {
		t.Errorf("%d of %d agents offered a task with %d tasks waiting: a kick lost work", len(offeredAgents), len(agents), tasks)
	}
	if offered == 0 {
		t.Fatal("nothing offered: the test proves nothing")
	}
}

// recorder is a queue.Sender that keeps what was sent.
type recorder struct {
	mu    sync.Mutex
	sent  []queue.Message
	now   []bool
	taken int
}

func (r *recorder) Send(_ context.Context, _ string, m queue.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent, r.now = append(r.sent, m), append(r.now, true)
	return nil
}

func (r *recorder) Schedule(_ context.Context, _ string, m queue.Message, _ time.Time) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent, r.now = append(r.sent, m), append(r.now, false)
	return int64(len(r.sent)), nil
}

func (r *recorder) Cancel(context.Context, string, int64) error { return nil }

// take returns the kicks sent for now (not scheduled) since the last take.
func (r *recorder) take() []routing.Kick {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []routing.Kick
	for ; r.taken < len(r.sent); r.taken++ {
		if r.now[r.taken] {
			var k routing.Kick
			_ = json.Unmarshal(r.sent[r.taken].Body, &k)
			out = append(out, k)
		}
	}
	return out
}
