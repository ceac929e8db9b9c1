// Package teams is the edge between Microsoft Graph call notifications and the routing
// core: it answers Graph's validation handshake, authenticates every notification of a
// batch by its clientState, and turns Graph's call resources into a small closed set of
// normalized Events.
//
// Two payload shapes are read, both {"value":[...]}:
//
//   - change notifications of a Graph subscription: each item has subscriptionId,
//     clientState, changeType, resource ("communications/calls/{id}"), resourceData,
//     tenantId, and optionally id and lifecycleEvent;
//   - a calling bot's callback (commsNotifications): each item has
//     "@odata.type":"#microsoft.graph.commsNotification", changeType, resourceUrl
//     ("/communications/calls/{id}", legacy "/app/calls/{id}") and resourceData (a call).
//
// Every item must carry the expected clientState (see Webhook). Graph does not put one in
// a calling bot's callbacks, which it authenticates with a bearer token instead; this
// package does not validate that token, so bot callbacks are accepted only when a
// clientState is present (our simulator and tests send one).
//
// The webhook is stateless: a notification Graph delivers twice yields two identical
// Events with the same Key. Idempotency is the consumer's job, by Event.Key.
//
// It imports only the standard library and the project's fault and funchost packages.
package teams

import (
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"strconv"
	"strings"
)

// Kind is what a notification means for routing. The set is closed: every call
// notification maps to exactly one Kind (see classify for the table).
type Kind string

const (
	// KindIncoming: a new call is offered to one of our services (state incoming).
	// Target says which service; create a task and kick the service.
	KindIncoming Kind = "incoming"
	// KindRinging: the call is being set up (state establishing or ringing). On an
	// offer leg to an agent (Direction outgoing) the agent's Teams is ringing.
	KindRinging Kind = "ringing"
	// KindAnswered: the call is connected (state established, no failure in
	// resultInfo). On an offer leg, the agent answered.
	KindAnswered Kind = "answered"
	// KindTransferring: a transfer or redirect is in progress (transferring,
	// transferAccepted, redirecting).
	KindTransferring Kind = "transferring"
	// KindTransferFailed: the call fell back to established with a failure code after a
	// transfer (Graph: "when a call transfer fails, the call state will be established").
	KindTransferFailed Kind = "transferFailed"
	// KindTransferred: the call left us because a transfer completed (terminated with
	// terminationReason AppTransferred or resultInfo subcode 7015).
	KindTransferred Kind = "transferred"
	// KindDeclined: the call ended because the callee refused it (SIP 603 Decline,
	// 486 Busy Here). On an offer leg: the agent declined — not a no-answer.
	KindDeclined Kind = "declined"
	// KindNoAnswer: the call ended unanswered (SIP 408, 480, 487). On an offer leg:
	// ring-no-answer.
	KindNoAnswer Kind = "noAnswer"
	// KindEnded: the call ended for any other reason (hang-up, error, deleted).
	KindEnded Kind = "ended"
	// KindOther: a state routing does not act on (hold, terminating, an unknown state).
	// Kept so that nothing Graph sends is silently lost from logs and tests.
	KindOther Kind = "other"
)

// ChangeType is Graph's changeType of a notification.
type ChangeType string

const (
	Created ChangeType = "created"
	Updated ChangeType = "updated"
	Deleted ChangeType = "deleted"
)

// PartyKind says which member of Graph's identitySet identified a party.
type PartyKind string

const (
	// PartyApplicationInstance: a resource account (the usual identity of a service
	// with a phone number): identity.applicationInstance.id.
	PartyApplicationInstance PartyKind = "applicationInstance"
	// PartyApplication: the bot's application id: identity.application.id.
	PartyApplication PartyKind = "application"
	// PartyPhone: a phone number in E.164: identity.phone.id.
	PartyPhone PartyKind = "phone"
	// PartyUser: an Entra user object id: identity.user.id.
	PartyUser PartyKind = "user"
)

// Party is one identity of a call. ID is a customer identifier (a phone number or an
// object id): never log it.
type Party struct {
	Kind PartyKind
	ID   string
}

// IsZero reports whether p names nobody.
func (p Party) IsZero() bool { return p.ID == "" }

// Result is the outcome Graph reports on a call: resultInfo.code (a SIP-like status),
// resultInfo.subcode, and terminationReason. Zero when absent. The free-text message is
// not kept.
type Result struct {
	Code              int
	Subcode           int
	TerminationReason string
}

// Event is one normalized call notification.
//
// Graph sends the whole call (direction, source, targets) mostly with the "created"
// notification; updates usually carry only the state (and resultInfo). So Target, Agent,
// Direction and TenantID are set only when the payload carries them: correlate later
// events with earlier ones by CallID.
type Event struct {
	Kind Kind
	// CallID is the Graph call id: resourceData.id, else the id in resource/resourceUrl
	// or resourceData["@odata.id"] ("/communications/calls/{id}").
	CallID string
	// TenantID: the notification's tenantId, else resourceData.tenantId, else the
	// tenantId of the target's identity. May be empty.
	TenantID   string
	ChangeType ChangeType
	// State is Graph's call state in Graph's spelling (incoming, establishing, ringing,
	// established, hold, transferring, transferAccepted, redirecting, terminating,
	// terminated); an unknown state is kept as sent. Empty for a deletion without state.
	State string
	// Direction is "incoming" or "outgoing" when sent.
	Direction string
	// Target is the called service. Incoming call: the first of targets[] with an
	// applicationInstance, application, phone or user identity (in that order of
	// preference within the identitySet). Outgoing call (our offer leg to an agent): the
	// source, i.e. the service's resource account or application that placed the call.
	Target Party
	// Agent is the Entra user object id of the agent the change concerns: on an
	// outgoing call, the first target with a user identity. Empty otherwise.
	Agent  string
	Result Result
	// NotificationID is the notification's own id (subscription shape only).
	NotificationID string
	// SubscriptionID is the Graph subscription that produced it (subscription shape).
	SubscriptionID string
	// Sequence is resourceData["@odata.etag"], the version of the call resource Graph
	// sent, when present.
	Sequence string
}

// Key returns the idempotency key of the change: a hex SHA-256 over the call id, the
// change type, the state, the agent, the sequence (etag) and the result. The same
// notification delivered twice has the same Key; two different changes of a call have
// different Keys. The notification id and subscription id are left out on purpose, so
// the same change reaching us through two subscriptions is still one change.
//
// The key holds no identifier in clear: it is safe to log and to use as a Table
// RowKey (64 characters of [0-9a-f]).
func (e Event) Key() string {
	var b strings.Builder
	b.Grow(128 + len(e.CallID) + len(e.Agent) + len(e.Sequence))
	for _, s := range []string{
		"v1", e.CallID, string(e.ChangeType), strings.ToLower(e.State), e.Agent, e.Sequence,
		strconv.Itoa(e.Result.Code), strconv.Itoa(e.Result.Subcode), strings.ToLower(e.Result.TerminationReason),
	} {
		// Length-prefixed, so that no two different field lists give the same string.
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:])
}

// LogValue logs an Event without any identifier: kind, state, change type, direction,
// result and key. Call ids, tenants, phone numbers and user ids are left out.
func (e Event) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("kind", string(e.Kind)),
		slog.String("state", e.State),
		slog.String("changeType", string(e.ChangeType)),
		slog.String("direction", e.Direction),
		slog.Int("resultCode", e.Result.Code),
		slog.Int("resultSubcode", e.Result.Subcode),
		slog.String("key", e.Key()),
	)
}

// Graph's call states, in Graph's spelling.
var states = []string{"incoming", "establishing", "ringing", "established", "hold", "transferring",
	"transferAccepted", "redirecting", "terminating", "terminated"}

// canonicalState spells a known state as Graph does (older payloads send "Established");
// an unknown state is kept as sent.
func canonicalState(s string) string {
	for _, known := range states {
		if strings.EqualFold(s, known) {
			return known
		}
	}
	return s
}

// Result codes that say how a call ended. Graph's resultInfo.code carries SIP-like
// statuses; these are the ones that separate a refusal from no answer.
var (
	declineCodes  = map[int]bool{603: true, 486: true} // Decline; Busy Here
	noAnswerCodes = map[int]bool{408: true, 480: true, 487: true}
)

// subcodeTransferCompleted is resultInfo.subcode of "GracefulTransferCompleted".
const subcodeTransferCompleted = 7015

// classify maps a call notification to its Kind:
//
//	state incoming                              → KindIncoming
//	state establishing, ringing                 → KindRinging
//	state established, resultInfo.code < 400    → KindAnswered
//	state established, resultInfo.code ≥ 400    → KindTransferFailed
//	state transferring, transferAccepted,
//	      redirecting                           → KindTransferring
//	state terminated (or changeType deleted without state):
//	      terminationReason *Transferred or subcode 7015 → KindTransferred
//	      code 603, 486                         → KindDeclined
//	      code 408, 480, 487                    → KindNoAnswer
//	      anything else                         → KindEnded
//	anything else (hold, terminating, unknown)  → KindOther
func classify(ct ChangeType, state string, r Result) Kind {
	switch state {
	case "incoming":
		return KindIncoming
	case "establishing", "ringing":
		return KindRinging
	case "established":
		if r.Code >= 400 {
			return KindTransferFailed
		}
		return KindAnswered
	case "transferring", "transferAccepted", "redirecting":
		return KindTransferring
	case "terminated":
		return ended(r)
	case "":
		if ct == Deleted {
			return ended(r)
		}
	}
	return KindOther
}

func ended(r Result) Kind {
	switch {
	case strings.HasSuffix(strings.ToLower(r.TerminationReason), "transferred") || r.Subcode == subcodeTransferCompleted:
		return KindTransferred
	case declineCodes[r.Code]:
		return KindDeclined
	case noAnswerCodes[r.Code]:
		return KindNoAnswer
	default:
		return KindEnded
	}
}
