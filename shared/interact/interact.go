// Package interact is the web widget side of the contact center (SPEC §2 Interact, §7):
// the per-tenant widget key, the authorization of widget requests (key, then bearer
// token per the tenant's mode), and customer sessions that can be recovered for a
// while after the customer closed them.
//
// It imports no SDK: token validation is reached through TokenVerifier, Azure
// Communication Services through ACS, storage through Store and tenant.Secrets.
package interact

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/tenant"
)

// AuthMode says what a widget request must carry besides the widget key.
type AuthMode string

const (
	// ModeNone: the widget key suffices (the default).
	ModeNone AuthMode = "None"
	// ModeVerifyToken: a valid Entra bearer token (signature, expiry, issuer,
	// audience) from any tenant.
	ModeVerifyToken AuthMode = "VerifyToken"
	// ModeVerifyTokenAndTenant: as ModeVerifyToken, and the token's tid is the tenant.
	ModeVerifyTokenAndTenant AuthMode = "VerifyTokenAndTenant"
)

// Names of the per-tenant secrets (tenant.Secrets). Values are never logged; the ACS
// connection string is never returned.
const (
	SecretWidgetKey     = "interact-widget-key"
	SecretACSConnection = "interact-acs-connection-string"
)

// Ranges and defaults of the settings (SPEC §2).
const (
	DefaultRecoveryTimeoutSeconds = 20
	MinRecoveryTimeoutSeconds     = 5
	MaxRecoveryTimeoutSeconds     = 60
	MaxAllowedOrigins             = 20
	MaxTokenAudiences             = 10
	MaxCustomerIDLength           = 256
)

// Settings is a tenant's Interact configuration as stored. It carries no secret: the
// widget key is kept only as its SHA-256 (a leaked row cannot forge requests; the key
// itself is in tenant.Secrets for admins to read), the ACS connection string only as
// "is set".
type Settings struct {
	TenantID               string    `json:"tenantId"`
	Enabled                bool      `json:"enabled"`
	AuthMode               AuthMode  `json:"authMode"`
	RecoveryTimeoutSeconds int       `json:"recoveryTimeoutSeconds"`
	AllowedOrigins         []string  `json:"allowedOrigins,omitempty"`
	TokenAudiences         []string  `json:"tokenAudiences,omitempty"` // empty: Config.DefaultAudiences
	MeetingUserID          string    `json:"meetingUserId,omitempty"`  // O365 user (object id) meetings are created for
	ACSConfigured          bool      `json:"acsConfigured"`
	KeyHash                string    `json:"keyHash,omitempty"`     // hex SHA-256 of the current widget key
	PrevKeyHash            string    `json:"prevKeyHash,omitempty"` // hex SHA-256 of the previous key, during the grace period
	PrevKeyValidUntil      time.Time `json:"prevKeyValidUntil,omitzero"`
	KeyRefreshedAt         time.Time `json:"keyRefreshedAt,omitzero"`
	UpdatedAt              time.Time `json:"updatedAt,omitzero"`
	// Version is set by the Store: 1 on the first write, +1 on every write after.
	// 0 means "never stored". Caches use it to never go back to older settings.
	Version int64 `json:"version"`
}

func (s Settings) clone() Settings {
	s.AllowedOrigins = append([]string(nil), s.AllowedOrigins...)
	s.TokenAudiences = append([]string(nil), s.TokenAudiences...)
	return s
}

// Clone returns a deep copy (stores hand out copies).
func (s Settings) Clone() Settings { return s.clone() }

// defaults fills a never-stored Settings.
func (s *Settings) defaults() {
	if s.Version == 0 && s.AuthMode == "" {
		s.AuthMode = ModeNone
		s.RecoveryTimeoutSeconds = DefaultRecoveryTimeoutSeconds
	}
}

// SessionState is open or closed.
type SessionState string

const (
	SessionOpen   SessionState = "open"
	SessionClosed SessionState = "closed"
)

// Session is one customer's conversation through the widget.
type Session struct {
	TenantID    string       `json:"tenantId"`
	ID          string       `json:"id"`         // random GUID
	CustomerID  string       `json:"customerId"` // as the widget sent it; never logged
	State       SessionState `json:"state"`
	CreatedAt   time.Time    `json:"createdAt"`
	ClosedAt    time.Time    `json:"closedAt,omitzero"`
	Recoveries  int          `json:"recoveries,omitempty"`
	ACSIdentity string       `json:"acsIdentity,omitempty"` // ACS communication user id, when ACS is configured
}

// Store keeps Interact settings and sessions (partitioned by tenant). Implementations
// are safe for concurrent use.
type Store interface {
	// GetSettings returns the tenant's settings, fault.ErrNotFound if never stored.
	GetSettings(ctx context.Context, tenantID string) (Settings, error)
	// UpdateSettings reads the settings (zero value with TenantID set and Version 0 if
	// none), applies fn and writes them back conditionally (ETag), retrying fn on a lost
	// race, so no update is lost. It sets Version to the stored one + 1. An error from
	// fn aborts with nothing written.
	UpdateSettings(ctx context.Context, tenantID string, fn func(*Settings) error) (Settings, error)
	// CreateSession inserts a session; fault.ErrConflict if its id exists.
	CreateSession(ctx context.Context, s Session) error
	// GetSession returns a session, fault.ErrNotFound if unknown.
	GetSession(ctx context.Context, tenantID, sessionID string) (Session, error)
	// UpdateSession applies fn to a stored session and writes it back conditionally,
	// retrying on a lost race; fault.ErrNotFound if unknown. An error from fn aborts
	// with nothing written.
	UpdateSession(ctx context.Context, tenantID, sessionID string, fn func(*Session) error) (Session, error)
}

// TokenVerifier checks a bearer token. Implemented by the entra adapter (wrapped).
type TokenVerifier interface {
	// VerifyToken checks the signature against the issuer's published keys, expiry,
	// issuer (v1 or v2 form) and that the audience is one of audiences; with tenantID
	// != "" also that the token's tid is tenantID. Any failure is an error; its text
	// is for logs only.
	VerifyToken(ctx context.Context, token, tenantID string, audiences []string) error
}

// ACSIdentity is an Azure Communication Services user and an access token for it.
// Token is a secret handed to the widget only; it is never stored or logged.
type ACSIdentity struct {
	ID        string    `json:"id"`
	Token     string    `json:"token,omitempty"`
	ExpiresOn time.Time `json:"expiresOn,omitzero"`
}

// Check outcomes of ACS.Check.
const (
	CheckOK            = "ok"
	CheckBadKey        = "badKey"        // the service refused the signature (401/403)
	CheckUnreachable   = "unreachable"   // DNS, connect, TLS or timeout
	CheckFailed        = "failed"        // the service answered something unexpected
	CheckNotConfigured = "notConfigured" // no connection string set
)

// CheckResult is what a Check of the ACS connection string found. Detail never holds
// the key or the full connection string.
type CheckResult struct {
	Status string `json:"status"`
	Detail string `json:"detail,omitempty"`
	TookMs int64  `json:"tookMs"`
}

// ACS mints identities and tokens with a tenant's ACS connection string. Implemented
// by the acs adapter. Errors never quote the connection string; a refused key, an
// unreachable service and an error answer match ErrACSRefused, ErrACSUnreachable and
// ErrACSFailed.
type ACS interface {
	// CreateIdentity creates a communication user with a token for scopes.
	CreateIdentity(ctx context.Context, connectionString string, scopes []string) (ACSIdentity, error)
	// IssueToken issues a new token for an existing user.
	IssueToken(ctx context.Context, connectionString, identityID string, scopes []string) (ACSIdentity, error)
	// Check proves the connection string works: create an identity and delete it.
	Check(ctx context.Context, connectionString string) CheckResult
}

// TokenScopes are the ACS scopes a widget session's token carries.
var TokenScopes = []string{"chat", "voip"}

// ParseACSConnectionString splits "endpoint=https://...;accesskey=BASE64" (keys
// case-insensitive, any order, other keys ignored). The endpoint is returned without
// a trailing slash. Errors never quote the input.
func ParseACSConnectionString(s string) (endpoint, accessKey string, err error) {
	for part := range strings.SplitSeq(s, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "endpoint":
			endpoint = strings.TrimRight(strings.TrimSpace(v), "/")
		case "accesskey":
			accessKey = strings.TrimSpace(v)
		}
	}
	if endpoint == "" || accessKey == "" {
		return "", "", fault.Invalid("acsConnectionString", "must be endpoint=https://...;accesskey=...")
	}
	u, perr := url.Parse(endpoint)
	if perr != nil || u.Host == "" || (u.Scheme != "https" && !isLoopback(u)) || u.RawQuery != "" {
		return "", "", fault.Invalid("acsConnectionString", "endpoint must be an https:// URL")
	}
	return endpoint, accessKey, nil
}

// isLoopback allows plain http to 127.0.0.1/localhost (tests, local fakes).
func isLoopback(u *url.URL) bool {
	h := u.Hostname()
	return u.Scheme == "http" && (h == "127.0.0.1" || h == "localhost" || h == "::1")
}

// Patch is a partial update of the settings; nil fields are left as they are.
type Patch struct {
	Enabled                *bool     `json:"enabled"`
	AuthMode               *AuthMode `json:"authMode"`
	RecoveryTimeoutSeconds *int      `json:"recoveryTimeoutSeconds"`
	AllowedOrigins         *[]string `json:"allowedOrigins"`
	TokenAudiences         *[]string `json:"tokenAudiences"`
	MeetingUserID          *string   `json:"meetingUserId"`
	// ACSConnectionString sets the secret; "" clears it. Never echoed.
	ACSConnectionString *string `json:"acsConnectionString"`
}

// IsGUID reports whether s has the 8-4-4-4-12 hex form (tenant.IsGUID).
func IsGUID(s string) bool { return tenant.IsGUID(s) }

// normalize validates every field of p and returns it normalized (origins and GUIDs
// lower-cased, audiences trimmed). The first broken rule is a *fault.FieldError.
func (p Patch) normalize() (Patch, error) {
	if p.AuthMode != nil {
		switch m := *p.AuthMode; m {
		case ModeNone, ModeVerifyToken, ModeVerifyTokenAndTenant:
		default:
			return p, fault.Invalid("authMode", "must be None, VerifyToken or VerifyTokenAndTenant")
		}
	}
	if p.RecoveryTimeoutSeconds != nil {
		if n := *p.RecoveryTimeoutSeconds; n < MinRecoveryTimeoutSeconds || n > MaxRecoveryTimeoutSeconds {
			return p, fault.Invalid("recoveryTimeoutSeconds", fmt.Sprintf("must be a whole number %d..%d", MinRecoveryTimeoutSeconds, MaxRecoveryTimeoutSeconds))
		}
	}
	if p.AllowedOrigins != nil {
		out, err := normalizeOrigins(*p.AllowedOrigins)
		if err != nil {
			return p, err
		}
		p.AllowedOrigins = &out
	}
	if p.TokenAudiences != nil {
		out, err := normalizeAudiences(*p.TokenAudiences)
		if err != nil {
			return p, err
		}
		p.TokenAudiences = &out
	}
	if p.MeetingUserID != nil {
		v := strings.ToLower(strings.TrimSpace(*p.MeetingUserID))
		if v != "" && !IsGUID(v) {
			return p, fault.Invalid("meetingUserId", "must be a GUID (the user's Entra object id) or empty")
		}
		p.MeetingUserID = &v
	}
	if p.ACSConnectionString != nil && *p.ACSConnectionString != "" {
		if _, _, err := ParseACSConnectionString(*p.ACSConnectionString); err != nil {
			return p, err
		}
	}
	return p, nil
}

// normalizeOrigins accepts exact origins: https://host[:port] (or http:// on
// localhost/127.0.0.1 for development), no path, query or wildcard.
func normalizeOrigins(in []string) ([]string, error) {
	if len(in) > MaxAllowedOrigins {
		return nil, fault.Invalid("allowedOrigins", fmt.Sprintf("at most %d origins", MaxAllowedOrigins))
	}
	out := make([]string, 0, len(in))
	seen := map[string]bool{}
	for _, o := range in {
		u, err := url.Parse(strings.TrimSpace(o))
		const rule = "each must be an exact origin https://host[:port] without path, query or wildcard"
		if err != nil || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" ||
			strings.ContainsAny(u.Host, "*") || (u.Scheme != "https" && !isLoopback(u)) {
			return nil, fault.Invalid("allowedOrigins", rule)
		}
		norm := u.Scheme + "://" + strings.ToLower(u.Host)
		if !seen[norm] {
			seen[norm] = true
			out = append(out, norm)
		}
	}
	return out, nil
}

// normalizeAudiences accepts application ids (GUID) and application id URIs
// (api://..., https://...).
func normalizeAudiences(in []string) ([]string, error) {
	if len(in) > MaxTokenAudiences {
		return nil, fault.Invalid("tokenAudiences", fmt.Sprintf("at most %d audiences", MaxTokenAudiences))
	}
	out := make([]string, 0, len(in))
	for _, a := range in {
		a = strings.TrimSpace(a)
		if a == "" || len(a) > 256 || strings.ContainsAny(a, " \t\r\n,") ||
			!(IsGUID(a) || strings.HasPrefix(a, "api://") || strings.HasPrefix(a, "https://")) {
			return nil, fault.Invalid("tokenAudiences", "each must be an application id (GUID) or an api:// or https:// application id URI")
		}
		if IsGUID(a) {
			a = strings.ToLower(a)
		}
		out = append(out, a)
	}
	return out, nil
}

// Authorization failures. The HTTP edge answers ErrUnauthorized with a bare 401 (no
// hint which part failed), ErrDisabled and ErrOriginNotAllowed with 403, and
// *RateLimitedError with 429 and Retry-After.
var (
	ErrUnauthorized     = errors.New("unauthorized")
	ErrDisabled         = errors.New("interact disabled")
	ErrOriginNotAllowed = errors.New("origin not allowed")
)

// authError is an ErrUnauthorized with the reason, for logs only.
type authError struct{ reason string }

func (e *authError) Error() string        { return "unauthorized: " + e.reason }
func (e *authError) Is(target error) bool { return target == ErrUnauthorized }

// RateLimitedError says there were too many failed attempts: from this client, or
// (Tenant) for this tenant from all clients together. The client may try again after
// RetryAfter.
type RateLimitedError struct {
	RetryAfter time.Duration
	Tenant     bool
}

func (e *RateLimitedError) Error() string {
	scope := "from this client"
	if e.Tenant {
		scope = "for this tenant"
	}
	return fmt.Sprintf("too many failed attempts %s; retry after %s", scope, e.RetryAfter)
}

// Failures of Azure Communication Services, as the ACS port reports them (errors.Is).
// The HTTP edge answers ErrACSRefused and ErrACSFailed with 502 and ErrACSUnreachable
// with 503, to admins and widgets alike; the error text is for logs only.
var (
	// ErrACSRefused: ACS refused the signature (401/403): the tenant's access key is wrong.
	ErrACSRefused = errors.New("ACS refused the access key")
	// ErrACSUnreachable: no answer: DNS, connect, TLS, or a timeout.
	ErrACSUnreachable = errors.New("ACS unreachable")
	// ErrACSFailed: ACS answered something other than success (5xx, 429, a malformed
	// answer), or the stored connection string could not be used.
	ErrACSFailed = errors.New("ACS answered with an error")
)

// acsError is an ACS failure of a widget session: it matches its kind (one of the
// ErrACS… errors) and nothing else, so no detail of the cause (a field error naming
// the connection string, say) can reach the widget; Error() keeps the cause for logs.
type acsError struct {
	kind error
	err  error
}

func (e *acsError) Error() string        { return e.err.Error() }
func (e *acsError) Is(target error) bool { return target == e.kind }

// asACSError classifies err from the ACS port (which names the operation) as an
// *acsError; anything not recognised counts as ErrACSFailed.
func asACSError(err error) error {
	kind := ErrACSFailed
	for _, k := range []error{ErrACSRefused, ErrACSUnreachable} {
		if errors.Is(err, k) {
			kind = k
		}
	}
	return &acsError{kind: kind, err: err}
}
