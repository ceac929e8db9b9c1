package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// What the admin API needs of its app registration, fixed so that every deployment
// (and every run of this tool) names the same scope and role.
const (
	// ScopeValue is the delegated scope admin tools ask for (api://<client id>/Admin.Access).
	ScopeValue = "Admin.Access"
	scopeID    = "5db4c9c8-6de6-41bc-9114-4115d6d2c7eb"
	// RoleValue is the app role of platform operators (the app setting OperatorAppRole's
	// default).
	RoleValue = "Platform.Operator"
	roleID    = "35fcbbf2-a9eb-4ea9-b78d-127f577c74e7"
	// AzureCLIAppID is Microsoft's Azure CLI: pre-authorised for the scope, so
	// `az account get-access-token --resource api://<client id>` works without consent.
	AzureCLIAppID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
	// ReportsScopeValue is the delegated scope Power BI and Excel ask for when they read
	// an OData feed with an organisational account (<feed base URL>/user_impersonation).
	ReportsScopeValue = "user_impersonation"
	reportsScopeID    = "9c3b0c7e-5f0e-4d8a-a0a4-7e2d3b6f1c25"
)

// PowerQueryClients are Microsoft's clients that read an OData feed for Power BI:
// Power Query (Power BI Desktop, Excel) and Power BI's data refresh (the service's
// scheduled refresh). They are pre-authorised for the reports scope.
var PowerQueryClients = []string{"a672d62c-fc7b-4e81-a576-e60dc46e951d", "b52893c8-bc2e-47fc-918b-77022b299bbc"}

// graph is a minimal Microsoft Graph client: a base URL and a bearer token.
type graph struct {
	base  string // https://graph.microsoft.com/v1.0
	token string
	http  *http.Client
}

// call sends a request with a JSON body (nil: none) and decodes a JSON answer into out
// (nil: ignored). An answer that is not 2xx is an error naming the status and Graph's
// error code, never the token.
func (g *graph) call(ctx context.Context, method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, g.base+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+g.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := g.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode/100 != 2 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		_ = json.Unmarshal(b, &e)
		return res.StatusCode, fmt.Errorf("%s %s: HTTP %d %s: %s", method, path, res.StatusCode, e.Error.Code, e.Error.Message)
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return res.StatusCode, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return res.StatusCode, nil
}

// application is the part of a Graph application this tool reads and changes; other
// properties of the objects it rewrites are kept as they were (raw).
type application struct {
	ID             string            `json:"id"`
	AppID          string            `json:"appId"`
	IdentifierURIs []string          `json:"identifierUris"`
	AppRoles       []json.RawMessage `json:"appRoles"`
	API            struct {
		Scopes        []json.RawMessage `json:"oauth2PermissionScopes"`
		PreAuthorized []preAuthorized   `json:"preAuthorizedApplications"`
	} `json:"api"`
	SPA struct {
		RedirectURIs []string `json:"redirectUris"`
	} `json:"spa"`
}

type preAuthorized struct {
	AppID                  string   `json:"appId"`
	DelegatedPermissionIDs []string `json:"delegatedPermissionIds"`
}

// idOf is the id of the raw object (a scope, a role) with the id or the value, or "".
func idOf(objs []json.RawMessage, id, value string) string {
	for _, o := range objs {
		var x struct{ ID, Value string }
		if json.Unmarshal(o, &x) == nil && (strings.EqualFold(x.ID, id) || x.Value == value) {
			return x.ID
		}
	}
	return ""
}

// delegatedScope is a delegated permission users and admins may consent to: what
// the signed-in user may do with it follows their roles.
func delegatedScope(id, value, title, does string) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"id": id, "value": value, "type": "User", "isEnabled": true,
		"adminConsentDisplayName": title, "adminConsentDescription": "Lets the app " + does + " as the signed-in user; what the user may do follows their roles.",
		"userConsentDisplayName": title, "userConsentDescription": "Lets the app " + does + " as you; what you may do follows your roles."})
	return b
}

// preAuthorize adds scope to what client is pre-authorised for; false when it was.
func preAuthorize(pre []preAuthorized, client, scope string) ([]preAuthorized, bool) {
	i := slices.IndexFunc(pre, func(p preAuthorized) bool { return strings.EqualFold(p.AppID, client) })
	switch {
	case i < 0:
		return append(pre, preAuthorized{AppID: client, DelegatedPermissionIDs: []string{scope}}), true
	case !slices.Contains(pre[i].DelegatedPermissionIDs, scope):
		pre[i].DelegatedPermissionIDs = append(slices.Clone(pre[i].DelegatedPermissionIDs), scope)
		return pre, true
	}
	return pre, false
}

// Result says what Setup changed (false: it was already so).
type Result struct {
	AppIDURI       string
	IdentifierURI  bool // the api:// URI added
	Scope          bool // the Admin.Access scope added
	Role           bool // the Platform.Operator role added
	PreAuthorized  bool // Azure CLI pre-authorised
	PortalRedirect bool // the admin portal's address added as a SPA redirect URI
	Reports        bool // what Power BI needs added (ReportsURI, its scope, Power Query pre-authorised)
	ServicePrinc   bool // the service principal created in this tenant
	OperatorAssign bool // the signed-in user made an operator
}

// Options say what Setup does besides the registration's API settings.
type Options struct {
	// Assign makes the signed-in user a platform operator.
	Assign bool
	// PortalRedirect, when set, is the admin portal's address
	// (https://<app host>/api/portal/), registered as a single-page application's
	// redirect URI so that the portal can sign in.
	PortalRedirect string
	// ReportsURI, when set, is the base URL Power BI reads the user-state report at
	// (https://<custom domain of the app>): added as an Application ID URI with the
	// scope user_impersonation, Power Query's clients pre-authorised for it. Entra
	// accepts an https identifier only on a domain verified in the tenant.
	ReportsURI string
}

// Setup gives the app registration clientID what the admin API needs: the App ID URI
// api://<clientID>, the delegated scope Admin.Access, the app role Platform.Operator,
// Azure CLI pre-authorised for the scope, the portal's SPA redirect URI, a service
// principal in the signed-in user's tenant, and that user assigned the operator role
// (opts). It is idempotent: what is already there is left as it is, and nothing else
// of the registration changes. The signed-in user needs to own the registration (or
// be an Application Administrator) and may assign its roles.
func Setup(ctx context.Context, g *graph, clientID string, opts Options) (Result, error) {
	res := Result{AppIDURI: "api://" + clientID}
	var app application
	if _, err := g.call(ctx, http.MethodGet, "/applications(appId='"+url.PathEscape(clientID)+"')?$select=id,appId,identifierUris,appRoles,api,spa", nil, &app); err != nil {
		return res, fmt.Errorf("read the app registration %s: %w", clientID, err)
	}
	patch := map[string]any{}
	if !slices.Contains(app.IdentifierURIs, res.AppIDURI) {
		patch["identifierUris"] = append(slices.Clone(app.IdentifierURIs), res.AppIDURI)
		res.IdentifierURI = true
	}
	if idOf(app.AppRoles, roleID, RoleValue) == "" {
		role, _ := json.Marshal(map[string]any{"id": roleID, "value": RoleValue, "isEnabled": true,
			"allowedMemberTypes": []string{"User", "Application"}, "displayName": "Platform operator",
			"description": "Operates the contact-center platform: every tenant, parked messages, operator-only settings."})
		patch["appRoles"] = append(slices.Clone(app.AppRoles), role)
		res.Role = true
	}
	scopes := slices.Clone(app.API.Scopes)
	adminScope := idOf(scopes, scopeID, ScopeValue)
	if adminScope == "" {
		adminScope = scopeID
		scopes = append(scopes, delegatedScope(scopeID, ScopeValue, "Use the contact-center admin API", "call the admin API"))
		res.Scope = true
	}
	reportsScope := idOf(scopes, reportsScopeID, ReportsScopeValue)
	if opts.ReportsURI != "" && reportsScope == "" {
		reportsScope = reportsScopeID
		scopes = append(scopes, delegatedScope(reportsScopeID, ReportsScopeValue, "Read contact-center reports", "read the contact center's reports (Power BI, Excel)"))
		res.Reports = true
	}
	if len(scopes) > len(app.API.Scopes) {
		patch["api"] = map[string]any{"oauth2PermissionScopes": scopes}
	}
	if opts.PortalRedirect != "" && !slices.Contains(app.SPA.RedirectURIs, opts.PortalRedirect) {
		patch["spa"] = map[string]any{"redirectUris": append(slices.Clone(app.SPA.RedirectURIs), opts.PortalRedirect)}
		res.PortalRedirect = true
	}
	if len(patch) > 0 {
		if _, err := g.call(ctx, http.MethodPatch, "/applications/"+url.PathEscape(app.ID), patch, nil); err != nil {
			return res, fmt.Errorf("update the app registration: %w", err)
		}
	}
	// Pre-authorisation names the scope by id, so it goes in a second update, once the
	// scope exists.
	pre, changed := preAuthorize(slices.Clone(app.API.PreAuthorized), AzureCLIAppID, adminScope)
	res.PreAuthorized = changed
	powerQuery := false
	for i := 0; opts.ReportsURI != "" && i < len(PowerQueryClients); i++ {
		pre, changed = preAuthorize(pre, PowerQueryClients[i], reportsScope)
		powerQuery = powerQuery || changed
	}
	res.Reports = res.Reports || powerQuery
	if res.PreAuthorized || powerQuery {
		if _, err := g.call(ctx, http.MethodPatch, "/applications/"+url.PathEscape(app.ID),
			map[string]any{"api": map[string]any{"preAuthorizedApplications": pre}}, nil); err != nil {
			return res, fmt.Errorf("pre-authorise Azure CLI and Power Query: %w", err)
		}
	}
	// The reports' https identifier on its own, last: Entra refuses it unless its
	// domain is verified in the tenant, and everything else is in place by then.
	if u := opts.ReportsURI; u != "" && !slices.Contains(app.IdentifierURIs, u) {
		uris := slices.Clone(app.IdentifierURIs)
		if !slices.Contains(uris, res.AppIDURI) {
			uris = append(uris, res.AppIDURI)
		}
		if _, err := g.call(ctx, http.MethodPatch, "/applications/"+url.PathEscape(app.ID), map[string]any{"identifierUris": append(uris, u)}, nil); err != nil {
			return res, fmt.Errorf("add %s as an Application ID URI (Entra accepts an https one only on a domain verified in your tenant: give the app a custom domain there): %w", u, err)
		}
		res.Reports = true
	}
	if !opts.Assign {
		return res, nil
	}
	var sp struct{ ID string }
	status, err := g.call(ctx, http.MethodGet, "/servicePrincipals(appId='"+url.PathEscape(clientID)+"')?$select=id", nil, &sp)
	if status == http.StatusNotFound {
		_, err = g.call(ctx, http.MethodPost, "/servicePrincipals", map[string]any{"appId": clientID}, &sp)
		res.ServicePrinc = err == nil
	}
	if err != nil {
		return res, fmt.Errorf("the app's service principal: %w", err)
	}
	var me struct{ ID string }
	if _, err := g.call(ctx, http.MethodGet, "/me?$select=id", nil, &me); err != nil {
		return res, fmt.Errorf("read the signed-in user: %w", err)
	}
	var assigned struct {
		Value []struct {
			PrincipalID string `json:"principalId"`
			AppRoleID   string `json:"appRoleId"`
		} `json:"value"`
	}
	if _, err := g.call(ctx, http.MethodGet, "/servicePrincipals/"+url.PathEscape(sp.ID)+"/appRoleAssignedTo?$top=999", nil, &assigned); err != nil {
		return res, fmt.Errorf("read the role assignments: %w", err)
	}
	for _, a := range assigned.Value {
		if strings.EqualFold(a.PrincipalID, me.ID) && strings.EqualFold(a.AppRoleID, roleID) {
			return res, nil
		}
	}
	if _, err := g.call(ctx, http.MethodPost, "/servicePrincipals/"+url.PathEscape(sp.ID)+"/appRoleAssignedTo",
		map[string]any{"principalId": me.ID, "resourceId": sp.ID, "appRoleId": roleID}, nil); err != nil {
		return res, fmt.Errorf("make the signed-in user an operator: %w", err)
	}
	res.OperatorAssign = true
	return res, nil
}

// errNoAz: the Azure CLI is missing or not signed in.
var errNoAz = errors.New("the Azure CLI (az) is needed and must be signed in (az login)")
