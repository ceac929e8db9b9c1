package graph

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/teamscc/teamscc/shared/calls"
)

// The fake calling platform: Graph's call API (/v1.0/communications/calls...) and the
// notifications Microsoft's calling platform sends to a calling bot, signed as the
// real platform signs them (RS256, iss https://api.botframework.com, aud = the bot's
// app id, tid = the tenant) with keys served at CallingMetadataURL. It plays callers,
// agents and Teams: a test (or the local runner) places calls, answers, declines or
// lets ring the agents' offer legs, hangs up, and finishes prompts; the fake answers
// the app's requests and sends the notifications Graph's docs show, one at a time, in
// order. Enable it with EnableCalling.

// CallingIssuer is the issuer of the fake's notification tokens (one of the two the
// real platform uses).
const CallingIssuer = "https://api.botframework.com"

// CallingKeyID is the kid of the fake's signing key.
const CallingKeyID = "fake-calling-1"

// AgentAction is how a simulated callee reacts to a ringing call.
type AgentAction int

const (
	ActAnswer      AgentAction = iota // picks up
	ActDecline                        // refuses (603)
	ActLetRing                        // does nothing; the platform gives up (480) after RingFor
	ActUnreachable                    // cannot be rung (404)
)

// Behaviour is how a simulated callee (an agent's Teams, an outbound customer) acts
// when rung; the zero value answers at once and never hangs up.
type Behaviour struct {
	After   time.Duration // how long it rings before the action
	Action  AgentAction
	TalkFor time.Duration // after being connected, hang up after this long (0: never)
}

// CallingOptions configures the fake calling platform.
type CallingOptions struct {
	// BotAppID is the bot's Microsoft App ID: the audience of notification tokens.
	BotAppID string
	// Webhook is the bot's calling webhook: new incoming calls are announced there.
	Webhook string
	// Client posts notifications (default: a client with a 20 s timeout).
	Client *http.Client
	// Behave, when set, makes every rung callee act by itself (the local runner);
	// nil: callees act only when a test says so.
	Behave func(callee calls.Party) Behaviour
	// PromptLength, when set, ends each prompt after that long; nil: prompts end when
	// FinishPrompt says so.
	PromptLength func(uri string) time.Duration
	// RingFor is the platform's own ring timeout for ActLetRing (default 30 s).
	RingFor time.Duration
	// Duplicate sends every notification twice.
	Duplicate bool
	// LegacyFirst announces an incoming call first in the legacy format; only after
	// the webhook answered it 204 does the Graph-format notification follow.
	LegacyFirst bool
}

// CallRequest is one request the app made to the calling API.
type CallRequest struct {
	Op      string // answer, reject, redirect, playPrompt, cancelMedia, dial, invite, transfer, removeParticipant, keepAlive, hangUp, get
	CallID  string
	Target  string // the party rung, invited, transferred or redirected to ("user:<id>", "phone:<n>")
	Detail  string // prompt uri, replacesCallId, clientContext, ...
	Tenant  string // the tenant of the token the request carried
	At      time.Time
	Elapsed time.Duration // for answer: since the incoming call was announced
}

// Delivery is one notification the fake posted, with the webhook's answer.
type Delivery struct {
	CallID string
	Kind   string // incoming, legacy, state, roster, operation
	Detail string // the state, or the operation status
	Status int    // the webhook's HTTP status (0: no answer; -1: dropped, never sent)
}

// FakeCallView is what the fake knows of one call.
type FakeCallView struct {
	ID           string
	Direction    string // incoming, outgoing
	State        string // incoming, establishing, established, terminated
	Source       calls.Party
	Target       calls.Party
	Participants []calls.Party // who is in the call, the app included
	Playing      string        // the prompt playing now
	Prompts      []string      // every prompt started in the call, in order
	Group        bool
	Answered     bool // an incoming call answered by the app
}

type fakeParticipant struct {
	id    string
	party calls.Party
}

type fakeOp struct {
	id, uri, context string
}

type fakeCall struct {
	id, tenant, callback, direction, state string
	source, target                         calls.Party
	participants                           []fakeParticipant
	playing                                *fakeOp
	queued                                 []fakeOp
	prompts                                []string
	group, answered                        bool
	announced                              time.Time
	invites                                []*fakeInvite
	seq                                    int
}

type fakeInvite struct {
	id, call, context string
	target            calls.Party
}

type notice struct {
	callID, url, kind, detail, tenant string
	body                              []byte
}

type fakeCalling struct {
	f    *Fake
	opts CallingOptions
	key  *rsa.PrivateKey

	mu            sync.Mutex
	calls         map[string]*fakeCall
	invites       map[string]*fakeInvite
	requests      []CallRequest
	deliveries    []Delivery
	failTransfers bool
	drop          func(Delivery) bool

	qmu     sync.Mutex            // guards queues and tokens; taken after mu, never before
	queues  map[string]*callQueue // per call: its notifications in order
	tokens  map[string]cachedToken
	pending atomic.Int64 // notifications queued or being delivered, requests being served
}

// callQueue holds one call's notifications; one goroutine delivers them in order
// while any are queued. Different calls are delivered concurrently, as the platform
// does.
type callQueue struct {
	items   []notice
	running bool
}

// EnableCalling configures the fake calling platform (calling it again replaces the
// options).
func (f *Fake) EnableCalling(o CallingOptions) {
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 20 * time.Second}
	}
	if o.RingFor <= 0 {
		o.RingFor = 30 * time.Second
	}
	fc := f.calling
	fc.mu.Lock()
	fc.opts = o
	fc.mu.Unlock()
}

func newFakeCalling(f *Fake) *fakeCalling {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(fmt.Sprintf("fake calling key: %v", err))
	}
	return &fakeCalling{f: f, key: key, calls: map[string]*fakeCall{}, invites: map[string]*fakeInvite{},
		queues: map[string]*callQueue{}, tokens: map[string]cachedToken{}}
}

func (fc *fakeCalling) register(mux *http.ServeMux) {
	mux.HandleFunc("GET /calling/.well-known/OpenIdConfiguration", fc.serveMetadata)
	mux.HandleFunc("GET /calling/keys", fc.serveKeys)
	c := "/v1.0/communications/calls"
	mux.HandleFunc("POST "+c, fc.api(fc.serveDial))
	mux.HandleFunc("GET "+c+"/{id}", fc.api(fc.serveGet))
	mux.HandleFunc("DELETE "+c+"/{id}", fc.api(fc.serveHangUp))
	mux.HandleFunc("POST "+c+"/{id}/answer", fc.api(fc.serveAnswer))
	mux.HandleFunc("POST "+c+"/{id}/reject", fc.api(fc.serveReject))
	mux.HandleFunc("POST "+c+"/{id}/redirect", fc.api(fc.serveRedirect))
	mux.HandleFunc("POST "+c+"/{id}/playPrompt", fc.api(fc.servePlayPrompt))
	mux.HandleFunc("POST "+c+"/{id}/cancelMediaProcessing", fc.api(fc.serveCancelMedia))
	mux.HandleFunc("POST "+c+"/{id}/participants/invite", fc.api(fc.serveInvite))
	mux.HandleFunc("DELETE "+c+"/{id}/participants/{pid}", fc.api(fc.serveRemove))
	mux.HandleFunc("POST "+c+"/{id}/transfer", fc.api(fc.serveTransfer))
	mux.HandleFunc("POST "+c+"/{id}/keepAlive", fc.api(fc.serveKeepAlive))
}

// CallingMetadataURL is the OpenID metadata document of the fake's notification keys.
func (f *Fake) CallingMetadataURL() string { return f.URL + "/calling/.well-known/OpenIdConfiguration" }

// CallingPublicKey is the public half of the key notification tokens are signed with.
func (f *Fake) CallingPublicKey() *rsa.PublicKey { return &f.calling.key.PublicKey }

// CallingToken returns a notification token for tenantID, as the platform signs it;
// edit changes the claims before signing (tests of refused tokens).
func (f *Fake) CallingToken(tenantID string, edit func(claims map[string]any)) string {
	fc := f.calling
	fc.mu.Lock()
	aud := fc.opts.BotAppID
	fc.mu.Unlock()
	now := time.Now()
	claims := map[string]any{"iss": CallingIssuer, "aud": aud, "tid": tenantID,
		"iat": now.Add(-time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix()}
	if edit != nil {
		edit(claims)
	}
	return SignRS256(fc.key, CallingKeyID, claims)
}

// SignRS256 makes a compact RS256 JWT of claims with key and kid.
func SignRS256(key *rsa.PrivateKey, kid string, claims map[string]any) string {
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": kid})
	p, _ := json.Marshal(claims)
	b64 := base64.RawURLEncoding
	signing := b64.EncodeToString(h) + "." + b64.EncodeToString(p)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		panic(err)
	}
	return signing + "." + b64.EncodeToString(sig)
}

func (fc *fakeCalling) serveMetadata(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"issuer": CallingIssuer, "jwks_uri": fc.f.URL + "/calling/keys",
		"id_token_signing_alg_values_supported": []string{"RS256"}, "token_endpoint_auth_methods_supported": []string{"private_key_jwt"}})
}

func (fc *fakeCalling) serveKeys(w http.ResponseWriter, _ *http.Request) {
	pub := fc.key.PublicKey
	writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]any{{"kty": "RSA", "use": "sig", "kid": CallingKeyID,
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()), "e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes())}}})
}

// api wraps a calling endpoint: Graph's authentication and faults (Fake.graph), the
// request's tenant from its token, and the bookkeeping Settle waits on.
func (fc *fakeCalling) api(next func(w http.ResponseWriter, r *http.Request, tenant string)) http.HandlerFunc {
	return fc.f.graph(func(w http.ResponseWriter, r *http.Request) {
		fc.pending.Add(1)
		defer fc.pending.Add(-1)
		tenant := tokenTenant(r.Header.Get("Authorization"))
		next(w, r, tenant)
	})
}

// tokenTenant reads the tenant of a fake access token.
func tokenTenant(authz string) string {
	parts := strings.Split(strings.TrimPrefix(authz, "Bearer "), ".")
	if len(parts) != 4 {
		return ""
	}
	t, _ := base64.RawURLEncoding.DecodeString(parts[2])
	return string(t)
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	x := hex.EncodeToString(b[:])
	return x[:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:]
}

// ---- the request side ----

type identitySetJSON struct {
	User                *struct{ ID string } `json:"user"`
	Phone               *struct{ ID string } `json:"phone"`
	ApplicationInstance *struct{ ID string } `json:"applicationInstance"`
	Application         *struct{ ID string } `json:"application"`
}

func (s identitySetJSON) party() calls.Party {
	switch {
	case s.User != nil:
		return calls.Party{Kind: calls.User, ID: s.User.ID}
	case s.Phone != nil:
		return calls.Party{Kind: calls.Phone, ID: s.Phone.ID}
	case s.ApplicationInstance != nil:
		return calls.Party{Kind: calls.ApplicationInstance, ID: s.ApplicationInstance.ID}
	case s.Application != nil:
		return calls.Party{Kind: calls.Application, ID: s.Application.ID}
	}
	return calls.Party{}
}

func identityJSON(p calls.Party) map[string]any {
	return map[string]any{"@odata.type": "#microsoft.graph.identitySet",
		string(p.Kind): map[string]any{"@odata.type": "#microsoft.graph.identity", "id": p.ID}}
}

type invitationJSON struct {
	Identity       identitySetJSON `json:"identity"`
	ReplacesCallID string          `json:"replacesCallId"`
	ParticipantID  string          `json:"participantId"`
}

func partyString(p calls.Party) string { return string(p.Kind) + ":" + p.ID }

// record notes a request; it returns the call or answers 404.
func (fc *fakeCalling) record(w http.ResponseWriter, rq CallRequest, need bool) (*fakeCall, bool) {
	rq.At = time.Now()
	call := fc.calls[rq.CallID]
	if rq.Op == "answer" && call != nil {
		rq.Elapsed = rq.At.Sub(call.announced)
	}
	fc.requests = append(fc.requests, rq)
	if need && (call == nil || call.state == "terminated") {
		graphError(w, http.StatusNotFound, "ItemNotFound", "The call does not exist or has ended.")
		return nil, false
	}
	return call, true
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		graphError(w, http.StatusBadRequest, "BadRequest", "Invalid request body.")
		return false
	}
	return true
}

func (fc *fakeCalling) serveAnswer(w http.ResponseWriter, r *http.Request, tenant string) {
	var req struct {
		CallbackURI        string   `json:"callbackUri"`
		AcceptedModalities []string `json:"acceptedModalities"`
		MediaConfig        struct {
			ODataType string `json:"@odata.type"`
		} `json:"mediaConfig"`
	}
	if !decode(w, r, &req) {
		return
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	call, ok := fc.record(w, CallRequest{Op: "answer", CallID: r.PathValue("id"), Tenant: tenant, Detail: req.CallbackURI}, true)
	if !ok {
		return
	}
	switch {
	case call.direction != "incoming" || call.state != "incoming":
		graphError(w, http.StatusBadRequest, "BadRequest", "The call is not an incoming call waiting for an answer.")
		return
	case !strings.EqualFold(req.MediaConfig.ODataType, "#microsoft.graph.serviceHostedMediaConfig") || !slices.Contains(req.AcceptedModalities, "audio"):
		graphError(w, http.StatusBadRequest, "BadRequest", "Service-hosted media and audio are required.")
		return
	}
	if req.CallbackURI != "" {
		call.callback = req.CallbackURI
	}
	call.answered = true
	call.state = "established"
	call.participants = append(call.participants, fakeParticipant{id: newID(), party: call.target})
	fc.stateNotice(call, "establishing", nil)
	fc.stateNotice(call, "established", nil)
	w.WriteHeader(http.StatusAccepted)
}

func (fc *fakeCalling) serveReject(w http.ResponseWriter, r *http.Request, tenant string) {
	var req struct {
		Reason string `json:"reason"`
	}
	if !decode(w, r, &req) {
		return
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	call, ok := fc.record(w, CallRequest{Op: "reject", CallID: r.PathValue("id"), Tenant: tenant, Detail: req.Reason}, true)
	if !ok {
		return
	}
	call.state = "terminated"
	w.WriteHeader(http.StatusAccepted)
}

func (fc *fakeCalling) serveRedirect(w http.ResponseWriter, r *http.Request, tenant string) {
	var req struct {
		Targets     []invitationJSON `json:"targets"`
		CallbackURI string           `json:"callbackUri"`
	}
	if !decode(w, r, &req) {
		return
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	target := ""
	if len(req.Targets) > 0 {
		target = partyString(req.Targets[0].Identity.party())
	}
	call, ok := fc.record(w, CallRequest{Op: "redirect", CallID: r.PathValue("id"), Tenant: tenant, Target: target}, true)
	if !ok {
		return
	}
	call.state = "terminated"
	w.WriteHeader(http.StatusAccepted)
}

func (fc *fakeCalling) servePlayPrompt(w http.ResponseWriter, r *http.Request, tenant string) {
	var req struct {
		Prompts []struct {
			MediaInfo struct {
				URI string `json:"uri"`
			} `json:"mediaInfo"`
		} `json:"prompts"`
		ClientContext string `json:"clientContext"`
	}
	if !decode(w, r, &req) || len(req.Prompts) == 0 {
		if len(req.Prompts) == 0 {
			graphError(w, http.StatusBadRequest, "BadRequest", "At least one prompt is required.")
		}
		return
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	uri := req.Prompts[0].MediaInfo.URI
	call, ok := fc.record(w, CallRequest{Op: "playPrompt", CallID: r.PathValue("id"), Tenant: tenant, Detail: uri + " " + req.ClientContext}, true)
	if !ok {
		return
	}
	if call.state != "established" {
		graphError(w, http.StatusBadRequest, "BadRequest", "The call is not established.")
		return
	}
	op := fakeOp{id: newID(), uri: uri, context: req.ClientContext}
	if call.playing == nil {
		fc.start(call, op)
	} else {
		call.queued = append(call.queued, op)
	}
	writeJSON(w, http.StatusOK, map[string]any{"@odata.type": "#microsoft.graph.playPromptOperation", "id": op.id, "status": "running", "clientContext": op.context})
}

// start plays op in call (mu held).
func (fc *fakeCalling) start(call *fakeCall, op fakeOp) {
	call.playing = &op
	call.prompts = append(call.prompts, op.uri)
	if fc.opts.PromptLength != nil {
		d := fc.opts.PromptLength(op.uri)
		id, opID := call.id, op.id
		time.AfterFunc(d, func() {
			fc.mu.Lock()
			defer fc.mu.Unlock()
			if c := fc.calls[id]; c != nil && c.playing != nil && c.playing.id == opID {
				fc.finish(c, true)
			}
		})
	}
}

// finish ends the playing prompt (mu held): completed, or failed when cancelled.
func (fc *fakeCalling) finish(call *fakeCall, completed bool) {
	op := call.playing
	call.playing = nil
	if op == nil {
		return
	}
	status, code, sub := "completed", 200, 0
	if !completed {
		status, code, sub = "failed", 400, 8508
	}
	fc.opNotice(call, "playPromptOperation", op.id, op.context, status, code, sub)
	if len(call.queued) > 0 && completed {
		next := call.queued[0]
		call.queued = call.queued[1:]
		fc.start(call, next)
	}
}

func (fc *fakeCalling) serveCancelMedia(w http.ResponseWriter, r *http.Request, tenant string) {
	var req struct {
		ClientContext string `json:"clientContext"`
	}
	if !decode(w, r, &req) {
		return
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	call, ok := fc.record(w, CallRequest{Op: "cancelMedia", CallID: r.PathValue("id"), Tenant: tenant, Detail: req.ClientContext}, true)
	if !ok {
		return
	}
	queued := call.queued
	call.queued = nil
	fc.finish(call, false)
	for _, op := range queued {
		fc.opNotice(call, "playPromptOperation", op.id, op.context, "failed", 400, 8508)
	}
	writeJSON(w, http.StatusOK, map[string]any{"@odata.type": "#microsoft.graph.cancelMediaProcessingOperation", "id": newID(),
		"status": "completed", "clientContext": req.ClientContext})
}

func (fc *fakeCalling) serveDial(w http.ResponseWriter, r *http.Request, tenant string) {
	var req struct {
		CallbackURI string `json:"callbackUri"`
		Source      *struct {
			Identity identitySetJSON `json:"identity"`
		} `json:"source"`
		Targets     []invitationJSON `json:"targets"`
		TenantID    string           `json:"tenantId"`
		MediaConfig struct {
			ODataType string `json:"@odata.type"`
		} `json:"mediaConfig"`
	}
	if !decode(w, r, &req) {
		return
	}
	if len(req.Targets) != 1 || req.Targets[0].Identity.party().IsZero() || req.CallbackURI == "" {
		graphError(w, http.StatusBadRequest, "BadRequest", "One target and a callbackUri are required.")
		return
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	target := req.Targets[0].Identity.party()
	source := calls.Party{Kind: calls.Application, ID: fc.opts.BotAppID}
	if req.Source != nil && !req.Source.Identity.party().IsZero() {
		source = req.Source.Identity.party()
	}
	call := &fakeCall{id: newID(), tenant: req.TenantID, callback: req.CallbackURI, direction: "outgoing", state: "establishing",
		source: source, target: target, answered: true}
	call.participants = []fakeParticipant{{id: newID(), party: source}}
	fc.record(w, CallRequest{Op: "dial", CallID: call.id, Tenant: tenant, Target: partyString(target), Detail: partyString(source)}, false)
	if target.Kind == calls.Phone && source.Kind != calls.ApplicationInstance {
		graphError(w, http.StatusForbidden, "Forbidden", "A call to a phone number needs an application instance as its source.")
		return
	}
	fc.calls[call.id] = call
	fc.stateNotice(call, "establishing", nil)
	fc.behave(call.id, target)
	writeJSON(w, http.StatusCreated, map[string]any{"@odata.type": "#microsoft.graph.call", "id": call.id, "state": "establishing",
		"direction": "outgoing", "callbackUri": call.callback})
}

// behave lets a simulated callee of a ringing call or invitation act by itself (mu held).
func (fc *fakeCalling) behave(id string, callee calls.Party) {
	if fc.opts.Behave == nil {
		return
	}
	b := fc.opts.Behave(callee)
	after := b.After
	if b.Action == ActLetRing {
		after = fc.opts.RingFor
	}
	time.AfterFunc(after, func() {
		var err error
		switch b.Action {
		case ActAnswer:
			err = fc.f.Answer(id)
			if err == nil && b.TalkFor > 0 {
				fc.talk(id, callee, b.TalkFor, 100)
			}
		case ActDecline:
			err = fc.f.Decline(id)
		case ActLetRing:
			err = fc.f.RingOut(id)
		case ActUnreachable:
			err = fc.f.Unreachable(id)
		}
		_ = err // a call that ended meanwhile: nothing to do
	})
}

// talk hangs callee up TalkFor after it joined the call it was rung for (an agent's
// offer leg is joined into the caller's call); while it has not joined yet it waits,
// up to tries times TalkFor.
func (fc *fakeCalling) talk(id string, callee calls.Party, d time.Duration, tries int) {
	time.AfterFunc(d, func() {
		in := fc.callOf(id)
		fc.mu.Lock()
		c := fc.calls[in]
		waiting := c != nil && c.state == "established" && in == id && c.direction == "outgoing" && c.target.Kind == calls.User
		fc.mu.Unlock()
		if waiting && tries > 0 {
			fc.talk(id, callee, d, tries-1) // an agent's leg not joined yet
			return
		}
		if c != nil {
			_ = fc.f.HangUp(in, callee)
		}
	})
}

// callOf is the call a ringing id ended up in: the call an invitation joined, the
// call that replaced a leg, or the call itself.
func (fc *fakeCalling) callOf(id string) string {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if inv := fc.invites[id]; inv != nil {
		return inv.call
	}
	if c := fc.calls[id]; c != nil && c.state == "terminated" {
		for _, other := range fc.calls {
			if other.state == "established" && other.group && slices.ContainsFunc(other.participants, func(p fakeParticipant) bool { return p.party == c.target }) {
				return other.id
			}
		}
	}
	return id
}

func (fc *fakeCalling) serveGet(w http.ResponseWriter, r *http.Request, tenant string) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	call, ok := fc.record(w, CallRequest{Op: "get", CallID: r.PathValue("id"), Tenant: tenant}, false)
	if !ok || call == nil {
		graphError(w, http.StatusNotFound, "ItemNotFound", "The call does not exist.")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"@odata.type": "#microsoft.graph.call", "id": call.id, "state": call.state, "direction": call.direction})
}

func (fc *fakeCalling) serveHangUp(w http.ResponseWriter, r *http.Request, tenant string) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	call, ok := fc.record(w, CallRequest{Op: "hangUp", CallID: r.PathValue("id"), Tenant: tenant}, true)
	if !ok {
		return
	}
	fc.terminate(call, 200, 5000, "")
	w.WriteHeader(http.StatusNoContent)
}

// terminate ends a call for everybody (mu held).
func (fc *fakeCalling) terminate(call *fakeCall, code, sub int, reason string) {
	if call.state == "terminated" {
		return
	}
	call.playing, call.queued = nil, nil
	call.state = "terminated"
	call.participants = nil
	for _, inv := range call.invites {
		delete(fc.invites, inv.id)
	}
	call.invites = nil
	fc.stateNotice(call, "terminated", map[string]any{"resultInfo": map[string]any{"code": code, "subcode": sub}, "terminationReason": reason})
}

func (fc *fakeCalling) serveInvite(w http.ResponseWriter, r *http.Request, tenant string) {
	var req struct {
		Participants  []invitationJSON `json:"participants"`
		ClientContext string           `json:"clientContext"`
	}
	if !decode(w, r, &req) {
		return
	}
	if len(req.Participants) != 1 {
		graphError(w, http.StatusBadRequest, "BadRequest", "Invite one participant at a time.")
		return
	}
	p := req.Participants[0]
	target := p.Identity.party()
	fc.mu.Lock()
	defer fc.mu.Unlock()
	call, ok := fc.record(w, CallRequest{Op: "invite", CallID: r.PathValue("id"), Tenant: tenant, Target: partyString(target),
		Detail: strings.TrimSpace(p.ReplacesCallID + " " + req.ClientContext)}, true)
	if !ok {
		return
	}
	opID := newID()
	writeJSON(w, http.StatusOK, map[string]any{"@odata.type": "#microsoft.graph.inviteParticipantsOperation", "id": opID,
		"status": "running", "clientContext": req.ClientContext})
	if p.ReplacesCallID != "" {
		leg := fc.calls[p.ReplacesCallID]
		if leg == nil || leg.state != "established" || leg.target != target {
			fc.opNotice(call, "inviteParticipantsOperation", opID, req.ClientContext, "failed", 404, 0)
			return
		}
		fc.terminate(leg, 200, 7015, "AppTransferred")
		fc.join(call, target, opID, req.ClientContext)
		return
	}
	inv := &fakeInvite{id: opID, call: call.id, context: req.ClientContext, target: target}
	fc.invites[inv.id] = inv
	call.invites = append(call.invites, inv)
	fc.behave(inv.id, target)
}

// join adds target to call, which becomes a group call (mu held).
func (fc *fakeCalling) join(call *fakeCall, target calls.Party, opID, context string) {
	call.group = true
	call.participants = append(call.participants, fakeParticipant{id: newID(), party: target})
	fc.opNotice(call, "inviteParticipantsOperation", opID, context, "completed", 200, 0)
	fc.rosterNotice(call, "updated", call.participants)
}

func (fc *fakeCalling) serveRemove(w http.ResponseWriter, r *http.Request, tenant string) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	pid := r.PathValue("pid")
	call, ok := fc.record(w, CallRequest{Op: "removeParticipant", CallID: r.PathValue("id"), Tenant: tenant, Detail: pid}, true)
	if !ok {
		return
	}
	i := slices.IndexFunc(call.participants, func(p fakeParticipant) bool { return p.id == pid })
	if i < 0 {
		graphError(w, http.StatusNotFound, "ItemNotFound", "No such participant.")
		return
	}
	call.participants = slices.Delete(call.participants, i, i+1)
	fc.rosterNotice(call, "updated", call.participants)
	w.WriteHeader(http.StatusOK)
}

func (fc *fakeCalling) serveTransfer(w http.ResponseWriter, r *http.Request, tenant string) {
	var req struct {
		TransferTarget invitationJSON `json:"transferTarget"`
		Transferee     *struct {
			ParticipantID string `json:"participantId"`
		} `json:"transferee"`
		ClientContext string `json:"clientContext"`
	}
	if !decode(w, r, &req) {
		return
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	target := req.TransferTarget.Identity.party()
	detail := req.ClientContext
	if req.Transferee != nil {
		detail = strings.TrimSpace("transferee " + req.Transferee.ParticipantID + " " + detail)
	}
	call, ok := fc.record(w, CallRequest{Op: "transfer", CallID: r.PathValue("id"), Tenant: tenant, Target: partyString(target), Detail: detail}, true)
	if !ok {
		return
	}
	if call.group && (req.Transferee == nil || !slices.ContainsFunc(call.participants, func(p fakeParticipant) bool { return p.id == req.Transferee.ParticipantID })) {
		graphError(w, http.StatusBadRequest, "BadRequest", "A transfer out of a group call needs the transferee.")
		return
	}
	w.WriteHeader(http.StatusAccepted)
	fc.stateNotice(call, "transferring", nil)
	if fc.failTransfers {
		fc.stateNotice(call, "established", map[string]any{"resultInfo": map[string]any{"code": 500, "subcode": 7700, "message": "Transfer failed."}})
		return
	}
	fc.terminate(call, 200, 7015, "AppTransferred")
}

func (fc *fakeCalling) serveKeepAlive(w http.ResponseWriter, r *http.Request, tenant string) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if _, ok := fc.record(w, CallRequest{Op: "keepAlive", CallID: r.PathValue("id"), Tenant: tenant}, true); !ok {
		return
	}
	w.WriteHeader(http.StatusOK)
}

// ---- the people's side ----

// ErrNoSuchCall: the fake has no such call or ringing invitation (or it is over).
var ErrNoSuchCall = errors.New("fake calling: no such call")

// PlaceCall makes from call to (a resource account or a phone number) in tenantID:
// the platform announces the incoming call to the bot's webhook and returns its id.
func (f *Fake) PlaceCall(tenantID string, from, to calls.Party) string {
	fc := f.calling
	fc.mu.Lock()
	defer fc.mu.Unlock()
	call := &fakeCall{id: newID(), tenant: tenantID, callback: fc.opts.Webhook, direction: "incoming", state: "incoming",
		source: from, target: to, announced: time.Now()}
	call.participants = []fakeParticipant{{id: newID(), party: from}}
	fc.calls[call.id] = call
	if fc.opts.LegacyFirst {
		legacy, _ := json.Marshal(map[string]any{"id": call.id, "callState": "incoming", "isMultiparty": false,
			"presentedModalityTypes": []string{"audio"}, "participants": []map[string]any{{"identity": from.ID, "originator": true}}})
		fc.post(notice{callID: call.id, url: call.callback, kind: "legacy", tenant: tenantID, body: legacy})
	}
	fc.stateNotice(call, "incoming", map[string]any{"direction": "incoming",
		"source":  map[string]any{"@odata.type": "#microsoft.graph.participantInfo", "identity": identityJSON(from)},
		"targets": []map[string]any{{"@odata.type": "#microsoft.graph.invitationParticipantInfo", "identity": identityJSON(to)}}})
	return call.id
}

// AdoptCall makes the platform know an incoming call it did not announce itself (a
// test posts the notification, e.g. a body from the Graph docs).
func (f *Fake) AdoptCall(tenantID, callID string, from, to calls.Party) {
	fc := f.calling
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.calls[callID] = &fakeCall{id: callID, tenant: tenantID, callback: fc.opts.Webhook, direction: "incoming", state: "incoming",
		source: from, target: to, announced: time.Now(), participants: []fakeParticipant{{id: newID(), party: from}}}
}

// ringing finds a ringing outgoing call or invitation by id (mu held).
func (fc *fakeCalling) ringing(id string) (*fakeCall, *fakeInvite) {
	if inv := fc.invites[id]; inv != nil {
		return nil, inv
	}
	if c := fc.calls[id]; c != nil && c.direction == "outgoing" && c.state == "establishing" {
		return c, nil
	}
	return nil, nil
}

// Answer: the callee of ringing outgoing call id (an offer leg, an outbound customer)
// or of invitation id picks up.
func (f *Fake) Answer(id string) error {
	fc := f.calling
	fc.mu.Lock()
	defer fc.mu.Unlock()
	call, inv := fc.ringing(id)
	switch {
	case call != nil:
		call.state = "established"
		call.participants = append(call.participants, fakeParticipant{id: newID(), party: call.target})
		fc.stateNotice(call, "established", map[string]any{"direction": "outgoing"})
	case inv != nil:
		delete(fc.invites, inv.id)
		host := fc.calls[inv.call]
		if host == nil || host.state == "terminated" {
			return ErrNoSuchCall
		}
		fc.join(host, inv.target, inv.id, inv.context)
	default:
		return ErrNoSuchCall
	}
	return nil
}

// Decline: the callee refuses (603 Decline).
func (f *Fake) Decline(id string) error { return f.calling.refuse(id, 603, 10026) }

// RingOut: the platform stops ringing unanswered (480 Temporarily Unavailable).
func (f *Fake) RingOut(id string) error { return f.calling.refuse(id, 480, 10037) }

// Unreachable: the callee cannot be rung (404).
func (f *Fake) Unreachable(id string) error { return f.calling.refuse(id, 404, 10003) }

func (fc *fakeCalling) refuse(id string, code, sub int) error {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	call, inv := fc.ringing(id)
	switch {
	case call != nil:
		fc.terminate(call, code, sub, "")
	case inv != nil:
		delete(fc.invites, inv.id)
		if host := fc.calls[inv.call]; host != nil {
			fc.opNotice(host, "inviteParticipantsOperation", inv.id, inv.context, "failed", code, sub)
		}
	default:
		return ErrNoSuchCall
	}
	return nil
}

// HangUp: who leaves call id. A peer-to-peer call ends; a group call goes on without
// them (the app hears of it through a roster update).
func (f *Fake) HangUp(id string, who calls.Party) error {
	fc := f.calling
	fc.mu.Lock()
	defer fc.mu.Unlock()
	call := fc.calls[id]
	if call == nil || call.state == "terminated" {
		return ErrNoSuchCall
	}
	if !call.group {
		fc.terminate(call, 200, 5001, "")
		return nil
	}
	i := slices.IndexFunc(call.participants, func(p fakeParticipant) bool { return strings.EqualFold(p.party.ID, who.ID) && p.party.Kind == who.Kind })
	if i < 0 {
		return ErrNoSuchCall
	}
	call.participants = slices.Delete(call.participants, i, i+1)
	fc.rosterNotice(call, "updated", call.participants)
	return nil
}

// FinishPrompt ends the prompt playing in call id (completed); the next queued starts.
func (f *Fake) FinishPrompt(id string) error {
	fc := f.calling
	fc.mu.Lock()
	defer fc.mu.Unlock()
	call := fc.calls[id]
	if call == nil || call.playing == nil {
		return ErrNoSuchCall
	}
	fc.finish(call, true)
	return nil
}

// DropNotifications makes the platform lose every notification for which drop
// answers true (nil: none), as a crash or a network fault would.
func (f *Fake) DropNotifications(drop func(Delivery) bool) {
	f.calling.mu.Lock()
	f.calling.drop = drop
	f.calling.mu.Unlock()
}

// FailTransfers makes every transfer fail (the call comes back established with a
// failure code) until called with false.
func (f *Fake) FailTransfers(fail bool) {
	f.calling.mu.Lock()
	f.calling.failTransfers = fail
	f.calling.mu.Unlock()
}

// Ringing lists the ids of outgoing calls and invitations ringing at callee.
func (f *Fake) Ringing(callee calls.Party) []string {
	fc := f.calling
	fc.mu.Lock()
	defer fc.mu.Unlock()
	var out []string
	for _, c := range fc.calls {
		if c.direction == "outgoing" && c.state == "establishing" && c.target == callee {
			out = append(out, c.id)
		}
	}
	for _, inv := range fc.invites {
		if inv.target == callee {
			out = append(out, inv.id)
		}
	}
	slices.Sort(out)
	return out
}

// CallView returns what the fake knows of call id.
func (f *Fake) CallView(id string) (FakeCallView, bool) {
	fc := f.calling
	fc.mu.Lock()
	defer fc.mu.Unlock()
	c := fc.calls[id]
	if c == nil {
		return FakeCallView{}, false
	}
	v := FakeCallView{ID: c.id, Direction: c.direction, State: c.state, Source: c.source, Target: c.target, Group: c.group,
		Answered: c.answered, Prompts: slices.Clone(c.prompts)}
	if c.playing != nil {
		v.Playing = c.playing.uri
	}
	for _, p := range c.participants {
		v.Participants = append(v.Participants, p.party)
	}
	return v, true
}

// CallRequests returns the calling requests the app made, in order.
func (f *Fake) CallRequests() []CallRequest {
	f.calling.mu.Lock()
	defer f.calling.mu.Unlock()
	return slices.Clone(f.calling.requests)
}

// ResetCallRequests forgets the requests and deliveries seen so far.
func (f *Fake) ResetCallRequests() {
	f.calling.mu.Lock()
	f.calling.requests, f.calling.deliveries = nil, nil
	f.calling.mu.Unlock()
}

// Deliveries returns the notifications posted so far with the webhook's answers.
func (f *Fake) Deliveries() []Delivery {
	f.calling.mu.Lock()
	defer f.calling.mu.Unlock()
	return slices.Clone(f.calling.deliveries)
}

// Settle waits until every notification was delivered and answered and no calling
// request is being served, or the timeout passed.
func (f *Fake) Settle(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for quiet := 0; quiet < 3; {
		if time.Now().After(deadline) {
			return errors.New("fake calling: not settled in time")
		}
		if f.calling.pending.Load() == 0 {
			quiet++
		} else {
			quiet = 0
		}
		time.Sleep(2 * time.Millisecond)
	}
	return nil
}

// ---- notifications ----

func (fc *fakeCalling) stateNotice(call *fakeCall, state string, extra map[string]any) {
	data := map[string]any{"@odata.type": "#microsoft.graph.call", "@odata.id": "/communications/calls/" + call.id,
		"@odata.etag": fmt.Sprintf(`W/"%d"`, 5000+call.seq), "id": call.id, "state": state}
	call.seq++
	for k, v := range extra {
		if v != "" {
			data[k] = v
		}
	}
	ct := "updated"
	switch state {
	case "incoming":
		ct = "created"
	case "terminated":
		ct = "deleted"
	}
	kind := "state"
	if state == "incoming" {
		kind = "incoming"
	}
	fc.notify(call, kind, state, ct, "/communications/calls/"+call.id, data)
}

func (fc *fakeCalling) opNotice(call *fakeCall, typ, opID, context, status string, code, sub int) {
	path := "/communications/calls/" + call.id + "/operations/" + opID
	data := map[string]any{"@odata.type": "#microsoft.graph." + typ, "@odata.id": path, "id": opID, "clientContext": context,
		"status": status, "resultInfo": map[string]any{"@odata.type": "#microsoft.graph.resultInfo", "code": code, "subcode": sub}}
	fc.notify(call, "operation", typ+" "+status, "deleted", path, data)
}

func (fc *fakeCalling) rosterNotice(call *fakeCall, ct string, ps []fakeParticipant) {
	list := make([]map[string]any, 0, len(ps))
	for _, p := range ps {
		list = append(list, map[string]any{"@odata.type": "#microsoft.graph.participant", "id": p.id,
			"info":    map[string]any{"@odata.type": "#microsoft.graph.participantInfo", "identity": identityJSON(p.party), "endpointType": "default"},
			"isMuted": false, "isInLobby": false})
	}
	fc.notify(call, "roster", fmt.Sprintf("%d participants", len(ps)), ct, "/communications/calls/"+call.id+"/participants", list)
}

// notify queues one notification for the call's callback (mu held).
func (fc *fakeCalling) notify(call *fakeCall, kind, detail, changeType, resource string, data any) {
	body, _ := json.Marshal(map[string]any{"@odata.type": "#microsoft.graph.commsNotifications", "value": []map[string]any{{
		"@odata.type": "#microsoft.graph.commsNotification", "changeType": changeType, "resourceUrl": resource, "resourceData": data}}})
	n := notice{callID: call.id, url: call.callback, kind: kind, detail: detail, tenant: call.tenant, body: body}
	if fc.drop != nil && fc.drop(Delivery{CallID: call.id, Kind: kind, Detail: detail}) {
		fc.deliveries = append(fc.deliveries, Delivery{CallID: call.id, Kind: kind, Detail: detail, Status: -1})
		return
	}
	fc.post(n)
	if fc.opts.Duplicate {
		fc.post(n)
	}
}

func (fc *fakeCalling) post(n notice) {
	fc.pending.Add(1)
	fc.qmu.Lock()
	defer fc.qmu.Unlock()
	q := fc.queues[n.callID]
	if q == nil {
		q = &callQueue{}
		fc.queues[n.callID] = q
	}
	q.items = append(q.items, n)
	if !q.running {
		q.running = true
		go fc.drain(n.callID, q)
	}
}

// drain posts one call's queued notifications, in order. A 5xx is retried (twice,
// shortly after), as the platform retries.
func (fc *fakeCalling) drain(id string, q *callQueue) {
	for {
		fc.qmu.Lock()
		if len(q.items) == 0 {
			q.running = false
			delete(fc.queues, id)
			fc.qmu.Unlock()
			return
		}
		n := q.items[0]
		q.items = q.items[1:]
		fc.qmu.Unlock()
		status := 0
		for try := 0; try < 3; try++ {
			status = fc.postOnce(n)
			if status < 500 && status != 0 {
				break
			}
			time.Sleep(time.Duration(try+1) * 50 * time.Millisecond)
		}
		fc.mu.Lock()
		fc.deliveries = append(fc.deliveries, Delivery{CallID: n.callID, Kind: n.kind, Detail: n.detail, Status: status})
		fc.mu.Unlock()
		fc.pending.Add(-1)
	}
}

// token is the notification token for a tenant, reused for ten minutes as a signed
// token is reused by the platform.
func (fc *fakeCalling) token(tenantID string) string {
	fc.qmu.Lock()
	defer fc.qmu.Unlock()
	if t, ok := fc.tokens[tenantID]; ok && time.Since(t.at) < 10*time.Minute {
		return t.tok
	}
	tok := fc.f.CallingToken(tenantID, nil)
	fc.tokens[tenantID] = cachedToken{tok, time.Now()}
	return tok
}

type cachedToken struct {
	tok string
	at  time.Time
}

func (fc *fakeCalling) postOnce(n notice) int {
	fc.mu.Lock()
	client := fc.opts.Client
	fc.mu.Unlock()
	if n.url == "" || client == nil {
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url, bytes.NewReader(n.body))
	if err != nil {
		return 0
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+fc.token(n.tenant))
	res, err := client.Do(req)
	if err != nil {
		return 0
	}
	defer res.Body.Close()
	return res.StatusCode
}
