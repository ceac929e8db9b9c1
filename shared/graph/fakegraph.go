package graph

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/teamscc/teamscc/shared/presence"
)

// Fake is an in-process fake of Entra and Microsoft Graph presence for tests and
// benchmarks: one HTTPS server (httptest, HTTP/2) serving
//
//   - Entra: GET /{tenant}/v2.0/.well-known/openid-configuration,
//     GET /common/UserRealm/{user} (always "Managed") and
//     POST /{tenant}/oauth2/v2.0/token (password and client_credentials grants);
//   - Graph (under /v1.0): POST /communications/getPresencesByUserId and
//     GET /users/{id-or-upn}/presence;
//   - the calling platform, once EnableCalling was called (fakecalls.go): Graph's call
//     API under /v1.0/communications/calls and signed notifications to the app.
//
// Tokens name their principal (the username, or AppPrincipal(clientID)); Graph
// answers 401 without a token of this fake. Everything is safe for concurrent use;
// the Graph path does no heavy work (answers are assembled from JSON fragments
// prepared when a presence is set).
type Fake struct {
	// URL is the server's root, "https://127.0.0.1:port".
	URL string
	// AuthorityHost is the Entra authority host to configure ("URL/").
	AuthorityHost string
	// GraphURL is the Graph base URL to configure ("URL/v1.0").
	GraphURL string

	srv    *httptest.Server
	client *http.Client

	mu        sync.RWMutex
	presences map[string]fakePresence // by object id
	upns      map[string]string       // lower-case UPN -> object id
	passwords map[string]string       // username -> password; unset: any
	tokenFail map[string]int          // principal -> AADSTS code
	graphDeny map[string]int          // principal -> HTTP status
	appSecret string
	groups    map[string][]string // object id -> group ids (checkMemberGroups)

	latency    atomic.Int64 // ns added to every Graph request
	faultsLeft atomic.Int64
	faultMu    sync.Mutex
	faults     []fakeFault

	graphRequests atomic.Int64
	idsSeen       atomic.Int64
	maxIDs        atomic.Int64
	throttled     atomic.Int64
	failed        atomic.Int64
	tokenRequests atomic.Int64
	inFlight      atomic.Int64
	maxInFlight   atomic.Int64
	tokenSeq      atomic.Int64
	byPrincipal   sync.Map // principal -> *atomic.Int64 (Graph requests)

	hook atomic.Pointer[func(r *http.Request)]

	calling *fakeCalling   // the calling platform (fakecalls.go)
	dir     *fakeDirectory // Entra users and groups (fakedirectory.go)
}

type fakePresence struct {
	availability, activity string
	frag                   []byte // the JSON object Graph answers for this user
}

type fakeFault struct {
	status     int
	retryAfter string
	n          int
}

// FakeStats are the Fake's counters.
type FakeStats struct {
	GraphRequests    int64 // every request that reached a Graph endpoint
	IDsSeen          int64 // ids of getPresencesByUserId requests answered 200
	MaxIDsPerRequest int64 // largest getPresencesByUserId request seen
	Throttled        int64 // answered 429 by Throttle
	Failed           int64 // answered with a FailNext status
	TokenRequests    int64 // token endpoint requests
	MaxInFlight      int64 // most Graph requests served at once
}

// FakeClientSecret is the client secret Fake.Options configures.
const FakeClientSecret = "fake-client-secret"

// AppPrincipal names the application (client credentials) principal of clientID in
// FailToken, DenyGraph and RequestsBy.
func AppPrincipal(clientID string) string { return "app:" + clientID }

// NewFake starts a Fake. Close it when done.
func NewFake() *Fake {
	f := &Fake{
		presences: map[string]fakePresence{},
		upns:      map[string]string{},
		passwords: map[string]string{},
		tokenFail: map[string]int{},
		graphDeny: map[string]int{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", f.serveDiscovery)
	mux.HandleFunc("GET /common/UserRealm/{user}", f.serveUserRealm)
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", f.serveToken)
	mux.HandleFunc("POST /v1.0/communications/getPresencesByUserId", f.graph(f.servePresences))
	mux.HandleFunc("GET /v1.0/users/{user}/presence", f.graph(f.serveUserPresence))
	mux.HandleFunc("GET /v1.0/users/{user}", f.graph(f.serveUser))
	mux.HandleFunc("POST /v1.0/users/{user}/checkMemberGroups", f.graph(f.serveCheckMemberGroups))
	f.calling = newFakeCalling(f)
	f.calling.register(mux)
	f.dir = newFakeDirectory(f)
	f.dir.register(mux)
	f.srv = httptest.NewUnstartedServer(mux)
	f.srv.EnableHTTP2 = true
	f.srv.StartTLS()
	f.URL = f.srv.URL
	f.AuthorityHost = f.srv.URL + "/"
	f.GraphURL = f.srv.URL + "/v1.0"
	c := f.srv.Client()
	if t, ok := c.Transport.(*http.Transport); ok {
		t = t.Clone()
		t.MaxIdleConnsPerHost = 256
		c = &http.Client{Transport: t}
	}
	f.client = c
	return f
}

// Close stops the server.
func (f *Fake) Close() { f.srv.Close() }

// Client returns an *http.Client that trusts the fake's certificate.
func (f *Fake) Client() *http.Client { return f.client }

// Options returns Reader options pointing at the fake (application mode uses
// FakeClientSecret); adjust the rest as needed.
func (f *Fake) Options(clientID string) Options {
	return Options{
		ClientID:                 clientID,
		ClientSecret:             FakeClientSecret,
		AuthorityHost:            f.AuthorityHost,
		BaseURL:                  f.GraphURL,
		HTTPClient:               f.client,
		DisableInstanceDiscovery: true,
	}
}

// SetPresence sets the presence Graph answers for the user with object id id.
func (f *Fake) SetPresence(id, availability, activity string) {
	p := makeFakePresence(id, availability, activity)
	f.mu.Lock()
	f.presences[id] = p
	f.mu.Unlock()
}

// serveUser answers GET /users/{id-or-upn} with the user's id (users are the UPNs
// given to SetUPN).
func (f *Fake) serveUser(w http.ResponseWriter, r *http.Request) {
	user := r.PathValue("user")
	f.mu.RLock()
	id, ok := f.upns[strings.ToLower(user)]
	f.mu.RUnlock()
	if !ok {
		graphError(w, http.StatusNotFound, "Request_ResourceNotFound", "Resource does not exist.")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": id, "userPrincipalName": user})
}

// SetPresences sets the same presence for many users.
func (f *Fake) SetPresences(ids []string, availability, activity string) {
	ps := make([]fakePresence, len(ids))
	for i, id := range ids {
		ps[i] = makeFakePresence(id, availability, activity)
	}
	f.mu.Lock()
	for i, id := range ids {
		f.presences[id] = ps[i]
	}
	f.mu.Unlock()
}

func makeFakePresence(id, availability, activity string) fakePresence {
	type oof struct {
		Message       *string `json:"message"`
		IsOutOfOffice bool    `json:"isOutOfOffice"`
	}
	frag, _ := json.Marshal(struct {
		ID                  string  `json:"id"`
		Availability        string  `json:"availability"`
		Activity            string  `json:"activity"`
		StatusMessage       *string `json:"statusMessage"`
		OutOfOfficeSettings oof     `json:"outOfOfficeSettings"`
	}{id, availability, activity, nil, oof{IsOutOfOffice: strings.EqualFold(activity, "OutOfOffice")}})
	return fakePresence{availability: availability, activity: activity, frag: frag}
}

// DeletePresence makes Graph omit the user.
func (f *Fake) DeletePresence(id string) {
	f.mu.Lock()
	delete(f.presences, id)
	f.mu.Unlock()
}

// Presence returns what Graph answers for the user.
func (f *Fake) Presence(id string) (availability, activity string, ok bool) {
	f.mu.RLock()
	p, ok := f.presences[id]
	f.mu.RUnlock()
	return p.availability, p.activity, ok
}

// SetUPN lets GET /users/{upn}/presence find the user with object id id.
func (f *Fake) SetUPN(upn, id string) {
	f.mu.Lock()
	f.upns[strings.ToLower(upn)] = id
	f.mu.Unlock()
}

// SetPassword makes token requests for username with another password fail with
// AADSTS50126 ("" accepts any password again).
func (f *Fake) SetPassword(username, password string) {
	f.mu.Lock()
	if password == "" {
		delete(f.passwords, strings.ToLower(username))
	} else {
		f.passwords[strings.ToLower(username)] = password
	}
	f.mu.Unlock()
}

// SetClientSecret makes client-credential requests with another secret fail with
// AADSTS7000215 ("" accepts any secret).
func (f *Fake) SetClientSecret(secret string) {
	f.mu.Lock()
	f.appSecret = secret
	f.mu.Unlock()
}

// FailToken makes token requests of principal (a username or AppPrincipal) fail
// with the Entra error of the AADSTS code (e.g. 50076); 0 clears.
func (f *Fake) FailToken(principal string, aadsts int) {
	f.mu.Lock()
	if aadsts == 0 {
		delete(f.tokenFail, strings.ToLower(principal))
	} else {
		f.tokenFail[strings.ToLower(principal)] = aadsts
	}
	f.mu.Unlock()
}

// DenyGraph makes Graph answer every request authenticated as principal with
// status (401 or 403, say); 0 clears.
func (f *Fake) DenyGraph(principal string, status int) {
	f.mu.Lock()
	if status == 0 {
		delete(f.graphDeny, strings.ToLower(principal))
	} else {
		f.graphDeny[strings.ToLower(principal)] = status
	}
	f.mu.Unlock()
}

// SetLatency adds d to every Graph request (honouring the request's context).
func (f *Fake) SetLatency(d time.Duration) { f.latency.Store(int64(d)) }

// Throttle answers the next n Graph requests 429 with the given Retry-After header
// ("" sends none).
func (f *Fake) Throttle(n int, retryAfter string) {
	f.FailNext(n, http.StatusTooManyRequests, retryAfter)
}

// FailNext answers the next n Graph requests with status (e.g. 503), with the
// given Retry-After header ("" sends none). Faults queue behind earlier ones.
func (f *Fake) FailNext(n, status int, retryAfter string) {
	if n <= 0 {
		return
	}
	f.faultMu.Lock()
	f.faults = append(f.faults, fakeFault{status: status, retryAfter: retryAfter, n: n})
	f.faultsLeft.Add(int64(n))
	f.faultMu.Unlock()
}

// OnGraphRequest sets a function called at the start of every Graph request (nil
// removes it). Tests use it to observe or cancel.
func (f *Fake) OnGraphRequest(fn func(r *http.Request)) {
	if fn == nil {
		f.hook.Store(nil)
		return
	}
	f.hook.Store(&fn)
}

// Stats returns the counters.
func (f *Fake) Stats() FakeStats {
	return FakeStats{
		GraphRequests:    f.graphRequests.Load(),
		IDsSeen:          f.idsSeen.Load(),
		MaxIDsPerRequest: f.maxIDs.Load(),
		Throttled:        f.throttled.Load(),
		Failed:           f.failed.Load(),
		TokenRequests:    f.tokenRequests.Load(),
		MaxInFlight:      f.maxInFlight.Load(),
	}
}

// GraphRequests is the number of requests that reached a Graph endpoint.
func (f *Fake) GraphRequests() int64 { return f.graphRequests.Load() }

// IDsSeen is the number of ids in getPresencesByUserId requests answered 200.
func (f *Fake) IDsSeen() int64 { return f.idsSeen.Load() }

// TokenRequests is the number of token endpoint requests.
func (f *Fake) TokenRequests() int64 { return f.tokenRequests.Load() }

// RequestsBy is the number of Graph requests authenticated as principal.
func (f *Fake) RequestsBy(principal string) int64 {
	if c, ok := f.byPrincipal.Load(strings.ToLower(principal)); ok {
		return c.(*atomic.Int64).Load()
	}
	return 0
}

// ResetCounters zeroes every counter.
func (f *Fake) ResetCounters() {
	for _, c := range []*atomic.Int64{&f.graphRequests, &f.idsSeen, &f.maxIDs, &f.throttled,
		&f.failed, &f.tokenRequests, &f.maxInFlight} {
		c.Store(0)
	}
	f.byPrincipal.Range(func(k, _ any) bool { f.byPrincipal.Delete(k); return true })
}

// ---- Entra ----

func (f *Fake) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	base := f.srv.URL + "/" + r.PathValue("tenant")
	writeJSON(w, http.StatusOK, map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"device_authorization_endpoint":         base + "/oauth2/v2.0/devicecode",
		"issuer":                                base + "/v2.0",
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"tenant_region_scope":                   "EU",
		"cloud_instance_name":                   "microsoftonline.com",
	})
}

func (f *Fake) serveUserRealm(w http.ResponseWriter, r *http.Request) {
	user := r.PathValue("user")
	_, domain, _ := strings.Cut(user, "@")
	writeJSON(w, http.StatusOK, map[string]any{
		"ver": "1.0", "account_type": "Managed", "domain_name": domain,
		"cloud_instance_name": "microsoftonline.com", "cloud_audience_urn": "urn:federation:MicrosoftOnline",
	})
}

// fakeEntraErrors are realistic descriptions (some name the user, as Entra did
// before it started hiding personal data, so redaction gets exercised).
var fakeEntraErrors = map[int]struct{ err, desc string }{
	50126:   {"invalid_grant", "Error validating credentials due to invalid username or password."},
	50076:   {"invalid_grant", "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '00000003-0000-0000-c000-000000000000'."},
	50079:   {"interaction_required", "Due to a configuration change made by your administrator, or because you moved to a new location, you must enroll in multi-factor authentication to access '00000003-0000-0000-c000-000000000000'."},
	50158:   {"interaction_required", "External security challenge not satisfied. User will be redirected to another page or authentication provider to satisfy additional authentication challenges."},
	53003:   {"invalid_grant", "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance."},
	65001:   {"invalid_grant", "The user or administrator has not consented to use the application with ID '%[2]s' named 'TeamsCC'. Send an interactive authorization request for this user and resource."},
	50034:   {"invalid_grant", "The user account %[1]s does not exist in the %[3]s directory. To sign into this application, the account must be added to the directory."},
	50057:   {"invalid_grant", "The user account is disabled."},
	50053:   {"invalid_grant", "The account is locked, you've tried to sign in too many times with an incorrect user ID or password."},
	7000215: {"invalid_client", "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%[2]s'."},
	700016:  {"unauthorized_client", "Application with identifier '%[2]s' was not found in the directory '%[3]s'."},
}

func (f *Fake) serveToken(w http.ResponseWriter, r *http.Request) {
	f.tokenRequests.Add(1)
	tenant := r.PathValue("tenant")
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_request"})
		return
	}
	clientID := r.PostForm.Get("client_id")
	var principal string
	switch r.PostForm.Get("grant_type") {
	case "password":
		principal = r.PostForm.Get("username")
		f.mu.RLock()
		want, ok := f.passwords[strings.ToLower(principal)]
		f.mu.RUnlock()
		if ok && want != r.PostForm.Get("password") {
			f.entraError(w, 50126, principal, clientID, tenant)
			return
		}
	case "client_credentials":
		principal = AppPrincipal(clientID)
		f.mu.RLock()
		want := f.appSecret
		f.mu.RUnlock()
		if (want != "" && want != r.PostForm.Get("client_secret")) || r.PostForm.Get("client_secret") == "" {
			f.entraError(w, 7000215, principal, clientID, tenant)
			return
		}
	case "refresh_token":
		principal = strings.TrimPrefix(r.PostForm.Get("refresh_token"), "fake-refresh.")
		if p, err := base64.RawURLEncoding.DecodeString(principal); err == nil {
			principal = string(p)
		}
	default:
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "unsupported_grant_type"})
		return
	}
	f.mu.RLock()
	code := f.tokenFail[strings.ToLower(principal)]
	f.mu.RUnlock()
	if code != 0 {
		f.entraError(w, code, principal, clientID, tenant)
		return
	}
	b64 := base64.RawURLEncoding
	tok := "fake." + b64.EncodeToString([]byte(principal)) + "." + b64.EncodeToString([]byte(tenant)) + "." +
		strconv.FormatInt(f.tokenSeq.Add(1), 10)
	scope := r.PostForm.Get("scope")
	if scope == "" {
		scope = GraphScope
	}
	resp := map[string]any{
		"token_type": "Bearer", "scope": scope, "expires_in": 3599, "ext_expires_in": 3599,
		"access_token": tok,
	}
	if r.PostForm.Get("grant_type") != "client_credentials" {
		uid := fakeObjectID(principal)
		now := time.Now().Unix()
		claims, _ := json.Marshal(map[string]any{
			"aud": clientID, "iss": f.srv.URL + "/" + tenant + "/v2.0", "iat": now, "nbf": now, "exp": now + 3600,
			"name": "Presence account", "oid": uid, "sub": uid, "tid": tenant, "ver": "2.0",
			"preferred_username": principal,
		})
		resp["id_token"] = b64.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + b64.EncodeToString(claims) + ".c2ln"
		ci, _ := json.Marshal(map[string]string{"uid": uid, "utid": tenant})
		resp["client_info"] = b64.EncodeToString(ci)
		resp["refresh_token"] = "fake-refresh." + b64.EncodeToString([]byte(principal))
	}
	writeJSON(w, http.StatusOK, resp)
}

func (f *Fake) entraError(w http.ResponseWriter, code int, principal, clientID, tenant string) {
	e, ok := fakeEntraErrors[code]
	if !ok {
		e = struct{ err, desc string }{"invalid_grant", "Fake Entra error."}
	}
	desc := e.desc
	if strings.Contains(desc, "%[") {
		desc = fmt.Sprintf(desc, principal, clientID, tenant)
	}
	status := http.StatusBadRequest
	if e.err == "invalid_client" {
		status = http.StatusUnauthorized
	}
	now := time.Now().UTC()
	writeJSON(w, status, map[string]any{
		"error": e.err,
		"error_description": fmt.Sprintf("AADSTS%d: %s\r\nTrace ID: 0b1f4e3a-0000-4000-8000-000000000001\r\nCorrelation ID: 0b1f4e3a-0000-4000-8000-000000000002\r\nTimestamp: %s",
			code, desc, now.Format("2006-01-02 15:04:05Z")),
		"error_codes":    []int{code},
		"timestamp":      now.Format("2006-01-02 15:04:05Z"),
		"trace_id":       "0b1f4e3a-0000-4000-8000-000000000001",
		"correlation_id": "0b1f4e3a-0000-4000-8000-000000000002",
		"error_uri":      f.srv.URL + "/error?code=" + strconv.Itoa(code),
	})
}

// fakeObjectID derives a stable GUID-shaped id from s.
func fakeObjectID(s string) string {
	h := sha256.Sum256([]byte(s))
	x := hex.EncodeToString(h[:16])
	return x[:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

// ---- Graph ----

// graph wraps a Graph handler: counting, authentication, latency and faults.
func (f *Fake) graph(next func(w http.ResponseWriter, r *http.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.graphRequests.Add(1)
		n := f.inFlight.Add(1)
		defer f.inFlight.Add(-1)
		for {
			m := f.maxInFlight.Load()
			if n <= m || f.maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
		if h := f.hook.Load(); h != nil {
			(*h)(r)
		}
		principal, ok := fakePrincipal(r.Header.Get("Authorization"))
		if !ok {
			graphError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token is empty or invalid.")
			return
		}
		c, _ := f.byPrincipal.LoadOrStore(strings.ToLower(principal), new(atomic.Int64))
		c.(*atomic.Int64).Add(1)
		if d := time.Duration(f.latency.Load()); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if ft, ok := f.takeFault(); ok {
			if ft.retryAfter != "" {
				w.Header().Set("Retry-After", ft.retryAfter)
			}
			if ft.status == http.StatusTooManyRequests {
				f.throttled.Add(1)
				graphError(w, ft.status, "TooManyRequests", "Too many requests.")
			} else {
				f.failed.Add(1)
				graphError(w, ft.status, "UnknownError", "Service unavailable.")
			}
			return
		}
		f.mu.RLock()
		deny := f.graphDeny[strings.ToLower(principal)]
		f.mu.RUnlock()
		if deny != 0 {
			graphError(w, deny, "Forbidden", "Insufficient privileges to complete the operation.")
			return
		}
		next(w, r)
	}
}

func (f *Fake) takeFault() (fakeFault, bool) {
	if f.faultsLeft.Load() <= 0 {
		return fakeFault{}, false
	}
	f.faultMu.Lock()
	defer f.faultMu.Unlock()
	for len(f.faults) > 0 {
		ft := &f.faults[0]
		if ft.n <= 0 {
			f.faults = f.faults[1:]
			continue
		}
		ft.n--
		f.faultsLeft.Add(-1)
		out := *ft
		if ft.n == 0 {
			f.faults = f.faults[1:]
		}
		return out, true
	}
	return fakeFault{}, false
}

func fakePrincipal(authz string) (string, bool) {
	tok, ok := strings.CutPrefix(authz, "Bearer ")
	if !ok {
		return "", false
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 4 || parts[0] != "fake" {
		return "", false
	}
	p, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || len(p) == 0 {
		return "", false
	}
	return string(p), true
}

const presencesPrefix = `{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#Collection(microsoft.graph.presence)","value":[`

// requestBody is r's body, unzipped when the SDK sent it gzip-compressed; false when
// it already answered a broken one.
func requestBody(w http.ResponseWriter, r *http.Request) (io.Reader, bool) {
	if !strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		return r.Body, true
	}
	zr, err := gzip.NewReader(r.Body)
	if err != nil {
		graphError(w, http.StatusBadRequest, "BadRequest", "Invalid gzip body.")
		return nil, false
	}
	return zr, true
}

func (f *Fake) servePresences(w http.ResponseWriter, r *http.Request) {
	body, ok := requestBody(w, r)
	if !ok {
		return
	}
	var req struct {
		IDs []string `json:"ids"`
	}
	if err := json.NewDecoder(body).Decode(&req); err != nil {
		graphError(w, http.StatusBadRequest, "BadRequest", "Invalid request body.")
		return
	}
	n := int64(len(req.IDs))
	for {
		m := f.maxIDs.Load()
		if n <= m || f.maxIDs.CompareAndSwap(m, n) {
			break
		}
	}
	if n == 0 || n > presence.MaxIDsPerRequest {
		graphError(w, http.StatusBadRequest, "BadRequest", "The number of ids must be between 1 and 650.")
		return
	}
	buf := make([]byte, 0, len(presencesPrefix)+len(req.IDs)*150+2)
	buf = append(buf, presencesPrefix...)
	first := true
	f.mu.RLock()
	for _, id := range req.IDs {
		p, ok := f.presences[id]
		if !ok {
			continue
		}
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = append(buf, p.frag...)
	}
	f.mu.RUnlock()
	buf = append(buf, ']', '}')
	f.idsSeen.Add(n)
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(buf)))
	_, _ = w.Write(buf)
}

func (f *Fake) serveUserPresence(w http.ResponseWriter, r *http.Request) {
	user := r.PathValue("user")
	f.mu.RLock()
	p, ok := f.presences[user]
	if !ok {
		if id, found := f.upns[strings.ToLower(user)]; found {
			p, ok = f.presences[id]
		}
	}
	f.mu.RUnlock()
	if !ok {
		graphError(w, http.StatusNotFound, "Request_ResourceNotFound",
			"Resource '"+user+"' does not exist or one of its queried reference-property objects are not present.")
		return
	}
	buf := make([]byte, 0, len(p.frag)+100)
	buf = append(buf, `{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#users('x')/presence/$entity",`...)
	buf = append(buf, p.frag[1:]...)
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal; charset=utf-8")
	_, _ = w.Write(buf)
}

func graphError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"code": code, "message": message,
		"innerError": map[string]string{"date": time.Now().UTC().Format(time.RFC3339), "request-id": "00000000-0000-4000-8000-000000000000"},
	}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// SetGroups makes user (object id) a member of groups, for checkMemberGroups.
func (f *Fake) SetGroups(user string, groups ...string) {
	f.mu.Lock()
	if f.groups == nil {
		f.groups = map[string][]string{}
	}
	f.groups[user] = groups
	f.mu.Unlock()
}

func (f *Fake) serveCheckMemberGroups(w http.ResponseWriter, r *http.Request) {
	var body struct {
		GroupIDs []string `json:"groupIds"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.GroupIDs) == 0 || len(body.GroupIDs) > 20 {
		graphError(w, http.StatusBadRequest, "Request_BadRequest", "groupIds: 1..20 required")
		return
	}
	f.mu.RLock()
	member := f.groups[r.PathValue("user")]
	f.mu.RUnlock()
	out := []string{}
	for _, g := range body.GroupIDs {
		for _, m := range member {
			if strings.EqualFold(g, m) {
				out = append(out, g)
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
}
