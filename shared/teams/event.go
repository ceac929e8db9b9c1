// Package teams is the edge between Microsoft's calling platform and the call
// controller: the calling webhook authenticates every callback by its bearer token,
// recognises the legacy first callback of an incoming call (answered 204, so the
// platform sends it again in Graph's format), and turns Graph's commsNotifications
// into a small closed set of normalized Events: call states, roster changes
// (participants) and operation results (commsOperation).
//
// A body is {"value":[commsNotification...]}; each item has changeType, resourceUrl
// (or resource: "/communications/calls/{id}", legacy "/app/calls/{id}", with
// "/participants" or "/operations/{id}" below the call) and resourceData (a call, an
// array of participants, or an operation). Graph's call notifications carry no
// clientState and Graph has no change-notification subscriptions for calls: the
// bearer token, signed by the calling platform for this bot's app id and naming the
// tenant (tid), is the only proof of origin (see Authenticator).
//
// The webhook is stateless: the platform may deliver a notification twice, and the
// consumer's state machine must make the second delivery change nothing.
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

// Kind is what a notification means. The set is closed: every notification the parser
// keeps maps to exactly one Kind (see classify for the call states).
type Kind string

const (
	// KindIncoming: a new call is offered to the bot (state incoming). Target says
	// which resource account or number was called, Source who calls.
	KindIncoming Kind = "incoming"
	// KindRinging: the call is being set up (state establishing or ringing). On an
	// offer leg the agent's Teams is ringing.
	KindRinging Kind = "ringing"
	// KindAnswered: the call is connected (state established, no failure in
	// resultInfo). On an offer leg, the agent accepted.
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
	// KindNoAnswer: the call ended unanswered (SIP 408, 480, 487).
	KindNoAnswer Kind = "noAnswer"
	// KindEnded: the call ended for any other reason (hang-up, error, deleted).
	KindEnded Kind = "ended"
	// KindRoster: participants of a call were added or updated (ChangeType created or
	// updated: Participants is the roster Graph sent) or left (deleted).
	KindRoster Kind = "roster"
	// KindOperation: an operation the app started on the call (a prompt, an invite, a
	// transfer, ...) changed status; Operation says which and how.
	KindOperation Kind = "operation"
	// KindOther: a state the controller does not act on (hold, terminating, an unknown
	// state). Kept so that nothing the platform sends is silently lost from logs.
	KindOther Kind = "other"
)

// Ended reports whether the kind says the call is over.
func (k Kind) Ended() bool {
	return k == KindEnded || k == KindDeclined || k == KindNoAnswer || k == KindTransferred
}

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
	// PartyUser: an Entra user object id (identity.user.id).
	PartyUser PartyKind = "user"
	// PartyPhone: a phone number in E.164 (identity.phone.id).
	PartyPhone PartyKind = "phone"
	// PartyApplicationInstance: a resource account (identity.applicationInstance.id).
	PartyApplicationInstance PartyKind = "applicationInstance"
	// PartyApplication: an application (a bot) by app id (identity.application.id).
	PartyApplication PartyKind = "application"
)

// Party is one identity in a call. ID is a customer identifier (a phone number or an
// object id): never log it.
type Party struct {
	Kind PartyKind `json:"kind"`
	ID   string    `json:"id"`
}

// IsZero reports whether p names nobody.
func (p Party) IsZero() bool { return p.ID == "" }

// Result is the outcome the platform reports: resultInfo.code (a SIP-like status),
// resultInfo.subcode, and terminationReason. Zero when absent. The free-text message
// is not kept.
type Result struct {
	Code              int
	Subcode           int
	TerminationReason string
}

// Failed reports a failure code (≥ 400).
func (r Result) Failed() bool { return r.Code >= 400 }

// Participant is one entry of a call's roster.
type Participant struct {
	ID    string // the participant id in the call
	Party Party  // who it is; zero for an identity we do not read (a guest, a device)
}

// Operation is the status of an operation the app started (commsOperation).
type Operation struct {
	ID string
	// Type is the resource type without its namespace: playPromptOperation,
	// inviteParticipantsOperation, cancelMediaProcessingOperation, ...
	Type string
	// Status is "running", "completed" or "failed".
	Status        string
	ClientContext string
	Result        Result
}

// Done reports whether the operation is over (completed or failed).
func (o Operation) Done() bool { return o.Status == "completed" || o.Status == "failed" }

// Succeeded reports a completed operation without a failure code.
func (o Operation) Succeeded() bool { return o.Status == "completed" && !o.Result.Failed() }

// Event is one normalized notification.
//
// The platform sends the whole call (direction, source, targets) mostly with the
// incoming notification; updates usually carry only the state (and resultInfo). So
// Source, Target, Agent and Direction are set only when the payload carries them.
type Event struct {
	Kind Kind
	// CallID is the platform call id: resourceData.id, else the id in the resource path
	// or resourceData["@odata.id"].
	CallID     string
	ChangeType ChangeType
	// State is Graph's call state in Graph's spelling (incoming, establishing,
	// ringing, established, hold, transferring, transferAccepted, redirecting,
	// terminating, terminated); an unknown state is kept as sent.
	State string
	// Direction is "incoming" or "outgoing" when sent.
	Direction string
	// Source is who placed the call (the caller of an incoming call).
	Source Party
	// Target is the called resource: on an incoming call the first of targets[] with
	// an applicationInstance, application, phone or user identity (in that order of
	// preference within the identitySet).
	Target Party
	// Agent is the first target with a user identity of an outgoing call (an offer
	// leg's agent), when sent.
	Agent  string
	Result Result
	// Participants: the roster of a KindRoster event.
	Participants []Participant
	// Operation: the operation of a KindOperation event.
	Operation Operation
	// Sequence is resourceData["@odata.etag"] when present.
	Sequence string
}

// Key returns a digest of the change: a hex SHA-256 over the call id, change type,
// state, result, operation and participants. The same notification delivered twice
// has the same Key. It holds no identifier in clear: it is safe to log.
func (e Event) Key() string {
	var b strings.Builder
	parts := []string{"v2", string(e.Kind), e.CallID, string(e.ChangeType), strings.ToLower(e.State), e.Agent, e.Sequence,
		strconv.Itoa(e.Result.Code), strconv.Itoa(e.Result.Subcode), strings.ToLower(e.Result.TerminationReason),
		e.Operation.ID, e.Operation.Status, e.Operation.ClientContext}
	for _, p := range e.Participants {
		parts = append(parts, p.ID, string(p.Party.Kind), p.Party.ID)
	}
	for _, s := range parts {
		// Length-prefixed, so that no two different field lists give the same string.
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:])
}

// LogValue logs an Event without any identifier: kind, state, change type, direction,
// result, operation type and status, roster size and key.
func (e Event) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("kind", string(e.Kind)),
		slog.String("changeType", string(e.ChangeType)),
	}
	if e.State != "" {
		attrs = append(attrs, slog.String("state", e.State))
	}
	if e.Direction != "" {
		attrs = append(attrs, slog.String("direction", e.Direction))
	}
	if e.Result.Code != 0 || e.Result.Subcode != 0 {
		attrs = append(attrs, slog.Int("resultCode", e.Result.Code), slog.Int("resultSubcode", e.Result.Subcode))
	}
	if e.Kind == KindOperation {
		attrs = append(attrs, slog.String("operation", e.Operation.Type), slog.String("status", e.Operation.Status))
	}
	if e.Kind == KindRoster {
		attrs = append(attrs, slog.Int("participants", len(e.Participants)))
	}
	attrs = append(attrs, slog.String("key", e.Key()[:16]))
	return slog.GroupValue(attrs...)
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

// Result codes that say how a call ended. resultInfo.code carries SIP-like statuses;
// these are the ones that separate a refusal from no answer.
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
		if r.Failed() {
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
