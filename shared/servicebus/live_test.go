package servicebus

import (
	"context"
	"errors"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/queue"
)

// TestLive runs against a real namespace, because no local broker works (the SDK always
// does the $cbs handshake; the emulator is a Docker image). Set SERVICEBUS_TEST_QUEUE and
// either SERVICEBUS_TEST_NAMESPACE (<name>.servicebus.windows.net, with
// DefaultAzureCredential: az login, or a managed identity with the Data Sender role) or
// SERVICEBUS_TEST_CONNECTION_STRING. The queue may be session-enabled. It leaves the
// messages it sends (not the scheduled one) in the queue: use a test queue with a short
// default time to live.
func TestLive(t *testing.T) {
	queueName := os.Getenv("SERVICEBUS_TEST_QUEUE")
	o := Options{
		FullyQualifiedNamespace: os.Getenv("SERVICEBUS_TEST_NAMESPACE"),
		ConnectionString:        os.Getenv("SERVICEBUS_TEST_CONNECTION_STRING"),
	}
	if queueName == "" || (o.FullyQualifiedNamespace == "" && o.ConnectionString == "") {
		t.Skip("no Service Bus namespace: set SERVICEBUS_TEST_QUEUE and SERVICEBUS_TEST_NAMESPACE or SERVICEBUS_TEST_CONNECTION_STRING to run")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	s, err := New(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()

	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	msg := func(id string) queue.Message {
		return queue.Message{ID: "live-" + run + "-" + id, SessionID: "live-test", ContentType: "application/json",
			Body: []byte(`{"test":"` + id + `"}`), Properties: map[string]string{"kind": "live-test"}}
	}

	if err := s.Send(ctx, queueName, msg("send")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	// The same MessageId again: accepted (a queue with duplicate detection drops it).
	if err := s.Send(ctx, queueName, msg("send")); err != nil {
		t.Fatalf("Send duplicate: %v", err)
	}
	if err := s.SendBatch(ctx, queueName, []queue.Message{msg("batch-1"), msg("batch-2")}); err != nil {
		t.Fatalf("SendBatch: %v", err)
	}

	seq, err := s.Schedule(ctx, queueName, msg("scheduled"), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatalf("Schedule: %v", err)
	}
	if seq <= 0 {
		t.Errorf("sequence number %d", seq)
	}
	if err := s.Cancel(ctx, queueName, seq); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	// Cancelling it again, or a number never issued, is not an error.
	if err := s.Cancel(ctx, queueName, seq); err != nil {
		t.Errorf("Cancel again: %v", err)
	}
	if err := s.Cancel(ctx, queueName, 1<<60); err != nil {
		t.Errorf("Cancel unknown: %v", err)
	}

	err = s.Send(ctx, "does-not-exist-"+run, msg("missing"))
	if !errors.Is(err, fault.ErrNotFound) || !fault.IsPermanent(err) {
		t.Errorf("Send to a missing queue = %v, want permanent not found", err)
	}
}
