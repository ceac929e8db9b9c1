package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/teamscc/teamscc/shared/access"
	"github.com/teamscc/teamscc/shared/audit"
	"github.com/teamscc/teamscc/shared/directory"
	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/funchost"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/retention"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/tenant"
)

// serviceAdmin serves the services and agents administration API (SPEC §3). Tenant
// admins, partner admins and operators manage every service of the tenant; a team
// owner (access.Owns on the service's Owners, signed in to the tenant) reads their own
// services and their agents, and changes only their services' distribution settings
// and their agents' active flags for those services.
type serviceAdmin struct {
	store     routing.Store
	tenants   tenant.Store
	presences presence.Store // for the agents' phases (RONA ends when they go Offline); nil: none kept
	audit     audit.Store
	now       func() time.Time
	dir       *directory.Directory // syncs a Team named on create or patch; nil: not configured
	// retention deletes what is old enough after the removals (retention.go); nil: none.
	retention *retention.Sweeper
}

// teamSyncBudget bounds the Team sync a create or patch runs before it answers; a
// sync cut short is finished by the next one (the DirectorySync timer).
const teamSyncBudget = 20 * time.Second // within httpTimeout

// serviceAnswer is a service as a create or patch answers it: with the outcome of the
// Team sync it ran, or a warning saying why none ran.
type serviceAnswer struct {
	routing.Service
	Sync     *directory.SyncResult `json:"sync,omitempty"`
	Warnings []string              `json:"warnings,omitempty"`
}

// answerWithTeam writes s; when s names a Team (new, or changed by this request) its
// members are synced first, so the service's agents are there when the admin looks.
// A sync that fails leaves the service as written, with a warning.
func (sa *serviceAdmin) answerWithTeam(w http.ResponseWriter, r *http.Request, status int, s routing.Service, teamChanged bool) {
	call := adminFrom(r.Context())
	out := serviceAnswer{}
	if teamChanged && s.Team != "" && sa.dir != nil {
		ctx, cancel := context.WithTimeout(r.Context(), teamSyncBudget)
		res, err := sa.dir.SyncService(ctx, s.TenantID, s.ID)
		cancel()
		switch {
		case err != nil:
			funchost.Logger(r.Context()).Warn("team sync after a service change failed", "tenant", s.TenantID, "service", s.ID, "err", err)
			out.Warnings = []string{"team: members not synced yet (" + syncFailure(err) + "); the DirectorySync timer retries"}
		default:
			out.Sync = &res
			if cur, err := sa.store.GetService(r.Context(), s.TenantID, s.ID); err == nil {
				s = cur // the sync wrote the Team's owners
			}
		}
	}
	out.Service = serviceView(s, call.mask)
	w.Header().Set("ETag", strconv.Quote(strconv.FormatInt(s.Version, 10)))
	funchost.WriteJSON(w, status, out)
}

// syncFailure says why a Team sync failed, in words for the admin.
func syncFailure(err error) string {
	switch {
	case errors.Is(err, directory.ErrNoCredential):
		return "no credential may read the tenant's directory"
	case errors.Is(err, fault.ErrNotFound):
		return "the Team was not found in the tenant's directory"
	case errors.Is(err, context.DeadlineExceeded):
		return "the directory did not answer in time"
	}
	return "the directory could not be read"
}

// Limits of the API's own fields (the service's settings are routing's rules).
const (
	maxServiceIDLen = 40
	maxSkillNameLen = 50
	maxSkillLevel   = 100 // routing's skill levels are 1..100 (SkillRequirement.MinLevel 0..100)
)

// checkServiceID: a new service's id is 1..40 of a-z, 0-9 and '-'.
func checkServiceID(id string) error {
	if id == "" || len(id) > maxServiceIDLen {
		return fault.Invalid("id", "must be 1..40 characters of a-z, 0-9 and -")
	}
	for _, r := range id {
		if !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-') {
			return fault.Invalid("id", "must be 1..40 characters of a-z, 0-9 and -")
		}
	}
	return nil
}

// record appends an audit entry (who, when, which fields); a failure is logged, not
// returned: the change is made.
func (sa *serviceAdmin) record(ctx context.Context, call *adminCall, target, op string, fields map[string]string) {
	roles := []string{}
	for _, r := range call.roles.List() {
		roles = append(roles, string(r))
	}
	e := audit.Entry{TenantID: call.tenant.ID, At: sa.now().UTC(), ActorID: call.caller.ObjectID, ActorTenant: call.caller.TenantID,
		Roles: roles, Operation: op, Target: target, Fields: fields}
	if err := sa.audit.Append(ctx, e); err != nil {
		funchost.Logger(ctx).Error("audit entry not written", "tenant", call.tenant.ID, "operation", op, "err", err)
	}
}

// serviceView masks the user ids a partner may not see: owners, agents in the
// distribution settings, and a Teams user the exit transfers to.
func serviceView(s routing.Service, m access.Masker) routing.Service {
	s = s.Clone()
	for i := range s.Owners {
		s.Owners[i] = m.User(s.Owners[i])
	}
	if s.Calls.Exit.EffectiveAction() == routing.ExitTransfer && tenant.IsGUID(routing.NormalizeTarget(s.Calls.Exit.Target)) {
		s.Calls.Exit.Target = m.User(s.Calls.Exit.Target)
	}
	for i := range s.Distribution.SerialOrder {
		s.Distribution.SerialOrder[i] = m.User(s.Distribution.SerialOrder[i])
	}
	if s.Distribution.Weights != nil {
		w := make(map[string]int, len(s.Distribution.Weights))
		for k, v := range s.Distribution.Weights {
			w[m.User(k)] = v
		}
		s.Distribution.Weights = w
	}
	return s
}

func writeService(w http.ResponseWriter, status int, s routing.Service, m access.Masker) {
	w.Header().Set("ETag", strconv.Quote(strconv.FormatInt(s.Version, 10)))
	funchost.WriteJSON(w, status, serviceView(s, m))
}

// loadOwned reads the service in the path; a caller without a tenant-wide role must
// own it (403 otherwise, before anything else is said about it).
func (sa *serviceAdmin) loadOwned(w http.ResponseWriter, r *http.Request, op access.Operation) (routing.Service, bool) {
	call := adminFrom(r.Context())
	id := r.PathValue("serviceId")
	if err := routing.CheckID("serviceId", id); err != nil {
		funchost.WriteError(w, r, err)
		return routing.Service{}, false
	}
	s, err := sa.store.GetService(r.Context(), call.tenant.ID, id)
	full := access.Allowed(call.roles, op)
	if !full && (err != nil || !access.Owns(call.caller, s.Owners)) {
		forbidden(w, r, "", "you are not an owner of this service")
		return routing.Service{}, false
	}
	if err != nil {
		funchost.WriteError(w, r, fmt.Errorf("service: %w", err))
		return routing.Service{}, false
	}
	return s, true
}

// list shows the tenant's services; a team owner sees the ones they own.
func (sa *serviceAdmin) list(w http.ResponseWriter, r *http.Request) {
	call := adminFrom(r.Context())
	all, err := sa.store.ListServices(r.Context(), call.tenant.ID)
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	full := access.Allowed(call.roles, access.ReadServices)
	out := []routing.Service{}
	for _, s := range all {
		if full || access.Owns(call.caller, s.Owners) {
			out = append(out, serviceView(s, call.mask))
		}
	}
	if !full && len(out) == 0 {
		forbidden(w, r, "", "you are not an owner of any service of this tenant")
		return
	}
	funchost.WriteJSON(w, http.StatusOK, map[string]any{"services": out})
}

func (sa *serviceAdmin) get(w http.ResponseWriter, r *http.Request) {
	s, ok := sa.loadOwned(w, r, access.ReadServices)
	if ok {
		writeService(w, http.StatusOK, s, adminFrom(r.Context()).mask)
	}
}

// serviceInput is the body of a create: the id and type are fixed from then on.
type serviceInput struct {
	ID           string                `json:"id"`
	Name         string                `json:"name"`
	Type         routing.ServiceType   `json:"type"`
	PSTNLicence  bool                  `json:"pstnLicence"`
	Distribution routing.Distribution  `json:"distribution"`
	Calls        routing.CallFlow      `json:"calls"`
	Team         string                `json:"team"`
	PhoneNumbers []routing.PhoneNumber `json:"phoneNumbers"`
	Targets      []string              `json:"targets"`
	Owners       []string              `json:"owners"`
}

// create adds a service (tenant-wide roles only): 400 naming the field for a broken
// rule, 409 when the id exists.
func (sa *serviceAdmin) create(w http.ResponseWriter, r *http.Request) {
	call := adminFrom(r.Context())
	if !access.Allowed(call.roles, access.ManageServices) {
		forbidden(w, r, "", "only a tenant admin, a partner admin or an operator may create services")
		return
	}
	body, err := readBody(r.Body)
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	var in serviceInput
	if err := decodeJSON(body, &in); err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	if err := checkServiceID(in.ID); err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	name := strings.TrimSpace(in.Name)
	if name == "" {
		funchost.WriteError(w, r, fault.Invalid("name", "required"))
		return
	}
	s := routing.Service{TenantID: call.tenant.ID, ID: in.ID, Name: name, Type: in.Type, PSTNLicence: in.PSTNLicence,
		Distribution: in.Distribution, Calls: in.Calls, Team: strings.ToLower(in.Team), PhoneNumbers: in.PhoneNumbers, Targets: in.Targets, Owners: in.Owners, UpdatedAt: sa.now().UTC()}
	if in.Type == "" {
		funchost.WriteError(w, r, fault.Invalid("type", "required: TeamsBased, SkillBased or None"))
		return
	}
	if err := s.Validate(); err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	s, err = sa.store.CreateService(r.Context(), s)
	if err != nil {
		funchost.WriteError(w, r, fmt.Errorf("id: %w", err))
		return
	}
	sa.record(r.Context(), call, "services/"+s.ID, "service.create", auditFields(body))
	sa.answerWithTeam(w, r, http.StatusCreated, s, true)
}

// patchable are the service fields a PATCH may name; ownerPatchable those a team
// owner may change.
var (
	patchable      = []string{"name", "type", "pstnLicence", "distribution", "calls", "team", "phoneNumbers", "targets", "owners"}
	readOnly       = []string{"id", "tenantId", "version", "updatedAt", "pendingDeletion"}
	ownerPatchable = []string{"distribution"}
)

// update changes the fields a JSON object names (a merge patch: objects merge, other
// values replace, null removes). It needs If-Match with the service's version (428
// without, 412 when another change came first); a field the caller may not change is
// 403 naming it; a broken rule (a type change among them) is 400 naming the field; in
// every refusal nothing is written.
func (sa *serviceAdmin) update(w http.ResponseWriter, r *http.Request) {
	call := adminFrom(r.Context())
	s, ok := sa.loadOwned(w, r, access.ManageServices)
	if !ok {
		return
	}
	base, ok := ifMatch(w, r)
	if !ok {
		return
	}
	body, err := readBody(r.Body)
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	var patch map[string]any // numbers stay json.Number, so the merge keeps them exact
	if err := decodeJSON(body, &patch); err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	if patch == nil {
		funchost.WriteError(w, r, fault.Invalid("body", "must be a JSON object"))
		return
	}
	keys := make([]string, 0, len(patch))
	for k := range patch {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch {
		case slices.Contains(readOnly, k):
			funchost.WriteError(w, r, fault.Invalid(k, "read-only"))
			return
		case !slices.Contains(patchable, k):
			funchost.WriteError(w, r, fault.Invalid(k, "unknown field"))
			return
		}
	}
	if !access.Allowed(call.roles, access.ManageServices) {
		for _, k := range keys {
			if !slices.Contains(ownerPatchable, k) {
				forbidden(w, r, k, k+": a team owner may change only the distribution settings")
				return
			}
		}
	}
	now := sa.now().UTC()
	teamChanged := false
	s, err = sa.store.UpdateService(r.Context(), call.tenant.ID, s.ID, func(cur *routing.Service) error {
		if cur.Version != base {
			return fmt.Errorf("If-Match: version %d, the service is at %d: %w", base, cur.Version, fault.ErrPrecondition)
		}
		next, err := applyServicePatch(*cur, patch)
		if err != nil {
			return err
		}
		if next.Type != cur.Type {
			return fault.Invalid("type", "cannot be changed after the service is created")
		}
		next.UpdatedAt = now
		if err := next.Validate(); err != nil {
			return err
		}
		teamChanged = next.Team != cur.Team
		*cur = next
		return nil
	})
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	sa.record(r.Context(), call, "services/"+s.ID, "service.update", auditFields(body))
	sa.answerWithTeam(w, r, http.StatusOK, s, teamChanged)
}

// applyServicePatch merges patch (RFC 7386) into s's JSON and reads the result back
// as decodeJSON does, so an unknown nested field or a value of the wrong type is a
// *fault.FieldError naming it by path ("distribution.ringTimeoutSeconds").
func applyServicePatch(s routing.Service, patch map[string]any) (routing.Service, error) {
	cur, err := json.Marshal(s)
	if err != nil {
		return routing.Service{}, err
	}
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(cur))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return routing.Service{}, err
	}
	mergePatch(doc, patch)
	merged, err := json.Marshal(doc)
	if err != nil {
		return routing.Service{}, err
	}
	var next routing.Service
	if err := decodeJSON(merged, &next); err != nil {
		return routing.Service{}, err
	}
	next.TenantID, next.ID, next.Version = s.TenantID, s.ID, s.Version
	return next, nil
}

// mergePatch applies patch to dst as RFC 7386 does (patch is not modified).
func mergePatch(dst, patch map[string]any) {
	for k, v := range patch {
		switch pv := v.(type) {
		case nil:
			delete(dst, k)
		case map[string]any:
			d, ok := dst[k].(map[string]any)
			if !ok {
				d = map[string]any{}
			}
			mergePatch(d, pv)
			dst[k] = d
		default:
			dst[k] = v
		}
	}
}

// auditFields flattens a JSON object into path → value (JSON), objects descended.
func auditFields(body []byte) map[string]string {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return map[string]string{}
	}
	out := map[string]string{}
	var walk func(prefix string, m map[string]json.RawMessage)
	walk = func(prefix string, m map[string]json.RawMessage) {
		for k, v := range m {
			var sub map[string]json.RawMessage
			if bytes.HasPrefix(bytes.TrimSpace(v), []byte("{")) && json.Unmarshal(v, &sub) == nil && len(sub) > 0 {
				walk(prefix+k+".", sub)
				continue
			}
			var c bytes.Buffer
			if json.Compact(&c, v) != nil {
				c.Reset()
				c.Write(v)
			}
			out[prefix+k] = c.String()
		}
	}
	walk("", m)
	return out
}

// remove marks the service PendingDeletion (tenant-wide roles only): it stops routing
// at once; a later provisioning run removes it. Deleting it again answers the same.
func (sa *serviceAdmin) remove(w http.ResponseWriter, r *http.Request) {
	call := adminFrom(r.Context())
	if !access.Allowed(call.roles, access.ManageServices) {
		forbidden(w, r, "", "only a tenant admin, a partner admin or an operator may delete services")
		return
	}
	s, ok := sa.loadOwned(w, r, access.ManageServices)
	if !ok {
		return
	}
	errAlready := errors.New("already PendingDeletion")
	now := sa.now().UTC()
	_, err := sa.store.UpdateService(r.Context(), call.tenant.ID, s.ID, func(cur *routing.Service) error {
		if cur.PendingDeletion {
			return errAlready
		}
		cur.PendingDeletion, cur.UpdatedAt = true, now
		return nil
	})
	switch {
	case errors.Is(err, errAlready):
	case err != nil:
		funchost.WriteError(w, r, err)
		return
	default:
		sa.record(r.Context(), call, "services/"+s.ID, "service.delete", map[string]string{"pendingDeletion": "true"})
	}
	funchost.WriteJSON(w, http.StatusAccepted, map[string]any{"serviceId": s.ID, "status": "PendingDeletion"})
}

// agentView is an agent with its routing profile. Names, UPNs and ids are user
// identifiers: masked for a partner the tenant does not let see them.
type agentView struct {
	ID          string         `json:"id"`
	DisplayName string         `json:"displayName,omitempty"`
	UPN         string         `json:"upn,omitempty"`
	Services    []string       `json:"services"` // Teams-based memberships
	Skills      map[string]int `json:"skills"`   // skill → level 1..100
	Duty        routing.Duty   `json:"duty"`
	// Active is the per-service active flag of each Teams-based membership.
	Active map[string]bool `json:"active"`
	// Phase is where the agent is in the routing cycle now, in every service (Idle,
	// Ringing, Connected, RONA, ACW), as routing sees it; PhaseUntil is when a ring,
	// RONA or after-call work ends by itself.
	Phase      routing.Phase `json:"phase"`
	PhaseUntil *time.Time    `json:"phaseUntil,omitempty"`
	// Availability and Activity are the Teams presence routing sees ("" when none
	// was read).
	Availability presence.Availability `json:"availability,omitempty"`
	Activity     string                `json:"activity,omitempty"`
}

// agentsOf joins the tenant's directory of agents with their routing states.
func (sa *serviceAdmin) agentsOf(ctx context.Context, tenantID string) (map[string]tenant.Agent, map[string]routing.AgentState, error) {
	dir, err := sa.tenants.ListAgents(ctx, tenantID)
	if err != nil {
		return nil, nil, err
	}
	states, err := sa.store.ListAgentStates(ctx, tenantID)
	if err != nil {
		return nil, nil, err
	}
	byID := make(map[string]tenant.Agent, len(dir))
	for _, a := range dir {
		byID[a.ID] = a
	}
	st := make(map[string]routing.AgentState, len(states))
	for _, s := range states {
		st[s.AgentID] = s
	}
	return byID, st, nil
}

// presencesOf is the presence routing sees of each agent of the tenant (also when
// they last went Offline, which ends RONA); empty when presence is not kept.
func (sa *serviceAdmin) presencesOf(ctx context.Context, tenantID string) (map[string]presence.Presence, error) {
	out := map[string]presence.Presence{}
	if sa.presences == nil {
		return out, nil
	}
	ps, err := sa.presences.LoadPresences(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		out[p.AgentID] = p
	}
	return out, nil
}

// ownedServices are the ids of the services call owns (nil for a tenant-wide role:
// see full).
func ownedServices(call *adminCall, services []routing.Service) map[string]bool {
	out := map[string]bool{}
	for _, s := range services {
		if access.Owns(call.caller, s.Owners) {
			out[s.ID] = true
		}
	}
	return out
}

// listAgents shows every agent of the tenant with its routing profile; a team owner
// sees the agents of the services they own.
func (sa *serviceAdmin) listAgents(w http.ResponseWriter, r *http.Request) {
	call := adminFrom(r.Context())
	full := access.Allowed(call.roles, access.ReadServices)
	services, err := sa.store.ListServices(r.Context(), call.tenant.ID)
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	owned := ownedServices(call, services)
	if !full && len(owned) == 0 {
		forbidden(w, r, "", "you are not an owner of any service of this tenant")
		return
	}
	dir, states, err := sa.agentsOf(r.Context(), call.tenant.ID)
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	ps, err := sa.presencesOf(r.Context(), call.tenant.ID)
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	now := sa.now()
	ids := make([]string, 0, len(dir)+len(states))
	for id := range dir {
		ids = append(ids, id)
	}
	for id := range states {
		if _, ok := dir[id]; !ok {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	out := []agentView{}
	for _, id := range ids {
		v := newAgentView(call.mask, id, dir[id], states[id], now, ps[id])
		if !full && !slices.ContainsFunc(v.Services, func(s string) bool { return owned[s] }) &&
			!slices.ContainsFunc(v.Duty.Services, func(s string) bool { return owned[s] }) {
			continue
		}
		out = append(out, v)
	}
	funchost.WriteJSON(w, http.StatusOK, map[string]any{"agents": out})
}

// agentPatch is what an admin may change of an agent's routing profile; nothing of
// its routing state (ringing, connected, RONA, ACW) is reachable from here.
type agentPatch struct {
	// Skills sets levels (1..100); null removes the skill.
	Skills map[string]*int `json:"skills"`
	// Duty replaces the responsibility profile.
	Duty *routing.Duty `json:"duty"`
	// Active sets the active flag per Teams-based service the agent is a member of.
	Active map[string]bool `json:"active"`
}

// updateAgent changes an agent's routing profile through UpdateAgentState, so it never
// races the router's reservations: only Skills, Duty and Inactive are written. A team
// owner may set the active flag for the services they own, nothing else (403 naming
// the field); a broken rule is 400 naming the field; nothing is written on a refusal.
func (sa *serviceAdmin) updateAgent(w http.ResponseWriter, r *http.Request) {
	call := adminFrom(r.Context())
	id := r.PathValue("agentId")
	if err := routing.CheckID("agentId", id); err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	services, err := sa.store.ListServices(r.Context(), call.tenant.ID)
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	full := access.Allowed(call.roles, access.ManageServices)
	owned := ownedServices(call, services)
	if !full && !call.self && len(owned) == 0 {
		forbidden(w, r, "", "you are not an owner of any service of this tenant")
		return
	}
	var p agentPatch
	if err := decodeStrict(r.Body, &p); err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	if call.self && !full {
		// An agent changes their own duty profile: off duty or not, and which of
		// their skills they work with; the services stay as admins assigned them.
		switch {
		case p.Skills != nil:
			forbidden(w, r, "skills", "skills: an agent may change only their own duty profile")
			return
		case p.Active != nil:
			forbidden(w, r, "active", "active: an agent may change only their own duty profile")
			return
		}
	} else if !full {
		if p.Skills != nil {
			forbidden(w, r, "skills", "skills: a team owner may change only the active flags of their services")
			return
		}
		if p.Duty != nil {
			forbidden(w, r, "duty", "duty: a team owner may change only the active flags of their services")
			return
		}
		for _, s := range sortedKeys(p.Active) {
			if !owned[s] {
				forbidden(w, r, "active."+s, "active."+s+": you are not an owner of this service")
				return
			}
		}
	}
	dir, states, err := sa.agentsOf(r.Context(), call.tenant.ID)
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	if _, ok := dir[id]; !ok {
		if _, ok := states[id]; !ok {
			funchost.WriteError(w, r, fmt.Errorf("agent: %w", fault.ErrNotFound))
			return
		}
	}
	if !full && !call.self { // the owner's services must be the agent's
		st, a := states[id], dir[id]
		if !slices.ContainsFunc(append(slices.Clone(st.Services), a.Services...), func(s string) bool { return owned[s] }) {
			forbidden(w, r, "", "the agent is not a member of a service you own")
			return
		}
	}
	byID := make(map[string]routing.Service, len(services))
	for _, s := range services {
		byID[s.ID] = s
	}
	// Rules that need no agent state, checked before reading it.
	for _, name := range sortedKeys(p.Skills) {
		field := "skills." + name
		if name == "" || utf8.RuneCountInString(name) > maxSkillNameLen || strings.TrimSpace(name) != name {
			funchost.WriteError(w, r, fault.Invalid(field, fmt.Sprintf("a skill name is 1..%d characters without leading or trailing spaces", maxSkillNameLen)))
			return
		}
		if lvl := p.Skills[name]; lvl != nil && (*lvl < 1 || *lvl > maxSkillLevel) {
			funchost.WriteError(w, r, fault.Invalid(field, fmt.Sprintf("level must be 1..%d (null removes the skill)", maxSkillLevel)))
			return
		}
	}
	if p.Duty != nil {
		for _, s := range p.Duty.Services {
			if sv, ok := byID[s]; !ok || sv.Type != routing.SkillBased {
				funchost.WriteError(w, r, fault.Invalid("duty.services", "each must be a SkillBased service of the tenant ("+strconv.Quote(s)+" is not)"))
				return
			}
		}
		if hasDuplicates(p.Duty.Services) {
			funchost.WriteError(w, r, fault.Invalid("duty.services", "no duplicates"))
			return
		}
		if hasDuplicates(p.Duty.Skills) {
			funchost.WriteError(w, r, fault.Invalid("duty.skills", "no duplicates"))
			return
		}
	}
	for _, s := range sortedKeys(p.Active) {
		if sv, ok := byID[s]; !ok || sv.Type != routing.TeamsBased {
			funchost.WriteError(w, r, fault.Invalid("active."+s, "must be a TeamsBased service of the tenant"))
			return
		}
	}
	var fields map[string]string
	_, err = sa.store.UpdateAgentState(r.Context(), call.tenant.ID, id, func(a *routing.AgentState) error {
		fields = map[string]string{} // fn runs again after a lost race
		skills := make(map[string]int, len(a.Skills)+len(p.Skills))
		for k, v := range a.Skills {
			skills[k] = v
		}
		for name, lvl := range p.Skills {
			if lvl == nil {
				delete(skills, name)
				fields["skills."+name] = "null"
			} else {
				skills[name] = *lvl
				fields["skills."+name] = strconv.Itoa(*lvl)
			}
		}
		duty := a.Duty
		if p.Duty != nil {
			duty = *p.Duty
			if call.self && !full && !sameSet(duty.Services, a.Duty.Services) {
				return errSelfServices
			}
			b, _ := json.Marshal(duty)
			fields["duty"] = string(b)
		}
		for _, sk := range duty.Skills {
			if _, ok := skills[sk]; !ok {
				return fault.Invalid("duty.skills", "each must be one of the agent's skills ("+strconv.Quote(sk)+" is not)")
			}
		}
		inactive := slices.Clone(a.Inactive)
		for _, s := range sortedKeys(p.Active) {
			if !slices.Contains(a.Services, s) {
				return fault.Invalid("active."+s, "the agent is not a member of this Teams-based service")
			}
			inactive = slices.DeleteFunc(inactive, func(x string) bool { return x == s })
			if !p.Active[s] {
				inactive = append(inactive, s)
			}
			fields["active."+s] = strconv.FormatBool(p.Active[s])
		}
		slices.Sort(inactive)
		if len(skills) == 0 {
			skills = nil
		}
		if len(inactive) == 0 {
			inactive = nil
		}
		a.Skills, a.Duty, a.Inactive = skills, duty, inactive
		return nil
	})
	if errors.Is(err, errSelfServices) {
		forbidden(w, r, "duty.services", "duty.services: the services an agent is on duty for are assigned by admins")
		return
	}
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	if len(fields) > 0 {
		sa.record(r.Context(), call, "agents/"+id, "agent.update", fields)
	}
	// Answer with the agent as the list shows it.
	dir, states, err = sa.agentsOf(r.Context(), call.tenant.ID)
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	ps, err := sa.presencesOf(r.Context(), call.tenant.ID)
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	funchost.WriteJSON(w, http.StatusOK, newAgentView(call.mask, id, dir[id], states[id], sa.now(), ps[id]))
}

// errSelfServices: an agent tried to change the services of their own duty profile.
var errSelfServices = errors.New("an agent may not change the services of their duty")

// sameSet reports whether a and b hold the same strings.
func sameSet(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

// getAgent shows one agent: admins any, a team owner the agents of their services,
// an agent themselves.
func (sa *serviceAdmin) getAgent(w http.ResponseWriter, r *http.Request) {
	call := adminFrom(r.Context())
	id := strings.ToLower(r.PathValue("agentId"))
	if err := routing.CheckID("agentId", id); err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	var owned map[string]bool
	if !access.Allowed(call.roles, access.ReadServices) && !call.self {
		services, err := sa.store.ListServices(r.Context(), call.tenant.ID)
		if err != nil {
			funchost.WriteError(w, r, err)
			return
		}
		if owned = ownedServices(call, services); len(owned) == 0 {
			forbidden(w, r, "", "you are not an owner of any service of this tenant")
			return
		}
	}
	dir, states, err := sa.agentsOf(r.Context(), call.tenant.ID)
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	a, inDir := dir[id]
	st, inRouting := states[id]
	if !inDir && !inRouting {
		funchost.WriteError(w, r, fmt.Errorf("agent: %w", fault.ErrNotFound))
		return
	}
	ps, err := sa.presencesOf(r.Context(), call.tenant.ID)
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	v := newAgentView(call.mask, id, a, st, sa.now(), ps[id])
	if owned != nil && !slices.ContainsFunc(v.Services, func(s string) bool { return owned[s] }) &&
		!slices.ContainsFunc(v.Duty.Services, func(s string) bool { return owned[s] }) {
		forbidden(w, r, "", "the agent is not a member of a service you own")
		return
	}
	funchost.WriteJSON(w, http.StatusOK, v)
}

// newAgentView joins an agent's directory entry and routing state; memberships are
// those of either.
func newAgentView(m access.Masker, id string, a tenant.Agent, st routing.AgentState, now time.Time, p presence.Presence) agentView {
	members := slices.Clone(st.Services)
	for _, s := range a.Services {
		if !slices.Contains(members, s) {
			members = append(members, s)
		}
	}
	slices.Sort(members)
	v := agentView{ID: m.User(id), DisplayName: m.User(a.DisplayName), UPN: m.User(a.UPN),
		Services: members, Skills: st.Skills, Duty: st.Duty, Active: map[string]bool{}}
	if v.Services == nil {
		v.Services = []string{}
	}
	if v.Skills == nil {
		v.Skills = map[string]int{}
	}
	for _, s := range members {
		v.Active[s] = !slices.Contains(st.Inactive, s)
	}
	v.Availability, v.Activity = p.Availability, p.Activity
	switch v.Phase = st.PhaseAt(now, p.OfflineAt); v.Phase {
	case routing.PhaseRinging:
		v.PhaseUntil = timePtr(st.Hold.Until)
	case routing.PhaseRONA:
		v.PhaseUntil = timePtr(st.RONAUntil)
	case routing.PhaseACW:
		v.PhaseUntil = timePtr(st.ACWUntil)
	}
	return v
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func hasDuplicates(s []string) bool {
	seen := make(map[string]bool, len(s))
	for _, x := range s {
		if seen[x] {
			return true
		}
		seen[x] = true
	}
	return false
}

// provisioningRun is the ProvisioningRun timer: every service pending deletion (deleted
// by itself or with its tenant) is removed with its tasks. A failure is logged and left
// to the next run; the service stays PendingDeletion, so it never routes meanwhile.
// Then retention deletes what every tenant keeps no longer (applyRetention).
func (h *serviceAdmin) provisioningRun(ctx context.Context, _ funchost.Timer) error {
	log := funchost.Logger(ctx)
	ts, err := h.tenants.ListTenants(ctx)
	if err != nil {
		return err
	}
	var removed, tasks, failed int
	var scopes []retention.Scope // what retention then applies to: every tenant, its live services
	for _, t := range ts {
		svcs, err := h.store.ListServices(ctx, t.ID)
		if err != nil {
			log.Error("provisioning: list services failed", "tenant", t.ID, "err", err)
			failed++
			continue
		}
		scope := retention.Scope{Tenant: t}
		for _, s := range svcs {
			if !s.PendingDeletion {
				scope.Services = append(scope.Services, s.ID)
				continue
			}
			n, err := h.store.PurgeService(ctx, t.ID, s.ID)
			switch {
			case errors.Is(err, fault.ErrNotFound):
			case err != nil:
				log.Error("provisioning: service not removed", "tenant", t.ID, "service", s.ID, "err", err)
				failed++
			default:
				removed++
				tasks += n
			}
		}
		scopes = append(scopes, scope)
	}
	log.Info("provisioning run", "tenants", len(ts), "services_removed", removed, "tasks_removed", tasks, "failures", failed)
	h.applyRetention(ctx, scopes)
	return nil
}
