package graph

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/presence"
)

const (
	testTenant   = "11111111-2222-3333-4444-555555555555"
	testClientID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
	user1        = "presence1@teamscc-guests.example"
	user2        = "presence2@teamscc-guests.example"
	pass1        = "S3cret-Pass-One!"
	pass2        = "S3cret-Pass-Two!"
)

var (
	acct1 = presence.Credential{Kind: presence.CredAccount1, Username: user1, Password: pass1}
	acct2 = presence.Credential{Kind: presence.CredAccount2, Username: user2, Password: pass2}
	app   = presence.Credential{Kind: presence.CredApplication}
)

// waits records the retry waits a Reader asks for, without sleeping.
type waits struct {
	mu sync.Mutex
	d  []time.Duration
}

func (w *waits) sleep(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	w.d = append(w.d, d)
	w.mu.Unlock()
	return ctx.Err()
}

func (w *waits) get() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.d)
}

// newTest returns a fake and a Reader on it whose retry waits are recorded.
func newTest(t *testing.T, tweak func(*Options)) (*Fake, *Reader, *waits) {
	t.Helper()
	f := NewFake()
	t.Cleanup(f.Close)
	w := &waits{}
	o := f.Options(testClientID)
	o.sleep = w.sleep
	o.jitter = func() float64 { return 0.5 }
	if tweak != nil {
		tweak(&o)
	}
	r, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return f, r, w
}

func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
	}
	return out
}

func authCode(err error) string {
	var ae *presence.AuthError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}

// assertClean fails if an error text carries a secret, a UPN or a token.
func assertClean(t *testing.T, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	for _, s := range append(secrets, user1, user2, pass1, pass2, FakeClientSecret, "fake.",
		base64.RawURLEncoding.EncodeToString([]byte(user1)), base64.RawURLEncoding.EncodeToString([]byte(user2))) {
		if s != "" && strings.Contains(strings.ToLower(msg), strings.ToLower(s)) {
			t.Errorf("error text leaks %q: %s", s, msg)
		}
	}
	if strings.Contains(msg, "@") {
		t.Errorf("error text holds something like a UPN: %s", msg)
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("no ClientID: want error")
	}
	if _, err := New(Options{ClientID: "x", BaseURL: "::bad"}); err == nil {
		t.Error("bad BaseURL: want error")
	}
	if _, err := New(Options{ClientID: "x", AuthorityHost: "http://login.example/"}); err == nil {
		t.Error("http authority: want error")
	}
	r, err := New(Options{ClientID: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if r.opts.BaseURL != DefaultBaseURL || r.opts.AuthorityHost != DefaultAuthorityHost ||
		r.opts.MaxRetries != DefaultMaxRetries || r.opts.MaxRetryWait != DefaultMaxRetryWait {
		t.Errorf("defaults not applied: %+v", r.opts)
	}
}

func TestAccountTokensReachGraph(t *testing.T) {
	f, r, _ := newTest(t, nil)
	all := ids(3)
	f.SetPresence(all[0], "Available", "Available")
	f.SetPresence(all[1], "Busy", "InACall")
	// all[2] unknown to Graph: absent from the answer.
	ctx := context.Background()

	for _, c := range []struct {
		cred      presence.Credential
		principal string
	}{{acct1, user1}, {acct2, user2}, {app, AppPrincipal(testClientID)}} {
		obs, err := r.ReadPresences(ctx, testTenant, c.cred, all)
		if err != nil {
			t.Fatalf("%s: %v", c.cred, err)
		}
		want := []presence.Observation{
			{UserID: all[0], Availability: presence.Available, Activity: "Available"},
			{UserID: all[1], Availability: presence.Busy, Activity: presence.ActivityInACall},
		}
		if !slices.Equal(obs, want) {
			t.Errorf("%s: got %+v, want %+v", c.cred, obs, want)
		}
		if n := f.RequestsBy(c.principal); n != 1 {
			t.Errorf("%s: %d Graph requests carried its token, want 1", c.cred, n)
		}
	}
	if got := f.GraphRequests(); got != 3 {
		t.Errorf("Graph requests = %d, want 3", got)
	}

	// The token cache is reused across polls: no new token request.
	tokens := f.TokenRequests()
	for range 3 {
		if _, err := r.ReadPresences(ctx, testTenant, acct1, all); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.TokenRequests(); got != tokens {
		t.Errorf("token requests grew from %d to %d across polls; want the cached token", tokens, got)
	}
	if n := f.RequestsBy(user1); n != 4 {
		t.Errorf("account1 Graph requests = %d, want 4", n)
	}
}

func TestChangedPasswordMakesNewCredential(t *testing.T) {
	f, r, _ := newTest(t, nil)
	f.SetPresence("u1", "Away", "Away")
	f.SetPassword(user1, "new-password")
	ctx := context.Background()
	_, err := r.ReadPresences(ctx, testTenant, acct1, []string{"u1"})
	if authCode(err) != "AADSTS50126" {
		t.Fatalf("old password: got %v, want AuthError AADSTS50126", err)
	}
	assertClean(t, err)
	fixed := acct1
	fixed.Password = "new-password"
	obs, err := r.ReadPresences(ctx, testTenant, fixed, []string{"u1"})
	if err != nil {
		t.Fatalf("new password: %v", err)
	}
	if len(obs) != 1 || obs[0].Availability != presence.Away {
		t.Errorf("got %+v", obs)
	}
	r.mu.Lock()
	n := len(r.creds)
	r.mu.Unlock()
	if n != 1 {
		t.Errorf("%d cached credentials, want 1 (the old password's replaced)", n)
	}
}

func TestEntraRefusalsAreAuthErrors(t *testing.T) {
	f, r, _ := newTest(t, nil)
	f.SetPresence("u1", "Available", "Available")
	ctx := context.Background()
	for _, code := range []int{50126, 50076, 50079, 50158, 53003, 65001, 50034, 50057, 50053, 50055, 99999} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			username := fmt.Sprintf("acct-%d@customer.example", code)
			password := fmt.Sprintf("pw-%d-secret", code)
			f.FailToken(username, code)
			cred := presence.Credential{Kind: presence.CredAccount1, Username: username, Password: password}
			_, err := r.ReadPresences(ctx, testTenant, cred, []string{"u1"})
			want := fmt.Sprintf("AADSTS%d", code)
			if got := authCode(err); got != want {
				t.Fatalf("got %v (code %q), want AuthError %s", err, got, want)
			}
			assertClean(t, err, username, password, "customer.example")
			// The same through ReadPresence.
			_, err = r.ReadPresence(ctx, testTenant, cred, "someone@customer.example")
			if got := authCode(err); got != want {
				t.Fatalf("ReadPresence: got %v, want AuthError %s", err, want)
			}
			assertClean(t, err, username, password, "someone", "customer.example")
		})
	}
	if f.GraphRequests() != 0 {
		t.Errorf("Graph was called %d times without a token", f.GraphRequests())
	}
}

func TestApplicationRefusals(t *testing.T) {
	f, r, _ := newTest(t, nil)
	f.SetPresence("u1", "Available", "Available")
	f.SetClientSecret("another-secret")
	_, err := r.ReadPresences(context.Background(), testTenant, app, []string{"u1"})
	if authCode(err) != "AADSTS7000215" {
		t.Fatalf("wrong secret: got %v, want AADSTS7000215", err)
	}
	assertClean(t, err)
	f.SetClientSecret("")
	f.FailToken(AppPrincipal(testClientID), 65001)
	_, err = r.ReadPresences(context.Background(), testTenant, app, []string{"u1"})
	if authCode(err) != "AADSTS65001" {
		t.Fatalf("consent: got %v, want AADSTS65001", err)
	}

	// No secret configured: refused before any request.
	r2, err := New(Options{ClientID: testClientID, AuthorityHost: f.AuthorityHost, BaseURL: f.GraphURL, HTTPClient: f.Client()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r2.ReadPresences(context.Background(), testTenant, app, []string{"u1"})
	if authCode(err) != "NotConfigured" {
		t.Errorf("no secret: got %v, want NotConfigured", err)
	}
}

func TestBadCredentialsAndTenant(t *testing.T) {
	_, r, _ := newTest(t, nil)
	ctx := context.Background()
	for _, c := range []presence.Credential{
		{Kind: presence.CredAccount1, Username: user1},
		{Kind: presence.CredAccount2, Password: pass2},
		{Kind: presence.CredBasic},
		{Kind: "other"},
	} {
		if _, err := r.ReadPresences(ctx, testTenant, c, []string{"u"}); authCode(err) != "NotConfigured" {
			t.Errorf("%v: got %v, want NotConfigured", c, err)
		}
	}
	if _, err := r.ReadPresences(ctx, "bad tenant/../x", acct1, []string{"u"}); authCode(err) != "InvalidTenant" {
		t.Errorf("bad tenant: got %v, want InvalidTenant", err)
	}
}

func TestGraphRefusalsAreAuthErrors(t *testing.T) {
	f, r, _ := newTest(t, nil)
	f.SetPresence("u1", "Available", "Available")
	ctx := context.Background()
	f.DenyGraph(user1, http.StatusForbidden)
	f.DenyGraph(user2, http.StatusUnauthorized)
	_, err := r.ReadPresences(ctx, testTenant, acct1, []string{"u1"})
	if authCode(err) != "HTTP403" {
		t.Errorf("403: got %v, want AuthError HTTP403", err)
	}
	assertClean(t, err)
	_, err = r.ReadPresence(ctx, testTenant, acct2, "u1")
	if authCode(err) != "HTTP401" {
		t.Errorf("401: got %v, want AuthError HTTP401", err)
	}
	assertClean(t, err)
	// Not retried: a refusal is not throttling.
	if got := f.GraphRequests(); got != 2 {
		t.Errorf("Graph requests = %d, want 2", got)
	}
}

func TestRetryAfterFractional(t *testing.T) {
	f, r, w := newTest(t, nil)
	f.SetPresence("u1", "DoNotDisturb", "Presenting")
	f.Throttle(1, "0.2")
	obs, err := r.ReadPresences(context.Background(), testTenant, acct1, []string{"u1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(obs) != 1 || obs[0].Activity != presence.ActivityPresenting {
		t.Errorf("got %+v", obs)
	}
	if got := f.GraphRequests(); got != 2 {
		t.Errorf("Graph requests = %d, want 2 (one retry)", got)
	}
	if got := w.get(); !slices.Equal(got, []time.Duration{200 * time.Millisecond}) {
		t.Errorf("waits = %v, want [200ms]", got)
	}
}

func TestRetryAfterCappedAndHTTPDate(t *testing.T) {
	f, r, w := newTest(t, func(o *Options) { o.MaxRetryWait = 5 * time.Second })
	f.SetPresence("u1", "Available", "Available")
	f.Throttle(1, "120")
	f.Throttle(1, time.Now().Add(time.Hour).UTC().Format(http.TimeFormat))
	if _, err := r.ReadPresence(context.Background(), testTenant, acct1, "u1"); err != nil {
		t.Fatal(err)
	}
	if got := w.get(); !slices.Equal(got, []time.Duration{5 * time.Second, 5 * time.Second}) {
		t.Errorf("waits = %v, want two capped at 5s", got)
	}
}

func TestServerErrorsBackOff(t *testing.T) {
	f, r, w := newTest(t, nil)
	f.SetPresence("u1", "BeRightBack", "BeRightBack")
	f.FailNext(2, http.StatusServiceUnavailable, "")
	obs, err := r.ReadPresences(context.Background(), testTenant, acct2, []string{"u1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(obs) != 1 || obs[0].Availability != presence.BeRightBack {
		t.Errorf("got %+v", obs)
	}
	if got := f.GraphRequests(); got != 3 {
		t.Errorf("Graph requests = %d, want 3", got)
	}
	// Exponential from 1s with equal jitter (jitter fixed at 0.5): 750ms, 1.5s.
	if got := w.get(); !slices.Equal(got, []time.Duration{750 * time.Millisecond, 1500 * time.Millisecond}) {
		t.Errorf("waits = %v", got)
	}
}

func TestRetriesExhaustedAreTransient(t *testing.T) {
	for _, status := range []int{http.StatusInternalServerError, http.StatusGatewayTimeout, http.StatusTooManyRequests} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			f, r, w := newTest(t, func(o *Options) { o.MaxRetries = 2 })
			f.SetPresence("u1", "Available", "Available")
			f.FailNext(10, status, "1")
			_, err := r.ReadPresences(context.Background(), testTenant, acct1, []string{"u1"})
			if err == nil || authCode(err) != "" {
				t.Fatalf("got %v, want a transient error", err)
			}
			var ge *Error
			if !errors.As(err, &ge) || ge.Status != status {
				t.Errorf("got %#v, want *Error with status %d", err, status)
			}
			assertClean(t, err)
			if got := f.GraphRequests(); got != 3 {
				t.Errorf("Graph requests = %d, want 3", got)
			}
			if got := len(w.get()); got != 2 {
				t.Errorf("%d waits, want 2", got)
			}
		})
	}
}

func TestNotImplementedNotRetried(t *testing.T) {
	f, r, _ := newTest(t, nil)
	f.FailNext(1, http.StatusNotImplemented, "")
	_, err := r.ReadPresences(context.Background(), testTenant, acct1, []string{"u1"})
	if err == nil || authCode(err) != "" {
		t.Fatalf("got %v, want transient", err)
	}
	if got := f.GraphRequests(); got != 1 {
		t.Errorf("Graph requests = %d, want 1", got)
	}
}

func TestNoRetriesWhenNegative(t *testing.T) {
	f, r, _ := newTest(t, func(o *Options) { o.MaxRetries = -1 })
	f.Throttle(1, "0")
	if _, err := r.ReadPresences(context.Background(), testTenant, acct1, []string{"u1"}); err == nil {
		t.Fatal("want the 429 as an error")
	}
	if got := f.GraphRequests(); got != 1 {
		t.Errorf("Graph requests = %d, want 1", got)
	}
}

func TestContextCancelledDuringWait(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var asked []time.Duration
	f, r, _ := newTest(t, func(o *Options) {
		o.sleep = func(c context.Context, d time.Duration) error {
			asked = append(asked, d)
			cancel() // the caller gives up while we wait
			return sleepCtx(c, d)
		}
	})
	f.Throttle(1, "30")
	_, err := r.ReadPresences(ctx, testTenant, acct1, []string{"u1"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if authCode(err) != "" {
		t.Errorf("cancellation reported as AuthError: %v", err)
	}
	if !slices.Equal(asked, []time.Duration{30 * time.Second}) {
		t.Errorf("waits = %v, want [30s]", asked)
	}
	if got := f.GraphRequests(); got != 1 {
		t.Errorf("Graph requests = %d, want 1", got)
	}
}

func TestParsing(t *testing.T) {
	f, r, _ := newTest(t, nil)
	cases := []struct {
		avail, act string
		want       presence.Observation
	}{
		{"available", "inacall", presence.Observation{Availability: presence.Available, Activity: presence.ActivityInACall}},
		{"BUSY", "inaconferencecall", presence.Observation{Availability: presence.Busy, Activity: presence.ActivityInAConferenceCall}},
		{"DoNotDisturb", "presenting", presence.Observation{Availability: presence.DoNotDisturb, Activity: presence.ActivityPresenting}},
		{"SomethingNew", "BrandNewActivity", presence.Observation{Availability: presence.PresenceUnknown, Activity: "BrandNewActivity"}},
		{"", "", presence.Observation{Availability: presence.PresenceUnknown}},
		{"offline", "OffWork", presence.Observation{Availability: presence.Offline, Activity: "OffWork"}},
	}
	var all []string
	for i, c := range cases {
		id := fmt.Sprintf("user-%d", i)
		f.SetPresence(id, c.avail, c.act)
		all = append(all, id)
	}
	obs, err := r.ReadPresences(context.Background(), testTenant, app, all)
	if err != nil {
		t.Fatal(err)
	}
	if len(obs) != len(cases) {
		t.Fatalf("got %d observations, want %d", len(obs), len(cases))
	}
	for i, c := range cases {
		c.want.UserID = all[i]
		if obs[i] != c.want {
			t.Errorf("%q/%q: got %+v, want %+v", c.avail, c.act, obs[i], c.want)
		}
	}
}

func TestReadPresenceByUPN(t *testing.T) {
	f, r, _ := newTest(t, nil)
	const id = "9b4c1a52-0000-4000-8000-000000000001"
	const upn = "agent_contoso.com#EXT#@customer.onmicrosoft.com"
	f.SetPresence(id, "Busy", "InAMeeting")
	f.SetUPN(upn, id)
	ctx := context.Background()
	for _, user := range []string{id, upn} {
		o, err := r.ReadPresence(ctx, testTenant, acct1, user)
		if err != nil {
			t.Fatalf("%s: %v", user, err)
		}
		want := presence.Observation{UserID: id, Availability: presence.Busy, Activity: presence.ActivityInAMeeting}
		if o != want {
			t.Errorf("%s: got %+v, want %+v", user, o, want)
		}
	}
	// Unknown user: Graph's 404 names the user; our error must not.
	_, err := r.ReadPresence(ctx, testTenant, acct1, "nobody@customer.onmicrosoft.com")
	if err == nil || authCode(err) != "" {
		t.Fatalf("got %v, want transient 404", err)
	}
	var ge *Error
	if !errors.As(err, &ge) || ge.Status != http.StatusNotFound {
		t.Errorf("got %#v, want *Error 404", err)
	}
	assertClean(t, err, "nobody", "customer.onmicrosoft.com")
	if _, err := r.ReadPresence(ctx, testTenant, acct1, " "); err == nil {
		t.Error("empty user: want error")
	}
}

func TestBatchLimits(t *testing.T) {
	f, r, _ := newTest(t, nil)
	all := ids(presence.MaxIDsPerRequest + 1)
	f.SetPresences(all, "Available", "Available")
	ctx := context.Background()
	if _, err := r.ReadPresences(ctx, testTenant, acct1, all); err == nil {
		t.Error("651 ids: want error")
	}
	if f.GraphRequests() != 0 {
		t.Error("651 ids reached Graph")
	}
	obs, err := r.ReadPresences(ctx, testTenant, acct1, all[:presence.MaxIDsPerRequest])
	if err != nil {
		t.Fatal(err)
	}
	if len(obs) != presence.MaxIDsPerRequest {
		t.Errorf("%d observations, want 650", len(obs))
	}
	st := f.Stats()
	if st.MaxIDsPerRequest != 650 || st.IDsSeen != 650 {
		t.Errorf("stats %+v", st)
	}
	if obs, err := r.ReadPresences(ctx, testTenant, acct1, nil); obs != nil || err != nil {
		t.Errorf("no ids: got %v, %v", obs, err)
	}
}

func TestNetworkErrorsAreTransientAndClean(t *testing.T) {
	f, r, _ := newTest(t, nil)
	f.SetPresence("u1", "Available", "Available")
	ctx := context.Background()
	if _, err := r.ReadPresence(ctx, testTenant, acct1, "u1"); err != nil { // token cached
		t.Fatal(err)
	}
	f.Close()
	const upn = "agent@customer.example"
	_, err := r.ReadPresence(ctx, testTenant, acct1, upn)
	if err == nil || authCode(err) != "" {
		t.Fatalf("got %v, want transient", err)
	}
	assertClean(t, err, upn, "agent")
	// Entra unreachable for a new credential: transient too (no retries, so the
	// test does not wait through azcore's backoff).
	r.opts.MaxRetries = 0
	_, err = r.ReadPresences(ctx, testTenant, acct2, []string{"u1"})
	if err == nil || authCode(err) != "" {
		t.Fatalf("Entra down: got %v, want transient", err)
	}
	assertClean(t, err)
}

func TestConcurrentUse(t *testing.T) {
	f, r, _ := newTest(t, nil)
	all := ids(1300)
	f.SetPresences(all, "Available", "Available")
	f.SetLatency(2 * time.Millisecond)
	f.Throttle(3, "0.01")
	tenants := []string{testTenant, "22222222-2222-3333-4444-555555555555", "contoso.onmicrosoft.com"}
	creds := []presence.Credential{acct1, acct2, app}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 24 {
		wg.Go(func() {
			chunk := all[(i%2)*650 : (i%2+1)*650]
			obs, err := r.ReadPresences(context.Background(), tenants[i%3], creds[(i/3)%3], chunk)
			if err == nil && len(obs) != 650 {
				err = fmt.Errorf("%d observations", len(obs))
			}
			if err != nil {
				errs <- err
			}
			if i%4 == 0 {
				f.SetPresence(all[i], "Busy", "InACall") // concurrent writes to the fake
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := f.Stats(); st.Throttled != 3 || st.GraphRequests != 27 {
		t.Errorf("stats %+v", st)
	}
}
