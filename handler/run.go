package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/teamscc/teamscc/shared/access"
	"github.com/teamscc/teamscc/shared/audit"
	"github.com/teamscc/teamscc/shared/calls"
	"github.com/teamscc/teamscc/shared/config"
	"github.com/teamscc/teamscc/shared/directory"
	"github.com/teamscc/teamscc/shared/entra"
	"github.com/teamscc/teamscc/shared/funchost"
	"github.com/teamscc/teamscc/shared/graph"
	"github.com/teamscc/teamscc/shared/inmem"
	"github.com/teamscc/teamscc/shared/interact"
	"github.com/teamscc/teamscc/shared/outbound"
	"github.com/teamscc/teamscc/shared/parking"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/queue"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/servicebus"
	"github.com/teamscc/teamscc/shared/tables"
	"github.com/teamscc/teamscc/shared/teams"
	"github.com/teamscc/teamscc/shared/tenant"
	"github.com/teamscc/teamscc/shared/userstate"
)

// run is the whole program: flags, settings, adapters, serve. It returns when ctx ends.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("handler", flag.ContinueOnError)
	fs.SetOutput(stdout)
	local := fs.Bool("local", false, "run the whole app locally: embedded storage, simulated tenants, the local host on -listen")
	root := fs.String("root", ".", "app root holding host.json and functions/ (local mode)")
	listen := fs.String("listen", "127.0.0.1:7071", "address of the local host's front end (local mode)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *local {
		return runLocal(ctx, *root, *listen, getenv, stdout)
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: cfg.LogLevel}))
	// The host dials 127.0.0.1, never localhost (PLATFORM.md).
	ln, err := net.Listen("tcp", "127.0.0.1:"+cfg.Port)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("handler starting", "settings", cfg)
	if strings.HasPrefix(cfg.Graph.ClientSecret, "@Microsoft.KeyVault(") {
		// App Service leaves a Key Vault reference it could not resolve as it is.
		log.Error("GraphClientSecret is an unresolved Key Vault reference: check that the secret exists and the app's identity may read it (README: The client secret and the azd environment)")
	}
	return serve(ctx, ln, log, func(ctx context.Context) (http.Handler, error) {
		d, err := azureDeps(ctx, cfg, getenv)
		if err != nil {
			return nil, err
		}
		return newApp(cfg, d, log), nil
	})
}

// serve answers the host's readiness probe (GET /) at once and builds the app in the
// background: the host polls GET / every 25 ms for at most 30 s, so slow start-up work
// (creating tables) must not delay it. Invocations wait for the app. A failed build
// ends the process, so the host restarts it instead of it answering 503 forever.
func serve(ctx context.Context, ln net.Listener, log *slog.Logger, build func(context.Context) (http.Handler, error)) error {
	var (
		app     http.Handler
		initErr error
		ready   = make(chan struct{})
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer close(ready)
		app, initErr = build(ctx)
		if initErr != nil {
			log.Error("start-up failed", "err", initErr)
			cancel()
			return
		}
		log.Info("handler ready")
	}()
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			w.WriteHeader(http.StatusOK)
			return
		}
		select {
		case <-ready:
		case <-r.Context().Done():
			return
		}
		if initErr != nil {
			http.Error(w, "handler failed to start", http.StatusServiceUnavailable)
			return
		}
		app.ServeHTTP(w, r)
	})}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		shut, done := context.WithTimeout(context.Background(), 10*time.Second)
		defer done()
		_ = srv.Shutdown(shut)
	}()
	err := srv.Serve(ln)
	<-stopped
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	<-ready
	return errors.Join(err, initErr)
}

// deps are the adapters the app runs on.
type deps struct {
	tenants    tenant.Store
	secrets    tenant.Secrets
	presences  presence.Store
	parked     parking.Store
	reader     presence.Reader
	source     presence.Source
	now        func() time.Time
	interact   interact.Store
	routes     routing.Store
	sender     queue.Sender // kicks; set after the local host exists in local mode
	audit      audit.Store
	admin      *adminAuth     // admin API authentication; local mode: every caller is an operator
	outbound   outbound.Store // nil: taken from routes when that store implements it
	userStates userstate.Store
	calls      calls.Store
	platform   calls.Platform       // Graph's call API; nil: calls not configured
	callAuth   teams.Authenticator  // the calling platform's tokens; nil: calls not configured
	tuneCalls  func(*calls.Options) // tests: shorter budgets
	dirGraph   directory.Graph      // the tenants' directories; nil: not configured
	dirSyncs   directory.Store
}

// stores is every store interface, as one adapter implements them.
type stores interface {
	tenant.Store
	tenant.Secrets
	presence.Store
	parking.Store
	interact.Store
	routing.Store
	audit.Store
	outbound.Store
	userstate.Store
	calls.Store
	directory.Store
}

func openStores(ctx context.Context, cfg config.Config, getenv func(string) string) (stores, error) {
	if cfg.Storage == "Memory" {
		return inmem.New(), nil
	}
	s, err := tables.Open(ctx, tables.ConfigFromEnv(getenv))
	if err != nil {
		return nil, fmt.Errorf("open table storage: %w", err)
	}
	return s, nil
}

// newGraphReader reads presence from Graph. Without GraphClientId no credential can
// sign in; rather than stopping the whole app, every tenant's health then says why.
func newGraphReader(cfg config.Config) (presence.Reader, error) {
	if cfg.Graph.ClientID == "" {
		return unconfiguredGraph{}, nil
	}
	r, err := graph.New(graph.Options{ClientID: cfg.Graph.ClientID, ClientSecret: cfg.Graph.ClientSecret,
		BaseURL: cfg.Graph.BaseURL, AuthorityHost: cfg.Graph.AuthorityHost})
	if err != nil {
		return nil, fmt.Errorf("graph: %w", err)
	}
	return r, nil
}

func azureDeps(ctx context.Context, cfg config.Config, getenv func(string) string) (deps, error) {
	s, err := openStores(ctx, cfg, getenv)
	if err != nil {
		return deps{}, err
	}
	r, err := newGraphReader(cfg)
	if err != nil {
		return deps{}, err
	}
	snd, err := newSender(ctx, getenv)
	if err != nil {
		return deps{}, err
	}
	// One validator checks admin tokens (audience AdminAudiences, any tenant); the group
	// checker answers "groups overage" tokens through Graph with the app credential.
	v, err := entra.NewValidator(entra.Options{AuthorityHost: cfg.Graph.AuthorityHost, JWKSURL: cfg.Interact.JWKSURL})
	if err != nil {
		return deps{}, fmt.Errorf("admin token validator: %w", err)
	}
	resolver := access.Resolver{OperatorRole: cfg.Values["OperatorAppRole"]}
	if gc, ok := r.(access.GroupChecker); ok {
		resolver.Groups = gc
	}
	d := deps{tenants: s, secrets: s, presences: s, parked: s, reader: r, source: presence.SourceExtended, now: time.Now, interact: s,
		routes: s, sender: snd, audit: s, userStates: s, calls: s, dirSyncs: s, admin: newAdminAuth(splitList(cfg.Values["AdminAudiences"]), v, resolver, s)}
	d.admin.authority = cfg.Graph.AuthorityHost // where a 401 sends callers to sign in
	if g, ok := r.(directory.Graph); ok {
		d.dirGraph = g
	}
	if p, ok := r.(calls.Platform); ok && cfg.Calling.WebhookURL != "" {
		cv, err := entra.NewCallingValidator(entra.CallingOptions{MetadataURL: cfg.Calling.MetadataURL, Audience: cfg.Graph.ClientID})
		if err != nil {
			return deps{}, fmt.Errorf("calling token validator: %w", err)
		}
		d.platform, d.callAuth = p, callingAuth{cv}
	}
	return d, nil
}

// newSender is the Service Bus sender the engine kicks services with. With no Service
// Bus setting at all (a storage-only `func start`), routing answers with an error that
// names the missing setting instead of the app refusing to start; a setting that is
// present but wrong stops the start.
func newSender(ctx context.Context, getenv func(string) string) (queue.Sender, error) {
	o, err := servicebus.OptionsFromEnv(getenv)
	if o.ConnectionString == "" && o.FullyQualifiedNamespace == "" {
		return unwiredSender{}, nil
	}
	if err != nil {
		return nil, err
	}
	return servicebus.New(ctx, o)
}

// newApp registers every function on the protocol layer.
func newApp(cfg config.Config, d deps, log *slog.Logger) *funchost.App {
	if d.admin == nil {
		panic("newApp: deps.admin is nil: admin routes would be unprotected")
	}
	app := funchost.New(funchost.Options{Logger: log, Parker: d.parked, Timeout: 5 * time.Minute, HTTPTimeout: httpTimeout})
	tracker := userstate.NewTracker(userstate.Options{Store: d.userStates, Routes: d.routes, Tenants: d.tenants, Presences: d.presences, Now: d.now})
	// Every agent-state write goes through routes, so tracking tenants record it.
	tracked := userstate.TrackedRoutes{Store: d.routes, Tracker: tracker, Log: funchost.Logger}
	engine := routing.NewEngine(routing.Options{Store: tracked, Tenants: d.tenants, Presences: d.presences, PresenceMaxAge: cfg.Presence.MaxAge, Sender: d.sender,
		Queue: cfg.Values["CallsQueue"], Now: d.now, Log: funchost.Logger})
	names := &agentNames{list: d.tenants.ListAgents}
	rh := &routingHandlers{store: tracked, names: names, engine: engine}
	if d.platform != nil && d.callAuth != nil && d.calls != nil {
		o := calls.Options{Store: d.calls, Platform: d.platform, Router: engine, Services: tracked, Tenants: d.tenants,
			Webhook: cfg.Calling.WebhookURL, Now: d.now, Log: funchost.Logger}
		if dir, ok := d.platform.(calls.Directory); ok {
			o.Directory = dir
		}
		if d.tuneCalls != nil {
			d.tuneCalls(&o)
		}
		ctl := calls.New(o)
		engine.SetCalls(ctl)
		rh.calls, rh.callAuth = ctl, d.callAuth
	}
	pc := cfg.Presence
	pc.Source = d.source
	refresher := presence.NewRefresher(pc, d.tenants, d.secrets, d.presences, d.reader, d.now)
	// Changed presences are recorded (tracking tenants), and an agent who became
	// deliverable wakes the services they belong to.
	refresher.OnChanged(func(ctx context.Context, tenantID string, changed []presence.Presence) error {
		return errors.Join(tracker.PresenceChanged(ctx, tenantID, changed), engine.PresenceChanged(ctx, tenantID, changed))
	})
	var dir *directory.Directory
	if d.dirGraph != nil && d.dirSyncs != nil {
		dir = directory.New(directory.Options{Graph: d.dirGraph, Store: d.dirSyncs, Tenants: d.tenants, Secrets: d.secrets, Routes: tracked,
			Now: d.now, Log: funchost.Logger})
	}
	routes(app, d.admin, &handlers{refresher: refresher, tenants: d.tenants, presences: d.presences, parked: d.parked, tracker: tracker},
		&tenantAdmin{tenants: d.tenants, secrets: d.secrets, audit: d.audit, routes: tracked, tracker: tracker, now: d.now, dir: dir},
		&reports{store: d.userStates, now: d.now})
	directoryRoutes(app, d.admin, &directoryAdmin{dir: dir})
	interactRoutes(app, d.admin, newInteractHandler(cfg, d))
	routingRoutes(app, d.admin, rh)
	outboundRoutes(app, d.admin, newOutboundHandlers(cfg, d, engine))
	serviceRoutes(app, d.admin, &serviceAdmin{store: tracked, tenants: d.tenants, presences: d.presences, audit: d.audit, now: d.now, dir: dir, retention: newRetention(d)})
	portalRoutes(app, d.admin, newPortal(cfg, d, names))
	return app
}

// httpTimeout is the deadline of every HTTP invocation: a request that cannot be
// served in time (a stalled dependency) answers 503 with Retry-After instead of
// holding the caller. Storage and Graph requests give up sooner (per-try timeouts),
// so this bounds handlers that make many of them.
const httpTimeout = 30 * time.Second

// unconfiguredGraph refuses every read with a code that names the missing setting.
type unconfiguredGraph struct{}

var errGraphNotConfigured = &presence.AuthError{Code: "GraphClientIdNotSet", Message: "the GraphClientId app setting is empty"}

func (unconfiguredGraph) ReadPresences(context.Context, string, presence.Credential, []string) ([]presence.Observation, error) {
	return nil, errGraphNotConfigured
}

func (unconfiguredGraph) ReadPresence(context.Context, string, presence.Credential, string) (presence.Observation, error) {
	return presence.Observation{}, errGraphNotConfigured
}

// splitList reads a comma-separated setting.
func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
