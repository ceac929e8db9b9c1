package entra_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/teamscc/teamscc/shared/entra"
)

const (
	tenantA  = "0d1f6b1e-7c3a-4c59-9a5e-1f2a3b4c5d6e"
	tenantB  = "9e8d7c6b-5a49-4837-8261-7f6e5d4c3b2a"
	audience = "api://teamscc-widget"
)

var (
	keyOnce  sync.Once
	testKeys [3]*rsa.PrivateKey
)

func keys(t testing.TB) [3]*rsa.PrivateKey {
	keyOnce.Do(func() {
		for i := range testKeys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			testKeys[i] = k
		}
	})
	return testKeys
}

// fakeEntra serves a JWKS document with the published keys and counts requests.
type fakeEntra struct {
	srv   *httptest.Server
	mu    sync.Mutex
	keys  map[string]*rsa.PublicKey
	hits  atomic.Int64
	delay time.Duration
}

func newFakeEntra(t testing.TB, published map[string]*rsa.PublicKey) *fakeEntra {
	f := &fakeEntra{keys: published}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		time.Sleep(f.delay)
		if r.URL.Path != "/common/discovery/v2.0/keys" {
			http.NotFound(w, r)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		var doc struct {
			Keys []map[string]any `json:"keys"`
		}
		for kid, k := range f.keys {
			doc.Keys = append(doc.Keys, map[string]any{"kty": "RSA", "use": "sig", "kid": kid,
				"n":   base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
				"e":   base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes()),
				"x5c": []string{"ignored"}})
		}
		// A key type we do not use must be skipped, not fail the document.
		doc.Keys = append(doc.Keys, map[string]any{"kty": "EC", "kid": "ec1", "crv": "P-256"})
		_ = json.NewEncoder(w).Encode(doc)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeEntra) publish(m map[string]*rsa.PublicKey) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys = m
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	entra *fakeEntra
	clock *clock
	v     *entra.Validator
	keys  [3]*rsa.PrivateKey
}

func setup(t testing.TB) *fixture {
	t.Helper()
	ks := keys(t)
	f := &fixture{keys: ks, clock: &clock{t: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}}
	f.entra = newFakeEntra(t, map[string]*rsa.PublicKey{"kid1": &ks[0].PublicKey, "kid2": &ks[1].PublicKey})
	v, err := entra.NewValidator(entra.Options{AuthorityHost: f.entra.srv.URL, Audiences: []string{audience}, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	f.v = v
	return f
}

// claims are a good v2 token's claims for tenant at the fixture's time.
func (f *fixture) claims(tenant string) jwt.MapClaims {
	now := f.clock.Now()
	return jwt.MapClaims{"iss": f.entra.srv.URL + "/" + tenant + "/v2.0", "aud": audience, "tid": tenant,
		"oid": "5d4c3b2a-1111-4222-8333-944455556666", "sub": "s", "ver": "2.0",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix()}
}

func sign(t testing.TB, m jwt.SigningMethod, kid string, key any, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestEveryBadTokenKindIsRefused(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	good := f.claims(tenantA)
	with := func(k string, v any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for a, b := range good {
			c[a] = b
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(&f.keys[0].PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	now := f.clock.Now()
	none := sign(t, jwt.SigningMethodNone, "kid1", jwt.UnsafeAllowNoneSignatureType, good)
	goodToken := sign(t, jwt.SigningMethodRS256, "kid1", f.keys[0], good)
	parts := strings.Split(goodToken, ".")
	bad := map[string]string{
		"alg none":                  none,
		"alg none, no signature":    strings.TrimSuffix(none, "."),
		"HS256 with the public PEM": sign(t, jwt.SigningMethodHS256, "kid1", pubPEM, good),
		"HS256 with the public DER": sign(t, jwt.SigningMethodHS256, "kid1", pubDER, good),
		"RS512 (not RS256)":         sign(t, jwt.SigningMethodRS512, "kid1", f.keys[0], good),
		"PS256 (not RS256)":         sign(t, jwt.SigningMethodPS256, "kid1", f.keys[0], good),
		"expired beyond skew":       sign(t, jwt.SigningMethodRS256, "kid1", f.keys[0], with("exp", now.Add(-3*time.Minute).Unix())),
		"not yet valid beyond skew": sign(t, jwt.SigningMethodRS256, "kid1", f.keys[0], with("nbf", now.Add(3*time.Minute).Unix())),
		"no exp":                    sign(t, jwt.SigningMethodRS256, "kid1", f.keys[0], with("exp", nil)),
		"wrong audience":            sign(t, jwt.SigningMethodRS256, "kid1", f.keys[0], with("aud", "api://other")),
		"no audience":               sign(t, jwt.SigningMethodRS256, "kid1", f.keys[0], with("aud", nil)),
		"foreign issuer":            sign(t, jwt.SigningMethodRS256, "kid1", f.keys[0], with("iss", "https://evil.example/"+tenantA+"/v2.0")),
		"issuer of another tenant":  sign(t, jwt.SigningMethodRS256, "kid1", f.keys[0], with("iss", "https://sts.windows.net/"+tenantB+"/")),
		"tid not a GUID":            sign(t, jwt.SigningMethodRS256, "kid1", f.keys[0], with("tid", "contoso")),
		"unknown kid":               sign(t, jwt.SigningMethodRS256, "kid9", f.keys[0], good),
		"no kid":                    sign(t, jwt.SigningMethodRS256, "", f.keys[0], good),
		"signed by another key":     sign(t, jwt.SigningMethodRS256, "kid1", f.keys[1], good),
		"signed by an unpublished":  sign(t, jwt.SigningMethodRS256, "kid2", f.keys[2], good),
		"tampered payload":          parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"tid":"`+tenantB+`"}`)) + "." + parts[2],
		"garbage":                   "not.a.token",
		"empty":                     "",
		"two parts":                 parts[0] + "." + parts[1],
	}
	for name, tok := range bad {
		for _, want := range []string{"", tenantA} {
			if _, err := f.v.Verify(ctx, tok, entra.Want{Tenant: want}); !errors.Is(err, entra.ErrInvalid) {
				t.Errorf("%s (tenant %q): %v; want ErrInvalid", name, want, err)
			} else if strings.Contains(err.Error(), parts[2]) {
				t.Errorf("%s: the error quotes the token", name)
			}
		}
	}
	// Within the skew, and both issuer forms.
	for name, c := range map[string]jwt.MapClaims{
		"v2":                  good,
		"v1":                  with("iss", "https://sts.windows.net/"+tenantA+"/"),
		"expired within skew": with("exp", now.Add(-time.Minute).Unix()),
		"nbf within skew":     with("nbf", now.Add(time.Minute).Unix()),
		"audience in a list":  with("aud", []string{"api://other", audience}),
	} {
		if _, err := f.v.Verify(ctx, sign(t, jwt.SigningMethodRS256, "kid1", f.keys[0], c), entra.Want{Tenant: tenantA}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestTenantCheckAndClaims(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	c := f.claims(tenantB)
	c["roles"] = []string{"Platform.Operator"}
	c["_claim_names"] = map[string]string{"groups": "src1"}
	tok := sign(t, jwt.SigningMethodRS256, "kid2", f.keys[1], c)
	got, err := f.v.Verify(ctx, tok, entra.Want{}) // VerifyToken: any tenant
	if err != nil {
		t.Fatalf("good token of another tenant, any tenant wanted: %v", err)
	}
	if got.TenantID != tenantB || got.ObjectID == "" || got.Roles[0] != "Platform.Operator" || !got.GroupsOverage || got.Version != "2.0" || got.Audience[0] != audience {
		t.Fatalf("claims = %+v", got)
	}
	if _, err := f.v.Verify(ctx, tok, entra.Want{Tenant: tenantA}); !errors.Is(err, entra.ErrInvalid) {
		t.Fatalf("good token of another tenant, tenant A wanted: %v", err)
	}
	if _, err := f.v.Verify(ctx, tok, entra.Want{Tenant: strings.ToUpper(tenantB)}); err != nil {
		t.Fatalf("tenant compared case-insensitively: %v", err)
	}
	if _, err := f.v.Verify(ctx, tok, entra.Want{Audiences: []string{"api://admin"}}); !errors.Is(err, entra.ErrInvalid) {
		t.Fatalf("audience given per call replaces the default: %v", err)
	}
}

func TestJWKSIsFetchedOnceAndAgainAfterRotation(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	tok := sign(t, jwt.SigningMethodRS256, "kid1", f.keys[0], f.claims(tenantA))
	for i := 0; i < 10_000; i++ {
		if _, err := f.v.Verify(ctx, tok, entra.Want{Tenant: tenantA}); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.entra.hits.Load(); n != 1 {
		t.Fatalf("10,000 validations fetched the JWKS %d times; want 1", n)
	}
	// Rotation: Entra publishes kid3 and drops kid1.
	f.entra.publish(map[string]*rsa.PublicKey{"kid2": &f.keys[1].PublicKey, "kid3": &f.keys[2].PublicKey})
	rotated := sign(t, jwt.SigningMethodRS256, "kid3", f.keys[2], f.claims(tenantA))
	if _, err := f.v.Verify(ctx, rotated, entra.Want{}); !errors.Is(err, entra.ErrInvalid) || f.entra.hits.Load() != 1 {
		t.Fatalf("unknown kid within 5 min of the last fetch: %v, %d fetches; want refused without a fetch", err, f.entra.hits.Load())
	}
	f.clock.Add(5 * time.Minute)
	if _, err := f.v.Verify(ctx, rotated, entra.Want{}); err != nil {
		t.Fatalf("rotated key after 5 min: %v", err)
	}
	if n := f.entra.hits.Load(); n != 2 {
		t.Fatalf("fetches after rotation = %d; want 2", n)
	}
	for i := 0; i < 100; i++ { // made-up kids cannot make us fetch again
		_, _ = f.v.Verify(ctx, sign(t, jwt.SigningMethodRS256, "made-up", f.keys[0], f.claims(tenantA)), entra.Want{})
	}
	if _, err := f.v.Verify(ctx, tok, entra.Want{}); !errors.Is(err, entra.ErrInvalid) {
		t.Fatal("a key Entra dropped must be refused after the refetch")
	}
	if n := f.entra.hits.Load(); n != 2 {
		t.Fatalf("made-up kids caused %d fetches", n-2)
	}
	// Hourly refresh, in the background: the request is answered with the keys we have.
	f.clock.Add(time.Hour)
	rotated = sign(t, jwt.SigningMethodRS256, "kid3", f.keys[2], f.claims(tenantA))
	if _, err := f.v.Verify(ctx, rotated, entra.Want{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.entra.hits.Load() != 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := f.entra.hits.Load(); n != 3 {
		t.Fatalf("fetches after an hour = %d; want 3", n)
	}
}

func TestConcurrentCallersShareOneFetch(t *testing.T) {
	f := setup(t)
	f.entra.delay = 50 * time.Millisecond
	tok := sign(t, jwt.SigningMethodRS256, "kid1", f.keys[0], f.claims(tenantA))
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.v.Verify(context.Background(), tok, entra.Want{}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := f.entra.hits.Load(); n != 1 {
		t.Fatalf("50 concurrent cold validations fetched %d times; want 1", n)
	}
}

func TestUnreachableJWKSRefusesAndBacksOff(t *testing.T) {
	c := &clock{t: time.Now()}
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	v, _ := entra.NewValidator(entra.Options{AuthorityHost: srv.URL, Audiences: []string{audience}, Now: c.Now})
	k := keys(t)
	f := &fixture{clock: c, entra: &fakeEntra{srv: srv}}
	tok := sign(t, jwt.SigningMethodRS256, "kid1", k[0], f.claims(tenantA))
	for i := 0; i < 10; i++ {
		if _, err := v.Verify(context.Background(), tok, entra.Want{}); !errors.Is(err, entra.ErrInvalid) {
			t.Fatalf("with the JWKS down: %v", err)
		}
	}
	if hits.Load() != 1 {
		t.Fatalf("a down JWKS endpoint was asked %d times in a burst; want 1", hits.Load())
	}
	if _, err := entra.NewValidator(entra.Options{AuthorityHost: "http://evil.example/"}); err == nil {
		t.Fatal("a plain-http authority must be refused")
	}
}

func BenchmarkVerify(b *testing.B) {
	f := setup(b)
	tok := sign(b, jwt.SigningMethodRS256, "kid1", f.keys[0], f.claims(tenantA))
	ctx := context.Background()
	if _, err := f.v.Verify(ctx, tok, entra.Want{Tenant: tenantA}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := f.v.Verify(ctx, tok, entra.Want{Tenant: tenantA}); err != nil {
			b.Fatal(err)
		}
	}
}
