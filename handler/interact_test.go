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
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/teamscc/teamscc/shared/interact"
	"github.com/teamscc/teamscc/shared/simulate"
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
