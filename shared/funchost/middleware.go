package funchost

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/parking"
)

// step handles an invocation; middleware wraps one.
type step func(ctx context.Context, inv *invocation) error

type middleware func(next step) step

// chain wraps h in mw so that mw[0] is the outermost.
func chain(h step, mw ...middleware) step {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

// okResponse is the host's success answer: nothing to output, no logs (we log to stdout).
var okResponse = []byte(`{"Outputs":{},"Logs":[],"ReturnValue":null}`)

// logInvocation puts the invocation logger into the context and logs one line when the
// invocation ends: status and duration, plus method and route pattern for HTTP (never the
// raw path or query string: they may hold customer identifiers). The line carries the
// trace_id decode found (inv.log grows as the invocation learns about itself, so the
// steps outside decode log with inv.log, not with their context's logger).
func (a *App) logInvocation(next step) step {
	return func(ctx context.Context, inv *invocation) error {
		start := a.now()
		ctx = context.WithValue(ctx, loggerKey{}, inv.log)
		err := next(ctx, inv)

		status := inv.w.status
		if status == 0 {
			status = http.StatusOK // net/http's answer when the handler wrote nothing
		}
		attrs := []slog.Attr{
			slog.String("kind", inv.fn.Kind),
			slog.Int("status", status),
			slog.Float64("duration_ms", float64(a.now().Sub(start))/float64(time.Millisecond)),
		}
		switch inv.fn.Kind {
		case KindHTTP:
			attrs = append(attrs, slog.String("method", inv.r.Method), slog.String("route", inv.fn.Pattern))
		case KindServiceBus:
			attrs = append(attrs, slog.String("message_id", inv.msg.MessageID), slog.Int("delivery_count", inv.msg.DeliveryCount))
		case KindTimer:
			attrs = append(attrs, slog.Bool("past_due", inv.timer.IsPastDue))
		}
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		}
		if err != nil {
			attrs = append(attrs, slog.Any("error", err))
		}
		inv.log.LogAttrs(ctx, level, "invocation done", attrs...)
		return err
	}
}

// respond turns the outcome into the answer. For triggers: nil → 200 with the host's
// envelope; an error → 500. For HTTP the handler has answered, unless it panicked first.
func (a *App) respond(next step) step {
	return func(ctx context.Context, inv *invocation) error {
		err := next(ctx, inv)
		switch {
		case inv.fn.Kind == KindHTTP:
			if err != nil && inv.w.status == 0 {
				writeInternal(inv.w)
			}
		case err != nil:
			// Why: any non-2xx fails the invocation: the host abandons the message and
			// Service Bus redelivers it (DeliveryCount+1) until MaxDeliveryCount.
			writeInternal(inv.w)
		default:
			inv.w.Header().Set("Content-Type", "application/json")
			inv.w.WriteHeader(http.StatusOK)
			_, _ = inv.w.Write(okResponse)
		}
		return err
	}
}

// recoverPanics turns a panic into an error (so a 500) and logs it with its stack.
func (a *App) recoverPanics(next step) step {
	return func(ctx context.Context, inv *invocation) (err error) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v) // the handler asked net/http to abort the response; let it
			}
			inv.log.Error("panic", slog.String("panic", fmt.Sprint(v)), slog.String("stack", string(debug.Stack())))
			err = fmt.Errorf("panic: %v", v)
		}()
		return next(ctx, inv)
	}
}

// withTimeout bounds an invocation: a trigger by Options.Timeout, an HTTP request by
// Options.HTTPTimeout. The handler must honour its context; the error it then returns
// is transient (a message is redelivered; HTTP answers 503).
func (a *App) withTimeout(next step) step {
	return func(ctx context.Context, inv *invocation) error {
		d := a.timeout
		if inv.fn.Kind == KindHTTP {
			d = a.httpTO
		}
		if d <= 0 {
			return next(ctx, inv)
		}
		ctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		return next(ctx, inv)
	}
}

// park acknowledges permanent failures instead of letting Service Bus redeliver them:
// the message is parked with its reason and the host gets 200. If parking fails the error
// stays, so the host gets 500 and the message comes back. A timer has nothing to park: a
// permanent failure is logged and acknowledged.
func (a *App) park(next step) step {
	return func(ctx context.Context, inv *invocation) error {
		err := next(ctx, inv)
		if err == nil || inv.fn.Kind == KindHTTP || !fault.IsPermanent(err) {
			return err
		}
		log := inv.log // with the trace the inner steps found
		if inv.fn.Kind == KindTimer {
			log.Error("timer run failed permanently", slog.Any("error", err))
			return nil
		}
		m := parking.Message{
			Function:      inv.fn.Name,
			MessageID:     inv.msg.MessageID,
			InvocationID:  inv.id,
			DeliveryCount: inv.msg.DeliveryCount,
			Reason:        err.Error(),
			Body:          inv.parkedBody(),
			ParkedAt:      a.now().UTC(),
		}
		if perr := a.parker.Park(ctx, m); perr != nil {
			return fmt.Errorf("park message (refused: %v): %w", err, perr)
		}
		log.Warn("message parked", slog.String("message_id", m.MessageID), slog.String("reason", m.Reason))
		return nil
	}
}

// parkedBody is the body to keep: the decoded message body, or the whole envelope when it
// could not be decoded. Bytes that are not UTF-8 are kept in base64, the form the host
// delivered them in, so the record stays text.
func (inv *invocation) parkedBody() string {
	b := inv.body
	if inv.decoded {
		b = inv.msg.Body
	}
	if utf8.Valid(b) {
		return string(b)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// decode reads and decodes a trigger envelope into inv.timer or inv.msg, then starts the
// invocation's trace (see startTrace): from the message's properties, else the request's
// traceparent header, else a new trace. An envelope that cannot be decoded at all is a
// permanent error (redelivery would not fix it); a body that cannot be read is transient.
// An HTTP request only gets its trace.
func (a *App) decode(next step) step {
	return func(ctx context.Context, inv *invocation) error {
		if inv.fn.Kind == KindHTTP {
			return next(inv.startTrace(ctx), inv)
		}
		body, err := io.ReadAll(inv.r.Body)
		if err != nil {
			inv.startTrace(ctx) // the failure is logged with a trace id
			return fmt.Errorf("read envelope: %w", err)
		}
		inv.body = body
		collisions, err := inv.decodeEnvelope()
		// Metadata is read even when Data cannot be, so a message's own trace context is
		// known here either way.
		ctx = inv.startTrace(ctx)
		if err != nil {
			return fault.Permanent(fmt.Errorf("undecodable envelope: %w", err))
		}
		if len(collisions) > 0 {
			// Why: the host merges a JSON body's top-level properties into Metadata,
			// where they can overwrite these keys. Only names are logged, never values.
			Logger(ctx).Warn("message body properties collide with metadata keys; their metadata values may be the body's",
				slog.Any("keys", collisions))
		}
		return next(ctx, inv)
	}
}

// dedup acknowledges a message whose MessageId already completed for this function in the
// last DedupSize completions, without running the handler again. Only successes are
// remembered, so a failed message is retried on redelivery. Two deliveries of one message
// running at the same time are not caught (a Service Bus lock prevents that).
func (a *App) dedup(next step) step {
	return func(ctx context.Context, inv *invocation) error {
		if inv.dedupKey == "" {
			return next(ctx, inv)
		}
		if a.done.has(inv.dedupKey) {
			Logger(ctx).Info("message already completed; acknowledged without running the handler",
				slog.String("message_id", inv.msg.MessageID), slog.Int("delivery_count", inv.msg.DeliveryCount))
			return nil
		}
		err := next(ctx, inv)
		if err == nil {
			a.done.add(inv.dedupKey)
		}
		return err
	}
}

// recent remembers the last n keys added. Safe for concurrent use.
type recent struct {
	mu   sync.Mutex
	ring []string // oldest is overwritten first; "" = empty slot
	next int
	set  map[string]struct{}
}

func newRecent(n int) *recent {
	return &recent{ring: make([]string, n), set: make(map[string]struct{}, n)}
}

func (c *recent) has(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.set[key]
	return ok
}

func (c *recent) add(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.set[key]; ok {
		return
	}
	if old := c.ring[c.next]; old != "" {
		delete(c.set, old)
	}
	c.ring[c.next] = key
	c.set[key] = struct{}{}
	c.next = (c.next + 1) % len(c.ring)
}
