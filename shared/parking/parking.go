// Package parking keeps messages that failed permanently (malformed, unknown tenant,
// over a limit) with their reason, so they are acknowledged instead of redelivered and
// an operator can still see them.
package parking

import (
	"context"
	"time"
)

// Message is one parked message.
type Message struct {
	Function      string    `json:"function"`      // the function that refused it
	MessageID     string    `json:"messageId"`     // Service Bus MessageId ("" for timers)
	InvocationID  string    `json:"invocationId"`  // host invocation id, to find the logs
	DeliveryCount int       `json:"deliveryCount"` //
	Reason        string    `json:"reason"`        // the error text: field and rule, never a secret
	Body          string    `json:"body"`          // the message body as received (may hold customer data: shown to operators only)
	ParkedAt      time.Time `json:"parkedAt"`
}

// Store keeps parked messages. Park is idempotent per (Function, MessageID) when
// MessageID is set: parking the same message again replaces the record.
type Store interface {
	Park(ctx context.Context, m Message) error
	// ListParked returns up to limit messages parked by function ("" = all), newest first.
	ListParked(ctx context.Context, function string, limit int) ([]Message, error)
}
