package presence_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/inmem"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/tenant"
)

// reader is a hand-written Reader for the domain rules; the Graph adapter's own tests
// fake Graph and Entra at HTTP level.
type reader struct {
	mu       sync.Mutex
	presence map[string]presence.Observation
	refuse   map[presence.CredentialKind]string // kind → AADSTS code
	failWith error
	calls    map[presence.CredentialKind]int
	maxChunk int
}

func newReader() *reader {
	return &reader{presence: map[string]presence.Observation{}, refuse: map[presence.CredentialKind]string{}, calls: map[presence.CredentialKind]int{}}
}

func (f *reader) set(id string, a presence.Availability, act string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.presence[id] = presence.Observation{UserID: id, Availability: a, Activity: act}
}

func (f *reader) ReadPresences(_ context.Context, _ string, c presence.Credential, ids []string) ([]presence.Observation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[c.Kind]++
	f.maxChunk = max(f.maxChunk, len(ids))
	if code := f.refuse[c.Kind]; code != "" {
		return nil, &presence.AuthError{Code: code, Message: "refused"}
	}
	if c.Kind != presence.CredApplication && c.Password != "pw-"+string(c.Kind) {
		return nil, &presence.AuthError{Code: "AADSTS50126", Message: "bad password"}
	}
	if f.failWith != nil {
		return nil, f.failWith
	}
	var out []presence.Observation
	for _, id := range ids {
		if o, ok := f.presence[id]; ok {
			out = append(out, o)
		}
	}
	return out, nil
}

func (f *reader) ReadPresence(ctx context.Context, tid string, c presence.Credential, user string) (presence.Observation, error) {
	got, err := f.ReadPresences(ctx, tid, c, []string{user})
	if err != nil {
		return presence.Observation{}, err
	}
	if len(got) == 0 {
		return presence.Observation{}, fault.ErrNotFound
	}
	return got[0], nil
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

const tid = "11111111-2222-3333-4444-555555555555"

type fixture struct {
	store *inmem.Store
	rd    *reader
	clk   *clock
	r     *presence.Refresher
}

func setup(t *testing.T, agents int, cfg presence.Config) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{store: inmem.New(), rd: newReader(), clk: &clock{t: time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)}}
	tn := tenant.Tenant{ID: tid, Name: "Contoso", Presence: tenant.PresenceSettings{Enabled: true, Mode: tenant.ModeAccounts, Account1: "p1@contoso.com", Account2: "p2@contoso.com"}}
	must(t, f.store.PutTenant(ctx, tn))
	must(t, f.store.PutSecret(ctx, tid, tenant.SecretAccount1Password, "pw-account1"))
	must(t, f.store.PutSecret(ctx, tid, tenant.SecretAccount2Password, "pw-account2"))
	as := make([]tenant.Agent, agents)
	for i := range as {
		as[i] = tenant.Agent{ID: agentID(i)}
		f.rd.set(agentID(i), presence.Available, "Available")
	}
	must(t, f.store.PutAgents(ctx, tid, as))
	f.r = presence.NewRefresher(cfg, f.store, f.store, f.store, f.rd, f.clk.now)
	return f
}

func agentID(i int) string { return fmt.Sprintf("agent-%05d", i) }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) poll(t *testing.T) presence.Result {
	t.Helper()
	f.clk.advance(15 * time.Second)
	res, err := f.r.RefreshTenant(context.Background(), tid)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	return res
}

func (f *fixture) stored(t *testing.T, id string) presence.Presence {
	t.Helper()
	ps, err := f.store.LoadPresences(context.Background(), tid)
	must(t, err)
	for _, p := range ps {
		if p.AgentID == id {
			return p
		}
	}
	t.Fatalf("no stored presence for %s", id)
	return presence.Presence{}
}

func TestOnlyChangedPresencesAreWritten(t *testing.T) {
	f := setup(t, 1500, presence.Config{})
	if res := f.poll(t); res.Changed != 1500 || res.Requests != 3 || f.rd.maxChunk != 650 {
		t.Fatalf("first poll: changed %d, requests %d, largest chunk %d; want 1500, 3, 650", res.Changed, res.Requests, f.rd.maxChunk)
	}
	if res := f.poll(t); res.Changed != 0 {
		t.Fatalf("nothing changed but %d written", res.Changed)
	}
	f.rd.set(agentID(3), presence.Busy, presence.ActivityInACall)
	f.rd.set(agentID(900), presence.Away, "Away")
	before := f.store.PresenceWrites()
	if res := f.poll(t); res.Changed != 2 || f.store.PresenceWrites()-before != 2 {
		t.Fatalf("two changed: result says %d, store saw %d writes", res.Changed, f.store.PresenceWrites()-before)
	}
	p := f.stored(t, agentID(3))
	if p.Availability != presence.Busy || p.Activity != presence.ActivityInACall || p.Source != presence.SourceExtended || !p.ObservedAt.Equal(f.clk.t) {
		t.Fatalf("stored %+v", p)
	}
}

func TestOfflineBlipsShorterThanTheWindowAreDamped(t *testing.T) {
	f := setup(t, 2, presence.Config{OfflineDamping: 40 * time.Second})
	f.poll(t)
	f.rd.set(agentID(0), presence.Offline, "Offline")
	f.poll(t) // t+15 s: pending
	f.rd.set(agentID(0), presence.Available, "Available")
	if res := f.poll(t); res.Changed != 0 {
		t.Fatalf("a 15 s Offline blip was written (%d changes)", res.Changed)
	}
	if p := f.stored(t, agentID(0)); p.Availability != presence.Available {
		t.Fatalf("blip reached the store: %+v", p)
	}

	f.rd.set(agentID(1), presence.Offline, "Offline")
	firstOffline := f.clk.t.Add(15 * time.Second)
	f.poll(t)
	f.poll(t)
	if p := f.stored(t, agentID(1)); p.Availability != presence.Available {
		t.Fatalf("Offline stored after 15 s, before the 40 s window: %+v", p)
	}
	f.poll(t)
	f.poll(t) // 45 s after the first Offline read
	p := f.stored(t, agentID(1))
	if p.Availability != presence.Offline || !p.ObservedAt.Equal(firstOffline) {
		t.Fatalf("lasting Offline = %+v, want Offline observed at %v", p, firstOffline)
	}
}

func TestAccount1FailureFallsBackToAccount2AndReturnsWhenItRecovers(t *testing.T) {
	f := setup(t, 5, presence.Config{AccountRetry: time.Minute})
	if res := f.poll(t); res.Active != presence.CredAccount1 || res.Switched || res.WarningsChanged {
		t.Fatalf("first poll: active %s switched %v warnings changed %v; want account1, no switch", res.Active, res.Switched, res.WarningsChanged)
	}
	f.rd.refuse[presence.CredAccount1] = "AADSTS50076"
	res := f.poll(t)
	if res.Active != presence.CredAccount2 || !res.Switched || !res.WarningsChanged {
		t.Fatalf("after MFA on account 1: active %s switched %v warnings changed %v", res.Active, res.Switched, res.WarningsChanged)
	}
	h := res.Health
	if h.Account1.ErrorCode != "AADSTS50076" || h.LastErrorCode != "AADSTS50076" || !h.ActiveSince.Equal(f.clk.t) || !h.Account2.OK {
		t.Fatalf("health %+v", h)
	}
	if len(h.Warnings) != 1 || h.Warnings[0].Code != presence.WarnAccount1Failing {
		t.Fatalf("warnings %+v", h.Warnings)
	}
	calls := f.rd.calls[presence.CredAccount1]
	if again := f.poll(t); again.Switched || again.WarningsChanged {
		t.Fatalf("a steady poll reports a switch (%v) or new warnings (%v)", again.Switched, again.WarningsChanged)
	}
	f.poll(t)
	if f.rd.calls[presence.CredAccount1] != calls {
		t.Fatal("a refused account 1 was tried again inside the retry window (lockout risk)")
	}
	delete(f.rd.refuse, presence.CredAccount1)
	f.poll(t)
	res = f.poll(t) // now past the one-minute retry window
	if res.Active != presence.CredAccount1 || !res.Switched || len(res.Health.Warnings) != 0 {
		t.Fatalf("after recovery: active %s switched %v warnings %+v", res.Active, res.Switched, res.Health.Warnings)
	}
}

// Both accounts refused: the application permission answers where the tenant
// consented to it; refused too, basic presence (the last availability, no activity),
// and once no credential has answered for longer than MaxAge, presence is stale.
func TestBothAccountsFailingFallBackToTheApplicationThenBasicThenStale(t *testing.T) {
	f := setup(t, 3, presence.Config{MaxAge: time.Minute})
	f.rd.set(agentID(1), presence.Busy, presence.ActivityInACall)
	f.poll(t)
	f.rd.refuse[presence.CredAccount1] = "AADSTS53003"
	f.rd.refuse[presence.CredAccount2] = "AADSTS50126"
	res := f.poll(t)
	if res.Active != presence.CredApplication || res.Changed != 0 || res.Health.LastReadAt != f.clk.t {
		t.Fatalf("both accounts refused, application consented: active %s changed %d read at %v", res.Active, res.Changed, res.Health.LastReadAt)
	}
	f.rd.refuse[presence.CredApplication] = "HTTP403"
	f.clk.advance(10 * time.Minute) // ten minutes on, the application is refused too
	lastRead := res.Health.LastReadAt
	res = f.poll(t)
	if res.Active != presence.CredBasic || res.Changed != 3 || !res.Health.LastReadAt.Equal(lastRead) {
		t.Fatalf("every credential refused: active %s changed %d read at %v", res.Active, res.Changed, res.Health.LastReadAt)
	}
	p := f.stored(t, agentID(1))
	if p.Source != presence.SourceBasic || p.Availability != presence.Busy || p.Activity != "" {
		t.Fatalf("basic presence %+v: want last availability, no activity", p)
	}
	h := res.Health
	if h.Account1.ErrorCode != "AADSTS53003" || h.Account2.ErrorCode != "AADSTS50126" || h.Application.ErrorCode != "HTTP403" ||
		!hasWarning(h, presence.WarnBasicPresence) || !hasWarning(h, presence.WarnStalePresence) {
		t.Fatalf("health %+v", h)
	}
	if !h.Stale(f.clk.t, time.Minute) || h.Stale(lastRead.Add(time.Minute), time.Minute) {
		t.Fatalf("stale: read at %v, now %v", lastRead, f.clk.t)
	}
	if res := f.poll(t); res.Changed != 0 {
		t.Fatalf("basic presence rewritten every poll: %d", res.Changed)
	}
}

func hasWarning(h presence.Health, code string) bool {
	for _, w := range h.Warnings {
		if w.Code == code {
			return true
		}
	}
	return false
}

func TestWrongOrMissingPasswordIsReportedAndTheOtherAccountUsed(t *testing.T) {
	f := setup(t, 1, presence.Config{})
	must(t, f.store.PutSecret(context.Background(), tid, tenant.SecretAccount1Password, "wrong"))
	res := f.poll(t)
	if res.Active != presence.CredAccount2 || res.Health.Account1.ErrorCode != "AADSTS50126" {
		t.Fatalf("wrong password: active %s, account1 %+v", res.Active, res.Health.Account1)
	}

	g := setup(t, 1, presence.Config{})
	tn, _ := g.store.GetTenant(context.Background(), tid)
	tn.ID = "22222222-2222-3333-4444-555555555555" // same settings, no secrets stored
	must(t, g.store.PutTenant(context.Background(), tn))
	g.clk.advance(time.Second)
	res, err := g.r.RefreshTenant(context.Background(), tn.ID)
	if err != nil || res.Active != presence.CredApplication || res.Health.Account1.ErrorCode != "PasswordNotSet" || res.Health.Account2.ErrorCode != "PasswordNotSet" {
		t.Fatalf("no passwords: %v, active %s, health %+v", err, res.Active, res.Health)
	}
}

func TestApplicationModeUsesTheAppCredential(t *testing.T) {
	f := setup(t, 2, presence.Config{})
	tn, _ := f.store.GetTenant(context.Background(), tid)
	tn.Presence = tenant.PresenceSettings{Enabled: true, Mode: tenant.ModeApplication}
	must(t, f.store.PutTenant(context.Background(), tn))
	if res := f.poll(t); res.Active != presence.CredApplication || res.Changed != 2 || f.rd.calls[presence.CredAccount1] != 0 {
		t.Fatalf("application mode: %+v, calls %v", res, f.rd.calls)
	}
}

func TestEveryAgentOfflineForNPollsWarnsOfPrivacyMode(t *testing.T) {
	f := setup(t, 3, presence.Config{PrivacyModePolls: 3, OfflineDamping: -1})
	for i := 0; i < 3; i++ {
		f.rd.set(agentID(i), presence.Offline, "Offline")
	}
	f.poll(t)
	if res := f.poll(t); len(res.Health.Warnings) != 0 || res.Health.OfflinePolls != 2 {
		t.Fatalf("after 2 all-Offline polls: %d counted, warnings %+v", res.Health.OfflinePolls, res.Health.Warnings)
	}
	res := f.poll(t)
	if len(res.Health.Warnings) != 1 || res.Health.Warnings[0].Code != presence.WarnPrivacyMode || res.Health.Warnings[0].Fix != presence.PrivacyModeFix {
		t.Fatalf("after 4 all-Offline polls warnings = %+v", res.Health.Warnings)
	}
	f.rd.set(agentID(2), presence.Available, "Available")
	if res := f.poll(t); len(res.Health.Warnings) != 0 || res.Health.OfflinePolls != 0 {
		t.Fatalf("one agent back but warnings %+v", res.Health.Warnings)
	}
}

func TestAnotherWritersChangesAreNotHiddenByTheCache(t *testing.T) {
	f := setup(t, 2, presence.Config{})
	f.poll(t)
	// Another instance stores a presence and bumps the generation.
	ctx := context.Background()
	must(t, f.store.SavePresences(ctx, tid, []presence.Presence{{AgentID: agentID(0), Availability: presence.Busy, Source: presence.SourceExtended}}))
	_, err := f.store.UpdateHealth(ctx, tid, func(h *presence.Health) error { h.Generation++; return nil })
	must(t, err)
	// Graph still says Available: the refresher must notice the store differs.
	if res := f.poll(t); res.Changed != 1 {
		t.Fatalf("changed %d, want 1 (the cache hid another writer's change)", res.Changed)
	}
	if p := f.stored(t, agentID(0)); p.Availability != presence.Available {
		t.Fatalf("stored %+v", p)
	}
}

func TestTransientGraphFailureKeepsTheCredentialAndWritesNothing(t *testing.T) {
	f := setup(t, 2, presence.Config{})
	f.poll(t)
	f.rd.failWith = errors.New("graph: 503 after retries")
	f.rd.set(agentID(0), presence.Busy, "")
	f.clk.advance(15 * time.Second)
	res, err := f.r.RefreshTenant(context.Background(), tid)
	if err == nil || res.Active != presence.CredAccount1 || res.Changed != 0 || res.Health.LastErrorCode != "Transient" {
		t.Fatalf("transient failure: err %v, %+v", err, res)
	}
}

func TestRefreshTenantRefusesUnknownAndUntrackedTenants(t *testing.T) {
	f := setup(t, 1, presence.Config{})
	_, err := f.r.RefreshTenant(context.Background(), "99999999-2222-3333-4444-555555555555")
	if !fault.IsPermanent(err) || !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("unknown tenant: %v", err)
	}
	tn, _ := f.store.GetTenant(context.Background(), tid)
	tn.Presence.Enabled = false
	must(t, f.store.PutTenant(context.Background(), tn))
	var fe *fault.FieldError
	if _, err := f.r.RefreshTenant(context.Background(), tid); !errors.As(err, &fe) {
		t.Fatalf("untracked tenant: %v", err)
	}
}

func TestRefreshAllSkipsUntrackedAndDeletedTenants(t *testing.T) {
	f := setup(t, 2, presence.Config{})
	ctx := context.Background()
	must(t, f.store.PutTenant(ctx, tenant.Tenant{ID: "off", Presence: tenant.PresenceSettings{Enabled: false}}))
	must(t, f.store.PutTenant(ctx, tenant.Tenant{ID: "gone", Deleted: true, Presence: tenant.PresenceSettings{Enabled: true, Mode: tenant.ModeApplication}}))
	sum, err := f.r.RefreshAll(ctx)
	if err != nil || sum.Tenants != 1 || sum.Agents != 2 || sum.Changed != 2 || len(sum.Failed) != 0 {
		t.Fatalf("summary %+v, %v", sum, err)
	}
}

func TestConcurrentRefreshesOfOneTenantLoseNothing(t *testing.T) {
	f := setup(t, 50, presence.Config{})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.r.RefreshTenant(context.Background(), tid); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if w := f.store.PresenceWrites(); w != 50 {
		t.Fatalf("8 concurrent refreshes wrote %d rows, want 50 (each change once)", w)
	}
}

func TestParsingIsCaseInsensitiveAndUnknownIsPresenceUnknown(t *testing.T) {
	for in, want := range map[string]presence.Availability{"available": presence.Available, " BUSY ": presence.Busy,
		"DoNotDisturb": presence.DoNotDisturb, "berightback": presence.BeRightBack, "OnVacation": presence.PresenceUnknown, "": presence.PresenceUnknown} {
		if got := presence.ParseAvailability(in); got != want {
			t.Errorf("ParseAvailability(%q) = %q, want %q", in, got, want)
		}
	}
	if got := presence.ParseActivity("inacall"); got != presence.ActivityInACall {
		t.Errorf("ParseActivity(inacall) = %q", got)
	}
	if got := presence.ParseActivity("SomethingNew"); got != "SomethingNew" {
		t.Errorf("unknown activity changed to %q", got)
	}
}

func TestCredentialStringNeverShowsThePassword(t *testing.T) {
	c := presence.Credential{Kind: presence.CredAccount1, Username: "p1@contoso.com", Password: "hunter2"}
	if s := fmt.Sprint(c); s != "account1(***)" {
		t.Fatalf("credential prints as %q", s)
	}
}

func TestTestUserSaysWhichAccountAnswered(t *testing.T) {
	f := setup(t, 1, presence.Config{})
	ctx := context.Background()
	f.rd.refuse[presence.CredAccount1] = "AADSTS50079"
	res, err := f.r.TestUser(ctx, tid, agentID(0)+"@x") // not a UPN shape
	var fe *fault.FieldError
	if !errors.As(err, &fe) || fe.Field != "upn" {
		t.Fatalf("bad upn: %v", err)
	}
	f.rd.set("6f1d0c9e-1111-2222-3333-444455556666", presence.Busy, presence.ActivityInAMeeting)
	res, err = f.r.TestUser(ctx, tid, "6f1d0c9e-1111-2222-3333-444455556666")
	if err != nil || res.AnsweredBy != presence.CredAccount2 || res.Availability != presence.Busy || len(res.Attempts) != 2 || res.Attempts[0].ErrorCode != "AADSTS50079" {
		t.Fatalf("test user: %+v, %v", res, err)
	}
	if _, err := f.store.GetHealth(ctx, tid); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("TestUser wrote health: %v", err)
	}
	if _, err := f.r.TestUser(ctx, "00000000-0000-0000-0000-000000000000", "a@b.com"); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("unknown tenant: %v", err)
	}
}

func TestChangedPresencesAreHandedOnAfterTheyAreStored(t *testing.T) {
	f := setup(t, 3, presence.Config{})
	var got [][]presence.Presence
	f.r.OnChanged(func(ctx context.Context, tenantID string, changed []presence.Presence) error {
		if tenantID != tid {
			t.Errorf("tenant %s", tenantID)
		}
		stored, _ := f.store.LoadPresences(ctx, tenantID)
		byID := map[string]presence.Presence{}
		for _, p := range stored {
			byID[p.AgentID] = p
		}
		for _, p := range changed {
			if s, ok := byID[p.AgentID]; !ok || !s.Same(p) {
				t.Errorf("%s handed on before it was stored", p.AgentID) // routing reads what is stored
			}
		}
		got = append(got, changed)
		return nil
	})
	f.poll(t)
	f.poll(t) // nothing changed: no call
	f.rd.set(agentID(1), presence.Busy, presence.ActivityInACall)
	f.poll(t)
	if len(got) != 2 || len(got[0]) != 3 || len(got[1]) != 1 || got[1][0].AgentID != agentID(1) {
		t.Fatalf("handed on %v", got)
	}
	f.r.OnChanged(func(context.Context, string, []presence.Presence) error { return errors.New("queue down") })
	f.rd.set(agentID(1), presence.Available, "Available")
	f.clk.advance(15 * time.Second)
	if _, err := f.r.RefreshTenant(context.Background(), tid); err == nil || !strings.Contains(err.Error(), "queue down") {
		t.Fatalf("hook error not reported: %v", err)
	}
	if p := f.stored(t, agentID(1)); p.Availability != presence.Available {
		t.Fatal("a failing hook must not undo the stored change")
	}
}

func TestOfflineAtIsThePollThatStoredOfflineAndIsKeptAfterwards(t *testing.T) {
	f := setup(t, 2, presence.Config{OfflineDamping: 20 * time.Second})
	f.poll(t)
	if p := f.stored(t, agentID(0)); !p.OfflineAt.IsZero() {
		t.Fatalf("never Offline but OfflineAt %v", p.OfflineAt)
	}
	f.rd.set(agentID(0), presence.Offline, "Offline")
	f.poll(t)
	firstRead := f.clk.t
	f.poll(t)
	f.poll(t) // 30 s after the first Offline read: stored
	wentOffline := f.clk.t
	p := f.stored(t, agentID(0))
	if p.Availability != presence.Offline || !p.ObservedAt.Equal(firstRead) || !p.OfflineAt.Equal(wentOffline) {
		t.Fatalf("stored %+v; want Offline observed at %v (first read), OfflineAt %v (the poll that stored it)", p, firstRead, wentOffline)
	}
	f.rd.set(agentID(0), presence.Offline, "OffWork")
	f.poll(t)
	if p := f.stored(t, agentID(0)); p.Activity != "OffWork" || !p.OfflineAt.Equal(wentOffline) {
		t.Fatalf("still Offline, other activity: %+v; want OfflineAt kept at %v", p, wentOffline)
	}
	f.rd.set(agentID(0), presence.Available, "Available")
	f.poll(t)
	if p := f.stored(t, agentID(0)); p.Availability != presence.Available || !p.OfflineAt.Equal(wentOffline) {
		t.Fatalf("back online: %+v; want OfflineAt kept at %v", p, wentOffline)
	}
	if q := p; !q.Same(presence.Presence{AgentID: q.AgentID, Availability: q.Availability, Activity: q.Activity, Source: q.Source}) {
		t.Fatal("Same must ignore OfflineAt")
	}

	// A new agent whose first presence is Offline went Offline at that poll.
	must(t, f.store.PutAgents(context.Background(), tid, []tenant.Agent{{ID: agentID(2)}}))
	f.rd.set(agentID(2), presence.Offline, "Offline")
	f.poll(t)
	if p := f.stored(t, agentID(2)); p.Availability != presence.Offline || !p.OfflineAt.Equal(f.clk.t) {
		t.Fatalf("new agent, Offline: %+v; want OfflineAt %v", p, f.clk.t)
	}
}

// tenantsSpy counts agent listings; afterList, when set, runs once after the next
// listing was read (a write racing with it).
type tenantsSpy struct {
	*inmem.Store
	mu        sync.Mutex
	lists     int
	afterList func()
}

func (s *tenantsSpy) ListAgents(ctx context.Context, tenantID string) ([]tenant.Agent, error) {
	as, err := s.Store.ListAgents(ctx, tenantID)
	s.mu.Lock()
	s.lists++
	f := s.afterList
	s.afterList = nil
	s.mu.Unlock()
	if f != nil {
		f()
	}
	return as, err
}

func (s *tenantsSpy) listed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lists
}

func TestAgentsAreListedAgainOnlyWhenTheirVersionChanges(t *testing.T) {
	f := setup(t, 3, presence.Config{})
	ctx := context.Background()
	spy := &tenantsSpy{Store: f.store}
	// Two refreshers: two instances sharing the store.
	r1 := presence.NewRefresher(presence.Config{}, spy, f.store, f.store, f.rd, f.clk.now)
	r2 := presence.NewRefresher(presence.Config{}, spy, f.store, f.store, f.rd, f.clk.now)
	poll := func(r *presence.Refresher) presence.Result {
		t.Helper()
		f.clk.advance(15 * time.Second)
		res, err := r.RefreshTenant(ctx, tid)
		must(t, err)
		return res
	}
	for i := 0; i < 3; i++ {
		if res := poll(r1); res.Agents != 3 {
			t.Fatalf("poll %d: %d agents, want 3", i, res.Agents)
		}
	}
	poll(r2)
	if n := spy.listed(); n != 2 {
		t.Fatalf("4 polls on 2 instances, agents unchanged: listed %d times, want once per instance", n)
	}
	must(t, f.store.PutAgents(ctx, tid, []tenant.Agent{{ID: agentID(3)}}))
	f.rd.set(agentID(3), presence.Busy, presence.ActivityInACall)
	for _, r := range []*presence.Refresher{r1, r2, r1} {
		if res := poll(r); res.Agents != 4 {
			t.Fatalf("after an agent was added: %d agents, want 4", res.Agents)
		}
	}
	if n := spy.listed(); n != 4 {
		t.Fatalf("agents changed once: listed %d times in all, want 4 (once more per instance)", n)
	}
	if p := f.stored(t, agentID(3)); p.Availability != presence.Busy {
		t.Fatalf("the new agent's presence: %+v", p)
	}
}

// The version is read before the list: an agent written after the list was read (but
// before a version read that came after it) is seen by the next poll.
func TestAnAgentWrittenWhileTheAgentsAreListedIsSeenByTheNextPoll(t *testing.T) {
	f := setup(t, 3, presence.Config{})
	ctx := context.Background()
	spy := &tenantsSpy{Store: f.store}
	spy.afterList = func() { must(t, f.store.PutAgents(ctx, tid, []tenant.Agent{{ID: agentID(3)}})) }
	f.rd.set(agentID(3), presence.Available, "Available")
	f.r = presence.NewRefresher(presence.Config{}, spy, f.store, f.store, f.rd, f.clk.now)
	if res := f.poll(t); res.Agents != 3 {
		t.Fatalf("first poll: %d agents, want the 3 listed", res.Agents)
	}
	if res := f.poll(t); res.Agents != 4 {
		t.Fatalf("next poll: %d agents, want 4 (the agent written during the listing)", res.Agents)
	}
	f.stored(t, agentID(3))
}
