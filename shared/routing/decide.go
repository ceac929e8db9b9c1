package routing

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/teamscc/teamscc/shared/presence"
)

// Reason codes of an explain entry: why an agent was chosen, passed over or skipped.
const (
	ReasonChosen       = "Chosen"       // offered the task
	ReasonEligible     = "Eligible"     // eligible, ranked after the chosen
	ReasonLostRace     = "LostRace"     // eligible, but another service reserved the agent first
	ReasonAlreadyTried = "AlreadyTried" // offered this task before and did not take it; others go first
	ReasonNotMember    = "NotMember"    // not a member of the service (not listed, only counted)
	ReasonInactive     = "Inactive"     // switched the Teams-based service's active flag off
	ReasonOffDuty      = "OffDuty"      // OffDuty responsibility profile
	ReasonNotOnDuty    = "NotOnDuty"    // the duty profile does not name this service
	ReasonMissingSkill = "MissingSkill" // lacks a required skill or level (Detail names it)
	ReasonZeroWeight   = "ZeroWeight"   // weight 0 in a weighted-random service
	ReasonNoPresence   = "NoPresence"   // no presence known
	ReasonOffline      = "Offline"
	ReasonUnknown      = "PresenceUnknown"
	ReasonDoNotDisturb = "DoNotDisturb"
	ReasonPresenting   = "Presenting"
	ReasonInACall      = "InACall"           // extended presence: Busy in a call (never delivered)
	ReasonInConference = "InAConferenceCall" // extended presence: in a conference call
	ReasonBusy         = "BusyNotAllowed"    // Busy, and the service does not allow Busy
	ReasonAway         = "AwayNotAllowed"    // Away/BeRightBack, and the service does not allow Away
	ReasonRinging      = "Ringing"           // reserved for or ringing with one of our tasks (any service)
	ReasonConnected    = "Connected"         // connected to one of our tasks (any service)
	ReasonRONA         = "RONA"              // blocked after a no-answer or decline
	ReasonACW          = "ACW"               // in after-call work
	ReasonNotRouting   = "ServiceNotRouting" // the service is PendingDeletion or of type None
)

// PresenceReason applies the service's presence policy (SPEC §4) to one agent's
// presence: "" when a task may be delivered, else the reason code. ok=false means no
// presence is known. With extended presence an activity of InACall, InAConferenceCall
// or Presenting refuses whatever the availability; with basic presence (no activity)
// Busy is decided by AllowBusy alone, which is why a service that must never
// double-book leaves AllowBusy off.
func PresenceReason(p presence.Presence, ok bool, d *Distribution) string {
	if !ok {
		return ReasonNoPresence
	}
	if p.Source != presence.SourceBasic {
		switch p.Activity {
		case presence.ActivityInACall:
			return ReasonInACall
		case presence.ActivityInAConferenceCall:
			return ReasonInConference
		case presence.ActivityPresenting:
			return ReasonPresenting
		}
	}
	switch p.Availability {
	case presence.Available, presence.AvailableIdle:
		return ""
	case presence.Busy, presence.BusyIdle:
		if d.AllowBusy {
			return ""
		}
		return ReasonBusy
	case presence.Away, presence.BeRightBack:
		if d.AllowAway {
			return ""
		}
		return ReasonAway
	case presence.DoNotDisturb:
		return ReasonDoNotDisturb
	case presence.Offline:
		return ReasonOffline
	default:
		return ReasonUnknown
	}
}

// Entry is one agent in a decision's explanation.
type Entry struct {
	AgentID string `json:"agentId"`
	Reason  string `json:"reason"`
	Detail  string `json:"detail,omitempty"`
}

// Input is everything one routing decision looks at.
type Input struct {
	Service  Service
	Task     Task
	Agents   []AgentState                 // the tenant's agents with their routing state
	Presence map[string]presence.Presence // by agent id
	Now      time.Time
	// Rand draws for WeightedRandom; nil uses a generator seeded from the task id
	// and attempt, so a decision is reproducible.
	Rand *rand.Rand
}

// Decision is the outcome of Decide.
type Decision struct {
	// Order holds indexes into Input.Agents of the eligible agents, best first. The
	// engine reserves them in this order (Broadcast: the first N at once).
	Order []int
	// Entries explain every agent considered, in Input.Agents order; Entries[i] for
	// Order[k] has Reason Eligible until the engine marks the outcome.
	Entries []Entry
	// EntryOf maps an index into Input.Agents to its index in Entries (-1: not a
	// member, not listed).
	EntryOf  []int32
	Required []SkillRequirement
}

// Decide is the pure routing decision for one task: who of the tenant's agents may
// take it, and in which order to try them. It never writes; it allocates a fixed
// number of slices whatever the number of agents (plus a few strings for skipped
// skills).
func Decide(in Input) Decision {
	svc := &in.Service
	d := Decision{
		Entries:  make([]Entry, 0, len(in.Agents)),
		EntryOf:  make([]int32, len(in.Agents)),
		Required: svc.Requirements(in.Now.Sub(in.Task.Created)),
	}
	if svc.PendingDeletion || svc.Type == None {
		for i := range d.EntryOf {
			d.EntryOf[i] = -1
		}
		return d
	}
	strategy := svc.Strategy()
	type ranked struct {
		idx   int
		key   float64
		key2  int64
		tried bool
	}
	rank := make([]ranked, 0, len(in.Agents))
	var rng *rand.Rand
	if strategy == WeightedRandom {
		rng = in.Rand
		if rng == nil {
			rng = rand.New(rand.NewPCG(seed(in.Task.ID), uint64(in.Task.Attempts)))
		}
	}
	var serialPos map[string]int
	if strategy == Serial && len(svc.Distribution.SerialOrder) > 0 {
		serialPos = make(map[string]int, len(svc.Distribution.SerialOrder))
		for i, id := range svc.Distribution.SerialOrder {
			serialPos[id] = i
		}
	}
	untried := 0
	for i := range in.Agents {
		a := &in.Agents[i]
		if !member(svc, a) {
			d.EntryOf[i] = -1
			continue
		}
		d.EntryOf[i] = int32(len(d.Entries))
		reason, detail := eligible(svc, a, d.Required, in.Now)
		if reason == "" {
			p, ok := in.Presence[a.AgentID]
			reason = PresenceReason(p, ok, &svc.Distribution)
		}
		var w int
		if reason == "" && strategy == WeightedRandom {
			w = 1
			if v, ok := svc.Distribution.Weights[a.AgentID]; ok {
				w = v
			}
			if w <= 0 {
				reason = ReasonZeroWeight
			}
		}
		if reason != "" {
			d.Entries = append(d.Entries, Entry{AgentID: a.AgentID, Reason: reason, Detail: detail})
			continue
		}
		tried := slices.Contains(in.Task.Tried, a.AgentID)
		if !tried {
			untried++
		}
		d.Entries = append(d.Entries, Entry{AgentID: a.AgentID, Reason: ReasonEligible})
		r := ranked{idx: i, tried: tried}
		switch strategy {
		case RoundRobin:
			r.key2 = a.LastOffered[svc.ID].UnixNano()
		case Serial:
			r.key = math.MaxFloat64
			if p, ok := serialPos[a.AgentID]; ok {
				r.key = float64(p)
			}
		case WeightedRandom:
			// Efraimidis–Spirakis: ordering by Exp(1)/w is a weighted draw without
			// replacement.
			r.key = rng.ExpFloat64() / float64(w)
		case BestSkill:
			r.key = -float64(skillScore(a, d.Required))
			r.key2 = a.IdleSince().UnixNano()
		default: // LongestIdle, Broadcast
			r.key2 = a.IdleSince().UnixNano()
		}
		rank = append(rank, r)
	}
	// Agents who already let this task go wait until nobody else is eligible.
	if untried > 0 && untried < len(rank) {
		kept := rank[:0]
		for _, r := range rank {
			if r.tried {
				d.Entries[d.EntryOf[r.idx]].Reason = ReasonAlreadyTried
				continue
			}
			kept = append(kept, r)
		}
		rank = kept
	}
	slices.SortFunc(rank, func(x, y ranked) int {
		if c := cmp.Compare(x.key, y.key); c != 0 {
			return c
		}
		if c := cmp.Compare(x.key2, y.key2); c != 0 {
			return c
		}
		return cmp.Compare(in.Agents[x.idx].AgentID, in.Agents[y.idx].AgentID)
	})
	d.Order = make([]int, len(rank))
	for k, r := range rank {
		d.Order[k] = r.idx
	}
	return d
}

// member reports whether the agent belongs to the service at all (non-members are
// not listed in an explanation).
func member(svc *Service, a *AgentState) bool {
	switch svc.Type {
	case TeamsBased:
		return slices.Contains(a.Services, svc.ID)
	case SkillBased:
		return slices.Contains(a.Services, svc.ID) || slices.Contains(a.Duty.Services, svc.ID)
	default:
		return false
	}
}

// eligible applies every rule but presence: the agent's own routing state and the
// service's membership rules.
func eligible(svc *Service, a *AgentState, req []SkillRequirement, now time.Time) (reason, detail string) {
	if a.Held(now) {
		if a.Hold.Phase == HoldConnected {
			return ReasonConnected, ""
		}
		return ReasonRinging, ""
	}
	if now.Before(a.RONAUntil) {
		return ReasonRONA, a.RONAReason
	}
	if a.InACW(now) {
		return ReasonACW, ""
	}
	switch svc.Type {
	case TeamsBased:
		if slices.Contains(a.Inactive, svc.ID) {
			return ReasonInactive, ""
		}
	case SkillBased:
		if a.Duty.OffDuty {
			return ReasonOffDuty, ""
		}
		if !slices.Contains(a.Duty.Services, svc.ID) {
			return ReasonNotOnDuty, ""
		}
	}
	for _, r := range req {
		lvl, ok := a.Skills[r.Skill]
		if ok && len(a.Duty.Skills) > 0 && !slices.Contains(a.Duty.Skills, r.Skill) {
			ok = false // the skill is not on duty
		}
		if !ok || lvl < r.MinLevel {
			return ReasonMissingSkill, r.Skill + " ≥ " + strconv.Itoa(r.MinLevel)
		}
	}
	return "", ""
}

func skillScore(a *AgentState, req []SkillRequirement) int {
	n := 0
	if len(req) == 0 {
		for _, l := range a.Skills {
			n += l
		}
		return n
	}
	for _, r := range req {
		n += a.Skills[r.Skill]
	}
	return n
}

func seed(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
