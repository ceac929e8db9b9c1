// Package calls is the call controller: it acts on real Teams calls for routing's
// decisions (SPEC §8). It answers a call made to a service's resource account, greets
// the caller and plays queue music, rings the agents routing chose (each offer is an
// outgoing call from the service's resource account to the agent's Teams: an "offer
// leg"), connects the agent who accepts into the caller's call, plays announcements and
// takes the service's exit, transfers, keeps long calls alive and hangs up.
//
// Routing decides; the controller acts; the calling platform's notifications close
// the loop. Each call's state is one entity (Call) in a Store, changed only through
// Store.UpdateCall (ETag-conditional), so repeated notifications, Service Bus
// redeliveries and concurrent instances change it once. The order is always: decide
// and write the new state, then ask the platform; a crash between the two is repaired
// by the reconciler (Controller.Reconcile), which looks at every call whose NextAt
// has passed and redoes or ends what is overdue. No caller stays in silence and no
// agent keeps ringing for a call that is gone.
//
// Why offer legs and not a redirect or a blind transfer (Graph's call API offers all
// three): a redirect is only possible before the call is answered, so the caller could
// hear no greeting or music; a transfer hands the call away, so the app would no longer
// see it end (no after-call work) and could not cancel the ring on its own timeout.
// A separate call per ringing agent keeps the caller on music in their own call, lets
// the app hang up one agent's ringing at its ring timeout or when another agent of a
// broadcast answered first, and tells decline (603) from no-answer (408/480/487). When
// the agent accepts, the agent is invited into the caller's call with replacesCallId =
// the offer leg (Graph's consultative pattern: the leg is dropped once the agent has
// joined), so the app stays in the call and sees either side hang up.
//
// The package imports the standard library and other domain packages only; Graph is
// behind Platform (shared/graph implements it).
package calls

import (
	"context"
	"slices"
	"time"

	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/teams"
)

// PartyKind says which identity names a party (the notification edge's type).
type PartyKind = teams.PartyKind

// Party kinds the controller uses.
const (
	User                = teams.PartyUser                // an Entra user (object id)
	Phone               = teams.PartyPhone               // a phone number (E.164)
	ApplicationInstance = teams.PartyApplicationInstance // a resource account (object id)
	Application         = teams.PartyApplication         // a bot (app id)
)

// Party is one identity in a call. ID is a customer or user identifier: never log it.
type Party = teams.Party

// Direction of a call.
type Direction string

const (
	Inbound  Direction = "Inbound"  // a customer called a service
	Outbound Direction = "Outbound" // an outbound task: the service calls the customer
)

// Phase is where a call is in its life.
type Phase string

const (
	// PhaseAnswering: the answer was sent; the call is not established yet.
	PhaseAnswering Phase = "Answering"
	// PhaseGreeting: the greeting prompt plays; the call is not queued yet.
	PhaseGreeting Phase = "Greeting"
	// PhaseQueued: the call waits in its service's queue (music loops); offers ring.
	PhaseQueued Phase = "Queued"
	// PhaseOffering: an outbound task is offered to agents; no customer call yet.
	PhaseOffering Phase = "Offering"
	// PhaseDialing: an outbound task's agent accepted; the customer is being called.
	PhaseDialing Phase = "Dialing"
	// PhaseConnecting: an agent accepted; the agent is being joined into the call.
	PhaseConnecting Phase = "Connecting"
	// PhaseConnected: caller and agent talk.
	PhaseConnected Phase = "Connected"
	// PhaseAnnouncing: an announcement plays before the exit (Call.Exit says why).
	PhaseAnnouncing Phase = "Announcing"
	// PhaseTransferring: a transfer (or the exit's transfer) is under way at the platform.
	PhaseTransferring Phase = "Transferring"
	// PhaseEnded: the call is over for us (Call.EndReason says how).
	PhaseEnded Phase = "Ended"
)

// LegState is where an offer leg (the call that rings one agent) is.
type LegState string

const (
	LegDialing   LegState = "Dialing"   // requested at the platform
	LegRinging   LegState = "Ringing"   // the agent's Teams rings
	LegJoining   LegState = "Joining"   // the agent accepted; being joined into the call
	LegJoined    LegState = "Joined"    // the agent is in the call (the leg was replaced)
	LegCancelled LegState = "Cancelled" // we hung it up (ring timeout, another agent won, caller gone); not confirmed yet
	LegEnded     LegState = "Ended"     // over (declined, no answer, unreachable, replaced)
)

// Live reports whether the leg may still ring or carry the agent.
func (s LegState) Live() bool { return s == LegDialing || s == LegRinging || s == LegJoining }

// pending reports whether the leg may still be up at the platform: live, or hung up
// by us without the platform having confirmed it yet.
func (l *Leg) pending() bool { return l.State.Live() || (l.State == LegCancelled && l.CallID != "") }

// Leg is one offer leg: an outgoing call from the service to one agent for one offer
// attempt of the call's task.
type Leg struct {
	N         int       `json:"n"` // the leg's number in its call (the callback URI names it)
	AgentID   string    `json:"agentId"`
	ServiceID string    `json:"serviceId"`
	TaskID    string    `json:"taskId"`
	Attempt   int       `json:"attempt"`
	CallID    string    `json:"callId,omitempty"` // the leg's own platform call id, once known
	State     LegState  `json:"state"`
	At        time.Time `json:"at"`       // when State was set
	Deadline  time.Time `json:"deadline"` // a live leg past this is hung up by the reconciler
}

// Media is what the app plays into the call.
type Media struct {
	Kind    MediaKind `json:"kind,omitempty"`
	Context string    `json:"context,omitempty"` // the clientContext of the prompt operation
	Since   time.Time `json:"since,omitempty"`
	Seq     int       `json:"seq,omitempty"` // counts prompts started, for unique contexts
}

// MediaKind is what kind of prompt plays.
type MediaKind string

const (
	MediaNone         MediaKind = ""
	MediaGreeting     MediaKind = "greeting"
	MediaMusic        MediaKind = "music"
	MediaAnnouncement MediaKind = "announcement"
)

// ExitReason is why a call leaves the queue without an agent (or after a failed
// transfer): it picks the announcement.
type ExitReason string

const (
	ExitQueueTimeout   ExitReason = "QueueTimeout"
	ExitQueueFull      ExitReason = "QueueFull"
	ExitClosed         ExitReason = "Closed"
	ExitTransferFailed ExitReason = "TransferFailed"
	ExitUnroutable     ExitReason = "Unroutable" // the task could not be queued (e.g. the service stopped taking calls)
)

// Step is one entry of a call's timeline.
type Step struct {
	At     time.Time `json:"at"`
	What   string    `json:"what"`
	Agent  string    `json:"agentId,omitempty"`
	Detail string    `json:"detail,omitempty"`
}

// MaxLegs is how many legs a call keeps before it drops those that are over.
const MaxLegs = 48

// MaxSteps bounds a call's timeline; older steps are dropped first, and
// Call.StepsDropped counts them.
const MaxSteps = 120

// Call is one call the controller handles: an inbound call to a service, or the
// calls of one outbound task.
type Call struct {
	TenantID string `json:"tenantId"`
	// ID is the key: the caller's platform call id (inbound) or the outbound task's
	// routing task id (outbound).
	ID string `json:"id"`
	// GraphID is the platform call id of the customer's call: the caller's call
	// (inbound, = ID) or the call placed to the customer (outbound, once placed).
	GraphID   string    `json:"graphId,omitempty"`
	Direction Direction `json:"direction"`
	// ServiceID and TaskID are the routing task the call is in now (a transfer to
	// another service moves them); TaskID is empty before the call is queued.
	ServiceID string `json:"serviceId"`
	TaskID    string `json:"taskId,omitempty"`
	// FirstService is the first service that answered the call; its PSTN licence
	// decides a transfer to a phone number (SPEC §3).
	FirstService     string `json:"firstService"`
	FirstServicePSTN bool   `json:"firstServicePstn,omitempty"`
	// Caller is who called (inbound): a customer identifier, masked for partners and
	// never logged. Customer is whom an outbound task calls.
	Caller   Party `json:"caller,omitempty"`
	Customer Party `json:"customer,omitempty"`
	// DirectInvite (outbound): invite the customer straight into the agent's call
	// instead of calling the customer first (the tenant's "directly invite" flags).
	DirectInvite bool `json:"directInvite,omitempty"`

	Phase Phase `json:"phase"`
	Media Media `json:"media,omitempty"`
	// Exit is why the call is announcing or leaving (PhaseAnnouncing, or a pending
	// exit such as a closed service's, taken once the call is established).
	Exit  ExitReason `json:"exit,omitempty"`
	Exits int        `json:"exits,omitempty"` // exits taken; a loop of exits ends the call

	// CustomerParticipant and AgentParticipant are participant ids in the customer's
	// call, from its roster.
	CustomerParticipant string `json:"customerParticipant,omitempty"`
	Agent               string `json:"agentId,omitempty"` // the connected (or connecting) agent
	AgentParticipant    string `json:"agentParticipant,omitempty"`
	AgentJoined         bool   `json:"agentJoined,omitempty"`
	// Group: an agent was invited into the call, which made it a group call (a
	// transfer then names the customer as the transferee).
	Group bool `json:"group,omitempty"`

	// Legs are the call's offer legs, oldest first; Legs[i].N == LegBase + i. Legs
	// that are over are dropped from the front once there are more than MaxLegs
	// (LegBase counts them), so a call that waits long stays small.
	Legs    []Leg `json:"legs,omitempty"`
	LegBase int   `json:"legBase,omitempty"`

	Created     time.Time `json:"created"`
	AnsweredAt  time.Time `json:"answeredAt,omitempty"`
	ConnectedAt time.Time `json:"connectedAt,omitempty"`
	EndedAt     time.Time `json:"endedAt,omitempty"`
	EndReason   string    `json:"endReason,omitempty"`
	// KeepAliveAt is when the platform must next hear a keep-alive for the call.
	KeepAliveAt time.Time `json:"keepAliveAt,omitempty"`
	// Due is the latest moment by which the step under way (answer, prompt, join,
	// transfer, dialing) should have finished; zero when nothing is under way.
	Due time.Time `json:"due,omitempty"`
	// NextAt is when the reconciler must look at the call (zero: never): the earliest
	// of Due, KeepAliveAt and the deadlines of live legs, set on every write.
	NextAt time.Time `json:"nextAt,omitempty"`

	Steps        []Step `json:"steps,omitempty"`
	StepsDropped int    `json:"stepsDropped,omitempty"`

	// ETag is the stored version this value was read at.
	ETag string `json:"-"`
}

// leg returns leg n, or nil when the call has no such leg (any more).
func (c *Call) leg(n int) *Leg {
	i := n - c.LegBase
	if i < 0 || i >= len(c.Legs) {
		return nil
	}
	return &c.Legs[i]
}

// addLeg appends a leg numbered after the last, first dropping legs that are over
// from the front while the call has more than MaxLegs.
func (c *Call) addLeg(l Leg) Leg {
	for len(c.Legs) >= MaxLegs {
		f := &c.Legs[0]
		if f.pending() || f.State == LegJoined && f.AgentID == c.Agent && c.Phase == PhaseConnected {
			break
		}
		c.Legs = c.Legs[1:]
		c.LegBase++
	}
	l.N = c.LegBase + len(c.Legs)
	c.Legs = append(c.Legs, l)
	return l
}

// Open reports whether the call is not over.
func (c *Call) Open() bool { return c.Phase != PhaseEnded }

// Clone returns a deep copy.
func (c Call) Clone() Call {
	c.Legs = slices.Clone(c.Legs)
	c.Steps = slices.Clone(c.Steps)
	return c
}

// step appends a timeline entry.
func (c *Call) step(at time.Time, what, agent, detail string) {
	c.Steps = append(c.Steps, Step{At: at, What: what, Agent: agent, Detail: detail})
	if n := len(c.Steps); n > MaxSteps {
		c.StepsDropped += n - MaxSteps
		c.Steps = slices.Delete(c.Steps, 0, n-MaxSteps)
	}
}

// Store keeps calls. Implementations are safe for concurrent use. Not-found is
// fault.ErrNotFound, an insert of an existing id fault.ErrConflict (errors.Is).
// Values returned carry the ETag they were read or written at.
type Store interface {
	// CreateCall inserts c; fault.ErrConflict when the tenant has a call with its id.
	CreateCall(ctx context.Context, c Call) (Call, error)
	// GetCall returns one call.
	GetCall(ctx context.Context, tenantID, id string) (Call, error)
	// UpdateCall reads the call, applies fn and writes it conditionally, retrying fn
	// on a lost race (so fn must be repeatable). An error from fn aborts with nothing
	// written and is returned as is; a missing call is fault.ErrNotFound. fn cannot
	// change the ids.
	UpdateCall(ctx context.Context, tenantID, id string, fn func(*Call) error) (Call, error)
	// DueCalls returns the tenant's calls whose NextAt is set and not after t, in no
	// particular order.
	DueCalls(ctx context.Context, tenantID string, t time.Time) ([]Call, error)
}

// Target is whom a platform request rings, invites or transfers to.
type Target = Party

// Answer is how an incoming call is answered.
type Answer struct {
	// CallbackURI receives the call's later notifications.
	CallbackURI string
	// Prefetch are prompt URIs the platform may fetch ahead (the service's prompts).
	Prefetch []string
}

// Dial is an outgoing call the app places.
type Dial struct {
	// Source is the resource account (application instance object id) the call comes
	// from; empty: the app itself (a Teams user sees the bot's name; PSTN needs it).
	Source string
	// Target is whom to ring: an agent (User) or an outbound customer (User, Phone).
	Target      Target
	CallbackURI string
}

// RejectReason says why an incoming call is refused.
type RejectReason string

const (
	RejectNone      RejectReason = "none"
	RejectBusy      RejectReason = "busy"
	RejectForbidden RejectReason = "forbidden"
)

// Platform is the calling platform (Graph's call API, /communications/calls) as the
// controller uses it. Each method is one logical request; implementations honour 429
// and 5xx with their Retry-After within ctx's deadline, and map errors once:
// 404 → fault.ErrNotFound (the call or participant is gone), any other 4xx →
// fault.Permanent (a retry cannot help), the rest (5xx, network, timeouts) transient.
// Operations the platform completes later (prompts, invite, transfer) report through
// a commsOperation notification carrying clientContext. Safe for concurrent use.
type Platform interface {
	// Answer answers an incoming call with service-hosted media, audio only.
	Answer(ctx context.Context, tenantID, callID string, a Answer) error
	// Reject refuses an incoming call.
	Reject(ctx context.Context, tenantID, callID string, reason RejectReason) error
	// Redirect hands an incoming, unanswered call to target (the app leaves it).
	Redirect(ctx context.Context, tenantID, callID string, target Target, callbackURI string) error
	// PlayPrompt plays one audio file (https URI) into the call.
	PlayPrompt(ctx context.Context, tenantID, callID, uri, clientContext string) error
	// CancelMedia stops the prompts playing or queued in the call.
	CancelMedia(ctx context.Context, tenantID, callID, clientContext string) error
	// Dial places an outgoing call and returns its call id.
	Dial(ctx context.Context, tenantID string, d Dial) (string, error)
	// Invite adds target to the call; with replacesCallID the target's existing
	// peer-to-peer call with the app (an offer leg) is replaced once it has joined.
	Invite(ctx context.Context, tenantID, callID string, target Target, replacesCallID, clientContext string) error
	// Transfer hands the call to target; transferee is the participant id to transfer
	// out of a group call ("" for a peer-to-peer call). The app leaves the call when
	// the transfer completes.
	Transfer(ctx context.Context, tenantID, callID string, target Target, transferee, clientContext string) error
	// RemoveParticipant drops one participant from the call.
	RemoveParticipant(ctx context.Context, tenantID, callID, participantID string) error
	// KeepAlive tells the platform the call is still wanted (at least every 45 min).
	KeepAlive(ctx context.Context, tenantID, callID string) error
	// HangUp ends the app's call (deleting it); a call already gone is ErrNotFound.
	HangUp(ctx context.Context, tenantID, callID string) error
	// State reads the call's state ("incoming", "established", "terminated", ...);
	// a call that is gone is fault.ErrNotFound.
	State(ctx context.Context, tenantID, callID string) (string, error)
}

// Directory finds users: an outbound customer given by user principal name is called
// by object id (shared/graph implements it).
type Directory interface {
	// UserID returns the object id of user (a UPN or an object id);
	// fault.ErrNotFound when the tenant has no such user.
	UserID(ctx context.Context, tenantID, user string) (string, error)
}

// Router is what the controller asks of routing (routing.Engine implements it).
type Router interface {
	IncomingCall(ctx context.Context, in routing.IncomingCall) (routing.Task, error)
	CallStateChanged(ctx context.Context, ev routing.CallEvent) (routing.Task, error)
	TransferToService(ctx context.Context, tenantID, fromService, taskID, toService string) (routing.Task, error)
	TransferToPSTN(ctx context.Context, tenantID, serviceID, taskID string) (routing.Task, error)
	// Finish ends a task with an outcome (the customer of an outbound task was not
	// reached, the caller left while announcing, ...); agents are released.
	Finish(ctx context.Context, tenantID, serviceID, taskID string, outcome routing.Outcome) (routing.Task, error)
	// Wake sends a kick for the service now (a reconciled call whose task waits).
	Wake(ctx context.Context, tenantID, serviceID, reason, id string) error
}

var _ Router = (*routing.Engine)(nil)
