package graph

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/communications"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/teamscc/teamscc/shared/calls"
	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/routing"
)

// The Reader is also the calling platform: Graph's call API under
// /communications/calls, with the app's own (application) credential in the
// call's tenant. A calling bot has application permissions only (Calls.Initiate.All,
// Calls.JoinGroupCall.All, ...), so every request is made with the client secret.
//
// Errors of these methods, mapped once here: bad input is a *fault.FieldError before
// any request; 404 is fault.ErrNotFound (errors.Is); any other 4xx, a refused or
// missing credential is fault.Permanent; 429 and 5xx after retryTransport's retries,
// network errors and timeouts are transient *Error. No error text holds a secret, a
// token, a phone number or a user id.
var _ calls.Platform = (*Reader)(nil)

// callCred is the credential of every call request.
var callCred = presence.Credential{Kind: presence.CredApplication}

// maxClientContext is Graph's limit on clientContext (playPrompt, invite).
const maxClientContext = 256

// Answer implements calls.Platform: POST /communications/calls/{id}/answer with
// service-hosted media, audio only, and a.Prefetch as preFetchMedia.
func (r *Reader) Answer(ctx context.Context, tenantID, callID string, a calls.Answer) error {
	const op = "answer"
	err := errors.Join(checkPathID("callID", callID), checkCallbackURI(a.CallbackURI, true))
	for _, u := range a.Prefetch {
		if e := checkMediaURI("prefetch", u); e != nil {
			err = errors.Join(err, e)
			break
		}
	}
	if err != nil {
		return err
	}
	actx, err := r.callAuth(ctx, op, tenantID)
	if err != nil {
		return err
	}
	mc := models.NewServiceHostedMediaConfig()
	if len(a.Prefetch) > 0 {
		media := make([]models.MediaInfoable, 0, len(a.Prefetch))
		seen := make(map[string]bool, len(a.Prefetch))
		for _, u := range a.Prefetch {
			if !seen[u] {
				seen[u] = true
				media = append(media, mediaInfo(u))
			}
		}
		mc.SetPreFetchMedia(media)
	}
	body := communications.NewCallsItemAnswerPostRequestBody()
	body.SetCallbackUri(&a.CallbackURI)
	body.SetAcceptedModalities([]models.Modality{models.AUDIO_MODALITY})
	body.SetMediaConfig(mc)
	err = r.client.Communications().Calls().ByCallId(callID).Answer().Post(actx, body,
		&communications.CallsItemAnswerRequestBuilderPostRequestConfiguration{Options: statusOnly()})
	return r.callFault(ctx, op, err)
}

// Reject implements calls.Platform: POST /communications/calls/{id}/reject. An
// empty reason is sent as "none".
func (r *Reader) Reject(ctx context.Context, tenantID, callID string, reason calls.RejectReason) error {
	const op = "reject"
	if err := checkPathID("callID", callID); err != nil {
		return err
	}
	var rr models.RejectReason
	switch reason {
	case calls.RejectNone, "":
		rr = models.NONE_REJECTREASON
	case calls.RejectBusy:
		rr = models.BUSY_REJECTREASON
	case calls.RejectForbidden:
		rr = models.FORBIDDEN_REJECTREASON
	default:
		return fault.Invalid("reason", "must be none, busy or forbidden")
	}
	actx, err := r.callAuth(ctx, op, tenantID)
	if err != nil {
		return err
	}
	body := communications.NewCallsItemRejectPostRequestBody()
	body.SetReason(&rr)
	err = r.client.Communications().Calls().ByCallId(callID).Reject().Post(actx, body,
		&communications.CallsItemRejectRequestBuilderPostRequestConfiguration{Options: statusOnly()})
	return r.callFault(ctx, op, err)
}

// Redirect implements calls.Platform: POST /communications/calls/{id}/redirect with
// one target; an empty callbackURI leaves the bot's global callback in force.
func (r *Reader) Redirect(ctx context.Context, tenantID, callID string, target calls.Target, callbackURI string) error {
	const op = "redirect"
	if err := errors.Join(checkPathID("callID", callID), checkTarget("target", target),
		checkCallbackURI(callbackURI, false)); err != nil {
		return err
	}
	actx, err := r.callAuth(ctx, op, tenantID)
	if err != nil {
		return err
	}
	body := communications.NewCallsItemRedirectPostRequestBody()
	body.SetTargets([]models.InvitationParticipantInfoable{invitee(target)})
	if callbackURI != "" {
		body.SetCallbackUri(&callbackURI)
	}
	err = r.client.Communications().Calls().ByCallId(callID).Redirect().Post(actx, body,
		&communications.CallsItemRedirectRequestBuilderPostRequestConfiguration{Options: statusOnly()})
	return r.callFault(ctx, op, err, target.ID)
}

// PlayPrompt implements calls.Platform: POST /communications/calls/{id}/playPrompt
// with one mediaPrompt whose resourceId is the one Answer prefetched the uri under.
func (r *Reader) PlayPrompt(ctx context.Context, tenantID, callID, uri, clientContext string) error {
	const op = "playPrompt"
	if err := errors.Join(checkPathID("callID", callID), checkMediaURI("uri", uri),
		checkClientContext(clientContext)); err != nil {
		return err
	}
	actx, err := r.callAuth(ctx, op, tenantID)
	if err != nil {
		return err
	}
	p := models.NewMediaPrompt()
	p.SetMediaInfo(mediaInfo(uri))
	body := communications.NewCallsItemPlayPromptPostRequestBody()
	body.SetPrompts([]models.Promptable{p})
	if clientContext != "" {
		body.SetClientContext(&clientContext)
	}
	_, err = r.client.Communications().Calls().ByCallId(callID).PlayPrompt().Post(actx, body,
		&communications.CallsItemPlayPromptRequestBuilderPostRequestConfiguration{Options: statusOnly()})
	return r.callFault(ctx, op, err)
}

// CancelMedia implements calls.Platform: POST
// /communications/calls/{id}/cancelMediaProcessing (the prompt playing and those
// queued behind it).
func (r *Reader) CancelMedia(ctx context.Context, tenantID, callID, clientContext string) error {
	const op = "cancelMediaProcessing"
	if err := errors.Join(checkPathID("callID", callID), checkClientContext(clientContext)); err != nil {
		return err
	}
	actx, err := r.callAuth(ctx, op, tenantID)
	if err != nil {
		return err
	}
	body := communications.NewCallsItemCancelMediaProcessingPostRequestBody()
	if clientContext != "" {
		body.SetClientContext(&clientContext)
	}
	_, err = r.client.Communications().Calls().ByCallId(callID).CancelMediaProcessing().Post(actx, body,
		&communications.CallsItemCancelMediaProcessingRequestBuilderPostRequestConfiguration{Options: statusOnly()})
	return r.callFault(ctx, op, err)
}

// Dial implements calls.Platform: POST /communications/calls, a peer-to-peer call
// with service-hosted media from d.Source (an application instance; empty: the bot)
// to d.Target, in tenantID. It returns the new call's id.
//
// A phone target needs a Source: Graph places PSTN calls only from an application
// instance with a number. Dial is not idempotent: a request that failed after
// reaching Graph (a timeout) may still have placed the call.
func (r *Reader) Dial(ctx context.Context, tenantID string, d calls.Dial) (string, error) {
	const op = "createCall"
	err := errors.Join(checkTarget("target", d.Target), checkCallbackURI(d.CallbackURI, true))
	if d.Source != "" {
		err = errors.Join(err, checkText("source", d.Source))
	} else if d.Target.Kind == calls.Phone {
		err = errors.Join(err, fault.Invalid("source", "required to call a phone number"))
	}
	if err != nil {
		return "", err
	}
	actx, err := r.callAuth(ctx, op, tenantID)
	if err != nil {
		return "", err
	}
	c := models.NewCall()
	c.SetOdataType(ptrTo("#microsoft.graph.call"))
	c.SetCallbackUri(&d.CallbackURI)
	if d.Source != "" {
		src := models.NewParticipantInfo()
		src.SetOdataType(ptrTo("#microsoft.graph.participantInfo"))
		src.SetIdentity(identitySet(calls.Party{Kind: calls.ApplicationInstance, ID: d.Source}))
		c.SetSource(src)
	}
	c.SetTargets([]models.InvitationParticipantInfoable{invitee(d.Target)})
	c.SetRequestedModalities([]models.Modality{models.AUDIO_MODALITY})
	c.SetMediaConfig(models.NewServiceHostedMediaConfig())
	c.SetTenantId(&tenantID)
	var answer struct {
		ID string `json:"id"`
	}
	_, err = r.client.Communications().Calls().Post(actx, c,
		&communications.CallsRequestBuilderPostRequestConfiguration{Options: []abs.RequestOption{decodeInto(&answer)}})
	if err != nil {
		return "", r.callFault(ctx, op, err, d.Target.ID)
	}
	if answer.ID == "" || checkPathID("id", answer.ID) != nil {
		return "", &Error{Op: op, Status: 201, msg: "answer without a usable call id"}
	}
	return answer.ID, nil
}

// Invite implements calls.Platform: POST /communications/calls/{id}/participants/invite
// with one participant, replacing the call replacesCallID when set.
func (r *Reader) Invite(ctx context.Context, tenantID, callID string, target calls.Target, replacesCallID, clientContext string) error {
	const op = "invite"
	err := errors.Join(checkPathID("callID", callID), checkTarget("target", target), checkClientContext(clientContext))
	if replacesCallID != "" {
		err = errors.Join(err, checkPathID("replacesCallID", replacesCallID))
	}
	if err != nil {
		return err
	}
	actx, err := r.callAuth(ctx, op, tenantID)
	if err != nil {
		return err
	}
	p := invitee(target)
	if replacesCallID != "" {
		p.SetReplacesCallId(&replacesCallID)
	}
	body := communications.NewCallsItemParticipantsInvitePostRequestBody()
	body.SetParticipants([]models.InvitationParticipantInfoable{p})
	if clientContext != "" {
		body.SetClientContext(&clientContext)
	}
	_, err = r.client.Communications().Calls().ByCallId(callID).Participants().Invite().Post(actx, body,
		&communications.CallsItemParticipantsInviteRequestBuilderPostRequestConfiguration{Options: statusOnly()})
	return r.callFault(ctx, op, err, target.ID)
}

// Transfer implements calls.Platform: POST /communications/calls/{id}/transfer with
// transferTarget, and transferee (a participantInfo naming only its participantId)
// when transferee is set.
func (r *Reader) Transfer(ctx context.Context, tenantID, callID string, target calls.Target, transferee, clientContext string) error {
	const op = "transfer"
	err := errors.Join(checkPathID("callID", callID), checkTarget("target", target), checkClientContext(clientContext))
	if transferee != "" {
		err = errors.Join(err, checkText("transferee", transferee))
	}
	if err != nil {
		return err
	}
	actx, err := r.callAuth(ctx, op, tenantID)
	if err != nil {
		return err
	}
	body := communications.NewCallsItemTransferPostRequestBody()
	body.SetTransferTarget(invitee(target))
	if transferee != "" {
		p := models.NewParticipantInfo()
		p.SetOdataType(ptrTo("#microsoft.graph.participantInfo"))
		p.SetParticipantId(&transferee)
		body.SetTransferee(p)
	}
	if clientContext != "" {
		// The v1.0 parameter table and the SDK's body omit clientContext, but the
		// doc's PSTN examples send it at the top level, and the commsOperation that
		// reports the outcome carries it back.
		body.GetAdditionalData()["clientContext"] = clientContext
	}
	err = r.client.Communications().Calls().ByCallId(callID).Transfer().Post(actx, body,
		&communications.CallsItemTransferRequestBuilderPostRequestConfiguration{Options: statusOnly()})
	return r.callFault(ctx, op, err, target.ID)
}

// RemoveParticipant implements calls.Platform: DELETE
// /communications/calls/{id}/participants/{participantID}.
func (r *Reader) RemoveParticipant(ctx context.Context, tenantID, callID, participantID string) error {
	const op = "deleteParticipant"
	if err := errors.Join(checkPathID("callID", callID), checkPathID("participantID", participantID)); err != nil {
		return err
	}
	actx, err := r.callAuth(ctx, op, tenantID)
	if err != nil {
		return err
	}
	err = r.client.Communications().Calls().ByCallId(callID).Participants().ByParticipantId(participantID).Delete(actx,
		&communications.CallsItemParticipantsParticipantItemRequestBuilderDeleteRequestConfiguration{Options: statusOnly()})
	return r.callFault(ctx, op, err)
}

// KeepAlive implements calls.Platform: POST /communications/calls/{id}/keepAlive.
// Graph answers 404 for a call that has already ended.
func (r *Reader) KeepAlive(ctx context.Context, tenantID, callID string) error {
	const op = "keepAlive"
	if err := checkPathID("callID", callID); err != nil {
		return err
	}
	actx, err := r.callAuth(ctx, op, tenantID)
	if err != nil {
		return err
	}
	err = r.client.Communications().Calls().ByCallId(callID).KeepAlive().Post(actx,
		&communications.CallsItemKeepAliveRequestBuilderPostRequestConfiguration{Options: statusOnly()})
	return r.callFault(ctx, op, err)
}

// HangUp implements calls.Platform: DELETE /communications/calls/{id}.
func (r *Reader) HangUp(ctx context.Context, tenantID, callID string) error {
	const op = "deleteCall"
	if err := checkPathID("callID", callID); err != nil {
		return err
	}
	actx, err := r.callAuth(ctx, op, tenantID)
	if err != nil {
		return err
	}
	err = r.client.Communications().Calls().ByCallId(callID).Delete(actx,
		&communications.CallsCallItemRequestBuilderDeleteRequestConfiguration{Options: statusOnly()})
	return r.callFault(ctx, op, err)
}

// State implements calls.Platform: GET /communications/calls/{id}, returning its
// state as Graph spells it ("establishing", "established", "terminated", ...).
func (r *Reader) State(ctx context.Context, tenantID, callID string) (string, error) {
	const op = "getCall"
	if err := checkPathID("callID", callID); err != nil {
		return "", err
	}
	actx, err := r.callAuth(ctx, op, tenantID)
	if err != nil {
		return "", err
	}
	var answer struct {
		State string `json:"state"`
	}
	_, err = r.client.Communications().Calls().ByCallId(callID).Get(actx,
		&communications.CallsCallItemRequestBuilderGetRequestConfiguration{Options: []abs.RequestOption{decodeInto(&answer)}})
	if err != nil {
		return "", r.callFault(ctx, op, err)
	}
	return answer.State, nil
}

// UserID implements calls.Directory: GET /users/{id-or-upn}?$select=id with the
// tenant's application credential (User.Read.All). An unknown user is
// fault.ErrNotFound; the user is never part of an error text.
func (r *Reader) UserID(ctx context.Context, tenantID, user string) (string, error) {
	const op = "getUser"
	if err := checkPathID("user", user); err != nil {
		return "", err
	}
	actx, err := r.callAuth(ctx, op, tenantID)
	if err != nil {
		return "", err
	}
	var answer struct {
		ID string `json:"id"`
	}
	_, err = r.client.Users().ByUserId(user).Get(actx, &users.UserItemRequestBuilderGetRequestConfiguration{
		QueryParameters: &users.UserItemRequestBuilderGetQueryParameters{Select: []string{"id"}},
		Options:         []abs.RequestOption{decodeInto(&answer)}})
	if err != nil {
		return "", r.callFault(ctx, op, err, user)
	}
	if answer.ID == "" {
		return "", fault.Permanent(fmt.Errorf("graph %s: the answer holds no id", op))
	}
	return answer.ID, nil
}

var _ calls.Directory = (*Reader)(nil)

// callAuth validates tenantID and returns ctx carrying the tenant's application
// credential. A refused configuration (no client secret, a tenant id azidentity
// rejects) is permanent.
func (r *Reader) callAuth(ctx context.Context, op, tenantID string) (context.Context, error) {
	if err := checkPathID("tenantID", tenantID); err != nil {
		return nil, err
	}
	auth, err := r.auth(tenantID, callCred)
	if err != nil {
		return nil, fault.Permanent(fmt.Errorf("graph %s: %w", op, err))
	}
	return withAuth(ctx, auth), nil
}

// refused reports a request Graph refused for good (a 4xx other than 429, while ctx
// is live), with its status and the text to keep: "HTTP 403 (code)".
func refused(ctx context.Context, err error) (int, string, bool) {
	var se *statusError
	if ctx.Err() != nil || !errors.As(err, &se) || se.status < 400 || se.status > 499 || se.status == 429 {
		return 0, "", false
	}
	msg := "HTTP " + strconv.Itoa(se.status)
	if se.code != "" {
		msg += " (" + se.code + ")"
	}
	return se.status, msg, true
}

// callFault maps the error of one call request (nil stays nil). identifiers (user
// ids, phone numbers) are redacted from any text kept, with the client secret.
func (r *Reader) callFault(ctx context.Context, op string, err error, identifiers ...string) error {
	if err == nil {
		return nil
	}
	if status, msg, ok := refused(ctx, err); ok {
		switch status {
		case 404:
			return &Error{Op: op, Status: status, msg: msg + ": the call or participant is gone", cause: fault.ErrNotFound}
		case 401, 403:
			msg += ": check the app's Calls.* application permissions and admin consent in the tenant"
		}
		return fault.Permanent(&Error{Op: op, Status: status, msg: msg})
	}
	secrets := append(identifiers, r.opts.ClientSecret)
	err = r.classify(ctx, op, err, secrets...)
	var ae *presence.AuthError
	if errors.As(err, &ae) {
		// Entra refused the app (bad secret, no consent, unknown tenant): a retry
		// cannot help until an admin acts.
		return fault.Permanent(fmt.Errorf("graph %s: %w", op, err))
	}
	return err
}

// statusOnly makes a request check the answer's status and drop its body (the
// operation objects Graph returns are reported again by notifications).
func statusOnly() []abs.RequestOption { return []abs.RequestOption{decodeInto(nil)} }

// invitee is an invitationParticipantInfo naming t.
func invitee(t calls.Target) models.InvitationParticipantInfoable {
	p := models.NewInvitationParticipantInfo()
	p.SetOdataType(ptrTo("#microsoft.graph.invitationParticipantInfo"))
	p.SetIdentity(identitySet(t))
	return p
}

// identitySet names p in a communicationsIdentitySet, the identitySet of calls
// (only it has phone and applicationInstance).
func identitySet(p calls.Party) models.IdentitySetable {
	id := models.NewIdentity()
	id.SetId(&p.ID)
	set := models.NewCommunicationsIdentitySet()
	switch p.Kind {
	case calls.User:
		set.SetUser(id)
	case calls.Phone:
		set.SetPhone(id)
	case calls.ApplicationInstance:
		set.SetApplicationInstance(id)
	case calls.Application:
		set.SetApplication(id)
	}
	return set
}

// mediaInfo is the mediaInfo of one prompt file.
func mediaInfo(uri string) models.MediaInfoable {
	m := models.NewMediaInfo()
	m.SetOdataType(ptrTo("#microsoft.graph.mediaInfo"))
	m.SetUri(&uri)
	id := promptResourceID(uri)
	m.SetResourceId(&id)
	return m
}

// promptNamespace is the URL namespace of RFC 9562 name-based UUIDs.
var promptNamespace = [16]byte{0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}

// promptResourceID is the resourceId of a prompt file: the name-based (SHA-1,
// version 5) UUID of its URI. The platform caches media by resourceId, so the id
// must be the same in answer's preFetchMedia and in every playPrompt for the cached
// copy to be used, and it must change when the file does: a changed prompt needs a
// new URI (the admin UI's upload gives each version its own name).
func promptResourceID(uri string) string {
	h := sha1.New()
	h.Write(promptNamespace[:])
	h.Write([]byte(uri))
	var u [20]byte
	h.Sum(u[:0])
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], u[10:16])
	return string(b[:])
}

func ptrTo[T any](v T) *T { return &v }

// checkPathID refuses an id that is empty or could change the request's path.
func checkPathID(field, id string) error {
	if id == "" {
		return fault.Invalid(field, "required")
	}
	if len(id) > 256 || strings.ContainsAny(id, "/?#\\%") || hasSpaceOrControl(id) {
		return fault.Invalid(field, "must be at most 256 characters without / ? # \\ % or spaces")
	}
	return nil
}

// checkText refuses an empty or oversized identifier or one with control characters.
func checkText(field, s string) error {
	if strings.TrimSpace(s) == "" {
		return fault.Invalid(field, "required")
	}
	if len(s) > 256 || hasSpaceOrControl(s) {
		return fault.Invalid(field, "must be at most 256 characters without spaces")
	}
	return nil
}

func hasSpaceOrControl(s string) bool {
	for _, c := range s {
		if c <= ' ' || c == 0x7f {
			return true
		}
	}
	return false
}

// checkTarget refuses a party Graph cannot ring. The rules name no value: a
// target's id is a customer or user identifier.
func checkTarget(field string, t calls.Target) error {
	switch t.Kind {
	case calls.User, calls.ApplicationInstance, calls.Application:
		return checkText(field+".id", t.ID)
	case calls.Phone:
		if !routing.IsE164(t.ID) {
			return fault.Invalid(field+".id", "must be a phone number in E.164 form (+ and 7 to 15 digits, the first not 0)")
		}
		return nil
	default:
		return fault.Invalid(field+".kind", "must be user, phone, applicationInstance or application")
	}
}

// checkClientContext refuses a clientContext Graph would refuse (too long) or that
// could not be logged safely (control characters).
func checkClientContext(s string) error {
	if len(s) > maxClientContext {
		return fault.Invalid("clientContext", "must be at most 256 characters")
	}
	for _, c := range s {
		if c < ' ' || c == 0x7f {
			return fault.Invalid("clientContext", "must not contain control characters")
		}
	}
	return nil
}

// checkCallbackURI refuses a callback Graph will not post to. Graph requires https;
// plain http is let through for loopback hosts only, where the local runner's
// simulated platform posts.
func checkCallbackURI(u string, required bool) error {
	if u == "" {
		if required {
			return fault.Invalid("callbackUri", "required")
		}
		return nil
	}
	if !httpsOrLoopback(u) {
		return fault.Invalid("callbackUri", "must be an absolute https URI")
	}
	return nil
}

// checkMediaURI refuses a prompt location the platform cannot fetch.
func checkMediaURI(field, u string) error {
	if u == "" {
		return fault.Invalid(field, "required")
	}
	if !httpsOrLoopback(u) {
		return fault.Invalid(field, "must be an absolute https URI")
	}
	return nil
}

func httpsOrLoopback(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || hasSpaceOrControl(s) {
		return false
	}
	switch u.Scheme {
	case "https":
		return true
	case "http":
		h := u.Hostname()
		if h == "localhost" {
			return true
		}
		ip := net.ParseIP(h)
		return ip != nil && ip.IsLoopback()
	}
	return false
}
