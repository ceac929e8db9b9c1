package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/azurite"
	"github.com/teamscc/teamscc/shared/config"
	"github.com/teamscc/teamscc/shared/simulate"
	"github.com/teamscc/teamscc/shared/tables"
)

// stalledStorage accepts connections and never answers, as a Table storage endpoint
// that froze does. It returns the endpoint and closes everything when t ends.
func stalledStorage(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never read or answered
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String() + "/" + azurite.AccountName
}

// With Table storage frozen, the app does not hang with it: an HTTP request answers 503
// with a JSON error and Retry-After, a Service Bus message and a timer run fail with
// 500 (the host retries the message; the timer runs again on schedule), each once the
// storage requests' per-try timeouts ran out (shortened here).
func TestAStalledStorageIsAnsweredNotWaitedFor(t *testing.T) {
	s, err := tables.New(tables.Config{ConnectionString: azurite.ConnectionString(stalledStorage(t)), TryTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(envFrom(nil))
	if err != nil {
		t.Fatal(err)
	}
	app := newApp(cfg, deps{tenants: s, secrets: s, presences: s, parked: s, userStates: s, interact: s, routes: s,
		sender: &busQueue{clk: &clock{t: time.Now()}, seen: map[string]time.Time{}}, audit: s, calls: s, dirSyncs: s,
		admin: localAdmin(s), reader: simulate.NewReader(nil), now: time.Now}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	srv := httptest.NewServer(app)
	t.Cleanup(srv.Close)
	client := &http.Client{Timeout: time.Minute} // a hang fails the test instead of blocking it

	res, err := client.Get(srv.URL + "/api/tenants/" + simulate.ContosoID)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var e struct{ Error struct{ Code string } }
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" ||
		json.Unmarshal(body, &e) != nil || e.Error.Code != "unavailable" {
		t.Fatalf("HTTP: %d Retry-After %q %s; want 503 with Retry-After and code unavailable", res.StatusCode, res.Header.Get("Retry-After"), body)
	}

	kick := `{"tenantId":"` + simulate.ContosoID + `","serviceId":"sales","reason":"test"}`
	for name, envelope := range map[string]string{
		"RouteCall":       sbEnvelope(kick, "m-stall", 1),
		"PresenceRefresh": `{"Data":{"timer":{"IsPastDue":false}},"Metadata":{}}`,
	} {
		res, err := client.Post(srv.URL+"/"+name, "application/json", strings.NewReader(envelope))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusInternalServerError {
			t.Errorf("%s: %d; want 500 so the host retries", name, res.StatusCode)
		}
	}
}
