package routing

import (
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/teamscc/teamscc/shared/presence"
)

// Reason codes of an explain entry: why an agent was chosen, passed over or skipped.
const (
	ReasonChosen        = "Chosen"       // offered the task
	ReasonEligible      = "Eligible"     // eligible, ranked after the chosen
	ReasonLostRace      = "LostRace"     // eligible, but another service reserved the agent first
	ReasonAlreadyTried  = "AlreadyTried" // offered this task before and did not take it; others go first
	ReasonNotMember     = "NotMember"    // not a member of the service (not listed, only counted)
	ReasonInactive      = "Inactive"     // switched the Teams-based service's active flag off
	ReasonOffDuty       = "OffDuty"      // OffDuty responsibility profile
	ReasonNotOnDuty     = "NotOnDuty"    // the duty profile does not name this service
	ReasonMissingSkill  = "MissingSkill" // lacks a required skill or level (Detail names it)
	ReasonZeroWeight    = "ZeroWeight"   // weight 0 in a weighted-random service
	ReasonNoPresence    = "NoPresence"   // no presence known
	ReasonOffline       = "Offline"
	ReasonUnknown       = "PresenceUnknown"
	ReasonPresenceStale = "PresenceStale" // presence not read lately (no credential answers): unknown
	ReasonDoNotDisturb  = "DoNotDisturb"
	ReasonPresenting    = "Presenting"
	ReasonInACall       = "InACall"           // extended presence: Busy in a call (never delivered)
	ReasonInConference  = "InAConferenceCall" // extended presence: in a conference call
	ReasonBusy          = "BusyNotAllowed"    // Busy, and the service does not allow Busy
	ReasonAway          = "AwayNotAllowed"    // Away/BeRightBack, and the service does not allow Away
	ReasonRinging       = "Ringing"           // reserved for or ringing with one of our tasks (any service)
	ReasonConnected     = "Connected"         // connected to one of our tasks (any service)
	ReasonRONA          = "RONA"              // blocked after a no-answer or decline
	ReasonACW           = "ACW"               // in after-call work
	ReasonNotRouting    = "ServiceNotRouting" // the service is PendingDeletion or of type None
)

// PresenceReason applies the service's presence policy (SPEC §4) to one agent's
// presence: "" when a task may be delivered, else the reason code. ok=false means no
// presence is known. With extended presence an activity of InACall, InAConferenceCall
// or Presenting refuses whatever the availability; with basic presence (no activity)
// Busy is decided by AllowBusy alone, which is why a service that must never
// double-book leaves AllowBusy off.
func PresenceReason(p presence.Presence, ok bool, d *Distribution) string {
	return presenceReason(&p, ok, d)
}

// presenceReason is PresenceReason reading the presence in place (a decision would
// otherwise copy every member's presence).
func presenceReason(p *presence.Presence, ok bool, d *Distribution) string {
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
	Service Service
	Task    Task
	Members []Member // the service's members with their routing state and presence
	Now     time.Time
	// Rand draws for WeightedRandom; nil uses a generator seeded from the task id
	// and attempt, so a decision is reproducible.
	Rand *rand.Rand
	// PresenceStale says the tenant's presence is older than the presence bound (no
	// credential has read it lately): members are skipped as PresenceStale, unless the
	// service routes on stale presence (Distribution.RouteOnStalePresence), which
	// applies the basic-presence rules to the last availability.
	PresenceStale bool
}

// Decision is the outcome of Decide: who of the service's members may take the task,
// why each other member may not (Entries), and in which order to try the eligible
// (Ranked, worked out on demand). A Decision from Decider.Decide is backed by the
// Decider's buffers and is valid until that Decider's next Decide; one from the
// package function Decide owns its memory. Copies of a Decision share its ranking, so
// they stay consistent. Not safe for concurrent use: Ranked orders as it is asked.
type Decision struct {
	// Entries explain every member of the service, in Input.Members order. An
	// eligible member has Reason Eligible until the engine marks the outcome (Chosen,
	// LostRace); a member who let this task go before has AlreadyTried and is not
	// ranked while anybody untried is eligible.
	Entries []Entry
	// EntryOf maps an index into Input.Members to its index in Entries (-1: not a
	// member, not listed).
	EntryOf []int32
	// Required are the skill requirements applied (after relax steps); the slice is
	// the service's own.
	Required []SkillRequirement

	rk *ranking
}

// Ranked returns the index into Input.Members of the k-th best eligible member (k from
// 0), or -1 when fewer than k+1 are eligible. The order is worked out lazily: the
// first costs one pass over the eligible (Broadcast: a heap build), each further one
// O(log n); k may be asked in any order, and asking again is free.
func (d *Decision) Ranked(k int) int {
	r := d.rk
	if r == nil || k < 0 || k >= len(r.items) {
		return -1
	}
	for len(r.items)-r.heap <= k {
		r.next()
	}
	return int(r.items[len(r.items)-1-k].idx)
}

// Eligible returns how many members are ranked: the eligible, less those who already
// tried the task when somebody untried is eligible.
func (d *Decision) Eligible() int {
	if d.rk == nil {
		return 0
	}
	return len(d.rk.items)
}

// ranked is one eligible member with its sort key: k1, then k2, then agent id (read
// from its entry), then the member index, so the order is total even if an id were
// listed twice. It holds no pointer: moving it in the heap is a plain copy, and the
// buffer is not scanned by the garbage collector.
type ranked struct {
	k1, k2 uint64
	idx    int32 // into Input.Members
	entry  int32 // into Decision.Entries
}

// ranking is a partial order of the eligible, refined as Ranked asks: items[heap:]
// are the best, best last; items[:heap] the rest, a min-heap once heaped.
type ranking struct {
	items   []ranked
	entries []Entry // for the agent ids
	heap    int
	heaped  bool
	// one: the caller most likely wants only the best, so the first is found by a
	// linear scan (n-1 comparisons, no moves) and the heap is built only if more are
	// asked for (a lost reservation race).
	one bool
}

func (r *ranking) before(x, y *ranked) bool {
	if x.k1 != y.k1 {
		return x.k1 < y.k1
	}
	if x.k2 != y.k2 {
		return x.k2 < y.k2
	}
	if a, b := r.entries[x.entry].AgentID, r.entries[y.entry].AgentID; a != b {
		return a < b
	}
	return x.idx < y.idx
}

// next moves the best of items[:heap] to items[heap-1].
func (r *ranking) next() {
	h := r.items[:r.heap]
	if !r.heaped {
		if r.one && r.heap == len(r.items) {
			m := 0
			for i := 1; i < len(h); i++ {
				if r.before(&h[i], &h[m]) {
					m = i
				}
			}
			h[m], h[len(h)-1] = h[len(h)-1], h[m]
			r.heap--
			return
		}
		for i := len(h)/2 - 1; i >= 0; i-- {
			r.siftDown(h, i)
		}
		r.heaped = true
	}
	last := len(h) - 1
	h[0], h[last] = h[last], h[0]
	r.heap--
	if last > 0 {
		r.siftDown(h[:last], 0)
	}
}

func (r *ranking) siftDown(h []ranked, i int) {
	x := h[i]
	for {
		c := 2*i + 1
		if c >= len(h) {
			break
		}
		if c+1 < len(h) && r.before(&h[c+1], &h[c]) {
			c++
		}
		if !r.before(&h[c], &x) {
			break
		}
		h[i] = h[c]
		i = c
	}
	h[i] = x
}

// floatKey maps a float64 (not NaN) to a uint64 of the same order, -0 equal to 0.
func floatKey(f float64) uint64 {
	if f == 0 {
		return 1 << 63
	}
	b := math.Float64bits(f)
	if b>>63 != 0 {
		return ^b
	}
	return b | 1<<63
}

// intKey maps an int64 to a uint64 of the same order.
func intKey(v int64) uint64 { return uint64(v) ^ 1<<63 }

// Decide is the pure routing decision for one task: who of the service's members may
// take it, and in which order to try them. It never writes. It allocates its result
// (a handful of slices whatever the number of members); a matcher deciding task after
// task uses a Decider instead. Decide(in) and new(Decider).Decide(in) give the same
// decision.
func Decide(in Input) Decision {
	var dr Decider
	return *dr.Decide(in)
}

// Decider makes routing decisions in reused memory. Once warm (its buffers grown to
// the number of members, and the maps it keeps for a long serial order or tried list
// and for MissingSkill details built), a decision allocates nothing. The zero value is
// ready. A Decider is not safe for concurrent use: keep one per matcher (one per
// kick), not one per Engine.
type Decider struct {
	d       Decision
	rk      ranking
	entries []Entry // buffers, as long as the most members decided among
	entryOf []int32
	items   []ranked

	pcg *rand.PCG
	rng *rand.Rand

	serialOrder []string // the SerialOrder serialPos was built from
	serialPos   map[string]int32
	triedSet    map[string]struct{}
	details     []string // per requirement of this decision: its MissingSkill detail once needed
	detailOf    map[SkillRequirement]string
}

// Decide is the decision of the package function Decide, in dr's buffers: the
// Decision (its Entries, EntryOf and ranking, and the engine's marks in Entries) is
// valid until dr's next Decide, which reuses them. Whatever must outlive that is
// copied (explain does).
func (dr *Decider) Decide(in Input) *Decision {
	svc := &in.Service
	n := len(in.Members)
	if cap(dr.entryOf) < n {
		dr.entryOf = make([]int32, n)
		dr.entries = make([]Entry, n)
		dr.items = make([]ranked, n)
	}
	entryOf := dr.entryOf[:n:n]
	// Entries and ranks are written in place (at most one per member), not appended
	// as composite literals: the copy of a struct built on the stack stalls on store
	// forwarding, which was a third of the time of a decision.
	entries := dr.entries[:n:n]
	items := dr.items[:n:n]
	ne, ni := 0, 0
	req := svc.Requirements(in.Now.Sub(in.Task.Created))
	dr.details = dr.details[:0]
	for range req {
		dr.details = append(dr.details, "")
	}
	strategy := svc.Strategy()
	if svc.PendingDeletion || svc.Type == None {
		for i := range entryOf {
			entryOf[i] = -1
		}
		return dr.finish(entries[:0], entryOf, req, items[:0], true)
	}
	dist := &svc.Distribution
	var rng *rand.Rand
	if strategy == WeightedRandom {
		rng = in.Rand
		if rng == nil {
			if dr.pcg == nil {
				dr.pcg = rand.NewPCG(0, 0)
				dr.rng = rand.New(dr.pcg)
			}
			dr.pcg.Seed(seed(in.Task.ID), uint64(in.Task.Attempts))
			rng = dr.rng
		}
	}
	var serialPos map[string]int32
	serialOrder := dist.SerialOrder
	if strategy == Serial && len(serialOrder) > smallList {
		serialPos = dr.serialPositions(serialOrder)
	}
	tried := in.Task.Tried
	var triedSet map[string]struct{}
	if len(tried) > smallList {
		triedSet = dr.tried(tried)
	}
	untried := 0
	for i := range in.Members {
		m := &in.Members[i]
		a := &m.State
		if !member(svc, a) {
			entryOf[i] = -1
			continue
		}
		entryOf[i] = int32(ne)
		e := &entries[ne]
		ne++
		e.AgentID = a.AgentID
		var offlineAt time.Time
		if m.HasPresence {
			offlineAt = m.Presence.OfflineAt
		}
		reason, detail, miss, level := admit(svc, a, req, in.Now, offlineAt)
		if miss >= 0 {
			detail = dr.missingDetail(req, miss)
		}
		if reason == "" {
			switch {
			case !in.PresenceStale:
				reason = presenceReason(&m.Presence, m.HasPresence, dist)
			case dist.RouteOnStalePresence:
				p := m.Presence
				p.Source = presence.SourceBasic // an activity that old says nothing
				reason = presenceReason(&p, m.HasPresence, dist)
			default:
				reason = ReasonPresenceStale
			}
		}
		var w int
		if reason == "" && strategy == WeightedRandom {
			w = 1
			if v, ok := dist.Weights[a.AgentID]; ok {
				w = v
			}
			if w <= 0 {
				reason = ReasonZeroWeight
			}
		}
		e.Detail = detail
		if reason != "" {
			e.Reason = reason
			continue
		}
		e.Reason = ReasonEligible
		if !isTried(tried, triedSet, a.AgentID) {
			untried++
		}
		r := &items[ni]
		ni++
		r.idx, r.entry = int32(i), entryOf[i]
		r.k1, r.k2 = 0, 0
		switch strategy {
		case RoundRobin:
			r.k2 = intKey(a.LastOffered[svc.ID].UnixNano())
		case Serial:
			r.k1 = math.MaxUint64 // not listed: after the listed, by agent id
			if serialPos != nil {
				if p, ok := serialPos[a.AgentID]; ok {
					r.k1 = uint64(p)
				}
			} else if p := lastIndex(serialOrder, a.AgentID); p >= 0 {
				r.k1 = uint64(p)
			}
		case WeightedRandom:
			// Efraimidis–Spirakis: ordering by Exp(1)/w is a weighted draw without
			// replacement. One draw per eligible member in Members order, tried or not.
			r.k1 = floatKey(rng.ExpFloat64() / float64(w))
		case BestSkill:
			if len(req) == 0 {
				level = skillScore(a, nil) // every skill counts
			}
			r.k1 = floatKey(-float64(level))
			r.k2 = intKey(a.IdleSince().UnixNano())
		default: // LongestIdle, Broadcast
			r.k2 = intKey(a.IdleSince().UnixNano())
		}
	}
	entries, items = entries[:ne], items[:ni]
	// Agents who already let this task go wait until nobody else is eligible.
	if untried > 0 && untried < len(items) {
		kept := items[:0]
		for _, r := range items {
			if e := &entries[r.entry]; isTried(tried, triedSet, e.AgentID) {
				e.Reason = ReasonAlreadyTried
				continue
			}
			kept = append(kept, r)
		}
		items = kept
	}
	return dr.finish(entries, entryOf, req, items, strategy != Broadcast || svc.broadcastN() == 1)
}

func (dr *Decider) finish(entries []Entry, entryOf []int32, req []SkillRequirement, items []ranked, one bool) *Decision {
	dr.rk = ranking{items: items, entries: entries, heap: len(items), one: one}
	dr.d = Decision{Entries: entries[:len(entries):len(entries)], EntryOf: entryOf, Required: req, rk: &dr.rk}
	return &dr.d
}

func isTried(tried []string, set map[string]struct{}, id string) bool {
	if set != nil {
		_, ok := set[id]
		return ok
	}
	return slices.Contains(tried, id)
}

// smallList is the length up to which a linear search of a list of agent ids beats
// building (or checking) a map of it.
const smallList = 8

// lastIndex is the position of id in order (its last, as a map built in order keeps).
func lastIndex(order []string, id string) int {
	for i := len(order) - 1; i >= 0; i-- {
		if order[i] == id {
			return i
		}
	}
	return -1
}

// serialPositions maps agent id → position in order (the last if listed twice). The
// map is kept for the next decision: the tasks of one kick share the service, so it is
// rebuilt only when the list differs (checked element by element, which is cheap for
// the very same strings).
func (dr *Decider) serialPositions(order []string) map[string]int32 {
	if dr.serialPos != nil && slices.Equal(dr.serialOrder, order) {
		return dr.serialPos
	}
	if dr.serialPos == nil {
		dr.serialPos = make(map[string]int32, len(order))
	} else {
		clear(dr.serialPos)
	}
	for i, id := range order {
		dr.serialPos[id] = int32(i)
	}
	dr.serialOrder = append(dr.serialOrder[:0], order...)
	return dr.serialPos
}

func (dr *Decider) tried(ids []string) map[string]struct{} {
	if dr.triedSet == nil {
		dr.triedSet = make(map[string]struct{}, len(ids))
	} else {
		clear(dr.triedSet)
	}
	for _, id := range ids {
		dr.triedSet[id] = struct{}{}
	}
	return dr.triedSet
}

// missingDetail is the Detail of a MissingSkill entry for requirement j, built once
// per requirement (and kept by the Decider), not once per agent.
func (dr *Decider) missingDetail(req []SkillRequirement, j int) string {
	if s := dr.details[j]; s != "" {
		return s
	}
	s, ok := dr.detailOf[req[j]]
	if !ok {
		s = missingSkillDetail(req[j])
		if dr.detailOf == nil || len(dr.detailOf) >= 64 {
			dr.detailOf = make(map[SkillRequirement]string, len(req))
		}
		dr.detailOf[req[j]] = s
	}
	dr.details[j] = s
	return s
}

func missingSkillDetail(r SkillRequirement) string {
	return r.Skill + " ≥ " + strconv.Itoa(r.MinLevel)
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
// service's membership rules. offlineAt is when the agent was last seen going
// Offline (zero: unknown): RONA that began before it is over (SPEC §5: going Offline
// resets RONA), read here so that no write is needed when presence changes.
func eligible(svc *Service, a *AgentState, req []SkillRequirement, now, offlineAt time.Time) (reason, detail string) {
	reason, detail, miss, _ := admit(svc, a, req, now, offlineAt)
	if miss >= 0 {
		detail = missingSkillDetail(req[miss])
	}
	return reason, detail
}

// admit is eligible without building a MissingSkill detail: miss is the index in req
// of the first requirement the agent fails (-1 when none is failed). An admitted
// agent's level is the sum of its levels in the required skills, skillScore(a, req)
// for a non-empty req without looking the skills up again.
func admit(svc *Service, a *AgentState, req []SkillRequirement, now, offlineAt time.Time) (reason, detail string, miss, level int) {
	if a.Held(now) {
		if a.Hold.Phase == HoldConnected {
			return ReasonConnected, "", -1, 0
		}
		return ReasonRinging, "", -1, 0
	}
	if a.InRONA(now, offlineAt) {
		return ReasonRONA, a.RONAReason, -1, 0
	}
	if a.InACW(now) {
		return ReasonACW, "", -1, 0
	}
	switch svc.Type {
	case TeamsBased:
		if slices.Contains(a.Inactive, svc.ID) {
			return ReasonInactive, "", -1, 0
		}
	case SkillBased:
		if a.Duty.OffDuty {
			return ReasonOffDuty, "", -1, 0
		}
		if !slices.Contains(a.Duty.Services, svc.ID) {
			return ReasonNotOnDuty, "", -1, 0
		}
	}
	for j, r := range req {
		lvl, ok := a.Skills[r.Skill]
		if ok && len(a.Duty.Skills) > 0 && !slices.Contains(a.Duty.Skills, r.Skill) {
			ok = false // the skill is not on duty
		}
		if !ok || lvl < r.MinLevel {
			return ReasonMissingSkill, "", j, 0
		}
		level += lvl
	}
	return "", "", -1, level
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
