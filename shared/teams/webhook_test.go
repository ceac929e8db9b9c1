package teams_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/funchost"
	"github.com/teamscc/teamscc/shared/teams"
)

// recorder is a hand-written EventsFunc that remembers what it got.
type recorder struct {
	mu      sync.Mutex
	batches [][]teams.Event
	fail    error
}

func (r *recorder) handle(_ context.Context, events []teams.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches = append(r.batches, events)
	return r.fail
}

func (r *recorder) calls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.batches)
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const route = "/api/teams/notifications"

// server wires the webhook into a funchost.App as the handler does, with a debug JSON
// logger, so tests exercise the real path and see every log line.
func server(t *testing.T, rec *recorder, maxBody int64) (*httptest.Server, *syncBuffer) {
	t.Helper()
	wh, err := teams.NewWebhook(clientState, rec.handle, maxBody)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	app := funchost.New(funchost.Options{Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	app.HTTP("TeamsNotifications", "POST "+route, wh)
	srv := httptest.NewServer(app)
	t.Cleanup(srv.Close)
	return srv, logs
}

func post(t *testing.T, srv *httptest.Server, query string, body []byte) (*http.Response, []byte) {
	t.Helper()
	url := srv.URL + route
	if query != "" {
		url += "?" + query
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(funchost.InvocationHeader, "3e1b0c6a-0000-4000-8000-000000000001")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

type errorAnswer struct {
	Error struct {
		Code  string `json:"code"`
		Field string `json:"field"`
		Rule  string `json:"rule"`
	} `json:"error"`
}

func decodeError(t *testing.T, b []byte) errorAnswer {
	t.Helper()
	var e errorAnswer
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("error answer %q is not JSON: %v", b, err)
	}
	return e
}

func TestHandshakeEchoesTheDecodedTokenAsPlainText(t *testing.T) {
	rec := &recorder{}
	srv, logs := server(t, rec, 0)
	tests := []struct {
		name  string
		query string
		want  string
	}{
		{"captured", strings.TrimSpace(string(fixture(t, "handshake_query.txt"))),
			"Validation: Testing client application reachability for subscription Request-Id: 6aa9d9b7-4c5a-4f3e-9d1e-2b7c8a0f1e23"},
		{"markup stays text", "validationToken=%3Cscript%3Ealert(1)%3C%2Fscript%3E", "<script>alert(1)</script>"},
		{"spaces and quotes kept", "validationToken=%20a%22b%20", ` a"b `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Graph sends the handshake as a POST with an empty body.
			resp, body := post(t, srv, tt.query, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Error("no X-Content-Type-Options: nosniff")
			}
			if string(body) != tt.want {
				t.Errorf("body %q, want %q", body, tt.want)
			}
			if strings.Contains(logs.String(), "6aa9d9b7") || strings.Contains(logs.String(), "alert(1)") {
				t.Errorf("the token was logged: %s", logs)
			}
		})
	}
	if rec.calls() != 0 {
		t.Errorf("the handshake reached the callback %d times", rec.calls())
	}
}

func TestHandshakeRefusesEmptyAndOversizedTokens(t *testing.T) {
	rec := &recorder{}
	srv, _ := server(t, rec, 0)
	for _, q := range []string{"validationToken=", "validationToken=" + strings.Repeat("a", teams.MaxValidationTokenLen+1)} {
		resp, body := post(t, srv, q, nil)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%.30s…: status %d, want 400", q, resp.StatusCode)
		}
		if e := decodeError(t, body); e.Error.Field != "validationToken" {
			t.Errorf("%.30s…: field %q", q, e.Error.Field)
		}
	}
	// The longest allowed token is echoed whole.
	long := strings.Repeat("b", teams.MaxValidationTokenLen)
	if resp, body := post(t, srv, "validationToken="+long, nil); resp.StatusCode != 200 || string(body) != long {
		t.Errorf("longest token: status %d, %d bytes", resp.StatusCode, len(body))
	}
}

func TestNotificationsAreAuthenticatedValidatedAndHandedOver(t *testing.T) {
	tests := []struct {
		name      string
		body      []byte
		fail      error
		status    int
		code      string // error code of a refusal
		field     string
		callbacks int
		events    int
	}{
		{name: "incoming call", body: fixture(t, "incoming_created.json"), status: 202, callbacks: 1, events: 1},
		{name: "batch of two", body: fixture(t, "batch_two.json"), status: 202, callbacks: 1, events: 2},
		{name: "only skipped notifications", body: []byte(`{"value":[{"clientState":"` + clientState + `","lifecycleEvent":"missed"}]}`), status: 202},
		{name: "bad clientState among good ones", body: fixture(t, "bad_clientstate_in_batch.json"), status: 403, code: "forbidden"},
		{name: "no clientState", body: fixture(t, "missing_clientstate.json"), status: 403, code: "forbidden"},
		{name: "malformed", body: fixture(t, "malformed_missing_id.json"), status: 400, code: "invalid", field: "value[2].resourceData.id"},
		{name: "not JSON", body: fixture(t, "malformed_not_json.txt"), status: 400, code: "invalid", field: "body"},
		{name: "callback fails transiently", body: fixture(t, "terminated.json"), fail: errors.New("table storage timeout"), status: 500, code: "internal", callbacks: 1, events: 1},
		{name: "callback refuses", body: fixture(t, "terminated.json"), fail: fault.Invalid("target", "unknown service"), status: 400, code: "invalid", field: "target", callbacks: 1, events: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{fail: tt.fail}
			srv, _ := server(t, rec, 0)
			resp, body := post(t, srv, "", tt.body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tt.status, body)
			}
			if tt.code != "" {
				e := decodeError(t, body)
				if e.Error.Code != tt.code || e.Error.Field != tt.field {
					t.Errorf("error %+v, want code %q field %q", e.Error, tt.code, tt.field)
				}
			} else if len(body) != 0 {
				t.Errorf("body %q, want none", body)
			}
			if rec.calls() != tt.callbacks {
				t.Fatalf("callback called %d times, want %d", rec.calls(), tt.callbacks)
			}
			if tt.callbacks > 0 && len(rec.batches[0]) != tt.events {
				t.Errorf("callback got %d events, want %d", len(rec.batches[0]), tt.events)
			}
		})
	}
}

func TestOversizedBodyIsRefusedUnread(t *testing.T) {
	rec := &recorder{}
	srv, _ := server(t, rec, 256)
	body := fixture(t, "incoming_created.json") // > 256 bytes
	resp, b := post(t, srv, "", body)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", resp.StatusCode)
	}
	if decodeError(t, b).Error.Code != "too_large" {
		t.Errorf("answer %s", b)
	}
	if rec.calls() != 0 {
		t.Error("callback called")
	}
	// The default limit is 1 MiB.
	srv, _ = server(t, rec, 0)
	big := []byte(`{"value":[{"clientState":"` + clientState + `","pad":"` + strings.Repeat("x", teams.DefaultMaxBodyBytes) + `"}]}`)
	if resp, _ := post(t, srv, "", big); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("1 MiB+ body: status %d, want 413", resp.StatusCode)
	}
}

func TestLogsHoldNoSecretOrIdentifier(t *testing.T) {
	rec := &recorder{}
	srv, logs := server(t, rec, 0)
	for _, name := range []string{"incoming_created.json", "offer_ringing.json", "bad_clientstate_in_batch.json", "malformed_missing_id.json"} {
		post(t, srv, "", fixture(t, name))
	}
	rec.fail = errors.New("store down")
	post(t, srv, "", fixture(t, "incoming_subscription.json"))

	out := logs.String()
	if !strings.Contains(out, "teams notifications accepted") || !strings.Contains(out, "clientState missing or wrong") {
		t.Fatalf("expected log lines missing:\n%s", out)
	}
	for _, secret := range []string{clientState, "cs-7f3e9a1c", callIn, callOffer, callSubscr, agentID, serviceRA,
		tenantID, "+1555555", "Agent One", "Support Line"} {
		if strings.Contains(out, secret) {
			t.Errorf("logs contain %q:\n%s", secret, out)
		}
	}
	// An Event logged by a consumer shows no identifier either.
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("event", "event", rec.batches[0][0])
	for _, id := range []string{callIn, serviceRA, tenantID} {
		if strings.Contains(buf.String(), id) {
			t.Errorf("Event.LogValue shows %q: %s", id, &buf)
		}
	}
	if !strings.Contains(buf.String(), `"kind":"incoming"`) {
		t.Errorf("Event.LogValue lacks the kind: %s", &buf)
	}
}

func TestConcurrentBatches(t *testing.T) {
	rec := &recorder{}
	srv, _ := server(t, rec, 0)
	bodies := [][]byte{fixture(t, "batch_two.json"), fixture(t, "bad_clientstate_in_batch.json"), fixture(t, "declined.json")}
	want := map[int]int{0: 202, 1: 403, 2: 202}
	var wg sync.WaitGroup
	errs := make(chan string, 60)
	for i := range 60 {
		wg.Go(func() {
			resp, _ := post(t, srv, "", bodies[i%3])
			if resp.StatusCode != want[i%3] {
				errs <- resp.Status
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error("unexpected status", e)
	}
	if rec.calls() != 40 {
		t.Errorf("callback called %d times, want 40", rec.calls())
	}
}

func TestNewWebhookRefusesBadConfiguration(t *testing.T) {
	ok := func(context.Context, []teams.Event) error { return nil }
	for name, f := range map[string]func() (*teams.Webhook, error){
		"empty clientState":    func() (*teams.Webhook, error) { return teams.NewWebhook("", ok, 0) },
		"too long clientState": func() (*teams.Webhook, error) { return teams.NewWebhook(strings.Repeat("s", 129), ok, 0) },
		"nil callback":         func() (*teams.Webhook, error) { return teams.NewWebhook(clientState, nil, 0) },
	} {
		w, err := f()
		if err == nil || w != nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "sss") {
			t.Errorf("%s: error shows the secret: %v", name, err)
		}
	}
}
