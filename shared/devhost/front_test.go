package devhost

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/queue"
)

type forwarded struct {
	method, path, query, body string
	header                    http.Header
}

// rawHandler plays a handler that serves forwarded HTTP requests.
func rawHandler(t *testing.T) (*httptest.Server, chan forwarded) {
	got := make(chan forwarded, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/" {
			http.NotFound(w, r)
			return
		}
		b, _ := io.ReadAll(r.Body)
		got <- forwarded{r.Method, r.URL.Path, r.URL.RawQuery, string(b), r.Header.Clone()}
		w.Header().Set("X-Answer", "yes")
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "created "+r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func TestHTTPTriggerIsForwardedRaw(t *testing.T) {
	handler, got := rawHandler(t)
	h := startHost(t, Options{
		AppRoot: writeApp(t, forwardingHostJSON, map[string]string{
			"Health": httpFunction("tenants/{tenantId}/presence/health", "get", "post"),
			"Item":   httpFunction("items/{id:guid}"),
		}),
		HandlerURL: handler.URL,
	})
	base := "http://" + h.Addr()

	req, _ := http.NewRequest(http.MethodPost, base+"/api/tenants/t1/presence/health?x=1&code=somekey", strings.NewReader(`{"a":1}`))
	req.Header.Set("X-Custom", "c")
	req.Header.Set("x-functions-key", "k")
	req.Header.Set("Client-IP", "198.51.100.9:1") // a caller's claim: the front end writes over it
	req.Header.Set("X-Forwarded-For", "198.51.100.9")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("X-Answer") != "yes" || string(body) != "created /api/tenants/t1/presence/health" {
		t.Errorf("answer %d %v %q, want the handler's answer as-is", resp.StatusCode, resp.Header, body)
	}
	f := <-got
	if f.method != "POST" || f.path != "/api/tenants/t1/presence/health" || f.query != "x=1&code=somekey" || f.body != `{"a":1}` {
		t.Errorf("forwarded %+v", f)
	}
	if f.header.Get("X-Custom") != "c" || f.header.Get("X-Functions-Key") != "k" || !guidPattern.MatchString(f.header.Get("X-Azure-Functions-InvocationId")) {
		t.Errorf("forwarded headers %v", f.header)
	}
	// As Azure's front end: Client-IP is the caller's address, appended to X-Forwarded-For.
	if ip := f.header.Get("Client-IP"); !strings.HasPrefix(ip, "127.0.0.1:") || f.header.Get("X-Forwarded-For") != "198.51.100.9, "+ip {
		t.Errorf("forwarded Client-IP %q, X-Forwarded-For %q", ip, f.header.Get("X-Forwarded-For"))
	}

	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/api/tenants/t1/presence/health", http.StatusCreated},
		{"GET", "/API/Tenants/t1/Presence/Health", http.StatusCreated}, // literals match case-insensitively
		{"DELETE", "/api/tenants/t1/presence/health", http.StatusNotFound},
		{"GET", "/api/undeclared", http.StatusNotFound},
		{"GET", "/tenants/t1/presence/health", http.StatusNotFound}, // no route prefix
		{"GET", "/api/tenants/t1/presence", http.StatusNotFound},
		{"GET", "/api/items/8f14e45f-ceea-467f-a8f0-2b8a3e2b1a2c", http.StatusCreated},
		{"PUT", "/api/items/8f14e45f-ceea-467f-a8f0-2b8a3e2b1a2c", http.StatusCreated}, // no methods: any
		{"GET", "/api/items/not-a-guid", http.StatusNotFound},
	} {
		req, _ := http.NewRequest(tc.method, base+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
		}
		if tc.want == http.StatusCreated {
			<-got
		}
	}
	if len(got) != 0 {
		t.Errorf("%d unmatched requests reached the handler", len(got))
	}
}

func TestRouteTemplatesMatch(t *testing.T) {
	tests := []struct {
		tmpl, path string
		want       bool
	}{
		{"a/{b}", "a/x", true},
		{"a/{b}", "a", false},
		{"a/{b}", "a/x/y", false},
		{"a/{b?}", "a", true},
		{"a/{*rest}", "a/x/y/z", true},
		{"a/{*rest}", "a", true},
		{"a/{n:int}", "a/12", true},
		{"a/{n:int}", "a/x", false},
		{"a/{n:int:min(1)}", "a/5", true},
		{"a/{s:length(3)}", "a/anything", true}, // tolerated, not enforced
		{"a/{b:bool}", "a/true", true},
		{"a/{b:alpha}", "a/abc1", false},
	}
	for _, tt := range tests {
		r, err := parseRoute(tt.tmpl)
		if err != nil {
			t.Fatalf("parseRoute(%q): %v", tt.tmpl, err)
		}
		var path []string
		if tt.path != "" {
			path = strings.Split(tt.path, "/")
		}
		if got := matchRoute(r, path); got != tt.want {
			t.Errorf("%q matches %q = %v, want %v", tt.tmpl, tt.path, got, tt.want)
		}
	}
	for _, bad := range []string{"a//b", "a/x{b}", "a/{*rest}/b"} {
		if _, err := parseRoute(bad); err == nil {
			t.Errorf("parseRoute(%q) succeeded", bad)
		}
	}
}

func TestAdminEndpointInvokesNonHTTPFunctions(t *testing.T) {
	handler := newFakeHandler(t, nil)
	h := startHost(t, Options{
		AppRoot: writeApp(t, forwardingHostJSON, map[string]string{
			"RouteCall": queueFunction("calls", true),
			"Tick":      timerFunction("0 0 0 1 1 *"),
			"Health":    httpFunction("health"),
		}),
		HandlerURL: handler.URL,
	})
	post := func(name, body string) int {
		resp, err := http.Post("http://"+h.Addr()+"/admin/functions/"+name, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	if code := post("RouteCall", `{"input":"{\"serviceId\":\"s1\"}","sessionId":"s1"}`); code != http.StatusAccepted {
		t.Fatalf("Service Bus function: status %d, want 202", code)
	}
	inv := handler.next(t)
	if inv.path != "/RouteCall" || string(inv.data["msg"]) != `{"serviceId":"s1"}` || inv.metaString(t, "SessionId") != "s1" {
		t.Errorf("invocation %s %s %s", inv.path, inv.data["msg"], inv.meta["SessionId"])
	}

	if code := post("tick", `{"input":""}`); code != http.StatusAccepted {
		t.Fatalf("timer: status %d, want 202", code)
	}
	inv = handler.next(t)
	var timer map[string]json.RawMessage
	if err := json.Unmarshal(inv.data["myTimer"], &timer); inv.path != "/Tick" || err != nil || timer["Schedule"] == nil {
		t.Errorf("timer invocation %s %s", inv.path, inv.data["myTimer"])
	}

	for name, tc := range map[string]struct {
		fn, body string
		want     int
	}{
		"unknown function":         {"Nope", `{"input":""}`, http.StatusNotFound},
		"session without id":       {"RouteCall", `{"input":"x"}`, http.StatusBadRequest},
		"http function":            {"Health", `{"input":""}`, http.StatusBadRequest},
		"body that is not {input}": {"RouteCall", `nope`, http.StatusBadRequest},
	} {
		if code := post(tc.fn, tc.body); code != tc.want {
			t.Errorf("%s: status %d, want %d", name, code, tc.want)
		}
	}
}

func TestRunWaitsForInFlightInvocationsOnShutdown(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	handler := newFakeHandler(t, func(r *http.Request, _ invocation) int {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return http.StatusOK
	})
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	h, err := New(Options{
		AppRoot:    writeApp(t, forwardingHostJSON, map[string]string{"RouteCall": queueFunction("calls", false)}),
		HandlerURL: handler.URL,
		Listen:     "127.0.0.1:0",
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	if err := h.Send(context.Background(), "calls", queue.Message{ID: "m", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	handler.next(t) // in flight
	cancel()
	eventually(t, "shutdown to begin", func() bool {
		h.invMu.Lock()
		defer h.invMu.Unlock()
		return h.closing
	})
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) while an invocation was in flight", err)
	default:
	}
	once.Do(func() { close(release) })
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Run did not return after the invocation finished")
	}
	if n := h.Pending("calls"); n != 0 {
		t.Errorf("the in-flight message was not completed: %d pending", n)
	}
	if err := h.Run(context.Background()); err == nil {
		t.Error("a second Run succeeded")
	}
}
