package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/teamscc/teamscc/shared/acs"
	"github.com/teamscc/teamscc/shared/config"
	"github.com/teamscc/teamscc/shared/funchost"
	"github.com/teamscc/teamscc/shared/inmem"
	"github.com/teamscc/teamscc/shared/interact"
	"github.com/teamscc/teamscc/shared/simulate"
	"github.com/teamscc/teamscc/shared/tenant"
)

// fakeJWKS publishes one RSA key as Entra does and signs tokens with it.
type fakeJWKS struct {
	srv *httptest.Server
	key *rsa.PrivateKey
}

func newFakeJWKS(t testing.TB) *fakeJWKS {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeJWKS{key: k}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{"kty": "RSA", "use": "sig", "kid": "k1",
			"n": base64.RawURLEncoding.EncodeToString(k.N.Bytes()), "e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes())}}})
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeJWKS) token(t testing.TB, tenant, aud string) string {
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": f.srv.URL + "/" + tenant + "/v2.0", "aud": aud, "tid": tenant,
		"oid": "5d4c3b2a-1111-4222-8333-944455556666", "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix()})
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(f.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startLocal runs the app with the local runner (seeded demo tenants; Interact on for
// Contoso) and returns the front end's base URL.
func startLocal(t testing.TB, env map[string]string) string {
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-local", "-root", "..", "-listen", "127.0.0.1:0"}, envFrom(env), out)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("local run: %v", err)
		}
	})
	addrRE := regexp.MustCompile(`running locally on (http://127\.0\.0\.1:\d+)`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := addrRE.FindStringSubmatch(out.String()); m != nil {
			return m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no banner:\n%s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type answer struct {
	status int
	header http.Header
	body   string
}

func call(t testing.TB, method, url, body string, headers ...string) answer {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return answer{res.StatusCode, res.Header, string(b)}
}

func TestInteractOverHTTP(t *testing.T) {
	jwks := newFakeJWKS(t)
	base := startLocal(t, map[string]string{"LogLevel": "warn", "PresenceRefreshSchedule": "0 0 0 1 1 *",
		"EntraAuthorityHost": jwks.srv.URL + "/", "InteractTokenAudiences": "api://widget"})
	contoso, fabrikam := simulate.ContosoID, simulate.FabrikamID
	admin := base + "/api/tenants/" + contoso + "/interact"
	widget := base + "/api/interact/" + contoso + "/sessions"

	// Admin: the seeded settings, with the key; never the ACS string.
	var v interact.View
	a := call(t, "GET", admin, "")
	if err := json.Unmarshal([]byte(a.body), &v); a.status != 200 || err != nil || !v.Enabled || v.WidgetKeyStatus != "set" || v.AuthMode != interact.ModeNone {
		t.Fatalf("GET settings: %d %s", a.status, a.body)
	}
	key := v.WidgetKey
	if a := call(t, "GET", base+"/api/tenants/11111111-2222-4333-8444-555555555555/interact", ""); a.status != 404 {
		t.Errorf("unknown tenant (admin): %d %s", a.status, a.body)
	}
	for body, want := range map[string]string{
		`{"recoveryTimeoutSeconds":61}`:              `"field":"recoveryTimeoutSeconds","rule":"must be a whole number 5..60"`,
		`{"recoveryTimeoutSeconds":"x"}`:             `"field":"recoveryTimeoutSeconds"`,
		`{"authMode":"Sometimes"}`:                   `"field":"authMode"`,
		`{"allowedOrigins":["http://evil.example"]}`: `"field":"allowedOrigins"`,
		`{"enabled":false,"colour":"red"}`:           `"field":"colour","rule":"unknown field"`,
		`{"acsConnectionString":"nope"}`:             `"field":"acsConnectionString"`,
	} {
		if a := call(t, "PATCH", admin, body); a.status != 400 || !strings.Contains(a.body, want) {
			t.Errorf("PATCH %s: %d %s; want 400 with %s", body, a.status, a.body, want)
		}
	}
	if a := call(t, "GET", admin, ""); !strings.Contains(a.body, `"enabled":true`) || !strings.Contains(a.body, `"recoveryTimeoutSeconds":20`) {
		t.Fatalf("refused PATCHes wrote: %s", a.body)
	}
	a = call(t, "PATCH", admin, `{"acsConnectionString":"endpoint=https://contoso.communication.azure.com/;accesskey=U0VDUkVU","recoveryTimeoutSeconds":5,"allowedOrigins":["https://shop.contoso.com"]}`)
	if a.status != 200 || strings.Contains(a.body, "U0VDUkVU") || !strings.Contains(a.body, `"acsConnectionStringSet":true`) {
		t.Fatalf("PATCH with an ACS string: %d %s", a.status, a.body)
	}
	a = call(t, "PATCH", admin, `{"acsConnectionString":""}`)
	if a.status != 200 || !strings.Contains(a.body, `"acsConnectionStringSet":false`) {
		t.Fatalf("PATCH clearing the ACS string: %d %s", a.status, a.body)
	}
	if a := call(t, "POST", admin+"/acs/check", ""); a.status != 200 || !strings.Contains(a.body, `"status":"notConfigured"`) {
		t.Errorf("ACS check without a string: %d %s", a.status, a.body)
	}

	// CORS preflight.
	a = call(t, "OPTIONS", widget, "", "Origin", "https://shop.contoso.com", "Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "x-widget-key, content-type")
	if a.status != 204 || a.header.Get("Access-Control-Allow-Origin") != "https://shop.contoso.com" ||
		!strings.Contains(a.header.Get("Access-Control-Allow-Headers"), "X-Widget-Key") || !strings.Contains(a.header.Get("Access-Control-Allow-Methods"), "POST") {
		t.Errorf("preflight from an allowed origin: %d %v", a.status, a.header)
	}
	a = call(t, "OPTIONS", widget, "", "Origin", "https://evil.example", "Access-Control-Request-Method", "POST")
	if a.status != 204 || a.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from another origin: %d %v", a.status, a.header)
	}

	// 401 without hints: wrong key, no key, unknown tenant, malformed tenant all answer alike.
	unauth := []answer{
		call(t, "POST", widget, `{"customerId":"c1"}`, "X-Widget-Key", interact.NewGUID()),
		call(t, "POST", widget, `{"customerId":"c1"}`),
		call(t, "POST", base+"/api/interact/11111111-2222-4333-8444-555555555555/sessions", `{"customerId":"c1"}`, "X-Widget-Key", key),
		call(t, "POST", base+"/api/interact/contoso/sessions", `{"customerId":"c1"}`, "X-Widget-Key", key),
	}
	for i, a := range unauth {
		if a.status != 401 || a.body != unauth[0].body {
			t.Errorf("refusal %d: %d %s; want 401 like %s", i, a.status, a.body, unauth[0].body)
		}
	}

	// A session: created (201), closed, recovered (200) within the timeout, new after it.
	start := func(body string, h ...string) (answer, interact.Started) {
		a := call(t, "POST", widget, body, append([]string{"X-Widget-Key", key, "Origin", "https://shop.contoso.com"}, h...)...)
		var st interact.Started
		_ = json.Unmarshal([]byte(a.body), &st)
		return a, st
	}
	a, s1 := start(`{"customerId":"cust-1"}`)
	if a.status != 201 || s1.SessionID == "" || s1.Recovered || s1.ACS.Configured || a.header.Get("Access-Control-Allow-Origin") != "https://shop.contoso.com" {
		t.Fatalf("new session: %d %s %v", a.status, a.body, a.header)
	}
	if a, _ := start(`{"customerId":"cust-1","extra":1}`); a.status != 400 || !strings.Contains(a.body, `"field":"extra"`) {
		t.Errorf("unknown body field: %d %s", a.status, a.body)
	}
	if a, _ := start(`{}`); a.status != 400 || !strings.Contains(a.body, `"field":"customerId","rule":"required"`) {
		t.Errorf("no customer: %d %s", a.status, a.body)
	}
	closeURL := widget + "/" + s1.SessionID + "/close"
	if a := call(t, "POST", closeURL, `{"customerId":"cust-1"}`, "X-Widget-Key", key); a.status != 204 {
		t.Fatalf("close: %d %s", a.status, a.body)
	}
	a, s2 := start(`{"customerId":"cust-1","sessionId":"` + s1.SessionID + `"}`)
	if a.status != 200 || s2.SessionID != s1.SessionID || !s2.Recovered {
		t.Fatalf("recover: %d %s", a.status, a.body)
	}
	if a := call(t, "POST", closeURL, `{"customerId":"cust-1"}`, "X-Widget-Key", key); a.status != 204 {
		t.Fatalf("close again: %d %s", a.status, a.body)
	}
	time.Sleep(5*time.Second + 200*time.Millisecond) // the recovery timeout is 5 s
	a, s3 := start(`{"customerId":"cust-1","sessionId":"` + s1.SessionID + `"}`)
	if a.status != 201 || s3.SessionID == s1.SessionID || s3.Recovered {
		t.Fatalf("after the recovery timeout: %d %s", a.status, a.body)
	}
	if a, _ := start(`{"customerId":"c"}`, "Origin", "https://evil.example"); a.status != 403 || !strings.Contains(a.body, "origin not allowed") {
		t.Errorf("refused origin: %d %s", a.status, a.body)
	}

	// Token modes.
	if a := call(t, "PATCH", admin, `{"authMode":"VerifyTokenAndTenant"}`); a.status != 200 {
		t.Fatalf("PATCH mode: %d %s", a.status, a.body)
	}
	for name, tc := range map[string]struct {
		token string
		want  int
	}{
		"no token":           {"", 401},
		"garbage":            {"Bearer abc.def.ghi", 401},
		"other tenant":       {"Bearer " + jwks.token(t, fabrikam, "api://widget"), 401},
		"wrong audience":     {"Bearer " + jwks.token(t, contoso, "api://other"), 401},
		"good":               {"Bearer " + jwks.token(t, contoso, "api://widget"), 201},
		"good, lower bearer": {"bearer " + jwks.token(t, contoso, "api://widget"), 201},
	} {
		h := []string{"X-Widget-Key", key}
		if tc.token != "" {
			h = append(h, "Authorization", tc.token)
		}
		if a := call(t, "POST", widget, `{"customerId":"c"}`, h...); a.status != tc.want || (tc.want == 401 && a.body != unauth[0].body) {
			t.Errorf("VerifyTokenAndTenant, %s: %d %s; want %d", name, a.status, a.body, tc.want)
		}
	}
	if a := call(t, "PATCH", admin, `{"authMode":"VerifyToken"}`); a.status != 200 {
		t.Fatal(a.body)
	}
	if a := call(t, "POST", widget, `{"customerId":"c"}`, "X-Widget-Key", key, "Authorization", "Bearer "+jwks.token(t, fabrikam, "api://widget")); a.status != 201 {
		t.Errorf("VerifyToken accepts another tenant's good token: %d %s", a.status, a.body)
	}

	// Refresh: the old key is refused at once (grace 0), the new one works.
	if a := call(t, "PATCH", admin, `{"authMode":"None"}`); a.status != 200 {
		t.Fatal(a.body)
	}
	a = call(t, "POST", admin+"/widget-key/refresh", "")
	var rv interact.View
	if err := json.Unmarshal([]byte(a.body), &rv); a.status != 200 || err != nil || rv.WidgetKey == key || !interact.IsGUID(rv.WidgetKey) {
		t.Fatalf("refresh: %d %s", a.status, a.body)
	}
	if a := call(t, "POST", widget, `{"customerId":"c"}`, "X-Widget-Key", key); a.status != 401 {
		t.Errorf("old key after refresh: %d", a.status)
	}
	if a := call(t, "POST", widget, `{"customerId":"c"}`, "X-Widget-Key", rv.WidgetKey); a.status != 201 {
		t.Errorf("new key after refresh: %d %s", a.status, a.body)
	}

	// Disabled: 403 only with the right key.
	fab := base + "/api/tenants/" + fabrikam + "/interact"
	a = call(t, "PATCH", fab, `{"enabled":false}`)
	var fv interact.View
	_ = json.Unmarshal([]byte(a.body), &fv)
	fabWidget := base + "/api/interact/" + fabrikam + "/sessions"
	if a := call(t, "POST", fabWidget, `{"customerId":"c"}`, "X-Widget-Key", fv.WidgetKey); a.status != 403 || !strings.Contains(a.body, "interact disabled") {
		t.Errorf("disabled, right key: %d %s", a.status, a.body)
	}
	if a := call(t, "POST", fabWidget, `{"customerId":"c"}`, "X-Widget-Key", key); a.status != 401 {
		t.Errorf("disabled, wrong key: %d %s; want 401", a.status, a.body)
	}

	// Rate limit: repeated failures from this client for Fabrikam (ten allowed) → 429.
	var last answer
	for i := 0; i < 12; i++ {
		last = call(t, "POST", fabWidget, `{"customerId":"c"}`, "X-Widget-Key", fmt.Sprint("wrong-", i))
	}
	if last.status != 429 || last.header.Get("Retry-After") == "" {
		t.Errorf("after 12 failures: %d %v", last.status, last.header)
	}
	if a := call(t, "POST", fabWidget, `{"customerId":"c"}`, "X-Widget-Key", fv.WidgetKey); a.status != 429 {
		t.Errorf("the limited client with the right key: %d", a.status)
	}
	if a := call(t, "POST", widget, `{"customerId":"c"}`, "X-Widget-Key", rv.WidgetKey); a.status != 201 {
		t.Errorf("the same client for another tenant is not limited: %d %s", a.status, a.body)
	}
}

// interactApp is the Interact functions on embedded storage, served over loopback HTTP
// as the host forwards them (raw requests), with a settable clock. Contoso and
// Fabrikam have Interact on.
type interactApp struct {
	url    string
	clock  *clock
	key    string // Contoso's widget key
	fabKey string // Fabrikam's
}

// newInteractApp builds the app with ac as its ACS client.
func newInteractApp(t *testing.T, ac *acs.Client) *interactApp {
	t.Helper()
	cfg, err := config.Load(envFrom(map[string]string{"Storage": "Memory", "LogLevel": "error"}))
	if err != nil {
		t.Fatal(err)
	}
	s := inmem.New()
	for _, tn := range []tenant.Tenant{{ID: simulate.ContosoID, Name: "Contoso"}, {ID: simulate.FabrikamID, Name: "Fabrikam"}} {
		if err := s.PutTenant(context.Background(), tn); err != nil {
			t.Fatal(err)
		}
	}
	clk := &clock{t: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}
	d := deps{tenants: s, secrets: s, interact: s, now: clk.Now, admin: localAdmin(s)}
	app := funchost.New(funchost.Options{})
	interactRoutes(app, d.admin, newInteractHandlerACS(cfg, d, ac))
	srv := httptest.NewServer(app)
	t.Cleanup(srv.Close)
	a := &interactApp{url: srv.URL, clock: clk}
	a.key = a.patch(t, simulate.ContosoID, `{"enabled":true}`).WidgetKey
	a.fabKey = a.patch(t, simulate.FabrikamID, `{"enabled":true}`).WidgetKey
	return a
}

func (a *interactApp) patch(t *testing.T, tenantID, body string) interact.View {
	t.Helper()
	res := call(t, "PATCH", a.url+"/api/tenants/"+tenantID+"/interact", body)
	var v interact.View
	if err := json.Unmarshal([]byte(res.body), &v); res.status != 200 || err != nil {
		t.Fatalf("PATCH %s: %d %s", body, res.status, res.body)
	}
	return v
}

// session posts a session request with the front end's headers (frontEnd: Client-IP
// and X-Forwarded-For as the App Service front end delivers them).
func (a *interactApp) session(t *testing.T, tenantID, key string, h frontEnd) answer {
	t.Helper()
	return call(t, "POST", a.url+"/api/interact/"+tenantID+"/sessions", `{"customerId":"cust-1"}`, h.headers("X-Widget-Key", key)...)
}

// frontEnd is a request as the App Service front end hands it on: the caller's own
// X-Forwarded-For (anything it likes) with the address the front end saw appended,
// and Client-IP set to that address, unless noClientIP.
type frontEnd struct {
	addr       string // the caller's real address, as the front end saw it
	callerXFF  string // what the caller wrote in X-Forwarded-For, or ""
	noClientIP bool
}

func (f frontEnd) headers(h ...string) []string {
	peer := net.JoinHostPort(f.addr, "50312")
	xff := peer
	if f.callerXFF != "" {
		xff = f.callerXFF + ", " + peer
	}
	h = append(h, "X-Forwarded-For", xff)
	if !f.noClientIP {
		h = append(h, "Client-IP", peer)
	}
	return h
}

// The limiter counts what the front end saw: rotating X-Forwarded-For's first hop
// gives no more attempts, and writing a victim's address there locks nobody out.
func TestWidgetFailuresCountAgainstTheAddressTheFrontEndSaw(t *testing.T) {
	const attacker, victim = "198.51.100.66", "203.0.113.7"
	for _, name := range []string{"Client-IP", "X-Forwarded-For only"} {
		noClientIP := name != "Client-IP"
		guesses := func(t *testing.T, a *interactApp, first func(i int) string) answer {
			t.Helper()
			var last answer
			for i := 0; i < 11; i++ {
				last = a.session(t, simulate.ContosoID, fmt.Sprint("guess-", i), frontEnd{addr: attacker, callerXFF: first(i), noClientIP: noClientIP})
				if i < 10 && last.status != 401 {
					t.Fatalf("guess %d: %d %s; want 401", i, last.status, last.body)
				}
			}
			return last
		}
		t.Run(name+": rotating the first hop", func(t *testing.T) {
			a := newInteractApp(t, nil)
			last := guesses(t, a, func(i int) string { return fmt.Sprintf("192.0.2.%d", i) })
			if last.status != 429 || last.header.Get("Retry-After") == "" {
				t.Fatalf("11th guess, each with a new first hop: %d %s; want 429 with Retry-After", last.status, last.body)
			}
			if r := a.session(t, simulate.ContosoID, a.key, frontEnd{addr: attacker, callerXFF: "192.0.2.200", noClientIP: noClientIP}); r.status != 429 {
				t.Errorf("the attacker's address with the right key: %d; want 429 (its own failures)", r.status)
			}
		})
		t.Run(name+": the victim's address first", func(t *testing.T) {
			a := newInteractApp(t, nil)
			if last := guesses(t, a, func(int) string { return victim }); last.status != 429 {
				t.Fatalf("11th guess: %d; want 429", last.status)
			}
			if r := a.session(t, simulate.ContosoID, a.key, frontEnd{addr: victim, noClientIP: noClientIP}); r.status != 201 {
				t.Errorf("the victim: %d %s; want 201", r.status, r.body)
			}
		})
	}
	t.Run("IPv6 counts by /64", func(t *testing.T) {
		a := newInteractApp(t, nil)
		var last answer
		for i := 0; i < 11; i++ {
			last = a.session(t, simulate.ContosoID, "guess", frontEnd{addr: fmt.Sprintf("2001:db8:1:2::%x", i+1)})
		}
		if last.status != 429 {
			t.Errorf("11 addresses of one /64: %d; want 429", last.status)
		}
		if a := a.session(t, simulate.ContosoID, a.key, frontEnd{addr: "2001:db8:1:3::1"}); a.status != 201 {
			t.Errorf("the next /64: %d %s; want 201", a.status, a.body)
		}
	})
}

// A botnet (many real addresses, a few failures each) exhausts the tenant's budget of
// failures: the tenant's widget then waits (429) until failures stop for a refill,
// correct keys included; other tenants are not affected.
func TestWidgetTenantLimitHoldsAcrossAddresses(t *testing.T) {
	a := newInteractApp(t, nil)
	bot := func(i int) frontEnd { return frontEnd{addr: fmt.Sprintf("10.%d.%d.1", i/250, i%250)} }
	for i := 0; i < interact.DefaultTenantBurst; i++ {
		if r := a.session(t, simulate.ContosoID, "guess", bot(i)); r.status != 401 {
			t.Fatalf("guess %d from its own address: %d %s; want 401", i, r.status, r.body)
		}
	}
	next := interact.DefaultTenantBurst
	if r := a.session(t, simulate.ContosoID, "guess", bot(next)); r.status != 429 || r.header.Get("Retry-After") != "1" {
		t.Fatalf("a guess from a fresh address after %d: %d %v; want 429, Retry-After 1", next, r.status, r.header)
	}
	if r := a.session(t, simulate.ContosoID, a.key, frontEnd{addr: "203.0.113.7"}); r.status != 429 {
		t.Errorf("the right key while the tenant's budget is spent: %d; want 429 (as designed)", r.status)
	}
	if r := a.session(t, simulate.FabrikamID, a.fabKey, bot(0)); r.status != 201 {
		t.Errorf("another tenant, even from a bot's address: %d %s; want 201", r.status, r.body)
	}
	a.clock.Advance(interact.DefaultTenantRefill)
	if r := a.session(t, simulate.ContosoID, a.key, frontEnd{addr: "203.0.113.7"}); r.status != 201 {
		t.Errorf("the right key one refill after the last failure: %d %s; want 201", r.status, r.body)
	}
}

// One address failing as fast as it is allowed, for a long time, never keeps anyone
// else of the tenant out.
func TestWidgetOneAddressCannotLockTheTenantOut(t *testing.T) {
	a := newInteractApp(t, nil)
	limited := 0
	for step := 0; step < 300; step++ { // five minutes, a guess and a customer every second
		if r := a.session(t, simulate.ContosoID, "guess", frontEnd{addr: "198.51.100.66"}); r.status == 429 {
			limited++
		}
		if r := a.session(t, simulate.ContosoID, a.key, frontEnd{addr: fmt.Sprintf("203.0.113.%d", step%200)}); r.status != 201 {
			t.Fatalf("second %d: a customer got %d %s; want 201", step, r.status, r.body)
		}
		a.clock.Advance(time.Second)
	}
	if limited < 200 {
		t.Errorf("the attacker was limited %d times in 300; want most", limited)
	}
}

// Pages loaded before a key refresh keep presenting the old key: refused, but not
// counted, so a refresh on a busy tenant does not lock out the pages with the new key.
func TestWidgetOldKeyAfterARefreshDoesNotCount(t *testing.T) {
	a := newInteractApp(t, nil)
	res := call(t, "POST", a.url+"/api/tenants/"+simulate.ContosoID+"/interact/widget-key/refresh", "")
	var v interact.View
	if err := json.Unmarshal([]byte(res.body), &v); res.status != 200 || err != nil {
		t.Fatalf("refresh: %d %s", res.status, res.body)
	}
	for i := 0; i < 2*interact.DefaultTenantBurst; i++ {
		if r := a.session(t, simulate.ContosoID, a.key, frontEnd{addr: fmt.Sprintf("10.0.%d.%d", i/200, i%200)}); r.status != 401 {
			t.Fatalf("old key, page %d: %d; want 401", i, r.status)
		}
	}
	for i := 0; i < 20; i++ {
		if r := a.session(t, simulate.ContosoID, a.key, frontEnd{addr: "10.0.0.1"}); r.status != 401 {
			t.Fatalf("old key again from one address (%d): %d; want 401, not 429", i, r.status)
		}
	}
	if r := a.session(t, simulate.ContosoID, v.WidgetKey, frontEnd{addr: "10.0.0.1"}); r.status != 201 {
		t.Errorf("new key: %d %s; want 201", r.status, r.body)
	}
}

// fakeACSServer plays Azure Communication Services in one way of failing (or not).
func fakeACSServer(t *testing.T, mode string) *httptest.Server {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch mode {
		case "refuses the key":
			w.WriteHeader(http.StatusUnauthorized)
		case "answers 5xx":
			w.WriteHeader(http.StatusInternalServerError)
		case "never answers":
			select { // until the client gives up (or the test ends)
			case <-r.Context().Done():
			case <-release:
			}
		default: // accepts: an identity with a token, and deletes
			if r.Method == http.MethodDelete {
				w.WriteHeader(http.StatusNoContent)
				return
			}
			w.WriteHeader(http.StatusCreated)
			fmt.Fprint(w, `{"identity":{"id":"8:acs:fake-1"},"accessToken":{"token":"acs-token","expiresOn":"2026-11-25T10:00:00Z"}}`)
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first
	return srv
}

// When the tenant's ACS refuses the key, fails or does not answer, the ACS check and
// a widget session answer 502 or 503 with a code saying which, and nothing of the key,
// the endpoint or the tenant's configuration.
func TestACSFailuresAreBadGatewayOrUnavailable(t *testing.T) {
	accessKey := base64.StdEncoding.EncodeToString([]byte("the-tenant-acs-access-key"))
	for _, tc := range []struct {
		mode        string
		status      int
		code, check string
	}{
		{"accepts", 0, "", interact.CheckOK},
		{"refuses the key", 502, "acs_refused", interact.CheckBadKey},
		{"answers 5xx", 502, "acs_error", interact.CheckFailed},
		{"never answers", 503, "acs_unreachable", interact.CheckUnreachable},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			fake := fakeACSServer(t, tc.mode)
			a := newInteractApp(t, acs.New(&http.Client{Timeout: 300 * time.Millisecond}, nil))
			a.patch(t, simulate.ContosoID, `{"acsConnectionString":"endpoint=`+fake.URL+`;accesskey=`+accessKey+`"}`)
			_, port, _ := net.SplitHostPort(strings.TrimPrefix(fake.URL, "http://"))
			leaks := func(what string, r answer) {
				for _, s := range []string{accessKey, port, "accesskey", "endpoint="} {
					if strings.Contains(r.body, s) {
						t.Errorf("%s: the answer holds %q: %s", what, s, r.body)
					}
				}
			}

			check := call(t, "POST", a.url+"/api/tenants/"+simulate.ContosoID+"/interact/acs/check", "")
			leaks("check", check)
			var cb struct {
				Error  struct{ Code string }
				Status string
			}
			_ = json.Unmarshal([]byte(check.body), &cb)
			wantCheck := tc.status
			if wantCheck == 0 {
				wantCheck = 200
			}
			if check.status != wantCheck || cb.Error.Code != tc.code || cb.Status != tc.check {
				t.Errorf("check: %d %s; want %d, code %q, status %q", check.status, check.body, wantCheck, tc.code, tc.check)
			}

			s := a.session(t, simulate.ContosoID, a.key, frontEnd{addr: "203.0.113.7"})
			leaks("session", s)
			if tc.status == 0 {
				if s.status != 201 || !strings.Contains(s.body, `"token":"acs-token"`) {
					t.Fatalf("session with a working ACS: %d %s", s.status, s.body)
				}
				return
			}
			want := `{"error":{"code":"` + tc.code + `","message":"` + acsMessages[tc.code] + `"}}`
			if s.status != tc.status || s.body != want {
				t.Errorf("session: %d %s; want %d %s", s.status, s.body, tc.status, want)
			}
		})
	}
}
