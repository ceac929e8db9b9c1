package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/golang-jwt/jwt/v5"

	"github.com/teamscc/teamscc/shared/access"
	"github.com/teamscc/teamscc/shared/config"
	"github.com/teamscc/teamscc/shared/entra"
	"github.com/teamscc/teamscc/shared/inmem"
	"github.com/teamscc/teamscc/shared/simulate"
	"github.com/teamscc/teamscc/shared/tenant"
)

// portalApp is the whole app over HTTP in Azure mode's admin authentication (tokens
// from a fake Entra, roles from the tenant's groups), on the simulated tenants with
// the fake calling platform playing Teams (callsApp), so a test can place a call.
type portalApp struct {
	*callsApp
	is  *issuer
	api adminClient
	op  string // tokens: a platform operator, a partner admin of Contoso
	pa  string
}

func newPortalApp(t *testing.T) *portalApp {
	t.Helper()
	is := newIssuer(t)
	a := newCallsAppTuned(t, func(d *deps) {
		v, err := entra.NewValidator(entra.Options{AuthorityHost: is.authority(), JWKSURL: is.srv.URL + "/keys"})
		if err != nil {
			t.Fatal(err)
		}
		d.admin = newAdminAuth([]string{adminAudience}, v, access.Resolver{OperatorRole: "Platform.Operator"}, d.tenants)
	})
	if _, err := a.store.UpdateTenant(context.Background(), simulate.ContosoID, func(tn *tenant.Tenant) error {
		tn.Security.PartnerAdminGroup, tn.Security.TenantAdminGroup = groupPartner, groupAdmins
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return &portalApp{callsApp: a, is: is, api: adminClient{t: t, base: a.base},
		op: is.token(t, guestTID, "op-1", []string{"Platform.Operator"}, nil, time.Hour),
		pa: is.token(t, partnerTID, "pa-1", nil, []string{groupPartner}, time.Hour)}
}

const contoso = "#/t/" + simulate.ContosoID

// The portal in a browser against the app with Entra authentication: every page,
// an edit with If-Match, a stale edit's 412, a partner's masked view, the live queue
// as a call arrives, keyboard use. The subtests share the app and the browser, in
// order.
func TestPortalInABrowser(t *testing.T) {
	browser := newBrowser(t)
	a := newPortalApp(t)

	t.Run("every page loads without console errors", func(t *testing.T) {
		tb := newTab(t, browser, a.base, tokenInit(a.op))
		pages := []struct{ fragment, sel, want string }{
			{"#/tenants", "main table", "Contoso (simulated)"},
			{contoso, "main h1", "Contoso (simulated)"},
			{contoso + "/services", "main table", "Sales"},
			{contoso + "/services/sales", "main legend", "General"},
			{contoso + "/services/support", `section[aria-labelledby="service-agents"]`, "Add a person"},
			{contoso + "/agents", "main table", "Agent 01"},
			{contoso + "/agents/" + simulate.AgentID(simulate.ContosoID, 0), "main h1", "Agent 01"},
			{contoso + "/presence", "main dl", "Not polled yet"},
			{contoso + "/interact", "main form", "Allowed origins"},
			{contoso + "/outbound", "main table", "No outbound task is scheduled."},
			{contoso + "/live/sales", "main .summary", "0 waiting"},
			{"#/ops/parked", "main table", "No message is parked."},
		}
		for i, p := range pages {
			if i == 0 {
				tb.open(p.fragment)
			} else {
				tb.goTo(p.fragment)
			}
			if got := tb.text(p.sel); !strings.Contains(got, p.want) {
				t.Errorf("%s: %s reads %q, want %q in it", p.fragment, p.sel, got, p.want)
			}
			// Every control has a label (or an accessible name of its own).
			if unlabelled := evalIn[[]string](tb, `Array.from(document.querySelectorAll('input, select, textarea'))
				.filter((c) => c.type !== 'hidden' && c.labels.length === 0 && !c.getAttribute('aria-label'))
				.map((c) => c.name || c.id || c.outerHTML)`); len(unlabelled) > 0 {
				t.Errorf("%s: controls without a label: %v", p.fragment, unlabelled)
			}
		}
		if got := tb.text(`nav.sections a[aria-current="page"]`); got != "Parked messages" {
			t.Errorf("the navigation marks %q as the current page, want Parked messages", got)
		}
		if n := evalIn[int](tb, `document.querySelectorAll('nav.sections a').length`); n != 9 {
			t.Errorf("on the parked messages the navigation has %d links, want 9 (the last tenant's sections kept)", n)
		}
		tb.goTo(contoso + "/services/sales")
		if v := evalIn[string](tb, `document.querySelector('[name="distribution.strategy"]').value`); v != "LongestIdle" {
			t.Errorf("sales' strategy shows %q, want LongestIdle (the default it has)", v)
		}
		tb.noConsoleErrors()
	})

	t.Run("keyboard", func(t *testing.T) {
		tb := newTab(t, browser, a.base, tokenInit(a.op))
		tb.open("#/tenants")
		tb.do("tab to the skip link", chromedp.KeyEvent(kb.Tab))
		if cls := evalIn[string](tb, `document.activeElement.className`); cls != "skip" {
			t.Fatalf("the first Tab lands on %q, want the skip link", cls)
		}
		if top := evalIn[float64](tb, `document.activeElement.getBoundingClientRect().top`); top < 0 {
			t.Errorf("the focused skip link is off screen (top %v)", top)
		}
		tb.do("follow the skip link", chromedp.KeyEvent(kb.Enter))
		if tag := evalIn[string](tb, `document.activeElement.tagName`); tag != "H1" {
			t.Errorf("the skip link moves the focus to %s, want the page's heading", tag)
		}
		// Tab on to the first link of the table and open the tenant with Enter.
		for range 20 {
			tb.do("tab", chromedp.KeyEvent(kb.Tab))
			if evalIn[bool](tb, `!!document.activeElement.closest('main table a')`) {
				break
			}
		}
		if style := evalIn[string](tb, `getComputedStyle(document.activeElement).outlineStyle`); style == "none" {
			t.Error("the focused link shows no focus outline")
		}
		tb.do("open the tenant with Enter", chromedp.KeyEvent(kb.Enter))
		tb.waitRendered(contoso)
		if tag := evalIn[string](tb, `document.activeElement.tagName`); tag != "H1" {
			t.Errorf("after a navigation the focus is on %s, want the new page's heading", tag)
		}
		tb.noConsoleErrors()
	})

	t.Run("an edit round-trips with If-Match", func(t *testing.T) {
		tb := newTab(t, browser, a.base, tokenInit(a.op))
		before := a.tenant(t)
		tb.open(contoso)
		tb.setField("details.companyName", "Contoso Ltd")
		tb.setField("details.technicalContact.phone", "+41441234567")
		tb.click(`main form button[type="submit"]`)
		tb.waitVisible(`.form-status .notice-success`)
		if got := tb.text(`.form-status .notice-success`); !strings.Contains(got, "Saved 2 changes") {
			t.Errorf("after saving: %q", got)
		}
		after := a.tenant(t)
		if after.Details.CompanyName != "Contoso Ltd" || after.Details.Contact.Phone != "+41441234567" || after.Version != before.Version+1 {
			t.Fatalf("stored after the save: %+v (version %d, was %d)", after.Details, after.Version, before.Version)
		}
		// The form shows what was stored, and a second save is based on the new version.
		tb.setField("details.crmId", "CRM-1")
		tb.click(`main form button[type="submit"]`)
		tb.poll("the second save", `document.querySelector('.form-status').innerText.includes('version `+strconv.FormatInt(before.Version+2, 10)+`')`)
		if got := a.tenant(t); got.Details.CRMID != "CRM-1" || got.Details.CompanyName != "Contoso Ltd" {
			t.Errorf("after the second save: %+v", got.Details)
		}
		tb.noConsoleErrors()
	})

	t.Run("a stale edit shows the 412 and reloads", func(t *testing.T) {
		tb := newTab(t, browser, a.base, tokenInit(a.op))
		tb.open(contoso)
		// Another admin changes the tenant after the page read it.
		cur := a.tenant(t)
		if status, b, _ := a.api.do("PATCH", "/api/tenants/"+simulate.ContosoID, a.op, `{"details":{"crmId":"CRM-OTHER"}}`,
			"If-Match", `"`+strconv.FormatInt(cur.Version, 10)+`"`); status != http.StatusOK {
			t.Fatalf("the other admin's change: %d %s", status, b)
		}
		tb.setField("details.companyName", "Mine")
		tb.click(`main form button[type="submit"]`)
		tb.waitVisible(`.form-status [role="alert"]`)
		if got := tb.text(`.form-status [role="alert"]`); !strings.Contains(got, "Someone else changed this tenant") {
			t.Errorf("the 412 reads %q", got)
		}
		if got := a.tenant(t); got.Details.CompanyName == "Mine" || got.Details.CRMID != "CRM-OTHER" {
			t.Fatalf("a stale change was written: %+v", got.Details)
		}
		if focused := evalIn[string](tb, `document.activeElement.textContent`); focused != "Reload the latest version" {
			t.Errorf("after the 412 the focus is on %q, want the reload button", focused)
		}
		tb.click(`.form-status [role="alert"] button`)
		tb.poll("the reload", `document.querySelector('[name="details.crmId"]').value === 'CRM-OTHER'`)
		if v := evalIn[string](tb, `document.querySelector('[name="details.companyName"]').value`); v != "Contoso Ltd" {
			t.Errorf("after the reload the company name shows %q, want the stored Contoso Ltd", v)
		}
		tb.setField("details.companyName", "Mine")
		tb.click(`main form button[type="submit"]`)
		tb.waitVisible(`.form-status .notice-success`)
		if got := a.tenant(t); got.Details.CompanyName != "Mine" || got.Details.CRMID != "CRM-OTHER" {
			t.Errorf("after the reload and a new save: %+v", got.Details)
		}
		tb.noConsoleErrors("412")
	})

	t.Run("a partner sees masked ids", func(t *testing.T) {
		tb := newTab(t, browser, a.base, tokenInit(a.pa))
		tb.open(contoso + "/agents")
		first := tb.text(`main tr[data-agent] td`)
		if first != access.Mask("Agent 01") {
			t.Errorf("the first agent reads %q for a partner, want %q", first, access.Mask("Agent 01"))
		}
		page := tb.mainText()
		seesNone(t, "a partner", "agents page", page, "Agent 01", "agent01@contoso.example", simulate.AgentID(simulate.ContosoID, 0))
		tb.goTo(contoso + "/live/sales")
		tb.waitVisible(`main tr[data-agent]`)
		seesNone(t, "a partner", "live queue", tb.mainText(), "Agent 01", "agent01@contoso.example")
		tb.goTo("#/ops/parked")
		if got := tb.text(`main [role="alert"]`); !strings.Contains(got, "Your role does not allow this here") {
			t.Errorf("a partner's parked messages read %q, want a polite refusal", got)
		}
		tb.noConsoleErrors("403")
	})

	t.Run("Interact settings save and the widget key refreshes", func(t *testing.T) {
		tb := newTab(t, browser, a.base, tokenInit(a.op))
		tb.open(contoso + "/interact")
		// A value out of range is named beside its field, and nothing is written.
		tb.setField("recoveryTimeoutSeconds", "99")
		tb.click(`main form button[type="submit"]`)
		tb.waitVisible(`[name="recoveryTimeoutSeconds"][aria-invalid="true"]`)
		if got := tb.text(`.field:has([name="recoveryTimeoutSeconds"]) .field-error`); !strings.Contains(got, "5..60") {
			t.Errorf("the field's error reads %q", got)
		}
		if focused := evalIn[string](tb, `document.activeElement.name`); focused != "recoveryTimeoutSeconds" {
			t.Errorf("after the refusal the focus is on %q, want the field", focused)
		}
		tb.setField("recoveryTimeoutSeconds", "30")
		tb.click(`[name="enabled"]`)
		tb.click(`main form button[type="submit"]`)
		tb.waitVisible(`.form-status .notice-success`)
		tb.waitVisible(`[data-testid="widget-key"]`)
		first := tb.text(`[data-testid="widget-key"]`)
		tb.click(`main button.danger`) // Refresh widget key
		tb.click(`dialog[open] button[value="yes"]`)
		tb.poll("a new key", `document.querySelector('[data-testid="widget-key"]').textContent !== `+jsString(first))
		var v struct {
			Enabled                bool
			RecoveryTimeoutSeconds int
			WidgetKey              string
		}
		_, b, _ := a.api.do("GET", "/api/tenants/"+simulate.ContosoID+"/interact", a.op, "")
		if err := json.Unmarshal([]byte(b), &v); err != nil || !v.Enabled || v.RecoveryTimeoutSeconds != 30 || v.WidgetKey != tb.text(`[data-testid="widget-key"]`) {
			t.Errorf("stored: %s; the page shows %q", b, tb.text(`[data-testid="widget-key"]`))
		}
		tb.noConsoleErrors("400")
	})

	t.Run("outbound tasks are scheduled, listed and cancelled", func(t *testing.T) {
		tb := newTab(t, browser, a.base, tokenInit(a.op))
		tb.open(contoso + "/outbound")
		tb.do("choose sales", chromedp.Evaluate[chromedp.Void](`(() => { const s = document.getElementById('outbound-service');
			s.value = 'sales'; s.dispatchEvent(new Event('change')); })()`))
		tb.poll("sales' tasks", `document.querySelector('main caption').textContent.endsWith('of Sales')`)
		tb.setField("customer", "+41441234567")
		tb.setField("taskId", "portal-1")
		due := a.clk.Now().Add(time.Hour).Format(time.RFC3339)
		tb.do("the due time", chromedp.Evaluate[chromedp.Void](`(() => { const d = new Date(`+jsString(due)+`); const p = (n) => String(n).padStart(2, '0');
			document.querySelector('[name="due"]').value = d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + 'T' + p(d.getHours()) + ':' + p(d.getMinutes()); })()`))
		tb.click(`main form button[type="submit"]`)
		tb.waitVisible(`main tr[data-task="portal-1"]`)
		if got := tb.text(`main tr[data-task="portal-1"]`); !strings.Contains(got, "Scheduled") || !strings.Contains(got, "+41441234567") {
			t.Errorf("the scheduled task reads %q", got)
		}
		if _, b, _ := a.api.do("GET", "/api/tenants/"+simulate.ContosoID+"/services/sales/outbound", a.op, ""); !strings.Contains(b, `"taskId":"portal-1"`) ||
			!strings.Contains(b, `"due":"`+due+`"`) {
			t.Errorf("stored: %s, want portal-1 due %s", b, due)
		}
		tb.click(`main tr[data-task="portal-1"] button`)
		tb.click(`dialog[open] button[value="yes"]`)
		tb.do("the task gone", chromedp.WaitNotPresent(chromedp.CSS(`main tr[data-task="portal-1"]`)))
		if _, b, _ := a.api.do("GET", "/api/tenants/"+simulate.ContosoID+"/services/sales/outbound", a.op, ""); strings.Contains(b, "portal-1") {
			t.Errorf("after cancelling: %s", b)
		}
		tb.noConsoleErrors()
	})

	t.Run("the live queue updates when a call arrives", func(t *testing.T) {
		tb := newTab(t, browser, a.base, tokenInit(a.op))
		tb.open(contoso + "/live/sales")
		tb.poll("an empty queue", `document.querySelector('.summary').textContent.startsWith('0 waiting · 0 ringing · 0 connected')`)
		id := a.fake.PlaceCall(simulate.ContosoID, caller, salesLine)
		a.settle(t)
		must(t, a.fake.FinishPrompt(id)) // the greeting: then the call queues and an agent rings
		a.settle(t)
		agent, leg := a.ringingLeg(t, simulate.ContosoID, id)
		name := agentName(t, a, agent)
		tb.waitVisible(`main tr[data-state="Offered"]`)
		if got := tb.text(`main tr[data-state="Offered"]`); !strings.Contains(got, name) || !strings.Contains(got, "Ringing") {
			t.Errorf("the ringing task reads %q, want %s ringing", got, name)
		}
		if got := tb.text(`main tr[data-phase="Ringing"] td`); got != name {
			t.Errorf("the ringing agent reads %q, want %s", got, name)
		}
		// The agents page shows them ringing too (their phase in every service).
		agents := newTab(t, browser, a.base, tokenInit(a.op))
		agents.open(contoso + "/agents")
		if got := agents.text(`main tr[data-agent="` + agent + `"]`); !strings.Contains(got, "Ringing until") {
			t.Errorf("on the agents page the ringing agent reads %q", got)
		}
		agents.noConsoleErrors()
		// The explanation is one click away.
		tb.click(`main tr[data-state="Offered"] button`)
		tb.do("the explanation", chromedp.WaitVisible(chromedp.CSS(`dialog[open] table.explain`)))
		if got := tb.text(`dialog[open] .explain-summary`); !strings.Contains(got, "chosen: "+name) {
			t.Errorf("the explanation says %q, want %s chosen", got, name)
		}
		if got := tb.text(`dialog[open] .timeline`); !strings.Contains(got, "queued") {
			t.Errorf("the call's timeline reads %q", got)
		}
		tb.do("close the explanation", chromedp.KeyEvent(kb.Escape), chromedp.WaitNotPresent(chromedp.CSS(`dialog[open]`)))
		// The agent answers: the queue shows them connected, without a reload.
		must(t, a.fake.Answer(leg))
		a.settle(t)
		tb.waitVisible(`main tr[data-state="Connected"]`)
		if got := tb.text(`main tr[data-state="Connected"]`); !strings.Contains(got, name) {
			t.Errorf("the connected task reads %q, want %s", got, name)
		}
		if got := tb.text(`main .summary`); !strings.HasPrefix(got, "0 waiting · 0 ringing · 1 connected") {
			t.Errorf("the summary reads %q", got)
		}
		tb.noConsoleErrors()
	})
}

func (a *portalApp) tenant(t *testing.T) tenant.Tenant {
	t.Helper()
	tn, err := a.store.GetTenant(context.Background(), simulate.ContosoID)
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

func agentName(t *testing.T, a *portalApp, id string) string {
	t.Helper()
	agents, err := a.store.ListAgents(context.Background(), simulate.ContosoID)
	if err != nil {
		t.Fatal(err)
	}
	for _, ag := range agents {
		if ag.ID == id {
			return ag.DisplayName
		}
	}
	t.Fatalf("no agent %s", id)
	return ""
}

// Locally (`make run`) the portal needs no sign-in: the API takes its calls as a
// platform operator's, and the page says so.
func TestPortalRunsLocallyWithoutSignIn(t *testing.T) {
	browser := newBrowser(t)
	base := startLocal(t, map[string]string{"LogLevel": "warn"})
	tb := newTab(t, browser, base, "")
	tb.open("#/tenants")
	if got := tb.text("main table"); !strings.Contains(got, "Contoso (simulated)") || !strings.Contains(got, "Fabrikam (simulated)") {
		t.Errorf("the local tenants: %q", got)
	}
	if got := tb.text("#who"); !strings.Contains(got, "Local runner") {
		t.Errorf("the header reads %q, want it to say the local runner acts as an operator", got)
	}
	if n := evalIn[int](tb, `document.querySelectorAll('#who button').length`); n != 0 {
		t.Errorf("%d sign-in buttons locally, want none", n)
	}
	tb.goTo(contoso + "/live/sales")
	tb.waitVisible(`main tr[data-agent]`)
	tb.noConsoleErrors()
}

// fakeLogin plays Entra's authorize and token endpoints for one public client:
// the authorize request must carry a PKCE S256 challenge and comes straight back
// with a code; the token request must prove the verifier and gets a token the
// admin API accepts.
type fakeLogin struct {
	t        *testing.T
	srv      *httptest.Server
	is       *issuer // signs the tokens (its key, this server's authority)
	clientID string
	mu       sync.Mutex
	codes    map[string]url.Values // code → the authorize request
	grants   []string              // the grant types of the token requests, in order
}

func newFakeLogin(t *testing.T, clientID string) *fakeLogin {
	f := &fakeLogin{t: t, clientID: clientID, codes: map[string]url.Values{}}
	base := newIssuer(t) // the key
	mux := http.NewServeMux()
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		base.srv.Config.Handler.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /organizations/oauth2/v2.0/authorize", f.authorize)
	mux.HandleFunc("POST /organizations/oauth2/v2.0/token", f.token)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	f.is = &issuer{srv: f.srv, key: base.key}
	return f
}

func (f *fakeLogin) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k, want := range map[string]string{"client_id": f.clientID, "response_type": "code", "code_challenge_method": "S256", "response_mode": "query"} {
		if q.Get(k) != want {
			http.Error(w, k+": "+q.Get(k), http.StatusBadRequest)
			return
		}
	}
	if !strings.Contains(" "+q.Get("scope")+" ", " "+f.clientID+"/.default ") || q.Get("code_challenge") == "" || q.Get("state") == "" {
		http.Error(w, "scope, code_challenge and state are required", http.StatusBadRequest)
		return
	}
	code := "code-" + q.Get("state")
	f.mu.Lock()
	f.codes[code] = q
	f.mu.Unlock()
	back, _ := url.Parse(q.Get("redirect_uri"))
	v := url.Values{"code": {code}, "state": {q.Get("state")}}
	back.RawQuery = v.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

func (f *fakeLogin) token(w http.ResponseWriter, r *http.Request) {
	// The page calls from its own origin: Entra answers SPA token requests with CORS.
	w.Header().Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
	fail := func(why string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant", "error_description": why})
	}
	if err := r.ParseForm(); err != nil {
		fail(err.Error())
		return
	}
	form := r.PostForm
	f.mu.Lock()
	auth, ok := f.codes[form.Get("code")]
	delete(f.codes, form.Get("code"))
	f.grants = append(f.grants, form.Get("grant_type"))
	refresh := "refresh-" + strconv.Itoa(len(f.grants))
	f.mu.Unlock()
	sum := sha256.Sum256([]byte(form.Get("code_verifier")))
	switch {
	case form.Get("client_id") != f.clientID || !strings.Contains(" "+form.Get("scope")+" ", " "+f.clientID+"/.default "):
		fail("client_id and scope")
	case form.Get("grant_type") == "refresh_token":
		if form.Get("refresh_token") != "refresh-1" {
			fail("unknown refresh token")
			return
		}
		f.issue(w, refresh)
	case form.Get("grant_type") != "authorization_code":
		fail("grant_type")
	case !ok:
		fail("unknown or used code")
	case form.Get("redirect_uri") != auth.Get("redirect_uri"):
		fail("redirect_uri differs from the authorize request's")
	case base64.RawURLEncoding.EncodeToString(sum[:]) != auth.Get("code_challenge"):
		fail("code_verifier does not match the code_challenge")
	default:
		f.issue(w, refresh)
	}
}

// issue answers a token request with an operator's token for the app itself.
func (f *fakeLogin) issue(w http.ResponseWriter, refresh string) {
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": f.is.authority() + guestTID + "/v2.0", "aud": f.clientID,
		"tid": guestTID, "oid": "op-7", "name": "Olivia Operator", "roles": []string{"Platform.Operator"}, "ver": "2.0",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix()})
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(f.is.key)
	if err != nil {
		f.t.Error(err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"access_token": s, "token_type": "Bearer", "expires_in": 3600, "refresh_token": refresh})
}

func (f *fakeLogin) grantTypes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.grants...)
}

// Sign-in with Entra as the portal does it: the authorization-code flow with PKCE
// against the tenant-independent endpoint, as the app's own registration asking for
// a token for itself; the token goes to sessionStorage and the API accepts it; the
// code leaves the address bar; a token about to expire is renewed with the refresh
// token; signing out forgets it.
func TestPortalSignsInWithTheAuthorizationCodeFlowAndPKCE(t *testing.T) {
	browser := newBrowser(t)
	const clientID = "5e1f0c1d-0000-4000-8000-00000000c11e"
	login := newFakeLogin(t, clientID)
	// The app as Azure runs it, with its presence reader simulated (a real Graph
	// adapter would insist on an https authority).
	cfg, err := config.Load(envFrom(map[string]string{"GraphClientId": clientID, "AdminAudiences": clientID,
		"EntraAuthorityHost": login.is.authority(), "EntraJwksUrl": login.srv.URL + "/keys"}))
	if err != nil {
		t.Fatal(err)
	}
	v, err := entra.NewValidator(entra.Options{AuthorityHost: cfg.Graph.AuthorityHost, JWKSURL: cfg.Interact.JWKSURL})
	if err != nil {
		t.Fatal(err)
	}
	s := inmem.New()
	app := newApp(cfg, deps{tenants: s, secrets: s, presences: s, parked: s, userStates: s, interact: s, routes: s, audit: s, calls: s,
		sender: unwiredSender{}, reader: simulate.NewReader(nil), now: time.Now,
		admin: newAdminAuth(splitList(cfg.Values["AdminAudiences"]), v, access.Resolver{OperatorRole: cfg.Values["OperatorAppRole"]}, s)},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	srv := httptest.NewServer(app)
	t.Cleanup(srv.Close)
	base := srv.URL
	if err := s.PutTenant(context.Background(), tenant.New(tenantT, "Contoso")); err != nil {
		t.Fatal(err)
	}
	api := adminClient{t: t, base: base}
	op := login.is.token(t, guestTID, "op-1", []string{"Platform.Operator"}, nil, time.Hour) // aud is adminAudience: refused
	if status, _, _ := api.do("GET", "/api/tenants", op, ""); status != http.StatusUnauthorized {
		t.Fatalf("a token for another audience: %d, want 401", status)
	}
	var pc portalConfig
	if getJSON(t, base+"/api/portal/config.json", &pc) != http.StatusOK || pc.Mode != "entra" || pc.ClientID != clientID ||
		pc.Authority != login.srv.URL+"/organizations" || len(pc.Warnings) != 0 {
		t.Fatalf("config.json: %+v", pc)
	}

	tb := newTab(t, browser, base, "")
	tb.open("#/tenants")
	if got := tb.text("main h1"); got != "Sign in" {
		t.Fatalf("before signing in the page shows %q", got)
	}
	tb.click(`main button.primary`) // to the fake Entra and back with a code
	tb.waitRendered("#/tenants")
	if got := tb.text("main table"); !strings.Contains(got, "Contoso") {
		t.Errorf("signed in, the tenants read %q", got)
	}
	if got := tb.text("#who"); !strings.Contains(got, "Signed in as Olivia Operator") {
		t.Errorf("the header reads %q after signing in", got)
	}
	if loc := evalIn[string](tb, `location.href`); strings.Contains(loc, "code=") || !strings.HasSuffix(loc, "/api/portal/#/tenants") {
		t.Errorf("after signing in the address is %s: the code must not stay, the page must", loc)
	}
	if stored := evalIn[string](tb, `sessionStorage.getItem('teamscc.portal.token') || ''`); !strings.Contains(stored, "refresh-1") {
		t.Errorf("the token is not in sessionStorage: %q", stored)
	}
	if g := login.grantTypes(); len(g) != 1 || g[0] != "authorization_code" {
		t.Errorf("token requests: %v, want one authorization_code", g)
	}
	// A token about to expire is renewed with the refresh token before a call.
	tb.do("let the token expire", chromedp.Evaluate[chromedp.Void](`(() => {
		const t = JSON.parse(sessionStorage.getItem('teamscc.portal.token'));
		t.expiresAt = Date.now() + 1000;
		sessionStorage.setItem('teamscc.portal.token', JSON.stringify(t));
	})()`))
	tb.goTo("#/t/" + tenantT)
	if got := tb.text("main h1"); got != "Contoso" {
		t.Errorf("with a renewed token the tenant reads %q", got)
	}
	if g := login.grantTypes(); len(g) != 2 || g[1] != "refresh_token" {
		t.Errorf("token requests: %v, want the refresh second", g)
	}
	if stored := evalIn[string](tb, `sessionStorage.getItem('teamscc.portal.token') || ''`); !strings.Contains(stored, "refresh-2") {
		t.Errorf("the renewed token is not in sessionStorage: %q", stored)
	}
	tb.click(`#who button`) // sign out
	tb.waitVisible(`main button.primary`)
	if stored := evalIn[string](tb, `sessionStorage.getItem('teamscc.portal.token') || ''`); stored != "" {
		t.Errorf("after signing out sessionStorage still holds %q", stored)
	}
	tb.noConsoleErrors()
}

// An admin builds a contact center from the browser, against the local runner and
// its simulated directory: a tenant is created; a skill-based service is created (a broken id is named beside
// its field first), a person found in the directory is added as its agent, their
// skills and duty are changed on their page, they are removed again; a Teams-based
// service naming a Team opens with the Team's members as agents.
func TestPortalManagesServicesAndAgents(t *testing.T) {
	browser := newBrowser(t)
	base := startLocal(t, map[string]string{"LogLevel": "warn"})
	api := base + "/api/tenants/" + simulate.ContosoID
	tb := newTab(t, browser, base, "")

	// A new customer tenant first.
	const tailspin = "7a11591e-0000-4000-8000-000000007a11"
	tb.open("#/tenants")
	tb.setField("id", tailspin)
	tb.setField("name", "Tailspin")
	tb.click(`form[aria-labelledby="new-tenant"] button[type="submit"]`)
	tb.waitRendered("#/t/" + tailspin)
	if got := tb.text("#banner"); !strings.Contains(got, "Tenant Tailspin was created") {
		t.Errorf("after creating a tenant the banner reads %q", got)
	}
	if got := tb.text("#tenant-select"); !strings.Contains(got, "Tailspin") {
		t.Errorf("the tenant picker offers %q, want the new tenant in it", got)
	}

	tb.goTo(contoso + "/services")
	tb.setField("id", "VIP line")
	tb.setField("name", "VIP")
	tb.do("choose skill-based", chromedp.SetValue(chromedp.CSS(field("type")), "SkillBased"))
	tb.click(`form[aria-labelledby="new-service"] button[type="submit"]`)
	tb.waitVisible(`[name="id"][aria-invalid="true"]`)
	if got := tb.text(`.field:has([name="id"]) .field-error`); !strings.Contains(got, "id") {
		t.Errorf("a broken id reads %q beside the field", got)
	}
	tb.setField("id", "vip")
	tb.click(`form[aria-labelledby="new-service"] button[type="submit"]`)
	tb.waitRendered(contoso + "/services/vip")
	if got := tb.text("#banner"); !strings.Contains(got, "Service VIP was created") {
		t.Errorf("after creating, the banner reads %q", got)
	}
	tb.waitVisible(`#service-agents`)
	if got := tb.text(`section[aria-labelledby="service-agents"] table`); !strings.Contains(got, "No agents yet") {
		t.Errorf("a new service's agents: %q", got)
	}

	// The directory suggests people as the admin types; one is added.
	tb.do("type a name", chromedp.SendKeys(chromedp.CSS(field("user")), "New Hire"))
	tb.poll("suggestions from the directory", `document.querySelectorAll('datalist option').length >= 2`)
	if v := evalIn[string](tb, `document.querySelector('datalist option').value`); !strings.HasSuffix(v, "@contoso.example") {
		t.Errorf("the first suggestion is %q, want a UPN", v)
	}
	tb.setField("user", "newhire1@contoso.example")
	tb.click(`form.inline-form button[type="submit"]`)
	tb.waitVisible(`section[aria-labelledby="service-agents"] tr[data-agent]`)
	if got := tb.text(`section[aria-labelledby="service-agents"] tr[data-agent]`); !strings.Contains(got, "New Hire 1") {
		t.Errorf("the added agent reads %q", got)
	}
	type agentsAnswer struct {
		Agents []agentView `json:"agents"`
	}
	find := func() (agentView, bool) {
		var out agentsAnswer
		getJSON(t, api+"/agents", &out)
		for _, a := range out.Agents {
			if a.UPN == "newhire1@contoso.example" {
				return a, true
			}
		}
		return agentView{}, false
	}
	hire, ok := find()
	if !ok || !slices.Contains(hire.Duty.Services, "vip") {
		t.Fatalf("stored: %+v (found %v), want on duty for vip", hire, ok)
	}

	// Their page: skills and duty.
	tb.click(`section[aria-labelledby="service-agents"] tr[data-agent] a`)
	tb.waitRendered(contoso + "/agents/" + hire.ID)
	if got := tb.text("main h1"); got != "New Hire 1" {
		t.Errorf("the agent's page is headed %q", got)
	}
	tb.setField("skills", "en:80, fr:40")
	tb.click(field("duty.offDuty"))
	tb.click(`main form button[type="submit"]`)
	tb.waitVisible(`.form-status .notice-success`)
	if got, _ := find(); got.Skills["en"] != 80 || got.Skills["fr"] != 40 || !got.Duty.OffDuty || !slices.Contains(got.Duty.Services, "vip") {
		t.Errorf("after saving the agent: skills %v, duty %+v", got.Skills, got.Duty)
	}
	tb.do("clear the status", chromedp.Evaluate[chromedp.Void](`document.querySelector('main .form-status').replaceChildren()`))
	tb.setField("skills", "en:60")
	tb.click(`main form button[type="submit"]`)
	tb.waitVisible(`.form-status .notice-success`) // the save answered
	if got, _ := find(); len(got.Skills) != 1 || got.Skills["en"] != 60 {
		t.Errorf("a skill left out is removed: %v", got.Skills)
	}

	// Off the service again.
	tb.goTo(contoso + "/services/vip")
	tb.waitVisible(`section[aria-labelledby="service-agents"] tr[data-agent]`)
	tb.click(`section[aria-labelledby="service-agents"] tr[data-agent] button.danger`)
	tb.click(`dialog[open] button[value="yes"]`)
	tb.do("the agent gone", chromedp.WaitNotPresent(chromedp.CSS(`section[aria-labelledby="service-agents"] tr[data-agent]`)))
	if got, _ := find(); slices.Contains(got.Duty.Services, "vip") {
		t.Errorf("after removing: duty %+v", got.Duty)
	}

	// A Teams-based service naming sales' Team opens with its members.
	var sales struct{ Team string }
	getJSON(t, api+"/services/sales", &sales)
	tb.goTo(contoso + "/services")
	tb.setField("id", "sales-2")
	tb.setField("name", "Sales 2")
	tb.setField("team", sales.Team)
	tb.click(`form[aria-labelledby="new-service"] button[type="submit"]`)
	tb.waitRendered(contoso + "/services/sales-2")
	if got := tb.text("#banner"); !strings.Contains(got, "members in the Team") {
		t.Errorf("after creating a Teams-based service the banner reads %q", got)
	}
	tb.waitVisible(`section[aria-labelledby="service-agents"] tr[data-agent]`)
	if n := evalIn[int](tb, `document.querySelectorAll('section[aria-labelledby="service-agents"] tr[data-agent]').length`); n < 2 {
		t.Errorf("the new Teams-based service shows %d agents", n)
	}
	tb.click(`section[aria-labelledby="service-agents"] p button`) // sync now
	tb.poll("the sync's answer", `document.querySelector('section[aria-labelledby="service-agents"] .form-status').innerText.includes('members in the Team')`)
	tb.noConsoleErrors("400")
}
