package servicebus

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/go-amqp"

	"github.com/teamscc/teamscc/shared/fault"
)

var (
	// ErrUnauthorized: the credential was refused or lacks the Azure Service Bus Data
	// Sender role on the queue. Returned marked fault.Permanent: redelivery cannot fix
	// configuration.
	ErrUnauthorized = errors.New("not authorized")
	// ErrMessageTooLarge: the message exceeds the queue's size limit. Permanent.
	ErrMessageTooLarge = errors.New("message too large")
	// ErrClosed: Close was called; transient for the caller (another instance will do).
	ErrClosed = errors.New("sender closed")
)

// Error is a failed Service Bus operation. Its text never holds a connection string,
// a shared access key or a signature; it unwraps to fault.ErrNotFound (missing queue or
// namespace), ErrUnauthorized, ErrMessageTooLarge, ErrClosed or the context's error when
// that is the cause, and to nothing else (the SDK error is not kept: it may carry
// secrets).
type Error struct {
	Op    string // "send", "schedule", "cancel", "close"
	Queue string
	// Code is the SDK's azservicebus.Code or the AMQP condition, "" when neither.
	Code  string
	msg   string
	cause error
}

func (e *Error) Error() string {
	s := "servicebus " + e.Op
	if e.Queue != "" {
		s += " " + e.Queue
	}
	if e.Code != "" {
		s += " (" + e.Code + ")"
	}
	return s + ": " + e.msg
}

// Unwrap returns the domain error or context error behind e, if any.
func (e *Error) Unwrap() error { return e.cause }

// messageNotFound is the condition the broker uses for an unknown sequence number.
const messageNotFound amqp.ErrCond = "com.microsoft:message-not-found"

// translate turns an SDK error into *Error, marked fault.Permanent when redelivery
// cannot help: a missing entity (configuration, not an outage), a refused credential,
// a message too large. Everything else (connection lost, timeouts, throttling, unknown
// errors) stays transient. secrets are removed from every text kept.
func translate(op, queueName string, err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	e := &Error{Op: op, Queue: queueName, msg: redact(err.Error(), secrets...)}
	permanent := false

	var sbErr *azservicebus.Error
	var amqpErr *amqp.Error
	var authFailed *azidentity.AuthenticationFailedError
	var nonRetriable interface {
		error
		NonRetriable()
	}
	switch {
	case errors.Is(err, context.Canceled):
		e.cause = context.Canceled
		return e
	case errors.Is(err, context.DeadlineExceeded):
		e.cause = context.DeadlineExceeded
		return e
	case errors.Is(err, azservicebus.ErrMessageTooLarge):
		e.cause, permanent = ErrMessageTooLarge, true
	case errors.As(err, &sbErr):
		e.Code = string(sbErr.Code)
		switch sbErr.Code {
		case azservicebus.CodeNotFound:
			e.cause, permanent = fault.ErrNotFound, true
		case azservicebus.CodeUnauthorizedAccess:
			e.cause, permanent = ErrUnauthorized, true
		case azservicebus.CodeClosed:
			e.cause = ErrClosed
		}
	case errors.As(err, &amqpErr):
		// A link attach to a queue that does not exist fails with amqp:not-found, which
		// the SDK passes through untranslated.
		e.Code = string(amqpErr.Condition)
		switch amqpErr.Condition {
		case amqp.ErrCondNotFound, messageNotFound:
			e.cause, permanent = fault.ErrNotFound, true
		case amqp.ErrCondUnauthorizedAccess:
			e.cause, permanent = ErrUnauthorized, true
		case amqp.ErrCondMessageSizeExceeded:
			e.cause, permanent = ErrMessageTooLarge, true
		}
	case errors.As(err, &authFailed):
		e.Code = "authenticationFailed"
		// Entra refused (4xx): configuration. A 5xx, 429 or no answer: an outage, retry.
		if r := authFailed.RawResponse; r != nil && r.StatusCode >= 400 && r.StatusCode < 500 && r.StatusCode != http.StatusTooManyRequests {
			e.cause, permanent = ErrUnauthorized, true
		}
	case errors.As(err, &nonRetriable) && strings.Contains(strings.ToLower(nonRetriable.Error()), "credential"):
		// azidentity's credentialUnavailableError is unexported; it is the NonRetriable
		// error of a credential that cannot work here (no managed identity, no developer
		// login): configuration.
		e.Code = "credentialUnavailable"
		e.cause, permanent = ErrUnauthorized, true
	}
	if permanent {
		return fault.Permanent(e)
	}
	return e
}

// isMessageNotFound reports the answer to cancelling a sequence number the broker does
// not hold (already delivered, already cancelled or never scheduled). The cancel RPC
// answers 404, which the SDK turns into CodeNotFound; a missing queue fails earlier, at
// link attach, with amqp:not-found.
func isMessageNotFound(err error) bool {
	var sbErr *azservicebus.Error
	if errors.As(err, &sbErr) && sbErr.Code == azservicebus.CodeNotFound {
		return true
	}
	var amqpErr *amqp.Error
	return errors.As(err, &amqpErr) && amqpErr.Condition == messageNotFound
}

var secretRE = regexp.MustCompile(`(?i)(SharedAccessKey|SharedAccessSignature|sig|skn|AccountKey|client_secret|access_token)(=|:\s*|"\s*:\s*")[^;&\s"]+`)

const maxErrorText = 300

// redact removes every occurrence of secrets and anything that looks like a key or a
// signature from s, and bounds its length.
func redact(s string, secrets ...string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "***")
		}
	}
	s = secretRE.ReplaceAllString(s, "$1$2***")
	if len(s) > maxErrorText {
		s = s[:maxErrorText] + "…"
	}
	return s
}
