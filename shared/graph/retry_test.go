package graph

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	abs "github.com/microsoft/kiota-abstractions-go"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0.5", 500 * time.Millisecond, true},
		{"0.2", 200 * time.Millisecond, true},
		{" 3 ", 3 * time.Second, true},
		{"0", 0, true},
		{now.Add(7 * time.Second).Format(http.TimeFormat), 7 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
		{"", 0, false},
		{"-1", 0, false},
		{"NaN", 0, false},
		{"soon", 0, false},
	}
	for _, c := range cases {
		got, ok := parseRetryAfter(c.in, now)
		if got != c.want || ok != c.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestBackoffGrowsAndIsCapped(t *testing.T) {
	tr := &retryTransport{maxWait: 10 * time.Second, baseWait: time.Second, jitter: func() float64 { return 0.999999 }}
	resp := &http.Response{Header: http.Header{}}
	var prev time.Duration
	for attempt := range 8 {
		d := tr.delay(resp, attempt)
		if d < prev || d > 10*time.Second {
			t.Errorf("attempt %d: wait %v (previous %v)", attempt, d, prev)
		}
		prev = d
	}
	tr.jitter = func() float64 { return 0 }
	if d := tr.delay(resp, 0); d != 500*time.Millisecond {
		t.Errorf("no jitter: first wait %v, want 500ms", d)
	}
}

// The retry transport replays POST bodies byte for byte and closes discarded answers.
func TestRetryTransportReplaysBody(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b)+"|"+r.Header.Get("Content-Encoding")+"|"+r.Header.Get("X-Test"))
		mu.Unlock()
		if n.Add(1) <= 2 {
			w.Header().Set("Retry-After", "0.01")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, strings.Repeat("x", 1000))
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	var waits []time.Duration
	tr := &retryTransport{next: srv.Client().Transport, maxRetries: 4, maxWait: time.Second, baseWait: time.Second,
		attemptTimeout: 5 * time.Second,
		sleep:          func(ctx context.Context, d time.Duration) error { waits = append(waits, d); return nil }}
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(`{"ids":["a","b"]}`))
	req.Header.Set("X-Test", "kept")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ok" {
		t.Errorf("body %q", b)
	}
	want := `{"ids":["a","b"]}||kept`
	if len(bodies) != 3 || bodies[0] != want || bodies[1] != want || bodies[2] != want {
		t.Errorf("bodies seen %q", bodies)
	}
	if len(waits) != 2 || waits[0] != 10*time.Millisecond {
		t.Errorf("waits %v", waits)
	}
}

// A real (timer) wait ends when the context ends.
func TestSleepCtx(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := sleepCtx(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v", err)
	}
	if err := sleepCtx(context.Background(), time.Millisecond); err != nil {
		t.Errorf("got %v", err)
	}
}

// decodeInto handles gzip answers a transport did not inflate, and failed answers.
func TestDecodeIntoHandler(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write([]byte(`{"value":[{"id":"a","availability":"Away","activity":"Away"}]}`))
	zw.Close()
	var got struct{ Value []presenceJSON }
	h := decodeInto(&got).(abs.RequestHandlerOption).GetResponseHandler()
	res := &http.Response{StatusCode: 200, Header: http.Header{"Content-Encoding": {"gzip"}}, Body: io.NopCloser(&buf)}
	if _, err := h(res, nil); err != nil || len(got.Value) != 1 || got.Value[0].ID != "a" {
		t.Fatalf("gzip: %v %+v", err, got)
	}
	res = &http.Response{StatusCode: 404, Header: http.Header{},
		Body: io.NopCloser(strings.NewReader(`{"error":{"code":"Request_ResourceNotFound","message":"Resource 'x@y.example' does not exist"}}`))}
	_, err := h(res, nil)
	var se *statusError
	if !errors.As(err, &se) || se.status != 404 || se.code != "Request_ResourceNotFound" || strings.Contains(se.Error(), "x@y") {
		t.Errorf("404: %#v", err)
	}
}
