package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/teamscc/teamscc/shared/access"
	"github.com/teamscc/teamscc/shared/audit"
	"github.com/teamscc/teamscc/shared/directory"
	"github.com/teamscc/teamscc/shared/entra"
	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/funchost"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/tenant"
	"github.com/teamscc/teamscc/shared/userstate"
)

// adminAuth authenticates admin API callers (an Entra bearer token for this app) and
// works out their roles for the tenant a request names. In the local runner verify
// is nil and every caller is a platform operator, which the banner says.
type adminAuth struct {
	verify   func(ctx context.Context, token string) (access.Caller, error)
	resolver access.Resolver
	tenants  tenant.Store
	// authority is the Entra authority host a 401 points callers to
	// (EntraAuthorityHost; "" = https://login.microsoftonline.com/).
	authority string
}

// localAdmin is the local runner's admin "authentication": every caller is a platform
// operator (with the default operator role), so curl needs no token.
func localAdmin(tenants tenant.Store) *adminAuth {
	return &adminAuth{resolver: access.Resolver{OperatorRole: "Platform.Operator"}, tenants: tenants}
}

// adminCall is what the guard found out, for the handler behind it.
type adminCall struct {
	caller access.Caller
	roles  access.Roles
	tenant tenant.Tenant // set when the route names a tenant
	mask   access.Masker
	// self: the caller came in only as the agent the route names ({agentId}), for a
	// self-service operation (access.SelfMay); the handler limits what changes.
	self bool
}

type adminCallKey struct{}

// adminFrom returns the guard's findings (never nil behind a guard).
func adminFrom(ctx context.Context) *adminCall {
	c, _ := ctx.Value(adminCallKey{}).(*adminCall)
	if c == nil {
		return &adminCall{}
	}
	return c
}

// newAdminAuth builds the token check for Azure mode: tokens for one of audiences, from
// any tenant (the roles decide what they may do). Without audiences every call is
// refused: an admin API that accepted any token would be open.
func newAdminAuth(audiences []string, v *entra.Validator, resolver access.Resolver, tenants tenant.Store) *adminAuth {
	a := &adminAuth{resolver: resolver, tenants: tenants}
	a.verify = func(ctx context.Context, token string) (access.Caller, error) {
		if len(audiences) == 0 || v == nil {
			return access.Caller{}, errors.New("AdminAudiences is not set")
		}
		c, err := v.Verify(ctx, token, entra.Want{Audiences: audiences})
		if err != nil {
			return access.Caller{}, err
		}
		return access.Caller{ObjectID: c.ObjectID, TenantID: c.TenantID, AppRoles: c.Roles, Groups: c.Groups, GroupsOverage: c.GroupsOverage}, nil
	}
	return a
}

// authenticate reads the caller from the bearer token (401 without a valid one).
func (a *adminAuth) authenticate(w http.ResponseWriter, r *http.Request) (access.Caller, bool) {
	if a.verify == nil {
		return access.Caller{ObjectID: "local-developer", AppRoles: []string{a.resolver.OperatorRole}}, true
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || strings.TrimSpace(token) == "" {
		a.unauthorized(w, r, "no bearer token", false)
		return access.Caller{}, false
	}
	c, err := a.verify(r.Context(), token)
	if err != nil {
		a.unauthorized(w, r, err.Error(), true)
		return access.Caller{}, false
	}
	return c, true
}

// authenticated wraps a handler that decides roles itself, per tenant (listing
// tenants, creating one): only the token is checked here.
func (a *adminAuth) authenticated(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := a.authenticate(w, r)
		if !ok {
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), adminCallKey{}, &adminCall{caller: c})))
	})
}

// guard wraps an admin handler: 401 without a valid token, 403 without a role that
// allows op for the tenant in the path (an unknown tenant is 404 for operators and
// 403 for everyone else, so tenant ids cannot be probed).
func (a *adminAuth) guard(op access.Operation, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := a.authenticate(w, r)
		if !ok {
			return
		}
		call := &adminCall{caller: c}
		var err error
		if id := r.PathValue("tenantId"); id != "" {
			call.tenant, call.roles, err = a.rolesFor(r.Context(), call.caller, id)
		} else {
			call.roles, err = a.resolver.For(r.Context(), call.caller, tenant.Tenant{})
		}
		if err != nil && !errors.Is(err, fault.ErrNotFound) {
			funchost.WriteError(w, r, err)
			return
		}
		// OwnerMay lets a would-be team owner through; the handler checks ownership
		// of each service (access.Owns) and refuses everything else. SelfMay lets an
		// agent through for their own agent only.
		allowed := access.Allowed(call.roles, op)
		if !allowed && access.SelfMay(call.caller, call.tenant, op, r.PathValue("agentId")) {
			call.self, allowed = true, true
		}
		if !allowed && !access.OwnerMay(call.roles, op) {
			if errors.Is(err, fault.ErrNotFound) && call.roles.Has(access.Operator) {
				funchost.WriteError(w, r, fmt.Errorf("tenant: %w", fault.ErrNotFound))
				return
			}
			forbidden(w, r, "", "no role of yours allows "+string(op)+" here")
			return
		}
		if errors.Is(err, fault.ErrNotFound) {
			funchost.WriteError(w, r, fmt.Errorf("tenant: %w", fault.ErrNotFound))
			return
		}
		call.mask = access.MaskerFor(call.roles, call.tenant)
		h(w, r.WithContext(context.WithValue(r.Context(), adminCallKey{}, call)))
	})
}

// rolesFor loads the tenant and the caller's roles for it. An unknown tenant gives the
// roles a caller has everywhere (operator) and fault.ErrNotFound.
func (a *adminAuth) rolesFor(ctx context.Context, c access.Caller, id string) (tenant.Tenant, access.Roles, error) {
	if !tenant.IsGUID(id) {
		return tenant.Tenant{}, access.Roles{}, fault.Invalid("tenantId", "must be a GUID")
	}
	t, err := a.tenants.GetTenant(ctx, strings.ToLower(id))
	if errors.Is(err, fault.ErrNotFound) {
		r, rerr := a.resolver.For(ctx, c, tenant.Tenant{})
		return tenant.Tenant{}, r, errors.Join(err, rerr)
	}
	if err != nil {
		return tenant.Tenant{}, access.Roles{}, err
	}
	r, err := a.resolver.For(ctx, c, t)
	return t, r, err
}

// unauthorized answers 401 with a challenge saying where to sign in: Power BI's and
// Excel's OData connector offer "Organizational account" only when the 401 names the
// Entra authority (realm, authorization_uri), and then ask Entra for a token for the
// feed's base URL. The common endpoint, because partner admins and operators sign in
// to their own directories, not the tenant's. error="invalid_token" only when a token
// was sent (RFC 6750 §3.1).
func (a *adminAuth) unauthorized(w http.ResponseWriter, r *http.Request, why string, tokenSent bool) {
	funchost.Logger(r.Context()).Info("admin call refused", "status", 401, "reason", why)
	authority := strings.TrimSuffix(a.authority, "/")
	if authority == "" {
		authority = "https://login.microsoftonline.com"
	}
	challenge := `Bearer realm="` + authority + `/common", authorization_uri="` + authority + `/common/oauth2/authorize"`
	if tokenSent {
		challenge += `, error="invalid_token"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	funchost.WriteJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]string{"code": "unauthorized", "message": "a valid bearer token for this app is required"}})
}

func forbidden(w http.ResponseWriter, r *http.Request, field, msg string) {
	funchost.Logger(r.Context()).Info("admin call refused", "status", 403, "field", field)
	e := map[string]string{"code": "forbidden", "message": msg}
	if field != "" {
		e["field"] = field
	}
	funchost.WriteJSON(w, http.StatusForbidden, map[string]any{"error": e})
}

// tenantAdmin serves the tenant administration API.
type tenantAdmin struct {
	tenants tenant.Store
	secrets tenant.Secrets
	audit   audit.Store
	routes  routing.Store
	tracker *userstate.Tracker
	now     func() time.Time
	dir     *directory.Directory // checks admin groups; nil: not checked
}

// tenantView is a tenant as the API shows it: never a secret, only whether it is set.
type tenantView struct {
	tenant.Tenant
	Secrets map[string]bool `json:"secretsSet"`
	// Warnings: what the change could not check (an admin group the directory could
	// not be asked about).
	Warnings []string `json:"warnings,omitempty"`
}

func (ta *tenantAdmin) view(ctx context.Context, t tenant.Tenant) tenantView {
	v := tenantView{Tenant: t, Secrets: map[string]bool{}}
	v.Retention = t.Retention.Effective() // unset settings show their defaults
	for _, name := range []string{tenant.SecretAccount1Password, tenant.SecretAccount2Password} {
		_, err := ta.secrets.GetSecret(ctx, t.ID, name)
		v.Secrets[name] = err == nil
	}
	return v
}

func writeTenant(w http.ResponseWriter, status int, v tenantView) {
	w.Header().Set("ETag", strconv.Quote(strconv.FormatInt(v.Version, 10)))
	funchost.WriteJSON(w, status, v)
}

// record appends an audit entry; a failure is logged, not returned: the change is made.
func (ta *tenantAdmin) record(ctx context.Context, call *adminCall, tenantID, op string, fields map[string]string) {
	roles := make([]string, 0, 2)
	for _, r := range call.roles.List() {
		roles = append(roles, string(r))
	}
	e := audit.Entry{TenantID: tenantID, At: ta.now().UTC(), ActorID: call.caller.ObjectID, ActorTenant: call.caller.TenantID,
		Roles: roles, Operation: op, Target: tenantID, Fields: fields}
	if err := ta.audit.Append(ctx, e); err != nil {
		funchost.Logger(ctx).Error("audit entry not written", "tenant", tenantID, "operation", op, "err", err)
	}
}

func (ta *tenantAdmin) get(w http.ResponseWriter, r *http.Request) {
	writeTenant(w, http.StatusOK, ta.view(r.Context(), adminFrom(r.Context()).tenant))
}

// list shows the tenants the caller has a role for (all of them for an operator).
func (ta *tenantAdmin) list(auth *adminAuth) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		call := adminFrom(r.Context())
		all, err := ta.tenants.ListTenants(r.Context())
		if err != nil {
			funchost.WriteError(w, r, err)
			return
		}
		out := []tenantView{}
		for _, t := range all {
			roles, err := auth.resolver.For(r.Context(), call.caller, t)
			if err != nil {
				funchost.WriteError(w, r, err)
				return
			}
			if access.Allowed(roles, access.ReadTenant) {
				out = append(out, ta.view(r.Context(), t))
			}
		}
		funchost.WriteJSON(w, http.StatusOK, map[string]any{"tenants": out})
	}
}

// create adds a tenant: {"id","name", and any other fields as in PATCH}. The caller's
// roles are those they would hold for the new tenant: an operator, or a partner admin
// whose partner administration group the tenant names (so nobody creates a tenant they
// are locked out of). Each field must be one the role may set.
func (ta *tenantAdmin) create(auth *adminAuth) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		call := adminFrom(r.Context())
		var rest map[string]json.RawMessage
		err := decodeStrict(r.Body, &rest)
		if err == nil && rest == nil {
			err = fault.Invalid("body", "must be a JSON object")
		}
		var id string
		if raw, ok := rest["id"]; ok && err == nil {
			err = decodeAt("id", raw, &id)
		}
		if err != nil {
			funchost.WriteError(w, r, err)
			return
		}
		delete(rest, "id")
		// The name is one of the rest: ParseChange checks and trims it like any field.
		t := tenant.New(strings.ToLower(strings.TrimSpace(id)), "")
		var change tenant.Change
		if len(rest) > 0 {
			restJSON, _ := json.Marshal(rest)
			if change, err = tenant.ParseChange(restJSON, t); err != nil {
				funchost.WriteError(w, r, err)
				return
			}
			_ = change.Apply(&t)
		}
		if err := tenant.ValidateNew(t); err != nil {
			funchost.WriteError(w, r, err)
			return
		}
		roles, err := auth.resolver.For(r.Context(), call.caller, t)
		if err != nil {
			funchost.WriteError(w, r, err)
			return
		}
		if !access.Allowed(roles, access.CreateTenant) {
			forbidden(w, r, "security.partnerAdminGroup", "only an operator, or a partner admin naming their own partner administration group, may create a tenant")
			return
		}
		for i, path := range change.Paths() {
			if !access.MayChange(roles, change.Levels()[i]) {
				forbidden(w, r, path, path+": your role may not set this field")
				return
			}
		}
		call.roles = roles
		t.UpdatedAt = ta.now().UTC()
		if err := ta.tenants.CreateTenant(r.Context(), t); err != nil {
			funchost.WriteError(w, r, fmt.Errorf("id: %w", err))
			return
		}
		if err := ta.putSecrets(r.Context(), t.ID, change); err != nil {
			funchost.WriteError(w, r, err)
			return
		}
		fields := change.Audit()
		if fields == nil {
			fields = map[string]string{}
		}
		fields["id"], fields["name"] = strconv.Quote(t.ID), strconv.Quote(t.Name)
		ta.record(r.Context(), call, t.ID, string(access.CreateTenant), fields)
		t.Version = 1
		writeTenant(w, http.StatusCreated, ta.view(r.Context(), t))
	}
}

func (ta *tenantAdmin) putSecrets(ctx context.Context, tenantID string, c tenant.Change) error {
	for _, s := range c.Secrets {
		if err := ta.secrets.PutSecret(ctx, tenantID, s.Name, s.Value); err != nil {
			return fmt.Errorf("store secret: %w", err)
		}
	}
	return nil
}

// ifMatch reads the version an update is based on from If-Match ("3", W/"3"); without
// one it answers 428: an update that cannot say what it saw could undo another's.
func ifMatch(w http.ResponseWriter, r *http.Request) (int64, bool) {
	v, err := strconv.ParseInt(strings.Trim(strings.TrimPrefix(r.Header.Get("If-Match"), "W/"), `"`), 10, 64)
	if err != nil {
		funchost.WriteJSON(w, http.StatusPreconditionRequired, map[string]any{"error": map[string]string{"code": "preconditionRequired",
			"field": "If-Match", "message": "If-Match: must carry the ETag (version) the change is based on"}})
		return 0, false
	}
	return v, true
}

// update changes the fields a JSON object names. It needs If-Match with the version
// the change was based on (428 without, 412 when another change came first); a field
// the caller's role may not change is 403 naming it; a broken rule is 400 naming the
// field; in every refusal nothing is written.
func (ta *tenantAdmin) update(w http.ResponseWriter, r *http.Request) {
	call := adminFrom(r.Context())
	base, ok := ifMatch(w, r)
	if !ok {
		return
	}
	// The body as a whole is checked here as every body is (decodeJSON); ParseChange
	// reads it again and checks the fields against the tenant's rules.
	var top map[string]json.RawMessage
	body, err := readBody(r.Body)
	if err == nil {
		err = decodeJSON(body, &top)
	}
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	change, err := tenant.ParseChange(body, call.tenant)
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	for i, path := range change.Paths() {
		if !access.MayChange(call.roles, change.Levels()[i]) {
			forbidden(w, r, path, path+": your role may not change this field")
			return
		}
	}
	warnings, err := ta.checkGroups(r.Context(), call.tenant, change)
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	now := ta.now().UTC()
	t, err := ta.tenants.UpdateTenant(r.Context(), call.tenant.ID, func(t *tenant.Tenant) error {
		if t.Version != base {
			return fmt.Errorf("If-Match: version %d, the tenant is at %d: %w", base, t.Version, fault.ErrPrecondition)
		}
		t.UpdatedAt = now
		return change.Apply(t)
	})
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	if err := ta.putSecrets(r.Context(), t.ID, change); err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	ta.record(r.Context(), call, t.ID, string(access.UpdateTenant), change.Audit())
	ta.userStatesFollow(r, call.tenant, t)
	v := ta.view(r.Context(), t)
	v.Warnings = warnings
	writeTenant(w, http.StatusOK, v)
}

// checkGroups asks the tenant's directory whether the admin and supervisor groups a
// change names exist: a group that does not is a 400 naming the field; a directory
// that cannot be asked (no consent yet, Graph unreachable) lets the change through
// with a warning. The partner group lives in the partner's directory and is not
// checked.
func (ta *tenantAdmin) checkGroups(ctx context.Context, t tenant.Tenant, change tenant.Change) ([]string, error) {
	if ta.dir == nil {
		return nil, nil
	}
	next := t
	if err := change.Apply(&next); err != nil {
		return nil, err
	}
	var warnings []string
	for _, f := range []struct{ path, before, after string }{
		{"security.tenantAdminGroup", t.Security.TenantAdminGroup, next.Security.TenantAdminGroup},
		{"security.supervisorGroup", t.Security.SupervisorGroup, next.Security.SupervisorGroup},
	} {
		if f.after == "" || strings.EqualFold(f.after, f.before) {
			continue
		}
		err := ta.dir.CheckGroup(ctx, next, f.after)
		switch {
		case err == nil:
		case errors.Is(err, fault.ErrNotFound):
			return nil, fault.Invalid(f.path, "no such group in the tenant's directory")
		default:
			funchost.Logger(ctx).Warn("admin group not checked", "tenant", t.ID, "field", f.path, "err", err)
			warnings = append(warnings, f.path+": not checked: the tenant's directory could not be read (consent the app's directory permissions)")
		}
	}
	return warnings, nil
}

// userStatesFollow starts recording every agent's state when tracking was turned on,
// and closes every open record when it was turned off. The change is made either
// way: a failure here is finished by the next sweep (PresenceRefresh tick).
func (ta *tenantAdmin) userStatesFollow(r *http.Request, before, after tenant.Tenant) {
	was, is := before.Privacy.TrackUserStates && !before.Deleted, after.Privacy.TrackUserStates && !after.Deleted
	var err error
	switch {
	case is && !was:
		err = ta.tracker.SyncTenant(r.Context(), after.ID)
	case was && !is:
		err = ta.tracker.Stop(r.Context(), after.ID)
	}
	if err != nil {
		funchost.Logger(r.Context()).Warn("user-state tracking not switched yet; the next sweep finishes it", "tenant", after.ID, "err", err)
	}
}

// remove marks the tenant PendingDeletion: it needs {"confirm":"YES"}; every service
// of the tenant turns PendingDeletion at once, so nothing routes; a later provisioning
// run removes the data. Deleting a deleted tenant answers the same again.
func (ta *tenantAdmin) remove(w http.ResponseWriter, r *http.Request) {
	call := adminFrom(r.Context())
	var body deleteTenantBody
	if err := decodeStrict(r.Body, &body); err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	if body.Confirm != "YES" {
		funchost.WriteError(w, r, fault.Invalid("confirm", `must be exactly "YES"`))
		return
	}
	now := ta.now().UTC()
	t := call.tenant
	if !t.Deleted {
		var err error
		t, err = ta.tenants.UpdateTenant(r.Context(), t.ID, func(t *tenant.Tenant) error {
			t.Deleted, t.UpdatedAt = true, now
			return nil
		})
		if err != nil {
			funchost.WriteError(w, r, err)
			return
		}
	}
	services, err := ta.routes.ListServices(r.Context(), t.ID)
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	for _, s := range services {
		if s.PendingDeletion {
			continue
		}
		// Conditional, so a service change racing the deletion is not lost.
		if _, err := ta.routes.UpdateService(r.Context(), t.ID, s.ID, func(s *routing.Service) error {
			s.PendingDeletion, s.UpdatedAt = true, now
			return nil
		}); err != nil {
			funchost.WriteError(w, r, err)
			return
		}
	}
	if !call.tenant.Deleted {
		ta.record(r.Context(), call, t.ID, string(access.DeleteTenant), map[string]string{"deleted": "true"})
	}
	ta.userStatesFollow(r, call.tenant, t)
	funchost.Logger(r.Context()).Warn("tenant marked for deletion", slog.String("tenant", t.ID), slog.Int("services", len(services)))
	funchost.WriteJSON(w, http.StatusAccepted, map[string]any{"tenantId": t.ID, "status": "PendingDeletion", "services": len(services)})
}

// auditLog lists the tenant's audit entries: ?from=&to= (RFC 3339) &limit= (1..1000).
func (ta *tenantAdmin) auditLog(w http.ResponseWriter, r *http.Request) {
	call := adminFrom(r.Context())
	q := r.URL.Query()
	var from, to time.Time
	for name, dst := range map[string]*time.Time{"from": &from, "to": &to} {
		if s := q.Get(name); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				funchost.WriteError(w, r, fault.Invalid(name, "must be an RFC 3339 time"))
				return
			}
			*dst = t
		}
	}
	limit := 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			funchost.WriteError(w, r, fault.Invalid("limit", "must be a whole number 1..1000"))
			return
		}
		limit = n
	}
	es, err := ta.audit.ListAudit(r.Context(), call.tenant.ID, from, to, limit)
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	for i := range es {
		es[i] = auditView(es[i], call.mask)
	}
	funchost.WriteJSON(w, http.StatusOK, map[string]any{"entries": es})
}

// auditView masks the user identifiers an audit entry holds, as the views of what it
// records do: the actor, an agent it targets, and the user ids a service change names
// (owners, the serial order, the weights' agents, an exit to a Teams user).
func auditView(e audit.Entry, m access.Masker) audit.Entry {
	e.ActorID = m.User(e.ActorID)
	if id, ok := strings.CutPrefix(e.Target, "agents/"); ok {
		e.Target = "agents/" + m.User(id)
	}
	if e.Fields == nil {
		return e
	}
	fields := make(map[string]string, len(e.Fields))
	for k, v := range e.Fields {
		switch {
		case k == "owners" || k == "distribution.serialOrder":
			var ids []string
			if json.Unmarshal([]byte(v), &ids) == nil {
				for i := range ids {
					ids[i] = m.User(ids[i])
				}
				b, _ := json.Marshal(ids)
				v = string(b)
			}
		case strings.HasPrefix(k, "distribution.weights."):
			k = "distribution.weights." + m.User(strings.TrimPrefix(k, "distribution.weights."))
		case k == "calls.exit.target":
			var t string
			if json.Unmarshal([]byte(v), &t) == nil && tenant.IsGUID(routing.NormalizeTarget(t)) {
				v = strconv.Quote(m.User(t))
			}
		}
		fields[k] = v
	}
	e.Fields = fields
	return e
}
