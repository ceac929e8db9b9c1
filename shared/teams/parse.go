package teams

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/teamscc/teamscc/shared/fault"
)

// ErrLegacy means the body is the legacy-format first callback of an incoming call
// (a JSON object without Graph's "value" array). The platform sends the call again in
// Graph's format when the webhook answers 204 No Content.
var ErrLegacy = errors.New("teams: legacy-format callback")

// Parse reads an authenticated notification body ({"value":[...]}) and returns the
// events it carries, in order.
//
// Errors: the body is not a JSON object: *fault.FieldError on "body"; a JSON object
// without "value": ErrLegacy; "value" not a non-empty array, or an item with a missing
// field or a wrong type: *fault.FieldError naming it, e.g.
// "value[2].resourceData.id: required". Lifecycle notifications and notifications
// about something other than a call, its participants or its operations (content
// sharing, audio routing groups, another resource type) yield no event.
func Parse(body []byte) ([]Event, error) {
	events, _, err := parse(body)
	return events, err
}

// notification is one item of "value".
type notification struct {
	ODataType      string          `json:"@odata.type"`
	ChangeType     string          `json:"changeType"`
	Resource       string          `json:"resource"`
	ResourceURL    string          `json:"resourceUrl"`
	ResourceData   json.RawMessage `json:"resourceData"`
	LifecycleEvent string          `json:"lifecycleEvent"`
}

// callResource is the part of Graph's call resource the controller reads. Display
// names are not decoded: they are customer data we have no use for.
type callResource struct {
	ODataType         string            `json:"@odata.type"`
	ODataID           string            `json:"@odata.id"`
	ETag              string            `json:"@odata.etag"`
	ID                string            `json:"id"`
	State             *string           `json:"state"`
	Direction         string            `json:"direction"`
	Source            *participantInfo  `json:"source"`
	Targets           []participantInfo `json:"targets"`
	ResultInfo        *resultInfo       `json:"resultInfo"`
	TerminationReason string            `json:"terminationReason"`
}

type participantInfo struct {
	Identity identitySet `json:"identity"`
}

type identitySet struct {
	ApplicationInstance *identity `json:"applicationInstance"`
	Application         *identity `json:"application"`
	Phone               *identity `json:"phone"`
	User                *identity `json:"user"`
}

type identity struct {
	ID string `json:"id"`
}

// resultInfo: Graph spells the subcode both "subcode" and "subCode"; encoding/json
// matches names case-insensitively, so one field reads both.
type resultInfo struct {
	Code    int `json:"code"`
	Subcode int `json:"subcode"`
}

type participantResource struct {
	ODataType string          `json:"@odata.type"`
	ID        string          `json:"id"`
	Info      participantInfo `json:"info"`
}

type operationResource struct {
	ODataType     string      `json:"@odata.type"`
	ID            string      `json:"id"`
	Status        string      `json:"status"`
	ClientContext string      `json:"clientContext"`
	ResultInfo    *resultInfo `json:"resultInfo"`
}

const (
	callODataType   = "#microsoft.graph.call"
	graphTypePrefix = "#microsoft.graph."
)

// parse is Parse that also counts the notifications it skipped.
func parse(body []byte) (events []Event, skipped int, err error) {
	var env map[string]json.RawMessage
	if err := json.Unmarshal(body, &env); err != nil || env == nil {
		return nil, 0, fault.Invalid("body", "must be a JSON object {\"value\":[...]}")
	}
	raw, ok := env["value"]
	if !ok {
		return nil, 0, ErrLegacy
	}
	if v := bytes.TrimSpace(raw); len(v) == 0 || v[0] != '[' {
		return nil, 0, fault.Invalid("value", "required: an array of notifications")
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, 0, fault.Invalid("value", "must be an array of notifications")
	}
	if len(items) == 0 {
		return nil, 0, fault.Invalid("value", "must hold at least one notification")
	}
	events = make([]Event, 0, len(items))
	for i, it := range items {
		at := "value[" + strconv.Itoa(i) + "]"
		var n notification
		if err := json.Unmarshal(it, &n); err != nil {
			return nil, 0, typeError(at, err)
		}
		ev, skip, err := toEvent(at, &n)
		if err != nil {
			return nil, 0, err
		}
		if skip {
			skipped++
			continue
		}
		events = append(events, ev)
	}
	return events, skipped, nil
}

// toEvent turns one notification into an Event, or says to skip it.
func toEvent(at string, n *notification) (Event, bool, error) {
	if n.LifecycleEvent != "" {
		return Event{}, true, nil
	}
	ct := ChangeType(strings.ToLower(n.ChangeType))
	switch ct {
	case Created, Updated, Deleted:
	case "":
		return Event{}, false, fault.Invalid(at+".changeType", "required")
	default:
		return Event{}, false, fault.Invalid(at+".changeType", "must be created, updated or deleted")
	}
	resource := n.ResourceURL
	if resource == "" {
		resource = n.Resource
	}
	pathID, sub := callPath(resource)
	data := bytes.TrimSpace(n.ResourceData)
	if len(data) == 0 || bytes.Equal(data, []byte("null")) {
		if sub == "" && pathID != "" && ct == Deleted {
			data = []byte("{}") // a deleted call without data: ended
		} else {
			return Event{}, false, fault.Invalid(at+".resourceData", "required")
		}
	}
	lsub := strings.ToLower(sub)
	switch {
	case strings.HasPrefix(lsub, "participants"):
		return rosterEvent(at, ct, pathID, data)
	case strings.HasPrefix(lsub, "operations"):
		return operationEvent(at, ct, pathID, sub, data)
	case sub != "":
		return Event{}, true, nil // content sharing, audio routing groups, ...
	}
	if data[0] != '{' {
		if pathID == "" {
			return Event{}, true, nil // a collection about something else
		}
		return Event{}, false, fault.Invalid(at+".resourceData", "must be an object")
	}
	var c callResource
	if err := json.Unmarshal(data, &c); err != nil {
		return Event{}, false, typeError(at+".resourceData", err)
	}
	if strings.HasSuffix(strings.ToLower(c.ODataType), "operation") {
		return operationEvent(at, ct, pathID, "operations", data)
	}
	if c.ODataType != "" && !strings.EqualFold(c.ODataType, callODataType) {
		return Event{}, true, nil
	}
	if pathID == "" {
		pathID, _ = callPath(c.ODataID)
	}
	ev := Event{CallID: c.ID, ChangeType: ct, Direction: strings.ToLower(c.Direction), Sequence: c.ETag}
	if ev.CallID == "" {
		ev.CallID = pathID
	}
	if ev.CallID == "" {
		return Event{}, false, fault.Invalid(at+".resourceData.id", "required")
	}
	if err := CheckCallID(at+".resourceData.id", ev.CallID); err != nil {
		return Event{}, false, err
	}
	if c.State != nil {
		ev.State = canonicalState(*c.State)
	}
	if ev.State == "" && ct != Deleted {
		return Event{}, false, fault.Invalid(at+".resourceData.state", "required")
	}
	if c.ResultInfo != nil {
		ev.Result.Code, ev.Result.Subcode = c.ResultInfo.Code, c.ResultInfo.Subcode
	}
	ev.Result.TerminationReason = c.TerminationReason
	if c.Source != nil {
		ev.Source = party(c.Source.Identity)
	}
	for _, t := range c.Targets {
		if ev.Target.IsZero() {
			ev.Target = party(t.Identity)
		}
		if ev.Agent == "" && t.Identity.User != nil {
			ev.Agent = t.Identity.User.ID
		}
	}
	if ev.Direction != "outgoing" {
		ev.Agent = ""
	}
	ev.Kind = classify(ct, ev.State, ev.Result)
	return ev, false, nil
}

// rosterEvent reads a participants notification: resourceData is an array of
// participants (or one participant).
func rosterEvent(at string, ct ChangeType, callID string, data []byte) (Event, bool, error) {
	if callID == "" {
		return Event{}, false, fault.Invalid(at+".resourceUrl", "must name a call")
	}
	var ps []participantResource
	switch data[0] {
	case '[':
		if err := json.Unmarshal(data, &ps); err != nil {
			return Event{}, false, typeError(at+".resourceData", err)
		}
	case '{':
		var p participantResource
		if err := json.Unmarshal(data, &p); err != nil {
			return Event{}, false, typeError(at+".resourceData", err)
		}
		ps = append(ps, p)
	default:
		return Event{}, false, fault.Invalid(at+".resourceData", "must be an array of participants")
	}
	ev := Event{Kind: KindRoster, CallID: callID, ChangeType: ct, Participants: make([]Participant, 0, len(ps))}
	for _, p := range ps {
		ev.Participants = append(ev.Participants, Participant{ID: p.ID, Party: party(p.Info.Identity)})
	}
	return ev, false, nil
}

// operationEvent reads a commsOperation notification.
func operationEvent(at string, ct ChangeType, callID, sub string, data []byte) (Event, bool, error) {
	if callID == "" {
		return Event{}, false, fault.Invalid(at+".resourceUrl", "must name a call")
	}
	if data[0] != '{' {
		return Event{}, false, fault.Invalid(at+".resourceData", "must be an operation object")
	}
	var o operationResource
	if err := json.Unmarshal(data, &o); err != nil {
		return Event{}, false, typeError(at+".resourceData", err)
	}
	op := Operation{ID: o.ID, Status: strings.ToLower(o.Status), ClientContext: o.ClientContext}
	if op.ID == "" {
		_, op.ID, _ = strings.Cut(sub, "/")
	}
	if len(o.ODataType) > len(graphTypePrefix) && strings.EqualFold(o.ODataType[:len(graphTypePrefix)], graphTypePrefix) {
		op.Type = o.ODataType[len(graphTypePrefix):]
	}
	if o.ResultInfo != nil {
		op.Result.Code, op.Result.Subcode = o.ResultInfo.Code, o.ResultInfo.Subcode
	}
	if op.Status == "" {
		return Event{}, false, fault.Invalid(at+".resourceData.status", "required")
	}
	return Event{Kind: KindOperation, CallID: callID, ChangeType: ct, Operation: op}, false, nil
}

// party picks the identity that names a party within one identitySet, most specific
// first.
func party(s identitySet) Party {
	for _, c := range []struct {
		kind PartyKind
		id   *identity
	}{
		{PartyApplicationInstance, s.ApplicationInstance},
		{PartyApplication, s.Application},
		{PartyPhone, s.Phone},
		{PartyUser, s.User},
	} {
		if c.id != nil && c.id.ID != "" {
			return Party{Kind: c.kind, ID: c.id.ID}
		}
	}
	return Party{}
}

// MaxCallIDLen bounds a call id; platform ids are GUIDs or 32 hex digits.
const MaxCallIDLen = 256

// CheckCallID refuses call ids that cannot be keys or path segments.
func CheckCallID(field, id string) error {
	if len(id) > MaxCallIDLen {
		return fault.Invalid(field, fmt.Sprintf("at most %d characters", MaxCallIDLen))
	}
	if strings.ContainsAny(id, "/\\#?'\"") || strings.ContainsFunc(id, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fault.Invalid(field, "must not contain / \\ # ? quotes or control characters")
	}
	return nil
}

// callPath reads a call id from a resource path: "communications/calls/{id}",
// "/communications/calls/{id}", "/app/calls/{id}" or "communications/calls('{id}')";
// sub is what follows the id ("participants", "operations/{opId}", "" for the call).
func callPath(p string) (id, sub string) {
	p = strings.Trim(p, "/")
	i := strings.Index(strings.ToLower(p), "calls")
	if i < 0 || (i > 0 && p[i-1] != '/') {
		return "", ""
	}
	rest := p[i+len("calls"):]
	switch {
	case strings.HasPrefix(rest, "('"):
		end := strings.Index(rest, "')")
		if end < 0 {
			return "", ""
		}
		id, rest = rest[2:end], rest[end+2:]
	case strings.HasPrefix(rest, "/"):
		id, rest, _ = strings.Cut(rest[1:], "/")
	default:
		return "", ""
	}
	return id, strings.Trim(rest, "/")
}

// typeError names the field a JSON type error is about, under prefix.
func typeError(prefix string, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := prefix
		if te.Field != "" {
			field += "." + te.Field
		}
		return fault.Invalid(field, fmt.Sprintf("must be %s, not %s", jsonKind(te.Type.Kind().String()), te.Value))
	}
	return fault.Invalid(prefix, "must be a JSON object")
}

// jsonKind names a Go kind the way a JSON author thinks of it.
func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "int", "int64", "float64":
		return "a number"
	case "bool":
		return "a boolean"
	case "slice":
		return "an array"
	default:
		return "an object"
	}
}
