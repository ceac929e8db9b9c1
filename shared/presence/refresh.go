package presence

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/tenant"
)

// Config tunes the refresher. Zero fields take the defaults named below.
type Config struct {
	// ChunkSize is the number of ids per Graph request (default and maximum 650).
	ChunkSize int
	// MaxInFlight bounds Graph requests in flight for one tenant (default 8). Graph
	// throttles per app and tenant (1,500 requests per 30 s), so the bound is per tenant.
	MaxInFlight int
	// MaxTenantsInFlight bounds tenants refreshed at once by RefreshAll (default 4).
	MaxTenantsInFlight int
	// OfflineDamping is how long an agent must read Offline before Offline is stored
	// (default 30 s). Teams web clients flap to Offline for a refresh; an agent must
	// not drop out of routing for that. Zero in the config means the default; use a
	// negative value to store Offline at once.
	OfflineDamping time.Duration
	// PrivacyModePolls is how many consecutive polls with every agent Offline raise the
	// privacy-mode warning (default 20: five minutes at the default 15 s schedule).
	PrivacyModePolls int
	// AccountRetry is how long a refused credential is left alone before it is tried
	// again (default 5 min). It is how the refresher returns to account 1 once it works,
	// without sending a failing password to Entra on every poll (smart lockout).
	AccountRetry time.Duration
	// Source labels what the Reader returns: SourceExtended for Graph (default),
	// SourceSimulated for the local runner's simulated tenant.
	Source Source
	// MaxAge is how long presence stays good after the last poll a credential
	// answered (default 3 min). Older, it is stale: health warns, and routing treats it
	// as unknown unless a service allows routing on stale presence (see routing).
	MaxAge time.Duration
}

func (c Config) withDefaults() Config {
	if c.ChunkSize <= 0 || c.ChunkSize > MaxIDsPerRequest {
		c.ChunkSize = MaxIDsPerRequest
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 8
	}
	if c.MaxTenantsInFlight <= 0 {
		c.MaxTenantsInFlight = 4
	}
	if c.OfflineDamping == 0 {
		c.OfflineDamping = 30 * time.Second
	}
	if c.PrivacyModePolls <= 0 {
		c.PrivacyModePolls = 20
	}
	if c.AccountRetry <= 0 {
		c.AccountRetry = 5 * time.Minute
	}
	if c.Source == "" {
		c.Source = SourceExtended
	}
	if c.MaxAge <= 0 {
		c.MaxAge = DefaultMaxAge
	}
	return c
}

// DefaultMaxAge is Config.MaxAge's default: twelve polls at the default schedule.
const DefaultMaxAge = 3 * time.Minute

// Warning codes in Health.Warnings.
const (
	WarnAccount1Failing = "Account1Failing"
	WarnBasicPresence   = "BasicPresence"
	WarnPrivacyMode     = "PrivacyMode"
	WarnStalePresence   = "StalePresence"
)

// PrivacyModeFix is the PowerShell that turns Teams' Enhanced Presence Privacy Mode off.
const PrivacyModeFix = "Set-CsPrivacyConfiguration -EnablePrivacyMode $false"

// Refresher keeps stored presence current for every tracked tenant. One Refresher is
// shared by all invocations of the process; it is safe for concurrent use, and two
// refreshes of the same tenant never run at once in one process.
//
// It caches each tenant's stored presences between polls and trusts the cache only
// while the tenant's Health.Generation is the one it wrote last, so another instance's
// writes are never overlooked. Likewise it keeps each tenant's agent list and lists
// the agents again only when tenant.Store's AgentsVersion differs from the one read
// before that list, so a poll that finds nothing changed costs a constant number of
// store requests, whatever the agent count.
type Refresher struct {
	cfg     Config
	tenants tenant.Store
	secrets tenant.Secrets
	store   Store
	reader  Reader
	now     func() time.Time

	mu     sync.Mutex
	states map[string]*tenantState

	onChanged func(ctx context.Context, tenantID string, changed []Presence) error
}

// OnChanged sets a function called after every refresh that stored changes, with the
// changed presences (routing uses it to kick the services an agent became free for;
// the store has already made them visible to routing). Its error is returned by the
// refresh (the presences are stored either way). Set it before the first refresh.
func (r *Refresher) OnChanged(fn func(ctx context.Context, tenantID string, changed []Presence) error) {
	r.onChanged = fn
}

type tenantState struct {
	mu         sync.Mutex // one refresh of the tenant at a time
	generation int64      // -1: unknown, reload
	last       map[string]Presence
	offline    map[string]time.Time // agent → first poll that read Offline, while damped

	agents        []string // the tenant's agent ids; nil until listed
	agentsVersion string   // AgentsVersion read before agents was listed
}

// NewRefresher wires a refresher. now may be nil (time.Now).
func NewRefresher(cfg Config, tenants tenant.Store, secrets tenant.Secrets, store Store, reader Reader, now func() time.Time) *Refresher {
	if now == nil {
		now = time.Now
	}
	return &Refresher{cfg: cfg.withDefaults(), tenants: tenants, secrets: secrets, store: store, reader: reader, now: now,
		states: map[string]*tenantState{}}
}

// Result says what one tenant's refresh did.
type Result struct {
	TenantID string
	Agents   int
	Requests int            // Graph requests made (ceil(agents/650) per credential tried, plus retries inside the Reader not counted)
	Changed  int            // presences written
	Active   CredentialKind // credential that answered; CredBasic when none did
	Switched bool           // Active differs from the previous poll (false on the first poll)
	// WarningsChanged: the set of warning codes differs from the previous poll, so
	// callers can log warnings when they appear or clear instead of on every poll.
	WarningsChanged bool
	Health          Health
}

// Summary is what RefreshAll did.
type Summary struct {
	Tenants  int
	Agents   int
	Requests int
	Changed  int
	Results  []Result
	Failed   map[string]error // tenant id → error; the other tenants were still refreshed
}

// RefreshAll refreshes every tenant that has presence tracking on and is not being
// deleted, a bounded number at a time. A failing tenant does not stop the others; its
// error is in Summary.Failed. The error is non-nil only if the tenants could not be
// listed.
func (r *Refresher) RefreshAll(ctx context.Context) (Summary, error) {
	all, err := r.tenants.ListTenants(ctx)
	if err != nil {
		return Summary{}, fmt.Errorf("list tenants: %w", err)
	}
	var tracked []tenant.Tenant
	for _, t := range all {
		if t.Presence.Enabled && !t.Deleted {
			tracked = append(tracked, t)
		}
	}
	sum := Summary{Tenants: len(tracked), Failed: map[string]error{}}
	var mu sync.Mutex
	sem := make(chan struct{}, r.cfg.MaxTenantsInFlight)
	var wg sync.WaitGroup
	for _, t := range tracked {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			res, err := r.refresh(ctx, t)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				sum.Failed[t.ID] = err
			}
			sum.Results = append(sum.Results, res)
			sum.Agents += res.Agents
			sum.Requests += res.Requests
			sum.Changed += res.Changed
		}()
	}
	wg.Wait()
	sort.Slice(sum.Results, func(i, j int) bool { return sum.Results[i].TenantID < sum.Results[j].TenantID })
	return sum, nil
}

// RefreshTenant refreshes one tenant now. An unknown tenant is a permanent error
// (fault.ErrNotFound marked permanent); a tenant without presence tracking is refused
// with a *fault.FieldError.
func (r *Refresher) RefreshTenant(ctx context.Context, tenantID string) (Result, error) {
	t, err := r.tenants.GetTenant(ctx, tenantID)
	if errors.Is(err, fault.ErrNotFound) {
		return Result{}, fault.Permanent(fmt.Errorf("tenantId: unknown tenant: %w", err))
	}
	if err != nil {
		return Result{}, fmt.Errorf("get tenant: %w", err)
	}
	if !t.Presence.Enabled || t.Deleted {
		return Result{}, fault.Invalid("tenantId", "presence tracking is off for this tenant")
	}
	return r.refresh(ctx, t)
}

func (r *Refresher) state(tenantID string) *tenantState {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.states[tenantID]
	if st == nil {
		st = &tenantState{generation: -1, offline: map[string]time.Time{}}
		r.states[tenantID] = st
	}
	return st
}

// attempt is one credential tried in a poll.
type attempt struct {
	cred Credential
	err  error
}

func (r *Refresher) refresh(ctx context.Context, t tenant.Tenant) (Result, error) {
	st := r.state(t.ID)
	st.mu.Lock()
	defer st.mu.Unlock()

	start := r.now()
	res := Result{TenantID: t.ID}
	ids, err := st.agentIDs(ctx, r.tenants, t.ID)
	if err != nil {
		return res, err
	}
	res.Agents = len(ids)
	prev, err := r.store.GetHealth(ctx, t.ID)
	if err != nil && !errors.Is(err, fault.ErrNotFound) {
		return res, fmt.Errorf("get presence health: %w", err)
	}
	if st.generation != prev.Generation || st.last == nil {
		if err := st.reload(ctx, r.store, t.ID, prev.Generation); err != nil {
			return res, err
		}
	}

	// Try the tenant's credentials in order; an AuthError moves to the next one.
	var (
		attempts []attempt
		obs      []Observation
		readErr  error
	)
	res.Active = CredBasic
	for _, c := range r.credentials(ctx, t, prev, start) {
		if c.err != nil { // not tried: secret missing, or refused recently
			attempts = append(attempts, c)
			continue
		}
		var n int
		obs, n, readErr = r.readAll(ctx, t.ID, c.cred, ids)
		res.Requests += n
		var ae *AuthError
		if errors.As(readErr, &ae) {
			attempts = append(attempts, attempt{cred: c.cred, err: readErr})
			obs, readErr = nil, nil
			continue
		}
		attempts = append(attempts, attempt{cred: c.cred})
		res.Active = c.cred.Kind
		break
	}

	now := r.now()
	basic := res.Active == CredBasic
	var changed []Presence
	if basic {
		changed = st.toBasic()
	} else {
		changed = st.diff(obs, r.cfg.Source, now, r.cfg.OfflineDamping)
	}
	if err := r.store.SavePresences(ctx, t.ID, changed); err != nil {
		st.generation = -1 // nothing committed: the next poll finds the same changes
		return res, fmt.Errorf("save presences: %w", err)
	}
	st.commit(changed, basic)
	res.Changed = len(changed)

	allOffline := len(ids) > 0 && !basic
	for _, id := range ids {
		if p, ok := st.last[id]; !ok || p.Availability != Offline {
			allOffline = false
			break
		}
	}

	base, next := st.generation, int64(-1)
	h, err := r.store.UpdateHealth(ctx, t.ID, func(h *Health) error {
		stale := h.Generation != base // another instance wrote presences since we loaded
		if len(changed) > 0 {
			h.Generation++
		}
		next = h.Generation
		if stale {
			next = -1 // reload next poll
		}
		res.Switched = h.Active != "" && h.Active != res.Active
		if h.Active != res.Active {
			h.Active, h.ActiveSince = res.Active, now
		}
		for _, a := range attempts {
			if a.err == errNotTried {
				continue
			}
			s := AccountStatus{OK: a.err == nil, CheckedAt: now}
			if a.err != nil {
				s.ErrorCode = errorCode(a.err)
				h.LastErrorCode, h.LastError, h.LastErrorAt = s.ErrorCode, a.err.Error(), now
			}
			*h.status(a.cred.Kind) = s
		}
		if readErr != nil {
			h.LastErrorCode, h.LastError, h.LastErrorAt = "Transient", readErr.Error(), now
		}
		if allOffline {
			h.OfflinePolls++
		} else {
			h.OfflinePolls = 0
		}
		h.LastPollAt, h.LastPollTook = now, now.Sub(start)
		if res.Active != CredBasic && readErr == nil {
			h.LastReadAt = now
		}
		h.Agents, h.LastChanged, h.Requests = len(ids), len(changed), res.Requests
		ws := warnings(t, h, r.cfg)
		res.WarningsChanged = codes(ws) != codes(h.Warnings)
		h.Warnings = ws
		return nil
	})
	if err != nil {
		st.generation = -1
		return res, fmt.Errorf("update presence health: %w", err)
	}
	st.generation = next
	res.Health = h
	if len(changed) > 0 && r.onChanged != nil {
		if err := r.onChanged(ctx, t.ID, changed); err != nil {
			readErr = errors.Join(readErr, fmt.Errorf("after presence change: %w", err))
		}
	}
	if readErr != nil {
		return res, fmt.Errorf("read presences: %w", readErr)
	}
	return res, nil
}

// agentIDs returns the tenant's agent ids, listing the agents only when AgentsVersion
// differs from the version kept with the list (one point read otherwise). The version
// is read before the list, so a list is never kept under a version newer than itself:
// a write racing with the listing changes the version, and the next poll lists again.
func (st *tenantState) agentIDs(ctx context.Context, tenants tenant.Store, tenantID string) ([]string, error) {
	v, err := tenants.AgentsVersion(ctx, tenantID)
	if err != nil {
		return nil, fmt.Errorf("agents version: %w", err)
	}
	if st.agents != nil && v == st.agentsVersion {
		return st.agents, nil
	}
	agents, err := tenants.ListAgents(ctx, tenantID)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	ids := make([]string, len(agents))
	for i, a := range agents {
		ids[i] = a.ID
	}
	st.agents, st.agentsVersion = ids, v
	return ids, nil
}

var errNotTried = errors.New("not tried")

// credentials lists the credentials to try this poll, in order. Entries with err set
// are reported but not tried.
func (r *Refresher) credentials(ctx context.Context, t tenant.Tenant, h Health, now time.Time) []attempt {
	if t.Presence.Mode == tenant.ModeApplication {
		return []attempt{{cred: Credential{Kind: CredApplication}}}
	}
	var out []attempt
	for _, acc := range []struct {
		kind   CredentialKind
		upn    string
		secret string
	}{{CredAccount1, t.Presence.Account1, tenant.SecretAccount1Password}, {CredAccount2, t.Presence.Account2, tenant.SecretAccount2Password}} {
		if acc.upn == "" {
			continue
		}
		c := Credential{Kind: acc.kind, Username: acc.upn}
		if s := h.status(acc.kind); !s.OK && !s.CheckedAt.IsZero() && now.Sub(s.CheckedAt) < r.cfg.AccountRetry {
			out = append(out, attempt{cred: c, err: errNotTried})
			continue
		}
		pw, err := r.secrets.GetSecret(ctx, t.ID, acc.secret)
		if err != nil {
			code := "SecretUnavailable"
			if errors.Is(err, fault.ErrNotFound) {
				code = "PasswordNotSet"
			}
			out = append(out, attempt{cred: c, err: &AuthError{Code: code, Message: "the account's password could not be read"}})
			continue
		}
		c.Password = pw
		out = append(out, attempt{cred: c})
	}
	// Last, before basic presence: the application permission, where the tenant
	// consented to it (refused otherwise, and then left alone like a refused account).
	app := Credential{Kind: CredApplication}
	if s := h.status(CredApplication); !s.OK && !s.CheckedAt.IsZero() && now.Sub(s.CheckedAt) < r.cfg.AccountRetry {
		return append(out, attempt{cred: app, err: errNotTried})
	}
	return append(out, attempt{cred: app})
}

// readAll reads every id in chunks, a bounded number in flight. It stops at the first
// error and returns it with what was read before; n is the number of requests made.
func (r *Refresher) readAll(ctx context.Context, tenantID string, cred Credential, ids []string) ([]Observation, int, error) {
	if len(ids) == 0 {
		return nil, 0, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		out      = make([]Observation, 0, len(ids))
		firstErr error
		requests int
		wg       sync.WaitGroup
		sem      = make(chan struct{}, r.cfg.MaxInFlight)
	)
	for lo := 0; lo < len(ids); lo += r.cfg.ChunkSize {
		chunk := ids[lo:min(lo+r.cfg.ChunkSize, len(ids))]
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			got, err := r.reader.ReadPresences(ctx, tenantID, cred, chunk)
			mu.Lock()
			defer mu.Unlock()
			requests++
			if err != nil {
				if firstErr == nil || isAuth(err) && !isAuth(firstErr) {
					firstErr = err
				}
				cancel()
				return
			}
			out = append(out, got...)
		}()
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return out, requests, firstErr
}

func isAuth(err error) bool {
	var ae *AuthError
	return errors.As(err, &ae)
}

func errorCode(err error) string {
	var ae *AuthError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return "Transient"
}

func (st *tenantState) reload(ctx context.Context, s Store, tenantID string, generation int64) error {
	ps, err := s.LoadPresences(ctx, tenantID)
	if err != nil {
		st.generation = -1
		return fmt.Errorf("load presences: %w", err)
	}
	st.last = make(map[string]Presence, len(ps))
	for _, p := range ps {
		st.last[p.AgentID] = p
	}
	st.generation = generation
	return nil
}

// diff returns the observations that change what is stored, applying Offline damping
// and carrying OfflineAt forward (set to now when Offline is stored after another
// availability). An Offline that passed damping stays pending until commit, so a poll
// whose changes are not stored leaves it to the next poll with its first Offline read.
func (st *tenantState) diff(obs []Observation, src Source, now time.Time, damping time.Duration) []Presence {
	var changed []Presence
	for _, o := range obs {
		p := Presence{AgentID: o.UserID, Availability: o.Availability, Activity: o.Activity, Source: src, ObservedAt: now}
		old, known := st.last[o.UserID]
		if p.Availability != Offline {
			delete(st.offline, o.UserID)
		} else if known && old.Availability != Offline && damping > 0 {
			since, pending := st.offline[o.UserID]
			if !pending {
				st.offline[o.UserID] = now
				continue
			}
			if now.Sub(since) < damping {
				continue
			}
			p.ObservedAt = since
		}
		p.OfflineAt = old.OfflineAt
		if p.Availability == Offline && (!known || old.Availability != Offline) {
			p.OfflineAt = now
		}
		if known && old.Same(p) {
			continue
		}
		changed = append(changed, p)
	}
	return changed
}

// commit records stored changes in the cache and ends their Offline damping.
func (st *tenantState) commit(changed []Presence, basic bool) {
	for _, p := range changed {
		st.last[p.AgentID] = p
		delete(st.offline, p.AgentID)
	}
	if basic {
		clear(st.offline)
	}
}

// toBasic keeps each agent's last availability but drops its activity: with no
// credential working, routing applies the basic-presence rules (SPEC §4) instead of
// stopping. ObservedAt and OfflineAt are kept so the age of what is known stays
// visible. Pending Offline damping ends with the commit.
func (st *tenantState) toBasic() []Presence {
	var changed []Presence
	for _, p := range st.last {
		if p.Source == SourceBasic {
			continue
		}
		p.Source, p.Activity = SourceBasic, ""
		changed = append(changed, p)
	}
	return changed
}

func (h *Health) status(k CredentialKind) *AccountStatus {
	switch k {
	case CredAccount1:
		return &h.Account1
	case CredAccount2:
		return &h.Account2
	default:
		return &h.Application
	}
}

func codes(ws []Warning) string {
	var b strings.Builder
	for _, w := range ws {
		b.WriteString(w.Code)
		b.WriteByte(' ')
	}
	return b.String()
}

func warnings(t tenant.Tenant, h *Health, cfg Config) []Warning {
	var w []Warning
	if h.Active == CredBasic {
		w = append(w, Warning{Code: WarnBasicPresence,
			Message: "No presence credential works (last error " + h.LastErrorCode + "): routing uses basic presence, without activities such as 'in a call'.",
			Fix:     "Check the presence accounts' passwords, MFA exclusion and conditional access (trust this app's outbound IP addresses), or the Presence.Read.All consent."})
	} else if t.Presence.Mode == tenant.ModeAccounts && h.Active == CredAccount2 {
		w = append(w, Warning{Code: WarnAccount1Failing,
			Message: "Presence account 1 is refused (" + h.Account1.ErrorCode + "); account 2 is in use.",
			Fix:     "Fix presence account 1; it is tried again every " + cfg.AccountRetry.String() + "."})
	}
	if h.Stale(h.LastPollAt, cfg.MaxAge) {
		since := "no credential has answered yet"
		if !h.LastReadAt.IsZero() {
			since = "it was last read " + h.LastPollAt.Sub(h.LastReadAt).Round(time.Second).String() + " before the last poll"
		}
		w = append(w, Warning{Code: WarnStalePresence,
			Message: "Presence is stale (" + since + "): routing treats it as unknown, except in services that allow routing on stale presence.",
			Fix:     "Restore a presence credential (see the other warnings and the last error)."})
	}
	if h.OfflinePolls >= cfg.PrivacyModePolls {
		w = append(w, Warning{Code: WarnPrivacyMode,
			Message: fmt.Sprintf("Every agent has read Offline for %d polls. If agents are signed in to Teams, Enhanced Presence Privacy Mode is probably hiding their presence.", h.OfflinePolls),
			Fix:     PrivacyModeFix})
	}
	return w
}
