package calls

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/teams"
	"github.com/teamscc/teamscc/shared/tenant"
)

// Timings of the controller. The platform gives a bot 15 s to answer an incoming call;
// the rest are the longest a step may take before the reconciler steps in.
const (
	// AnswerBudget bounds the work between an incoming call's notification and the
	// answer request, leaving the platform's 15 s a margin for the request itself.
	AnswerBudget = 10 * time.Second
	// StoreBudget is how long the answer waits for the call's first write. A slower
	// store does not hold the answer back: the call is answered and the write goes
	// on in the background (up to BackgroundWrite); should it fail, the call is hung
	// up rather than left unattended.
	StoreBudget     = 4 * time.Second
	BackgroundWrite = 60 * time.Second
	// AnswerGrace: an answered call not established by then is looked at.
	AnswerGrace = 20 * time.Second
	// PromptWatchdog: a greeting or announcement whose end was not reported by then
	// counts as played. MusicWatchdog: queue music is restarted, and the task looked
	// at, when no prompt end was reported for this long.
	PromptWatchdog = 2 * time.Minute
	MusicWatchdog  = 10 * time.Minute
	// JoinGrace: an accepted agent not in the call by then is dropped (the call is
	// queued again).
	JoinGrace = 30 * time.Second
	// TransferGrace: a transfer without an outcome by then is looked at.
	TransferGrace = 2 * time.Minute
	// DialGrace: an outbound customer call not answered by then is given up.
	DialGrace = 90 * time.Second
	// LegGrace: a leg still ringing this long after its offer's ring timeout is hung
	// up by the reconciler.
	LegGrace = 15 * time.Second
	// KeepAliveEvery: the platform ends calls it does not hear about for 45 minutes.
	KeepAliveEvery = 30 * time.Minute
	// RetrySoon: an action the platform refused for now is retried by the reconciler
	// from this moment on.
	RetrySoon = 5 * time.Second
	// MaxExits: a call taking more exits than this (a loop between services) is hung up.
	MaxExits = 3
)

// Services is what the controller reads of routing's store.
type Services interface {
	GetService(ctx context.Context, tenantID, serviceID string) (routing.Service, error)
	ServiceByTarget(ctx context.Context, tenantID, target string) (routing.Service, error)
	GetTask(ctx context.Context, tenantID, serviceID, taskID string) (routing.Task, error)
}

// Tenants is what the controller reads of tenants.
type Tenants interface {
	GetTenant(ctx context.Context, id string) (tenant.Tenant, error)
	ListTenants(ctx context.Context) ([]tenant.Tenant, error)
}

// Options wires a Controller.
type Options struct {
	Store    Store
	Platform Platform
	Router   Router
	Services Services
	Tenants  Tenants
	// Directory resolves outbound customers given by UPN; nil: only object ids and
	// phone numbers can be called.
	Directory Directory
	// Webhook is the calling webhook's public URL (the CallingWebhookUrl setting):
	// the callback of every call the app answers or places.
	Webhook string
	Now     func() time.Time                   // nil = time.Now
	Log     func(context.Context) *slog.Logger // nil discards
	// StoreBudget and BackgroundWrite replace the defaults of the same names (tests).
	StoreBudget, BackgroundWrite time.Duration
}

// Controller acts on calls. Safe for concurrent use: every change of a call goes
// through Store.UpdateCall, and only the writer that won acts on the platform.
type Controller struct {
	store    Store
	platform Platform
	router   Router
	services Services
	tenants  Tenants
	dir      Directory
	webhook  string
	now      func() time.Time
	log      func(context.Context) *slog.Logger

	storeBudget, backgroundWrite time.Duration
	bg                           sync.WaitGroup // background writes of answered calls
	writing                      sync.Map       // tenant + "/" + key → chan struct{}: a first write still under way
	answered                     sync.Map       // tenant + "/" + key → time.Time: answers this instance sent
	answeredN                    atomic.Int64
}

var _ routing.CallControl = (*Controller)(nil)

// New returns a Controller.
func New(o Options) *Controller {
	c := &Controller{store: o.Store, platform: o.Platform, router: o.Router, services: o.Services, tenants: o.Tenants, dir: o.Directory,
		webhook: o.Webhook, now: o.Now, log: o.Log, storeBudget: o.StoreBudget, backgroundWrite: o.BackgroundWrite}
	if c.storeBudget <= 0 {
		c.storeBudget = StoreBudget
	}
	if c.backgroundWrite <= 0 {
		c.backgroundWrite = BackgroundWrite
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = func(context.Context) *slog.Logger { return slog.New(slog.DiscardHandler) }
	}
	return c
}

// Wait blocks until background writes started by answered calls have finished
// (tests, shutdown).
func (c *Controller) Wait() { c.bg.Wait() }

// ref is a short, non-identifying name of a call for logs.
func ref(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:6])
}

// errSkip aborts an update that has nothing to do.
var errSkip = errors.New("nothing to do")

// action is one platform request decided by an update, run after the write.
type action struct {
	what string
	do   func(ctx context.Context) error
	// gone runs when the request says the call is gone (fault.ErrNotFound); nil: nothing.
	gone func(ctx context.Context) error
}

// plan collects the actions of one update attempt.
type plan struct{ acts []action }

func (p *plan) add(what string, do func(ctx context.Context) error) *action {
	p.acts = append(p.acts, action{what: what, do: do})
	return &p.acts[len(p.acts)-1]
}

// update changes a call through the store and runs the actions the winning attempt
// decided. fn returning errSkip writes nothing and runs nothing. NextAt is
// recomputed on every write.
func (c *Controller) update(ctx context.Context, tenantID, key string, fn func(*Call, *plan) error) (Call, error) {
	var p *plan
	added := 0
	now := c.now()
	call, err := c.store.UpdateCall(ctx, tenantID, key, func(x *Call) error {
		p = &plan{}
		before := len(x.Steps) + x.StepsDropped
		if err := fn(x, p); err != nil {
			return err
		}
		added = len(x.Steps) + x.StepsDropped - before
		x.reschedule(now)
		return nil
	})
	if errors.Is(err, errSkip) {
		return call, nil
	}
	if err != nil {
		return call, err
	}
	c.logSteps(ctx, call, added)
	c.run(ctx, call, p.acts)
	return call, nil
}

// logSteps logs the last n steps of the call's timeline (what and detail only: never
// the agent or the caller).
func (c *Controller) logSteps(ctx context.Context, x Call, n int) {
	if n <= 0 {
		return
	}
	log := c.log(ctx)
	for _, s := range x.Steps[max(0, len(x.Steps)-n):] {
		log.Info("call "+s.What, "tenant", x.TenantID, "service", x.ServiceID, "call", ref(x.ID), "phase", string(x.Phase), "detail", s.Detail)
	}
}

// run performs actions in order. A call that is gone ends it; any other failure is
// logged and the call made due soon, so the reconciler redoes or skips the step.
func (c *Controller) run(ctx context.Context, call Call, acts []action) {
	log := c.log(ctx)
	retry := false
	for _, a := range acts {
		err := a.do(ctx)
		switch {
		case err == nil:
		case errors.Is(err, fault.ErrNotFound) && a.gone != nil:
			if gerr := a.gone(ctx); gerr != nil {
				log.Warn("call step after the call was gone failed", "tenant", call.TenantID, "call", ref(call.ID), "step", a.what, "err", gerr)
			}
		case errors.Is(err, fault.ErrNotFound):
			log.Info("call step found nothing to act on", "tenant", call.TenantID, "call", ref(call.ID), "step", a.what)
		default:
			log.Warn("call step failed; the reconciler takes it up", "tenant", call.TenantID, "call", ref(call.ID), "step", a.what,
				"permanent", fault.IsPermanent(err), "err", err)
			retry = true
		}
	}
	if retry {
		c.soon(ctx, call.TenantID, call.ID)
	}
}

// soon makes a call due for the reconciler now.
func (c *Controller) soon(ctx context.Context, tenantID, key string) {
	at := c.now().Add(RetrySoon)
	if _, err := c.store.UpdateCall(ctx, tenantID, key, func(x *Call) error {
		if !x.Open() && !x.hasLiveLegs() {
			return errSkip
		}
		x.Due = at
		x.reschedule(at)
		return nil
	}); err != nil && !errors.Is(err, errSkip) {
		c.log(ctx).Warn("call not marked for the reconciler", "tenant", tenantID, "call", ref(key), "err", err)
	}
}

// reschedule sets NextAt to the earliest of the step deadline, the next keep-alive
// and the deadlines of live legs.
func (x *Call) reschedule(now time.Time) {
	next := time.Time{}
	consider := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if x.Open() {
		consider(x.Due)
		if !x.AnsweredAt.IsZero() && x.GraphID != "" {
			consider(x.KeepAliveAt)
		}
	}
	for i := range x.Legs {
		if x.Legs[i].pending() {
			consider(x.Legs[i].Deadline)
		}
	}
	if !x.Open() && next.IsZero() {
		x.Due = time.Time{}
	}
	x.NextAt = next
}

func (x *Call) hasLiveLegs() bool {
	for i := range x.Legs {
		if x.Legs[i].pending() {
			return true
		}
	}
	return false
}

// cancelLeg marks a leg hung up by us; until the platform confirms, the reconciler
// hangs it up again after LegGrace.
func (x *Call) cancelLeg(l *Leg, now time.Time, what, why string) {
	l.State, l.At, l.Deadline = LegCancelled, now, now.Add(LegGrace)
	x.step(now, what, l.AgentID, why)
}

// end closes the call; a connected agent goes to after-call work (routing decides
// how long).
func (x *Call) end(now time.Time, reason string) {
	if x.AgentJoined && x.Agent != "" {
		x.step(now, "afterCallWork", x.Agent, "")
	}
	x.Phase, x.EndedAt, x.EndReason, x.Due = PhaseEnded, now, reason, time.Time{}
	x.Media = Media{}
	x.step(now, "ended", "", reason)
}

// prompt starts a prompt of kind in the call (its clientContext is unique per call);
// the timeline notes the greeting, the start of music and each announcement.
func (x *Call) prompt(now time.Time, kind MediaKind) string {
	if kind == MediaGreeting || (kind == MediaMusic && x.Media.Kind != MediaMusic) {
		x.step(now, string(kind), "", "")
	}
	x.Media.Seq++
	x.Media = Media{Kind: kind, Context: string(kind) + ":" + strconv.Itoa(x.Media.Seq), Since: now, Seq: x.Media.Seq}
	return x.Media.Context
}

// callback is the callback URI of the call (leg < 0) or of one of its legs.
func (c *Controller) callback(key string, leg int) string {
	return teams.CallbackURI(c.webhook, teams.Hint{Call: key, Leg: leg})
}

// Handle applies one authenticated notification batch from the calling webhook.
// Events are applied in order; an event that fails permanently is logged and
// skipped (no redelivery can fix it); a transient failure stops the batch and is
// returned, so the webhook answers 500 and the platform delivers it again — the
// events already applied then change nothing.
func (c *Controller) Handle(ctx context.Context, b teams.Batch) error {
	tid := strings.ToLower(b.TenantID)
	if !tenant.IsGUID(tid) {
		return fault.Invalid("tid", "the token's tenant is not a GUID")
	}
	for _, ev := range b.Events {
		err := c.handle(ctx, tid, b.Hint, ev)
		if err == nil {
			continue
		}
		if fault.IsPermanent(err) || errors.Is(err, fault.ErrNotFound) || errors.Is(err, fault.ErrConflict) {
			c.log(ctx).Warn("call notification skipped", "tenant", tid, "event", ev, "err", err)
			continue
		}
		return err
	}
	return nil
}

func (c *Controller) handle(ctx context.Context, tenantID string, h teams.Hint, ev teams.Event) error {
	key := h.Call
	if key == "" {
		key = ev.CallID
	}
	if w, ok := c.writing.Load(tenantID + "/" + key); ok {
		// The call was answered before its first write landed (a slow store): its
		// notifications wait for the write rather than find no call.
		select {
		case <-w.(chan struct{}):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	switch {
	case h.Call == "" && ev.Kind == teams.KindIncoming:
		return c.incoming(ctx, tenantID, ev)
	case h.Leg >= 0:
		return c.legEvent(ctx, tenantID, h.Call, h.Leg, ev)
	}
	return c.callEvent(ctx, tenantID, key, ev)
}

// get reads a call; a call we do not know is (nil, nil).
func (c *Controller) get(ctx context.Context, tenantID, key string) (*Call, error) {
	call, err := c.store.GetCall(ctx, tenantID, key)
	if errors.Is(err, fault.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get call: %w", err)
	}
	return &call, nil
}

// Call returns one call, for its timeline.
func (c *Controller) Call(ctx context.Context, tenantID, key string) (Call, error) {
	return c.store.GetCall(ctx, tenantID, key)
}
