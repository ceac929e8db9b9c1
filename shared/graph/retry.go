package graph

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// retryTransport retries Graph requests answered 429 or 5xx. It is the parent
// transport of the kiota middleware pipeline (below the auth, telemetry and
// user-agent steps, above the wire), so each retry resends the exact request, and
// kiota's own retry handler is not installed.
//
//   - 429 and 5xx honour Retry-After, in seconds (fractional too: "0.5") or as an
//     HTTP-date; without it, exponential backoff with jitter from baseWait.
//   - One wait is capped by maxWait; at most maxRetries retries, after which the last
//     answer is returned as is (the caller reports it as transient).
//   - Waits end early when the request's context ends.
//   - The body is read once and replayed on every attempt.
type retryTransport struct {
	next           http.RoundTripper
	maxRetries     int
	maxWait        time.Duration
	baseWait       time.Duration
	attemptTimeout time.Duration                                    // per attempt; 0: none
	sleep          func(ctx context.Context, d time.Duration) error // nil: sleepCtx
	jitter         func() float64                                   // in [0,1); nil: math/rand
	now            func() time.Time                                 // nil: time.Now
	log            *slog.Logger
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
	}
	for attempt := 0; ; attempt++ {
		r := req.Clone(ctx)
		if body != nil {
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
			r.ContentLength = int64(len(body))
		}
		resp, err := t.roundTrip(r)
		if err != nil {
			return nil, err
		}
		if !retryable(resp.StatusCode) || attempt >= t.maxRetries {
			return resp, nil
		}
		wait := t.delay(resp, attempt)
		// Drain a little so the connection can be reused, then drop the answer.
		_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
		resp.Body.Close()
		if t.log != nil {
			t.log.Warn("graph: retrying", "status", resp.StatusCode, "retry", attempt+1, "of", t.maxRetries, "wait", wait)
		}
		sleep := t.sleep
		if sleep == nil {
			sleep = sleepCtx
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// roundTrip makes one attempt, bounded by attemptTimeout (the timer ends when the
// body is closed).
func (t *retryTransport) roundTrip(r *http.Request) (*http.Response, error) {
	if t.attemptTimeout <= 0 {
		return t.next.RoundTrip(r)
	}
	ctx, cancel := context.WithTimeout(r.Context(), t.attemptTimeout)
	resp, err := t.next.RoundTrip(r.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// retryable: throttling and server errors, except those a retry cannot fix.
func retryable(status int) bool {
	switch {
	case status == http.StatusTooManyRequests:
		return true
	case status == http.StatusNotImplemented, status == http.StatusHTTPVersionNotSupported:
		return false
	default:
		return status >= 500 && status <= 599
	}
}

// delay is the wait before retry number attempt+1.
func (t *retryTransport) delay(resp *http.Response, attempt int) time.Duration {
	now := time.Now
	if t.now != nil {
		now = t.now
	}
	d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), now())
	if !ok {
		exp := t.baseWait << min(attempt, 20)
		if exp <= 0 || exp > t.maxWait {
			exp = t.maxWait
		}
		j := t.jitter
		if j == nil {
			j = rand.Float64
		}
		// Equal jitter: half fixed, half random, so waits grow but spread out.
		d = exp/2 + time.Duration(j()*float64(exp/2))
	}
	if d > t.maxWait {
		d = t.maxWait
	}
	if d < 0 {
		d = 0
	}
	return d
}

// parseRetryAfter reads Retry-After as (possibly fractional) seconds or an HTTP-date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
			return 0, false
		}
		if f > float64(math.MaxInt64/int64(time.Second)) {
			return time.Duration(math.MaxInt64), true
		}
		return time.Duration(math.Round(f * float64(time.Second))), true
	}
	if at, err := http.ParseTime(v); err == nil {
		d := at.Sub(now)
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
