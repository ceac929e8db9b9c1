package directory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/tenant"
)

// Routes is what the directory reads and writes of routing.
type Routes interface {
	GetService(ctx context.Context, tenantID, serviceID string) (routing.Service, error)
	ListServices(ctx context.Context, tenantID string) ([]routing.Service, error)
	UpdateService(ctx context.Context, tenantID, serviceID string, fn func(*routing.Service) error) (routing.Service, error)
	UpdateAgentState(ctx context.Context, tenantID, agentID string, fn func(*routing.AgentState) error) (routing.AgentState, error)
}

// Options wires a Directory.
type Options struct {
	Graph   Graph
	Store   Store
	Tenants tenant.Store
	Secrets tenant.Secrets
	Routes  Routes
	// Writes bounds the agent writes of one sync in flight (default 8).
	Writes int
	Now    func() time.Time                   // nil = time.Now
	Log    func(context.Context) *slog.Logger // nil discards
}

// Directory brings agents in from the tenants' directories. Safe for concurrent use.
type Directory struct {
	o Options

	mu      sync.Mutex
	working map[string]presence.CredentialKind // tenant → the credential that last worked
}

// New returns a Directory.
func New(o Options) *Directory {
	if o.Writes <= 0 {
		o.Writes = 8
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = func(context.Context) *slog.Logger { return slog.New(slog.DiscardHandler) }
	}
	return &Directory{o: o, working: map[string]presence.CredentialKind{}}
}

// ErrNoCredential: no credential of the tenant may read its directory (no consent
// for the application, no presence account with the delegated permissions).
var ErrNoCredential = errors.New("directory: no credential may read this tenant's directory")

// candidate is a credential to try and, for a presence account, the name of the
// secret holding its password (read only when the account's turn comes).
type candidate struct {
	cred   presence.Credential
	secret string
}

// creds are the credentials to try for a tenant, the one that last worked first:
// the application permission, then the presence accounts' delegated tokens.
func (d *Directory) creds(t tenant.Tenant) []candidate {
	out := []candidate{{cred: presence.Credential{Kind: presence.CredApplication}}}
	if u := t.Presence.Account1; u != "" {
		out = append(out, candidate{presence.Credential{Kind: presence.CredAccount1, Username: u}, tenant.SecretAccount1Password})
	}
	if u := t.Presence.Account2; u != "" {
		out = append(out, candidate{presence.Credential{Kind: presence.CredAccount2, Username: u}, tenant.SecretAccount2Password})
	}
	d.mu.Lock()
	last, ok := d.working[t.ID]
	d.mu.Unlock()
	if ok {
		slices.SortStableFunc(out, func(a, b candidate) int {
			switch {
			case a.cred.Kind == last && b.cred.Kind != last:
				return -1
			case b.cred.Kind == last && a.cred.Kind != last:
				return 1
			}
			return 0
		})
	}
	return out
}

// withCred runs read with each credential in turn until one is not refused as a
// credential (*presence.AuthError); ErrNoCredential (wrapping the last refusal) when
// none is accepted. A presence account's password is read only when its turn comes
// (an account without one is skipped), so the usual case costs no secret read.
func (d *Directory) withCred(ctx context.Context, t tenant.Tenant, read func(presence.Credential) error) error {
	last := errors.New("no credential to try")
	for _, cand := range d.creds(t) {
		c := cand.cred
		if cand.secret != "" {
			pw, err := d.o.Secrets.GetSecret(ctx, t.ID, cand.secret)
			if err != nil {
				continue
			}
			c.Password = pw
		}
		err := read(c)
		var ae *presence.AuthError
		if errors.As(err, &ae) {
			last = err
			continue
		}
		if err == nil {
			d.mu.Lock()
			d.working[t.ID] = c.Kind
			d.mu.Unlock()
		}
		return err
	}
	return fmt.Errorf("%w: %w", ErrNoCredential, last)
}

// SyncResult says what one sync of a service did.
type SyncResult struct {
	Full           bool `json:"full"` // read from the start (first sync, a new Team, an expired link)
	Added          int  `json:"added"`
	Removed        int  `json:"removed"`
	OwnersAdded    int  `json:"ownersAdded"`
	OwnersRemoved  int  `json:"ownersRemoved"`
	Members        int  `json:"members"`
	GraphRequests  int  `json:"graphRequests"`
	AgentsWritten  int  `json:"agentsWritten"`
	ServiceWritten bool `json:"serviceWritten"`
}

// SyncService brings a Teams-based service's agents in step with its Team: members
// who joined become agents of the service (directory entry and routing membership),
// members who left stop receiving its calls at once (their history stays), and the
// Team's owners are the service's team owners. It reads only what changed since the
// last sync (Graph's group delta); a first sync, a new Team or an expired delta link
// reads the whole membership and also removes agents who are no longer members.
// Changes are applied before the new delta link is stored, so a sync that fails half
// way is redone by the next one (every change is idempotent). Errors: *fault.FieldError
// for a service that is not Teams-based or names no Team; fault.ErrNotFound for an
// unknown service or Team; ErrNoCredential; fault.ErrPrecondition when another sync
// of the service stored its state first.
func (d *Directory) SyncService(ctx context.Context, tenantID, serviceID string) (SyncResult, error) {
	t, err := d.o.Tenants.GetTenant(ctx, tenantID)
	if err != nil {
		return SyncResult{}, fmt.Errorf("tenant: %w", err)
	}
	svc, err := d.o.Routes.GetService(ctx, tenantID, serviceID)
	if err != nil {
		return SyncResult{}, fmt.Errorf("service: %w", err)
	}
	return d.syncService(ctx, t, svc)
}

// syncService is SyncService of a tenant and service already read.
func (d *Directory) syncService(ctx context.Context, t tenant.Tenant, svc routing.Service) (SyncResult, error) {
	var res SyncResult
	tenantID, serviceID := t.ID, svc.ID
	switch {
	case svc.Type != routing.TeamsBased:
		return res, fault.Invalid("type", "only a Teams-based service follows a Team")
	case svc.Team == "":
		return res, fault.Invalid("team", "the service names no Team (group id)")
	}
	state, err := d.o.Store.GetSync(ctx, tenantID, serviceID)
	if err != nil && !errors.Is(err, fault.ErrNotFound) {
		return res, fmt.Errorf("sync state: %w", err)
	}
	if errors.Is(err, fault.ErrNotFound) {
		state = SyncState{TenantID: tenantID, ServiceID: serviceID}
	}
	link := state.Link
	if !strings.EqualFold(state.GroupID, svc.Team) {
		link = ""
	}
	var delta GroupDelta
	err = d.withCred(ctx, t, func(c presence.Credential) error {
		delta, err = d.o.Graph.GroupDelta(ctx, tenantID, c, svc.Team, link)
		if errors.Is(err, ErrResync) && link != "" {
			res.GraphRequests += delta.Pages
			link = ""
			delta, err = d.o.Graph.GroupDelta(ctx, tenantID, c, svc.Team, "")
		}
		return err
	})
	res.GraphRequests += delta.Pages
	if err != nil {
		d.recordError(ctx, state, err)
		return res, fmt.Errorf("group delta: %w", err)
	}
	res.Full = link == ""

	agents, err := d.o.Tenants.ListAgents(ctx, tenantID)
	if err != nil {
		return res, fmt.Errorf("agents: %w", err)
	}
	byID := make(map[string]tenant.Agent, len(agents))
	for _, a := range agents {
		byID[strings.ToLower(a.ID)] = a
	}
	added, removed := lowerAll(delta.MembersAdded), lowerAll(delta.MembersRemoved)
	if res.Full {
		in := map[string]bool{}
		for _, id := range added {
			in[id] = true
		}
		removed = nil
		for id, a := range byID {
			if slices.Contains(a.Services, serviceID) && !in[id] {
				removed = append(removed, id)
			}
		}
	}
	// New members need their directory entry (UPN, name); members already known as
	// agents of another service do not.
	var unknown []string
	for _, id := range added {
		if _, ok := byID[id]; !ok {
			unknown = append(unknown, id)
		}
	}
	for start := 0; start < len(unknown); start += MaxIDsPerRead {
		chunk := unknown[start:min(start+MaxIDsPerRead, len(unknown))]
		var users []User
		err := d.withCred(ctx, t, func(c presence.Credential) error {
			users, err = d.o.Graph.Users(ctx, tenantID, c, chunk)
			return err
		})
		res.GraphRequests++
		if err != nil {
			return res, fmt.Errorf("read new members: %w", err)
		}
		for _, u := range users {
			id := strings.ToLower(u.ID)
			byID[id] = tenant.Agent{TenantID: tenantID, ID: id, UPN: u.UPN, DisplayName: u.DisplayName}
		}
	}
	var put []tenant.Agent
	var changedAgents []string
	for _, id := range added {
		a, ok := byID[id]
		if !ok {
			continue // not a user any more
		}
		if !slices.Contains(a.Services, serviceID) {
			a.Services = append(slices.Clone(a.Services), serviceID)
			byID[id] = a
			put = append(put, a)
			res.Added++
		}
		changedAgents = append(changedAgents, id)
	}
	for _, id := range removed {
		a, ok := byID[id]
		if !ok || !slices.Contains(a.Services, serviceID) {
			continue
		}
		a.Services = slices.DeleteFunc(slices.Clone(a.Services), func(s string) bool { return s == serviceID })
		byID[id] = a
		put = append(put, a)
		changedAgents = append(changedAgents, id)
		res.Removed++
	}
	if len(put) > 0 {
		if err := d.o.Tenants.PutAgents(ctx, tenantID, put); err != nil {
			return res, fmt.Errorf("write agents: %w", err)
		}
	}
	isRemoved := map[string]bool{}
	for _, id := range removed {
		isRemoved[id] = true
	}
	n, err := d.writeRouting(ctx, tenantID, serviceID, changedAgents, isRemoved)
	res.AgentsWritten = n
	if err != nil {
		return res, err
	}
	res.OwnersAdded, res.OwnersRemoved, res.ServiceWritten, err = d.syncOwners(ctx, tenantID, serviceID, res.Full, delta)
	if err != nil {
		return res, err
	}
	count := 0
	for _, a := range byID {
		if slices.Contains(a.Services, serviceID) {
			count++
		}
	}
	res.Members = count
	state.GroupID, state.Link, state.At, state.Members, state.Error = svc.Team, delta.Link, d.o.Now(), count, ""
	if _, err := d.o.Store.PutSync(ctx, state); err != nil {
		return res, fmt.Errorf("store sync state: %w", err)
	}
	d.o.Log(ctx).Info("team members synced", "tenant", tenantID, "service", serviceID, "full", res.Full, "added", res.Added,
		"removed", res.Removed, "members", res.Members, "graph_requests", res.GraphRequests)
	return res, nil
}

func lowerAll(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = strings.ToLower(id)
	}
	return out
}

// writeRouting puts the service into (or out of) each changed agent's routing
// membership, a bounded number at a time. A removed member's active flag for the
// service goes too.
func (d *Directory) writeRouting(ctx context.Context, tenantID, serviceID string, ids []string, removed map[string]bool) (int, error) {
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		errs    []error
		written int
		sem     = make(chan struct{}, d.o.Writes)
	)
	for _, id := range ids {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			changed := false
			_, err := d.o.Routes.UpdateAgentState(ctx, tenantID, id, func(a *routing.AgentState) error {
				changed = false
				has := slices.Contains(a.Services, serviceID)
				switch {
				case removed[id] && has:
					a.Services = slices.DeleteFunc(a.Services, func(s string) bool { return s == serviceID })
					a.Inactive = slices.DeleteFunc(a.Inactive, func(s string) bool { return s == serviceID })
				case !removed[id] && !has:
					a.Services = append(a.Services, serviceID)
				default:
					return errNothing
				}
				changed = true
				return nil
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil && !errors.Is(err, errNothing) {
				errs = append(errs, err)
			}
			if changed && err == nil {
				written++
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return written, fmt.Errorf("write routing memberships: %w", err)
	}
	return written, nil
}

var errNothing = errors.New("nothing to change")

// syncOwners makes the Team's owners the service's owners (a full sync replaces the
// list; a delta adds and removes).
func (d *Directory) syncOwners(ctx context.Context, tenantID, serviceID string, full bool, delta GroupDelta) (added, removed int, written bool, err error) {
	add, rem := lowerAll(delta.OwnersAdded), lowerAll(delta.OwnersRemoved)
	_, err = d.o.Routes.UpdateService(ctx, tenantID, serviceID, func(s *routing.Service) error {
		added, removed = 0, 0
		owners := lowerAll(s.Owners)
		next := slices.Clone(owners)
		if full {
			next = nil
		}
		for _, id := range add {
			if !slices.Contains(next, id) {
				next = append(next, id)
			}
		}
		next = slices.DeleteFunc(next, func(id string) bool { return slices.Contains(rem, id) })
		if len(next) > routing.MaxOwners {
			next = next[:routing.MaxOwners]
		}
		for _, id := range next {
			if !slices.Contains(owners, id) {
				added++
			}
		}
		for _, id := range owners {
			if !slices.Contains(next, id) {
				removed++
			}
		}
		if added == 0 && removed == 0 {
			return errNothing
		}
		s.Owners = next
		return nil
	})
	if errors.Is(err, errNothing) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, fmt.Errorf("write owners: %w", err)
	}
	return added, removed, true, nil
}

// recordError notes a failed sync on its state (best effort), for the admin view.
func (d *Directory) recordError(ctx context.Context, s SyncState, cause error) {
	msg := "graph read failed"
	switch {
	case errors.Is(cause, ErrNoCredential):
		msg = "no credential may read the tenant's directory: consent the app's directory permissions (or give the presence accounts GroupMember.Read.All)"
	case errors.Is(cause, fault.ErrNotFound):
		msg = "the Team (group) does not exist in the tenant's directory"
	}
	s.Error = msg
	if _, err := d.o.Store.PutSync(ctx, s); err != nil {
		d.o.Log(ctx).Warn("sync error not recorded", "tenant", s.TenantID, "service", s.ServiceID, "err", err)
	}
}

// SyncAllResult says what a run over every tenant did.
type SyncAllResult struct {
	Services int `json:"services"`
	Failed   int `json:"failed"`
	Added    int `json:"added"`
	Removed  int `json:"removed"`
}

// SyncAll syncs every Teams-based service that names a Team, tenant by tenant
// (tenants pending deletion are skipped). Failures of single services are counted
// and logged; those another run may cure (not a Team the directory lacks, nor a
// tenant without consent: those wait for an admin) are joined into the error after
// every service was tried.
func (d *Directory) SyncAll(ctx context.Context) (SyncAllResult, error) {
	var res SyncAllResult
	ts, err := d.o.Tenants.ListTenants(ctx)
	if err != nil {
		return res, fmt.Errorf("tenants: %w", err)
	}
	var errs []error
	for _, t := range ts {
		if t.Deleted {
			continue
		}
		svcs, err := d.o.Routes.ListServices(ctx, t.ID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, s := range svcs {
			if s.Type != routing.TeamsBased || s.Team == "" || s.PendingDeletion {
				continue
			}
			res.Services++
			r, err := d.syncService(ctx, t, s)
			res.Added += r.Added
			res.Removed += r.Removed
			if err != nil {
				res.Failed++
				d.o.Log(ctx).Warn("team members not synced", "tenant", t.ID, "service", s.ID, "err", err)
				if !errors.Is(err, fault.ErrNotFound) && !errors.Is(err, ErrNoCredential) {
					errs = append(errs, err)
				}
			}
		}
	}
	return res, errors.Join(errs...)
}
