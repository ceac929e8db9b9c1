package teams_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/teamscc/teamscc/shared/teams"
)

// BenchmarkParseBatchOfTwo: decode, authenticate and validate a two-notification batch.
func BenchmarkParseBatchOfTwo(b *testing.B) {
	body := fixture(b, "batch_two.json")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		events, err := teams.Parse(body, clientState)
		if err != nil || len(events) != 2 {
			b.Fatal(events, err)
		}
	}
}

// BenchmarkParseIncomingCall: the richest single notification (source, targets).
func BenchmarkParseIncomingCall(b *testing.B) {
	body := fixture(b, "incoming_created.json")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := teams.Parse(body, clientState); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWebhookBatchOfTwo: the whole HTTP handler (body read, parse, callback, 202),
// without the network.
func BenchmarkWebhookBatchOfTwo(b *testing.B) {
	body := fixture(b, "batch_two.json")
	wh, err := teams.NewWebhook(clientState, func(context.Context, []teams.Event) error { return nil }, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "/api/teams/notifications", bytes.NewReader(body))
		w := httptest.NewRecorder()
		wh.ServeHTTP(w, r)
		if w.Code != http.StatusAccepted {
			b.Fatal(w.Code)
		}
	}
}

func BenchmarkEventKey(b *testing.B) {
	e := teams.Event{CallID: "421f0c00-83a1-4b3a-a9b0-5d4e2c1f7a10", ChangeType: teams.Updated, State: "established",
		Agent: "550fae72-d251-43ec-868c-373732c2704f", Sequence: `W/"5447"`}
	b.ReportAllocs()
	for b.Loop() {
		_ = e.Key()
	}
}
