package entra_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
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

// From Microsoft's docs on incoming call notifications.
const (
	botAppID     = "0efc74f7-41c3-47a4-8775-7259bfef4241"
	callerTenant = "1fdd12d0-4620-44ed-baec-459b611f84b2"
	metadataPath = "/v1/.well-known/OpenIdConfiguration"
)

// fakeCallingPlatform serves the calling platform's OpenID metadata and the JWKS
// documents it may name, and counts the requests of each.
type fakeCallingPlatform struct {
	srv *httptest.Server

	mu      sync.Mutex
	jwksURI string                               // what the metadata names, set by rotate or setJWKSURI
	uriSet  bool                                 // jwksURI is set; else srv.URL+"/keys"
	jwks    map[string]map[string]*rsa.PublicKey // path → kid → key
	delay   time.Duration

	down      atomic.Bool // every request answers 503
	metaHits  atomic.Int64
	keysHits  atomic.Int64
	otherHits atomic.Int64
}

func newFakeCallingPlatform(t testing.TB, published map[string]*rsa.PublicKey) *fakeCallingPlatform {
	f := &fakeCallingPlatform{jwks: map[string]map[string]*rsa.PublicKey{"/keys": published}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeCallingPlatform) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	delay := f.delay
	f.mu.Unlock()
	time.Sleep(delay)
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.URL.Path == metadataPath {
		f.metaHits.Add(1)
		if f.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		uri := f.srv.URL + "/keys"
		if f.uriSet {
			uri = f.jwksURI
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": "https://api.botframework.com", "jwks_uri": uri,
			"authorization_endpoint":                "https://platform.example/authorize",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
		return
	}
	keys, ok := f.jwks[r.URL.Path]
	if !ok {
		f.otherHits.Add(1)
		http.NotFound(w, r)
		return
	}
	f.keysHits.Add(1)
	if f.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	for kid, k := range keys {
		doc.Keys = append(doc.Keys, map[string]any{"kty": "RSA", "use": "sig", "kid": kid,
			"n":            base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
			"e":            base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes()),
			"endorsements": []string{"msteams"}})
	}
	_ = json.NewEncoder(w).Encode(doc)
}

// rotate publishes keys at a new JWKS path and points the metadata at it.
func (f *fakeCallingPlatform) rotate(path string, keys map[string]*rsa.PublicKey) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jwks[path] = keys
	f.jwksURI, f.uriSet = f.srv.URL+path, true
}

func (f *fakeCallingPlatform) setJWKSURI(u string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jwksURI, f.uriSet = u, true
}

type callingFixture struct {
	platform *fakeCallingPlatform
	clock    *clock
	v        *entra.CallingValidator
	keys     [3]*rsa.PrivateKey
}

// setupCalling publishes keys[0] as kid1 and keys[1] as kid2.
func setupCalling(t testing.TB) *callingFixture {
	t.Helper()
	ks := keys(t)
	f := &callingFixture{keys: ks, clock: &clock{t: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}}
	f.platform = newFakeCallingPlatform(t, map[string]*rsa.PublicKey{"kid1": &ks[0].PublicKey, "kid2": &ks[1].PublicKey})
	v, err := entra.NewCallingValidator(entra.CallingOptions{MetadataURL: f.platform.srv.URL + metadataPath,
		Audience: botAppID, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	f.v = v
	return f
}

// claims are the docs' example token's claims, at the fixture's time.
func (f *callingFixture) claims() jwt.MapClaims {
	now := f.clock.Now()
	return jwt.MapClaims{"aud": botAppID, "iss": "https://api.botframework.com", "tid": callerTenant,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(65 * time.Minute).Unix()}
}

// with returns the good claims with k set to v, or removed when v is nil.
func (f *callingFixture) with(k string, v any) jwt.MapClaims {
	c := f.claims()
	if v == nil {
		delete(c, k)
	} else {
		c[k] = v
	}
	return c
}

func (f *callingFixture) token(t testing.TB, kid string, key *rsa.PrivateKey, c jwt.MapClaims) string {
	return sign(t, jwt.SigningMethodRS256, kid, key, c)
}

func TestCallingTokenSignedByThePlatformIsAccepted(t *testing.T) {
	f := setupCalling(t)
	ctx := context.Background()
	now := f.clock.Now()
	for _, tc := range []struct {
		name   string
		header string
		iss    string
	}{
		{"botframework issuer, Bearer", "Bearer " + f.token(t, "kid1", f.keys[0], f.claims()), "https://api.botframework.com"},
		{"graph issuer, bearer lower-case", "bearer " + f.token(t, "kid2", f.keys[1], f.with("iss", "https://graph.microsoft.com")), "https://graph.microsoft.com"},
		{"audience in a list, BEARER", "BEARER " + f.token(t, "kid1", f.keys[0], f.with("aud", []string{"other", botAppID})), "https://api.botframework.com"},
		{"upper-case tid is lower-cased", "Bearer " + f.token(t, "kid1", f.keys[0], f.with("tid", strings.ToUpper(callerTenant))), "https://api.botframework.com"},
		{"expired within skew", "Bearer " + f.token(t, "kid1", f.keys[0], f.with("exp", now.Add(-time.Minute).Unix())), "https://api.botframework.com"},
		{"nbf and iat within skew", "Bearer " + f.token(t, "kid1", f.keys[0], f.with("nbf", now.Add(time.Minute).Unix())), "https://api.botframework.com"},
		{"no nbf, no iat", "Bearer " + f.token(t, "kid1", f.keys[0], func() jwt.MapClaims { c := f.with("nbf", nil); delete(c, "iat"); return c }()), "https://api.botframework.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := f.v.VerifyHeader(ctx, tc.header)
			if err != nil {
				t.Fatal(err)
			}
			if got.TenantID != callerTenant || got.Issuer != tc.iss || !contains(got.Audience, botAppID) || got.ExpiresAt.IsZero() {
				t.Fatalf("claims = %+v", got)
			}
		})
	}
	tok := f.token(t, "kid1", f.keys[0], f.claims())
	got, err := f.v.Verify(ctx, tok)
	if err != nil || got.TenantID != callerTenant || !got.ExpiresAt.Equal(now.Add(65*time.Minute)) {
		t.Fatalf("Verify = %+v, %v", got, err)
	}
	if n := f.v.Fetches(); n != 1 || f.platform.metaHits.Load() != 1 || f.platform.keysHits.Load() != 1 {
		t.Fatalf("fetches = %d (metadata %d, keys %d); want 1 round", n, f.platform.metaHits.Load(), f.platform.keysHits.Load())
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestCallingBadTokensAreRefused(t *testing.T) {
	f := setupCalling(t)
	ctx := context.Background()
	now := f.clock.Now()
	good := f.token(t, "kid1", f.keys[0], f.claims())
	if _, err := f.v.Verify(ctx, good); err != nil { // warm the cache: refusals below are about the token
		t.Fatal(err)
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(&f.keys[0].PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	none := sign(t, jwt.SigningMethodNone, "kid1", jwt.UnsafeAllowNoneSignatureType, f.claims())
	parts := strings.Split(good, ".")
	bearer := func(tok string) string { return "Bearer " + tok }
	for _, tc := range []struct{ name, header, why string }{
		{"empty header", "", "no authorization"},
		{"blank header", "   ", "no authorization"},
		{"scheme without token", "Bearer", "not a bearer token"},
		{"scheme and spaces", "Bearer   ", "not a bearer token"},
		{"token without scheme", good, "not a bearer token"},
		{"Basic scheme", "Basic " + base64.StdEncoding.EncodeToString([]byte("bot:secret")), "not a bearer token"},
		{"Bearer glued to the token", "Bearer" + good, "not a bearer token"},
		{"malformed JWT", bearer("not.a.token"), "malformed"},
		{"two parts", bearer(parts[0] + "." + parts[1]), "malformed"},
		{"garbage", bearer("garbage"), "malformed"},
		{"alg none", bearer(none), "algorithm not accepted"},
		{"alg none, no signature", bearer(strings.TrimSuffix(none, ".")), "malformed"},
		{"HS256 keyed with the public key PEM", bearer(sign(t, jwt.SigningMethodHS256, "kid1", pubPEM, f.claims())), "algorithm not accepted"},
		{"HS256 keyed with the public key DER", bearer(sign(t, jwt.SigningMethodHS256, "kid1", pubDER, f.claims())), "algorithm not accepted"},
		{"RS512", bearer(sign(t, jwt.SigningMethodRS512, "kid1", f.keys[0], f.claims())), "algorithm not accepted"},
		{"PS256", bearer(sign(t, jwt.SigningMethodPS256, "kid1", f.keys[0], f.claims())), "algorithm not accepted"},
		{"no kid", bearer(f.token(t, "", f.keys[0], f.claims())), "no kid"},
		{"unknown kid", bearer(f.token(t, "kid9", f.keys[0], f.claims())), "unknown kid"},
		{"signed by an unknown key under a known kid", bearer(f.token(t, "kid1", f.keys[2], f.claims())), "bad signature"},
		{"signed by the other published key", bearer(f.token(t, "kid2", f.keys[0], f.claims())), "bad signature"},
		{"tampered payload", bearer(parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"tid":"`+tenantB+`"}`)) + "." + parts[2]), "bad signature"},
		{"expired", bearer(f.token(t, "kid1", f.keys[0], f.with("exp", now.Add(-3*time.Minute).Unix()))), "expired"},
		{"no exp", bearer(f.token(t, "kid1", f.keys[0], f.with("exp", nil))), "no exp"},
		{"nbf in the future", bearer(f.token(t, "kid1", f.keys[0], f.with("nbf", now.Add(3*time.Minute).Unix()))), "not valid yet"},
		{"iat in the future", bearer(f.token(t, "kid1", f.keys[0], f.with("iat", now.Add(3*time.Minute).Unix()))), "issued in the future"},
		{"wrong audience", bearer(f.token(t, "kid1", f.keys[0], f.with("aud", "api://someone-else"))), "audience"},
		{"no audience", bearer(f.token(t, "kid1", f.keys[0], f.with("aud", nil))), "audience"},
		{"Entra issuer", bearer(f.token(t, "kid1", f.keys[0], f.with("iss", "https://login.microsoftonline.com/"+callerTenant+"/v2.0"))), "issuer"},
		{"issuer with a trailing slash", bearer(f.token(t, "kid1", f.keys[0], f.with("iss", "https://api.botframework.com/"))), "issuer"},
		{"issuer in another case", bearer(f.token(t, "kid1", f.keys[0], f.with("iss", "https://API.botframework.com"))), "issuer"},
		{"no issuer", bearer(f.token(t, "kid1", f.keys[0], f.with("iss", nil))), "issuer"},
		{"no tid", bearer(f.token(t, "kid1", f.keys[0], f.with("tid", nil))), "no tid"},
		{"empty tid", bearer(f.token(t, "kid1", f.keys[0], f.with("tid", ""))), "no tid"},
		{"tid not a GUID", bearer(f.token(t, "kid1", f.keys[0], f.with("tid", "contoso.onmicrosoft.com"))), "not a GUID"},
		{"tid not a string", bearer(f.token(t, "kid1", f.keys[0], f.with("tid", 42))), "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.v.VerifyHeader(ctx, tc.header)
			if !errors.Is(err, entra.ErrInvalid) || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("err = %v; want ErrInvalid because %q", err, tc.why)
			}
			for _, p := range append(strings.Split(strings.TrimPrefix(tc.header, "Bearer "), "."), strings.Fields(tc.header)...) {
				if len(p) > 8 && strings.Contains(err.Error(), p) {
					t.Fatalf("the error %q quotes the header", err)
				}
			}
		})
	}
}

func TestCallingAlgorithmsOtherThanRS256AreRefusedBeforeAnyKeyLookup(t *testing.T) {
	f := setupCalling(t)
	pubDER, _ := x509.MarshalPKIXPublicKey(&f.keys[0].PublicKey)
	for name, tok := range map[string]string{
		"none":  sign(t, jwt.SigningMethodNone, "kid9", jwt.UnsafeAllowNoneSignatureType, f.claims()),
		"HS256": sign(t, jwt.SigningMethodHS256, "kid9", pubDER, f.claims()),
		"RS384": sign(t, jwt.SigningMethodRS384, "kid9", f.keys[0], f.claims()),
		"ES256": sign(t, jwt.SigningMethodES256, "kid9", mustECKey(t), f.claims()),
	} {
		if _, err := f.v.Verify(context.Background(), tok); !errors.Is(err, entra.ErrInvalid) {
			t.Errorf("%s: %v; want ErrInvalid", name, err)
		}
	}
	if n := f.v.Fetches(); n != 0 || f.platform.metaHits.Load() != 0 {
		t.Fatalf("refusing algorithms fetched keys %d times; want none", n)
	}
}

func mustECKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestCallingUnknownKidsRefetchAtMostOncePerMinute(t *testing.T) {
	f := setupCalling(t)
	ctx := context.Background()
	tok := f.token(t, "kid1", f.keys[0], f.claims())
	for range 1000 {
		if _, err := f.v.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	wantHits := func(step string, n int64) {
		t.Helper()
		if f.v.Fetches() != n || f.platform.metaHits.Load() != n || f.platform.keysHits.Load() != n {
			t.Fatalf("%s: fetches %d, metadata requests %d, JWKS requests %d; want %d each",
				step, f.v.Fetches(), f.platform.metaHits.Load(), f.platform.keysHits.Load(), n)
		}
	}
	wantHits("1000 validations", 1)

	// The platform rotates: kid3 appears at a new JWKS that the metadata names, kid1 goes.
	f.platform.rotate("/keys/2", map[string]*rsa.PublicKey{"kid2": &f.keys[1].PublicKey, "kid3": &f.keys[2].PublicKey})
	rotated := func() string { return f.token(t, "kid3", f.keys[2], f.claims()) }
	f.clock.Add(59 * time.Second)
	if _, err := f.v.Verify(ctx, rotated()); !errors.Is(err, entra.ErrInvalid) {
		t.Fatalf("new kid within a minute of the last fetch: %v; want refused", err)
	}
	wantHits("new kid within the minute", 1)
	f.clock.Add(time.Second)
	if _, err := f.v.Verify(ctx, rotated()); err != nil {
		t.Fatalf("new kid a minute after the last fetch: %v", err)
	}
	wantHits("new kid after the minute", 2)
	if _, err := f.v.Verify(ctx, tok); !errors.Is(err, entra.ErrInvalid) {
		t.Fatal("a key the platform dropped must be refused after the refetch")
	}
	// Made-up kids: at most one round per minute, however many arrive.
	for minute := 0; minute < 3; minute++ {
		for i := 0; i < 50; i++ {
			_, _ = f.v.Verify(ctx, f.token(t, "made-up", f.keys[0], f.claims()))
			f.clock.Add(time.Second) // 50 s of made-up kids
		}
		f.clock.Add(10 * time.Second)
	}
	// Rounds at +2 min and +3 min (the first minute of made-up kids was within a minute
	// of the rotation's fetch): one a minute, never one a request.
	if n := f.v.Fetches(); n != 4 {
		t.Fatalf("3 minutes of made-up kids: %d rounds in all; want 4 (one a minute)", n)
	}
	if f.platform.metaHits.Load() != f.v.Fetches() || f.platform.keysHits.Load() != f.v.Fetches() {
		t.Fatalf("metadata %d, keys %d, rounds %d", f.platform.metaHits.Load(), f.platform.keysHits.Load(), f.v.Fetches())
	}
	if _, err := f.v.Verify(ctx, rotated()); err != nil {
		t.Fatalf("the rotated key after made-up kids: %v", err)
	}
}

func TestCallingKeysRefreshInTheBackgroundDailyAndAFailedRefreshKeepsThem(t *testing.T) {
	f := setupCalling(t)
	ctx := context.Background()
	if _, err := f.v.Verify(ctx, f.token(t, "kid1", f.keys[0], f.claims())); err != nil {
		t.Fatal(err)
	}
	f.platform.down.Store(true)
	f.clock.Add(24 * time.Hour)
	// The request is answered with the keys we have; the refresh runs behind it and fails.
	if _, err := f.v.Verify(ctx, f.token(t, "kid1", f.keys[0], f.claims())); err != nil {
		t.Fatalf("known kid with a refresh due: %v", err)
	}
	waitFor(t, "the failed background refresh", func() bool { return f.platform.metaHits.Load() == 2 && f.v.Fetches() == 2 })
	entra.WaitForCallingFetch(f.v)
	f.clock.Add(time.Minute)
	if _, err := f.v.Verify(ctx, f.token(t, "kid9", f.keys[2], f.claims())); !errors.Is(err, entra.ErrInvalid) {
		t.Fatalf("unknown kid while the platform is down: %v", err)
	}
	if f.platform.metaHits.Load() != 3 || f.platform.keysHits.Load() != 1 {
		t.Fatalf("metadata %d, keys %d; want the refetch to stop at the metadata", f.platform.metaHits.Load(), f.platform.keysHits.Load())
	}
	for _, kid := range []string{"kid1", "kid2"} {
		if _, err := f.v.Verify(ctx, f.token(t, kid, f.keys[map[string]int{"kid1": 0, "kid2": 1}[kid]], f.claims())); err != nil {
			t.Fatalf("%s after failed refreshes: %v; the keys it had must stay", kid, err)
		}
	}
	// Back up: the next refresh (one RefreshEvery after the last attempt) succeeds.
	f.platform.down.Store(false)
	f.clock.Add(24 * time.Hour)
	if _, err := f.v.Verify(ctx, f.token(t, "kid1", f.keys[0], f.claims())); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the background refresh", func() bool { return f.platform.keysHits.Load() == 2 })
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCallingConcurrentColdCallersShareOneFetch(t *testing.T) {
	f := setupCalling(t)
	f.platform.delay = 50 * time.Millisecond
	tok := f.token(t, "kid1", f.keys[0], f.claims())
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := f.v.Verify(context.Background(), tok); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if f.v.Fetches() != 1 || f.platform.metaHits.Load() != 1 || f.platform.keysHits.Load() != 1 {
		t.Fatalf("50 concurrent cold validations: %d rounds, metadata %d, JWKS %d; want 1 each",
			f.v.Fetches(), f.platform.metaHits.Load(), f.platform.keysHits.Load())
	}
}

func TestCallingCallerGivingUpWhileKeysAreFetchedIsRefusedWithTheCause(t *testing.T) {
	f := setupCalling(t)
	f.platform.delay = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := f.v.Verify(ctx, f.token(t, "kid1", f.keys[0], f.claims()))
	if !errors.Is(err, entra.ErrInvalid) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v; want ErrInvalid and DeadlineExceeded", err)
	}
	// The fetch went on without the caller: the next caller shares it.
	if _, err := f.v.Verify(context.Background(), f.token(t, "kid1", f.keys[0], f.claims())); err != nil {
		t.Fatal(err)
	}
	if n := f.v.Fetches(); n != 1 {
		t.Fatalf("rounds = %d; want 1", n)
	}
}

func TestCallingMetadataNamingAPlainHTTPJWKSIsRefused(t *testing.T) {
	for _, uri := range []string{
		"http://keys.example.com/keys",
		"http://localhost.evil.example/keys",
		"http://127.0.0.1.nip.io/keys",
		"ftp://keys.example.com/keys",
		"/keys",
		"", // no jwks_uri
	} {
		t.Run(uri, func(t *testing.T) {
			f := setupCalling(t)
			f.platform.setJWKSURI(uri)
			// Every host name leads to the fake platform, so a validator that followed
			// the plain-http jwks_uri would be seen at the server.
			addr := f.platform.srv.Listener.Addr().String()
			client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			}}}
			v, err := entra.NewCallingValidator(entra.CallingOptions{MetadataURL: f.platform.srv.URL + metadataPath,
				Audience: botAppID, Now: f.clock.Now, HTTPClient: client})
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.Verify(context.Background(), f.token(t, "kid1", f.keys[0], f.claims()))
			if !errors.Is(err, entra.ErrInvalid) {
				t.Fatalf("err = %v; want ErrInvalid", err)
			}
			if f.platform.metaHits.Load() != 1 || f.platform.keysHits.Load() != 0 || f.platform.otherHits.Load() != 0 {
				t.Fatalf("metadata %d, keys %d, other %d; want the metadata only", f.platform.metaHits.Load(),
					f.platform.keysHits.Load(), f.platform.otherHits.Load())
			}
		})
	}
}

func TestNewCallingValidatorRefusesBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    entra.CallingOptions
		ok   bool
	}{
		{"defaults with an audience", entra.CallingOptions{Audience: botAppID}, true},
		{"loopback http metadata", entra.CallingOptions{Audience: botAppID, MetadataURL: "http://127.0.0.1:7071/meta"}, true},
		{"localhost http metadata", entra.CallingOptions{Audience: botAppID, MetadataURL: "http://localhost:7071/meta"}, true},
		{"no audience", entra.CallingOptions{}, false},
		{"blank audience", entra.CallingOptions{Audience: "  "}, false},
		{"plain http metadata", entra.CallingOptions{Audience: botAppID, MetadataURL: "http://api.aps.skype.com/v1/.well-known/OpenIdConfiguration"}, false},
		{"localhost look-alike", entra.CallingOptions{Audience: botAppID, MetadataURL: "http://localhost.evil.example/meta"}, false},
		{"not a URL", entra.CallingOptions{Audience: botAppID, MetadataURL: "api.aps.skype.com"}, false},
		{"empty issuer", entra.CallingOptions{Audience: botAppID, Issuers: []string{"https://api.botframework.com", ""}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := entra.NewCallingValidator(tc.o)
			if tc.ok && (err != nil || v == nil) {
				t.Fatalf("err = %v", err)
			}
			if !tc.ok && err == nil {
				t.Fatal("accepted")
			}
			if tc.ok && v.Fetches() != 0 {
				t.Fatal("NewCallingValidator fetched")
			}
		})
	}
}

func TestCallingIssuersOptionReplacesTheDefaults(t *testing.T) {
	ks := keys(t)
	c := &clock{t: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}
	p := newFakeCallingPlatform(t, map[string]*rsa.PublicKey{"kid1": &ks[0].PublicKey})
	issuers := []string{"https://calls.example"}
	v, err := entra.NewCallingValidator(entra.CallingOptions{MetadataURL: p.srv.URL + metadataPath, Audience: botAppID,
		Issuers: issuers, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	issuers[0] = "https://api.botframework.com" // the validator keeps its own copy
	f := &callingFixture{clock: c}
	if _, err := v.Verify(context.Background(), f.token(t, "kid1", ks[0], f.with("iss", "https://calls.example"))); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), f.token(t, "kid1", ks[0], f.claims())); !errors.Is(err, entra.ErrInvalid) {
		t.Fatalf("a default issuer with Issuers set: %v; want refused", err)
	}
}

func BenchmarkCallingVerify(b *testing.B) {
	f := setupCalling(b)
	tok := f.token(b, "kid1", f.keys[0], f.claims())
	ctx := context.Background()
	if _, err := f.v.Verify(ctx, tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := f.v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}
