package funchost

import (
	"encoding/json"
	"testing"
	"time"
)

func TestDecodeBodyFollowsTheDocumentedRule(t *testing.T) {
	tests := []struct {
		name        string
		value       string // the trigger value as it appears in Data
		contentType string
		want        string
		wantOK      bool
	}{
		{"object as received", `{"a":1}`, "application/json", `{"a":1}`, true},
		{"array as received", `[1,2]`, "", `[1,2]`, true},
		{"number", `4`, "", `4`, true},
		{"boolean", `true`, "", `true`, true},
		{"null is no value", `null`, "", "", false},
		{"text encoded twice", `"\"hello\""`, "text/plain", "hello", true},
		{"text encoded twice, quotes inside", `"\"say \\\"hi\\\"\""`, "", `say "hi"`, true},
		{"number encoded twice", `"\"4\""`, "", "4", true},
		{"text encoded once", `"hello, agent"`, "text/plain", "hello, agent", true},
		{"JSON encoded once", `"{\"a\":1}"`, "application/json", `{"a":1}`, true},
		{"number as string", `"4"`, "", "4", true},
		{"base64 bytes", `"AAEC/w=="`, "application/octet-stream", "\x00\x01\x02\xff", true},
		{"base64 without content type", `"aGVsbG8="`, "", "hello", true},
		{"base64 of JSON under application/json", `"eyJhIjoxfQ=="`, "application/json", `{"a":1}`, true},
		{"text/* is never base64", `"aGVsbG8="`, "text/plain; charset=utf-8", "aGVsbG8=", true},
		{"unpadded base64 is text", `"aGVsbG8"`, "", "aGVsbG8", true},
		{"empty string", `""`, "", "", true},
		{"text starting with a quote", `"\"quoted\" he said"`, "", `"quoted" he said`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := decodeBody(json.RawMessage(tt.value), tt.contentType)
			if ok != tt.wantOK || string(got) != tt.want {
				t.Errorf("decodeBody(%s, %q) = %q, %v; want %q, %v", tt.value, tt.contentType, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestMetadataReadsWellFormedValuesOnly(t *testing.T) {
	tests := []struct {
		name string
		md   string
		want Message
	}{
		{"strings encoded twice, numbers as strings",
			`{"MessageId":"\"m\"","DeliveryCount":"2","SequenceNumber":"9"}`,
			Message{MessageID: "m", DeliveryCount: 2, SequenceNumber: 9}},
		{"strings encoded once, numbers as numbers",
			`{"MessageId":"m","DeliveryCount":2,"SequenceNumber":9}`,
			Message{MessageID: "m", DeliveryCount: 2, SequenceNumber: 9}},
		{"malformed values read as zero",
			`{"MessageId":5,"DeliveryCount":"x","SequenceNumber":{"a":1},"EnqueuedTimeUtc":"yesterday","ApplicationProperties":"nope"}`,
			Message{}},
		{"first well-formed of two names wins",
			`{"Subject":7,"Label":"\"l\"","EnqueuedTimeUtc":"bad","EnqueuedTime":"2026-11-24T10:00:00+01:00","ApplicationProperties":{},"UserProperties":{"k":"v"}}`,
			Message{Subject: "l", EnqueuedTime: time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC), ApplicationProperties: map[string]any{"k": "v"}}},
		{"properties as a JSON string",
			`{"ApplicationProperties":"{\"k\":\"v\"}"}`,
			Message{ApplicationProperties: map[string]any{"k": "v"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var md metadata
			if err := json.Unmarshal([]byte(tt.md), &md); err != nil {
				t.Fatal(err)
			}
			got := md.message()
			if got.MessageID != tt.want.MessageID || got.DeliveryCount != tt.want.DeliveryCount ||
				got.SequenceNumber != tt.want.SequenceNumber || got.Subject != tt.want.Subject ||
				!got.EnqueuedTime.Equal(tt.want.EnqueuedTime) || len(got.ApplicationProperties) != len(tt.want.ApplicationProperties) ||
				(tt.want.ApplicationProperties != nil && got.ApplicationProperties["k"] != tt.want.ApplicationProperties["k"]) {
				t.Errorf("message() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseTimeAcceptsHostFormats(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"2026-11-24T10:00:00.1234567Z", time.Date(2026, 11, 24, 10, 0, 0, 123456700, time.UTC), true},
		{"2026-11-24T10:00:00.1234567+00:00", time.Date(2026, 11, 24, 10, 0, 0, 123456700, time.UTC), true},
		{"2026-11-24T11:00:00+01:00", time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC), true},
		{"2026-11-24T10:00:00.1234567", time.Date(2026, 11, 24, 10, 0, 0, 123456700, time.UTC), true},
		{"2026-11-24T10:00:00", time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC), true},
		{"11/24/2026 10:00:00", time.Time{}, false},
		{"", time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := parseTime(tt.in)
			if ok != tt.ok || !got.Equal(tt.want) || (ok && got.Location() != time.UTC) {
				t.Errorf("parseTime(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestRecentForgetsTheOldest(t *testing.T) {
	c := newRecent(2)
	c.add("a")
	c.add("b")
	c.add("a") // already there: no eviction
	c.add("c") // evicts a
	for key, want := range map[string]bool{"a": false, "b": true, "c": true, "d": false} {
		if got := c.has(key); got != want {
			t.Errorf("has(%q) = %v, want %v", key, got, want)
		}
	}
}
