package routing

import (
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/queue"
	"github.com/teamscc/teamscc/shared/tenant"
)

// Tenants is what the engine reads of tenants (tenant.Store satisfies it).
type Tenants interface {
	GetTenant(ctx context.Context, id string) (tenant.Tenant, error)
}

// Presences is what the engine reads of presence (presence.Store satisfies it): the
// tenant's presence health, to know whether its presence is stale. The presences
// themselves come with the roster (Store.LoadMatch).
type Presences interface {
	GetHealth(ctx context.Context, tenantID string) (presence.Health, error)
}

// CallControl acts on calls for routing's decisions (package calls implements it):
// routing decides who gets a task, the call controller makes their Teams ring, stops
// the ringing and plays the exit. Without one (Options.Calls nil) the engine only
// records its decisions.
type CallControl interface {
	// Ring makes the Teams of the agents ring for the offer t.Attempts of task t.
	// failed lists agents that could not be rung (the engine releases them without
	// RONA, as unreachable). fault.ErrNotFound: the task's call is gone; the engine
	// closes the task (Abandoned). Any other error: nothing rings; the engine takes
	// the offer back (no RONA) and returns the error, so the kick is retried.
	Ring(ctx context.Context, t Task, svc Service, agents []string) (failed []string, err error)
	// StopRinging ends the ringing of agents whose offer of t is over; why is
	// "noAnswer" (the ring timeout), "answeredElsewhere" (another agent of a broadcast
	// answered) or "callerGone". Best effort: the controller's reconciler hangs up any
	// offer left ringing.
	StopRinging(ctx context.Context, t Task, agents []string, why string)
	// Exit: task t left its queue without an agent (t.Outcome says why: QueueTimeout);
	// the caller hears the service's announcement and takes its exit. Best effort:
	// the reconciler takes the exit of a queued call whose task is done.
	Exit(ctx context.Context, t Task, svc Service)
}

// Reasons StopRinging gives.
const (
	StopNoAnswer          = "noAnswer"
	StopAnsweredElsewhere = "answeredElsewhere"
	StopCallerGone        = "callerGone"
)

// Options wires an Engine.
type Options struct {
	Store     Store
	Tenants   Tenants
	Presences Presences
	// PresenceMaxAge is how long a tenant's presence stays good after a credential
	// last read it (presence.Health.LastReadAt); 0 = presence.DefaultMaxAge. Older, it
	// is stale (Input.PresenceStale). Read with the tenant, and cached as long.
	PresenceMaxAge time.Duration
	// Sender sends kicks to Queue; nil sends nothing (tests of the pure flow).
	Sender queue.Sender
	Queue  string
	Now    func() time.Time // nil = time.Now
	// TenantCacheTTL is how long a tenant read is reused (default 5 s; negative: no
	// cache). Deleting a tenant turns its services PendingDeletion, which is read on
	// every kick, so routing stops at once; the cached tenant is a second guard.
	TenantCacheTTL time.Duration
	// Log returns the logger of an invocation; nil discards.
	Log func(context.Context) *slog.Logger
	// Calls acts on the calls of routed tasks; nil: decisions are only recorded. It
	// can also be set later with SetCalls (the controller needs the engine too).
	Calls CallControl
}

// Engine runs routing against a Store. Safe for concurrent use: concurrent kicks of
// services sharing agents are settled by conditional writes.
type Engine struct {
	store     Store
	tenants   Tenants
	presences Presences
	sender    queue.Sender
	queue     string
	now       func() time.Time
	ttl       time.Duration
	log       func(context.Context) *slog.Logger
	calls     CallControl

	mu     sync.Mutex
	cache  map[string]cachedTenant
	health map[string]cachedHealth
	maxAge time.Duration
	woken  map[string]wakeWindowState // tenant\x00service → this instance's wakes in the current window
	self   string                     // this engine's id in the message ids of its immediate wakes

	flights flights // kicks of one service coalesce (Kick)
}

// WakeWindow is the window follow-up kicks of one service are coalesced in: an agent
// released, an ACW or RONA over, a presence that became deliverable. Each wake is
// followed by a kick sent after it: the first of a window by an immediate one (one per
// instance), later ones by a single kick scheduled at the window's end (one for every
// instance: its message id is the same, so duplicate detection keeps one). A burst of
// releases thus costs a service at most two kicks a window, not one per release.
const WakeWindow = 250 * time.Millisecond

type wakeWindowState struct {
	end             time.Time
	immediate, late bool
}

type cachedTenant struct {
	t  tenant.Tenant
	at time.Time
}

type cachedHealth struct {
	h  presence.Health // zero when none exists yet
	at time.Time
}

// NewEngine returns an engine.
func NewEngine(o Options) *Engine {
	var self [8]byte
	_, _ = crand.Read(self[:])
	e := &Engine{store: o.Store, tenants: o.Tenants, presences: o.Presences, sender: o.Sender, queue: o.Queue,
		now: o.Now, ttl: o.TenantCacheTTL, log: o.Log, calls: o.Calls, cache: map[string]cachedTenant{}, health: map[string]cachedHealth{},
		maxAge: o.PresenceMaxAge,
		woken:  map[string]wakeWindowState{}, self: hex.EncodeToString(self[:])}
	if e.now == nil {
		e.now = time.Now
	}
	if e.ttl == 0 {
		e.ttl = 5 * time.Second
	}
	if e.maxAge <= 0 {
		e.maxAge = presence.DefaultMaxAge
	}
	if e.log == nil {
		e.log = func(context.Context) *slog.Logger { return slog.New(slog.DiscardHandler) }
	}
	return e
}

// SetCalls sets the call controller; call it before the engine is used.
func (e *Engine) SetCalls(c CallControl) { e.calls = c }

// Kick is the body of a message on the calls queue: "match this service now".
type Kick struct {
	TenantID  string `json:"tenantId"`
	ServiceID string `json:"serviceId"`
	Reason    string `json:"reason,omitempty"`
}

// Kick reasons.
const (
	KickNewTask    = "newTask"
	KickRingExpiry = "ringExpiry"
	KickReleased   = "released"
	KickACWEnd     = "acwEnd"
	KickRONAEnd    = "ronaEnd"
	KickPresence   = "presence"
	KickQueueTime  = "queueTimeout"
)

// wakeReason reports whether a kick of this reason is a coalesced wake.
func wakeReason(r string) bool {
	switch r {
	case KickReleased, KickACWEnd, KickRONAEnd, KickPresence:
		return true
	}
	return false
}

// SessionID is the Service Bus session of a service's kicks: one matcher per service
// at a time. The tenant id is part of it because service ids are only unique per
// tenant.
func SessionID(tenantID, serviceID string) string { return tenantID + ":" + serviceID }

// kick sends a kick for the service now (at zero) or at 'at'. The message id is
// derived from what the kick means (reason and id), so Service Bus duplicate
// detection drops a repeat.
func (e *Engine) kick(ctx context.Context, tenantID, serviceID, reason, id string, at time.Time) error {
	if e.sender == nil {
		return nil
	}
	body, _ := json.Marshal(Kick{TenantID: tenantID, ServiceID: serviceID, Reason: reason})
	kind := reason
	if wakeReason(reason) {
		kind = "wake" // coalesced wakes of every reason share their ids
	}
	sum := sha256.Sum256([]byte(tenantID + "\x00" + serviceID + "\x00" + kind + "\x00" + id))
	m := queue.Message{ID: kind + "-" + hex.EncodeToString(sum[:16]), SessionID: SessionID(tenantID, serviceID),
		ContentType: "application/json", Body: body}
	var err error
	if at.IsZero() {
		err = e.sender.Send(ctx, e.queue, m)
	} else {
		_, err = e.sender.Schedule(ctx, e.queue, m, at)
	}
	if err != nil {
		return fmt.Errorf("send kick: %w", err)
	}
	return nil
}

// wake makes sure a kick of the service follows now, coalesced per WakeWindow.
func (e *Engine) wake(ctx context.Context, tenantID, serviceID, reason string) error {
	now := e.now()
	end := now.Truncate(WakeWindow).Add(WakeWindow)
	k := tenantID + "\x00" + serviceID
	e.mu.Lock()
	w := e.woken[k]
	if !w.end.Equal(end) {
		if len(e.woken) > 10000 {
			clear(e.woken) // services of a window long past; the worst case is one kick more
		}
		w = wakeWindowState{end: end}
	}
	send, at := "", time.Time{}
	switch {
	case !w.immediate:
		w.immediate, send = true, e.self+"/"+end.Format(time.RFC3339Nano)
	case !w.late:
		w.late, send, at = true, end.Format(time.RFC3339Nano), end
	}
	e.woken[k] = w
	e.mu.Unlock()
	if send == "" {
		return nil // a kick already scheduled at the window's end follows this wake
	}
	return e.kick(ctx, tenantID, serviceID, reason, send, at)
}

// wakeAt schedules a kick of the service at 'at' (an ACW or RONA ending), rounded up
// to its WakeWindow: every instance's wakes of one window are one message.
func (e *Engine) wakeAt(ctx context.Context, tenantID, serviceID, reason string, at time.Time) error {
	end := at.Truncate(WakeWindow)
	if end.Before(at) {
		end = end.Add(WakeWindow)
	}
	return e.kick(ctx, tenantID, serviceID, reason, end.Format(time.RFC3339Nano), end)
}

func (e *Engine) tenant(ctx context.Context, id string) (tenant.Tenant, error) {
	now := e.now()
	if e.ttl > 0 {
		e.mu.Lock()
		c, ok := e.cache[id]
		e.mu.Unlock()
		if ok && now.Sub(c.at) < e.ttl {
			return c.t, nil
		}
	}
	t, err := e.tenants.GetTenant(ctx, id)
	if err != nil {
		return t, err
	}
	if e.ttl > 0 {
		e.mu.Lock()
		e.cache[id] = cachedTenant{t, now}
		e.mu.Unlock()
	}
	return t, nil
}

// presenceStale reports whether the tenant's presence is stale at now (see
// presence.Health.Stale), from health read at most TenantCacheTTL ago. A health that
// cannot be read does not stop routing: it is logged and the presence taken as good.
func (e *Engine) presenceStale(ctx context.Context, tenantID string, now time.Time) bool {
	if e.presences == nil {
		return false
	}
	e.mu.Lock()
	c, ok := e.health[tenantID]
	e.mu.Unlock()
	if !ok || e.ttl <= 0 || now.Sub(c.at) >= e.ttl {
		h, err := e.presences.GetHealth(ctx, tenantID)
		if err != nil && !errors.Is(err, fault.ErrNotFound) {
			e.log(ctx).Warn("presence health not read; presence taken as current", "tenant", tenantID, "err", err)
			return false
		}
		c = cachedHealth{h: h, at: now}
		e.mu.Lock()
		e.health[tenantID] = c
		e.mu.Unlock()
	}
	return c.h.Stale(now, e.maxAge)
}

// KickResult says what one kick did.
type KickResult struct {
	Open      int    // open tasks found
	Offered   int    // tasks offered by this kick
	NoAnswers int    // offers that had rung out and were turned into RONA
	TimedOut  int    // tasks that left by queue timeout
	Ringing   int    // offers still ringing
	Connected int    // tasks in a call
	Waiting   int    // tasks left waiting: nobody eligible
	Skipped   string // why nothing was routed (service pending deletion, ...)
}

// errSkipTask: another matcher changed the task first; leave it to that one.
var errSkipTask = errors.New("task changed by another matcher")

// errNoChange aborts a read-modify-write that has nothing to do.
var errNoChange = errors.New("no change")

// Kick matches the service's waiting tasks to eligible agents now: offers that rang
// out become RONA and their tasks wait again; tasks past the queue timeout leave;
// every waiting task, highest priority and oldest first, is offered to the best
// eligible agent that can be reserved. An unknown tenant or service is a permanent
// error (fault.Permanent); storage failures are transient.
//
// Kicks of one service in one engine run one at a time and coalesce: a kick returns
// once a matching pass that began after it arrived has finished (its result is that
// pass's), so kicks arriving while a pass runs share the one pass after it. Matchers
// of different instances (or services sharing agents) race on ETags instead; Service
// Bus sessions keep one matcher per service across instances.
func (e *Engine) Kick(ctx context.Context, tenantID, serviceID, reason string) (KickResult, error) {
	return e.flights.do(ctx, tenantID+"\x00"+serviceID, func() (KickResult, error) { return e.match(ctx, tenantID, serviceID, reason) })
}

// flights coalesces the kicks of each service (see Kick). One small entry stays per
// service the instance ever kicked.
type flights struct {
	mu sync.Mutex
	m  map[string]*flight
}

type flight struct {
	running bool
	next    int           // the number the next pass will have
	done    int           // the number of the last pass finished (0: none)
	res     KickResult    // its outcome
	err     error         //
	changed chan struct{} // closed (and replaced) when a pass finishes
}

// do runs pass for key, or waits for a pass that begins after the call to finish.
func (f *flights) do(ctx context.Context, key string, pass func() (KickResult, error)) (KickResult, error) {
	f.mu.Lock()
	if f.m == nil {
		f.m = map[string]*flight{}
	}
	fl := f.m[key]
	if fl == nil {
		fl = &flight{next: 1, changed: make(chan struct{})}
		f.m[key] = fl
	}
	ticket := fl.next // the first pass that may serve this call
	for {
		if fl.done >= ticket {
			res, err := fl.res, fl.err
			f.mu.Unlock()
			return res, err
		}
		if !fl.running {
			fl.running = true
			n := fl.next
			fl.next++
			f.mu.Unlock()
			res, err := pass()
			f.mu.Lock()
			fl.running, fl.done, fl.res, fl.err = false, n, res, err
			close(fl.changed)
			fl.changed = make(chan struct{})
			continue
		}
		ch := fl.changed
		f.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return KickResult{}, ctx.Err()
		}
		f.mu.Lock()
	}
}

// match is one matching pass of Kick.
func (e *Engine) match(ctx context.Context, tenantID, serviceID, reason string) (KickResult, error) {
	var res KickResult
	t, err := e.tenant(ctx, tenantID)
	if errors.Is(err, fault.ErrNotFound) {
		return res, fault.Permanent(fmt.Errorf("tenantId: unknown tenant: %w", err))
	}
	if err != nil {
		return res, fmt.Errorf("get tenant: %w", err)
	}
	q, err := e.store.LoadMatch(ctx, tenantID, serviceID)
	if errors.Is(err, fault.ErrNotFound) {
		return res, fault.Permanent(fmt.Errorf("serviceId: unknown service: %w", err))
	}
	if err != nil {
		return res, fmt.Errorf("load queue: %w", err)
	}
	svc, tasks := q.Service, q.Tasks
	res.Open = len(tasks)
	switch {
	case t.Deleted:
		res.Skipped = "tenant pending deletion"
	case svc.PendingDeletion:
		res.Skipped = "service pending deletion"
	case svc.Type == None:
		res.Skipped = "service of type None"
	}
	if res.Skipped != "" || len(tasks) == 0 {
		return res, nil
	}
	slices.SortFunc(tasks, func(a, b Task) int {
		if a.Before(b) {
			return -1
		}
		if b.Before(a) {
			return 1
		}
		return 0
	})
	now := e.now()
	pool := newPool(q.Members)
	pool.stale = e.presenceStale(ctx, tenantID, now)
	var dr Decider // one per kick: the decisions of its tasks reuse its memory
	claimFirst := false
	for i := range tasks {
		task := &tasks[i]
		switch task.State {
		case Offered:
			if now.Before(task.RingExpiry) {
				res.Ringing++
				continue
			}
		case Connected:
			res.Connected++
			continue
		case Waiting:
		default:
			continue
		}
		if task.State == Offered {
			err := e.expireOffer(ctx, &svc, task, pool, now)
			if errors.Is(err, errSkipTask) {
				continue
			}
			if err != nil {
				return res, err
			}
			res.NoAnswers++
		}
		if to := svc.Distribution.QueueTimeoutSecs; to > 0 && now.Sub(task.Created) >= time.Duration(to)*time.Second {
			got, err := e.finish(ctx, task, QueueTimeout, now)
			if errors.Is(err, errSkipTask) {
				continue
			}
			if err != nil {
				return res, err
			}
			if e.calls != nil {
				e.calls.Exit(ctx, got, svc)
			}
			res.TimedOut++
			continue
		}
		offered, err := e.route(ctx, &dr, &svc, task, pool, now, claimFirst)
		if errors.Is(err, errTaskTaken) {
			claimFirst = true // another matcher is offering this service's tasks too
		}
		if errors.Is(err, errSkipTask) {
			continue
		}
		if err != nil {
			return res, err
		}
		if offered {
			res.Offered++
		} else {
			res.Waiting++
		}
	}
	if res.Offered+res.NoAnswers+res.TimedOut > 0 {
		e.log(ctx).Info("service matched", "tenant", tenantID, "service", serviceID, "reason", reason,
			"offered", res.Offered, "no_answers", res.NoAnswers, "timed_out", res.TimedOut, "waiting", res.Waiting)
	}
	return res, nil
}

// agentPool is the service's members as one kick sees them; writes of the kick, and
// the states read after a lost race, update it so later tasks of the same kick never
// try an agent on what they knew before.
type agentPool struct {
	members []Member
	index   map[string]int
	stale   bool // the tenant's presence is stale (Input.PresenceStale)
}

func newPool(members []Member) *agentPool {
	p := &agentPool{members: members, index: make(map[string]int, len(members))}
	for i := range members {
		p.index[members[i].State.AgentID] = i
	}
	return p
}

// drop takes an agent out of the pool (gone, or no longer a member).
func (p *agentPool) drop(id string) {
	i, ok := p.index[id]
	if !ok {
		return
	}
	p.members = slices.Delete(p.members, i, i+1)
	clear(p.index)
	for j := range p.members {
		p.index[p.members[j].State.AgentID] = j
	}
}

func (p *agentPool) set(a AgentState) {
	if i, ok := p.index[a.AgentID]; ok {
		p.members[i].State = a
	}
}

// refresh reads the state of an agent whose reservation lost a race into the pool,
// so no later task of the kick tries it on what the roster said. An agent that is
// gone, no longer a member, or unreadable leaves the pool for this kick.
func (e *Engine) refresh(ctx context.Context, svc *Service, pool *agentPool, id string) {
	got, err := e.store.GetAgentState(ctx, svc.TenantID, id)
	switch {
	case err == nil && slices.Contains(got.AllServices(), svc.ID):
		pool.set(got)
	case err == nil || errors.Is(err, fault.ErrNotFound):
		pool.drop(id)
	default:
		e.log(ctx).Warn("agent state not read after a lost reservation; skipped by this kick", "tenant", svc.TenantID, "service", svc.ID, "err", err)
		pool.drop(id)
	}
}

// errTaskTaken: another matcher offered the task first (its offer write won).
var errTaskTaken = fmt.Errorf("%w: offered by another matcher", errSkipTask)

// route offers one waiting task to the best eligible agent(s), reserving each with a
// conditional write. A reservation that loses its race reads that agent's state into
// the pool and the decision is made again for a replacement (each agent is tried at
// most once per task), so a race costs one failed write and one read.
//
// The offer itself is a conditional write of the task. By default it comes after the
// reservations: between services that share agents (the normal race) that is the
// cheapest. With claimFirst it comes before them, naming the agents about to be
// reserved (and is written again if others had to be taken): once a kick has seen
// another matcher offer one of its tasks (no session keeps them apart), a lost task
// then costs one failed write instead of reservations to undo. errTaskTaken says the
// offer write lost.
func (e *Engine) route(ctx context.Context, dr *Decider, svc *Service, task *Task, pool *agentPool, now time.Time, claimFirst bool) (bool, error) {
	want := 1
	if svc.Strategy() == Broadcast {
		want = svc.broadcastN()
	}
	attempt := task.Attempts + 1
	ring := svc.RingTimeout()
	tried := map[string]bool{}
	waiting := *task // as it was read: the base of decisions, and what a failed claim goes back to
	d := dr.Decide(Input{Service: *svc, Task: waiting, Members: pool.members, Now: now, PresenceStale: pool.stale})
	// pick takes up to n untried eligible agents from d, best first.
	pick := func(n int) []string {
		var out []string
		for k := 0; len(out) < n; k++ {
			idx := d.Ranked(k)
			if idx < 0 {
				break
			}
			if id := pool.members[idx].State.AgentID; !tried[id] {
				tried[id] = true
				out = append(out, id)
			}
		}
		return out
	}
	var chosen, lost []string
	// reserve reserves the agents of pending, replacing each that loses its race; it
	// fails only for a storage error.
	reserve := func(pending []string) error {
		for len(pending) > 0 {
			id := pending[0]
			pending = pending[1:]
			a := pool.members[pool.index[id]].State.Clone()
			a.Hold = &Hold{ServiceID: svc.ID, TaskID: task.ID, Attempt: attempt, Phase: HoldOffered, Since: now, Until: now.Add(ring + ReservationGrace)}
			if a.LastOffered == nil {
				a.LastOffered = map[string]time.Time{}
			}
			a.LastOffered[svc.ID] = now
			res, err := e.store.ReplaceAgentState(ctx, a)
			switch {
			case errors.Is(err, fault.ErrPrecondition), errors.Is(err, fault.ErrNotFound), errors.Is(err, fault.ErrConflict):
				lost = append(lost, id)
				e.refresh(ctx, svc, pool, id)
				d = dr.Decide(Input{Service: *svc, Task: waiting, Members: pool.members, Now: now, PresenceStale: pool.stale})
				pending = append(pending, pick(want-len(chosen)-len(pending))...)
			case err != nil:
				return fmt.Errorf("reserve agent: %w", err)
			default:
				pool.set(res)
				chosen = append(chosen, id)
			}
		}
		return nil
	}
	mark := func(ids []string, reason string) {
		for _, id := range ids {
			if i, ok := pool.index[id]; ok && d.EntryOf[i] >= 0 {
				d.Entries[d.EntryOf[i]].Reason = reason
			}
		}
	}
	explainNow := func(t *Task, who []string) *Explain {
		mark(lost, ReasonLostRace)
		mark(who, ReasonChosen)
		return explain(t, svc, d, now, who)
	}
	offer := func(t Task, who []string) Task {
		t.Attempts = attempt
		t.State, t.OfferedTo, t.OfferedAt, t.RingExpiry = Offered, who, now, now.Add(ring)
		t.Explain = explainNow(&t, who)
		return t
	}
	// nobody records why the task waits (when that changed).
	nobody := func() (bool, error) {
		ex := explainNow(task, nil)
		if task.Explain.sameOutcome(ex) {
			return false, nil
		}
		upd := task.Clone()
		upd.Explain = ex
		got, err := e.store.ReplaceTask(ctx, upd)
		switch {
		case errors.Is(err, fault.ErrPrecondition), errors.Is(err, fault.ErrNotFound):
			return false, errSkipTask
		case err != nil:
			return false, fmt.Errorf("record explanation: %w", err)
		}
		*task = got
		return false, nil
	}
	// The kick at the ring expiry goes out before the offer is written: an invocation
	// that dies after writing it leaves an offer nobody rings, which that kick ends (a
	// matcher offering the same attempt schedules the same message: one is kept).
	// Why scheduled and not a timer: a kick at the ring expiry wakes the service,
	// which finds the offer rung out (read lazily) and turns it into RONA.
	expiry := func() error {
		if err := e.kick(ctx, svc.TenantID, svc.ID, KickRingExpiry, fmt.Sprintf("%s/%d", task.ID, attempt), now.Add(ring)); err != nil {
			return fmt.Errorf("schedule the ring expiry: %w", err)
		}
		return nil
	}
	var got Task
	if !claimFirst {
		if err := reserve(pick(want)); err != nil {
			e.releaseAll(ctx, svc, task.ID, attempt, chosen, pool)
			return false, err
		}
		if len(chosen) == 0 {
			return nobody()
		}
		err := expiry()
		if err == nil {
			got, err = e.store.ReplaceTask(ctx, offer(task.Clone(), chosen))
		}
		if err != nil {
			e.releaseAll(ctx, svc, task.ID, attempt, chosen, pool)
			if errors.Is(err, fault.ErrPrecondition) || errors.Is(err, fault.ErrNotFound) {
				// The agents held for a moment may have been passed over by other
				// matchers meanwhile: wake their services.
				for _, id := range chosen {
					if i, ok := pool.index[id]; ok {
						e.kickServicesNow(ctx, &pool.members[i].State, KickReleased)
					}
				}
				return false, errTaskTaken
			}
			return false, fmt.Errorf("offer task: %w", err)
		}
	} else {
		claimed := pick(want)
		if len(claimed) == 0 {
			return nobody()
		}
		if err := expiry(); err != nil {
			return false, err
		}
		var err error
		got, err = e.store.ReplaceTask(ctx, offer(task.Clone(), claimed))
		switch {
		case errors.Is(err, fault.ErrPrecondition), errors.Is(err, fault.ErrNotFound):
			return false, errTaskTaken
		case err != nil:
			return false, fmt.Errorf("offer task: %w", err)
		}
		*task = got
		if err := reserve(claimed); err != nil {
			e.takeBack(ctx, svc, task, waiting, chosen, pool)
			return false, err
		}
		if !slices.Equal(chosen, claimed) {
			upd := offer(task.Clone(), chosen)
			if len(chosen) == 0 { // nobody could be reserved: the task waits again
				upd = waiting.Clone()
				upd.ETag, upd.Explain = task.ETag, explainNow(&upd, nil)
			}
			got, err = e.store.ReplaceTask(ctx, upd)
			if err != nil {
				e.releaseAll(ctx, svc, task.ID, attempt, chosen, pool)
				if errors.Is(err, fault.ErrPrecondition) || errors.Is(err, fault.ErrNotFound) {
					return false, errSkipTask // the call changed meanwhile (it ended): its own event wakes the service
				}
				return false, fmt.Errorf("offer task: %w", err)
			}
			*task = got
			if len(chosen) == 0 {
				return false, nil
			}
		}
	}
	*task = got
	if e.calls != nil {
		failed, err := e.calls.Ring(ctx, got, *svc, chosen)
		switch {
		case errors.Is(err, fault.ErrNotFound):
			e.log(ctx).Info("offer not rung: the call is gone", "tenant", svc.TenantID, "service", svc.ID)
			if _, err := e.ended(ctx, svc, task.ID, Abandoned); err != nil {
				return false, fmt.Errorf("close task of a call that is gone: %w", err)
			}
			return false, errSkipTask
		case err != nil:
			if uerr := e.unoffer(ctx, svc, task, chosen, pool); uerr != nil {
				e.log(ctx).Warn("offer not taken back; its reservations lapse", "tenant", svc.TenantID, "service", svc.ID, "err", uerr)
			}
			return false, fmt.Errorf("ring agents: %w", err)
		}
		for _, id := range failed {
			t, err := e.dropOffer(ctx, svc, CallEvent{TenantID: svc.TenantID, ServiceID: svc.ID, TaskID: task.ID, AgentID: id, Change: Unreachable})
			if err != nil {
				return false, fmt.Errorf("release unreachable agent: %w", err)
			}
			*task = t
		}
		if len(failed) == len(chosen) {
			return false, nil
		}
	}
	return true, nil
}

// takeBack undoes a claim whose reservations failed for a storage error: the agents
// reserved so far are released and the task waits again as it was (best effort,
// outliving the invocation: a claim left behind ends at its ring expiry).
func (e *Engine) takeBack(ctx context.Context, svc *Service, task *Task, waiting Task, reserved []string, pool *agentPool) {
	e.releaseAll(ctx, svc, task.ID, task.Attempts, reserved, pool)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	back := waiting.Clone()
	back.ETag = task.ETag
	if got, err := e.store.ReplaceTask(ctx, back); err == nil {
		*task = got
	} else {
		e.log(ctx).Warn("offer not taken back; it ends at its ring expiry", "tenant", svc.TenantID, "service", svc.ID, "err", err)
	}
}

// releaseTimeout bounds the releases of a failed offer, which outlive the invocation's
// context.
const releaseTimeout = 10 * time.Second

// releaseAll frees agents reserved for the task's attempt (best effort: a reservation
// left behind lapses at its Until).
func (e *Engine) releaseAll(ctx context.Context, svc *Service, taskID string, attempt int, agents []string, pool *agentPool) {
	// The invocation may be ending (that is often why an offer failed): releasing
	// must not depend on it, or its agents stay reserved until the grace runs out.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	for _, id := range agents {
		got, err := e.release(ctx, svc.TenantID, id, svc.ID, taskID, attempt, nil)
		if err != nil {
			e.log(ctx).Warn("reservation not released; it lapses by itself", "tenant", svc.TenantID, "service", svc.ID, "err", err)
			continue
		}
		pool.set(got)
	}
}

// release clears the agent's hold if it is still for this task (attempt 0: any
// attempt) and applies mut; an agent held for something else is left alone
// (released=false, no error).
func (e *Engine) release(ctx context.Context, tenantID, agentID, serviceID, taskID string, attempt int, mut func(*AgentState)) (AgentState, error) {
	got, err := e.store.UpdateAgentState(ctx, tenantID, agentID, func(a *AgentState) error {
		if a.Hold == nil || a.Hold.ServiceID != serviceID || a.Hold.TaskID != taskID || (attempt > 0 && a.Hold.Attempt != attempt) {
			return errNoChange
		}
		a.Hold = nil
		if mut != nil {
			mut(a)
		}
		return nil
	})
	if errors.Is(err, errNoChange) {
		return e.store.GetAgentState(ctx, tenantID, agentID)
	}
	return got, err
}

// expireOffer turns an offer that rang out into RONA for the agents who did not
// answer and puts the task back in the queue. Agents first: a crash in between leaves
// an Offered task whose agents are already free, which the next kick finishes.
func (e *Engine) expireOffer(ctx context.Context, svc *Service, task *Task, pool *agentPool, now time.Time) error {
	rona := svc.RONAFor()
	if svc.Strategy() == Broadcast {
		rona = 0 // nobody in particular was asked; ten agents blocked for one call would empty the queue's pool
	}
	for _, id := range task.OfferedTo {
		got, err := e.release(ctx, svc.TenantID, id, svc.ID, task.ID, task.Attempts, func(a *AgentState) {
			a.NoAnswers++
			if rona > 0 {
				a.RONAUntil, a.RONAAt, a.RONAReason = now.Add(rona), now, ResultNoAnswer
			}
		})
		if err != nil && !errors.Is(err, fault.ErrNotFound) {
			return fmt.Errorf("release agent after no answer: %w", err)
		}
		if err == nil {
			pool.set(got)
			if rona > 0 && got.RONAAt.Equal(now) {
				e.kickServicesAt(ctx, &got, KickRONAEnd, got.RONAUntil)
			}
		}
	}
	upd := task.Clone()
	for _, id := range task.OfferedTo {
		upd.record(Attempt{Attempt: task.Attempts, AgentID: id, At: now, Result: ResultNoAnswer})
		if !slices.Contains(upd.Tried, id) {
			upd.Tried = append(upd.Tried, id)
		}
	}
	upd.State, upd.OfferedTo, upd.RingExpiry = Waiting, nil, time.Time{}
	got, err := e.store.ReplaceTask(ctx, upd)
	if errors.Is(err, fault.ErrPrecondition) || errors.Is(err, fault.ErrNotFound) {
		return errSkipTask
	}
	if err != nil {
		return fmt.Errorf("requeue task: %w", err)
	}
	e.log(ctx).Info("offer not answered: RONA and re-routing", "tenant", svc.TenantID, "service", svc.ID, "attempt", task.Attempts)
	if e.calls != nil {
		e.calls.StopRinging(ctx, *task, task.OfferedTo, StopNoAnswer)
	}
	*task = got
	return nil
}

// unoffer takes back an offer whose agents could not be rung: the task waits again
// (the attempt is recorded as Unreachable for each agent, who is not marked Tried) and
// the reservations are released without RONA.
func (e *Engine) unoffer(ctx context.Context, svc *Service, task *Task, agents []string, pool *agentPool) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	now := e.now()
	attempt := task.Attempts
	upd := task.Clone()
	if upd.State == Offered && upd.Attempts == attempt {
		for _, id := range agents {
			upd.record(Attempt{Attempt: attempt, AgentID: id, At: now, Result: ResultUnreachable})
		}
		upd.State, upd.OfferedTo, upd.RingExpiry = Waiting, nil, time.Time{}
		got, err := e.store.ReplaceTask(ctx, upd)
		if err != nil && !errors.Is(err, fault.ErrPrecondition) && !errors.Is(err, fault.ErrNotFound) {
			return fmt.Errorf("take offer back: %w", err)
		}
		if err == nil {
			*task = got
		}
	}
	e.releaseAll(ctx, svc, task.ID, attempt, agents, pool)
	return nil
}

// finish closes a waiting task with an exit outcome (queue timeout).
func (e *Engine) finish(ctx context.Context, task *Task, o Outcome, now time.Time) (Task, error) {
	upd := task.Clone()
	upd.State, upd.Outcome, upd.EndedAt = Done, o, now
	got, err := e.store.ReplaceTask(ctx, upd)
	if errors.Is(err, fault.ErrPrecondition) || errors.Is(err, fault.ErrNotFound) {
		return Task{}, errSkipTask
	}
	if err != nil {
		return Task{}, fmt.Errorf("close task: %w", err)
	}
	*task = got
	return got, nil
}

// kickServicesAt schedules a kick of every service of the agent at 'at' (the end of
// its ACW or RONA), so waiting tasks are matched the moment the agent is free.
// Failures are logged: the next kick of the service finds the agent free anyway.
func (e *Engine) kickServicesAt(ctx context.Context, a *AgentState, reason string, at time.Time) {
	for _, s := range a.AllServices() {
		if err := e.wakeAt(ctx, a.TenantID, s, reason, at); err != nil {
			e.log(ctx).Warn("kick not scheduled", "tenant", a.TenantID, "service", s, "reason", reason, "err", err)
		}
	}
}

// TaskIDFor is the task id of a call: the call id when it is a valid id, else a hash.
func TaskIDFor(callID string) string {
	if CheckID("callId", callID) == nil {
		return callID
	}
	sum := sha256.Sum256([]byte(callID))
	return "c-" + hex.EncodeToString(sum[:20])
}
