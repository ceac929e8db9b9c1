package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/calls"
	"github.com/teamscc/teamscc/shared/config"
	"github.com/teamscc/teamscc/shared/devhost"
	"github.com/teamscc/teamscc/shared/entra"
	"github.com/teamscc/teamscc/shared/graph"
	"github.com/teamscc/teamscc/shared/inmem"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/simulate"
)

// traceInjector is the calling platform's HTTP client transport: while set, every
// notification it posts carries that traceparent, as a traced caller's would.
type traceInjector struct {
	mu sync.Mutex
	tp string
}

func (ti *traceInjector) set(tp string) {
	ti.mu.Lock()
	ti.tp = tp
	ti.mu.Unlock()
}

func (ti *traceInjector) RoundTrip(r *http.Request) (*http.Response, error) {
	ti.mu.Lock()
	tp := ti.tp
	ti.mu.Unlock()
	if tp != "" {
		r = r.Clone(r.Context())
		r.Header.Set("traceparent", tp)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// logLines decodes the app's JSON log lines.
func logLines(t *testing.T, b *syncBuffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var m map[string]any
		if l != "" && json.Unmarshal([]byte(l), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// One trace, end to end through the local runner over HTTP: the Teams webhook's
// notification carries a traceparent; the kick it sends carries that trace on Service
// Bus (the runner's in-process queues, delivered with the host's envelope); RouteCall
// picks it up from the envelope, matches and offers the call, and schedules the ring
// expiry kick with it; that kick, delivered 20 s later, is handled in the same trace.
// Every invocation logs the trace id, each with its own span.
func TestOneTraceFollowsTheWebhookThroughKicksOffersAndTheRingExpiry(t *testing.T) {
	const trace = "0af7651916cd43dd8448eb211c80319c"
	ctx := context.Background()
	s := inmem.New()
	must(t, simulate.Seed(ctx, s, s, time.Now()))
	must(t, seedRouting(ctx, s, s))
	tid := simulate.ContosoID
	agents, _ := s.ListAgents(ctx, tid)
	var ps []presence.Presence
	for _, ag := range agents {
		ps = append(ps, presence.Presence{AgentID: ag.ID, Availability: presence.Available, Activity: "Available", Source: presence.SourceSimulated, ObservedAt: time.Now()})
	}
	must(t, s.SavePresences(ctx, tid, ps))
	clk := &clock{t: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)}

	// The runner's front end is the webhook the platform posts to.
	front := "http://127.0.0.1:" + freePort(t)
	webhook := front + "/api/teams/notifications"
	fake := graph.NewFake()
	t.Cleanup(fake.Close)
	injector := &traceInjector{}
	fake.EnableCalling(graph.CallingOptions{BotAppID: testBotAppID, Webhook: webhook, Client: &http.Client{Transport: injector, Timeout: 20 * time.Second}})
	gopts := fake.Options(testBotAppID)
	gopts.MaxRetries, gopts.MaxRetryWait = 1, 10*time.Millisecond
	platform, err := graph.New(gopts)
	must(t, err)
	v, err := entra.NewCallingValidator(entra.CallingOptions{MetadataURL: fake.CallingMetadataURL(), Audience: testBotAppID, HTTPClient: fake.Client()})
	must(t, err)
	cfg, err := config.Load(envFrom(map[string]string{"CallingWebhookUrl": webhook}))
	must(t, err)

	var app http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { app.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	host, err := devhost.New(devhost.Options{AppRoot: "..", HandlerURL: srv.URL, Listen: strings.TrimPrefix(front, "http://"), Now: clk.Now,
		Setting: func(k string) string {
			if strings.HasSuffix(k, "Schedule") {
				return "0 0 0 1 1 *" // no timer runs during the test
			}
			return cfg.Values[k]
		}})
	must(t, err)
	logs := &syncBuffer{}
	d := deps{tenants: s, secrets: s, presences: s, parked: s, userStates: s, interact: s, routes: s, sender: host, audit: s,
		calls: s, platform: platform, callAuth: callingAuth{v}, admin: localAdmin(s), reader: simulate.NewReader(nil), now: clk.Now}
	app = newApp(cfg, d, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- host.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("local host: %v", err)
		}
	})
	select {
	case <-host.Ready():
	case err := <-done:
		t.Fatalf("local host: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the local host did not start")
	}

	// The call comes in and its greeting plays, untraced.
	id := fake.PlaceCall(tid, caller, salesLine)
	waitFor(t, "the greeting", func() bool {
		x, err := s.GetCall(ctx, tid, id)
		return err == nil && x.Phase == calls.PhaseGreeting
	})
	must(t, fake.Settle(10*time.Second))

	// The greeting ends: that notification carries the caller's trace, and it is the one
	// that queues the call and kicks the service.
	injector.set("00-" + trace + "-b7ad6b7169203331-01")
	must(t, fake.FinishPrompt(id))
	kickDone := func(reason string) map[string]any {
		for _, l := range logLines(t, logs) {
			if l["function"] == "RouteCall" && l["msg"] == "kick done" && l["reason"] == reason {
				return l
			}
		}
		return nil
	}
	waitFor(t, "the new task's kick to offer the call", func() bool { l := kickDone("newTask"); return l != nil && l["offered"] == 1.0 })
	must(t, fake.Settle(10*time.Second))
	injector.set("") // from here the trace travels only on Service Bus

	clk.Advance(21 * time.Second) // sales rings 20 s: the scheduled ring expiry kick becomes due
	waitFor(t, "the ring expiry kick", func() bool { return kickDone("ringExpiry") != nil })

	webhookSpans := map[string]bool{}
	routeSpans := map[string]bool{}
	for _, l := range logLines(t, logs) {
		if l["msg"] != "invocation done" || l["trace_id"] != trace {
			continue
		}
		span, _ := l["span_id"].(string)
		switch l["function"] {
		case "TeamsNotifications":
			webhookSpans[span] = true
		case "RouteCall":
			routeSpans[span] = true
		}
	}
	if len(webhookSpans) == 0 {
		t.Errorf("no webhook invocation logged trace %s", trace)
	}
	if len(routeSpans) < 2 {
		t.Errorf("RouteCall invocations in trace %s: %d spans, want the new task's and the ring expiry's", trace, len(routeSpans))
	}
	for span := range routeSpans {
		if webhookSpans[span] || span == "b7ad6b7169203331" {
			t.Errorf("span %s is not the RouteCall invocation's own", span)
		}
	}
	for _, reason := range []string{"newTask", "ringExpiry"} {
		if l := kickDone(reason); l["trace_id"] != trace {
			t.Errorf("the %s kick ran in trace %v, want %s", reason, l["trace_id"], trace)
		}
	}
	if x, _ := s.GetCall(ctx, tid, id); strings.Contains(logs.String(), x.Caller.ID) {
		t.Error("the logs carry the caller's number")
	}
}
