package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/config"
	"github.com/teamscc/teamscc/shared/inmem"
	"github.com/teamscc/teamscc/shared/interact"
	"github.com/teamscc/teamscc/shared/simulate"
	"github.com/teamscc/teamscc/shared/tenant"
)

// benchApp is the app on embedded storage with Contoso's Interact on in mode, tokens
// checked against a local JWKS.
type benchApp struct {
	app   http.Handler
	svc   *interact.Service
	key   string
	token string
}

func newBenchApp(b *testing.B, mode interact.AuthMode) benchApp {
	jwks := newFakeJWKS(b)
	cfg, err := config.Load(envFrom(map[string]string{"Storage": "Memory", "LogLevel": "error",
		"EntraAuthorityHost": jwks.srv.URL + "/", "InteractTokenAudiences": "api://widget"}))
	if err != nil {
		b.Fatal(err)
	}
	s := inmem.New()
	ctx := context.Background()
	if err := s.PutTenant(ctx, tenant.Tenant{ID: simulate.ContosoID, Name: "Contoso"}); err != nil {
		b.Fatal(err)
	}
	d := deps{tenants: s, secrets: s, presences: s, parked: s, userStates: s, reader: simulate.NewReader(nil), now: time.Now, interact: s, admin: localAdmin(s)}
	ih := newInteractHandler(cfg, d)
	on := true
	v, err := ih.svc.UpdateSettings(ctx, simulate.ContosoID, interact.Patch{Enabled: &on, AuthMode: &mode})
	if err != nil {
		b.Fatal(err)
	}
	app := newApp(cfg, d, slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError})))
	return benchApp{app: app, svc: ih.svc, key: v.WidgetKey, token: jwks.token(b, simulate.ContosoID, "api://widget")}
}

var benchModes = []interact.AuthMode{interact.ModeNone, interact.ModeVerifyToken, interact.ModeVerifyTokenAndTenant}

// BenchmarkInteractAuthorize is the validation path alone (key, then token per mode):
// validations per second per core with -cpu 1.
func BenchmarkInteractAuthorize(b *testing.B) {
	for _, mode := range benchModes {
		b.Run(string(mode), func(b *testing.B) {
			a := newBenchApp(b, mode)
			r := interact.Request{TenantID: simulate.ContosoID, Key: a.key, Token: a.token, Client: "203.0.113.7"}
			ctx := context.Background()
			if _, err := a.svc.Authorize(ctx, r); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := a.svc.Authorize(ctx, r); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "validations/s")
		})
	}
}

// BenchmarkInteractSessionsHTTP drives POST /api/interact/{tenant}/sessions over
// loopback HTTP (keep-alive, 8 concurrent clients) through the whole app: routing,
// middleware, validation, session creation on embedded storage. It reports p50/p99
// latency and requests per second.
func BenchmarkInteractSessionsHTTP(b *testing.B) {
	for _, mode := range benchModes {
		b.Run(string(mode), func(b *testing.B) {
			a := newBenchApp(b, mode)
			srv := httptest.NewServer(a.app)
			defer srv.Close()
			tr := &http.Transport{MaxIdleConnsPerHost: 64}
			client := &http.Client{Transport: tr}
			defer tr.CloseIdleConnections()
			url := srv.URL + "/api/interact/" + simulate.ContosoID + "/sessions"
			var (
				mu  sync.Mutex
				lat []time.Duration
			)
			b.SetParallelism(4) // 4 × GOMAXPROCS clients
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				mine := make([]time.Duration, 0, 1024)
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"customerId":"bench-customer"}`))
					req.Header.Set("X-Widget-Key", a.key)
					req.Header.Set("Authorization", "Bearer "+a.token)
					start := time.Now()
					res, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					mine = append(mine, time.Since(start))
					if res.StatusCode != http.StatusCreated {
						b.Errorf("status %d", res.StatusCode)
						return
					}
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			b.StopTimer()
			slices.Sort(lat)
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}
