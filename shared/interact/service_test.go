package interact_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/inmem"
	"github.com/teamscc/teamscc/shared/interact"
	"github.com/teamscc/teamscc/shared/tenant"
)

const (
	tenantA = "0d1f6b1e-7c3a-4c59-9a5e-1f2a3b4c5d6e"
	tenantB = "9e8d7c6b-5a49-4837-8261-7f6e5d4c3b2a"
	unknown = "11111111-2222-4333-8444-555555555555"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// slowStore delays settings reads a little at random, so cache loads overlap refreshes.
type slowStore struct {
	*inmem.Store
	reads atomic.Int64
}

func (s *slowStore) GetSettings(ctx context.Context, id string) (interact.Settings, error) {
	s.reads.Add(1)
	time.Sleep(time.Duration(rand.IntN(1000)) * time.Microsecond)
	return s.Store.GetSettings(ctx, id)
}

// fakeTokens accepts "good:<tid>:<aud>" tokens.
type fakeTokens struct{ calls atomic.Int64 }

func (f *fakeTokens) VerifyToken(_ context.Context, token, tenantID string, audiences []string) error {
	f.calls.Add(1)
	parts := strings.SplitN(token, ":", 3)
	if len(parts) != 3 || parts[0] != "good" {
		return errors.New("bad token")
	}
	if tenantID != "" && parts[1] != tenantID {
		return errors.New("wrong tenant")
	}
	for _, a := range audiences {
		if a == parts[2] {
			return nil
		}
	}
	return errors.New("wrong audience")
}

// fakeACS mints predictable identities.
type fakeACS struct {
	mu      sync.Mutex
	created int
	issued  []string
	check   interact.CheckResult
	err     error // CreateIdentity's answer when set
}

func (f *fakeACS) CreateIdentity(_ context.Context, conn string, _ []string) (interact.ACSIdentity, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return interact.ACSIdentity{}, f.err
	}
	f.created++
	return interact.ACSIdentity{ID: fmt.Sprintf("8:acs:user-%d", f.created), Token: "tok", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func (f *fakeACS) IssueToken(_ context.Context, conn, id string, _ []string) (interact.ACSIdentity, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.issued = append(f.issued, id)
	return interact.ACSIdentity{ID: id, Token: "tok2"}, nil
}

func (f *fakeACS) Check(context.Context, string) interact.CheckResult { return f.check }

type fixture struct {
	store  *inmem.Store
	clock  *clock
	tokens *fakeTokens
	acs    *fakeACS
	deps   interact.Deps
	svc    *interact.Service
}

func setup(t testing.TB, cfg interact.Config) *fixture {
	t.Helper()
	s := inmem.New()
	ctx := context.Background()
	for _, id := range []string{tenantA, tenantB} {
		if err := s.PutTenant(ctx, tenant.Tenant{ID: id, Name: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	f := &fixture{store: s, clock: newClock(), tokens: &fakeTokens{}, acs: &fakeACS{check: interact.CheckResult{Status: interact.CheckOK}}}
	f.deps = interact.Deps{Tenants: s, Secrets: s, Store: s, Tokens: f.tokens, ACS: f.acs, Now: f.clock.Now}
	f.svc = interact.NewService(cfg, f.deps)
	return f
}

func ptr[T any](v T) *T { return &v }

// enable turns Interact on for the tenant and returns its widget key.
func (f *fixture) enable(t testing.TB, tenantID string, p interact.Patch) string {
	t.Helper()
	p.Enabled = ptr(true)
	v, err := f.svc.UpdateSettings(context.Background(), tenantID, p)
	if err != nil {
		t.Fatal(err)
	}
	if v.WidgetKeyStatus != interact.KeySet || !interact.IsGUID(v.WidgetKey) {
		t.Fatalf("first update did not create a widget key: %+v", v)
	}
	return v.WidgetKey
}

func req(tenantID, key string) interact.Request {
	return interact.Request{TenantID: tenantID, Key: key, Client: "203.0.113.7"}
}

// The issue's concurrency rule: while N goroutines validate, a refresh returns; after
// it, no request with the new key fails and none with the old key succeeds (grace 0).
// The store's reads are slowed at random so cache loads straddle the refresh.
func TestRefreshDuringConcurrentValidations(t *testing.T) {
	for round := 0; round < 20; round++ {
		// Odd rounds trust the cache long; even rounds re-read it often, with reads
		// slower than the refresh, so stale reads land after it: the cache must still
		// never go back to the old row.
		ttl := time.Hour
		if round%2 == 0 {
			ttl = 2 * time.Millisecond
		}
		f := setup(t, interact.Config{})
		f.deps.Store = &slowStore{Store: f.store}
		f.deps.Now = time.Now
		f.svc = interact.NewService(interact.Config{CacheTTL: ttl}, f.deps)
		oldKey := f.enable(t, tenantA, interact.Patch{})
		ctx := context.Background()

		var (
			refreshed atomic.Bool
			newKey    atomic.Value
			stop      atomic.Bool
			wg        sync.WaitGroup
			oldOK     atomic.Int64
			badOld    atomic.Int64
			badNew    atomic.Int64
			newOK     atomic.Int64
		)
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; !stop.Load(); i++ {
					after := refreshed.Load() // read before the request starts
					_, err := f.svc.Authorize(ctx, interact.Request{TenantID: tenantA, Key: oldKey, Client: fmt.Sprint("old-", g, "-", i)})
					switch {
					case err == nil && after:
						badOld.Add(1)
					case err == nil:
						oldOK.Add(1)
					}
					if after {
						k := newKey.Load().(string)
						if _, err := f.svc.Authorize(ctx, interact.Request{TenantID: tenantA, Key: k, Client: fmt.Sprint("new-", g)}); err != nil {
							badNew.Add(1)
						} else {
							newOK.Add(1)
						}
					}
				}
			}()
		}
		for oldOK.Load() < 20 { // validations are under way
			time.Sleep(100 * time.Microsecond)
		}
		v, err := f.svc.RefreshKey(ctx, tenantA)
		if err != nil {
			t.Fatal(err)
		}
		newKey.Store(v.WidgetKey)
		refreshed.Store(true)
		// Run until enough requests started after the refresh, however slow the
		// machine (a fixed sleep proved nothing on a loaded one).
		for deadline := time.Now().Add(20 * time.Second); newOK.Load()+badNew.Load() < 40 && time.Now().Before(deadline); {
			time.Sleep(100 * time.Microsecond)
		}
		stop.Store(true)
		wg.Wait()
		if badOld.Load() != 0 || badNew.Load() != 0 {
			t.Fatalf("round %d: after the refresh returned, %d old-key requests succeeded and %d new-key requests failed", round, badOld.Load(), badNew.Load())
		}
		if oldOK.Load() == 0 || newOK.Load() == 0 {
			t.Fatalf("round %d: the test proved nothing: %d old-key successes before, %d new-key successes after", round, oldOK.Load(), newOK.Load())
		}
	}
}

// Another instance (its own cache, same storage) accepts a new key at once and stops
// accepting the old one within CacheTTL.
func TestRefreshOnAnotherInstance(t *testing.T) {
	f := setup(t, interact.Config{})
	oldKey := f.enable(t, tenantA, interact.Patch{})
	ctx := context.Background()
	other := interact.NewService(interact.Config{}, f.deps)
	if _, err := other.Authorize(ctx, req(tenantA, oldKey)); err != nil {
		t.Fatal(err)
	}
	v, err := f.svc.RefreshKey(ctx, tenantA)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Authorize(ctx, req(tenantA, v.WidgetKey)); err != nil {
		t.Fatalf("new key on another instance: %v", err)
	}
	// The re-read for the new key also dropped the old one there.
	if _, err := other.Authorize(ctx, req(tenantA, oldKey)); !errors.Is(err, interact.ErrUnauthorized) {
		t.Fatalf("old key after the other instance re-read: %v", err)
	}
	third := interact.NewService(interact.Config{}, f.deps)
	if _, err := third.Authorize(ctx, req(tenantA, v.WidgetKey)); err != nil {
		t.Fatal(err)
	}
	v2, _ := f.svc.RefreshKey(ctx, tenantA)
	if _, err := third.Authorize(ctx, req(tenantA, v.WidgetKey)); err != nil {
		t.Fatalf("within CacheTTL another instance may still accept the previous key: %v", err)
	}
	f.clock.Add(interact.DefaultCacheTTL)
	if _, err := third.Authorize(ctx, req(tenantA, v.WidgetKey)); !errors.Is(err, interact.ErrUnauthorized) {
		t.Fatalf("previous key after CacheTTL: %v", err)
	}
	if _, err := third.Authorize(ctx, req(tenantA, v2.WidgetKey)); err != nil {
		t.Fatal(err)
	}
}

func TestGracePeriodKeepsThePreviousKeyForItsLength(t *testing.T) {
	f := setup(t, interact.Config{KeyGrace: 30 * time.Second})
	oldKey := f.enable(t, tenantA, interact.Patch{})
	ctx := context.Background()
	v, err := f.svc.RefreshKey(ctx, tenantA)
	if err != nil {
		t.Fatal(err)
	}
	if v.PreviousKeyValidUntil.IsZero() {
		t.Fatalf("view does not show the grace period: %+v", v)
	}
	f.clock.Add(29 * time.Second)
	for _, k := range []string{oldKey, v.WidgetKey, strings.ToUpper(v.WidgetKey)} {
		if _, err := f.svc.Authorize(ctx, req(tenantA, k)); err != nil {
			t.Fatalf("within the grace period: %v", err)
		}
	}
	f.clock.Add(time.Second)
	if _, err := f.svc.Authorize(ctx, req(tenantA, oldKey)); !errors.Is(err, interact.ErrUnauthorized) {
		t.Fatalf("old key after the grace period: %v", err)
	}
	// A second refresh ends the first key's grace at once.
	v2, _ := f.svc.RefreshKey(ctx, tenantA)
	_ = v2
	if _, err := f.svc.Authorize(ctx, req(tenantA, oldKey)); !errors.Is(err, interact.ErrUnauthorized) {
		t.Fatal("a key two refreshes old must be refused")
	}
	if _, err := f.svc.Authorize(ctx, req(tenantA, v.WidgetKey)); err != nil {
		t.Fatalf("the key just replaced is in its grace period: %v", err)
	}
}

func TestAuthorizeChecksInOrderWithoutHints(t *testing.T) {
	f := setup(t, interact.Config{DefaultAudiences: []string{"api://widget"}})
	ctx := context.Background()
	keyA := f.enable(t, tenantA, interact.Patch{AllowedOrigins: &[]string{"https://shop.contoso.com"}})
	// tenant B: settings stored but disabled.
	vB, err := f.svc.UpdateSettings(ctx, tenantB, interact.Patch{RecoveryTimeoutSeconds: ptr(10)})
	if err != nil {
		t.Fatal(err)
	}
	keyB := vB.WidgetKey
	cases := []struct {
		name string
		r    interact.Request
		want error
	}{
		{"unknown tenant", req(unknown, keyA), interact.ErrUnauthorized},
		{"wrong key", req(tenantA, interact.NewGUID()), interact.ErrUnauthorized},
		{"no key", req(tenantA, ""), interact.ErrUnauthorized},
		{"another tenant's key", req(tenantA, keyB), interact.ErrUnauthorized},
		{"disabled, wrong key", req(tenantB, keyA), interact.ErrUnauthorized},
		{"disabled, right key", req(tenantB, keyB), interact.ErrDisabled},
		{"origin not allowed", interact.Request{TenantID: tenantA, Key: keyA, Origin: "https://evil.example"}, interact.ErrOriginNotAllowed},
		{"origin allowed", interact.Request{TenantID: tenantA, Key: keyA, Origin: "https://shop.contoso.com"}, nil},
		{"no origin (not a browser)", req(tenantA, keyA), nil},
		{"key with spaces and upper case", req(tenantA, " "+strings.ToUpper(keyA)+" "), nil},
	}
	for _, c := range cases {
		_, err := f.svc.Authorize(ctx, c.r)
		if !errors.Is(err, c.want) || (c.want == nil && err != nil) {
			t.Errorf("%s: %v; want %v", c.name, err, c.want)
		}
		if errors.Is(err, interact.ErrUnauthorized) && err.Error() == "" {
			t.Errorf("%s: empty error", c.name)
		}
	}
	if f.tokens.calls.Load() != 0 {
		t.Fatal("mode None must not verify tokens")
	}

	for _, mode := range []interact.AuthMode{interact.ModeVerifyToken, interact.ModeVerifyTokenAndTenant} {
		if _, err := f.svc.UpdateSettings(ctx, tenantA, interact.Patch{AuthMode: ptr(mode)}); err != nil {
			t.Fatal(err)
		}
		for token, want := range map[string]error{
			"":                                  interact.ErrUnauthorized,
			"garbage":                           interact.ErrUnauthorized,
			"good:" + tenantA + ":api://widget": nil,
			"good:" + tenantA + ":api://other":  interact.ErrUnauthorized,
			"good:" + tenantB + ":api://widget": map[bool]error{true: interact.ErrUnauthorized, false: nil}[mode == interact.ModeVerifyTokenAndTenant],
			"good:" + strings.Repeat("x", 3) + ":api": interact.ErrUnauthorized,
		} {
			r := req(tenantA, keyA)
			r.Token, r.Client = token, interact.NewGUID()
			_, err := f.svc.Authorize(ctx, r)
			if !errors.Is(err, want) || (want == nil && err != nil) {
				t.Errorf("%s, token %q: %v; want %v", mode, token, err, want)
			}
		}
		// A wrong key is refused before any token work.
		before := f.tokens.calls.Load()
		r := req(tenantA, interact.NewGUID())
		r.Token = "good:" + tenantA + ":api://widget"
		if _, err := f.svc.Authorize(ctx, r); !errors.Is(err, interact.ErrUnauthorized) || f.tokens.calls.Load() != before {
			t.Errorf("%s: wrong key with a good token: %v, %d verifications", mode, err, f.tokens.calls.Load()-before)
		}
	}
}

func TestRepeatedFailuresAreRateLimitedPerTenantAndClient(t *testing.T) {
	f := setup(t, interact.Config{Limit: interact.LimitConfig{Burst: 5, Refill: 10 * time.Second}})
	key := f.enable(t, tenantA, interact.Patch{})
	ctx := context.Background()
	bad := req(tenantA, "nope")
	for i := 0; i < 5; i++ {
		if _, err := f.svc.Authorize(ctx, bad); !errors.Is(err, interact.ErrUnauthorized) {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	_, err := f.svc.Authorize(ctx, req(tenantA, key)) // the right key from the same client: limited too
	var rl *interact.RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter != 10*time.Second {
		t.Fatalf("after 5 failures: %v; want *RateLimitedError with RetryAfter 10s", err)
	}
	other := req(tenantA, key)
	other.Client = "198.51.100.1"
	if _, err := f.svc.Authorize(ctx, other); err != nil {
		t.Fatalf("another client is not limited: %v", err)
	}
	f.enable(t, tenantB, interact.Patch{})
	if _, err := f.svc.Authorize(ctx, req(tenantB, "nope")); !errors.Is(err, interact.ErrUnauthorized) {
		t.Fatalf("same client, another tenant: %v; want 401, not limited", err)
	}
	f.clock.Add(10 * time.Second)
	if _, err := f.svc.Authorize(ctx, req(tenantA, key)); err != nil {
		t.Fatalf("after the refill: %v", err)
	}
}

func TestLimiterMemoryIsBounded(t *testing.T) {
	l := interact.NewLimiter(interact.LimitConfig{MaxClients: 100})
	now := time.Now()
	for i := 0; i < 10_000; i++ {
		l.Take(tenantA, fmt.Sprint("client-", i), now) // a failed attempt
	}
	if n := l.Len(); n > 100 {
		t.Fatalf("%d buckets kept; want at most 100", n)
	}
	l.Take(tenantA, "x", now)
	if _, ok := l.Take(tenantA, "x", now); !ok {
		t.Fatal("one failure must not limit")
	}
}

func TestReturnedAttemptsCostNothing(t *testing.T) {
	l := interact.NewLimiter(interact.LimitConfig{Burst: 2})
	now := time.Now()
	for i := 0; i < 10; i++ {
		if _, ok := l.Take(tenantA, "x", now); !ok {
			t.Fatalf("attempt %d after %d returned ones: refused", i+1, i)
		}
		l.Return(tenantA, "x", now)
	}
	l.Take(tenantA, "x", now)
	l.Take(tenantA, "x", now)
	if wait, ok := l.Take(tenantA, "x", now); ok || wait <= 0 {
		t.Fatalf("third attempt of a burst of 2 in flight: ok=%v wait=%s; want refused with a wait", ok, wait)
	}
}

// Many clients failing at once, while the settings are read slowly, get no more
// attempts than the tenant's burst: attempts are taken before the checks run.
func TestConcurrentFailuresDoNotOverrunTheTenantLimit(t *testing.T) {
	f := setup(t, interact.Config{TenantLimit: interact.LimitConfig{Burst: 20}})
	f.enable(t, tenantA, interact.Patch{})
	f.deps.Store = &slowStore{Store: f.store}
	f.svc = interact.NewService(interact.Config{TenantLimit: interact.LimitConfig{Burst: 20}}, f.deps)
	ctx := context.Background()
	var unauthorized, limited atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r := req(tenantA, "guess")
			r.Client = fmt.Sprint("10.0.", i/250, ".", i%250)
			_, err := f.svc.Authorize(ctx, r)
			var rl *interact.RateLimitedError
			switch {
			case errors.As(err, &rl) && rl.Tenant:
				limited.Add(1)
			case errors.Is(err, interact.ErrUnauthorized):
				unauthorized.Add(1)
			default:
				t.Errorf("unexpected: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if unauthorized.Load() != 20 || limited.Load() != 180 {
		t.Fatalf("%d guesses checked, %d refused by the tenant limit; want 20 and 180", unauthorized.Load(), limited.Load())
	}
}

// The tenant's limit holds across clients; the right key waits too while it is spent,
// and works again one refill after the last failure. Other tenants are unaffected.
func TestTenantLimitAcrossClients(t *testing.T) {
	f := setup(t, interact.Config{TenantLimit: interact.LimitConfig{Burst: 20, Refill: 2 * time.Second}})
	key := f.enable(t, tenantA, interact.Patch{})
	keyB := f.enable(t, tenantB, interact.Patch{})
	ctx := context.Background()
	client := func(i int, tenantID, key string) interact.Request {
		r := req(tenantID, key)
		r.Client = fmt.Sprint("client-", i)
		return r
	}
	for i := 0; i < 20; i++ {
		if _, err := f.svc.Authorize(ctx, client(i, tenantA, "guess")); !errors.Is(err, interact.ErrUnauthorized) {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	var rl *interact.RateLimitedError
	if _, err := f.svc.Authorize(ctx, client(99, tenantA, key)); !errors.As(err, &rl) || !rl.Tenant || rl.RetryAfter != 2*time.Second {
		t.Fatalf("right key, fresh client, budget spent: %v; want the tenant's limit, retry after 2s", err)
	}
	if _, err := f.svc.Authorize(ctx, client(0, tenantB, keyB)); err != nil {
		t.Fatalf("another tenant: %v", err)
	}
	f.clock.Add(2 * time.Second)
	if _, err := f.svc.Authorize(ctx, client(99, tenantA, key)); err != nil {
		t.Fatalf("after one refill: %v", err)
	}
}

func TestSessionsAreCreatedRecoveredAndExpire(t *testing.T) {
	f := setup(t, interact.Config{})
	key := f.enable(t, tenantA, interact.Patch{RecoveryTimeoutSeconds: ptr(20)})
	ctx := context.Background()
	s, err := f.svc.Authorize(ctx, req(tenantA, key))
	if err != nil {
		t.Fatal(err)
	}
	first, err := f.svc.StartSession(ctx, s, interact.StartRequest{CustomerID: "cust-1"})
	if err != nil || first.Recovered || first.State != interact.SessionOpen || first.ACS.Configured || first.ACS.Identity != nil {
		t.Fatalf("new session = %+v, %v", first, err)
	}
	// An open session is simply resumed (a page reload).
	again, err := f.svc.StartSession(ctx, s, interact.StartRequest{CustomerID: "cust-1", SessionID: first.SessionID})
	if err != nil || again.SessionID != first.SessionID || !again.Recovered {
		t.Fatalf("resume open session = %+v, %v", again, err)
	}
	if err := f.svc.CloseSession(ctx, s, first.SessionID, "cust-1"); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(20 * time.Second) // exactly the timeout: still recoverable
	rec, err := f.svc.StartSession(ctx, s, interact.StartRequest{CustomerID: "cust-1", SessionID: strings.ToUpper(first.SessionID)})
	if err != nil || rec.SessionID != first.SessionID || !rec.Recovered || rec.State != interact.SessionOpen {
		t.Fatalf("recover within the timeout = %+v, %v", rec, err)
	}
	// Another customer cannot take it over: they get a new session.
	other, err := f.svc.StartSession(ctx, s, interact.StartRequest{CustomerID: "cust-2", SessionID: first.SessionID})
	if err != nil || other.SessionID == first.SessionID || other.Recovered {
		t.Fatalf("another customer's session id = %+v, %v", other, err)
	}
	if err := f.svc.CloseSession(ctx, s, first.SessionID, "cust-2"); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("closing another customer's session = %v; want not found", err)
	}
	if err := f.svc.CloseSession(ctx, s, first.SessionID, "cust-1"); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(20*time.Second + time.Millisecond)
	late, err := f.svc.StartSession(ctx, s, interact.StartRequest{CustomerID: "cust-1", SessionID: first.SessionID})
	if err != nil || late.SessionID == first.SessionID || late.Recovered {
		t.Fatalf("after the timeout = %+v, %v; want a new session", late, err)
	}
	unknownSession, err := f.svc.StartSession(ctx, s, interact.StartRequest{CustomerID: "cust-1", SessionID: interact.NewGUID()})
	if err != nil || unknownSession.Recovered {
		t.Fatalf("unknown session id = %+v, %v; want a new session", unknownSession, err)
	}
	for name, r := range map[string]interact.StartRequest{
		"customerId":   {},
		"customerId ":  {CustomerID: strings.Repeat("x", 257)},
		"customerId\t": {CustomerID: "a\nb"},
		"sessionId":    {CustomerID: "c", SessionID: "not-a-guid"},
	} {
		var fe *fault.FieldError
		if _, err := f.svc.StartSession(ctx, s, r); !errors.As(err, &fe) || fe.Field != strings.TrimSpace(name) {
			t.Errorf("%q: %v; want a FieldError naming %s", name, err, strings.TrimSpace(name))
		}
	}
}

// An ACS failure of a session is exactly one of the three kinds, and nothing of its
// cause (a field error naming the connection string) shows through.
func TestSessionACSFailuresAreClassified(t *testing.T) {
	f := setup(t, interact.Config{})
	conn := "endpoint=https://contoso.communication.azure.com/;accesskey=c2VjcmV0"
	key := f.enable(t, tenantA, interact.Patch{ACSConnectionString: &conn})
	ctx := context.Background()
	s, err := f.svc.Authorize(ctx, req(tenantA, key))
	if err != nil {
		t.Fatal(err)
	}
	kinds := []error{interact.ErrACSRefused, interact.ErrACSUnreachable, interact.ErrACSFailed}
	for _, tc := range []struct {
		cause error
		want  error
	}{
		{fmt.Errorf("create ACS identity: %w (HTTP 401)", interact.ErrACSRefused), interact.ErrACSRefused},
		{fmt.Errorf("create ACS identity: %w: i/o timeout", interact.ErrACSUnreachable), interact.ErrACSUnreachable},
		{fmt.Errorf("create ACS identity: %w", fault.Invalid("acsConnectionString", "must be ...")), interact.ErrACSFailed},
	} {
		f.acs.err = tc.cause
		_, err := f.svc.StartSession(ctx, s, interact.StartRequest{CustomerID: "c"})
		for _, k := range kinds {
			if errors.Is(err, k) != (k == tc.want) {
				t.Errorf("%v: errors.Is(%v) = %v", tc.cause, k, !(k == tc.want))
			}
		}
		var fe *fault.FieldError
		if errors.As(err, &fe) || fault.IsPermanent(err) {
			t.Errorf("%v: the cause shows through: %v", tc.cause, err)
		}
	}
}

func TestSessionsGetACSIdentitiesWhenConfigured(t *testing.T) {
	f := setup(t, interact.Config{})
	conn := "endpoint=https://contoso.communication.azure.com/;accesskey=c2VjcmV0"
	key := f.enable(t, tenantA, interact.Patch{ACSConnectionString: &conn})
	ctx := context.Background()
	s, err := f.svc.Authorize(ctx, req(tenantA, key))
	if err != nil {
		t.Fatal(err)
	}
	st, err := f.svc.StartSession(ctx, s, interact.StartRequest{CustomerID: "c"})
	if err != nil || !st.ACS.Configured || st.ACS.Identity == nil || st.ACS.Identity.ID != "8:acs:user-1" || st.ACS.Identity.Token == "" {
		t.Fatalf("session with ACS = %+v, %v", st, err)
	}
	_ = f.svc.CloseSession(ctx, s, st.SessionID, "c")
	rec, err := f.svc.StartSession(ctx, s, interact.StartRequest{CustomerID: "c", SessionID: st.SessionID})
	if err != nil || !rec.Recovered || rec.ACS.Identity == nil || rec.ACS.Identity.ID != "8:acs:user-1" || len(f.acs.issued) != 1 {
		t.Fatalf("recovered session keeps its identity with a new token: %+v, %v, issued %v", rec, err, f.acs.issued)
	}
	stored, _ := f.store.GetSession(ctx, tenantA, st.SessionID)
	if b, _ := json.Marshal(stored); strings.Contains(string(b), "tok") {
		t.Fatalf("the ACS token must not be stored: %s", b)
	}
}

func TestAdminSettings(t *testing.T) {
	f := setup(t, interact.Config{})
	ctx := context.Background()
	if _, err := f.svc.Settings(ctx, unknown); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("unknown tenant: %v", err)
	}
	if _, err := f.svc.RefreshKey(ctx, unknown); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("refresh of an unknown tenant: %v", err)
	}
	v, err := f.svc.Settings(ctx, tenantA)
	if err != nil || v.Enabled || v.AuthMode != interact.ModeNone || v.RecoveryTimeoutSeconds != 20 || v.WidgetKeyStatus != interact.KeyNone {
		t.Fatalf("defaults = %+v, %v", v, err)
	}
	conn := "Endpoint=https://contoso.communication.azure.com/;AccessKey=c2VjcmV0"
	v, err = f.svc.UpdateSettings(ctx, tenantA, interact.Patch{Enabled: ptr(true), ACSConnectionString: &conn,
		AllowedOrigins: &[]string{"https://Shop.Contoso.com", "http://localhost:3000"}, MeetingUserID: ptr("6A1D5F2E-1111-4222-8333-944455556666")})
	if err != nil {
		t.Fatal(err)
	}
	if !v.ACSConnectionStringSet || v.AllowedOrigins[0] != "https://shop.contoso.com" || v.MeetingUserID != "6a1d5f2e-1111-4222-8333-944455556666" {
		t.Fatalf("view = %+v", v)
	}
	b, _ := json.Marshal(v)
	if strings.Contains(string(b), "c2VjcmV0") || strings.Contains(strings.ToLower(string(b)), "accesskey") {
		t.Fatalf("the view leaks the ACS connection string: %s", b)
	}
	if stored, _ := f.store.GetSettings(ctx, tenantA); strings.Contains(fmt.Sprint(stored), v.WidgetKey) || stored.KeyHash != interact.HashKey(v.WidgetKey) {
		t.Fatalf("the settings row must hold the key's hash only: %+v", stored)
	}
	read, _ := f.svc.Settings(ctx, tenantA)
	if read.WidgetKey != v.WidgetKey || read.WidgetKeyStatus != interact.KeySet {
		t.Fatalf("admins read the key: %+v", read)
	}
	version := func() int64 { s, _ := f.store.GetSettings(ctx, tenantA); return s.Version }
	before := version()
	bad := []struct {
		p     interact.Patch
		field string
	}{
		{interact.Patch{RecoveryTimeoutSeconds: ptr(4)}, "recoveryTimeoutSeconds"},
		{interact.Patch{RecoveryTimeoutSeconds: ptr(61)}, "recoveryTimeoutSeconds"},
		{interact.Patch{AuthMode: ptr(interact.AuthMode("Basic"))}, "authMode"},
		{interact.Patch{AuthMode: ptr(interact.ModeVerifyToken)}, "tokenAudiences"}, // no audience anywhere
		{interact.Patch{AllowedOrigins: &[]string{"http://shop.contoso.com"}}, "allowedOrigins"},
		{interact.Patch{AllowedOrigins: &[]string{"https://*.contoso.com"}}, "allowedOrigins"},
		{interact.Patch{AllowedOrigins: &[]string{"https://contoso.com/path"}}, "allowedOrigins"},
		{interact.Patch{TokenAudiences: &[]string{"not an audience"}}, "tokenAudiences"},
		{interact.Patch{MeetingUserID: ptr("bob@contoso.com")}, "meetingUserId"},
		{interact.Patch{ACSConnectionString: ptr("endpoint=http://x.example;accesskey=k")}, "acsConnectionString"},
		{interact.Patch{ACSConnectionString: ptr("accesskey=k")}, "acsConnectionString"},
		{interact.Patch{Enabled: ptr(false), RecoveryTimeoutSeconds: ptr(0)}, "recoveryTimeoutSeconds"},
	}
	for _, c := range bad {
		var fe *fault.FieldError
		if _, err := f.svc.UpdateSettings(ctx, tenantA, c.p); !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%+v: %v; want a FieldError on %s", c.p, err, c.field)
		}
	}
	if after := version(); after != before {
		t.Fatalf("refused updates wrote (version %d → %d)", before, after)
	}
	if s, _ := f.store.GetSettings(ctx, tenantA); !s.Enabled {
		t.Fatal("a refused update changed enabled")
	}
	v, err = f.svc.UpdateSettings(ctx, tenantA, interact.Patch{AuthMode: ptr(interact.ModeVerifyToken), TokenAudiences: &[]string{"api://widget"}})
	if err != nil || v.AuthMode != interact.ModeVerifyToken {
		t.Fatalf("token mode with an audience: %+v, %v", v, err)
	}
	if r, err := f.svc.CheckACS(ctx, tenantA); err != nil || r.Status != interact.CheckOK {
		t.Fatalf("check = %+v, %v", r, err)
	}
	if _, err := f.svc.UpdateSettings(ctx, tenantA, interact.Patch{ACSConnectionString: ptr("")}); err != nil {
		t.Fatal(err)
	}
	if r, err := f.svc.CheckACS(ctx, tenantA); err != nil || r.Status != interact.CheckNotConfigured {
		t.Fatalf("check without a string = %+v, %v", r, err)
	}
	// The stored key disagreeing with the hash (a refresh that failed half-way) is
	// reported, not shown.
	_ = f.store.PutSecret(ctx, tenantA, interact.SecretWidgetKey, interact.NewGUID())
	if v, _ := f.svc.Settings(ctx, tenantA); v.WidgetKeyStatus != interact.KeyUnknown || v.WidgetKey != "" {
		t.Fatalf("mismatching stored key: %+v", v)
	}
}

func TestNewGUIDIsVersion4(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		g := interact.NewGUID()
		if !interact.IsGUID(g) || g[14] != '4' || !strings.ContainsRune("89ab", rune(g[19])) || seen[g] || g != strings.ToLower(g) {
			t.Fatalf("GUID %q", g)
		}
		seen[g] = true
	}
}

func TestParseACSConnectionString(t *testing.T) {
	ep, key, err := interact.ParseACSConnectionString(" AccessKey=abc==; endpoint=https://x.communication.azure.com/ ")
	if err != nil || ep != "https://x.communication.azure.com" || key != "abc==" {
		t.Fatalf("= %q %q %v", ep, key, err)
	}
	_, _, err = interact.ParseACSConnectionString("endpoint=ftp://x;accesskey=SECRETVALUE")
	if err == nil || strings.Contains(err.Error(), "SECRETVALUE") {
		t.Fatalf("bad endpoint: %v", err)
	}
}

// gatedStore returns the row it read before waiting: a read that started before a
// refresh and finishes after it. Armed once by hold.
type gatedStore struct {
	*inmem.Store
	hold    atomic.Pointer[chan struct{}]
	reading chan struct{}
}

func (s *gatedStore) GetSettings(ctx context.Context, id string) (interact.Settings, error) {
	v, err := s.Store.GetSettings(ctx, id)
	if gate := s.hold.Swap(nil); gate != nil {
		s.reading <- struct{}{}
		<-*gate
	}
	return v, err
}

// A cache read that started before a refresh and ends after it must not bring the old
// key back.
func TestAStaleReadDoesNotUndoARefresh(t *testing.T) {
	f := setup(t, interact.Config{})
	gs := &gatedStore{Store: f.store, reading: make(chan struct{})}
	f.deps.Store = gs
	f.svc = interact.NewService(interact.Config{}, f.deps)
	oldKey := f.enable(t, tenantA, interact.Patch{})
	ctx := context.Background()
	f.clock.Add(interact.DefaultCacheTTL) // the cached row is due for a re-read
	gate := make(chan struct{})
	gs.hold.Store(&gate)
	done := make(chan error)
	go func() { _, err := f.svc.Authorize(ctx, req(tenantA, oldKey)); done <- err }()
	<-gs.reading // the re-read holds the old row
	v, err := f.svc.RefreshKey(ctx, tenantA)
	if err != nil {
		t.Fatal(err)
	}
	close(gate)
	<-done // it started before the refresh: either answer is right
	if _, err := f.svc.Authorize(ctx, req(tenantA, oldKey)); !errors.Is(err, interact.ErrUnauthorized) {
		t.Fatalf("old key after the refresh returned: %v", err)
	}
	if _, err := f.svc.Authorize(ctx, req(tenantA, v.WidgetKey)); err != nil {
		t.Fatalf("new key: %v", err)
	}
}
