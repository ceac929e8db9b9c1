// Package routing decides which agent gets which task of a service (SPEC §3–§5): who
// is eligible (presence policy, our own calls, RONA, ACW, duty, skills, active flag),
// in which order the eligible are tried (the distribution strategies), and how a
// chosen agent is reserved, offered the task, and released again (ring timeout → RONA,
// call end → ACW).
//
// The truth lives in a Store: services, their tasks (one partition per service, so one
// query lists a service's queue) and agent routing states (shared by every service of
// a tenant, so an agent busy in one service is busy in all). A Service Bus message is
// only a wake-up ("kick") for one service; Engine.Kick reads the store, matches and
// writes. Time-based states (ring expiry, RONA until, ACW until, reservation expiry)
// are stored as instants and read lazily; a kick scheduled at that instant wakes the
// service. Races between services sharing agents are settled by ETag-conditional
// writes of the agent state: exactly one reservation wins.
//
// The package imports the standard library and other domain packages only.
package routing

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/tenant"
)

// ServiceType says how a service finds its agents (SPEC §3).
type ServiceType string

const (
	// TeamsBased: members of the service's Team, each with a per-service active flag.
	TeamsBased ServiceType = "TeamsBased"
	// SkillBased: agents whose duty profile names the service and whose skills match.
	SkillBased ServiceType = "SkillBased"
	// None: IVR or first-level redirect; no agents, nothing is routed.
	None ServiceType = "None"
)

// Strategy orders the eligible agents of a task (SPEC §5).
type Strategy string

const (
	LongestIdle    Strategy = "LongestIdle"    // default: longest since the last call ended first
	RoundRobin     Strategy = "RoundRobin"     // least recently offered a task of this service first
	Serial         Strategy = "Serial"         // top-down in Distribution.SerialOrder (then agent id)
	Broadcast      Strategy = "Broadcast"      // ring the N longest idle at once; the first to answer wins
	WeightedRandom Strategy = "WeightedRandom" // random, biased by Distribution.Weights (default weight 1)
	BestSkill      Strategy = "BestSkill"      // highest summed level of the required skills first, then longest idle
)

var strategies = []Strategy{LongestIdle, RoundRobin, Serial, Broadcast, WeightedRandom, BestSkill}

// Priority of a task. Strict tasks go before High, High before Normal; within one
// priority the oldest task goes first.
type Priority string

const (
	Normal Priority = "Normal"
	High   Priority = "High"
	Strict Priority = "Strict"
)

func (p Priority) rank() int {
	switch p {
	case Strict:
		return 2
	case High:
		return 1
	default:
		return 0
	}
}

// ParsePriority reads a priority case-insensitively; "" is Normal.
func ParsePriority(s string) (Priority, error) {
	for _, p := range []Priority{Normal, High, Strict} {
		if strings.EqualFold(s, string(p)) {
			return p, nil
		}
	}
	if s == "" {
		return Normal, nil
	}
	return "", fault.Invalid("priority", "must be Normal, High or Strict")
}

// Limits and defaults of the distribution settings.
const (
	DefaultRingTimeout  = 30 * time.Second
	DefaultRONAReset    = 10 * time.Minute
	MinRONAReset        = 10 * time.Second
	MaxRONAReset        = 8 * time.Hour
	DefaultACW          = 20 * time.Second
	DefaultBroadcastN   = 10
	MaxCallDuration     = 8 * time.Hour   // a connected agent whose end event was lost returns after this
	ReservationGrace    = 5 * time.Second // a reservation outlives the ring timeout by this much
	maxSkillRequirement = 100
)

// SkillRequirement asks for a skill at a minimum level (1..100).
type SkillRequirement struct {
	Skill    string `json:"skill"`
	MinLevel int    `json:"minLevel"`
}

// RelaxStep replaces the skill requirements once a task has waited AfterSeconds.
type RelaxStep struct {
	AfterSeconds int                `json:"afterSeconds"`
	Skills       []SkillRequirement `json:"skills"`
}

// RONASettings: what happens to an agent who lets an offer time out or declines it.
type RONASettings struct {
	// Enabled blocks the agent after a no-answer or decline. Without Persistent the
	// block lasts one ring timeout (the task goes to others first); with Persistent it
	// lasts ResetSeconds (default 600, 10..28800), unless the agent resets it, goes
	// Offline or turns OffDuty.
	Enabled      bool `json:"enabled"`
	Persistent   bool `json:"persistent"`
	ResetSeconds int  `json:"resetSeconds,omitempty"`
}

// ACWSettings: after-call work, blocking the agent in every service.
type ACWSettings struct {
	Seconds             *int `json:"seconds,omitempty"` // nil = 20; 0 = no ACW
	AllowEarlyEnd       bool `json:"allowEarlyEnd"`
	MaxExtensionSeconds int  `json:"maxExtensionSeconds,omitempty"`
}

// Distribution is a service's conversation-distribution settings.
type Distribution struct {
	AllowBusy bool `json:"allowBusy"` // with basic presence this also lets Busy-in-a-call through
	AllowAway bool `json:"allowAway"` // Away and BeRightBack
	// RouteOnStalePresence routes on the last availability known when the tenant's
	// presence is stale (no credential has read it within the presence bound), with
	// the basic-presence rules; by default stale presence is unknown and nobody is
	// offered a task, so an agent who went home gets no calls.
	RouteOnStalePresence bool               `json:"routeOnStalePresence,omitempty"`
	Strategy             Strategy           `json:"strategy,omitempty"`
	BroadcastN           int                `json:"broadcastN,omitempty"`
	SerialOrder          []string           `json:"serialOrder,omitempty"` // agent ids, top first
	Weights              map[string]int     `json:"weights,omitempty"`     // agent id → weight (default 1)
	RingTimeoutSeconds   int                `json:"ringTimeoutSeconds,omitempty"`
	RONA                 RONASettings       `json:"rona"`
	ACW                  ACWSettings        `json:"acw"`
	QueueTimeoutSecs     int                `json:"queueTimeoutSeconds,omitempty"` // 0 = none
	MaxQueueLength       int                `json:"maxQueueLength,omitempty"`      // 0 = unlimited
	Skills               []SkillRequirement `json:"skills,omitempty"`
	Relax                []RelaxStep        `json:"relax,omitempty"`
}

// Service is one queue of work of a tenant.
type Service struct {
	TenantID        string       `json:"tenantId"`
	ID              string       `json:"id"`
	Name            string       `json:"name,omitempty"`
	Type            ServiceType  `json:"type"`
	PendingDeletion bool         `json:"pendingDeletion,omitempty"`
	PSTNLicence     bool         `json:"pstnLicence,omitempty"` // may transfer calls to PSTN
	Distribution    Distribution `json:"distribution"`
	// Calls is how the service treats a call: audio, open or closed, exit.
	Calls CallFlow `json:"calls"`
	// Team is the group id of the Team a Teams-based service follows: its members
	// are the service's agents, its owners the service's owners (package directory).
	Team string `json:"team,omitempty"`
	// Targets are the identities a call to this service arrives on: resource-account
	// (application instance) object ids and/or E.164 phone numbers (at most
	// MaxTargets, no duplicates). A target belongs to one service of a tenant; a
	// lookup that finds it on two refuses (see ServiceForTarget). Phone numbers are
	// customer-facing identifiers: never log them.
	Targets []string `json:"targets,omitempty"`
	// PhoneNumbers are the service's phone numbers with how they are provided; they
	// are targets too (HasTarget reads both lists), so a number is kept in one place.
	PhoneNumbers []PhoneNumber `json:"phoneNumbers,omitempty"`
	// Owners are the Entra object ids of the service's team owners, who may manage
	// its distribution settings and its agents' active flags.
	Owners    []string  `json:"owners,omitempty"`
	UpdatedAt time.Time `json:"updatedAt"`
	// Version counts admin changes (CreateService writes 1, UpdateService adds one);
	// an admin change names the version it was based on (If-Match).
	Version int64 `json:"version,omitempty"`
}

// PhoneKind says how a service's phone number is provided (SPEC §3).
type PhoneKind string

const (
	// DirectRouting: a number managed outside Teams; any number may be assigned.
	DirectRouting PhoneKind = "DirectRouting"
	// CallingPlanService: a Microsoft Calling Plan number of type Service.
	CallingPlanService PhoneKind = "CallingPlanService"
	// CallingPlanUser: a Calling Plan User (subscriber) number; never assignable.
	CallingPlanUser PhoneKind = "CallingPlanUser"
)

// PhoneNumber is one phone number of a service.
type PhoneNumber struct {
	Number string    `json:"number"` // E.164
	Kind   PhoneKind `json:"kind"`
}

// Limits of a service's descriptive fields.
const (
	MaxServiceName = 100
	MaxOwners      = 50
)

// Strategy is the effective strategy (LongestIdle when unset).
func (s Service) Strategy() Strategy {
	if s.Distribution.Strategy == "" {
		return LongestIdle
	}
	return s.Distribution.Strategy
}

// RingTimeout is how long an offer rings before it counts as not answered.
func (s Service) RingTimeout() time.Duration {
	if s.Distribution.RingTimeoutSeconds <= 0 {
		return DefaultRingTimeout
	}
	return time.Duration(s.Distribution.RingTimeoutSeconds) * time.Second
}

// ACW is the after-call work time.
func (s Service) ACW() time.Duration {
	if s.Distribution.ACW.Seconds == nil {
		return DefaultACW
	}
	return time.Duration(*s.Distribution.ACW.Seconds) * time.Second
}

// RONAFor is how long an agent is blocked after a no-answer or decline (0: RONA off).
func (s Service) RONAFor() time.Duration {
	r := s.Distribution.RONA
	switch {
	case !r.Enabled:
		return 0
	case !r.Persistent:
		return s.RingTimeout()
	case r.ResetSeconds <= 0:
		return DefaultRONAReset
	default:
		return time.Duration(r.ResetSeconds) * time.Second
	}
}

func (s Service) broadcastN() int {
	if s.Distribution.BroadcastN <= 0 {
		return DefaultBroadcastN
	}
	return s.Distribution.BroadcastN
}

// Requirements are the skill requirements for a task that has waited 'waited'.
func (s Service) Requirements(waited time.Duration) []SkillRequirement {
	req := s.Distribution.Skills
	best := -1
	for _, st := range s.Distribution.Relax {
		after := time.Duration(st.AfterSeconds) * time.Second
		if waited >= after && st.AfterSeconds > best {
			best, req = st.AfterSeconds, st.Skills
		}
	}
	return req
}

// Validate checks every setting's range; the error names the field and the rule.
func (s Service) Validate() error {
	if err := CheckID("tenantId", s.TenantID); err != nil {
		return err
	}
	if err := CheckID("serviceId", s.ID); err != nil {
		return err
	}
	switch s.Type {
	case TeamsBased, SkillBased, None:
	default:
		return fault.Invalid("type", "must be TeamsBased, SkillBased or None")
	}
	d := s.Distribution
	if d.Strategy != "" && !slices.Contains(strategies, d.Strategy) {
		return fault.Invalid("distribution.strategy", "must be LongestIdle, RoundRobin, Serial, Broadcast, WeightedRandom or BestSkill")
	}
	checks := []struct {
		field  string
		v      int
		lo, hi int
	}{
		{"distribution.broadcastN", d.BroadcastN, 0, 50},
		{"distribution.ringTimeoutSeconds", d.RingTimeoutSeconds, 0, 600},
		{"distribution.queueTimeoutSeconds", d.QueueTimeoutSecs, 0, 86400},
		{"distribution.maxQueueLength", d.MaxQueueLength, 0, 10000},
		{"distribution.acw.maxExtensionSeconds", d.ACW.MaxExtensionSeconds, 0, 3600},
	}
	for _, c := range checks {
		if c.v < c.lo || c.v > c.hi {
			return fault.Invalid(c.field, fmt.Sprintf("must be %d..%d", c.lo, c.hi))
		}
	}
	if d.RONA.ResetSeconds != 0 && (d.RONA.ResetSeconds < int(MinRONAReset/time.Second) || d.RONA.ResetSeconds > int(MaxRONAReset/time.Second)) {
		return fault.Invalid("distribution.rona.resetSeconds", "must be 10..28800 (10 s .. 8 h)")
	}
	if d.ACW.Seconds != nil && (*d.ACW.Seconds < 0 || *d.ACW.Seconds > 3600) {
		return fault.Invalid("distribution.acw.seconds", "must be 0..3600")
	}
	for name, w := range d.Weights {
		if w < 0 || w > 1000 {
			return fault.Invalid("distribution.weights."+name, "must be 0..1000")
		}
	}
	reqs := [][]SkillRequirement{d.Skills}
	for _, st := range d.Relax {
		if st.AfterSeconds < 1 || st.AfterSeconds > 86400 {
			return fault.Invalid("distribution.relax.afterSeconds", "must be 1..86400")
		}
		reqs = append(reqs, st.Skills)
	}
	for _, rs := range reqs {
		for _, r := range rs {
			if r.Skill == "" || r.MinLevel < 0 || r.MinLevel > maxSkillRequirement {
				return fault.Invalid("distribution.skills", "each needs a skill name and a minLevel 0..100")
			}
		}
	}
	if utf8.RuneCountInString(s.Name) > MaxServiceName {
		return fault.Invalid("name", fmt.Sprintf("at most %d characters", MaxServiceName))
	}
	if len(s.Targets)+len(s.PhoneNumbers) > MaxTargets {
		return fault.Invalid("targets", fmt.Sprintf("at most %d targets and phone numbers together", MaxTargets))
	}
	seen := make(map[string]bool, len(s.Targets)+len(s.PhoneNumbers))
	for _, t := range s.Targets {
		n := NormalizeTarget(t)
		if !tenant.IsGUID(n) && !IsE164(n) {
			return fault.Invalid("targets", "each must be a resource account object id (GUID) or an E.164 phone number (+ and 7..15 digits)")
		}
		if seen[n] {
			return fault.Invalid("targets", "duplicate target")
		}
		seen[n] = true
	}
	for i, p := range s.PhoneNumbers {
		field := fmt.Sprintf("phoneNumbers[%d]", i)
		n := NormalizeTarget(p.Number)
		if !IsE164(n) {
			return fault.Invalid(field+".number", "must be an E.164 phone number (+ and 7..15 digits)")
		}
		switch p.Kind {
		case DirectRouting, CallingPlanService:
		case CallingPlanUser:
			return fault.Invalid(field+".kind", "with Calling Plans only numbers of type Service may be assigned; User (subscriber) numbers are refused")
		default:
			return fault.Invalid(field+".kind", "must be DirectRouting, CallingPlanService or CallingPlanUser")
		}
		if seen[n] {
			return fault.Invalid(field+".number", "duplicate: already a target or phone number of the service")
		}
		seen[n] = true
	}
	if err := s.Calls.validate(s.ID); err != nil {
		return err
	}
	if s.Team != "" && (s.Type != TeamsBased || !tenant.IsGUID(s.Team)) {
		return fault.Invalid("team", "a Teams-based service's Team: its group object id (GUID)")
	}
	if len(s.Owners) > MaxOwners {
		return fault.Invalid("owners", fmt.Sprintf("at most %d", MaxOwners))
	}
	for _, o := range s.Owners {
		if !tenant.IsGUID(o) {
			return fault.Invalid("owners", "each must be an Entra object id (GUID)")
		}
	}
	return nil
}

// CheckID accepts ids that are safe as storage keys, in URLs and (with a tenant id in
// front) as Service Bus session ids: 1..64 characters of letters, digits, '-', '_', '.'
// and '@'.
func CheckID(field, s string) error {
	if s == "" {
		return fault.Invalid(field, "required")
	}
	if utf8.RuneCountInString(s) > 64 {
		return fault.Invalid(field, "at most 64 characters")
	}
	for _, r := range s {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '-', r == '_', r == '.', r == '@':
		default:
			return fault.Invalid(field, "only letters, digits and - _ . @")
		}
	}
	return nil
}

// TaskState is where a task is in its life.
type TaskState string

const (
	Waiting   TaskState = "Waiting"   // in the queue
	Offered   TaskState = "Offered"   // ringing at OfferedTo until RingExpiry
	Connected TaskState = "Connected" // answered by ConnectedAgent
	Done      TaskState = "Done"      // ended; Outcome says how
)

// Outcome is how a task ended.
type Outcome string

const (
	Completed      Outcome = "Completed"       // answered and ended
	Abandoned      Outcome = "Abandoned"       // the caller hung up before an agent answered
	QueueTimeout   Outcome = "QueueTimeout"    // waited longer than the service's queue timeout: exit
	QueueFull      Outcome = "QueueFull"       // the queue was at its maximum length: exit
	Transferred    Outcome = "Transferred"     // moved to another service
	TransferredOut Outcome = "TransferredPSTN" // transferred to PSTN with the first answering service's licence
	TransferFailed Outcome = "TransferFailed"  // PSTN transfer without a licence: exit path
	NotReached     Outcome = "NotReached"      // outbound: the customer did not answer
)

// Attempt is one offer of a task and how it ended.
type Attempt struct {
	Attempt int       `json:"attempt"`
	AgentID string    `json:"agentId"`
	At      time.Time `json:"at"`
	Result  string    `json:"result"` // Answered, NoAnswer, Declined, Released, Unreachable, Dropped
}

// Attempt results.
const (
	ResultAnswered    = "Answered"
	ResultNoAnswer    = "NoAnswer"
	ResultDeclined    = "Declined"
	ResultReleased    = "Released"    // another agent answered a broadcast, or the caller hung up
	ResultUnreachable = "Unreachable" // the agent's Teams could not be rung
	ResultDropped     = "Dropped"     // the agent accepted but was never connected
)

const maxHistory = 32

// Task is one unit of work of a service: an inbound call here.
type Task struct {
	TenantID   string    `json:"tenantId"`
	ServiceID  string    `json:"serviceId"`
	ID         string    `json:"id"`
	CallID     string    `json:"callId,omitempty"`
	Priority   Priority  `json:"priority"`
	Created    time.Time `json:"created"`
	State      TaskState `json:"state"`
	Outcome    Outcome   `json:"outcome,omitempty"`
	OfferedTo  []string  `json:"offeredTo,omitempty"`
	OfferedAt  time.Time `json:"offeredAt,omitempty"`
	RingExpiry time.Time `json:"ringExpiry,omitempty"`
	Attempts   int       `json:"attempts"`
	// Tried are the agents this task was offered to and who did not take it; they are
	// skipped while anybody else is eligible.
	Tried          []string  `json:"tried,omitempty"`
	History        []Attempt `json:"history,omitempty"`
	ConnectedAgent string    `json:"connectedAgent,omitempty"`
	ConnectedAt    time.Time `json:"connectedAt,omitempty"`
	EndedAt        time.Time `json:"endedAt,omitempty"`
	// FirstAnsweredService is the first service that answered the call, however many
	// internal transfers followed; its licence decides a PSTN transfer (SPEC §3).
	FirstAnsweredService string   `json:"firstAnsweredService,omitempty"`
	FirstAnsweredPSTN    bool     `json:"firstAnsweredPstn,omitempty"`
	Explain              *Explain `json:"explain,omitempty"` // the last routing attempt
	// Outbound is set on an outbound task (Engine.OutboundDue): whom to call.
	Outbound *OutboundCall `json:"outbound,omitempty"`
	// ETag is the stored version this value was read at; conditional writes use it.
	ETag string `json:"-"`
}

// Open reports whether the task still needs routing or is in progress.
func (t Task) Open() bool { return t.State != Done }

func (t *Task) record(a Attempt) {
	t.History = append(t.History, a)
	if n := len(t.History); n > maxHistory {
		t.History = slices.Delete(t.History, 0, n-maxHistory)
	}
}

// Before orders tasks: higher priority first, then older, then by id.
func (t Task) Before(u Task) bool {
	if a, b := t.Priority.rank(), u.Priority.rank(); a != b {
		return a > b
	}
	if !t.Created.Equal(u.Created) {
		return t.Created.Before(u.Created)
	}
	return t.ID < u.ID
}

// HoldPhase is what holds an agent.
type HoldPhase string

const (
	// HoldOffered: reserved and ringing. Until is the ring expiry plus a grace: a
	// reservation whose offer was never written (a crash) lapses by itself.
	HoldOffered HoldPhase = "Offered"
	// HoldConnected: on one of our calls. Until is a safety net (MaxCallDuration).
	HoldConnected HoldPhase = "Connected"
)

// Hold is the one task an agent is reserved for, ringing with or connected to.
type Hold struct {
	ServiceID string    `json:"serviceId"`
	TaskID    string    `json:"taskId"`
	Attempt   int       `json:"attempt"`
	Phase     HoldPhase `json:"phase"`
	Since     time.Time `json:"since"`
	Until     time.Time `json:"until"`
}

// Duty is an agent's responsibility profile (SPEC §3): OffDuty, or the services and
// skills the agent is on duty for (empty Skills: all the agent's skills).
type Duty struct {
	OffDuty  bool     `json:"offDuty,omitempty"`
	Services []string `json:"services,omitempty"`
	Skills   []string `json:"skills,omitempty"`
}

// AgentState is an agent's routing profile and state, shared by every service of the
// tenant.
type AgentState struct {
	TenantID string `json:"tenantId"`
	AgentID  string `json:"agentId"`
	// Services are the Teams-based services the agent is a member of.
	Services []string `json:"services,omitempty"`
	// Inactive are the Teams-based services the agent switched off (the active flag).
	Inactive []string       `json:"inactive,omitempty"`
	Duty     Duty           `json:"duty"`
	Skills   map[string]int `json:"skills,omitempty"` // skill → level 1..100

	Hold          *Hold     `json:"hold,omitempty"`
	RONAUntil     time.Time `json:"ronaUntil,omitempty"`
	RONAAt        time.Time `json:"ronaAt,omitempty"`
	RONAReason    string    `json:"ronaReason,omitempty"` // NoAnswer or Declined
	ACWUntil      time.Time `json:"acwUntil,omitempty"`
	ACWStart      time.Time `json:"acwStart,omitempty"`
	ACWMaxUntil   time.Time `json:"acwMaxUntil,omitempty"`
	ACWEarlyEnd   bool      `json:"acwEarlyEnd,omitempty"`
	LastCallEnded time.Time `json:"lastCallEnded,omitempty"`
	// LastOffered is when the agent was last offered a task of each service (round robin).
	LastOffered map[string]time.Time `json:"lastOffered,omitempty"`
	NoAnswers   int                  `json:"noAnswers,omitempty"`
	Declines    int                  `json:"declines,omitempty"`
	ETag        string               `json:"-"`
}

// Held reports whether the agent is reserved, ringing or connected at now.
func (a *AgentState) Held(now time.Time) bool { return a.Hold != nil && now.Before(a.Hold.Until) }

// AllServices lists the services the agent may take tasks of: the Teams-based ones
// it is a member of, then the skill-based ones its duty profile names, without
// repeats. These are the services whose rosters list the agent (see Store).
func (a *AgentState) AllServices() []string {
	out := slices.Clone(a.Services)
	for _, s := range a.Duty.Services {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// Loosens reports whether next may let the agent take a task that prev did not: a
// hold ended, moved to another task or shortened; RONA or ACW shortened; or anything
// routing reads of the agent's profile changed (memberships, active flags, duty,
// skills). A store that keeps copies of agent states (rosters) must not let a copy of
// prev outlive the write of such a change; a tightening change (a reservation, a
// longer hold, counters) may reach the copies afterwards, since a reservation based
// on an outdated copy fails on its ETag.
func Loosens(prev, next *AgentState) bool {
	switch {
	case prev.Hold != nil && (next.Hold == nil || next.Hold.ServiceID != prev.Hold.ServiceID || next.Hold.TaskID != prev.Hold.TaskID ||
		next.Hold.Until.Before(prev.Hold.Until)):
		return true
	case next.RONAUntil.Before(prev.RONAUntil), next.ACWUntil.Before(prev.ACWUntil):
		return true
	case !slices.Equal(prev.Services, next.Services), !slices.Equal(prev.Inactive, next.Inactive),
		prev.Duty.OffDuty != next.Duty.OffDuty, !slices.Equal(prev.Duty.Services, next.Duty.Services),
		!slices.Equal(prev.Duty.Skills, next.Duty.Skills), !maps.Equal(prev.Skills, next.Skills):
		return true
	}
	return false
}

// InRONA reports whether the agent is blocked by RONA at now: RONA not yet run out,
// and not ended by going Offline after it began (offlineAt: when the agent was last
// seen going Offline, zero if unknown; SPEC §5).
func (a *AgentState) InRONA(now, offlineAt time.Time) bool {
	if !now.Before(a.RONAUntil) {
		return false
	}
	return a.RONAAt.IsZero() || offlineAt.Before(a.RONAAt)
}

// InACW reports whether the agent is in after-call work at now.
func (a *AgentState) InACW(now time.Time) bool { return now.Before(a.ACWUntil) }

// Clone returns a deep copy.
func (a AgentState) Clone() AgentState {
	a.Services = slices.Clone(a.Services)
	a.Inactive = slices.Clone(a.Inactive)
	a.Duty.Services = slices.Clone(a.Duty.Services)
	a.Duty.Skills = slices.Clone(a.Duty.Skills)
	if a.Skills != nil {
		m := make(map[string]int, len(a.Skills))
		for k, v := range a.Skills {
			m[k] = v
		}
		a.Skills = m
	}
	if a.LastOffered != nil {
		m := make(map[string]time.Time, len(a.LastOffered))
		for k, v := range a.LastOffered {
			m[k] = v
		}
		a.LastOffered = m
	}
	if a.Hold != nil {
		h := *a.Hold
		a.Hold = &h
	}
	return a
}

// Clone returns a deep copy.
func (t Task) Clone() Task {
	t.OfferedTo = slices.Clone(t.OfferedTo)
	t.Tried = slices.Clone(t.Tried)
	t.History = slices.Clone(t.History)
	if t.Explain != nil {
		e := t.Explain.Clone()
		t.Explain = &e
	}
	if t.Outbound != nil {
		o := *t.Outbound
		if o.Params != nil {
			o.Params = make(map[string]string, len(t.Outbound.Params))
			for k, v := range t.Outbound.Params {
				o.Params[k] = v
			}
		}
		t.Outbound = &o
	}
	return t
}

// Clone returns a deep copy.
func (s Service) Clone() Service {
	s.Targets = slices.Clone(s.Targets)
	s.PhoneNumbers = slices.Clone(s.PhoneNumbers)
	s.Owners = slices.Clone(s.Owners)
	d := &s.Distribution
	d.SerialOrder = slices.Clone(d.SerialOrder)
	d.Skills = slices.Clone(d.Skills)
	d.Relax = slices.Clone(d.Relax)
	for i := range d.Relax {
		d.Relax[i].Skills = slices.Clone(d.Relax[i].Skills)
	}
	if d.Weights != nil {
		m := make(map[string]int, len(d.Weights))
		for k, v := range d.Weights {
			m[k] = v
		}
		d.Weights = m
	}
	if d.ACW.Seconds != nil {
		v := *d.ACW.Seconds
		d.ACW.Seconds = &v
	}
	return s
}

// IdleSince is when the agent last finished work: the end of the last call, or of
// its ACW if later. Zero for an agent who never had a call (longest idle of all).
func (a *AgentState) IdleSince() time.Time {
	if a.ACWUntil.After(a.LastCallEnded) {
		return a.ACWUntil
	}
	return a.LastCallEnded
}
