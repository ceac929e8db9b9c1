package funchost_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/teamscc/teamscc/shared/funchost"
)

// BenchmarkDispatchServiceBus measures envelope decoding and dispatch per invocation
// through ServeHTTP. Two MessageIds alternate with DedupSize 1, so every delivery misses
// the dedup cache and runs the handler, as a stream of distinct messages would.
func BenchmarkDispatchServiceBus(b *testing.B) {
	app := funchost.New(funchost.Options{Parker: &fakeParker{}, DedupSize: 1})
	app.ServiceBus("RouteCall", func(context.Context, funchost.Message) error { return nil })
	envelopes := [][]byte{fixture(b, "sb_object_body.json"), bytes.Replace(fixture(b, "sb_object_body.json"), []byte("kick-sales-"), []byte("kick-other-"), 1)}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/RouteCall", bytes.NewReader(envelopes[i%2]))
		req.Header.Set(funchost.InvocationHeader, "inv-bench")
		rec := httptest.NewRecorder()
		app.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
		i++
	}
}

// BenchmarkDispatchTimer measures envelope decoding and dispatch of a timer invocation.
func BenchmarkDispatchTimer(b *testing.B) {
	app := funchost.New(funchost.Options{})
	app.Timer("PresenceRefresh", func(context.Context, funchost.Timer) error { return nil })
	env := fixture(b, "timer_status_set.json")
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/PresenceRefresh", bytes.NewReader(env))
		req.Header.Set(funchost.InvocationHeader, "inv-bench")
		rec := httptest.NewRecorder()
		app.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
	}
}
