package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/teamscc/teamscc/shared/config"
	"github.com/teamscc/teamscc/shared/devhost"
	"github.com/teamscc/teamscc/shared/interact"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/simulate"
)

// runLocal runs the whole app on this machine: the handler on a loopback port, and the
// local host (timers, in-process Service Bus queues, HTTP front end) in front of it,
// talking to it with the host's own envelope. Storage is embedded and Graph simulated
// unless settings say otherwise.
func runLocal(ctx context.Context, root, listen string, getenv func(string) string, stdout io.Writer) error {
	get, err := localSettings(root, getenv)
	if err != nil {
		return err
	}
	cfg, err := config.Load(get)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stdout, &slog.HandlerOptions{Level: cfg.LogLevel}))

	d, err := localDeps(ctx, cfg, get)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	host, err := devhost.New(devhost.Options{AppRoot: root, HandlerURL: "http://" + ln.Addr().String(), Listen: listen,
		Setting: func(k string) string {
			if v, ok := cfg.Values[k]; ok {
				return v
			}
			return get(k)
		},
		Logger: log})
	if err != nil {
		ln.Close()
		return fmt.Errorf("local host: %w", err)
	}
	d.sender = host // the app's kicks go to the local host's in-process queues
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	served := make(chan error, 1)
	go func() {
		served <- serve(ctx, ln, log, func(context.Context) (http.Handler, error) { return newApp(cfg, d, log), nil })
	}()
	go func() {
		select {
		case <-host.Ready():
			banner(stdout, host.Addr(), cfg, d.source)
		case <-ctx.Done():
		}
	}()
	err = host.Run(ctx)
	cancel()
	return errors.Join(err, <-served)
}

// localDeps: embedded storage seeded with the demo tenants, and the simulated Graph,
// unless the settings name real ones (Storage=Tables, GraphClientId).
func localDeps(ctx context.Context, cfg config.Config, get func(string) string) (deps, error) {
	s, err := openStores(ctx, cfg, get)
	if err != nil {
		return deps{}, err
	}
	// Locally every admin caller is a platform operator: no tokens to mint (the banner
	// says so). Azure mode always checks tokens.
	d := deps{tenants: s, secrets: s, presences: s, parked: s, now: time.Now, interact: s, routes: s, audit: s, userStates: s, admin: localAdmin(s)}
	if cfg.Storage == "Memory" {
		if err := simulate.Seed(ctx, s, s, time.Now()); err != nil {
			return deps{}, err
		}
		if err := seedRouting(ctx, s, s); err != nil {
			return deps{}, err
		}
		// Interact on for Contoso (mode None), so the widget endpoint answers curl; the
		// key is in GET /api/tenants/{Contoso}/interact.
		on := true
		if _, err := newInteractHandler(cfg, d).svc.UpdateSettings(ctx, simulate.ContosoID, interact.Patch{Enabled: &on,
			AllowedOrigins: &[]string{"http://localhost:3000"}}); err != nil {
			return deps{}, err
		}
	}
	if cfg.Graph.ClientID == "" {
		d.reader, d.source = simulate.NewReader(nil), presence.SourceSimulated
		return d, nil
	}
	d.reader, err = newGraphReader(cfg)
	d.source = presence.SourceExtended
	return d, err
}

// localClientState is the Teams webhook's clientState in local mode when no setting
// names one: a demo value, as in local.settings.json.example.
const localClientState = "local-demo-client-state"

// localSettings reads settings like Core Tools: the environment first, then
// local.settings.json's Values if the file exists. Storage defaults to Memory here:
// the UseDevelopmentStorage=true that local.settings.json carries for `func start`
// must not make a newcomer's first run depend on Azurite.
func localSettings(root string, getenv func(string) string) (func(string) string, error) {
	values := map[string]string{}
	b, err := os.ReadFile(filepath.Join(root, "local.settings.json"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		var f struct{ Values map[string]string }
		if err := json.Unmarshal(b, &f); err != nil {
			return nil, fmt.Errorf("local.settings.json: %w", err)
		}
		values = f.Values
	}
	return func(k string) string {
		if v := getenv(k); v != "" {
			return v
		}
		if k == "Storage" && values[k] == "" {
			return "Memory"
		}
		if k == "TeamsClientState" && values[k] == "" {
			return localClientState // so the webhook answers the curl examples (loopback only)
		}
		return values[k]
	}, nil
}

func banner(w io.Writer, addr string, cfg config.Config, src presence.Source) {
	graphNote := "simulated Graph: agents' presence changes every 20 s to 2 min"
	if src != presence.SourceSimulated {
		graphNote = "Graph at " + cfg.Graph.BaseURL
	}
	fmt.Fprintf(w, `
Teams contact center running locally on http://%[1]s
  storage: %[2]s   presence: %[3]s
  timer PresenceRefresh fires on "%[4]s"

Try:
  curl -s http://%[1]s/api/tenants/%[5]s/presence/health
  curl -s http://%[1]s/api/tenants/%[5]s/presence             (every agent's presence, changing)
  curl -s http://%[1]s/api/tenants/%[6]s/presence/health      (account 1 needs MFA: account 2 answers)
  curl -s -X POST http://%[1]s/api/tenants/%[5]s/presence/test -d '{"upn":"agent01@contoso.example"}'
  curl -s -X POST http://%[1]s/admin/functions/PresenceRefreshTenant -d '{"input":"{\"tenantId\":\"nope\"}"}'
  curl -s http://%[1]s/api/ops/parked
  curl -s -X POST http://%[1]s/api/tenants/%[5]s/services/sales/calls -d '{"callId":"demo-1"}'
  curl -s http://%[1]s/api/tenants/%[5]s/services/sales/tasks/demo-1/explain   (who was considered, and why)
  curl -s http://%[1]s/api/tenants/%[5]s                        (tenant details; ETag for PATCH)
  curl -s http://%[1]s/api/tenants/%[5]s/interact               (the widget key)
Admin routes need no token here: every local caller is a platform operator.
Ctrl-C stops.

`, addr, cfg.Storage, graphNote, cfg.Values["PresenceRefreshSchedule"], simulate.ContosoID, simulate.FabrikamID)
}
