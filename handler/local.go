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
	"strings"
	"time"

	"github.com/teamscc/teamscc/shared/calls"
	"github.com/teamscc/teamscc/shared/config"
	"github.com/teamscc/teamscc/shared/devhost"
	"github.com/teamscc/teamscc/shared/directory"
	"github.com/teamscc/teamscc/shared/entra"
	"github.com/teamscc/teamscc/shared/interact"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/simulate"
)

// runLocal runs the whole app on this machine: the handler on a loopback port, and the
// local host (timers, in-process Service Bus queues, HTTP front end) in front of it,
// talking to it with the host's own envelope. Storage is embedded and Graph simulated
// unless settings say otherwise.
func runLocal(ctx context.Context, root, listen string, getenv func(string) string, stdout io.Writer) error {
	listen, err := resolveListen(listen)
	if err != nil {
		return err
	}
	get, err := localSettings(root, listen, getenv)
	if err != nil {
		return err
	}
	cfg, err := config.Load(get)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stdout, &slog.HandlerOptions{Level: cfg.LogLevel}))

	d, sim, err := localDeps(ctx, cfg, get)
	if err != nil {
		return err
	}
	if sim != nil {
		defer sim.fake.Close()
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
		Logger: log, Extra: simHandler(sim)})
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
			banner(stdout, host.Addr(), cfg, d.source, sim != nil)
		case <-ctx.Done():
		}
	}()
	err = host.Run(ctx)
	cancel()
	return errors.Join(err, <-served)
}

// localDeps: embedded storage seeded with the demo tenants, the simulated Graph and
// the simulated calling platform (sim, nil when real Graph is configured), unless the
// settings name real ones (Storage=Tables, GraphClientId).
func localDeps(ctx context.Context, cfg config.Config, get func(string) string) (deps, *localCalling, error) {
	s, err := openStores(ctx, cfg, get)
	if err != nil {
		return deps{}, nil, err
	}
	// Locally every admin caller is a platform operator: no tokens to mint (the banner
	// says so). Azure mode always checks tokens.
	d := deps{tenants: s, secrets: s, presences: s, parked: s, now: time.Now, interact: s, routes: s, audit: s, userStates: s,
		calls: s, dirSyncs: s, admin: localAdmin(s)}
	if cfg.Storage == "Memory" {
		if err := simulate.Seed(ctx, s, s, time.Now()); err != nil {
			return deps{}, nil, err
		}
		if err := seedRouting(ctx, s, s); err != nil {
			return deps{}, nil, err
		}
		// Interact on for Contoso (mode None), so the widget endpoint answers curl; the
		// key is in GET /api/tenants/{Contoso}/interact.
		on := true
		if _, err := newInteractHandler(cfg, d).svc.UpdateSettings(ctx, simulate.ContosoID, interact.Patch{Enabled: &on,
			AllowedOrigins: &[]string{"http://localhost:3000"}}); err != nil {
			return deps{}, nil, err
		}
	}
	if cfg.Graph.ClientID != "" {
		d.reader, err = newGraphReader(cfg)
		d.source = presence.SourceExtended
		if err != nil {
			return deps{}, nil, err
		}
		if g, ok := d.reader.(directory.Graph); ok {
			d.dirGraph = g
		}
		if p, ok := d.reader.(calls.Platform); ok && cfg.Calling.WebhookURL != "" {
			cv, err := entra.NewCallingValidator(entra.CallingOptions{MetadataURL: cfg.Calling.MetadataURL, Audience: cfg.Graph.ClientID})
			if err != nil {
				return deps{}, nil, fmt.Errorf("calling token validator: %w", err)
			}
			d.platform, d.callAuth = p, callingAuth{cv}
		}
		return d, nil, nil
	}
	d.reader, d.source = simulate.NewReader(nil), presence.SourceSimulated
	sim, err := newLocalCalling(cfg.Calling.WebhookURL, s, s)
	if err != nil {
		return deps{}, nil, err
	}
	d.platform, d.callAuth, d.dirGraph = sim.platform, sim.auth, sim.platform
	if cfg.Storage == "Memory" {
		if err := sim.seedDirectory(ctx); err != nil {
			return deps{}, nil, err
		}
	}
	return d, sim, nil
}

// simHandler is the front end's /sim/ handler (nil without the simulator).
func simHandler(sim *localCalling) http.Handler {
	if sim == nil {
		return nil
	}
	return sim
}

// resolveListen picks a free port for "host:0", so the calling webhook's URL (the
// callback of every simulated call) is known before the front end starts.
func resolveListen(listen string) (string, error) {
	if !strings.HasSuffix(listen, ":0") {
		return listen, nil
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return "", fmt.Errorf("listen: %w", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr, nil
}

// localSettings reads settings like Core Tools: the environment first, then
// local.settings.json's Values if the file exists. Storage defaults to Memory here:
// the UseDevelopmentStorage=true that local.settings.json carries for `func start`
// must not make a newcomer's first run depend on Azurite.
func localSettings(root, listen string, getenv func(string) string) (func(string) string, error) {
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
		if k == "CallingWebhookUrl" && values[k] == "" {
			return "http://" + listen + "/api/teams/notifications" // the simulated platform calls back here
		}
		return values[k]
	}, nil
}

func banner(w io.Writer, addr string, cfg config.Config, src presence.Source, simulatedCalls bool) {
	graphNote := "simulated Graph: agents' presence changes every 20 s to 2 min"
	if src != presence.SourceSimulated {
		graphNote = "Graph at " + cfg.Graph.BaseURL
	}
	callNote := "calls: Graph's calling API at " + cfg.Graph.BaseURL
	if simulatedCalls {
		callNote = "calls: simulated Teams (callers, agents who answer, decline or let it ring)"
	}
	fmt.Fprintf(w, `
Teams contact center running locally on http://%[1]s
  admin portal: http://%[1]s/api/portal/   (API description: http://%[1]s/api/openapi.json)
  storage: %[2]s   presence: %[3]s
  %[7]s
  timer PresenceRefresh fires on "%[4]s"

Try:
  curl -s http://%[1]s/api/tenants/%[5]s/presence/health
  curl -s http://%[1]s/api/tenants/%[5]s/presence             (every agent's presence, changing)
  curl -s http://%[1]s/api/tenants/%[6]s/presence/health      (account 1 needs MFA: account 2 answers)
  curl -s -X POST http://%[1]s/api/tenants/%[5]s/presence/test -d '{"upn":"agent01@contoso.example"}'
  curl -s -X POST http://%[1]s/admin/functions/PresenceRefreshTenant -d '{"input":"{\"tenantId\":\"nope\"}"}'
  curl -s http://%[1]s/api/ops/parked
  curl -s -X POST http://%[1]s/sim/calls -d '{"to":"+15555550100"}'   (a simulated caller calls Contoso sales)
  curl -s http://%[1]s/api/tenants/%[5]s/calls/<callId>          (the call's timeline: answered, music, ringing, connected, ...)
  curl -s http://%[1]s/api/tenants/%[5]s/services/sales/tasks/<callId>/explain   (who was considered, and why)
  curl -s http://%[1]s/api/tenants/%[5]s                        (tenant details; ETag for PATCH)
  curl -s http://%[1]s/api/tenants/%[5]s/interact               (the widget key)
  curl -s "http://%[1]s/api/tenants/%[5]s/directory/users?search=New%%20Hire"   (people of the simulated directory)
  curl -s -X POST http://%[1]s/api/tenants/%[5]s/services/sales/members/sync     (follow the sales Team)
Admin routes need no token here: every local caller is a platform operator.
Ctrl-C stops.

`, addr, cfg.Storage, graphNote, cfg.Values["PresenceRefreshSchedule"], simulate.ContosoID, simulate.FabrikamID, callNote)
}
