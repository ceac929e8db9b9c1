package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/teamscc/teamscc/shared/access"
	"github.com/teamscc/teamscc/shared/funchost"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/tenant"
)

// QueueView is a service's live queue, as GET .../services/{serviceId}/queue answers
// it for the portal's live view: the open tasks (waiting, ringing, connected) with who
// rings and who is connected, and the service's agents with their routing phase and
// presence, all as of At. Agent ids, names and UPNs are user identifiers: masked for a
// partner the tenant does not let see them, alike wherever they appear, as every admin
// view masks them. Nothing of the customers (caller numbers, outbound customers) is
// in it.
type QueueView struct {
	TenantID        string              `json:"tenantId"`
	ServiceID       string              `json:"serviceId"`
	Name            string              `json:"name,omitempty"`
	Type            routing.ServiceType `json:"type"`
	Closed          bool                `json:"closed"`
	PendingDeletion bool                `json:"pendingDeletion,omitempty"`
	At              time.Time           `json:"at"`
	Counts          QueueCounts         `json:"counts"`
	Tasks           []QueueTask         `json:"tasks"`
	Agents          []QueueAgent        `json:"agents"`
}

// QueueCounts sums up a queue: tasks by state, agents by phase (Idle: not ringing,
// connected, in RONA or in after-call work; presence and duty not considered).
type QueueCounts struct {
	Waiting   int `json:"waiting"`
	Ringing   int `json:"ringing"`
	Connected int `json:"connected"`
	Agents    int `json:"agents"`
	Idle      int `json:"idle"`
}

// QueueTask is one open task, in the order routing takes them (priority, then age).
type QueueTask struct {
	ID             string            `json:"id"`
	CallID         string            `json:"callId,omitempty"`
	Kind           string            `json:"kind"` // "call" or "outbound"
	State          routing.TaskState `json:"state"`
	Priority       routing.Priority  `json:"priority"`
	Created        time.Time         `json:"created"`
	WaitingSeconds int               `json:"waitingSeconds"` // since Created, as of the view's At
	Attempts       int               `json:"attempts"`
	OfferedTo      []QueueRef        `json:"offeredTo,omitempty"` // ringing now (state Offered)
	RingExpiry     *time.Time        `json:"ringExpiry,omitempty"`
	ConnectedAgent *QueueRef         `json:"connectedAgent,omitempty"`
	ConnectedAt    *time.Time        `json:"connectedAt,omitempty"`
}

// QueueRef names an agent in a view.
type QueueRef struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName,omitempty"`
}

// QueueAgent is one agent of the service (its roster) as routing sees them now.
type QueueAgent struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName,omitempty"`
	UPN         string `json:"upn,omitempty"`
	// Phase is Idle, Ringing, Connected, RONA or ACW (routing.Phase); Since and Until
	// bound it where known (a ring's start and end, RONA's and ACW's end).
	Phase routing.Phase `json:"phase"`
	Since *time.Time    `json:"since,omitempty"`
	Until *time.Time    `json:"until,omitempty"`
	// TaskID is the task of this service the agent rings with or is connected to.
	TaskID       string                `json:"taskId,omitempty"`
	Availability presence.Availability `json:"availability"`
	Activity     string                `json:"activity,omitempty"`
	// Active is false when the agent switched this Teams-based service off; OffDuty
	// when the agent's duty profile is off duty.
	Active  bool `json:"active"`
	OffDuty bool `json:"offDuty,omitempty"`
}

// queue is GET /api/tenants/{tenantId}/services/{serviceId}/queue: one read of the
// service's queue and roster (routing.Store.LoadMatch, whose cost follows the open
// tasks and the members, not the tenant), and the agents' names from the cache
// (agentNames), so a portal polling every few seconds does not read the whole tenant
// each time.
func (p *portal) queue(w http.ResponseWriter, r *http.Request) {
	ids, err := pathIDs(r, "tenantId", "serviceId")
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	q, err := p.routes.LoadMatch(r.Context(), ids[0], ids[1])
	if err != nil {
		funchost.WriteError(w, r, fmt.Errorf("service: %w", err))
		return
	}
	members := make([]string, len(q.Members))
	for i, m := range q.Members {
		members[i] = m.State.AgentID
	}
	names, err := p.names.get(r.Context(), ids[0], members, p.now())
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	funchost.WriteJSON(w, http.StatusOK, newQueueView(q, names, adminFrom(r.Context()).mask, p.now().UTC()))
}

// namesTTL is how long the admin views use a tenant's agent names before reading
// them again: a renamed agent shows under the new name within it.
const namesTTL = 30 * time.Second

// agentNames caches each tenant's agent names for the admin views that name agents
// (the live queue, a task's explanation, a call's timeline): the tenant's agents are
// read at most every namesTTL, or when a view names an agent the cache does not know.
type agentNames struct {
	list func(ctx context.Context, tenantID string) ([]tenant.Agent, error)

	mu       sync.Mutex
	byTenant map[string]namesEntry
}

type namesEntry struct {
	at    time.Time
	names map[string]AgentRef
}

// get returns the names of tenantID's agents: cached when read less than namesTTL
// ago and knowing every agent of ids, else read now. An agent without a directory
// entry maps to the zero AgentRef. Readers share the map; nobody writes it once it is
// cached.
func (c *agentNames) get(ctx context.Context, tenantID string, ids []string, now time.Time) (map[string]AgentRef, error) {
	c.mu.Lock()
	e, ok := c.byTenant[tenantID]
	c.mu.Unlock()
	fresh := ok && now.Sub(e.at) < namesTTL
	for i := 0; fresh && i < len(ids); i++ {
		_, fresh = e.names[ids[i]]
	}
	if fresh {
		return e.names, nil
	}
	agents, err := c.list(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	next := namesEntry{at: now, names: make(map[string]AgentRef, len(agents))}
	for _, a := range agents {
		next.names[a.ID] = AgentRef{DisplayName: a.DisplayName, UPN: a.UPN}
	}
	// A member with no directory entry (yet) is remembered as nameless, so that it does
	// not make every poll read the tenant again; the next read names it.
	nameless := func(id string) {
		if _, ok := next.names[id]; !ok {
			next.names[id] = AgentRef{}
		}
	}
	for id, ref := range e.names {
		if ref == (AgentRef{}) {
			nameless(id)
		}
	}
	for _, id := range ids {
		nameless(id)
	}
	e = next
	c.mu.Lock()
	if c.byTenant == nil {
		c.byTenant = map[string]namesEntry{}
	}
	c.byTenant[tenantID] = e
	c.mu.Unlock()
	return e.names, nil
}

// newQueueView builds the view of q at now, naming agents from names and masking
// every user identifier through mask.
func newQueueView(q routing.Queue, names map[string]AgentRef, mask access.Masker, now time.Time) QueueView {
	s := q.Service
	v := QueueView{TenantID: s.TenantID, ServiceID: s.ID, Name: s.Name, Type: s.Type, Closed: s.Calls.Closed,
		PendingDeletion: s.PendingDeletion, At: now, Tasks: []QueueTask{}, Agents: []QueueAgent{}}
	ref := func(id string) QueueRef {
		return QueueRef{ID: mask.User(id), DisplayName: mask.User(names[id].DisplayName)}
	}
	tasks := slices.Clone(q.Tasks)
	sort.SliceStable(tasks, func(i, j int) bool { return tasks[i].Before(tasks[j]) })
	for _, t := range tasks {
		if !t.Open() {
			continue
		}
		qt := QueueTask{ID: t.ID, CallID: t.CallID, Kind: "call", State: t.State, Priority: t.Priority, Created: t.Created,
			WaitingSeconds: max(0, int(now.Sub(t.Created)/time.Second)), Attempts: t.Attempts}
		if qt.Priority == "" {
			qt.Priority = routing.Normal
		}
		if t.Outbound != nil {
			qt.Kind = "outbound"
		}
		switch t.State {
		case routing.Waiting:
			v.Counts.Waiting++
		case routing.Offered:
			v.Counts.Ringing++
			for _, a := range t.OfferedTo {
				qt.OfferedTo = append(qt.OfferedTo, ref(a))
			}
			qt.RingExpiry = timePtr(t.RingExpiry)
		case routing.Connected:
			v.Counts.Connected++
			if t.ConnectedAgent != "" {
				c := ref(t.ConnectedAgent)
				qt.ConnectedAgent = &c
			}
			qt.ConnectedAt = timePtr(t.ConnectedAt)
		}
		v.Tasks = append(v.Tasks, qt)
	}
	for _, m := range q.Members {
		st := &m.State
		var offlineAt time.Time
		av := presence.PresenceUnknown
		if m.HasPresence {
			offlineAt, av = m.Presence.OfflineAt, m.Presence.Availability
		}
		a := QueueAgent{ID: mask.User(st.AgentID), DisplayName: mask.User(names[st.AgentID].DisplayName), UPN: mask.User(names[st.AgentID].UPN),
			Phase: st.PhaseAt(now, offlineAt), Availability: av, Active: !slices.Contains(st.Inactive, s.ID), OffDuty: st.Duty.OffDuty}
		if m.HasPresence {
			a.Activity = m.Presence.Activity
		}
		switch a.Phase {
		case routing.PhaseRinging, routing.PhaseConnected:
			a.Since = timePtr(st.Hold.Since)
			if a.Phase == routing.PhaseRinging {
				a.Until = timePtr(st.Hold.Until)
			}
			if st.Hold.ServiceID == s.ID {
				a.TaskID = st.Hold.TaskID
			}
		case routing.PhaseRONA:
			a.Until = timePtr(st.RONAUntil)
		case routing.PhaseACW:
			a.Since, a.Until = timePtr(st.ACWStart), timePtr(st.ACWUntil)
		case routing.PhaseIdle:
			v.Counts.Idle++
		}
		v.Agents = append(v.Agents, a)
	}
	v.Counts.Agents = len(v.Agents)
	sort.SliceStable(v.Agents, func(i, j int) bool {
		a, b := v.Agents[i], v.Agents[j]
		if c := strings.Compare(strings.ToLower(a.DisplayName), strings.ToLower(b.DisplayName)); c != 0 {
			return c < 0
		}
		return a.ID < b.ID
	})
	return v
}
