// Package funchost speaks the Azure Functions custom-handler protocol, in one place, so
// the rest of the code sees typed triggers and plain errors.
//
// The contract with the Functions host (see docs/PLATFORM.md):
//
//   - GET / (and HEAD /) answers 200 at once: the host polls it for readiness.
//   - POST /{FunctionName} carries a timer or Service Bus invocation as the envelope
//     {"Data":{<binding>:value},"Metadata":{...}}. It is decoded tolerantly (see Message and
//     Timer) and handed to the registered TimerHandler or MessageHandler.
//   - The answer is 200 {"Outputs":{},"Logs":[],"ReturnValue":null} on success and 500 on
//     a transient error, which makes the host abandon the message so Service Bus redelivers
//     it. A permanent error (fault.IsPermanent) or an envelope that cannot be decoded is
//     parked in Options.Parker and answered 200, so it is not retried; for a timer it is only
//     logged. If parking fails the answer is 500, so nothing is lost.
//   - Requests forwarded raw by the host (HTTP triggers with enableForwardingHttpRequest,
//     under /api/) go to the http.Handler registered for their ServeMux pattern. Handlers
//     answer with WriteJSON and WriteError.
//
// Every invocation passes through one ordered list of middleware (see New): invocation
// logger, response, panic recovery, timeout, parking, envelope decoding (with the trace
// context) and deduplication by MessageId. Every log line of an invocation carries
// invocation_id and function, and, from decoding on, trace_id and span_id; request
// bodies, headers, query strings and raw paths are never logged.
//
// Trace context (W3C, package tracecontext): an invocation continues the trace of its
// Service Bus message (application property traceparent or Diagnostic-Id, as the app's
// senders write them), else of the request's traceparent header (a forwarded HTTP
// request keeps its caller's), else starts a new one. Its span, a child of that, is in
// the handler's context, so every message sent under that context carries the same
// trace id.
//
// Register functions before serving; after that an App is safe for concurrent use.
package funchost

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/teamscc/teamscc/shared/parking"
)

// Function kinds, as Function.Kind reports them.
const (
	KindTimer      = "timer"      // a timerTrigger function
	KindServiceBus = "serviceBus" // a serviceBusTrigger function
	KindHTTP       = "http"       // an httpTrigger function with enableForwardingHttpRequest
)

// InvocationHeader is the header in which the host sends the invocation id.
const InvocationHeader = "X-Azure-Functions-InvocationId"

// TimerHandler runs one timer invocation. An error fails the run (500); the host does not
// retry a timer, the next schedule runs. A permanent error is only logged.
type TimerHandler func(ctx context.Context, t Timer) error

// MessageHandler handles one Service Bus message. nil completes the message; a transient
// error makes Service Bus redeliver it; a permanent error (fault.Permanent, *fault.FieldError)
// parks it with its reason and completes it. It may be called concurrently.
type MessageHandler func(ctx context.Context, m Message) error

// Options configures an App. The zero value works for an App without Service Bus functions.
type Options struct {
	Logger  *slog.Logger     // JSON logger; nil = discard
	Parker  parking.Store    // where permanent failures go; required when any ServiceBus function is registered
	Now     func() time.Time // clock for ParkedAt and durations; nil = time.Now
	Timeout time.Duration    // per-invocation timeout for timer and Service Bus functions; 0 = none
	// HTTPTimeout is the deadline of an HTTP invocation's context; 0 = none. A handler
	// that gives up on it answers 503 (WriteError maps context.DeadlineExceeded).
	HTTPTimeout time.Duration
	DedupSize   int // how many recently completed MessageIds to remember; 0 (or less) = 4096
}

// Function describes one registration, for a drift test against functions/*/function.json.
type Function struct {
	Name    string // the function folder name
	Kind    string // KindTimer, KindServiceBus or KindHTTP
	Pattern string // the ServeMux pattern; KindHTTP only
}

// App is the custom handler: an http.Handler serving the host. Create it with New.
type App struct {
	log     *slog.Logger
	parker  parking.Store
	now     func() time.Time
	timeout time.Duration
	httpTO  time.Duration
	done    *recent // completed MessageIds, keyed by function

	mux   *http.ServeMux
	funcs []Function
	kinds map[string]string // function name → kind
	serve step
}

// entry is one registration with its handler.
type entry struct {
	Function
	onTimer   TimerHandler
	onMessage MessageHandler
	http      http.Handler
}

// New returns an App with no functions registered.
func New(opts Options) *App {
	a := &App{
		log:     opts.Logger,
		parker:  opts.Parker,
		now:     opts.Now,
		timeout: opts.Timeout,
		httpTO:  opts.HTTPTimeout,
		mux:     http.NewServeMux(),
		kinds:   map[string]string{},
	}
	if a.log == nil {
		a.log = discard
	}
	if a.now == nil {
		a.now = time.Now
	}
	size := opts.DedupSize
	if size <= 0 {
		size = 4096
	}
	a.done = newRecent(size)

	// Every invocation, trigger or HTTP, passes through this list, outermost first.
	// Each middleware passes through the kinds it does not apply to.
	a.serve = chain(a.dispatch,
		a.logInvocation, // invocation logger into the context; one line per invocation with status and duration
		a.respond,       // error → answer: triggers 200 envelope / 500; HTTP 500 JSON if nothing was written
		a.recoverPanics, // a panic becomes an error (so 500), and the app keeps serving
		a.withTimeout,   // Options.Timeout (triggers), Options.HTTPTimeout (HTTP)
		a.park,          // permanent failure → parked and acknowledged (timers: logged)
		a.decode,        // envelope → Timer or Message, and the trace context (trace.go); undecodable → permanent error
		a.dedup,         // a MessageId that already completed is acknowledged without running the handler
	)

	// Why: the host polls GET / until any answer; answer at once, without logging.
	a.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {})
	a.mux.HandleFunc("/", a.notFound)
	return a
}

// Timer registers h for the timer function named function (its folder name).
// It panics on an invalid or already registered name or a nil handler.
func (a *App) Timer(function string, h TimerHandler) {
	if h == nil {
		panic("funchost: nil TimerHandler for " + function)
	}
	a.register(&entry{Function: Function{Name: function, Kind: KindTimer}, onTimer: h})
}

// ServiceBus registers h for the Service Bus function named function (its folder name).
// It panics on an invalid or already registered name, a nil handler, or when
// Options.Parker is nil: permanent failures would have nowhere to go.
func (a *App) ServiceBus(function string, h MessageHandler) {
	if h == nil {
		panic("funchost: nil MessageHandler for " + function)
	}
	if a.parker == nil {
		panic("funchost: Options.Parker is required for Service Bus function " + function)
	}
	a.register(&entry{Function: Function{Name: function, Kind: KindServiceBus}, onMessage: h})
}

// HTTP registers h for requests matching pattern (net/http ServeMux form, e.g.
// "GET /api/tenants/{tenantId}/presence/health"); function is the folder name of the HTTP
// function it belongs to, and may be given for several patterns. The pattern, not the raw
// path, is what gets logged. It panics on an invalid name, a name used by a trigger, a nil
// handler, or a pattern ServeMux rejects.
func (a *App) HTTP(function, pattern string, h http.Handler) {
	if h == nil {
		panic("funchost: nil http.Handler for " + function)
	}
	a.register(&entry{Function: Function{Name: function, Kind: KindHTTP, Pattern: pattern}, http: h})
}

func (a *App) register(fn *entry) {
	if !validName(fn.Name) {
		panic(fmt.Sprintf("funchost: invalid function name %q", fn.Name))
	}
	if kind, ok := a.kinds[fn.Name]; ok && (kind != KindHTTP || fn.Kind != KindHTTP) {
		panic(fmt.Sprintf("funchost: function %q registered twice", fn.Name))
	}
	pattern := fn.Pattern
	if fn.Kind != KindHTTP {
		pattern = "POST /" + fn.Name
	}
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) { a.invoke(fn, w, r) })
	a.kinds[fn.Name] = fn.Kind
	a.funcs = append(a.funcs, fn.Function)
}

// validName reports whether s is a valid Azure Functions name: a letter, then letters,
// digits, '-' or '_', at most 127 characters.
func validName(s string) bool {
	if s == "" || len(s) > 127 {
		return false
	}
	for i, c := range s {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '-' || c == '_'):
		default:
			return false
		}
	}
	return true
}

// Functions returns every registration in registration order.
func (a *App) Functions() []Function { return slices.Clone(a.funcs) }

// ServeHTTP serves the host: readiness, trigger invocations and forwarded HTTP requests.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// notFound answers 404 to anything no function is registered for.
func (a *App) notFound(w http.ResponseWriter, r *http.Request) {
	// Why: a POST /{Name} that matches no function means function.json and the code
	// disagree, and the host will fail every invocation of it. Name it in the log; other
	// paths may hold customer identifiers and are not logged.
	if name := strings.TrimPrefix(r.URL.Path, "/"); r.Method == http.MethodPost && validName(name) {
		a.log.Error("no function registered under this name",
			slog.String("invocation_id", r.Header.Get(InvocationHeader)), slog.String("function", name))
	}
	WriteJSON(w, http.StatusNotFound, errorBody{errorDetail{Code: "not_found", Message: "no such function or route"}})
}

// invocation is one request to one function, as it passes through the middleware.
type invocation struct {
	fn  *entry
	id  string       // host invocation id
	log *slog.Logger // carries invocation_id and function; from decode on, trace_id and span_id
	w   *statusWriter
	r   *http.Request

	body     []byte // trigger request body (the envelope)
	timer    Timer
	msg      Message
	decoded  bool   // msg.Body was decoded from the envelope
	dedupKey string // "" when the message cannot be deduplicated
}

func (a *App) invoke(fn *entry, w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get(InvocationHeader)
	if id == "" {
		id = newInvocationID()
	}
	inv := &invocation{
		fn:  fn,
		id:  id,
		log: a.log.With(slog.String("invocation_id", id), slog.String("function", fn.Name)),
		w:   &statusWriter{ResponseWriter: w},
		r:   r,
	}
	_ = a.serve(r.Context(), inv) // the middleware has answered and logged
}

// dispatch is the innermost step: it calls the registered handler.
func (a *App) dispatch(ctx context.Context, inv *invocation) error {
	switch inv.fn.Kind {
	case KindTimer:
		return inv.fn.onTimer(ctx, inv.timer)
	case KindServiceBus:
		return inv.fn.onMessage(ctx, inv.msg)
	default:
		inv.fn.http.ServeHTTP(inv.w, inv.r.WithContext(ctx))
		return nil
	}
}

type loggerKey struct{}

var discard = slog.New(slog.DiscardHandler)

// Logger returns the invocation's logger (with invocation_id and function attributes)
// carried by ctx, or a logger that discards everything. Never nil.
func Logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok && l != nil {
		return l
	}
	return discard
}

// newInvocationID returns a random UUID (version 4), for requests that came without one.
func newInvocationID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// statusWriter remembers the status written, for the log line and the panic answer.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer (Flush, deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
