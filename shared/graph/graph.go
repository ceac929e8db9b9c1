// Package graph reads Teams presence from Microsoft Graph (msgraph-sdk-go) with the
// tenant's presence accounts (ROPC, delegated Presence.Read.All) or this app's own
// application permission, and implements presence.Reader. It is also the calling
// platform of the call controller (calls.Platform, calls.go): Graph's call API with
// the app's application credential. And it reads the tenants' directories for
// directory.Graph (directory.go): Teams' members by delta query, users, groups.
//
// msgraph and azidentity types stay inside this package: nothing msgraph-typed is
// exported. The package also exports Fake (fakegraph.go), an in-process fake of Entra
// and Graph for tests and benchmarks of other packages.
package graph

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	abs "github.com/microsoft/kiota-abstractions-go"
	absauth "github.com/microsoft/kiota-abstractions-go/authentication"
	kiotaazure "github.com/microsoft/kiota-authentication-azure-go"
	khttp "github.com/microsoft/kiota-http-go"
	msgraphsdk "github.com/microsoftgraph/msgraph-sdk-go"
	core "github.com/microsoftgraph/msgraph-sdk-go-core"
	"github.com/microsoftgraph/msgraph-sdk-go/communications"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/teamscc/teamscc/shared/presence"
)

// Defaults of Options.
const (
	DefaultAuthorityHost = "https://login.microsoftonline.com/"
	DefaultBaseURL       = "https://graph.microsoft.com/v1.0"
	DefaultMaxRetries    = 4
	DefaultMaxRetryWait  = 30 * time.Second
	// DefaultAttemptTimeout bounds one HTTP attempt to Graph when Options.HTTPClient
	// has no Timeout of its own: Graph answers in well under a second, and a stalled
	// attempt must not hold an invocation (a timed-out attempt is fault.ErrUnavailable).
	DefaultAttemptTimeout = 15 * time.Second
)

// GraphScope is the scope every token is requested for.
const GraphScope = "https://graph.microsoft.com/.default"

// graphHosts are the Graph host names tokens are always sent to (the SDK's list).
var graphHosts = []string{"graph.microsoft.com", "graph.microsoft.us", "dod-graph.microsoft.us",
	"graph.microsoft.de", "microsoftgraph.chinacloudapi.cn", "canary.graph.microsoft.com"}

// Options configure a Reader.
type Options struct {
	// ClientID is this app's (multi-tenant) registration: the public client of ROPC
	// sign-ins with presence accounts, and the confidential client of application mode.
	ClientID string
	// ClientSecret is used in application mode only (Presence.Read.All application
	// permission). Without it CredApplication is refused with AuthError "NotConfigured".
	ClientSecret string
	// AuthorityHost is Entra's authority host; default DefaultAuthorityHost.
	AuthorityHost string
	// BaseURL is Graph's base URL; default DefaultBaseURL. Its host is added to the
	// hosts bearer tokens are sent to.
	BaseURL string
	// HTTPClient supplies the transport for Entra and Graph (tests: Fake.Client()).
	// Its Timeout, if set, bounds each Graph attempt (not the retries together);
	// default transport: a clone of http.DefaultTransport.
	HTTPClient *http.Client
	// DisableInstanceDiscovery skips Entra instance discovery (fake authorities,
	// private clouds).
	DisableInstanceDiscovery bool
	// MaxRetries is the number of retries of one Graph request answered 429 or 5xx;
	// default DefaultMaxRetries, negative for none. It also bounds azidentity's
	// retries of token requests (which back off under azcore's own policy).
	MaxRetries int
	// MaxRetryWait caps one wait between retries (Graph and token requests); default
	// DefaultMaxRetryWait.
	MaxRetryWait time.Duration
	// Logger receives retry and credential events (never secrets or user ids);
	// default: discard.
	Logger *slog.Logger

	// sleep replaces the retry wait in tests (nil: a timer honouring ctx).
	sleep func(ctx context.Context, d time.Duration) error
	// jitter replaces the random source of backoff jitter in tests (nil: math/rand).
	jitter func() float64
}

// Reader reads presence from Graph and acts on Teams calls through Graph's call
// API. It is safe for concurrent use.
type Reader struct {
	opts       Options
	log        *slog.Logger
	validHosts []string
	client     *msgraphsdk.GraphBaseServiceClient

	mu    sync.Mutex
	creds map[credKey]*credEntry
}

var _ presence.Reader = (*Reader)(nil)

type credKey struct {
	tenant string
	kind   presence.CredentialKind
}

// credEntry is one cached credential. fp is sha256(username, password): a changed
// password (or username) replaces the entry with a new credential.
type credEntry struct {
	fp   [sha256.Size]byte
	auth absauth.AuthenticationProvider
}

// clientMu serialises building SDK clients: the first construction registers the
// SDK's serialisers in process-wide registries.
var clientMu sync.Mutex

// New returns a Reader. It makes no network call.
func New(opts Options) (*Reader, error) {
	if opts.ClientID == "" {
		return nil, errors.New("graph: Options.ClientID is required")
	}
	if opts.AuthorityHost == "" {
		opts.AuthorityHost = DefaultAuthorityHost
	}
	if !strings.HasSuffix(opts.AuthorityHost, "/") {
		opts.AuthorityHost += "/"
	}
	if opts.BaseURL == "" {
		opts.BaseURL = DefaultBaseURL
	}
	opts.BaseURL = strings.TrimRight(opts.BaseURL, "/")
	base, err := url.Parse(opts.BaseURL)
	if err != nil || base.Hostname() == "" || (base.Scheme != "https" && base.Scheme != "http") {
		return nil, fmt.Errorf("graph: invalid BaseURL %q", opts.BaseURL)
	}
	if au, err := url.Parse(opts.AuthorityHost); err != nil || au.Scheme != "https" || au.Host == "" {
		return nil, fmt.Errorf("graph: invalid AuthorityHost %q (must be https)", opts.AuthorityHost)
	}
	if opts.MaxRetries == 0 {
		opts.MaxRetries = DefaultMaxRetries
	} else if opts.MaxRetries < 0 {
		opts.MaxRetries = 0
	}
	if opts.MaxRetryWait <= 0 {
		opts.MaxRetryWait = DefaultMaxRetryWait
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	var next http.RoundTripper
	attemptTimeout := DefaultAttemptTimeout
	if opts.HTTPClient != nil {
		next = opts.HTTPClient.Transport
		if opts.HTTPClient.Timeout > 0 {
			attemptTimeout = opts.HTTPClient.Timeout
		}
	}
	if next == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ForceAttemptHTTP2 = true
		t.MaxIdleConnsPerHost = 64
		next = t
	}
	retry := &retryTransport{
		next:           next,
		maxRetries:     opts.MaxRetries,
		maxWait:        opts.MaxRetryWait,
		baseWait:       time.Second,
		attemptTimeout: attemptTimeout,
		sleep:          opts.sleep,
		jitter:         opts.jitter,
		log:            log,
	}
	// The kiota pipeline without its retry handler (ours sits below it, as the parent
	// transport, so retries are not doubled) and without its request-compression
	// handler: our bodies are at most 650 ids (~26 KB of mostly random hex, which
	// gzip barely halves), and the handler's fallback on 415 resends the request
	// against the tenant's throttling budget.
	graphOpts := msgraphsdk.GetDefaultClientOptions()
	httpClient := &http.Client{
		Transport: khttp.NewCustomTransportWithParentTransport(retry,
			core.NewGraphTelemetryHandler(&graphOpts),
			khttp.NewUserAgentHandler(),
		),
	}

	r := &Reader{
		opts:       opts,
		log:        log,
		validHosts: append(append([]string(nil), graphHosts...), strings.ToLower(base.Hostname())),
		creds:      map[credKey]*credEntry{},
	}
	adapter, err := msgraphsdk.NewGraphRequestAdapterWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(
		credAuthProvider{}, nil, nil, httpClient)
	if err != nil {
		return nil, fmt.Errorf("graph: request adapter: %w", err)
	}
	adapter.SetBaseUrl(opts.BaseURL)
	clientMu.Lock()
	// NewGraphBaseServiceClient with a nil backing-store factory: NewGraphServiceClient
	// would assign the SDK's global backing-store factory on every construction, a
	// data race with requests in flight on other Readers.
	r.client = msgraphsdk.NewGraphBaseServiceClient(adapter, nil)
	clientMu.Unlock()
	return r, nil
}

// ReadPresences implements presence.Reader: POST /communications/getPresencesByUserId.
func (r *Reader) ReadPresences(ctx context.Context, tenantID string, cred presence.Credential, userIDs []string) ([]presence.Observation, error) {
	if len(userIDs) == 0 {
		return nil, nil
	}
	if len(userIDs) > presence.MaxIDsPerRequest {
		return nil, fmt.Errorf("graph: %d ids in one request, at most %d", len(userIDs), presence.MaxIDsPerRequest)
	}
	auth, err := r.auth(tenantID, cred)
	if err != nil {
		return nil, err
	}
	body := communications.NewGetPresencesByUserIdPostRequestBody()
	body.SetIds(userIDs)
	var answer struct {
		Value []presenceJSON `json:"value"`
	}
	cfg := &communications.GetPresencesByUserIdRequestBuilderPostRequestConfiguration{
		Options: []abs.RequestOption{decodeInto(&answer)},
	}
	_, err = r.client.Communications().GetPresencesByUserId().
		PostAsGetPresencesByUserIdPostResponse(withAuth(ctx, auth), body, cfg)
	if err != nil {
		return nil, r.classify(ctx, "getPresencesByUserId", err, r.secrets(cred, "")...)
	}
	out := make([]presence.Observation, 0, len(answer.Value))
	for _, p := range answer.Value {
		if p.ID != "" {
			out = append(out, p.observation(""))
		}
	}
	return out, nil
}

// ReadPresence implements presence.Reader: GET /users/{id-or-upn}/presence.
func (r *Reader) ReadPresence(ctx context.Context, tenantID string, cred presence.Credential, user string) (presence.Observation, error) {
	if strings.TrimSpace(user) == "" {
		return presence.Observation{}, errors.New("graph: empty user")
	}
	auth, err := r.auth(tenantID, cred)
	if err != nil {
		return presence.Observation{}, err
	}
	var answer presenceJSON
	cfg := &users.ItemPresenceRequestBuilderGetRequestConfiguration{
		Options: []abs.RequestOption{decodeInto(&answer)},
	}
	_, err = r.client.Users().ByUserId(user).Presence().Get(withAuth(ctx, auth), cfg)
	if err != nil {
		return presence.Observation{}, r.classify(ctx, "presence", err, r.secrets(cred, user)...)
	}
	return answer.observation(user), nil
}

// presenceJSON is the part of Graph's presence resource we use.
type presenceJSON struct {
	ID           string `json:"id"`
	Availability string `json:"availability"`
	Activity     string `json:"activity"`
}

func (p presenceJSON) observation(fallbackID string) presence.Observation {
	id := p.ID
	if id == "" {
		id = fallbackID
	}
	return presence.Observation{
		UserID:       id,
		Availability: presence.ParseAvailability(p.Availability),
		Activity:     presence.ParseActivity(p.Activity),
	}
}

// decodeInto is a kiota response handler that decodes a successful answer into v
// with encoding/json. The SDK still builds, authenticates and sends the request;
// only its generic parse tree is skipped, which costs ~40 ms of CPU and ~90,000
// allocations per 650-presence answer (most of a presence refresh on 2 cores).
// Failed answers become *statusError. With v nil only the status is checked and
// the body is dropped.
func decodeInto(v any) abs.RequestOption {
	opt := abs.NewRequestHandlerOption()
	opt.SetResponseHandler(func(response any, _ abs.ErrorMappings) (any, error) {
		res, ok := response.(*http.Response)
		if !ok || res == nil {
			return nil, errors.New("no response")
		}
		defer func() {
			_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
			res.Body.Close()
		}()
		ok2xx := res.StatusCode >= 200 && res.StatusCode <= 299
		if ok2xx && v == nil {
			return nil, nil
		}
		var body io.Reader = res.Body
		if strings.EqualFold(res.Header.Get("Content-Encoding"), "gzip") {
			zr, err := gzip.NewReader(res.Body)
			if err != nil {
				return nil, &statusError{status: res.StatusCode, msg: "invalid gzip answer"}
			}
			defer zr.Close()
			body = zr
		}
		if !ok2xx {
			return nil, newStatusError(res.StatusCode, body)
		}
		if err := json.NewDecoder(body).Decode(v); err != nil {
			return nil, &statusError{status: res.StatusCode, msg: "undecodable answer"}
		}
		return nil, nil
	})
	return opt
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// secrets lists what must never appear in an error message of a call.
func (r *Reader) secrets(cred presence.Credential, user string) []string {
	return []string{cred.Password, cred.Username, user, r.opts.ClientSecret}
}

// auth returns the (cached) authentication provider of one tenant's credential.
func (r *Reader) auth(tenantID string, cred presence.Credential) (absauth.AuthenticationProvider, error) {
	if tenantID == "" {
		return nil, &presence.AuthError{Code: "NotConfigured", Message: "no tenant id"}
	}
	var fp [sha256.Size]byte
	switch cred.Kind {
	case presence.CredAccount1, presence.CredAccount2:
		if cred.Username == "" || cred.Password == "" {
			return nil, &presence.AuthError{Code: "NotConfigured", Message: "presence account " + string(cred.Kind) + " has no username or password"}
		}
		h := sha256.New()
		h.Write([]byte(cred.Username))
		h.Write([]byte{0})
		h.Write([]byte(cred.Password))
		copy(fp[:], h.Sum(nil))
	case presence.CredApplication:
		if r.opts.ClientSecret == "" {
			return nil, &presence.AuthError{Code: "NotConfigured", Message: "application mode needs a client secret"}
		}
	default:
		return nil, &presence.AuthError{Code: "NotConfigured", Message: "credential kind " + string(cred.Kind) + " cannot read Graph"}
	}
	key := credKey{tenant: tenantID, kind: cred.Kind}

	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.creds[key]; e != nil && e.fp == fp {
		return e.auth, nil
	}
	tc, err := r.newCredential(tenantID, cred)
	if err != nil {
		// azidentity refuses a malformed tenant id here: the tenant's settings are
		// wrong, no credential of it can work.
		return nil, &presence.AuthError{Code: "InvalidTenant", Message: "tenant id rejected by azidentity"}
	}
	auth, err := kiotaazure.NewAzureIdentityAuthenticationProviderWithScopesAndValidHosts(tc, []string{GraphScope}, r.validHosts)
	if err != nil {
		return nil, fmt.Errorf("graph: authentication provider: %w", err)
	}
	// Replaces (and so forgets) an entry with a former password of the same
	// (tenant, kind): the map holds at most one credential per account.
	r.creds[key] = &credEntry{fp: fp, auth: auth}
	r.log.Debug("graph: new credential", "tenant", tenantID, "kind", string(cred.Kind))
	return auth, nil
}

func (r *Reader) newCredential(tenantID string, cred presence.Credential) (azcore.TokenCredential, error) {
	co := azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: r.opts.AuthorityHost}}
	// Token requests retry under azcore's policy (it retries connection errors too),
	// bounded like ours; azcore reads 0 as its default, negative as none.
	co.Retry.MaxRetries = int32(r.opts.MaxRetries)
	if co.Retry.MaxRetries == 0 {
		co.Retry.MaxRetries = -1
	}
	co.Retry.MaxRetryDelay = r.opts.MaxRetryWait
	if r.opts.HTTPClient != nil {
		co.Transport = r.opts.HTTPClient
	}
	if cred.Kind == presence.CredApplication {
		return azidentity.NewClientSecretCredential(tenantID, r.opts.ClientID, r.opts.ClientSecret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: r.opts.DisableInstanceDiscovery})
	}
	// UsernamePasswordCredential (ROPC) is deprecated because it cannot do MFA. It is
	// still the only way for our guest presence accounts to obtain *delegated*
	// Presence.Read.All in a customer tenant without an interactive sign-in; MFA and
	// conditional-access refusals are reported as AuthError so admins can exempt the
	// accounts or switch the tenant to application mode.
	//lint:ignore SA1019 guest presence accounts need delegated Presence.Read.All (see above)
	upo := &azidentity.UsernamePasswordCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: r.opts.DisableInstanceDiscovery}
	return azidentity.NewUsernamePasswordCredential(tenantID, r.opts.ClientID, cred.Username, cred.Password, upo)
}

// credAuthProvider authenticates each request with the provider the call put in its
// context, so one SDK client (built once) serves every tenant and credential.
type credAuthProvider struct{}

type authCtxKey struct{}

func withAuth(ctx context.Context, a absauth.AuthenticationProvider) context.Context {
	return context.WithValue(ctx, authCtxKey{}, a)
}

func (credAuthProvider) AuthenticateRequest(ctx context.Context, req *abs.RequestInformation, extra map[string]any) error {
	a, _ := ctx.Value(authCtxKey{}).(absauth.AuthenticationProvider)
	if a == nil {
		return errors.New("graph: no credential in request context")
	}
	return a.AuthenticateRequest(ctx, req, extra)
}
