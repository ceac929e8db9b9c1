// Package servicebus is the Azure Service Bus adapter: queue.Sender on azservicebus.
//
// It behaves for callers as the local runner's in-process queues (shared/devhost) do:
// a message without ID gets a random one (Service Bus duplicate detection needs one to
// work with); Schedule returns the sequence number to cancel with; cancelling a message
// that was already delivered, cancelled or never existed is not an error; an empty queue
// name is refused; every message carries the W3C trace context of the context it is sent
// under (application properties Diagnostic-Id and traceparent, a new span of that trace,
// and tracestate), as the local runner's do. Unlike the local runner, a session-enabled
// queue is checked by the broker, not here.
//
// Errors are *Error values (see translate): a missing queue or namespace and a refused
// credential are fault.Permanent (configuration: retrying will not help), everything
// else is transient. No error text holds a connection string, key or signature.
package servicebus

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/queue"
	"github.com/teamscc/teamscc/shared/tracecontext"
)

var _ queue.Sender = (*Sender)(nil)

// Sender sends to the queues of one namespace. It keeps one azservicebus.Sender per
// queue, created on first use. Safe for concurrent use; Close it at shutdown.
type Sender struct {
	client  *azservicebus.Client
	secrets []string // redacted from every error text

	mu      sync.Mutex
	senders map[string]*azservicebus.Sender // lower-case queue name → sender
	closed  bool
}

// New returns a Sender for the namespace o names. It does no network I/O (the first
// send connects), so it is cheap at start-up; ctx is not used yet. It fails when o is
// invalid or the credential cannot be built, with an error free of secrets.
func New(ctx context.Context, o Options) (*Sender, error) {
	_ = ctx
	if err := o.Validate(); err != nil {
		return nil, err
	}
	copts := &azservicebus.ClientOptions{RetryOptions: retryOptions(o)}
	s := &Sender{senders: map[string]*azservicebus.Sender{}}
	var err error
	if o.ConnectionString != "" {
		s.secrets = connectionSecrets(o.ConnectionString)
		s.client, err = azservicebus.NewClientFromConnectionString(o.ConnectionString, copts)
	} else {
		var cred azcore.TokenCredential
		cred, err = credential(o)
		if err == nil {
			s.client, err = azservicebus.NewClient(o.namespace(), cred, copts)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("servicebus: new client: %s", redact(err.Error(), s.secrets...))
	}
	return s, nil
}

// credential builds the Entra credential of o.
func credential(o Options) (azcore.TokenCredential, error) {
	if o.managedIdentity() {
		mo := &azidentity.ManagedIdentityCredentialOptions{}
		if o.ClientID != "" {
			mo.ID = azidentity.ClientID(o.ClientID)
		}
		return azidentity.NewManagedIdentityCredential(mo)
	}
	return azidentity.NewDefaultAzureCredential(nil)
}

// retryOptions maps Options to the SDK's, never leaving MaxRetries at 0 by accident
// (0 means "default 3" to the SDK).
func retryOptions(o Options) azservicebus.RetryOptions {
	r := azservicebus.RetryOptions{
		MaxRetries:    int32(o.MaxRetries),
		RetryDelay:    o.RetryDelay,
		MaxRetryDelay: o.MaxRetryDelay,
	}
	switch {
	case o.MaxRetries == 0:
		r.MaxRetries = DefaultMaxRetries
	case o.MaxRetries < 0:
		r.MaxRetries = -1 // the SDK's "one try, no retry"
	}
	if r.RetryDelay == 0 {
		r.RetryDelay = DefaultRetryDelay
	}
	if r.MaxRetryDelay == 0 {
		r.MaxRetryDelay = DefaultMaxRetryDelay
	}
	return r
}

// connectionSecrets returns the whole connection string and its key or signature.
func connectionSecrets(cs string) []string {
	out := []string{cs}
	for part := range strings.SplitSeq(cs, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		if v != "" && (strings.EqualFold(k, "SharedAccessKey") || strings.EqualFold(k, "SharedAccessSignature")) {
			out = append(out, v)
		}
	}
	return out
}

// toMessage maps a queue.Message sent under ctx to the SDK's message: ID → MessageID (a
// new random id when empty, as Service Bus clients do), SessionID and ContentType (unset
// when empty), Properties → ApplicationProperties (string values) with the W3C trace
// context of ctx added (see tracecontext.MessageProperties), Body as is (not copied: the
// SDK encodes it during the call).
//
// Why here: azservicebus (unlike the .NET SDK) writes no Diagnostic-Id, and the Functions
// host makes a message's Diagnostic-Id the parent of the invocation it triggers, so
// Application Insights joins sender and receiver only if we write it.
func toMessage(ctx context.Context, m queue.Message) *azservicebus.Message {
	id := m.ID
	if id == "" {
		id = newID()
	}
	out := &azservicebus.Message{MessageID: &id, Body: m.Body}
	if m.SessionID != "" {
		out.SessionID = &m.SessionID
	}
	if m.ContentType != "" {
		out.ContentType = &m.ContentType
	}
	props := tracecontext.MessageProperties(ctx, m.Properties)
	out.ApplicationProperties = make(map[string]any, len(props))
	for k, v := range props {
		out.ApplicationProperties[k] = v
	}
	return out
}

// newID returns a random UUID (version 4).
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// sender returns the cached sender of queueName, creating it on first use.
func (s *Sender) sender(op, queueName string) (*azservicebus.Sender, error) {
	if strings.TrimSpace(queueName) == "" {
		return nil, fault.Permanent(&Error{Op: op, msg: "empty queue name", cause: fault.Invalid("queueName", "required")})
	}
	key := strings.ToLower(queueName) // entity names are case-insensitive
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, &Error{Op: op, Queue: queueName, msg: "sender closed", cause: ErrClosed}
	}
	if snd := s.senders[key]; snd != nil {
		return snd, nil
	}
	snd, err := s.client.NewSender(queueName, nil)
	if err != nil {
		return nil, translate(op, queueName, err, s.secrets...)
	}
	s.senders[key] = snd
	return snd, nil
}

// Send sends m to the named queue now.
func (s *Sender) Send(ctx context.Context, queueName string, m queue.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	snd, err := s.sender("send", queueName)
	if err != nil {
		return err
	}
	return translate("send", queueName, snd.SendMessage(ctx, toMessage(ctx, m), nil), s.secrets...)
}

// SendBatch sends ms to the named queue in as few batches as fit, in order. An empty
// ms sends nothing and returns nil (the SDK panics on an empty batch). A message that
// fits no batch on its own fails with ErrMessageTooLarge (permanent); batches sent
// before a failure stay sent.
func (s *Sender) SendBatch(ctx context.Context, queueName string, ms []queue.Message) error {
	if len(ms) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	snd, err := s.sender("send", queueName)
	if err != nil {
		return err
	}
	batch, err := snd.NewMessageBatch(ctx, nil)
	if err != nil {
		return translate("send", queueName, err, s.secrets...)
	}
	for _, m := range ms {
		msg := toMessage(ctx, m)
		err := batch.AddMessage(msg, nil)
		if errors.Is(err, azservicebus.ErrMessageTooLarge) && batch.NumMessages() > 0 {
			if err := snd.SendMessageBatch(ctx, batch, nil); err != nil {
				return translate("send", queueName, err, s.secrets...)
			}
			if batch, err = snd.NewMessageBatch(ctx, nil); err != nil {
				return translate("send", queueName, err, s.secrets...)
			}
			err = batch.AddMessage(msg, nil)
		}
		if err != nil {
			return translate("send", queueName, err, s.secrets...)
		}
	}
	if batch.NumMessages() == 0 { // cannot happen (ms is not empty), but never send one empty
		return nil
	}
	return translate("send", queueName, snd.SendMessageBatch(ctx, batch, nil), s.secrets...)
}

// Schedule enqueues m to become visible at 'at' and returns its sequence number. A zero
// or past 'at' makes it visible at once.
func (s *Sender) Schedule(ctx context.Context, queueName string, m queue.Message, at time.Time) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	snd, err := s.sender("schedule", queueName)
	if err != nil {
		return 0, err
	}
	if at.IsZero() {
		at = time.Now()
	}
	seqs, err := snd.ScheduleMessages(ctx, []*azservicebus.Message{toMessage(ctx, m)}, at.UTC(), nil)
	if err != nil {
		return 0, translate("schedule", queueName, err, s.secrets...)
	}
	if len(seqs) != 1 {
		return 0, &Error{Op: "schedule", Queue: queueName, msg: fmt.Sprintf("broker returned %d sequence numbers for 1 message", len(seqs))}
	}
	return seqs[0], nil
}

// Cancel removes a scheduled message. A sequence number the broker no longer holds
// (delivered, cancelled, unknown) is not an error.
func (s *Sender) Cancel(ctx context.Context, queueName string, sequenceNumber int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	snd, err := s.sender("cancel", queueName)
	if err != nil {
		return err
	}
	err = snd.CancelScheduledMessages(ctx, []int64{sequenceNumber}, nil)
	if isMessageNotFound(err) {
		return nil
	}
	return translate("cancel", queueName, err, s.secrets...)
}

// Close closes every queue sender and the connection. Later calls fail with ErrClosed;
// closing twice is a no-op.
func (s *Sender) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	senders := maps.Clone(s.senders)
	s.senders = nil
	s.mu.Unlock()

	var errs []error
	for name, snd := range senders {
		if err := snd.Close(ctx); err != nil {
			errs = append(errs, translate("close", name, err, s.secrets...))
		}
	}
	if s.client != nil {
		if err := s.client.Close(ctx); err != nil {
			errs = append(errs, translate("close", "", err, s.secrets...))
		}
	}
	return errors.Join(errs...)
}
