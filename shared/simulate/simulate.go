// Package simulate provides the local runner's demo: two tenants with services and
// agents, and a presence Reader whose agents change presence over time the way a
// working day does. Everything it produces is labelled simulated.
package simulate

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/tenant"
)

// Demo tenant ids: Contoso's presence account 1 works; Fabrikam's account 1 is refused
// with "MFA required" so the fallback to account 2 can be seen.
const (
	ContosoID  = "c0a7b0a1-0000-4000-8000-00000000c0de"
	FabrikamID = "fab0fab0-0000-4000-8000-00000000fab0"
)

// Passwords the simulated Entra accepts; any other password is refused (AADSTS50126),
// and "mfa-required" is refused with AADSTS50076.
const (
	GoodPassword = "demo-password"
	MFAPassword  = "mfa-required"
)

// Seed stores the demo tenants, their agents and the presence accounts' passwords.
func Seed(ctx context.Context, tenants tenant.Store, secrets tenant.Secrets, now time.Time) error {
	demoTenant := func(id, name, domain string) tenant.Tenant {
		t := tenant.New(id, name)
		t.UpdatedAt = now
		t.Details.O365Domain = domain
		t.Presence = tenant.PresenceSettings{Enabled: true, Mode: tenant.ModeAccounts,
			Account1: "presence1@" + domain, Account2: "presence2@" + domain}
		return t
	}
	demo := []struct {
		t        tenant.Tenant
		agents   int
		services []string
		pw1      string
	}{
		{demoTenant(ContosoID, "Contoso (simulated)", "contoso.example"), 20, []string{"sales", "support", "billing"}, GoodPassword},
		{demoTenant(FabrikamID, "Fabrikam (simulated)", "fabrikam.example"), 8, []string{"helpdesk"}, MFAPassword},
	}
	for _, d := range demo {
		if err := tenants.PutTenant(ctx, d.t); err != nil {
			return fmt.Errorf("seed tenant: %w", err)
		}
		agents := make([]tenant.Agent, d.agents)
		domain := strings.SplitN(d.t.Presence.Account1, "@", 2)[1]
		for i := range agents {
			agents[i] = tenant.Agent{ID: AgentID(d.t.ID, i), UPN: fmt.Sprintf("agent%02d@%s", i+1, domain),
				DisplayName: fmt.Sprintf("Agent %02d", i+1), Services: []string{d.services[i%len(d.services)]}}
		}
		if err := tenants.PutAgents(ctx, d.t.ID, agents); err != nil {
			return fmt.Errorf("seed agents: %w", err)
		}
		if err := secrets.PutSecret(ctx, d.t.ID, tenant.SecretAccount1Password, d.pw1); err != nil {
			return fmt.Errorf("seed secret: %w", err)
		}
		if err := secrets.PutSecret(ctx, d.t.ID, tenant.SecretAccount2Password, GoodPassword); err != nil {
			return fmt.Errorf("seed secret: %w", err)
		}
	}
	return nil
}

// AgentID is the object id of demo agent i of a tenant.
func AgentID(tenantID string, i int) string {
	return fmt.Sprintf("%s-%012d", tenantID[:23], i+1)
}

// Reader is a presence.Reader over simulated agents. Each agent holds a presence for a
// while (between 20 s and 2 min, drawn per agent) and then moves to another, weighted
// like a contact-center day: mostly Available, often in a call, sometimes away.
type Reader struct {
	now func() time.Time
	mu  sync.Mutex
	ag  map[string]*agent
}

type agent struct {
	until time.Time
	obs   presence.Observation
	rng   uint64
}

var _ presence.Reader = (*Reader)(nil)

// NewReader returns a simulated reader on the given clock (nil = time.Now).
func NewReader(now func() time.Time) *Reader {
	if now == nil {
		now = time.Now
	}
	return &Reader{now: now, ag: map[string]*agent{}}
}

var states = []struct {
	weight int
	a      presence.Availability
	act    string
}{
	{50, presence.Available, "Available"},
	{20, presence.Busy, presence.ActivityInACall},
	{8, presence.Busy, presence.ActivityInAMeeting},
	{8, presence.Away, "Away"},
	{5, presence.BeRightBack, "BeRightBack"},
	{4, presence.DoNotDisturb, presence.ActivityPresenting},
	{5, presence.Offline, "Offline"},
}

func check(c presence.Credential) error {
	switch {
	case c.Kind == presence.CredApplication:
		return nil
	case c.Password == MFAPassword:
		return &presence.AuthError{Code: "AADSTS50076", Message: "multi-factor authentication required (simulated)"}
	case c.Password != GoodPassword:
		return &presence.AuthError{Code: "AADSTS50126", Message: "invalid username or password (simulated)"}
	}
	return nil
}

// ReadPresences implements presence.Reader.
func (r *Reader) ReadPresences(_ context.Context, _ string, c presence.Credential, ids []string) ([]presence.Observation, error) {
	if err := check(c); err != nil {
		return nil, err
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]presence.Observation, len(ids))
	for i, id := range ids {
		out[i] = r.observe(id, now)
	}
	return out, nil
}

// ReadPresence implements presence.Reader; users are known by object id or by a UPN of
// a demo domain (".example").
func (r *Reader) ReadPresence(_ context.Context, _ string, c presence.Credential, user string) (presence.Observation, error) {
	if err := check(c); err != nil {
		return presence.Observation{}, err
	}
	if strings.Contains(user, "@") && !strings.HasSuffix(user, ".example") {
		return presence.Observation{}, fmt.Errorf("user: %w", fault.ErrNotFound)
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.observe(user, now), nil
}

func (r *Reader) observe(id string, now time.Time) presence.Observation {
	a := r.ag[id]
	if a == nil {
		h := fnv.New64a()
		h.Write([]byte(id))
		a = &agent{rng: h.Sum64() | 1}
		r.ag[id] = a
	}
	if !now.Before(a.until) {
		n := int(a.next() % 100)
		for _, s := range states {
			if n < s.weight {
				a.obs = presence.Observation{UserID: id, Availability: s.a, Activity: s.act}
				break
			}
			n -= s.weight
		}
		a.until = now.Add(time.Duration(20+a.next()%100) * time.Second)
	}
	return a.obs
}

// next is xorshift64: deterministic per agent, no shared lock beyond the reader's.
func (a *agent) next() uint64 {
	a.rng ^= a.rng << 13
	a.rng ^= a.rng >> 7
	a.rng ^= a.rng << 17
	return a.rng
}
