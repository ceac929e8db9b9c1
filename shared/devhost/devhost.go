// Package devhost is the local runner: it plays the Azure Functions host for a custom
// handler where Core Tools (func start) cannot be installed.
//
// It reads host.json and <Name>/function.json under an app root, waits until the
// handler answers GET / (as the host does), then talks to the handler over HTTP with
// the host's envelope: it fires timerTrigger functions on their NCRONTAB schedules,
// delivers serviceBusTrigger functions from in-process queues (DeliveryCount,
// redelivery on non-2xx, dead-lettering after MaxDeliveryCount, scheduled messages,
// duplicate detection, one consumer per session) and forwards httpTrigger requests raw
// from its own front end (enableForwardingHttpRequest). Its queues implement
// queue.Sender, so the app's code can send to them in-process; like the servicebus
// adapter they put the W3C trace context of the sender's context on each message
// (Diagnostic-Id, traceparent, tracestate), which reaches the handler in the envelope's
// ApplicationProperties/UserProperties as the host delivers it.
//
// The front end answers, like Core Tools:
//   - /{routePrefix}/{route}: requests matching a declared httpTrigger route and method
//     are forwarded raw to the handler at the same path; anything else is 404. No
//     function key is required; "code" and x-functions-key pass through untouched.
//   - POST /admin/functions/{Name} with {"input":"..."}: invokes a non-HTTP function
//     once and answers 202. A Service Bus function gets the input as a message on its
//     queue ("sessionId" and "messageId" may be added to the body; a session-enabled
//     queue needs "sessionId", else 400; a traceparent header makes the message continue
//     that trace); a timer fires now (409 while a run of it is outstanding).
//
// What it does not do: storage-backed schedule monitoring (IsPastDue is always false),
// topics, output bindings other than http, function keys (none are required, as with
// Core Tools), and the non-forwarded HTTP envelope.
package devhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a Host. AppRoot and HandlerURL are required.
type Options struct {
	// AppRoot holds host.json and the function folders: AppRoot/functions/<Name>/ when
	// that folder exists (repository layout), else AppRoot/<Name>/ (deployment layout).
	AppRoot string
	// HandlerURL is where the custom handler listens, e.g. "http://127.0.0.1:8080".
	HandlerURL string
	// Listen is the front end's address; default "127.0.0.1:7071" (Core Tools' port).
	// Use "127.0.0.1:0" for a free port and read it from Addr.
	Listen string
	// Setting resolves %Name% references in function.json; nil means os.Getenv. A
	// referenced setting that is empty makes New fail.
	Setting func(string) string
	// Logger receives what the runner does, never message bodies; nil discards.
	Logger *slog.Logger
	// MaxDeliveryCount is the deliveries after which a failing message is
	// dead-lettered; default 10, as Service Bus.
	MaxDeliveryCount int
	// Now is the clock; nil means time.Now. Schedules, scheduled messages, redelivery
	// backoff and the duplicate window all follow it.
	Now func() time.Time

	// DuplicateWindow is how long a MessageId is remembered per queue; default 10 min.
	DuplicateWindow time.Duration
	// RedeliveryDelay is how long an abandoned message waits before redelivery;
	// default 1 s. (Service Bus redelivers at once; a pause keeps local logs readable.)
	RedeliveryDelay time.Duration
	// ShutdownTimeout bounds how long Run waits for in-flight invocations once its
	// context is done before cancelling them; default 30 s.
	ShutdownTimeout time.Duration
	// Extra serves requests under /sim/ on the front end (the local runner's call
	// simulator); nil: those paths are routed like any other.
	Extra http.Handler
	// DoubleEncodeStrings sends string values in Data and Metadata JSON-encoded twice
	// ("\"hello\""), which is what the host's code does; by default they are sent
	// once, as a capture of the host shows. Handlers must accept both.
	DoubleEncodeStrings bool
}

// Host is a local Functions host. Create it with New and start it with Run.
// All methods are safe for concurrent use.
type Host struct {
	opts       Options
	cfg        HostConfig
	funcs      []*function          // sorted by name
	byName     map[string]*function // lower-case name
	handlerURL *url.URL
	transport  *http.Transport
	client     *http.Client
	log        *slog.Logger
	poll       time.Duration // longest sleep between clock checks (for fake clocks)

	mu     sync.Mutex // guards queues and seq
	queues map[string]*sbQueue
	seq    int64
	wake   chan struct{}

	invMu        sync.Mutex // guards closing and invocations.Add
	closing      bool
	invocations  sync.WaitGroup
	invokeCtx    context.Context
	cancelInvoke context.CancelFunc

	started atomic.Bool
	addr    atomic.Pointer[string]
	ready   chan struct{}
}

// New reads host.json and every function.json under opts.AppRoot, resolves %Setting%
// references and validates them. Errors name the file and field at fault (unknown
// binding type, bad schedule, missing queueName, missing setting, ...). New does not
// listen or start anything; Run does.
func New(opts Options) (*Host, error) {
	if opts.AppRoot == "" {
		return nil, errors.New("devhost: Options.AppRoot is required")
	}
	u, err := url.Parse(strings.TrimSuffix(opts.HandlerURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("devhost: Options.HandlerURL %q: want http://host:port", opts.HandlerURL)
	}
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:7071"
	}
	if opts.Setting == nil {
		opts.Setting = os.Getenv
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxDeliveryCount <= 0 {
		opts.MaxDeliveryCount = 10
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.DuplicateWindow <= 0 {
		opts.DuplicateWindow = 10 * time.Minute
	}
	if opts.RedeliveryDelay <= 0 {
		opts.RedeliveryDelay = time.Second
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 30 * time.Second
	}
	cfg, err := readHostConfig(opts.AppRoot)
	if err != nil {
		return nil, fmt.Errorf("devhost: %w", err)
	}
	funcs, err := readFunctions(opts.AppRoot, opts.Setting)
	if err != nil {
		return nil, fmt.Errorf("devhost: %w", err)
	}
	h := &Host{
		opts:       opts,
		cfg:        cfg,
		funcs:      funcs,
		byName:     map[string]*function{},
		handlerURL: u,
		log:        opts.Logger.With("component", "devhost"),
		poll:       time.Second,
		queues:     map[string]*sbQueue{},
		wake:       make(chan struct{}, 1),
		ready:      make(chan struct{}),
	}
	for _, fn := range funcs {
		h.byName[strings.ToLower(fn.Name)] = fn
		if fn.Trigger == HTTPTrigger && !cfg.ForwardHTTP {
			return nil, fmt.Errorf("devhost: host.json: customHandler.enableForwardingHttpRequest: must be true for HTTP function %s (the runner only forwards raw requests)", fn.Name)
		}
	}
	h.transport = http.DefaultTransport.(*http.Transport).Clone()
	h.client = &http.Client{Transport: h.transport}
	h.invokeCtx, h.cancelInvoke = context.WithCancel(context.Background())
	return h, nil
}

// HostConfig returns what was read from host.json.
func (h *Host) HostConfig() HostConfig { return h.cfg }

// Functions returns the parsed functions, sorted by name.
func (h *Host) Functions() []Function {
	out := make([]Function, len(h.funcs))
	for i, fn := range h.funcs {
		out[i] = fn.Function
		out[i].Methods = append([]string(nil), fn.Methods...)
	}
	return out
}

// Addr returns the front end's address (host:port) once Run is listening, else "".
func (h *Host) Addr() string {
	if a := h.addr.Load(); a != nil {
		return *a
	}
	return ""
}

// Ready is closed once Run listens and the handler has answered GET /, that is when
// timers and deliveries start. It stays open if Run fails first.
func (h *Host) Ready() <-chan struct{} { return h.ready }

// Run listens on Options.Listen, waits for the handler to answer GET / (at most 30 s),
// then serves the front end, fires timers and delivers queued messages until ctx is
// done. On ctx done it stops taking work, waits for in-flight invocations (at most
// ShutdownTimeout, then cancels them) and returns nil. It returns an error if it cannot
// listen, the handler never answers, or the front end fails. Run may be called once.
func (h *Host) Run(ctx context.Context) error {
	if !h.started.CompareAndSwap(false, true) {
		return errors.New("devhost: Run called twice")
	}
	defer h.cancelInvoke()
	ln, err := net.Listen("tcp", h.opts.Listen)
	if err != nil {
		return fmt.Errorf("devhost: listen: %w", err)
	}
	addr := ln.Addr().String()
	h.addr.Store(&addr)
	srv := &http.Server{Handler: h.frontEnd(), ReadHeaderTimeout: 30 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	h.log.Info("local functions host starting", "addr", addr, "handler", h.handlerURL.String(),
		"executable", h.cfg.ExecutablePath, "forwardHttp", h.cfg.ForwardHTTP, "routePrefix", h.cfg.RoutePrefix,
		"maxConcurrentCalls", h.cfg.MaxConcurrentCalls, "maxConcurrentSessions", h.cfg.MaxConcurrentSessions)
	for _, fn := range h.funcs {
		h.log.Info("function loaded", "function", fn.Name, "trigger", fn.Trigger,
			"schedule", fn.Schedule, "queue", fn.Queue, "sessions", fn.Sessions, "route", fn.Route)
	}

	loopCtx, stopLoops := context.WithCancel(ctx)
	var loops sync.WaitGroup
	runErr := h.waitForHandler(ctx)
	if ctx.Err() != nil {
		runErr = nil // stopped while waiting: a clean stop
	} else if runErr == nil {
		h.startLoops(loopCtx, &loops)
		close(h.ready)
		h.log.Info("local functions host running")
		select {
		case <-ctx.Done():
		case err := <-served:
			runErr = fmt.Errorf("devhost: front end: %w", err)
		}
	}

	h.log.Info("local functions host stopping")
	stopLoops()
	loops.Wait()
	h.drain(srv)
	h.log.Info("local functions host stopped")
	return runErr
}

// startLoops starts one goroutine per timer and the message dispatcher.
func (h *Host) startLoops(ctx context.Context, loops *sync.WaitGroup) {
	start := h.now()
	for _, fn := range h.funcs {
		if fn.Trigger != TimerTrigger {
			continue
		}
		// As the host's schedule monitor does for a timer without stored status.
		fn.mu.Lock()
		fn.status = scheduleStatus{Next: fn.schedule.Next(start), LastUpdated: start}
		fn.mu.Unlock()
		loops.Go(func() { h.runTimer(ctx, fn, start) })
	}
	loops.Go(func() { h.runDispatcher(ctx) })
}

// drain stops the front end and waits for in-flight requests and invocations, at most
// ShutdownTimeout; then it cancels what is left and waits for it to end.
func (h *Host) drain(srv *http.Server) {
	deadline, cancel := context.WithTimeout(context.Background(), h.opts.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(deadline); err != nil {
		srv.Close()
	}
	h.invMu.Lock()
	h.closing = true
	h.invMu.Unlock()
	done := make(chan struct{})
	go func() { h.invocations.Wait(); close(done) }()
	select {
	case <-done:
	case <-deadline.Done():
		h.log.Warn("invocations still running at the shutdown timeout: cancelling them")
		h.cancelInvoke()
		<-done
	}
	h.transport.CloseIdleConnections()
}

func (h *Host) now() time.Time { return h.opts.Now().UTC() }
