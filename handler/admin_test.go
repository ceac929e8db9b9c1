package main

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// issuer is a local Entra stand-in: it publishes a signing key and mints tokens.
type issuer struct {
	srv *httptest.Server
	key *rsa.PrivateKey
}

const adminAudience = "api://teamscc-admin-test"

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	is := &issuer{key: key}
	is.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		enc := base64.RawURLEncoding
		json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{"kty": "RSA", "use": "sig", "kid": "k1",
			"n": enc.EncodeToString(key.N.Bytes()), "e": enc.EncodeToString(big.NewInt(int64(key.E)).Bytes())}}})
	}))
	t.Cleanup(is.srv.Close)
	return is
}

func (is *issuer) authority() string { return is.srv.URL + "/" }

// token mints a v2 token for tid with the given claims; ttl < 0 makes it expired.
func (is *issuer) token(t *testing.T, tid, oid string, roles, groups []string, ttl time.Duration) string {
	t.Helper()
	now := time.Now()
	claims := jwt.MapClaims{"iss": is.authority() + tid + "/v2.0", "aud": adminAudience, "tid": tid, "oid": oid, "sub": oid, "ver": "2.0",
		"iat": now.Add(-time.Hour).Unix(), "nbf": now.Add(-time.Hour).Unix(), "exp": now.Add(ttl).Unix()}
	if roles != nil {
		claims["roles"] = roles
	}
	if groups != nil {
		claims["groups"] = groups
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(is.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const (
	tenantT        = "c0a7b0a1-1111-4000-8000-00000000c0de"
	tenantT2       = "fab0fab0-2222-4000-8000-00000000fab0"
	partnerTID     = "9a9a9a9a-0000-4000-8000-000000000009"
	guestTID       = "6e6e6e6e-0000-4000-8000-000000000006"
	groupAdmins    = "aaaaaaaa-0000-4000-8000-000000000001"
	groupPartner   = "bbbbbbbb-0000-4000-8000-000000000002"
	groupOther     = "cccccccc-0000-4000-8000-000000000003"
	groupUnrelated = "dddddddd-0000-4000-8000-000000000004"
	groupSupervise = "eeeeeeee-0000-4000-8000-000000000005"
)

type adminClient struct {
	t    *testing.T
	base string
}

// do sends a request with the bearer token (none if ""), returns status, body, ETag.
func (c adminClient) do(method, path, token, body string, headers ...string) (int, string, string) {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header.Get("ETag")
}

func startAdmin(t *testing.T) (adminClient, *issuer) {
	t.Helper()
	is := newIssuer(t)
	base, _ := startHandler(t, map[string]string{"Storage": "Memory", "AdminAudiences": adminAudience,
		"EntraAuthorityHost": is.authority(), "EntraJwksUrl": is.srv.URL + "/keys"})
	return adminClient{t: t, base: base}, is
}

// The role matrix: every operation by every kind of caller gets the expected status,
// and a refused change writes nothing (same version, no audit entry).
func TestAdminRoleMatrix(t *testing.T) {
	c, is := startAdmin(t)
	hour := time.Hour
	callers := []struct {
		name  string
		token string
	}{
		{"operator", is.token(t, guestTID, "op-1", []string{"Platform.Operator"}, nil, hour)},
		{"partner", is.token(t, partnerTID, "pa-1", nil, []string{groupPartner}, hour)},
		{"otherPartner", is.token(t, partnerTID, "pa-2", nil, []string{groupOther}, hour)},
		{"tenantAdmin", is.token(t, tenantT, "ta-1", nil, []string{groupAdmins}, hour)},
		{"teamOwner", is.token(t, tenantT, "to-1", nil, nil, hour)},
		{"member", is.token(t, tenantT, "me-1", nil, []string{groupUnrelated}, hour)},
		{"guest", is.token(t, guestTID, "gu-1", nil, []string{groupUnrelated}, hour)},
		{"noToken", ""},
		{"expired", is.token(t, guestTID, "op-1", []string{"Platform.Operator"}, nil, -10*time.Minute)}, // beyond the 2 min skew
		{"wrongAudience", func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": is.authority() + guestTID + "/v2.0", "aud": "api://other", "tid": guestTID,
				"oid": "x", "roles": []string{"Platform.Operator"}, "exp": time.Now().Add(time.Hour).Unix()})
			tok.Header["kid"] = "k1"
			s, _ := tok.SignedString(is.key)
			return s
		}()},
	}
	op := callers[0].token
	for _, body := range []string{
		`{"id":"` + tenantT + `","name":"Contoso","security":{"tenantAdminGroup":"` + groupAdmins + `","partnerAdminGroup":"` + groupPartner + `"}}`,
		`{"id":"` + tenantT2 + `","name":"Fabrikam","security":{"partnerAdminGroup":"` + groupOther + `"}}`,
	} {
		if status, b, _ := c.do("POST", "/api/tenants", op, body); status != http.StatusCreated {
			t.Fatalf("operator creates a tenant: %d %s", status, b)
		}
	}
	version := func() string {
		_, _, etag := c.do("GET", "/api/tenants/"+tenantT, op, "")
		return etag
	}
	audits := func() int {
		_, b, _ := c.do("GET", "/api/tenants/"+tenantT+"/audit?limit=1000", op, "")
		var v struct{ Entries []json.RawMessage }
		json.Unmarshal([]byte(b), &v)
		return len(v.Entries)
	}
	T := "/api/tenants/" + tenantT
	type operation struct {
		name, method, path, body string
		change                   bool
	}
	ops := []operation{
		{"read tenant", "GET", T, "", false},
		{"list tenants", "GET", "/api/tenants", "", false},
		{"change company name (non-technical)", "PATCH", T, `{"details":{"companyName":"Contoso AG"}}`, true},
		{"change security group (technical)", "PATCH", T, `{"security":{"tenantAdminGroup":"` + groupAdmins + `"}}`, true},
		{"change partner visibility (tenant-owned)", "PATCH", T, `{"privacy":{"partnerSeesUserIdentifiers":false}}`, true},
		{"change direct invite (operator-only)", "PATCH", T, `{"extensions":{"directInvitePstn":false}}`, true},
		{"read audit", "GET", T + "/audit", "", false},
		{"user-state report", "GET", T + "/reports/user-states", "", false},
		{"turn user-state tracking on (tenant-owned)", "PATCH", T, `{"privacy":{"trackUserStates":true}}`, true},
		{"presence health", "GET", T + "/presence/health", "", false},
		{"presence list", "GET", T + "/presence", "", false},
		{"test UPN", "POST", T + "/presence/test", `{"upn":"someone@contoso.com"}`, false},
		{"parked messages", "GET", "/api/ops/parked", "", false},
		{"create a tenant", "POST", "/api/tenants", "", true},
	}
	// want[op][caller]: the status each caller gets.
	want := map[string][]int{
		//                                         op   pa   pa2  ta   own  mem  gst  none exp  aud
		"read tenant":                                {200, 200, 403, 200, 403, 403, 403, 401, 401, 401},
		"list tenants":                               {200, 200, 200, 200, 200, 200, 200, 401, 401, 401},
		"change company name (non-technical)":        {200, 200, 403, 200, 403, 403, 403, 401, 401, 401},
		"change security group (technical)":          {200, 200, 403, 403, 403, 403, 403, 401, 401, 401},
		"change partner visibility (tenant-owned)":   {200, 403, 403, 200, 403, 403, 403, 401, 401, 401},
		"change direct invite (operator-only)":       {200, 403, 403, 403, 403, 403, 403, 401, 401, 401},
		"read audit":                                 {200, 200, 403, 200, 403, 403, 403, 401, 401, 401},
		"user-state report":                          {200, 200, 403, 200, 403, 403, 403, 401, 401, 401},
		"turn user-state tracking on (tenant-owned)": {200, 403, 403, 200, 403, 403, 403, 401, 401, 401},
		"presence health":                            {200, 200, 403, 200, 403, 403, 403, 401, 401, 401},
		"presence list":                              {200, 200, 403, 200, 403, 403, 403, 401, 401, 401},
		"test UPN":                                   {200, 200, 403, 200, 403, 403, 403, 401, 401, 401},
		"parked messages":                            {200, 403, 403, 403, 403, 403, 403, 401, 401, 401},
		"create a tenant":                            {201, 201, 403, 403, 403, 403, 403, 401, 401, 401},
	}
	for _, o := range ops {
		for i, caller := range callers {
			body := o.body
			var headers []string
			if o.method == "PATCH" {
				headers = []string{"If-Match", version()}
			}
			if o.name == "create a tenant" {
				id := fmt.Sprintf("0000%04d-0000-4000-8000-000000000000", i)
				body = `{"id":"` + id + `","name":"New","security":{"partnerAdminGroup":"` + groupPartner + `"}}`
			}
			v, a := version(), audits()
			status, b, _ := c.do(o.method, o.path, caller.token, body, headers...)
			if status != want[o.name][i] {
				t.Errorf("%s by %s: %d, want %d (%s)", o.name, caller.name, status, want[o.name][i], strings.TrimSpace(b))
			}
			if status >= 400 && o.change && (version() != v || audits() != a) {
				t.Errorf("%s by %s was refused but wrote something", o.name, caller.name)
			}
			if status == 200 && o.change && audits() != a+1 {
				t.Errorf("%s by %s: no audit entry", o.name, caller.name)
			}
		}
	}
	// A refused field is named.
	status, b, _ := c.do("PATCH", T, callers[3].token, `{"details":{"crmId":"X"}}`, "If-Match", version())
	if status != 403 || !strings.Contains(b, `"field":"details.crmId"`) {
		t.Errorf("tenant admin changing a technical field: %d %s", status, b)
	}
	// Lists show only the tenants a caller has a role for.
	// Four tenants now: Contoso and Fabrikam, and two created above by the operator
	// and the partner (naming the partner's group).
	for i, n := range map[int]int{0: 4, 1: 3, 2: 1, 3: 1, 5: 0, 6: 0} {
		_, b, _ := c.do("GET", "/api/tenants", callers[i].token, "")
		var v struct{ Tenants []json.RawMessage }
		json.Unmarshal([]byte(b), &v)
		if len(v.Tenants) != n {
			t.Errorf("%s lists %d tenants, want %d", callers[i].name, len(v.Tenants), n)
		}
	}
}

func TestTenantUpdatesNeedTheirVersionAndExactlyOneConcurrentWins(t *testing.T) {
	c, is := startAdmin(t)
	op := is.token(t, guestTID, "op-1", []string{"Platform.Operator"}, nil, time.Hour)
	if status, b, _ := c.do("POST", "/api/tenants", op, `{"id":"`+tenantT+`","name":"Contoso"}`); status != 201 {
		t.Fatalf("create: %d %s", status, b)
	}
	T := "/api/tenants/" + tenantT
	if status, _, _ := c.do("PATCH", T, op, `{"name":"X"}`); status != http.StatusPreconditionRequired {
		t.Fatalf("PATCH without If-Match: %d, want 428", status)
	}
	_, _, etag := c.do("GET", T, op, "")
	won, stale := racePatches(t, c, T, op, etag, func(i int) string { return fmt.Sprintf(`{"details":{"crmId":"writer-%d"}}`, i) })
	if won != 1 || stale != 7 {
		t.Fatalf("8 updates on one version: %d won, %d got 412; want exactly one winner", won, stale)
	}
	for _, tc := range []struct{ body, field string }{
		{`{"details":{"technicalContact":{"phone":"044 123"}}}`, "details.technicalContact.phone"},
		{`{"extensions":{"outboundCap":51}}`, "extensions.outboundCap"},
		{`{"colour":"red"}`, "colour"},
	} {
		_, _, etag = c.do("GET", T, op, "")
		status, b, newTag := c.do("PATCH", T, op, tc.body, "If-Match", etag)
		if status != 400 || !strings.Contains(b, `"field":"`+tc.field+`"`) {
			t.Errorf("%s: %d %s, want 400 naming %s", tc.body, status, b, tc.field)
		}
		if _, _, after := c.do("GET", T, op, ""); after != etag || newTag != "" && newTag == after && status != 400 {
			t.Errorf("%s: a refused change moved the version", tc.body)
		}
	}
}

func TestSecretsAreWriteOnlyAndNeverLogged(t *testing.T) {
	c, is := startAdmin(t)
	op := is.token(t, guestTID, "op-1", []string{"Platform.Operator"}, nil, time.Hour)
	c.do("POST", "/api/tenants", op, `{"id":"`+tenantT+`","name":"Contoso"}`)
	_, _, etag := c.do("GET", "/api/tenants/"+tenantT, op, "")
	status, b, _ := c.do("PATCH", "/api/tenants/"+tenantT, op, `{"presence":{"account1":"p1@contoso.com","account1Password":"hunter2-secret"}}`, "If-Match", etag)
	if status != 200 || strings.Contains(b, "hunter2") || !strings.Contains(b, `"presence-account-1-password":true`) {
		t.Fatalf("set a password: %d %s", status, b)
	}
	_, a, _ := c.do("GET", "/api/tenants/"+tenantT+"/audit", op, "")
	if strings.Contains(a, "hunter2") || !strings.Contains(a, `"presence.account1Password":"***"`) {
		t.Fatalf("audit: %s", a)
	}
}

func TestTenantDeletionNeedsYesStopsRoutingAndIsIdempotent(t *testing.T) {
	c, is := startAdmin(t)
	op := is.token(t, guestTID, "op-1", []string{"Platform.Operator"}, nil, time.Hour)
	c.do("POST", "/api/tenants", op, `{"id":"`+tenantT+`","name":"Contoso"}`)
	T := "/api/tenants/" + tenantT
	for _, body := range []string{`{}`, `{"confirm":"yes"}`, `{"confirm":"YES","extra":1}`, `nope`} {
		if status, _, _ := c.do("DELETE", T, op, body); status != 400 {
			t.Errorf("DELETE %s: %d, want 400", body, status)
		}
	}
	if _, b, _ := c.do("GET", T, op, ""); strings.Contains(b, `"deleted":true`) {
		t.Fatal("a refused deletion deleted")
	}
	for i := 0; i < 2; i++ {
		if status, b, _ := c.do("DELETE", T, op, `{"confirm":"YES"}`); status != 202 || !strings.Contains(b, "PendingDeletion") {
			t.Fatalf("DELETE (%d): %d %s", i, status, b)
		}
	}
	if _, b, _ := c.do("GET", T, op, ""); !strings.Contains(b, `"deleted":true`) {
		t.Fatalf("tenant not marked: %s", b)
	}
	_, a, _ := c.do("GET", T+"/audit", op, "")
	if strings.Count(a, `"operation":"tenant.delete"`) != 1 {
		t.Fatalf("deletion audited %d times, want once: %s", strings.Count(a, "tenant.delete"), a)
	}
}

// Every HTTP function but the self-authenticating ones refuses a caller without a
// token, so a new admin route cannot be added without the guard.
func TestEveryAdminRouteNeedsAToken(t *testing.T) {
	c, _ := startAdmin(t)
	guid := "0d1f6b1e-7c3a-4c59-9a5e-1f2a3b4c5d6e"
	checked := 0
	for name, bs := range readFunctionJSON(t) {
		trigger := bs[0]
		if trigger.Type != "httpTrigger" || selfAuthenticating[name] {
			continue
		}
		path := "/api/" + trigger.Route
		for strings.Contains(path, "{") {
			i, j := strings.Index(path, "{"), strings.Index(path, "}")
			path = path[:i] + guid + path[j+1:]
		}
		for _, m := range trigger.Methods {
			status, b, _ := c.do(strings.ToUpper(m), path, "", `{}`)
			if status != http.StatusUnauthorized {
				t.Errorf("%s %s %s without a token: %d %s, want 401", name, strings.ToUpper(m), path, status, b)
			}
			checked++
		}
	}
	if checked < 15 {
		t.Fatalf("only %d routes checked", checked)
	}
}

// racePatches sends 8 PATCHes based on the same ETag at once and counts the 200s and
// 412s (anything else fails the test).
func racePatches(t *testing.T, c adminClient, path, token, etag string, body func(i int) string) (won, stale int) {
	t.Helper()
	var wg sync.WaitGroup
	statuses := make(chan int, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, _, _ := c.do("PATCH", path, token, body(i), "If-Match", etag)
			statuses <- status
		}()
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		switch s {
		case 200:
			won++
		case 412:
			stale++
		default:
			t.Errorf("concurrent PATCH: %d", s)
		}
	}
	return won, stale
}
