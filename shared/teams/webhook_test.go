package teams_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/teams"
)

// tokenAuth accepts "Bearer good" for tenant tid and refuses anything else; "Bearer
// keys-down" is a transient failure (the signing keys cannot be read).
type tokenAuth struct{}

const tid = "72f988bf-0000-4000-8000-2d7cd011db47"

func (tokenAuth) Authenticate(_ context.Context, authz string) (string, error) {
	switch authz {
	case "Bearer good":
		return tid, nil
	case "Bearer keys-down":
		return "", errors.New("keys unavailable")
	}
	return "", fmt.Errorf("%w: bad token", teams.ErrUnauthenticated)
}

// countingBody notes whether the webhook read the body.
type countingBody struct {
	io.Reader
	read bool
}

func (c *countingBody) Read(p []byte) (int, error) {
	c.read = true
	return c.Reader.Read(p)
}

func serve(t *testing.T, onBatch teams.BatchFunc, target, authz string, body []byte) (*httptest.ResponseRecorder, bool) {
	t.Helper()
	wh, err := teams.NewWebhook(tokenAuth{}, onBatch, 0)
	if err != nil {
		t.Fatal(err)
	}
	cb := &countingBody{Reader: bytes.NewReader(body)}
	r := httptest.NewRequest(http.MethodPost, target, cb)
	if authz != "" {
		r.Header.Set("Authorization", authz)
	}
	w := httptest.NewRecorder()
	wh.ServeHTTP(w, r)
	return w, cb.read
}

func TestTheWebhookAuthenticatesBeforeReadingAnything(t *testing.T) {
	called := false
	on := func(context.Context, teams.Batch) error { called = true; return nil }
	for _, authz := range []string{"", "Bearer bad", "Basic Zm9vOmJhcg=="} {
		w, read := serve(t, on, "/api/teams/notifications", authz, fixture(t, "incoming_created.json"))
		if w.Code != http.StatusUnauthorized || !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer") || read || called {
			t.Errorf("%q: %d (body read %v, handler called %v); want 401 before reading the body", authz, w.Code, read, called)
		}
	}
	w, read := serve(t, on, "/api/teams/notifications", "Bearer keys-down", fixture(t, "incoming_created.json"))
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || read || called {
		t.Errorf("keys down: %d; want 503 with Retry-After", w.Code)
	}
}

func TestTheWebhookHandsOnTheBatchWithTenantAndHint(t *testing.T) {
	var got teams.Batch
	on := func(_ context.Context, b teams.Batch) error { got = b; return nil }
	w, _ := serve(t, on, "/api/teams/notifications?call=c-1&leg=2", "Bearer good", fixture(t, "batch_two.json"))
	if w.Code != http.StatusAccepted || got.TenantID != tid || got.Hint != (teams.Hint{Call: "c-1", Leg: 2}) || len(got.Events) != 2 {
		t.Fatalf("%d %+v", w.Code, got)
	}
	w, _ = serve(t, on, "/api/teams/notifications", "Bearer good", fixture(t, "incoming_created.json"))
	if w.Code != http.StatusAccepted || got.Hint != (teams.Hint{Leg: -1}) {
		t.Fatalf("global webhook: %d %+v", w.Code, got.Hint)
	}
}

func TestTheWebhookAnswersTheLegacyFormat204(t *testing.T) {
	called := false
	w, _ := serve(t, func(context.Context, teams.Batch) error { called = true; return nil }, "/api/teams/notifications", "Bearer good",
		fixture(t, "legacy_incoming.json"))
	if w.Code != http.StatusNoContent || called {
		t.Fatalf("legacy: %d, handler called %v", w.Code, called)
	}
}

func TestTheWebhookMapsErrors(t *testing.T) {
	ok := func(context.Context, teams.Batch) error { return nil }
	for _, c := range []struct {
		name, target string
		body         []byte
		on           teams.BatchFunc
		status       int
		field        string
	}{
		{"malformed body", "/n", []byte(`{"value":[{"changeType":"moved"}]}`), ok, 400, "value[0].changeType"},
		{"bad hint call", "/n?call=a%2Fb", fixture(t, "batch_two.json"), ok, 400, "call"},
		{"leg without call", "/n?leg=1", fixture(t, "batch_two.json"), ok, 400, "leg"},
		{"leg not a number", "/n?call=c&leg=x", fixture(t, "batch_two.json"), ok, 400, "leg"},
		{"transient failure", "/n", fixture(t, "batch_two.json"), func(context.Context, teams.Batch) error { return errors.New("storage down") }, 500, ""},
		{"permanent failure", "/n", fixture(t, "batch_two.json"), func(context.Context, teams.Batch) error { return fault.Invalid("tid", "not a GUID") }, 400, "tid"},
	} {
		w, _ := serve(t, c.on, c.target, "Bearer good", c.body)
		if w.Code != c.status || (c.field != "" && !strings.Contains(w.Body.String(), `"field":"`+c.field+`"`)) {
			t.Errorf("%s: %d %s; want %d naming %q", c.name, w.Code, w.Body, c.status, c.field)
		}
	}
	big := bytes.Repeat([]byte(" "), teams.DefaultMaxBodyBytes+1)
	if w, _ := serve(t, ok, "/n", "Bearer good", big); w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("too large: %d", w.Code)
	}
}

func TestCallbackURINamesTheCallAndLeg(t *testing.T) {
	for _, c := range []struct {
		h    teams.Hint
		want string
	}{
		{teams.Hint{Leg: -1}, "https://app.example/api/teams/notifications"},
		{teams.Hint{Call: "421f0c00-83a1", Leg: -1}, "https://app.example/api/teams/notifications?call=421f0c00-83a1"},
		{teams.Hint{Call: "ob-t 1", Leg: 3}, "https://app.example/api/teams/notifications?call=ob-t%201&leg=3"},
	} {
		if got := teams.CallbackURI("https://app.example/api/teams/notifications", c.h); got != c.want {
			t.Errorf("%+v: %s; want %s", c.h, got, c.want)
		}
	}
}
