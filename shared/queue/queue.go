// Package queue is the small interface the domain uses to send Service Bus messages:
// a kick now, a kick scheduled for later, and cancelling a scheduled one. The
// servicebus adapter implements it against Azure; the local runner implements it with
// in-process queues.
package queue

import (
	"context"
	"time"
)

// Message is one message to send.
type Message struct {
	// ID is the MessageId; queues with duplicate detection drop a second message with
	// the same ID inside their window, so derive it from what the message means.
	ID string
	// SessionID routes the message to one consumer at a time (the service id for kicks).
	SessionID   string
	ContentType string
	Body        []byte
	Properties  map[string]string
}

// Sender sends messages to named queues. Safe for concurrent use.
//
// Every message sent carries the W3C trace context of ctx (package tracecontext: the
// invocation's span that funchost put there) as its application properties
// Diagnostic-Id, traceparent and tracestate, a new span of that trace (a new trace when
// ctx has none), so the invocation it triggers continues the same operation. Callers
// pass the context of the work that sends the message; Properties already holding
// Diagnostic-Id or traceparent are kept.
type Sender interface {
	Send(ctx context.Context, queueName string, m Message) error
	// Schedule enqueues m to become visible at 'at' and returns its sequence number.
	Schedule(ctx context.Context, queueName string, m Message, at time.Time) (int64, error)
	// Cancel removes a scheduled message; cancelling one already delivered or unknown is
	// not an error.
	Cancel(ctx context.Context, queueName string, sequenceNumber int64) error
}
