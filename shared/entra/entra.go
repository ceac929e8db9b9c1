// Package entra validates the bearer tokens (JWTs) that reach the app, against the
// keys their issuer publishes. It has two validators, sharing one key cache:
//
//   - Validator: Microsoft Entra ID access tokens, for the Interact widget and (later)
//     the admin API (PLATFORM.md "Validating Entra tokens");
//   - CallingValidator: the tokens Microsoft's calling platform sends with every call
//     notification to the calling bot's webhook (PLATFORM.md "Teams calls through
//     Graph"); its doc lists what it checks.
//
// What Validator.Verify checks:
//   - alg RS256 only: "none", HS256 (the "public key as HMAC secret" attack) and any
//     other algorithm are refused before a key is looked up;
//   - the signature, with the key named by the header's kid from the JWKS document;
//   - exp (required) and nbf with Options.Skew leeway;
//   - the audience is one of the wanted audiences;
//   - the issuer is the v1 form {V1IssuerHost}{tid}/ or the v2 form
//     {AuthorityHost}{tid}/v2.0, with tid the token's own tid claim (a GUID);
//   - with Want.Tenant set, tid equals it.
//
// Keys, for both: RSA keys of at least 2048 bits are fetched on first use, refreshed
// in the background once older than RefreshEvery (Validator 1 h, CallingValidator
// 24 h), and fetched again on a kid they do not know, at most once per
// UnknownKidEvery (Validator 5 min, CallingValidator 1 min), so a stream of made-up
// kids cannot make us hammer the key server. Concurrent callers share one fetch. A
// failed refresh keeps the keys it has. Key and metadata URLs must be https (plain
// http only to a loopback host). Both validators are safe for concurrent use; every
// refusal wraps ErrInvalid and never quotes the token.
package entra

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/teamscc/teamscc/shared/tenant"
)

// ErrInvalid is wrapped by every refusal of a token; the rest of the text says why,
// for logs (it never quotes the token).
var ErrInvalid = errors.New("invalid token")

// Options configures a Validator. Zero values take the defaults.
type Options struct {
	// AuthorityHost is the Entra authority, ending in "/" (default
	// https://login.microsoftonline.com/). v2 issuers are {AuthorityHost}{tid}/v2.0.
	AuthorityHost string
	// V1IssuerHost is the v1 issuer prefix (default https://sts.windows.net/).
	V1IssuerHost string
	// JWKSURL is where the keys are (default {AuthorityHost}common/discovery/v2.0/keys).
	JWKSURL string
	// Audiences are accepted when Verify's Want names none.
	Audiences []string
	// Skew is the clock leeway for exp and nbf (default 2 min).
	Skew time.Duration
	// RefreshEvery is the age after which keys are refreshed (default 1 h).
	RefreshEvery time.Duration
	// UnknownKidEvery is the least time between fetches caused by unknown kids
	// (default 5 min).
	UnknownKidEvery time.Duration
	HTTPClient      *http.Client     // default: 10 s timeout
	Now             func() time.Time // default time.Now
}

// Want is what a token must additionally be.
type Want struct {
	Tenant    string   // tid must equal it (case-insensitive); "" = any tenant
	Audiences []string // aud must be one of these; nil = Options.Audiences
}

// Claims is what a verified token says.
type Claims struct {
	TenantID  string    // tid
	ObjectID  string    // oid
	Subject   string    // sub
	Issuer    string    // iss
	Audience  []string  // aud
	Version   string    // ver: "1.0" or "2.0"
	Roles     []string  // app roles
	Groups    []string  // group object ids (absent on overage)
	ExpiresAt time.Time // exp
	// GroupsOverage is set when the token carries _claim_names.groups instead of the
	// groups (too many groups): the caller must read them from Graph.
	GroupsOverage bool
}

// Validator verifies Entra tokens as the package doc says. Create it with
// NewValidator. It is safe for concurrent use.
type Validator struct {
	o      Options
	parser *jwt.Parser
	keys   *keyCache
}

// NewValidator returns a Validator; it fails on a URL that is not https (plain http
// is allowed only to 127.0.0.1, ::1 or localhost, for local runs and tests).
func NewValidator(o Options) (*Validator, error) {
	if o.AuthorityHost == "" {
		o.AuthorityHost = "https://login.microsoftonline.com/"
	}
	if !strings.HasSuffix(o.AuthorityHost, "/") {
		o.AuthorityHost += "/"
	}
	if o.V1IssuerHost == "" {
		o.V1IssuerHost = "https://sts.windows.net/"
	}
	if o.JWKSURL == "" {
		o.JWKSURL = o.AuthorityHost + "common/discovery/v2.0/keys"
	}
	for _, u := range []string{o.AuthorityHost, o.V1IssuerHost, o.JWKSURL} {
		if !keyURLAllowed(u) {
			return nil, fmt.Errorf("entra: %q must be an https:// URL", u)
		}
	}
	if o.Skew <= 0 {
		o.Skew = 2 * time.Minute
	}
	if o.RefreshEvery <= 0 {
		o.RefreshEvery = time.Hour
	}
	if o.UnknownKidEvery <= 0 {
		o.UnknownKidEvery = 5 * time.Minute
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	v := &Validator{o: o}
	v.keys = &keyCache{
		load: func(ctx context.Context) (map[string]*rsa.PublicKey, error) {
			return fetchJWKS(ctx, v.o.HTTPClient, v.o.JWKSURL)
		},
		now: o.Now, refreshEvery: o.RefreshEvery, unknownKidEvery: o.UnknownKidEvery,
	}
	v.parser = jwt.NewParser(jwt.WithValidMethods([]string{"RS256"}), jwt.WithLeeway(o.Skew),
		jwt.WithExpirationRequired(), jwt.WithTimeFunc(func() time.Time { return v.o.Now() }))
	return v, nil
}

// Fetches reports how many times the JWKS was requested (tests, metrics).
func (v *Validator) Fetches() int64 { return v.keys.rounds.Load() }

type tokenClaims struct {
	jwt.RegisteredClaims
	TID        string            `json:"tid"`
	OID        string            `json:"oid"`
	Ver        string            `json:"ver"`
	Roles      []string          `json:"roles"`
	Groups     []string          `json:"groups"`
	ClaimNames map[string]string `json:"_claim_names"`
}

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, a...)...)
}

// Verify checks token (without "Bearer ") as the package doc says and returns its
// claims. A refused token is an error wrapping ErrInvalid; a JWKS that cannot be
// fetched when needed also refuses (wrapping ErrInvalid and the cause).
func (v *Validator) Verify(ctx context.Context, token string, want Want) (Claims, error) {
	var tc tokenClaims
	if err := parse(ctx, v.parser, v.keys, token, &tc); err != nil {
		return Claims{}, err
	}
	if !tenant.IsGUID(tc.TID) {
		return Claims{}, invalid("tid is not a GUID")
	}
	tid := strings.ToLower(tc.TID)
	iss := tc.Issuer
	if iss != v.o.V1IssuerHost+tid+"/" && iss != v.o.AuthorityHost+tid+"/v2.0" &&
		!strings.EqualFold(iss, v.o.V1IssuerHost+tid+"/") && !strings.EqualFold(iss, v.o.AuthorityHost+tid+"/v2.0") {
		return Claims{}, invalid("issuer is not Entra's for the token's tenant")
	}
	auds := want.Audiences
	if auds == nil {
		auds = v.o.Audiences
	}
	if len(auds) == 0 || !slices.ContainsFunc(tc.Audience, func(a string) bool { return slices.Contains(auds, a) }) {
		return Claims{}, invalid("audience not accepted")
	}
	if want.Tenant != "" && !strings.EqualFold(tid, want.Tenant) {
		return Claims{}, invalid("token of another tenant")
	}
	c := Claims{TenantID: tid, ObjectID: tc.OID, Subject: tc.Subject, Issuer: iss, Audience: tc.Audience,
		Version: tc.Ver, Roles: tc.Roles, Groups: tc.Groups}
	if tc.ExpiresAt != nil {
		c.ExpiresAt = tc.ExpiresAt.Time
	}
	_, c.GroupsOverage = tc.ClaimNames["groups"]
	return c, nil
}
