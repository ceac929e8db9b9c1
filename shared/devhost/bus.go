package devhost

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/teamscc/teamscc/shared/queue"
	"github.com/teamscc/teamscc/shared/tracecontext"
)

var _ queue.Sender = (*Host)(nil)

// DeadLetter is a message moved to a queue's dead-letter sub-queue.
type DeadLetter struct {
	// Queue is the queue the message was sent to.
	Queue string
	// Message is the message as sent (with its ID filled in when it had none).
	Message        queue.Message
	SequenceNumber int64
	// DeliveryCount is how many times the message was delivered.
	DeliveryCount int
	// Reason is the DeadLetterReason, "MaxDeliveryCountExceeded" as in Service Bus.
	Reason string
	// EnqueuedTime is when the message became visible (its scheduled time, if any).
	EnqueuedTime time.Time
	// DeadLetteredTime is when the message was moved.
	DeadLetteredTime time.Time
}

// ReasonMaxDeliveryCountExceeded is the DeadLetterReason Service Bus gives a message
// that failed MaxDeliveryCount deliveries.
const ReasonMaxDeliveryCountExceeded = "MaxDeliveryCountExceeded"

// sbMessage is a message in an in-process queue.
type sbMessage struct {
	seq        int64
	msg        queue.Message
	scheduled  bool      // sent with Schedule
	enqueued   time.Time // when it became (or becomes) visible
	notBefore  time.Time // redelivery backoff after an abandon
	deliveries int
	inFlight   bool
}

// sbQueue is one in-process Service Bus queue. Guarded by Host.mu.
type sbQueue struct {
	name     string
	fn       *function // the trigger listening on it, or nil
	pending  []*sbMessage
	inFlight int
	sessions map[string]bool      // sessions with a message in flight
	seen     map[string]time.Time // MessageId → first enqueue, for duplicate detection
	dead     []DeadLetter
	warned   bool // logged that no function listens
}

// queueLocked returns the queue named name (case-insensitive, as Service Bus),
// creating it on first use. h.mu must be held.
func (h *Host) queueLocked(name string) *sbQueue {
	key := strings.ToLower(name)
	q := h.queues[key]
	if q == nil {
		q = &sbQueue{name: name, sessions: map[string]bool{}, seen: map[string]time.Time{}}
		for _, fn := range h.funcs {
			if fn.Trigger == ServiceBusTrigger && strings.EqualFold(fn.Queue, name) {
				q.fn = fn
			}
		}
		h.queues[key] = q
	}
	return q
}

// Send enqueues m on the named queue for delivery now. A message whose ID was already
// sent to that queue within the duplicate-detection window is dropped silently, as
// Service Bus does. A session-enabled queue rejects a message without SessionID. The
// message gets the W3C trace context of ctx as application properties (Diagnostic-Id,
// traceparent, tracestate: see tracecontext.MessageProperties), as the servicebus
// adapter sends it. Safe for concurrent use; messages are kept until delivered even
// before Run starts.
func (h *Host) Send(ctx context.Context, queueName string, m queue.Message) error {
	_, err := h.enqueue(ctx, queueName, m, time.Time{})
	return err
}

// Schedule enqueues m to become visible at 'at' (per Options.Now) and returns its
// sequence number, with the same rules as Send. A dropped duplicate still gets a
// sequence number, which cancels nothing.
func (h *Host) Schedule(ctx context.Context, queueName string, m queue.Message, at time.Time) (int64, error) {
	return h.enqueue(ctx, queueName, m, at)
}

func (h *Host) enqueue(ctx context.Context, queueName string, m queue.Message, at time.Time) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if queueName == "" {
		return 0, fmt.Errorf("devhost: send: empty queue name")
	}
	m.Body = bytes.Clone(m.Body)
	// As the Service Bus adapter does: the trace context of ctx goes on the message, so
	// the envelope's ApplicationProperties carry it to the invocation it triggers.
	m.Properties = tracecontext.MessageProperties(ctx, m.Properties)
	if m.ID == "" {
		m.ID = newGUID() // Service Bus clients assign one
	}
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	q := h.queueLocked(queueName)
	if q.fn != nil && q.fn.Sessions && m.SessionID == "" {
		return 0, fmt.Errorf("devhost: send to %s: the queue requires sessions, message has no SessionID", q.name)
	}
	h.seq++
	seq := h.seq
	for id, t := range q.seen {
		if now.Sub(t) >= h.opts.DuplicateWindow {
			delete(q.seen, id)
		}
	}
	if _, dup := q.seen[m.ID]; dup {
		h.log.Info("duplicate message dropped", "queue", q.name, "sequenceNumber", seq)
		return seq, nil
	}
	q.seen[m.ID] = now
	msg := &sbMessage{seq: seq, msg: m, enqueued: now}
	if !at.IsZero() {
		msg.scheduled, msg.enqueued = true, at.UTC()
	}
	q.pending = append(q.pending, msg)
	if q.fn == nil && !q.warned {
		q.warned = true
		h.log.Warn("no function listens on this queue: messages stay queued", "queue", q.name)
	}
	h.wakeDispatcher()
	return seq, nil
}

// Cancel removes a scheduled message that is not yet visible. Cancelling a message
// already visible, delivered or unknown is not an error (it stays as it is).
func (h *Host) Cancel(ctx context.Context, queueName string, sequenceNumber int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	q := h.queues[strings.ToLower(queueName)]
	if q == nil {
		return nil
	}
	for i, m := range q.pending {
		if m.seq == sequenceNumber && m.scheduled && !m.inFlight && m.enqueued.After(now) {
			q.pending = append(q.pending[:i], q.pending[i+1:]...)
			h.log.Info("scheduled message cancelled", "queue", q.name, "sequenceNumber", sequenceNumber)
			return nil
		}
	}
	return nil
}

// DeadLetters returns the messages moved to the queue's dead-letter sub-queue, oldest
// first.
func (h *Host) DeadLetters(queueName string) []DeadLetter {
	h.mu.Lock()
	defer h.mu.Unlock()
	q := h.queues[strings.ToLower(queueName)]
	if q == nil {
		return nil
	}
	out := make([]DeadLetter, len(q.dead))
	for i, d := range q.dead {
		d.Message.Body = bytes.Clone(d.Message.Body)
		d.Message.Properties = maps.Clone(d.Message.Properties)
		out[i] = d
	}
	return out
}

// Pending returns how many messages the queue holds: waiting, scheduled or in flight.
func (h *Host) Pending(queueName string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if q := h.queues[strings.ToLower(queueName)]; q != nil {
		return len(q.pending)
	}
	return 0
}

func (h *Host) wakeDispatcher() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// runDispatcher delivers visible messages until ctx is done.
func (h *Host) runDispatcher(ctx context.Context) {
	for {
		wait := h.poll
		if next := h.dispatch(); !next.IsZero() {
			wait = min(wait, next.Sub(h.now()))
		}
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-h.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// dispatch starts every delivery the concurrency rules allow now and returns the
// earliest time a waiting message becomes deliverable (zero if none).
func (h *Host) dispatch() time.Time {
	now := h.now()
	var earliest time.Time
	later := func(t time.Time) {
		if earliest.IsZero() || t.Before(earliest) {
			earliest = t
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, q := range h.queues {
		if q.fn == nil {
			continue
		}
		blocked := map[string]bool{} // sessions whose head message is not deliverable
		for _, m := range q.pending {
			if m.inFlight {
				continue
			}
			if m.enqueued.After(now) {
				later(m.enqueued)
				continue
			}
			if q.fn.Sessions {
				// One message per session at a time, in order: only a session's first
				// visible message may go, and only while no other of it is in flight.
				sid := m.msg.SessionID
				if q.sessions[sid] || blocked[sid] {
					continue
				}
				blocked[sid] = true
				if m.notBefore.After(now) {
					later(m.notBefore)
					continue
				}
				if len(q.sessions) >= h.cfg.MaxConcurrentSessions {
					continue
				}
			} else {
				if m.notBefore.After(now) {
					later(m.notBefore)
					continue
				}
				if q.inFlight >= h.cfg.MaxConcurrentCalls {
					break
				}
			}
			if !h.startInvocation() {
				return time.Time{}
			}
			m.inFlight = true
			m.deliveries++
			q.inFlight++
			if q.fn.Sessions {
				q.sessions[m.msg.SessionID] = true
			}
			go h.deliver(q, m, m.deliveries)
		}
	}
	return earliest
}

// deliver POSTs one message to its function and settles it: 2xx completes it; anything
// else abandons it for redelivery, or dead-letters it after MaxDeliveryCount deliveries.
func (h *Host) deliver(q *sbQueue, m *sbMessage, count int) {
	defer h.invocations.Done()
	fn := q.fn
	id := newGUID()
	log := h.log.With("function", fn.Name, "invocationId", id, "queue", q.name,
		"sequenceNumber", m.seq, "deliveryCount", count)
	if tc, ok := tracecontext.FromProperties(m.msg.Properties); ok {
		log = log.With("traceId", tc.TraceIDString())
	}
	status, err := h.invoke(h.invokeCtx, fn, id, h.messageEnvelope(fn, m, count), log)
	ok := err == nil && status/100 == 2

	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	defer h.wakeDispatcher()
	m.inFlight = false
	q.inFlight--
	delete(q.sessions, m.msg.SessionID)
	switch {
	case ok:
		h.removeLocked(q, m)
		log.Info("message delivered", "status", status)
		return
	case err != nil:
		log.Warn("message delivery failed: handler unreachable", "error", err)
	default:
		log.Warn("message delivery failed", "status", status)
	}
	if count >= h.opts.MaxDeliveryCount {
		h.removeLocked(q, m)
		q.dead = append(q.dead, DeadLetter{
			Queue: q.name, Message: m.msg, SequenceNumber: m.seq, DeliveryCount: count,
			Reason: ReasonMaxDeliveryCountExceeded, EnqueuedTime: m.enqueued, DeadLetteredTime: now,
		})
		log.Error("message dead-lettered", "reason", ReasonMaxDeliveryCountExceeded)
		return
	}
	m.notBefore = now.Add(h.opts.RedeliveryDelay)
	log.Info("message abandoned: will be redelivered", "after", h.opts.RedeliveryDelay)
}

func (h *Host) removeLocked(q *sbQueue, m *sbMessage) {
	for i, p := range q.pending {
		if p == m {
			q.pending = append(q.pending[:i], q.pending[i+1:]...)
			return
		}
	}
}

// messageEnvelope builds the invocation body for a Service Bus message as the host does:
// the body under Data (a JSON object as an object, anything else as a string), the
// message properties in Metadata, and the object body's top-level properties merged
// into Metadata over keys of the same name.
func (h *Host) messageEnvelope(fn *function, m *sbMessage, count int) envelope {
	str := func(s string) any {
		if h.opts.DoubleEncodeStrings {
			b, _ := json.Marshal(s)
			return string(b)
		}
		return s
	}
	optional := func(s string) any {
		if s == "" {
			return nil
		}
		return str(s)
	}
	props := map[string]string{}
	maps.Copy(props, m.msg.Properties)
	meta := map[string]any{
		"DeliveryCount":         strconv.Itoa(count),
		"MessageId":             str(m.msg.ID),
		"SessionId":             optional(m.msg.SessionID),
		"SequenceNumber":        strconv.FormatInt(m.seq, 10),
		"EnqueuedTimeUtc":       str(m.enqueued.UTC().Format(time.RFC3339Nano)),
		"ContentType":           optional(m.msg.ContentType),
		"CorrelationId":         nil, // queue.Message has none
		"LockToken":             str(newGUID()),
		"ApplicationProperties": props,
		"UserProperties":        props,
		"sys":                   h.sysMetadata(fn),
	}
	var data any = str(string(m.msg.Body))
	var obj map[string]json.RawMessage
	if trimmed := bytes.TrimSpace(m.msg.Body); len(trimmed) > 0 && trimmed[0] == '{' && json.Unmarshal(trimmed, &obj) == nil {
		data = json.RawMessage(trimmed)
		for k, v := range obj {
			meta[k] = v
		}
	}
	return envelope{Data: map[string]any{fn.Binding: data}, Metadata: meta}
}
