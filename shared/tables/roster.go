package tables

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/routing"
)

// Rosters (routing.Store's "Rosters"): a copy of each member's agent state and
// presence in its service's queue partition, so a kick reads its queue and its
// members in one range query and nothing of the tenant's other agents.
//
//	RoutingQueues  PK tenant_service  RK "a_" agent id   Data (JSON AgentState), AgentETag (the ETag Data was
//	                                                     copied at), PAvailability, PActivity, PSource,
//	                                                     PObservedAt, POfflineAt (the presence; absent: none)
//	RoutingAgents  PK tenant          RK "~members"      At: rewritten (new ETag) in the same transaction as
//	                                                     every agent write that changes the agent's services
//	RoutingAgents  PK tenant          RK agent id        ... + Svc: the agent's services (AllServices), comma-joined
//
// Agent-state writes copy the new state into the rosters of the agent's services
// (UpsertEntity, merge mode, so the presence columns stay); a change that Loosens is
// copied before the write of the state too, with the ETag it is based on. Presences
// reach the rosters in SavePresences, which finds each agent's services in a
// per-tenant cache of the Svc columns that is trusted as long as the "~members" row
// keeps its ETag (one point read).
const (
	rosterPrefix = "a_"
	membersRow   = "~members"
)

func rosterRK(agentID string) string { return rosterPrefix + agentID }

// rosterRow is the roster row of agent a in service serviceID: its state copied at
// etag and, when p is not nil, its presence.
func rosterRow(a routing.AgentState, serviceID, etag string, p *presence.Presence) (row, error) {
	data, err := json.Marshal(a)
	if err != nil {
		return row{}, err
	}
	pr := props{"Data": string(data), "AgentETag": etag}
	if p != nil {
		presenceProps(pr, "P", *p)
	}
	return newRow("roster entry", "serviceId", queuePK(a.TenantID, serviceID), "agentId", rosterRK(a.AgentID), pr)
}

// presenceColumns is the presence part of a roster row, for a merge.
func presenceColumns(tenantID, serviceID string, p presence.Presence) (row, error) {
	return newRow("roster presence", "serviceId", queuePK(tenantID, serviceID), "agentId", rosterRK(p.AgentID), presenceProps(props{}, "P", p))
}

func decodeMember(r record) (routing.Member, error) {
	var m routing.Member
	if err := r.data("roster entry", &m.State); err != nil {
		return m, err
	}
	m.State.ETag = r.str("AgentETag")
	if !r.has("PAvailability") {
		return m, nil
	}
	p, err := decodePresence(r, "P", m.State.AgentID)
	m.Presence, m.HasPresence = p, err == nil
	return m, err
}

var mergeUpsert = &aztables.UpsertEntityOptions{UpdateMode: aztables.UpdateModeMerge}

// copyToRosters writes a's state, copied at etag, into the rosters of services; the
// presence columns are written for the services in withPresence (agents joining a
// service), from p (nil: the agent has no presence yet; the columns are left out).
// The writes go out concurrently, one request per service.
func (s *Store) copyToRosters(ctx context.Context, a routing.AgentState, etag string, services []string, p *presence.Presence, withPresence []string) error {
	if len(services) == 0 {
		return nil
	}
	c := s.client(tableRoutingQueues)
	errs := make([]error, len(services))
	var wg sync.WaitGroup
	for i, sv := range services {
		var pp *presence.Presence
		if slices.Contains(withPresence, sv) {
			pp = p
		}
		r, err := rosterRow(a, sv, etag, pp)
		if err != nil {
			return fmt.Errorf("roster of %s: %w", sv, err)
		}
		wg.Go(func() {
			_, err := c.UpsertEntity(ctx, r.body, mergeUpsert)
			errs[i] = wrap("roster of "+sv, err)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// leaveRosters removes the agent's rows from the rosters of services (best effort: a
// row left behind carries an ETag the agent's state no longer has, so a reservation
// based on it fails and the kick reads the agent afresh).
func (s *Store) leaveRosters(ctx context.Context, tenantID, agentID string, services []string) {
	c := s.client(tableRoutingQueues)
	any := azcore.ETagAny
	var wg sync.WaitGroup
	for _, sv := range services {
		wg.Go(func() {
			_, _ = c.DeleteEntity(ctx, queuePK(tenantID, sv), rosterRK(agentID), &aztables.DeleteEntityOptions{IfMatch: &any})
		})
	}
	wg.Wait()
}

// storedPresence reads the agent's stored presence (nil when it has none).
func (s *Store) storedPresence(ctx context.Context, tenantID, agentID string) (*presence.Presence, error) {
	resp, err := s.presences.GetEntity(ctx, tenantID, agentID, nil)
	if err != nil {
		if err = classify(err); errors.Is(err, fault.ErrNotFound) {
			return nil, nil
		}
		return nil, fmt.Errorf("read presence: %w", err)
	}
	r, err := decodeRecord(resp.Value)
	if err != nil {
		return nil, err
	}
	p, err := decodePresence(r, "", agentID)
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// fillPresence writes the agent's stored presence into its row of a roster it has
// just joined, unless it is the one the join copied (one read) or the row already
// holds a presence at least as recent (written by a SavePresences that already knew
// the membership). The join's own copy was read
// before the membership was stored; a SavePresences in between may have copied a
// newer presence to every roster but this one: reading again now, after the
// membership is stored, closes that gap (SavePresences copies to the rosters it
// knows, stores, then looks at the memberships again).
func (s *Store) fillPresence(ctx context.Context, tenantID, agentID string, services []string, copied *presence.Presence) error {
	p, err := s.storedPresence(ctx, tenantID, agentID)
	if err != nil || p == nil || copied != nil && copied.ObservedAt.Equal(p.ObservedAt) && copied.Same(*p) {
		return err // nothing newer than what the join copied
	}
	var errs []error
	for _, sv := range services {
		errs = append(errs, s.fillRosterPresence(ctx, tenantID, sv, *p))
	}
	return errors.Join(errs...)
}

// fillRosterPresence writes p into the agent's row of one roster unless the row holds
// a presence at least as recent.
func (s *Store) fillRosterPresence(ctx context.Context, tenantID, serviceID string, p presence.Presence) error {
	c := s.client(tableRoutingQueues)
	for attempt := 0; attempt < maxAttempts; attempt++ {
		resp, err := c.GetEntity(ctx, queuePK(tenantID, serviceID), rosterRK(p.AgentID), nil)
		if err != nil {
			return wrap("read roster entry", err)
		}
		r, err := decodeRecord(resp.Value)
		if err != nil {
			return err
		}
		if at, _ := r.time("PObservedAt"); r.has("PAvailability") && !at.Before(p.ObservedAt) {
			return nil
		}
		pr, err := presenceColumns(tenantID, serviceID, p)
		if err != nil {
			return err
		}
		etag := resp.ETag
		_, err = c.UpdateEntity(ctx, pr.body, &aztables.UpdateEntityOptions{IfMatch: &etag, UpdateMode: aztables.UpdateModeMerge})
		if err = classify(err); !errors.Is(err, fault.ErrPrecondition) {
			return wrap("fill roster presence", err)
		}
		if err := fault.Backoff(ctx, attempt); err != nil {
			return err
		}
	}
	return fmt.Errorf("fill roster presence: gave up after %d lost races: %w", maxAttempts, fault.ErrPrecondition)
}

// memberCache is each tenant's agents' services as the Svc columns say, valid while
// the tenant's "~members" row keeps the ETag it was read at.
type memberCache struct {
	mu sync.Mutex
	m  map[string]tenantMembers
}

type tenantMembers struct {
	version  string
	services map[string][]string // agent id → services
}

// membersVersion reads the ETag of the tenant's "~members" row, creating the row if
// there is none (a store written before rosters existed): "" never passes for a
// version, so the first look lists the agents.
func (s *Store) membersVersion(ctx context.Context, tenantID string) (string, error) {
	c := s.client(tableRoutingAgents)
	resp, err := c.GetEntity(ctx, tenantID, membersRow, nil)
	if err == nil {
		return string(resp.ETag), nil
	}
	if err = classify(err); !errors.Is(err, fault.ErrNotFound) {
		return "", fmt.Errorf("read membership version: %w", err)
	}
	r, err := membersStamp(tenantID)
	if err != nil {
		return "", err
	}
	up, err := c.UpsertEntity(ctx, r.body, mergeUpsert)
	if err != nil {
		return "", wrap("write membership version", err)
	}
	return string(up.ETag), nil
}

// membersStamp is the "~members" row: any write of it changes its ETag.
func membersStamp(tenantID string) (row, error) {
	return newRow("membership version", "tenantId", tenantID, "agentId", membersRow, props{"At": time.Now().UTC()})
}

// memberships returns the tenant's agent → services map: from the cache when the
// version is unchanged (one point read), else listed anew (the RowKey and Svc
// columns of the tenant's agent states; Data only for rows written before Svc).
func (s *Store) memberships(ctx context.Context, tenantID string) (map[string][]string, string, error) {
	v, err := s.membersVersion(ctx, tenantID)
	if err != nil {
		return nil, "", err
	}
	s.members.mu.Lock()
	cur, ok := s.members.m[tenantID]
	s.members.mu.Unlock()
	if ok && cur.version == v {
		return cur.services, v, nil
	}
	m := map[string][]string{}
	var legacy []string
	c := s.client(tableRoutingAgents)
	err = listAll(ctx, c, "PartitionKey eq "+odataString(tenantID), "RowKey,Svc", func(r record) error {
		id := r.str("RowKey")
		switch {
		case strings.HasPrefix(id, "~"):
		case !r.has("Svc"):
			legacy = append(legacy, id)
		case r.str("Svc") != "":
			m[id] = strings.Split(r.str("Svc"), ",")
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("list memberships: %w", err)
	}
	for _, id := range legacy {
		a, err := s.GetAgentState(ctx, tenantID, id)
		if err != nil && !errors.Is(err, fault.ErrNotFound) {
			return nil, "", err
		}
		if svcs := a.AllServices(); len(svcs) > 0 {
			m[id] = svcs
		}
	}
	s.members.mu.Lock()
	if s.members.m == nil {
		s.members.m = map[string]tenantMembers{}
	}
	s.members.m[tenantID] = tenantMembers{version: v, services: m}
	s.members.mu.Unlock()
	return m, v, nil
}

// Memberships implements routing.Store from the membership cache.
func (s *Store) Memberships(ctx context.Context, tenantID string, agentIDs []string) (map[string][]string, error) {
	if err := checkKey("tenantId", tenantID); err != nil {
		return nil, fmt.Errorf("memberships: %w", err)
	}
	all, _, err := s.memberships(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(agentIDs))
	for _, id := range agentIDs {
		if svcs, ok := all[id]; ok {
			out[id] = slices.Clone(svcs)
		}
	}
	return out, nil
}

// copyPresences merges presences into the roster rows of each agent's services
// (members: agent → services), one transaction per 100 rows of a roster, a few at a
// time. A row that
// is gone (the agent just left) fails its transaction with 404: that roster's rows
// are then merged one by one, skipping the missing. only, when not nil, limits the
// copy to the agent\x00service pairs it names.
func (s *Store) copyPresences(ctx context.Context, tenantID string, ps []presence.Presence, members map[string][]string, only map[string]bool) error {
	byService := map[string][]row{}
	for _, p := range ps {
		for _, sv := range members[p.AgentID] {
			if only != nil && !only[p.AgentID+"\x00"+sv] {
				continue
			}
			r, err := presenceColumns(tenantID, sv, p)
			if err != nil {
				return err
			}
			byService[sv] = append(byService[sv], r)
		}
	}
	c := s.client(tableRoutingQueues)
	var batches [][]row
	for _, rows := range byService {
		batches = append(batches, chunk(dedupe(rows))...)
	}
	// Concurrently, a few at a time: the batches are of different partitions, or of
	// one roster's disjoint rows.
	err := inBatches(ctx, len(batches), false, func(ctx context.Context, i int) error {
		b := batches[i]
		acts := make([]action, len(b))
		for j, r := range b {
			acts[j] = action{kind: aztables.TransactionTypeUpdateMerge, row: r}
		}
		err := submit(ctx, c, acts)
		if errors.Is(err, fault.ErrNotFound) {
			err = mergeEach(ctx, c, b)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("copy presences to rosters: %w", err)
	}
	return nil
}

// mergeEach merges rows one by one into the rows that exist.
func mergeEach(ctx context.Context, c *aztables.Client, rows []row) error {
	any := azcore.ETagAny
	for _, r := range rows {
		_, err := c.UpdateEntity(ctx, r.body, &aztables.UpdateEntityOptions{IfMatch: &any, UpdateMode: aztables.UpdateModeMerge})
		if err = classify(err); err != nil && !errors.Is(err, fault.ErrNotFound) {
			return err
		}
	}
	return nil
}

// presencesToRosters is SavePresences' roster part: copy, and if the memberships
// changed while the presences were being stored (saved runs after the copy), copy
// again to the memberships that are new, so an agent who joined a service in between
// is not left with an older presence there (see fillPresence).
func (s *Store) presencesToRosters(ctx context.Context, tenantID string, ps []presence.Presence, saved func() error) error {
	before, v, err := s.memberships(ctx, tenantID)
	if err != nil {
		return err
	}
	if err := s.copyPresences(ctx, tenantID, ps, before, nil); err != nil {
		return err
	}
	if err := saved(); err != nil {
		return err
	}
	after, v2, err := s.memberships(ctx, tenantID)
	if err != nil || v2 == v {
		return err
	}
	added := map[string]bool{}
	for _, p := range ps {
		for _, sv := range after[p.AgentID] {
			if !slices.Contains(before[p.AgentID], sv) {
				added[p.AgentID+"\x00"+sv] = true
			}
		}
	}
	if len(added) == 0 {
		return nil
	}
	return s.copyPresences(ctx, tenantID, ps, after, added)
}

// buildRoster writes the roster of a service whose row predates rosters: every agent
// of the tenant whose AllServices name the service, with its stored presence; then it
// marks the service row (Roster). Once per service, at the cost of reading the
// tenant's agents and presences. An agent written meanwhile may be copied at its
// older state (and ETag); its next write corrects the copy.
func (s *Store) buildRoster(ctx context.Context, tenantID, serviceID string) ([]routing.Member, error) {
	agents, err := s.ListAgentStates(ctx, tenantID)
	if err != nil {
		return nil, fmt.Errorf("build roster: %w", err)
	}
	ps, err := s.LoadPresences(ctx, tenantID)
	if err != nil {
		return nil, fmt.Errorf("build roster: %w", err)
	}
	byID := make(map[string]*presence.Presence, len(ps))
	for i := range ps {
		byID[ps[i].AgentID] = &ps[i]
	}
	members := []routing.Member{}
	var rows []row
	for _, a := range agents {
		if !slices.Contains(a.AllServices(), serviceID) {
			continue
		}
		p := byID[a.AgentID]
		r, err := rosterRow(a, serviceID, a.ETag, p)
		if err != nil {
			return nil, fmt.Errorf("build roster: %w", err)
		}
		rows = append(rows, r)
		m := routing.Member{State: a}
		if p != nil {
			m.Presence, m.HasPresence = *p, true
		}
		members = append(members, m)
	}
	c := s.client(tableRoutingQueues)
	if err := upsertAll(ctx, c, rows); err != nil {
		return nil, fmt.Errorf("build roster: %w", err)
	}
	mark, err := newRow("service", "tenantId", queuePK(tenantID, serviceID), "serviceId", serviceRow, props{"Roster": true})
	if err != nil {
		return nil, err
	}
	any := azcore.ETagAny
	if _, err := c.UpdateEntity(ctx, mark.body, &aztables.UpdateEntityOptions{IfMatch: &any, UpdateMode: aztables.UpdateModeMerge}); err != nil {
		return nil, wrap("build roster: mark the service", err)
	}
	return members, nil
}
