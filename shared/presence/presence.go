// Package presence reads Teams presence for the agents of every tracked tenant, keeps
// the stored presence current (writing only what changed), and reports each tenant's
// presence health: which credential answers, since when, and what went wrong.
//
// It imports no SDK: Graph is reached through Reader, storage through Store.
package presence

import (
	"context"
	"strings"
	"time"
)

// Availability is the Teams availability of a user (SPEC §4).
type Availability string

const (
	Available       Availability = "Available"
	AvailableIdle   Availability = "AvailableIdle"
	Away            Availability = "Away"
	BeRightBack     Availability = "BeRightBack"
	Busy            Availability = "Busy"
	BusyIdle        Availability = "BusyIdle"
	DoNotDisturb    Availability = "DoNotDisturb"
	Offline         Availability = "Offline"
	PresenceUnknown Availability = "PresenceUnknown"
)

var availabilities = []Availability{Available, AvailableIdle, Away, BeRightBack, Busy, BusyIdle, DoNotDisturb, Offline, PresenceUnknown}

// ParseAvailability reads an availability case-insensitively; anything unknown is
// PresenceUnknown.
func ParseAvailability(s string) Availability {
	s = strings.TrimSpace(s)
	for _, a := range availabilities {
		if strings.EqualFold(s, string(a)) {
			return a
		}
	}
	return PresenceUnknown
}

// Activities Graph reports that routing rules name (SPEC §4). Other activities are kept
// as Graph spelled them.
const (
	ActivityInACall           = "InACall"
	ActivityInAConferenceCall = "InAConferenceCall"
	ActivityInAMeeting        = "InAMeeting"
	ActivityPresenting        = "Presenting"
	ActivityOutOfOffice       = "OutOfOffice"
)

var activities = []string{"Available", "Away", "BeRightBack", "Busy", "DoNotDisturb", "Offline",
	ActivityInACall, ActivityInAConferenceCall, "Inactive", ActivityInAMeeting, ActivityOutOfOffice,
	"OffWork", "OutOfOffice", ActivityPresenting, "UrgentInterruptionsOnly", "PresenceUnknown", "Focusing"}

// ParseActivity normalises the spelling of known activities case-insensitively and
// keeps unknown ones trimmed as given ("" stays "": basic presence has no activity).
func ParseActivity(s string) string {
	s = strings.TrimSpace(s)
	for _, a := range activities {
		if strings.EqualFold(s, a) {
			return a
		}
	}
	return s
}

// Source says where a stored presence came from.
type Source string

const (
	// SourceExtended: availability and activity read from Graph with a presence account
	// or the application permission.
	SourceExtended Source = "extended"
	// SourceBasic: availability only (activity unknown). Used when no credential of the
	// tenant works: the last known availability is kept, its activity dropped, and
	// routing applies the basic-presence rules (SPEC §4).
	SourceBasic Source = "basic"
	// SourceSimulated: produced by the local runner's simulated tenant.
	SourceSimulated Source = "simulated"
)

// Presence is the stored presence of one agent. It is written only when availability,
// activity or source change; ObservedAt is the poll that saw the change.
type Presence struct {
	AgentID      string       `json:"agentId"`
	Availability Availability `json:"availability"`
	Activity     string       `json:"activity,omitempty"`
	Source       Source       `json:"source"`
	ObservedAt   time.Time    `json:"observedAt"`
	// OfflineAt is the last time the agent went Offline: the poll that stored Offline
	// after another availability (or none), once Offline damping had passed. It is
	// kept while the agent is back online; zero if never seen going Offline. Routing
	// compares it with the start of a RONA: an agent who went Offline since is no
	// longer in RONA.
	OfflineAt time.Time `json:"offlineAt,omitzero"`
}

// Same reports whether p and q carry the same presence, ignoring when it was observed
// and OfflineAt (which only changes together with availability).
func (p Presence) Same(q Presence) bool {
	return p.Availability == q.Availability && p.Activity == q.Activity && p.Source == q.Source
}

// CredentialKind names which credential read (or failed to read) presence.
type CredentialKind string

const (
	CredAccount1    CredentialKind = "account1"
	CredAccount2    CredentialKind = "account2"
	CredApplication CredentialKind = "application"
	CredBasic       CredentialKind = "basic" // none works: basic presence
)

// Credential is what a Reader signs in with for one tenant. Password is a secret: it
// is never logged, and String masks it.
type Credential struct {
	Kind     CredentialKind
	Username string // UPN of the presence account; empty for CredApplication
	Password string
}

func (c Credential) String() string {
	if c.Username == "" {
		return string(c.Kind)
	}
	return string(c.Kind) + "(***)"
}

// Observation is one user's presence as Graph answered it.
type Observation struct {
	UserID       string // Entra object id as Graph returned it
	Availability Availability
	Activity     string
}

// MaxIDsPerRequest is Graph's limit for getPresencesByUserId.
const MaxIDsPerRequest = 650

// Reader reads presence from Graph for one tenant with one credential. It is safe for
// concurrent use; it retries throttling (429 Retry-After) and 5xx itself within ctx.
//
// Errors: an *AuthError when the credential itself is refused (wrong password, MFA,
// conditional access, consent missing, Graph 401/403); anything else is transient.
type Reader interface {
	// ReadPresences reads at most MaxIDsPerRequest users by object id. Users Graph
	// does not return are simply absent from the result.
	ReadPresences(ctx context.Context, tenantID string, cred Credential, userIDs []string) ([]Observation, error)
	// ReadPresence reads one user by object id or UPN (the Test UPN action).
	ReadPresence(ctx context.Context, tenantID string, cred Credential, user string) (Observation, error)
}

// AuthError says a credential was refused. Code is the AADSTS code ("AADSTS50076")
// when Entra gave one, else "HTTP401"/"HTTP403" and the like. Message never holds a
// secret or a token.
type AuthError struct {
	Code    string
	Message string
}

func (e *AuthError) Error() string { return "credential refused: " + e.Code + ": " + e.Message }

// AccountStatus is what the last attempt with one credential found.
type AccountStatus struct {
	OK        bool      `json:"ok"`
	CheckedAt time.Time `json:"checkedAt,omitzero"`
	ErrorCode string    `json:"errorCode,omitempty"`
}

// Warning is a health finding an admin should act on.
type Warning struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
}

// Health is a tenant's presence health, kept in storage and updated every poll.
type Health struct {
	TenantID      string         `json:"tenantId"`
	Active        CredentialKind `json:"active"`               // credential in use; CredBasic when none works
	ActiveSince   time.Time      `json:"activeSince,omitzero"` // when Active last changed
	LastErrorCode string         `json:"lastErrorCode,omitempty"`
	LastError     string         `json:"lastError,omitempty"`
	LastErrorAt   time.Time      `json:"lastErrorAt,omitzero"`
	Account1      AccountStatus  `json:"account1,omitzero"`
	Account2      AccountStatus  `json:"account2,omitzero"`
	Application   AccountStatus  `json:"application,omitzero"`
	LastPollAt    time.Time      `json:"lastPollAt,omitzero"`
	// LastReadAt is the last poll a credential answered in full: stored presences are
	// as of then (see Config.MaxAge and Stale).
	LastReadAt   time.Time     `json:"lastReadAt,omitzero"`
	LastPollTook time.Duration `json:"lastPollTookNs,omitempty"`
	Agents       int           `json:"agents"`
	LastChanged  int           `json:"lastChanged"`     // presences written by the last poll
	Requests     int           `json:"lastRequests"`    // Graph requests made by the last poll
	OfflinePolls int           `json:"allOfflinePolls"` // consecutive polls with every agent Offline
	Warnings     []Warning     `json:"warnings,omitempty"`
	Generation   int64         `json:"generation"` // bumped with every presence write; lets a refresher trust its cache
}

// Stale reports whether the tenant's stored presence is older than maxAge at now: no
// credential has answered within maxAge (or ever). A tenant without health (never
// polled) is not judged.
func (h Health) Stale(now time.Time, maxAge time.Duration) bool {
	if h.TenantID == "" {
		return false
	}
	return h.LastReadAt.IsZero() || now.Sub(h.LastReadAt) > maxAge
}

// Store keeps presences and presence health. Implementations are safe for concurrent
// use.
type Store interface {
	// LoadPresences returns every stored presence of the tenant.
	LoadPresences(ctx context.Context, tenantID string) ([]Presence, error)
	// SavePresences inserts or replaces presences of one tenant (any number; adapters
	// write them in batches of at most 100).
	SavePresences(ctx context.Context, tenantID string, ps []Presence) error
	// GetHealth returns the tenant's health, or fault.ErrNotFound before the first poll.
	GetHealth(ctx context.Context, tenantID string) (Health, error)
	// UpdateHealth reads the health (zero value with TenantID set if none), applies fn
	// and writes it back conditionally (ETag), retrying fn on a lost race, so no update
	// is lost. An error from fn aborts with nothing written.
	UpdateHealth(ctx context.Context, tenantID string, fn func(*Health) error) (Health, error)
}
