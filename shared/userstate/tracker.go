package userstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/tenant"
)

// Routes is what the tracker reads of routing (routing.Store satisfies it).
type Routes interface {
	GetAgentState(ctx context.Context, tenantID, agentID string) (routing.AgentState, error)
	ListAgentStates(ctx context.Context, tenantID string) ([]routing.AgentState, error)
	ListServices(ctx context.Context, tenantID string) ([]routing.Service, error)
}

// Tenants is what the tracker reads of tenants (tenant.Store satisfies it).
type Tenants interface {
	GetTenant(ctx context.Context, id string) (tenant.Tenant, error)
	ListTenants(ctx context.Context) ([]tenant.Tenant, error)
}

// Options wires a Tracker.
type Options struct {
	Store     Store
	Routes    Routes
	Tenants   Tenants
	Presences interface {
		LoadPresences(ctx context.Context, tenantID string) ([]presence.Presence, error)
	}
	Now func() time.Time // nil = time.Now
	// TenantCacheTTL is how long "tracking is off" is believed without reading the
	// tenant again (default 5 s; negative: always read). Turning tracking on starts
	// recording at once through Start; an observation that would begin an agent's
	// tracking reads the tenant afresh, so turning it off is never undone.
	TenantCacheTTL time.Duration
	// Concurrency bounds the agents a sweep or a presence change writes at once
	// (default 8).
	Concurrency int
}

// Tracker records agent state changes. Safe for concurrent use.
type Tracker struct {
	o     Options
	mu    sync.Mutex
	cache map[string]cachedFlag
}

type cachedFlag struct {
	on bool
	at time.Time
}

// NewTracker returns a tracker.
func NewTracker(o Options) *Tracker {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.TenantCacheTTL == 0 {
		o.TenantCacheTTL = 5 * time.Second
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	return &Tracker{o: o, cache: map[string]cachedFlag{}}
}

// tracking reports whether the tenant tracks user states (a deleted or unknown tenant
// does not); fresh skips the cache.
func (t *Tracker) tracking(ctx context.Context, tenantID string, fresh bool) (bool, error) {
	now := t.o.Now()
	if !fresh && t.o.TenantCacheTTL > 0 {
		t.mu.Lock()
		c, ok := t.cache[tenantID]
		t.mu.Unlock()
		if ok && now.Sub(c.at) < t.o.TenantCacheTTL {
			return c.on, nil
		}
	}
	tn, err := t.o.Tenants.GetTenant(ctx, tenantID)
	if errors.Is(err, fault.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	on := trackingOn(&tn)
	t.remember(tenantID, on, now)
	return on, nil
}

func trackingOn(tn *tenant.Tenant) bool { return tn.Privacy.TrackUserStates && !tn.Deleted }

func (t *Tracker) remember(tenantID string, on bool, at time.Time) {
	t.mu.Lock()
	t.cache[tenantID] = cachedFlag{on, at}
	t.mu.Unlock()
}

// maxAttempts bounds the retries of one agent's commit; each retry waits a jittered
// moment (fault.Backoff) and re-reads.
const maxAttempts = 20

// sync advances one agent's cursor to now. seen returns what the agent is now, given
// the cursor (a zero cursor when the agent has none); ok=false means the agent is gone
// and its tracking ends. cursor is the cursor already read, or nil to read it.
func (t *Tracker) sync(ctx context.Context, tenantID, agentID string, services []routing.Service, cursor *Cursor,
	seen func(context.Context, *Cursor) (Seen, bool, error)) error {
	for attempt := 0; ; attempt++ {
		var c Cursor
		if attempt > 0 {
			if err := fault.Backoff(ctx, attempt-1); err != nil {
				return err
			}
		}
		if cursor != nil && attempt == 0 {
			c = *cursor
		} else {
			var err error
			c, err = t.o.Store.GetUserStateCursor(ctx, tenantID, agentID)
			if err != nil && !errors.Is(err, fault.ErrNotFound) {
				return err
			}
			if err != nil {
				c = Cursor{}
			}
		}
		s, ok, err := seen(ctx, &c)
		if err != nil {
			return err
		}
		now := t.o.Now()
		fresh := c.AgentID == ""
		switch {
		case fresh && !ok:
			return nil
		case fresh:
			// Beginning an agent's tracking: make sure tracking was not turned off
			// since the cached answer, and again after the insert (Stop may have
			// listed the cursors between the two).
			if on, err := t.tracking(ctx, tenantID, true); err != nil || !on {
				return err
			}
		case !ok:
			err = t.o.Store.CommitUserStates(ctx, c, true, Close(c, services, now))
			if lost(err) && attempt < maxAttempts {
				continue
			}
			return err
		}
		next, recs := Advance(c, s, services, now)
		if !fresh && len(recs) == 0 && sameSeen(&next.Seen, &c.Seen) {
			return nil // nothing to record, nothing new seen
		}
		err = t.o.Store.CommitUserStates(ctx, next, false, recs)
		if lost(err) && attempt < maxAttempts {
			continue
		}
		if err != nil || !fresh {
			return err
		}
		if on, err := t.tracking(ctx, tenantID, true); err != nil || on {
			return err
		}
		// Turned off meanwhile: close what was just opened (unless Stop or another
		// observer already did).
		written, err := t.o.Store.GetUserStateCursor(ctx, tenantID, agentID)
		if errors.Is(err, fault.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if err = t.o.Store.CommitUserStates(ctx, written, true, Close(written, services, t.o.Now())); lost(err) {
			return nil
		}
		return err
	}
}

// sameSeen compares by the stored form (times in UTC, as read back from storage).
func sameSeen(a, b *Seen) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func lost(err error) bool {
	return errors.Is(err, fault.ErrPrecondition) || errors.Is(err, fault.ErrConflict) || errors.Is(err, fault.ErrNotFound)
}

// ObserveAgent records the agent's current routing state (called after every write of
// it). The presence is the one last observed.
func (t *Tracker) ObserveAgent(ctx context.Context, tenantID, agentID string) error {
	if on, err := t.tracking(ctx, tenantID, false); err != nil || !on {
		return err
	}
	services, err := t.o.Routes.ListServices(ctx, tenantID)
	if err != nil {
		return fmt.Errorf("user states: list services: %w", err)
	}
	var all map[string]presence.Presence // read once, for a cursor that starts here
	return t.sync(ctx, tenantID, agentID, services, nil, func(ctx context.Context, c *Cursor) (Seen, bool, error) {
		a, err := t.o.Routes.GetAgentState(ctx, tenantID, agentID)
		if errors.Is(err, fault.ErrNotFound) {
			return Seen{}, false, nil
		}
		if err != nil {
			return Seen{}, false, err
		}
		s := Seen{Agent: a, Presence: c.Seen.Presence, HasPresence: c.Seen.HasPresence}
		if c.AgentID == "" {
			if all == nil {
				if all, err = t.presences(ctx, tenantID); err != nil {
					return Seen{}, false, err
				}
			}
			s.Presence, s.HasPresence = all[agentID]
		}
		return s, true, nil
	})
}

func (t *Tracker) presences(ctx context.Context, tenantID string) (map[string]presence.Presence, error) {
	ps, err := t.o.Presences.LoadPresences(ctx, tenantID)
	if err != nil {
		return nil, fmt.Errorf("user states: load presences: %w", err)
	}
	m := make(map[string]presence.Presence, len(ps))
	for _, p := range ps {
		m[p.AgentID] = p
	}
	return m, nil
}

// PresenceChanged records new presences (the presence refresher's hook).
func (t *Tracker) PresenceChanged(ctx context.Context, tenantID string, changed []presence.Presence) error {
	if len(changed) == 0 {
		return nil
	}
	if on, err := t.tracking(ctx, tenantID, false); err != nil || !on {
		return err
	}
	agents, services, cursors, err := t.load(ctx, tenantID)
	if err != nil {
		return err
	}
	return t.each(ctx, len(changed), func(ctx context.Context, i int) error {
		p := changed[i]
		a, ok := agents[p.AgentID]
		if !ok {
			return nil // not an agent of any service: nothing to track
		}
		c := cursors[p.AgentID]
		return t.sync(ctx, tenantID, p.AgentID, services, &c, func(ctx context.Context, c *Cursor) (Seen, bool, error) {
			return Seen{Agent: a, Presence: p, HasPresence: true}, true, nil
		})
	})
}

// load reads what a whole-tenant pass needs: agent states, services and cursors.
func (t *Tracker) load(ctx context.Context, tenantID string) (map[string]routing.AgentState, []routing.Service, map[string]Cursor, error) {
	as, err := t.o.Routes.ListAgentStates(ctx, tenantID)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("user states: list agent states: %w", err)
	}
	services, err := t.o.Routes.ListServices(ctx, tenantID)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("user states: list services: %w", err)
	}
	cs, err := t.o.Store.ListUserStateCursors(ctx, tenantID)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("user states: list cursors: %w", err)
	}
	agents := make(map[string]routing.AgentState, len(as))
	for _, a := range as {
		agents[a.AgentID] = a
	}
	cursors := make(map[string]Cursor, len(cs))
	for _, c := range cs {
		cursors[c.AgentID] = c
	}
	return agents, services, cursors, nil
}

// each runs fn for 0..n-1, at most Concurrency at once, and joins the errors.
func (t *Tracker) each(ctx context.Context, n int, fn func(context.Context, int) error) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, t.o.Concurrency)
	)
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(ctx, i); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// SyncTenant observes every agent of a tracking tenant now: the periodic sweep and
// the start of tracking. States that ended by themselves (ACW, RONA, a ring) get their
// records at their true instants, records roll over at UTC midnight, selectability
// follows service changes, and agents no longer present are closed.
func (t *Tracker) SyncTenant(ctx context.Context, tenantID string) error {
	agents, services, cursors, err := t.load(ctx, tenantID)
	if err != nil {
		return err
	}
	ps, err := t.presences(ctx, tenantID)
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(agents)+len(cursors))
	for id := range agents {
		ids = append(ids, id)
	}
	for id := range cursors {
		if _, ok := agents[id]; !ok {
			ids = append(ids, id)
		}
	}
	return t.each(ctx, len(ids), func(ctx context.Context, i int) error {
		id := ids[i]
		c, hasCursor := cursors[id]
		var cp *Cursor
		if hasCursor {
			cp = &c
		}
		return t.sync(ctx, tenantID, id, services, cp, func(ctx context.Context, c *Cursor) (Seen, bool, error) {
			a, ok := agents[id]
			p, hasP := ps[id]
			return Seen{Agent: a, Presence: p, HasPresence: hasP}, ok, nil
		})
	})
}

// Stop closes every open record of the tenant now and removes its cursors (tracking
// turned off, tenant deleted). Idempotent.
func (t *Tracker) Stop(ctx context.Context, tenantID string) error {
	t.remember(tenantID, false, t.o.Now())
	cs, err := t.o.Store.ListUserStateCursors(ctx, tenantID)
	if err != nil || len(cs) == 0 {
		return err
	}
	services, err := t.o.Routes.ListServices(ctx, tenantID)
	if err != nil {
		return fmt.Errorf("user states: list services: %w", err)
	}
	return t.each(ctx, len(cs), func(ctx context.Context, i int) error {
		c := cs[i]
		for attempt := 0; ; attempt++ {
			err := t.o.Store.CommitUserStates(ctx, c, true, Close(c, services, t.o.Now()))
			if errors.Is(err, fault.ErrNotFound) {
				return nil
			}
			if !lost(err) || attempt == maxAttempts {
				return err
			}
			if err := fault.Backoff(ctx, attempt); err != nil {
				return err
			}
			if c, err = t.o.Store.GetUserStateCursor(ctx, tenantID, c.AgentID); err != nil {
				if errors.Is(err, fault.ErrNotFound) {
					return nil
				}
				return err
			}
		}
	})
}

// SweepResult says what a sweep did.
type SweepResult struct {
	Tracked, Stopped int
	Failed           map[string]error // by tenant id
}

// Sweep runs SyncTenant for every tenant that tracks user states and Stop for every
// other (a no-op query when it has no cursors: it finishes a Stop that failed).
func (t *Tracker) Sweep(ctx context.Context) (SweepResult, error) {
	res := SweepResult{Failed: map[string]error{}}
	ts, err := t.o.Tenants.ListTenants(ctx)
	if err != nil {
		return res, fmt.Errorf("user states: list tenants: %w", err)
	}
	now := t.o.Now()
	for i := range ts {
		on := trackingOn(&ts[i])
		t.remember(ts[i].ID, on, now)
		if on {
			res.Tracked++
			err = t.SyncTenant(ctx, ts[i].ID)
		} else {
			res.Stopped++
			err = t.Stop(ctx, ts[i].ID)
		}
		if err != nil {
			res.Failed[ts[i].ID] = err
		}
	}
	return res, nil
}

// TrackedRoutes is a routing.Store that tells the tracker about every agent-state
// write. A failure to record is logged, not returned: the routing write happened, and
// the next sweep records the state the agent is in.
type TrackedRoutes struct {
	routing.Store
	Tracker *Tracker
	Log     func(context.Context) *slog.Logger
}

func (s TrackedRoutes) observe(ctx context.Context, tenantID, agentID string) {
	if err := s.Tracker.ObserveAgent(ctx, tenantID, agentID); err != nil && s.Log != nil {
		s.Log(ctx).Warn("user state not recorded", "tenant", tenantID, "err", err)
	}
}

// ReplaceAgentState implements routing.Store.
func (s TrackedRoutes) ReplaceAgentState(ctx context.Context, a routing.AgentState) (routing.AgentState, error) {
	out, err := s.Store.ReplaceAgentState(ctx, a)
	if err == nil {
		s.observe(ctx, a.TenantID, a.AgentID)
	}
	return out, err
}

// UpdateAgentState implements routing.Store.
func (s TrackedRoutes) UpdateAgentState(ctx context.Context, tenantID, agentID string, fn func(*routing.AgentState) error) (routing.AgentState, error) {
	out, err := s.Store.UpdateAgentState(ctx, tenantID, agentID, fn)
	if err == nil {
		s.observe(ctx, tenantID, agentID)
	}
	return out, err
}
