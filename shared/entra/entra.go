// Package entra validates Microsoft Entra ID access tokens (JWTs) against the keys
// Entra publishes, for the Interact widget and (later) the admin API.
//
// What Verify checks (PLATFORM.md "Validating Entra tokens"):
//   - alg RS256 only: "none", HS256 (the "public key as HMAC secret" attack) and any
//     other algorithm are refused before a key is looked up;
//   - the signature, with the key named by the header's kid from the JWKS document;
//   - exp (required) and nbf with Options.Skew leeway;
//   - the audience is one of the wanted audiences;
//   - the issuer is the v1 form {V1IssuerHost}{tid}/ or the v2 form
//     {AuthorityHost}{tid}/v2.0, with tid the token's own tid claim (a GUID);
//   - with Want.Tenant set, tid equals it.
//
// Keys: the JWKS is fetched on first use, refreshed in the background once it is older
// than Options.RefreshEvery (1 h), and fetched again on a kid it does not know, at
// most once per Options.UnknownKidEvery (5 min), so a stream of made-up kids cannot
// make us hammer Entra. Concurrent callers share one fetch. A failed refresh keeps the
// keys it has. A Validator is safe for concurrent use.
package entra

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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

// Validator verifies tokens. Create it with NewValidator.
type Validator struct {
	o      Options
	parser *jwt.Parser

	keys atomic.Pointer[keySet]

	mu       sync.Mutex
	attempt  time.Time // start of the last fetch
	inflight *fetch

	fetches atomic.Int64
}

type keySet struct {
	m         map[string]*rsa.PublicKey
	fetchedAt time.Time
}

type fetch struct {
	done chan struct{}
	err  error
}

// NewValidator returns a Validator; it fails on malformed URLs.
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
		if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://127.0.0.1") && !strings.HasPrefix(u, "http://localhost") {
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
	v.parser = jwt.NewParser(jwt.WithValidMethods([]string{"RS256"}), jwt.WithLeeway(o.Skew),
		jwt.WithExpirationRequired(), jwt.WithTimeFunc(func() time.Time { return v.o.Now() }))
	return v, nil
}

// Fetches reports how many times the JWKS was requested (tests, metrics).
func (v *Validator) Fetches() int64 { return v.fetches.Load() }

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
	_, err := v.parser.ParseWithClaims(token, &tc, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, errors.New("no kid")
		}
		return v.key(ctx, kid)
	})
	if err != nil {
		return Claims{}, invalid("%v", err)
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

// key returns the public key for kid, fetching the JWKS when allowed.
func (v *Validator) key(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	now := v.o.Now()
	ks := v.keys.Load()
	if ks != nil {
		if k, ok := ks.m[kid]; ok {
			if now.Sub(ks.fetchedAt) >= v.o.RefreshEvery {
				v.start(now, v.o.RefreshEvery) // in the background; this request uses the key it has
			}
			return k, nil
		}
	}
	// Unknown kid (or no keys yet): fetch, at most once per UnknownKidEvery (a short
	// back-off while we have no keys at all), sharing a fetch under way.
	every := v.o.UnknownKidEvery
	if ks == nil {
		every = 5 * time.Second
	}
	f := v.start(now, every)
	if f == nil {
		return nil, fmt.Errorf("unknown kid (keys fetched less than %s ago)", every)
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if f.err != nil {
		return nil, f.err
	}
	if ks = v.keys.Load(); ks != nil {
		if k, ok := ks.m[kid]; ok {
			return k, nil
		}
	}
	return nil, errors.New("unknown kid")
}

// start returns the fetch under way, or starts one if the last began at least every
// ago; nil if neither.
func (v *Validator) start(now time.Time, every time.Duration) *fetch {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.inflight != nil {
		return v.inflight
	}
	if !v.attempt.IsZero() && now.Sub(v.attempt) < every {
		return nil
	}
	v.attempt = now
	f := &fetch{done: make(chan struct{})}
	v.inflight = f
	go func() {
		// Its own context: the caller that started it may go away, the others wait.
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		f.err = v.fetch(ctx)
		v.mu.Lock()
		v.inflight = nil
		v.mu.Unlock()
		close(f.done)
	}()
	return f
}

type jwks struct {
	Keys []struct {
		Kty string `json:"kty"`
		Use string `json:"use"`
		Kid string `json:"kid"`
		N   string `json:"n"`
		E   string `json:"e"`
	} `json:"keys"`
}

// fetch reads the JWKS and replaces the key set; on failure the old set stays.
func (v *Validator) fetch(ctx context.Context) error {
	v.fetches.Add(1)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.o.JWKSURL, nil)
	if err != nil {
		return fmt.Errorf("fetch signing keys: %w", err)
	}
	res, err := v.o.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("fetch signing keys: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch signing keys: HTTP %d", res.StatusCode)
	}
	var doc jwks
	if err := json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&doc); err != nil {
		return fmt.Errorf("fetch signing keys: %w", err)
	}
	m := map[string]*rsa.PublicKey{}
	for _, k := range doc.Keys {
		if k.Kty != "RSA" || (k.Use != "" && k.Use != "sig") || k.Kid == "" {
			continue
		}
		n, err1 := base64.RawURLEncoding.DecodeString(strings.TrimRight(k.N, "="))
		e, err2 := base64.RawURLEncoding.DecodeString(strings.TrimRight(k.E, "="))
		if err1 != nil || err2 != nil || len(e) == 0 || len(e) > 4 {
			continue
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if pub.N.BitLen() < 2048 {
			continue
		}
		m[k.Kid] = pub
	}
	if len(m) == 0 {
		return errors.New("fetch signing keys: no usable RSA key")
	}
	v.keys.Store(&keySet{m: m, fetchedAt: v.o.Now()})
	return nil
}
