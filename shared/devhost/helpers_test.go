package devhost

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	forwardingHostJSON = `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler"},"enableForwardingHttpRequest":true}}`
	waitLimit          = 20 * time.Second
)

var guidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func timerFunction(schedule string) string {
	return fmt.Sprintf(`{"bindings":[{"name":"myTimer","type":"timerTrigger","direction":"in","schedule":%q}]}`, schedule)
}

func queueFunction(queueName string, sessions bool) string {
	return fmt.Sprintf(`{"bindings":[{"name":"msg","type":"serviceBusTrigger","direction":"in","queueName":%q,"connection":"ServiceBus","isSessionsEnabled":%v}]}`, queueName, sessions)
}

func httpFunction(route string, methods ...string) string {
	m, _ := json.Marshal(methods)
	return fmt.Sprintf(`{"bindings":[{"name":"req","type":"httpTrigger","direction":"in","authLevel":"function","route":%q,"methods":%s},{"name":"res","type":"http","direction":"out"}]}`, route, m)
}

// writeApp writes host.json and functions/<Name>/function.json into a temp app root.
func writeApp(t *testing.T, hostJSON string, functions map[string]string) string {
	t.Helper()
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "host.json"), []byte(hostJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, js := range functions {
		dir := filepath.Join(root, "functions", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "function.json"), []byte(js), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// invocation is one envelope the fake handler received.
type invocation struct {
	path   string
	header http.Header
	data   map[string]json.RawMessage
	meta   map[string]json.RawMessage
}

func (inv invocation) metaString(t *testing.T, key string) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(inv.meta[key], &s); err != nil {
		t.Fatalf("Metadata.%s = %s: not a string: %v", key, inv.meta[key], err)
	}
	return s
}

// fakeHandler plays the custom handler: it records each envelope and answers with
// the status answer returns (200 and an empty host response when answer is nil).
type fakeHandler struct {
	*httptest.Server
	calls chan invocation
}

func newFakeHandler(t *testing.T, answer func(*http.Request, invocation) int) *fakeHandler {
	t.Helper()
	f := &fakeHandler{calls: make(chan invocation, 1000)}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/" {
			http.NotFound(w, r) // readiness probe: any answer will do
			return
		}
		body, _ := io.ReadAll(r.Body)
		var env struct {
			Data     map[string]json.RawMessage
			Metadata map[string]json.RawMessage
		}
		if err := json.Unmarshal(body, &env); err != nil {
			t.Errorf("handler got a body that is not an envelope: %v", err)
		}
		inv := invocation{path: r.URL.Path, header: r.Header.Clone(), data: env.Data, meta: env.Metadata}
		f.calls <- inv
		status := http.StatusOK
		if answer != nil {
			status = answer(r, inv)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, `{"Outputs":{},"Logs":[],"ReturnValue":null}`)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeHandler) next(t *testing.T) invocation {
	t.Helper()
	select {
	case inv := <-f.calls:
		return inv
	case <-time.After(waitLimit):
		t.Fatal("no invocation reached the handler")
		return invocation{}
	}
}

// startHost creates and runs a Host, waits until it is ready, and on cleanup cancels
// it and checks that Run returns.
func startHost(t *testing.T, opts Options) *Host {
	t.Helper()
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	h, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.poll = 5 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var runErr error
	go func() { runErr = h.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
			if runErr != nil {
				t.Errorf("Run: %v", runErr)
			}
		case <-time.After(60 * time.Second):
			t.Error("Run did not return after its context was cancelled")
		}
	})
	select {
	case <-h.Ready():
	case <-done:
		t.Fatalf("Run returned before ready: %v", runErr)
	case <-time.After(waitLimit):
		t.Fatal("host did not become ready")
	}
	return h
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock(start string) *fakeClock { return &fakeClock{now: at(start)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// logBuffer collects log output for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (l *logBuffer) count(s string) int { return strings.Count(l.String(), s) }
