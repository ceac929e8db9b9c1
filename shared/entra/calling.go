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

// DefaultCallingMetadataURL is the OpenID configuration of Microsoft's calling
// platform, whose jwks_uri holds the keys that sign call notifications.
const DefaultCallingMetadataURL = "https://api.aps.skype.com/v1/.well-known/OpenIdConfiguration"

// CallingOptions configures a CallingValidator. Zero values take the defaults;
// Audience is required.
type CallingOptions struct {
	// MetadataURL is the OpenID configuration document (default
	// DefaultCallingMetadataURL). It must be https (http only to a loopback host).
	MetadataURL string
	// Audience is the bot's Microsoft App ID; aud must contain it. Required.
	Audience string
	// Issuers are the accepted iss values, compared exactly (default
	// https://graph.microsoft.com and https://api.botframework.com).
	Issuers []string
	// Skew is the clock leeway for exp, nbf and iat (default 2 min).
	Skew time.Duration
	// RefreshEvery is the age after which metadata and keys are refreshed in the
	// background (default 24 h).
	RefreshEvery time.Duration
	// UnknownKidEvery is the least time between fetches of metadata and keys caused
	// by unknown kids (default 1 min).
	UnknownKidEvery time.Duration
	HTTPClient      *http.Client     // default: 10 s timeout
	Now             func() time.Time // default time.Now
}

// CallingClaims is what a verified calling-platform token says.
type CallingClaims struct {
	TenantID  string    // tid, a lower-case GUID
	Issuer    string    // iss, one of CallingOptions.Issuers
	Audience  []string  // aud, containing CallingOptions.Audience
	ExpiresAt time.Time // exp
}

// CallingValidator verifies the bearer tokens Microsoft's calling platform sends
// with every notification to the calling bot's webhook, as Microsoft's calling
// samples do (PLATFORM.md "Teams calls through Graph"). Verify checks:
//   - alg RS256 only: "none", HS256 (the "public key as HMAC secret" attack) and any
//     other algorithm are refused before a key is looked up;
//   - a kid in the header, and the signature with the key of that kid, taken from
//     the jwks_uri of the OpenID metadata document;
//   - exp (required), nbf and iat with CallingOptions.Skew leeway;
//   - iss is exactly one of CallingOptions.Issuers;
//   - aud contains CallingOptions.Audience (the bot's app id);
//   - tid is present and a GUID.
//
// Keys: the metadata document is read first, then the JWKS at its jwks_uri (which
// must be https, or http to a loopback host); both are read on first use, again in
// the background once older than RefreshEvery, and on an unknown kid at most once per
// UnknownKidEvery. Concurrent callers share one fetch; a failed refresh keeps the
// keys it had. A CallingValidator is safe for concurrent use. Create it with
// NewCallingValidator.
type CallingValidator struct {
	o      CallingOptions
	parser *jwt.Parser
	keys   *keyCache
}

// NewCallingValidator returns a CallingValidator. It fails when Audience is empty,
// an issuer is empty, or MetadataURL is not https (plain http is allowed only to
// 127.0.0.1, ::1 or localhost, for local runs and tests). It fetches nothing.
func NewCallingValidator(o CallingOptions) (*CallingValidator, error) {
	if strings.TrimSpace(o.Audience) == "" {
		return nil, errors.New("entra: calling validator needs the bot's app id as Audience")
	}
	if o.MetadataURL == "" {
		o.MetadataURL = DefaultCallingMetadataURL
	}
	if !keyURLAllowed(o.MetadataURL) {
		return nil, fmt.Errorf("entra: %q must be an https:// URL", o.MetadataURL)
	}
	if len(o.Issuers) == 0 {
		o.Issuers = []string{"https://graph.microsoft.com", "https://api.botframework.com"}
	} else {
		o.Issuers = slices.Clone(o.Issuers) // the caller's slice may change later
	}
	if slices.Contains(o.Issuers, "") {
		return nil, errors.New("entra: an empty issuer would accept tokens without iss")
	}
	if o.Skew <= 0 {
		o.Skew = 2 * time.Minute
	}
	if o.RefreshEvery <= 0 {
		o.RefreshEvery = 24 * time.Hour
	}
	if o.UnknownKidEvery <= 0 {
		o.UnknownKidEvery = time.Minute
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	v := &CallingValidator{o: o}
	v.parser = jwt.NewParser(jwt.WithValidMethods([]string{"RS256"}), jwt.WithLeeway(o.Skew),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithTimeFunc(o.Now))
	v.keys = &keyCache{load: v.load, now: o.Now, refreshEvery: o.RefreshEvery, unknownKidEvery: o.UnknownKidEvery}
	return v, nil
}

// Fetches reports how many rounds of metadata-then-JWKS fetching were started,
// successful or not (tests, metrics). Safe for concurrent use.
func (v *CallingValidator) Fetches() int64 { return v.keys.rounds.Load() }

type callingTokenClaims struct {
	jwt.RegisteredClaims
	TID string `json:"tid"`
}

// Verify checks token (without "Bearer ") as the CallingValidator doc says and
// returns its claims. A refused token is an error wrapping ErrInvalid whose text
// says why without quoting the token. When the keys cannot be fetched while needed
// (metadata or JWKS down, ctx done) the token is refused too; the error then also
// wraps the cause (e.g. context.DeadlineExceeded).
func (v *CallingValidator) Verify(ctx context.Context, token string) (CallingClaims, error) {
	if token == "" {
		return CallingClaims{}, invalid("no token")
	}
	var tc callingTokenClaims
	if err := parse(ctx, v.parser, v.keys, token, &tc); err != nil {
		return CallingClaims{}, err
	}
	if !slices.Contains(v.o.Issuers, tc.Issuer) {
		return CallingClaims{}, invalid("issuer not accepted")
	}
	if !slices.Contains(tc.Audience, v.o.Audience) {
		return CallingClaims{}, invalid("audience is not the bot's app id")
	}
	if tc.TID == "" {
		return CallingClaims{}, invalid("no tid")
	}
	if !tenant.IsGUID(tc.TID) {
		return CallingClaims{}, invalid("tid is not a GUID")
	}
	c := CallingClaims{TenantID: strings.ToLower(tc.TID), Issuer: tc.Issuer, Audience: tc.Audience}
	if tc.ExpiresAt != nil {
		c.ExpiresAt = tc.ExpiresAt.Time
	}
	return c, nil
}

// VerifyHeader verifies the raw value of an Authorization header, which must be
// "Bearer <token>" (scheme case-insensitive); anything else, an empty value
// included, is refused with ErrInvalid. Otherwise it is Verify.
func (v *CallingValidator) VerifyHeader(ctx context.Context, authorization string) (CallingClaims, error) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(authorization), " ")
	if scheme == "" {
		return CallingClaims{}, invalid("no authorization")
	}
	// Never echo the scheme: "Basic <credentials>" would put a secret in the logs.
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return CallingClaims{}, invalid("authorization is not a bearer token")
	}
	return v.Verify(ctx, strings.TrimLeft(token, " "))
}

// parse checks token into claims: signed (RS256) by the key its kid names, within its
// times. A refusal wraps ErrInvalid and says why in our own words (refusal).
func parse(ctx context.Context, p *jwt.Parser, keys *keyCache, token string, claims jwt.Claims) error {
	keyLooked := false
	var keyErr error
	_, err := p.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		keyLooked = true
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			keyErr = errors.New("no kid")
			return nil, keyErr
		}
		k, err := keys.key(ctx, kid)
		if err != nil {
			keyErr = err
			return nil, err
		}
		return k, nil
	})
	if err != nil {
		return refusal(err, keyLooked, keyErr)
	}
	return nil
}

// refusal turns a parse error into an ErrInvalid refusal. jwt's own texts may quote
// header values (the alg), so the reasons are our own words.
func refusal(err error, keyLooked bool, keyErr error) error {
	switch {
	case keyErr != nil:
		return fmt.Errorf("%w: signing key: %w", ErrInvalid, keyErr)
	case errors.Is(err, jwt.ErrTokenMalformed):
		return invalid("malformed token")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid) && !keyLooked:
		return invalid("algorithm not accepted (RS256 only)")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return invalid("bad signature")
	case errors.Is(err, jwt.ErrTokenExpired):
		return invalid("expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return invalid("not valid yet (nbf)")
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return invalid("issued in the future (iat)")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return invalid("no exp")
	default:
		return invalid("claims not usable")
	}
}

type openIDConfiguration struct {
	JWKSURI string `json:"jwks_uri"`
}

// load reads the metadata document, then the JWKS its jwks_uri names.
func (v *CallingValidator) load(ctx context.Context) (map[string]*rsa.PublicKey, error) {
	var md openIDConfiguration
	if err := getJSON(ctx, v.o.HTTPClient, v.o.MetadataURL, "calling OpenID metadata", &md); err != nil {
		return nil, err
	}
	if md.JWKSURI == "" {
		return nil, errors.New("calling OpenID metadata: no jwks_uri")
	}
	if !keyURLAllowed(md.JWKSURI) {
		return nil, errors.New("calling OpenID metadata: jwks_uri is not an https URL")
	}
	return fetchJWKS(ctx, v.o.HTTPClient, md.JWKSURI)
}
