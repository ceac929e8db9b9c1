package interact

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/tenant"
)

// Config tunes a Service. Zero values take the defaults.
type Config struct {
	// KeyGrace is how long the previous widget key keeps working after a refresh
	// (default 0: refused as soon as RefreshKey returns).
	KeyGrace time.Duration
	// DefaultAudiences are the token audiences accepted for tenants that set none.
	DefaultAudiences []string
	// CacheTTL bounds how long a cached settings row is trusted (default 2 s). It is
	// the cross-instance staleness bound, see Service.
	CacheTTL time.Duration
	// Limit is the failed-attempt limit per (tenant, client address); zero fields take
	// NewLimiter's defaults (10 attempts, then one per 6 s).
	Limit LimitConfig
	// TenantLimit is the failed-attempt limit per tenant across all client addresses;
	// zero fields take DefaultTenantBurst, DefaultTenantRefill and 10,000 tenants
	// tracked. Its burst and refill must stay well above one client's (Limit) so that
	// one address alone can never exhaust it. Both limits are kept in memory by the
	// Service: each instance of the app has its own.
	TenantLimit LimitConfig
}

// Defaults of Config.TenantLimit: 100 failed attempts per tenant, then one a second.
// One address gets at most 10 and then one per 6 s (Config.Limit), so it can never
// empty the tenant's bucket on its own. Ten addresses at once, or seven failing at
// their full rate, can; every attempt for the tenant, right key included, is then
// refused (*RateLimitedError with Tenant set) until the failures stop, for at most
// DefaultTenantRefill after the last one.
const (
	DefaultTenantBurst  = 100
	DefaultTenantRefill = time.Second
)

// DefaultCacheTTL is Config.CacheTTL's default.
const DefaultCacheTTL = 2 * time.Second

// maxCacheEntries bounds the settings cache (unknown tenant ids are cached too, so a
// caller inventing ids cannot grow it without bound).
const maxCacheEntries = 10_000

// Deps are the ports a Service uses. Tokens and ACS may be nil: token modes then
// refuse every request, and sessions never get ACS identities.
type Deps struct {
	Tenants tenant.Store
	Secrets tenant.Secrets
	Store   Store
	Tokens  TokenVerifier
	ACS     ACS
	Now     func() time.Time // nil = time.Now
}

// Service authorizes widget requests, runs sessions and the admin operations. Safe for
// concurrent use.
//
// Settings cache and key refresh. Authorize reads a tenant's settings from an
// in-process cache, not from storage on every request. Entries carry the settings'
// Version and the cache never replaces an entry by an older version, so:
//
//   - In this process, once RefreshKey (or UpdateSettings) returns, every Authorize
//     that starts afterwards sees the new settings: the old key is refused (beyond
//     KeyGrace) and the new key accepted.
//   - Across instances, another instance trusts its cached row for at most CacheTTL
//     (default 2 s): it may accept the old key for up to CacheTTL after RefreshKey
//     returned (plus KeyGrace). It never refuses the new key: a key that matches no
//     cached hash makes it re-read the row before refusing (concurrent re-reads of one
//     tenant share one storage read). Settings changes (enabled, mode, origins) reach
//     other instances within CacheTTL too.
type Service struct {
	cfg     Config
	d       Deps
	clients *Limiter // per (tenant, client address)
	tenants *Limiter // per tenant (client "")

	mu      sync.RWMutex
	cache   map[string]*entry
	loading map[string]*load
}

// entry is one cached settings row, with the key hashes decoded.
type entry struct {
	s        Settings
	found    bool
	cur      [sha256.Size]byte
	prev     [sha256.Size]byte
	hasCur   bool
	hasPrev  bool
	loadedAt time.Time
}

type load struct {
	done chan struct{}
	err  error
}

// NewService returns a Service.
func NewService(cfg Config, d Deps) *Service {
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = DefaultCacheTTL
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	tl := cfg.TenantLimit
	if tl.Burst <= 0 {
		tl.Burst = DefaultTenantBurst
	}
	if tl.Refill <= 0 {
		tl.Refill = DefaultTenantRefill
	}
	return &Service{cfg: cfg, d: d, clients: NewLimiter(cfg.Limit), tenants: NewLimiter(tl),
		cache: map[string]*entry{}, loading: map[string]*load{}}
}

// HashKey is the stored form of a widget key: hex SHA-256 of the key, lower-cased.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(key))))
	return hex.EncodeToString(sum[:])
}

func newEntry(s Settings, found bool, now time.Time) *entry {
	e := &entry{s: s, found: found, loadedAt: now}
	if b, err := hex.DecodeString(s.KeyHash); err == nil && len(b) == sha256.Size {
		copy(e.cur[:], b)
		e.hasCur = true
	}
	if b, err := hex.DecodeString(s.PrevKeyHash); err == nil && len(b) == sha256.Size {
		copy(e.prev[:], b)
		e.hasPrev = true
	}
	return e
}

// remember caches s unless a newer version is cached; it returns the entry now cached.
func (svc *Service) remember(e *entry) *entry {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	old, ok := svc.cache[e.s.TenantID]
	if ok && old.s.Version > e.s.Version {
		return old
	}
	if !ok && len(svc.cache) >= maxCacheEntries {
		clear(svc.cache)
	}
	svc.cache[e.s.TenantID] = e
	return e
}

func (svc *Service) cached(tenantID string) (*entry, bool) {
	svc.mu.RLock()
	e, ok := svc.cache[tenantID]
	svc.mu.RUnlock()
	return e, ok
}

// settings returns the cached entry of the tenant, reading storage when there is none,
// when it is older than CacheTTL, or when fresh is set (one shared read per tenant).
func (svc *Service) settings(ctx context.Context, tenantID string, fresh bool) (*entry, error) {
	if e, ok := svc.cached(tenantID); ok && !fresh && svc.d.Now().Sub(e.loadedAt) < svc.cfg.CacheTTL {
		return e, nil
	}
	svc.mu.Lock()
	l, ok := svc.loading[tenantID]
	if !ok {
		l = &load{done: make(chan struct{})}
		svc.loading[tenantID] = l
		go svc.load(tenantID, l)
	}
	svc.mu.Unlock()
	select {
	case <-l.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if l.err != nil {
		return nil, l.err
	}
	e, _ := svc.cached(tenantID)
	return e, nil
}

// load reads the row in its own goroutine (so one caller's cancellation does not fail
// the others) and caches it.
func (svc *Service) load(tenantID string, l *load) {
	defer func() {
		svc.mu.Lock()
		delete(svc.loading, tenantID)
		svc.mu.Unlock()
		close(l.done)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	now := svc.d.Now()
	s, err := svc.d.Store.GetSettings(ctx, tenantID)
	switch {
	case errors.Is(err, fault.ErrNotFound):
		svc.remember(newEntry(Settings{TenantID: tenantID}, false, now))
	case err != nil:
		l.err = fmt.Errorf("read interact settings: %w", err)
	default:
		s.TenantID = tenantID
		svc.remember(newEntry(s, true, now))
	}
}

// matches compares the presented key with the current and (within the grace period)
// previous hash, in constant time.
func (e *entry) matches(sum *[sha256.Size]byte, now time.Time) bool {
	cur := subtle.ConstantTimeCompare(sum[:], e.cur[:]) & boolInt(e.hasCur)
	prev := subtle.ConstantTimeCompare(sum[:], e.prev[:]) & boolInt(e.hasPrev && now.Before(e.s.PrevKeyValidUntil))
	return cur|prev == 1
}

// stale reports whether the key is the previous one (a widget page loaded before the
// last refresh), whether or not its grace period is over.
func (e *entry) stale(sum *[sha256.Size]byte) bool {
	return e.hasPrev && subtle.ConstantTimeCompare(sum[:], e.prev[:]) == 1
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Request is what a widget request presents.
type Request struct {
	TenantID string // lower-case GUID from the path
	Key      string // X-Widget-Key
	Token    string // bearer token without "Bearer ", or ""
	Client   string // the client's address as the platform vouches for it, for rate limiting only
	Origin   string // Origin header, or "" (non-browser callers)
}

// Authorize checks a widget request in this order: rate limits (*RateLimitedError),
// tenant and key (ErrUnauthorized; an unknown tenant is indistinguishable from a wrong
// key), enabled (ErrDisabled), origin when one is sent (ErrOriginNotAllowed), token
// per the tenant's mode (ErrUnauthorized). It returns the tenant's settings. Other
// errors are storage failures.
//
// Key and token failures count against two limits: the (tenant, client) one and the
// tenant's across all clients (Config.Limit, Config.TenantLimit). The attempt is taken
// from both before any check, so concurrent attempts cannot overrun them, and given
// back unless it failed. The previous widget key after its grace period (a page loaded
// before the last refresh) is refused without counting: it is no guess.
func (svc *Service) Authorize(ctx context.Context, r Request) (Settings, error) {
	now := svc.d.Now()
	if wait, ok := svc.clients.Take(r.TenantID, r.Client, now); !ok {
		return Settings{}, &RateLimitedError{RetryAfter: wait}
	}
	if wait, ok := svc.tenants.Take(r.TenantID, "", now); !ok {
		svc.clients.Return(r.TenantID, r.Client, now)
		return Settings{}, &RateLimitedError{RetryAfter: wait, Tenant: true}
	}
	failed := false
	defer func() {
		if !failed {
			svc.clients.Return(r.TenantID, r.Client, now)
			svc.tenants.Return(r.TenantID, "", now)
		}
	}()
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(r.Key))))
	e, err := svc.settings(ctx, r.TenantID, false)
	if err != nil {
		return Settings{}, err
	}
	if !e.matches(&sum, now) && e.found && !e.stale(&sum) {
		// The key may be newer than our cached row (refreshed on another instance):
		// re-read before refusing, so a new key never fails.
		if e, err = svc.settings(ctx, r.TenantID, true); err != nil {
			return Settings{}, err
		}
	}
	if !e.found || !e.matches(&sum, now) {
		if e.found && e.stale(&sum) {
			return Settings{}, &authError{"previous widget key"}
		}
		failed = true
		return Settings{}, &authError{"widget key"}
	}
	s := e.s
	if !s.Enabled {
		return Settings{}, ErrDisabled
	}
	if r.Origin != "" && !slices.Contains(s.AllowedOrigins, r.Origin) {
		return Settings{}, ErrOriginNotAllowed
	}
	if s.AuthMode == ModeVerifyToken || s.AuthMode == ModeVerifyTokenAndTenant {
		if err := svc.verifyToken(ctx, s, r.Token); err != nil {
			failed = true
			return Settings{}, err
		}
	}
	return s, nil
}

func (svc *Service) verifyToken(ctx context.Context, s Settings, token string) error {
	if token == "" {
		return &authError{"no bearer token"}
	}
	if svc.d.Tokens == nil {
		return &authError{"no token verifier configured"}
	}
	want := ""
	if s.AuthMode == ModeVerifyTokenAndTenant {
		want = s.TenantID
	}
	if err := svc.d.Tokens.VerifyToken(ctx, token, want, svc.audiences(s)); err != nil {
		return &authError{"token: " + err.Error()}
	}
	return nil
}

func (svc *Service) audiences(s Settings) []string {
	if len(s.TokenAudiences) > 0 {
		return s.TokenAudiences
	}
	return svc.cfg.DefaultAudiences
}

// AllowedOrigin reports whether origin may call the tenant's widget endpoints (for
// CORS preflight). An unknown tenant allows nothing. Errors are storage failures.
func (svc *Service) AllowedOrigin(ctx context.Context, tenantID, origin string) (bool, error) {
	e, err := svc.settings(ctx, tenantID, false)
	if err != nil {
		return false, err
	}
	return e.found && origin != "" && slices.Contains(e.s.AllowedOrigins, origin), nil
}

// NewGUID returns a random (version 4) GUID, lower-case, from crypto/rand.
func NewGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go ≥ 1.24)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// StartRequest is the body of a session request.
type StartRequest struct {
	CustomerID string `json:"customerId"`          // the widget's customer identifier (1..256 printable characters)
	SessionID  string `json:"sessionId,omitempty"` // a previous session to recover
}

// Started is a session as the widget gets it.
type Started struct {
	SessionID              string       `json:"sessionId"`
	State                  SessionState `json:"state"`
	Recovered              bool         `json:"recovered"`
	CreatedAt              time.Time    `json:"createdAt"`
	RecoveryTimeoutSeconds int          `json:"recoveryTimeoutSeconds"`
	ACS                    ACSView      `json:"acs"`
}

// ACSView says whether the session has an ACS identity, and carries it.
type ACSView struct {
	Configured bool         `json:"configured"`
	Identity   *ACSIdentity `json:"identity,omitempty"`
}

func checkCustomer(id string) error {
	if id == "" {
		return fault.Invalid("customerId", "required")
	}
	if len(id) > MaxCustomerIDLength {
		return fault.Invalid("customerId", fmt.Sprintf("at most %d characters", MaxCustomerIDLength))
	}
	for _, r := range id {
		if !unicode.IsPrint(r) || r == unicode.ReplacementChar {
			return fault.Invalid("customerId", "printable characters only")
		}
	}
	return nil
}

var errNotRecoverable = errors.New("session not recoverable")

// StartSession starts a session for an authorized request (s from Authorize). With
// req.SessionID naming the same customer's session that is still open, or was closed
// no longer than the recovery timeout ago, that session is recovered (reopened);
// otherwise a new one starts. With an ACS connection string configured the session
// gets an ACS identity (new, or the recovered session's) and a fresh token; when ACS
// fails, the error matches exactly one of ErrACSRefused, ErrACSUnreachable and
// ErrACSFailed, and no session is created (a recovered one stays reopened).
func (svc *Service) StartSession(ctx context.Context, s Settings, req StartRequest) (Started, error) {
	if err := checkCustomer(req.CustomerID); err != nil {
		return Started{}, err
	}
	if req.SessionID != "" && !IsGUID(req.SessionID) {
		return Started{}, fault.Invalid("sessionId", "must be a GUID")
	}
	conn, err := svc.acsConnection(ctx, s)
	if err != nil {
		return Started{}, err
	}
	if req.SessionID != "" {
		sess, err := svc.recover(ctx, s, strings.ToLower(req.SessionID), req.CustomerID)
		switch {
		case err == nil:
			out := started(s, sess, true, conn != "")
			if conn != "" && sess.ACSIdentity != "" {
				id, err := svc.d.ACS.IssueToken(ctx, conn, sess.ACSIdentity, TokenScopes)
				if err != nil {
					return Started{}, asACSError(err)
				}
				out.ACS.Identity = &id
				return out, nil
			}
			if conn == "" {
				return out, nil
			}
			// ACS was configured after the session started: fall through to a new
			// identity for it below.
			id, err := svc.d.ACS.CreateIdentity(ctx, conn, TokenScopes)
			if err != nil {
				return Started{}, asACSError(err)
			}
			if _, err := svc.d.Store.UpdateSession(ctx, s.TenantID, sess.ID, func(x *Session) error { x.ACSIdentity = id.ID; return nil }); err != nil {
				return Started{}, fmt.Errorf("start session: %w", err)
			}
			out.ACS.Identity = &id
			return out, nil
		case errors.Is(err, fault.ErrNotFound), errors.Is(err, errNotRecoverable):
		default:
			return Started{}, fmt.Errorf("recover session: %w", err)
		}
	}
	sess := Session{TenantID: s.TenantID, ID: NewGUID(), CustomerID: req.CustomerID, State: SessionOpen, CreatedAt: svc.d.Now().UTC()}
	var id *ACSIdentity
	if conn != "" {
		ident, err := svc.d.ACS.CreateIdentity(ctx, conn, TokenScopes)
		if err != nil {
			return Started{}, asACSError(err)
		}
		sess.ACSIdentity, id = ident.ID, &ident
	}
	if err := svc.d.Store.CreateSession(ctx, sess); err != nil {
		return Started{}, fmt.Errorf("start session: %w", err)
	}
	out := started(s, sess, false, conn != "")
	out.ACS.Identity = id
	return out, nil
}

func started(s Settings, sess Session, recovered, acs bool) Started {
	return Started{SessionID: sess.ID, State: sess.State, Recovered: recovered, CreatedAt: sess.CreatedAt,
		RecoveryTimeoutSeconds: s.RecoveryTimeoutSeconds, ACS: ACSView{Configured: acs}}
}

// recover reopens the customer's session if it is open or closed within the timeout.
func (svc *Service) recover(ctx context.Context, s Settings, sessionID, customerID string) (Session, error) {
	timeout := time.Duration(s.RecoveryTimeoutSeconds) * time.Second
	now := svc.d.Now().UTC()
	return svc.d.Store.UpdateSession(ctx, s.TenantID, sessionID, func(x *Session) error {
		if subtle.ConstantTimeCompare([]byte(x.CustomerID), []byte(customerID)) != 1 {
			return errNotRecoverable // another customer's session: start a new one
		}
		switch {
		case x.State == SessionOpen:
		case x.State == SessionClosed && now.Sub(x.ClosedAt) <= timeout:
			x.State, x.ClosedAt = SessionOpen, time.Time{}
			x.Recoveries++
		default:
			return errNotRecoverable
		}
		return nil
	})
}

// CloseSession closes the customer's session (the customer left); it can be recovered
// within the recovery timeout. Closing a closed session keeps its first close time.
// fault.ErrNotFound for an unknown session or another customer's.
func (svc *Service) CloseSession(ctx context.Context, s Settings, sessionID, customerID string) error {
	if err := checkCustomer(customerID); err != nil {
		return err
	}
	if !IsGUID(sessionID) {
		return fault.Invalid("sessionId", "must be a GUID")
	}
	now := svc.d.Now().UTC()
	_, err := svc.d.Store.UpdateSession(ctx, s.TenantID, strings.ToLower(sessionID), func(x *Session) error {
		if subtle.ConstantTimeCompare([]byte(x.CustomerID), []byte(customerID)) != 1 {
			return fmt.Errorf("close session: %w", fault.ErrNotFound)
		}
		if x.State != SessionClosed {
			x.State, x.ClosedAt = SessionClosed, now
		}
		return nil
	})
	return err
}

// acsConnection returns the tenant's ACS connection string, "" when none is set.
func (svc *Service) acsConnection(ctx context.Context, s Settings) (string, error) {
	if !s.ACSConfigured || svc.d.ACS == nil {
		return "", nil
	}
	conn, err := svc.d.Secrets.GetSecret(ctx, s.TenantID, SecretACSConnection)
	if errors.Is(err, fault.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read ACS connection string: %w", err)
	}
	return conn, nil
}
