package routing

import (
	"time"

	"github.com/teamscc/teamscc/shared/presence"
)

// Phase is where an agent is in the routing cycle, one value at a time: held by one
// of our tasks (ringing or connected), blocked (RONA, ACW), or idle.
type Phase string

const (
	PhaseIdle      Phase = "Idle"
	PhaseRinging   Phase = "Ringing" // reserved for or ringing with one of our tasks
	PhaseConnected Phase = "Connected"
	PhaseRONA      Phase = "RONA"
	PhaseACW       Phase = "ACW"
)

// PhaseAt is the agent's phase at t, by the precedence eligibility uses: a hold first,
// then RONA (see InRONA for offlineAt), then ACW.
func (a *AgentState) PhaseAt(t, offlineAt time.Time) Phase {
	switch {
	case a.Held(t) && a.Hold.Phase == HoldConnected:
		return PhaseConnected
	case a.Held(t):
		return PhaseRinging
	case a.InRONA(t, offlineAt):
		return PhaseRONA
	case a.InACW(t):
		return PhaseACW
	}
	return PhaseIdle
}

// NextChange is the first instant after t at which a stored instant (a hold's end,
// the end of RONA or of ACW) changes what PhaseAt or Selectable answer; zero when
// none is ahead.
func (a *AgentState) NextChange(t time.Time) time.Time {
	var next time.Time
	consider := func(u time.Time) {
		if u.After(t) && (next.IsZero() || u.Before(next)) {
			next = u
		}
	}
	if a.Hold != nil {
		consider(a.Hold.Until)
	}
	consider(a.RONAUntil)
	consider(a.ACWUntil)
	return next
}

// Selectable reports whether at t at least one of the services would offer the agent a
// task that asks for no particular skill: the agent is a member, on duty or active,
// not held, in RONA or in ACW, and the service's presence policy accepts p (ok=false:
// no presence known). Services pending deletion or of type None select nobody.
func Selectable(services []Service, a *AgentState, p presence.Presence, ok bool, t time.Time) bool {
	for i := range services {
		svc := &services[i]
		if svc.PendingDeletion || svc.Type == None || !member(svc, a) {
			continue
		}
		var offlineAt time.Time
		if ok {
			offlineAt = p.OfflineAt
		}
		if reason, _ := eligible(svc, a, nil, t, offlineAt); reason != "" {
			if reason == ReasonRinging || reason == ReasonConnected || reason == ReasonRONA || reason == ReasonACW {
				return false // blocked in every service
			}
			continue
		}
		if PresenceReason(p, ok, &svc.Distribution) == "" {
			return true
		}
	}
	return false
}
