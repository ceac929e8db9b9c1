package main

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/teamscc/teamscc/shared/access"
	"github.com/teamscc/teamscc/shared/config"
	"github.com/teamscc/teamscc/shared/funchost"
	"github.com/teamscc/teamscc/shared/routing"
)

// portalFiles are the admin portal's static files: an HTML page, its JavaScript
// modules and its style sheet, written for this app (no third-party library). They
// are part of the binary, so the deployment package needs nothing besides it.
//
//go:embed portal
var portalFiles embed.FS

// portalRoutes are the admin portal (static files and the sign-in settings it reads,
// no token needed: they hold nothing secret) and the live queue view it polls.
func portalRoutes(app *funchost.App, g *adminAuth, p *portal) {
	app.HTTP("Portal", "GET /api/portal/{path...}", http.HandlerFunc(p.serve))
	app.HTTP("ServiceQueue", "GET /api/tenants/{tenantId}/services/{serviceId}/queue", g.guard(access.ReadRouting, p.queue))
}

// portal serves the admin portal and the live queue view.
type portal struct {
	files  map[string]portalFile // name under portal/ → content
	config portalConfig
	csp    string
	// The live queue's reads.
	routes routing.Store
	names  *agentNames
	now    func() time.Time
}

type portalFile struct {
	body []byte
	etag string
}

// portalConfig is GET /api/portal/config.json: how the page signs in. Mode "local"
// (the local runner) means the API takes calls without a token; "entra" means the
// page signs in with the authorization-code flow and PKCE at Authority (the
// tenant-independent endpoint, so admins of every customer tenant and of partners
// sign in) as ClientID, asking for Scopes.
type portalConfig struct {
	Mode      string   `json:"mode"` // "local" or "entra"
	ClientID  string   `json:"clientId,omitempty"`
	Authority string   `json:"authority,omitempty"`
	Scopes    []string `json:"scopes,omitempty"`
	// Warnings say why sign-in cannot work as configured (the page shows them).
	Warnings []string `json:"warnings,omitempty"`
}

// newPortal reads the embedded files and works out the sign-in settings: the app's
// own registration (GraphClientId) asks for a token for itself, "<client id>/.default"
// (Entra issues a token an app requests for itself only when the resource is named by
// its client id), so AdminAudiences must hold the client id.
func newPortal(cfg config.Config, d deps, names *agentNames) *portal {
	p := &portal{files: map[string]portalFile{}, routes: d.routes, names: names, now: d.now}
	if p.now == nil {
		p.now = time.Now
	}
	err := fs.WalkDir(portalFiles, "portal", func(name string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := portalFiles.ReadFile(name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		p.files[strings.TrimPrefix(name, "portal/")] = portalFile{body: b, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic("portal: embedded files: " + err.Error()) // the build embeds them; unreadable is a bug
	}
	connect := "'self'"
	if d.admin != nil && d.admin.verify == nil {
		p.config = portalConfig{Mode: "local"}
	} else {
		id := cfg.Graph.ClientID
		host := strings.TrimSuffix(cfg.Graph.AuthorityHost, "/")
		p.config = portalConfig{Mode: "entra", ClientID: id, Authority: host + "/organizations"}
		if u, err := url.Parse(host); err == nil && u.Host != "" {
			connect += " " + u.Scheme + "://" + u.Host
		}
		switch {
		case id == "":
			p.config.Warnings = append(p.config.Warnings, "GraphClientId is not set: nobody can sign in to the portal.")
		default:
			p.config.Scopes = []string{id + "/.default", "openid", "profile", "offline_access"}
			found := false
			for _, a := range splitList(cfg.Values["AdminAudiences"]) {
				found = found || strings.EqualFold(a, id)
			}
			if !found {
				p.config.Warnings = append(p.config.Warnings, "AdminAudiences does not list the client id "+id+
					": the admin API refuses the tokens the portal signs in for. Add it to AdminAudiences.")
			}
		}
	}
	// No inline script or style anywhere: the page's code comes from its own files.
	p.csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src " + connect +
		"; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
	return p
}

// serve answers GET /api/portal/{path}: the page for "" (its views are addressed by
// the URL's fragment, so a deep link is the same request), config.json, or one of
// the embedded files; 404 otherwise.
func (p *portal) serve(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("path")
	h := w.Header()
	h.Set("Content-Security-Policy", p.csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer") // the sign-in's code is in the page's URL for a moment
	h.Set("X-Frame-Options", "DENY")
	if name == "config.json" {
		h.Set("Cache-Control", "no-store")
		funchost.WriteJSON(w, http.StatusOK, p.config)
		return
	}
	if name == "" {
		name = "index.html"
	}
	f, ok := p.files[name]
	if !ok {
		funchost.WriteJSON(w, http.StatusNotFound, map[string]any{"error": map[string]string{"code": "not_found", "message": "no such file of the portal"}})
		return
	}
	// Revalidated on every load (cheap: the ETag answers 304), so a deployment's new
	// files are used at once.
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", f.etag)
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.body))
}
