package graph

import (
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/calls"
	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/presence"
)

const (
	platClientID = "0c0c0c0c-1111-4222-8333-444444444444"
	platTenant   = "7a7a7a7a-1111-4222-8333-555555555555"
	platTenant2  = "8b8b8b8b-1111-4222-8333-666666666666"
	platCallback = "https://cc.example.net/api/calling/t1/c1"
	platBeep     = "https://cdn.contoso.com/beep.wav"
	platMusic    = "https://cdn.contoso.com/music.wav"
	// Customer and user identifiers no error text may carry.
	platPhone = "+14255550123"
	platUser  = "5f0e9a52-3c41-4c7e-9a55-9f8b1d2c3e4f"
	platRA    = "3d913abb-aec0-4964-8fa6-3c6850c4f278"
)

// platRequest is one request the Graph calling endpoints saw.
type platRequest struct {
	Method string
	Path   string
	Auth   string
	Body   map[string]any // nil when empty
}

// platFault answers one request with a Graph error.
type platFault struct {
	status     int
	code       string
	retryAfter string
}

// platServer stands in for Graph's /communications/calls endpoints. It records
// every request and answers like Graph: 201 with a call for create, the call for
// GET, 200 with an operation for playPrompt/cancelMediaProcessing/invite, 204 for
// DELETE, 202 for the rest, unless a queued fault comes first.
type platServer struct {
	srv  *httptest.Server
	n    atomic.Int64
	keep bool // record requests (off in the benchmark)

	mu     sync.Mutex
	reqs   []platRequest
	faults []platFault
}

func newPlatServer(tb testing.TB) *platServer {
	s := &platServer{keep: true}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	tb.Cleanup(s.srv.Close)
	return s
}

func (s *platServer) serve(w http.ResponseWriter, r *http.Request) {
	s.n.Add(1)
	var body io.Reader = r.Body
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, "bad gzip", http.StatusBadRequest)
			return
		}
		defer zr.Close()
		body = zr
	}
	raw, _ := io.ReadAll(body)
	var m map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &m); err != nil {
			graphError(w, http.StatusBadRequest, "BadRequest", "unparsable body")
			return
		}
	}
	s.mu.Lock()
	if s.keep {
		s.reqs = append(s.reqs, platRequest{Method: r.Method, Path: r.URL.Path, Auth: r.Header.Get("Authorization"), Body: m})
	}
	var ft *platFault
	if len(s.faults) > 0 {
		f := s.faults[0]
		s.faults = s.faults[1:]
		ft = &f
	}
	s.mu.Unlock()
	if ft != nil {
		if ft.retryAfter != "" {
			w.Header().Set("Retry-After", ft.retryAfter)
		}
		// Graph's messages may quote the request: the adapter must never keep them.
		graphError(w, ft.status, ft.code, "Request "+string(raw)+" refused for "+platPhone+" / "+platUser)
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/v1.0")
	switch {
	case r.Method == http.MethodPost && path == "/communications/calls":
		writeJSON(w, http.StatusCreated, map[string]any{"@odata.type": "#microsoft.graph.call",
			"id": "2e1a0b00-2db4-4022-9570-243709c565ab", "state": "establishing", "direction": "outgoing"})
	case r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]any{"@odata.type": "#microsoft.graph.call",
			"id": "c1", "state": "established", "direction": "incoming"})
	case r.Method == http.MethodDelete:
		w.WriteHeader(http.StatusNoContent)
	case strings.HasSuffix(path, "/playPrompt"), strings.HasSuffix(path, "/cancelMediaProcessing"),
		strings.HasSuffix(path, "/participants/invite"):
		writeJSON(w, http.StatusOK, map[string]any{"id": "0fe0623f-d628-42ed-b4bd-8ac290072cc5",
			"status": "running", "clientContext": m["clientContext"]})
	default:
		w.WriteHeader(http.StatusAccepted)
	}
}

func (s *platServer) fail(fs ...platFault) {
	s.mu.Lock()
	s.faults = append(s.faults, fs...)
	s.mu.Unlock()
}

func (s *platServer) requests() []platRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]platRequest(nil), s.reqs...)
}

func (s *platServer) reset() {
	s.mu.Lock()
	s.reqs, s.faults = nil, nil
	s.mu.Unlock()
	s.n.Store(0)
}

// newPlatRig returns the Entra fake, the Graph calling stand-in and a Reader using
// the fake as authority and the stand-in as Graph, over one client trusting both.
func newPlatRig(tb testing.TB, tweak func(*Options)) (*Fake, *platServer, *Reader) {
	tb.Helper()
	f := NewFake()
	tb.Cleanup(f.Close)
	s := newPlatServer(tb)
	pool := x509.NewCertPool()
	pool.AddCert(f.srv.Certificate())
	pool.AddCert(s.srv.Certificate())
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 16}
	tb.Cleanup(tr.CloseIdleConnections)
	o := f.Options(platClientID)
	o.BaseURL = s.srv.URL + "/v1.0"
	o.HTTPClient = &http.Client{Transport: tr}
	o.DisableInstanceDiscovery = true
	o.MaxRetries = 2
	o.MaxRetryWait = time.Millisecond
	if tweak != nil {
		tweak(&o)
	}
	r, err := New(o)
	if err != nil {
		tb.Fatal(err)
	}
	return f, s, r
}

// platToken decodes the principal and tenant of a bearer token of the fake.
func platToken(authz string) (principal, tenant string) {
	tok, ok := strings.CutPrefix(authz, "Bearer ")
	if !ok {
		return "", ""
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 4 || parts[0] != "fake" {
		return "", ""
	}
	p, _ := base64.RawURLEncoding.DecodeString(parts[1])
	t, _ := base64.RawURLEncoding.DecodeString(parts[2])
	return string(p), string(t)
}

// jsonAt returns the value at a dotted path ("targets.0.identity.phone.id";
// "@odata.type" is one key).
func jsonAt(v any, path string) (any, bool) {
	for _, k := range strings.Split(strings.ReplaceAll(path, "@odata.type", "@odata\x00type"), ".") {
		k = strings.ReplaceAll(k, "\x00", ".")
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[k]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			v = x[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// assertNoIdentifiers fails if err's text carries a customer identifier or a secret.
func assertNoIdentifiers(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	for _, s := range []string{platPhone, strings.TrimPrefix(platPhone, "+"), platUser, FakeClientSecret, "fake.", "Bearer"} {
		if strings.Contains(msg, s) {
			t.Errorf("error text leaks %q: %s", s, msg)
		}
	}
}

var (
	platPhoneTarget = calls.Target{Kind: calls.Phone, ID: platPhone}
	platUserTarget  = calls.Target{Kind: calls.User, ID: platUser}
)

func TestPlatformRequests(t *testing.T) {
	_, s, r := newPlatRig(t, nil)
	ctx := context.Background()
	beepID := promptResourceID(platBeep)
	tests := []struct {
		name   string
		do     func() error
		method string
		path   string
		want   map[string]any // dotted path -> value
		absent []string       // dotted paths that must not be sent
	}{
		{
			name: "answer",
			do: func() error {
				return r.Answer(ctx, platTenant, "c1", calls.Answer{CallbackURI: platCallback,
					Prefetch: []string{platBeep, platMusic, platBeep}})
			},
			method: "POST", path: "/v1.0/communications/calls/c1/answer",
			want: map[string]any{
				"callbackUri":                            platCallback,
				"acceptedModalities":                     []any{"audio"},
				"mediaConfig.@odata.type":                "#microsoft.graph.serviceHostedMediaConfig",
				"mediaConfig.preFetchMedia.0.uri":        platBeep,
				"mediaConfig.preFetchMedia.0.resourceId": beepID,
				"mediaConfig.preFetchMedia.1.uri":        platMusic,
				"mediaConfig.preFetchMedia.1.resourceId": promptResourceID(platMusic),
			},
			absent: []string{"mediaConfig.preFetchMedia.2"},
		},
		{
			name:   "answer without prompts",
			do:     func() error { return r.Answer(ctx, platTenant, "c1", calls.Answer{CallbackURI: platCallback}) },
			method: "POST", path: "/v1.0/communications/calls/c1/answer",
			want:   map[string]any{"mediaConfig.@odata.type": "#microsoft.graph.serviceHostedMediaConfig"},
			absent: []string{"mediaConfig.preFetchMedia"},
		},
		{
			name:   "reject busy",
			do:     func() error { return r.Reject(ctx, platTenant, "c1", calls.RejectBusy) },
			method: "POST", path: "/v1.0/communications/calls/c1/reject",
			want: map[string]any{"reason": "busy"},
		},
		{
			name:   "reject forbidden",
			do:     func() error { return r.Reject(ctx, platTenant, "c1", calls.RejectForbidden) },
			method: "POST", path: "/v1.0/communications/calls/c1/reject",
			want: map[string]any{"reason": "forbidden"},
		},
		{
			name:   "reject none",
			do:     func() error { return r.Reject(ctx, platTenant, "c1", calls.RejectNone) },
			method: "POST", path: "/v1.0/communications/calls/c1/reject",
			want: map[string]any{"reason": "none"},
		},
		{
			name:   "redirect to a phone",
			do:     func() error { return r.Redirect(ctx, platTenant, "c1", platPhoneTarget, platCallback) },
			method: "POST", path: "/v1.0/communications/calls/c1/redirect",
			want: map[string]any{
				"targets.0.@odata.type":       "#microsoft.graph.invitationParticipantInfo",
				"targets.0.identity.phone.id": platPhone,
				"callbackUri":                 platCallback,
			},
			absent: []string{"targets.1", "targets.0.identity.user"},
		},
		{
			name:   "redirect to a user",
			do:     func() error { return r.Redirect(ctx, platTenant, "c1", platUserTarget, "") },
			method: "POST", path: "/v1.0/communications/calls/c1/redirect",
			want:   map[string]any{"targets.0.identity.user.id": platUser},
			absent: []string{"callbackUri", "targets.0.identity.phone"},
		},
		{
			name:   "play prompt",
			do:     func() error { return r.PlayPrompt(ctx, platTenant, "c1", platBeep, "c1:greeting:1") },
			method: "POST", path: "/v1.0/communications/calls/c1/playPrompt",
			want: map[string]any{
				"prompts.0.@odata.type":          "#microsoft.graph.mediaPrompt",
				"prompts.0.mediaInfo.uri":        platBeep,
				"prompts.0.mediaInfo.resourceId": beepID,
				"clientContext":                  "c1:greeting:1",
			},
			absent: []string{"prompts.1"},
		},
		{
			name:   "cancel media",
			do:     func() error { return r.CancelMedia(ctx, platTenant, "c1", "c1:cancel:2") },
			method: "POST", path: "/v1.0/communications/calls/c1/cancelMediaProcessing",
			want: map[string]any{"clientContext": "c1:cancel:2"},
		},
		{
			name: "dial a phone from a resource account",
			do: func() error {
				id, err := r.Dial(ctx, platTenant, calls.Dial{Source: platRA, Target: platPhoneTarget, CallbackURI: platCallback})
				if err == nil && id != "2e1a0b00-2db4-4022-9570-243709c565ab" {
					return errors.New("dial returned id " + id)
				}
				return err
			},
			method: "POST", path: "/v1.0/communications/calls",
			want: map[string]any{
				"callbackUri":                            platCallback,
				"source.@odata.type":                     "#microsoft.graph.participantInfo",
				"source.identity.applicationInstance.id": platRA,
				"targets.0.@odata.type":                  "#microsoft.graph.invitationParticipantInfo",
				"targets.0.identity.phone.id":            platPhone,
				"requestedModalities":                    []any{"audio"},
				"mediaConfig.@odata.type":                "#microsoft.graph.serviceHostedMediaConfig",
				"tenantId":                               platTenant,
			},
			absent: []string{"targets.1", "source.identity.application"},
		},
		{
			name: "dial a user as the bot",
			do: func() error {
				_, err := r.Dial(ctx, platTenant, calls.Dial{Target: platUserTarget, CallbackURI: platCallback})
				return err
			},
			method: "POST", path: "/v1.0/communications/calls",
			want: map[string]any{
				"targets.0.identity.user.id": platUser,
				"tenantId":                   platTenant,
			},
			absent: []string{"source"},
		},
		{
			name:   "invite replacing an offer leg",
			do:     func() error { return r.Invite(ctx, platTenant, "c1", platUserTarget, "leg-7", "c1:invite:3") },
			method: "POST", path: "/v1.0/communications/calls/c1/participants/invite",
			want: map[string]any{
				"participants.0.@odata.type":      "#microsoft.graph.invitationParticipantInfo",
				"participants.0.identity.user.id": platUser,
				"participants.0.replacesCallId":   "leg-7",
				"clientContext":                   "c1:invite:3",
			},
			absent: []string{"participants.1"},
		},
		{
			name:   "invite a phone",
			do:     func() error { return r.Invite(ctx, platTenant, "c1", platPhoneTarget, "", "c1:invite:4") },
			method: "POST", path: "/v1.0/communications/calls/c1/participants/invite",
			want:   map[string]any{"participants.0.identity.phone.id": platPhone},
			absent: []string{"participants.0.replacesCallId"},
		},
		{
			name:   "transfer out of a group call",
			do:     func() error { return r.Transfer(ctx, platTenant, "c1", platPhoneTarget, "p-customer", "c1:transfer:5") },
			method: "POST", path: "/v1.0/communications/calls/c1/transfer",
			want: map[string]any{
				"transferTarget.@odata.type":       "#microsoft.graph.invitationParticipantInfo",
				"transferTarget.identity.phone.id": platPhone,
				"transferee.@odata.type":           "#microsoft.graph.participantInfo",
				"transferee.participantId":         "p-customer",
				"clientContext":                    "c1:transfer:5",
			},
		},
		{
			name:   "transfer a peer-to-peer call",
			do:     func() error { return r.Transfer(ctx, platTenant, "c1", platUserTarget, "", "") },
			method: "POST", path: "/v1.0/communications/calls/c1/transfer",
			want:   map[string]any{"transferTarget.identity.user.id": platUser},
			absent: []string{"transferee", "clientContext"},
		},
		{
			name:   "remove participant",
			do:     func() error { return r.RemoveParticipant(ctx, platTenant, "c1", "p-agent") },
			method: "DELETE", path: "/v1.0/communications/calls/c1/participants/p-agent",
		},
		{
			name:   "keep alive",
			do:     func() error { return r.KeepAlive(ctx, platTenant, "c1") },
			method: "POST", path: "/v1.0/communications/calls/c1/keepAlive",
		},
		{
			name:   "hang up",
			do:     func() error { return r.HangUp(ctx, platTenant, "c1") },
			method: "DELETE", path: "/v1.0/communications/calls/c1",
		},
		{
			name: "state",
			do: func() error {
				st, err := r.State(ctx, platTenant, "c1")
				if err == nil && st != "established" {
					return errors.New("state " + st)
				}
				return err
			},
			method: "GET", path: "/v1.0/communications/calls/c1",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s.reset()
			if err := tc.do(); err != nil {
				t.Fatal(err)
			}
			reqs := s.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			q := reqs[0]
			if q.Method != tc.method || q.Path != tc.path {
				t.Errorf("request %s %s, want %s %s", q.Method, q.Path, tc.method, tc.path)
			}
			if p, tn := platToken(q.Auth); p != AppPrincipal(platClientID) || tn != platTenant {
				t.Errorf("token of %q in %q, want the app's in %q", p, tn, platTenant)
			}
			for path, want := range tc.want {
				got, ok := jsonAt(q.Body, path)
				if !ok || !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %#v, want %#v (body %v)", path, got, want, q.Body)
				}
			}
			for _, path := range tc.absent {
				if got, ok := jsonAt(q.Body, path); ok {
					t.Errorf("%s sent as %#v, want absent", path, got)
				}
			}
			if (tc.method == "GET" || tc.method == "DELETE" || strings.HasSuffix(tc.path, "/keepAlive")) && q.Body != nil {
				t.Errorf("unexpected body %v", q.Body)
			}
		})
	}
}

// Each tenant's requests carry that tenant's app token, and a token is reused.
func TestPlatformUsesEachTenantsAppToken(t *testing.T) {
	f, s, r := newPlatRig(t, nil)
	ctx := context.Background()
	for _, tenant := range []string{platTenant, platTenant2, platTenant, platTenant2} {
		if err := r.KeepAlive(ctx, tenant, "c1"); err != nil {
			t.Fatal(err)
		}
	}
	reqs := s.requests()
	for i, q := range reqs {
		want := platTenant
		if i%2 == 1 {
			want = platTenant2
		}
		if p, tn := platToken(q.Auth); p != AppPrincipal(platClientID) || tn != want {
			t.Errorf("request %d: token of %q in %q, want the app's in %q", i, p, tn, want)
		}
	}
	if n := f.TokenRequests(); n != 2 {
		t.Errorf("%d token requests, want 2 (one per tenant)", n)
	}
}

func TestPlatformErrorMapping(t *testing.T) {
	ctx := context.Background()
	t.Run("404 is not found", func(t *testing.T) {
		_, s, r := newPlatRig(t, nil)
		s.fail(platFault{status: 404, code: "8503"})
		err := r.HangUp(ctx, platTenant, "c1")
		if !errors.Is(err, fault.ErrNotFound) || fault.IsPermanent(err) {
			t.Fatalf("got %v, want fault.ErrNotFound", err)
		}
		var ge *Error
		if !errors.As(err, &ge) || ge.Status != 404 || ge.Op != "deleteCall" {
			t.Errorf("got %#v, want *Error 404 of deleteCall", err)
		}
	})
	t.Run("400 is permanent and names op, status and code", func(t *testing.T) {
		_, s, r := newPlatRig(t, nil)
		s.fail(platFault{status: 400, code: "BadRequest"})
		err := r.Invite(ctx, platTenant, "c1", platUserTarget, "leg-1", "ctx")
		if !fault.IsPermanent(err) || errors.Is(err, fault.ErrNotFound) {
			t.Fatalf("got %v, want permanent", err)
		}
		for _, s := range []string{"invite", "400", "BadRequest"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not name %q", err, s)
			}
		}
		if n := s.n.Load(); n != 1 {
			t.Errorf("%d requests, want 1 (no retry of a 400)", n)
		}
		assertNoIdentifiers(t, err)
	})
	t.Run("403 is permanent", func(t *testing.T) {
		_, s, r := newPlatRig(t, nil)
		s.fail(platFault{status: 403, code: "Forbidden"})
		_, err := r.Dial(ctx, platTenant, calls.Dial{Source: platRA, Target: platPhoneTarget, CallbackURI: platCallback})
		if !fault.IsPermanent(err) || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "createCall") {
			t.Fatalf("got %v, want permanent 403 of createCall", err)
		}
		var ae *presence.AuthError
		if errors.As(err, &ae) {
			t.Errorf("a Graph 403 is no credential refusal: %v", err)
		}
		assertNoIdentifiers(t, err)
	})
	t.Run("429 then 200 succeeds", func(t *testing.T) {
		_, s, r := newPlatRig(t, nil)
		s.fail(platFault{status: 429, code: "TooManyRequests", retryAfter: "0"})
		if err := r.PlayPrompt(ctx, platTenant, "c1", platBeep, "ctx"); err != nil {
			t.Fatal(err)
		}
		reqs := s.requests()
		if len(reqs) != 2 || !reflect.DeepEqual(reqs[0].Body, reqs[1].Body) {
			t.Errorf("requests %+v, want the same body twice", reqs)
		}
	})
	t.Run("503 after retries is transient", func(t *testing.T) {
		_, s, r := newPlatRig(t, nil)
		s.fail(platFault{status: 503, code: "UnknownError"}, platFault{status: 503, code: "UnknownError"},
			platFault{status: 503, code: "UnknownError"})
		err := r.Redirect(ctx, platTenant, "c1", platPhoneTarget, platCallback)
		if err == nil || fault.IsPermanent(err) || errors.Is(err, fault.ErrNotFound) {
			t.Fatalf("got %v, want transient", err)
		}
		var ge *Error
		if !errors.As(err, &ge) || ge.Status != 503 {
			t.Errorf("got %#v, want *Error 503", err)
		}
		if n := s.n.Load(); n != 3 {
			t.Errorf("%d requests, want 3 (MaxRetries 2)", n)
		}
		assertNoIdentifiers(t, err)
	})
	t.Run("network error is transient", func(t *testing.T) {
		_, s, r := newPlatRig(t, nil)
		if err := r.KeepAlive(ctx, platTenant, "c1"); err != nil { // token cached
			t.Fatal(err)
		}
		s.srv.Close()
		err := r.Transfer(ctx, platTenant, "c1", platPhoneTarget, "", "ctx")
		if err == nil || fault.IsPermanent(err) || errors.Is(err, fault.ErrNotFound) {
			t.Fatalf("got %v, want transient", err)
		}
		assertNoIdentifiers(t, err)
	})
	t.Run("refused client secret is permanent", func(t *testing.T) {
		f, s, r := newPlatRig(t, nil)
		f.FailToken(AppPrincipal(platClientID), 7000215)
		err := r.Answer(ctx, platTenant, "c1", calls.Answer{CallbackURI: platCallback})
		var ae *presence.AuthError
		if !fault.IsPermanent(err) || !errors.As(err, &ae) || ae.Code != "AADSTS7000215" {
			t.Fatalf("got %v, want permanent AuthError AADSTS7000215", err)
		}
		if n := s.n.Load(); n != 0 {
			t.Errorf("%d Graph requests without a token", n)
		}
		assertNoIdentifiers(t, err)
	})
	t.Run("no client secret is permanent without a request", func(t *testing.T) {
		f, s, r := newPlatRig(t, func(o *Options) { o.ClientSecret = "" })
		err := r.KeepAlive(ctx, platTenant, "c1")
		var ae *presence.AuthError
		if !fault.IsPermanent(err) || !errors.As(err, &ae) || ae.Code != "NotConfigured" {
			t.Fatalf("got %v, want permanent NotConfigured", err)
		}
		if s.n.Load() != 0 || f.TokenRequests() != 0 {
			t.Errorf("requests made: graph %d, token %d", s.n.Load(), f.TokenRequests())
		}
	})
}

// Bad input is refused as a *fault.FieldError before any request, and no rule
// quotes the identifier it refused.
func TestPlatformRefusesBadInputWithoutARequest(t *testing.T) {
	f, s, r := newPlatRig(t, nil)
	ctx := context.Background()
	ok := calls.Answer{CallbackURI: platCallback}
	tests := map[string]func() error{
		"empty tenant":        func() error { return r.KeepAlive(ctx, "", "c1") },
		"tenant with slash":   func() error { return r.KeepAlive(ctx, "a/b", "c1") },
		"empty call id":       func() error { return r.Answer(ctx, platTenant, "", ok) },
		"call id with slash":  func() error { return r.HangUp(ctx, platTenant, "c1/participants") },
		"call id with query":  func() error { _, err := r.State(ctx, platTenant, "c1?x=1"); return err },
		"call id with hash":   func() error { return r.KeepAlive(ctx, platTenant, "c1#x") },
		"call id with escape": func() error { return r.KeepAlive(ctx, platTenant, "c1%2Fx") },
		"call id with space":  func() error { return r.KeepAlive(ctx, platTenant, "c 1") },
		"reject reason":       func() error { return r.Reject(ctx, platTenant, "c1", "later") },
		"answer no callback":  func() error { return r.Answer(ctx, platTenant, "c1", calls.Answer{}) },
		"answer http callback": func() error {
			return r.Answer(ctx, platTenant, "c1", calls.Answer{CallbackURI: "http://cc.example.net/cb"})
		},
		"answer bad prefetch": func() error {
			return r.Answer(ctx, platTenant, "c1", calls.Answer{CallbackURI: platCallback, Prefetch: []string{"beep.wav"}})
		},
		"redirect no target": func() error { return r.Redirect(ctx, platTenant, "c1", calls.Target{Kind: calls.User}, "") },
		"redirect bad phone": func() error {
			return r.Redirect(ctx, platTenant, "c1", calls.Target{Kind: calls.Phone, ID: "4255550123"}, "")
		},
		"redirect unknown kind": func() error {
			return r.Redirect(ctx, platTenant, "c1", calls.Target{Kind: "email", ID: platUser}, "")
		},
		"prompt empty uri":     func() error { return r.PlayPrompt(ctx, platTenant, "c1", "", "ctx") },
		"prompt long context":  func() error { return r.PlayPrompt(ctx, platTenant, "c1", platBeep, strings.Repeat("x", 257)) },
		"cancel empty call id": func() error { return r.CancelMedia(ctx, platTenant, "", "ctx") },
		"dial phone as bot": func() error {
			_, err := r.Dial(ctx, platTenant, calls.Dial{Target: platPhoneTarget, CallbackURI: platCallback})
			return err
		},
		"dial no callback": func() error {
			_, err := r.Dial(ctx, platTenant, calls.Dial{Source: platRA, Target: platUserTarget})
			return err
		},
		"dial empty tenant": func() error {
			_, err := r.Dial(ctx, "", calls.Dial{Source: platRA, Target: platUserTarget, CallbackURI: platCallback})
			return err
		},
		"invite bad replaces": func() error { return r.Invite(ctx, platTenant, "c1", platUserTarget, "a/b", "") },
		"invite no target":    func() error { return r.Invite(ctx, platTenant, "c1", calls.Target{}, "", "") },
		"transfer bad target": func() error {
			return r.Transfer(ctx, platTenant, "c1", calls.Target{Kind: calls.Phone, ID: "+1 425 555"}, "", "")
		},
		"transfer bad transferee": func() error { return r.Transfer(ctx, platTenant, "c1", platUserTarget, " ", "") },
		"remove no participant":   func() error { return r.RemoveParticipant(ctx, platTenant, "c1", "") },
		"remove participant path": func() error { return r.RemoveParticipant(ctx, platTenant, "c1", "../c2") },
	}
	for name, do := range tests {
		t.Run(name, func(t *testing.T) {
			err := do()
			var fe *fault.FieldError
			if !errors.As(err, &fe) || !fault.IsPermanent(err) {
				t.Fatalf("got %v, want *fault.FieldError", err)
			}
			for _, v := range []string{platUser, "4255550123", "425 555", "c1%2Fx", "a/b"} {
				if strings.Contains(err.Error(), v) {
					t.Errorf("error %q quotes the input %q", err, v)
				}
			}
		})
	}
	if n, tn := s.n.Load(), f.TokenRequests(); n != 0 || tn != 0 {
		t.Errorf("bad input made %d Graph and %d token requests", n, tn)
	}
}

// A prompt's resourceId is the RFC 9562 name-based (SHA-1) UUID of its URI in the
// URL namespace, the same wherever the URI is used.
func TestPromptResourceID(t *testing.T) {
	// uuid.uuid5(uuid.NAMESPACE_URL, "https://cdn.contoso.com/beep.wav") in Python.
	if got, want := promptResourceID(platBeep), "daa25313-9cf7-5247-b39b-aa89c862a58f"; got != want {
		t.Errorf("resourceId %s, want %s", got, want)
	}
	if promptResourceID(platBeep) == promptResourceID(platMusic) {
		t.Error("two URIs share a resourceId")
	}
}

// Loopback http callbacks are accepted for the local runner; other http is not.
func TestCallbackURIRules(t *testing.T) {
	for u, want := range map[string]bool{
		platCallback:                        true,
		"http://localhost:7071/api/calling": true,
		"http://127.0.0.1:7071/api/calling": true,
		"http://[::1]:7071/api/calling":     true,
		"http://cc.example.net/api/calling": false,
		"https://user:pw@cc.example.net/x":  false,
		"/api/calling":                      false,
		"ftp://cc.example.net/x":            false,
		"https://cc.example.net/a b":        false,
	} {
		if got := checkCallbackURI(u, true) == nil; got != want {
			t.Errorf("%q accepted = %v, want %v", u, got, want)
		}
	}
}

func BenchmarkPlatformPlayPrompt(b *testing.B) {
	_, s, r := newPlatRig(b, nil)
	s.mu.Lock()
	s.keep = false
	s.mu.Unlock()
	ctx := context.Background()
	if err := r.PlayPrompt(ctx, platTenant, "c1", platMusic, "warm-up"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := r.PlayPrompt(ctx, platTenant, "c1", platMusic, "c1:music:1"); err != nil {
			b.Fatal(err)
		}
	}
}
