package teams

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/teamscc/teamscc/shared/fault"
)

// ErrClientState means a notification of the batch carried no clientState or not the
// expected one. The whole batch is refused.
var ErrClientState = errors.New("teams: clientState missing or not the expected one")

// MaxClientStateLen is Graph's limit on a subscription's clientState.
const MaxClientStateLen = 128

// Parse reads a notification body ({"value":[...]}), checks the clientState of every
// notification against expected, and returns the call events it carries, in order.
//
// Errors, in the order they are checked:
//   - the body is not a JSON object with a "value" array: *fault.FieldError ("body" or
//     "value");
//   - any notification lacks clientState or has another one: ErrClientState, and no
//     events at all. The check takes the same time whatever the values (SHA-256 of both
//     sides, compared with crypto/subtle), and happens before any other field is looked
//     at, so an unauthenticated caller learns nothing about validation;
//   - a field is missing or has a wrong type: *fault.FieldError naming it, e.g.
//     "value[2].resourceData.id: required".
//
// Lifecycle notifications (lifecycleEvent set) and notifications about something other
// than a call (participants, operations, another resource type) are authenticated and
// then skipped: they yield no event. An empty expected clientState matches nothing.
func Parse(body []byte, expected string) ([]Event, error) {
	events, _, err := parse(body, expected)
	return events, err
}

// notification is one item of "value", in either shape.
type notification struct {
	ODataType      string          `json:"@odata.type"`
	ID             string          `json:"id"`
	SubscriptionID string          `json:"subscriptionId"`
	ClientState    string          `json:"clientState"`
	ChangeType     string          `json:"changeType"`
	Resource       string          `json:"resource"`
	ResourceURL    string          `json:"resourceUrl"`
	ResourceData   json.RawMessage `json:"resourceData"`
	TenantID       string          `json:"tenantId"`
	LifecycleEvent string          `json:"lifecycleEvent"`
}

// callResource is the part of Graph's call resource that routing reads. Display names
// are not decoded: they are customer data we have no use for.
type callResource struct {
	ODataType         string            `json:"@odata.type"`
	ODataID           string            `json:"@odata.id"`
	ETag              string            `json:"@odata.etag"`
	ID                string            `json:"id"`
	State             *string           `json:"state"`
	Direction         string            `json:"direction"`
	TenantID          string            `json:"tenantId"`
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
	ID       string `json:"id"`
	TenantID string `json:"tenantId"`
}

// resultInfo: Graph spells the subcode both "subcode" and "subCode"; encoding/json
// matches names case-insensitively, so one field reads both.
type resultInfo struct {
	Code    int `json:"code"`
	Subcode int `json:"subcode"`
}

const callODataType = "#microsoft.graph.call"

// parse is Parse that also counts the notifications it skipped.
func parse(body []byte, expected string) (events []Event, skipped int, err error) {
	var env struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, 0, fault.Invalid("body", "must be a JSON object {\"value\":[...]}")
	}
	if v := bytes.TrimSpace(env.Value); len(v) == 0 || v[0] != '[' {
		return nil, 0, fault.Invalid("value", "required: an array of notifications")
	}
	var items []json.RawMessage
	if err := json.Unmarshal(env.Value, &items); err != nil {
		return nil, 0, fault.Invalid("value", "must be an array of notifications")
	}
	if len(items) == 0 {
		return nil, 0, fault.Invalid("value", "must hold at least one notification")
	}

	// Decode every item (a type error leaves the other fields filled in), then
	// authenticate all of them before reporting anything else.
	ns := make([]notification, len(items))
	decodeErrs := make([]error, len(items))
	for i, raw := range items {
		decodeErrs[i] = json.Unmarshal(raw, &ns[i])
	}
	want := sha256.Sum256([]byte(expected))
	ok := 1
	for i := range ns {
		got := sha256.Sum256([]byte(ns[i].ClientState))
		// Every item is compared, mismatch or not: the time taken does not say which.
		ok &= subtle.ConstantTimeCompare(got[:], want[:]) & boolInt(ns[i].ClientState != "")
	}
	if ok != 1 || expected == "" {
		return nil, 0, ErrClientState
	}

	events = make([]Event, 0, len(ns))
	for i := range ns {
		at := "value[" + strconv.Itoa(i) + "]"
		if err := decodeErrs[i]; err != nil {
			return nil, 0, typeError(at, err)
		}
		ev, skip, err := toEvent(at, &ns[i])
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

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// toEvent turns one authenticated notification into an Event, or says to skip it.
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
	resource := n.Resource
	if resource == "" {
		resource = n.ResourceURL
	}
	pathID, sub := callPath(resource)
	if sub {
		return Event{}, true, nil // a call's participants, operations, ...
	}
	data := bytes.TrimSpace(n.ResourceData)
	if len(data) == 0 || bytes.Equal(data, []byte("null")) {
		return Event{}, false, fault.Invalid(at+".resourceData", "required")
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
	if c.ODataType != "" && !strings.EqualFold(c.ODataType, callODataType) {
		return Event{}, true, nil
	}
	if pathID == "" && resource != "" && !isCallsCollection(resource) {
		return Event{}, true, nil // a subscription on another resource
	}
	if pathID == "" {
		pathID, _ = callPath(c.ODataID)
	}
	ev := Event{
		CallID:         c.ID,
		ChangeType:     ct,
		Direction:      strings.ToLower(c.Direction),
		NotificationID: n.ID,
		SubscriptionID: n.SubscriptionID,
		Sequence:       c.ETag,
		TenantID:       n.TenantID,
	}
	if ev.CallID == "" {
		ev.CallID = pathID
	}
	if ev.CallID == "" {
		return Event{}, false, fault.Invalid(at+".resourceData.id", "required")
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

	if ev.Direction == "outgoing" {
		// Our offer leg to an agent: we (the service) are the source, the agent a target.
		if c.Source != nil {
			ev.Target, _ = service(c.Source.Identity)
		}
		for _, t := range c.Targets {
			if t.Identity.User != nil && t.Identity.User.ID != "" {
				ev.Agent = t.Identity.User.ID
				break
			}
		}
	} else {
		for _, t := range c.Targets {
			if p, tenant := service(t.Identity); !p.IsZero() {
				ev.Target = p
				if ev.TenantID == "" {
					ev.TenantID = tenant
				}
				break
			}
		}
	}
	if ev.TenantID == "" {
		ev.TenantID = c.TenantID
	}
	ev.Kind = classify(ct, ev.State, ev.Result)
	return ev, false, nil
}

// service picks the identity that names a service within one identitySet, most
// specific first, with its tenant id.
func service(s identitySet) (Party, string) {
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
			return Party{Kind: c.kind, ID: c.id.ID}, c.id.TenantID
		}
	}
	return Party{}, ""
}

// callPath reads a call id from a resource path: "communications/calls/{id}",
// "/communications/calls/{id}", "/app/calls/{id}" or "communications/calls('{id}')".
// sub reports a path below a call ("/communications/calls/{id}/participants").
func callPath(p string) (id string, sub bool) {
	p = strings.Trim(p, "/")
	i := strings.Index(strings.ToLower(p), "calls")
	if i < 0 || (i > 0 && p[i-1] != '/') {
		return "", false
	}
	rest := p[i+len("calls"):]
	switch {
	case strings.HasPrefix(rest, "('"):
		end := strings.Index(rest, "')")
		if end < 0 {
			return "", false
		}
		id, rest = rest[2:end], rest[end+2:]
	case strings.HasPrefix(rest, "/"):
		rest = rest[1:]
		id, rest, _ = strings.Cut(rest, "/")
		if rest != "" {
			rest = "/" + rest
		}
	default:
		return "", false
	}
	return id, strings.Trim(rest, "/") != ""
}

// isCallsCollection reports a subscription resource naming the calls collection itself.
func isCallsCollection(p string) bool {
	p = strings.ToLower(strings.Trim(p, "/"))
	return p == "communications/calls" || p == "app/calls"
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
