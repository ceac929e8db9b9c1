package funchost

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Timer is a timer trigger's value.
type Timer struct {
	// IsPastDue reports that the run is late (the app was down or busy at the due time).
	IsPastDue bool
	// Schedule holds the schedule's settings.
	Schedule struct{ AdjustForDST bool }
	// ScheduleStatus is the host's record of runs; nil when the host sent null, which it
	// does for schedules that fire more often than once a minute.
	ScheduleStatus *ScheduleStatus
}

// ScheduleStatus is the host's record of a timer's runs, in UTC.
type ScheduleStatus struct {
	Last, Next, LastUpdated time.Time
}

// Message is a Service Bus message as the host delivers it.
//
// Body decoding (the trigger value in Data):
//   - a JSON object, array, number or boolean: Body is that JSON, as received;
//   - a JSON string whose content is itself a JSON string (the host encodes strings
//     twice: "\"hello\""): Body is the inner text;
//   - any other JSON string s (encoded once, as a third party captured):
//     if s is valid JSON, Body is s (a JSON body delivered as a string);
//     else, unless ContentType is text/*, if s is non-empty, strictly padded standard
//     base64 that decodes cleanly, Body is the decoded bytes (the host's form of byte[]);
//     else Body is s (plain text).
//
// So a once-encoded text that happens to be valid base64 ("abcd") without a text/*
// ContentType reads as bytes; the host itself encodes text twice, which avoids that.
//
// Metadata: each field is read from its host key (MessageId, DeliveryCount, ...) and
// decoded tolerantly: strings once- or twice-encoded, numbers as strings or numbers,
// times as RFC 3339 or .NET round-trip strings (no zone → UTC). Where the host has
// two names (Subject/Label, EnqueuedTimeUtc/EnqueuedTime,
// ApplicationProperties/UserProperties) the first well-formed value wins. A value that
// is not well-formed for its field (e.g. "MessageId": 5 or "DeliveryCount": "x", which
// happen when a JSON body's own properties are merged into Metadata over the host's keys)
// reads as the zero value instead of failing the message. Body fields are never read from
// Metadata.
type Message struct {
	Body           []byte
	MessageID      string
	SessionID      string
	CorrelationID  string
	ContentType    string
	Subject        string
	LockToken      string
	DeliveryCount  int
	SequenceNumber int64
	EnqueuedTime   time.Time // UTC
	// ApplicationProperties are the message's custom properties, decoded by encoding/json
	// (numbers as float64); nil when there are none.
	ApplicationProperties map[string]any
}

// messageKeys are the Metadata keys Message is read from. A JSON body with a top-level
// property of the same name (compared case-insensitively, like the host's dictionary)
// may have overwritten it.
var messageKeys = []string{
	"MessageId", "SessionId", "CorrelationId", "ContentType", "Subject", "Label", "LockToken",
	"DeliveryCount", "SequenceNumber", "EnqueuedTimeUtc", "EnqueuedTime",
	"ApplicationProperties", "UserProperties",
}

var (
	errNoTimer = errors.New("no timer value in envelope Data")
	errNoBody  = errors.New("no message body in envelope Data")
)

// decodeEnvelope decodes inv.body into inv.timer or inv.msg. For a Service Bus message it
// reports which metadata keys the body may have overwritten; a MessageId in that list is
// not trusted for deduplication. Metadata is read even when Data cannot be, so a parked
// record still names the message.
func (inv *invocation) decodeEnvelope() (collisions []string, err error) {
	var env struct {
		Data     json.RawMessage
		Metadata json.RawMessage
	}
	if err := json.Unmarshal(inv.body, &env); err != nil {
		return nil, err
	}
	var md metadata
	_ = json.Unmarshal(env.Metadata, &md) // Metadata that is not an object reads as empty
	if inv.fn.Kind == KindServiceBus {
		inv.msg = md.message()
	}
	data, err := members(env.Data)
	if err != nil {
		return nil, err
	}

	// The trigger's binding name comes from function.json; do not require one. Take the
	// first value, in document order, that decodes.
	switch inv.fn.Kind {
	case KindTimer:
		for _, d := range data {
			if t, ok := decodeTimer(d.value); ok {
				inv.timer = t
				return nil, nil
			}
		}
		return nil, errNoTimer
	default:
		for _, d := range data {
			if b, ok := decodeBody(d.value, inv.msg.ContentType); ok {
				inv.msg.Body = b
				inv.decoded = true
				collisions = bodyCollisions(b)
				if inv.msg.MessageID != "" && !slices.Contains(collisions, "MessageId") {
					inv.dedupKey = inv.fn.Name + "\x00" + inv.msg.MessageID
				}
				return collisions, nil
			}
		}
		return nil, errNoBody
	}
}

// member is one member of a JSON object.
type member struct {
	key   string
	value json.RawMessage
}

// members returns the members of the JSON object obj in document order.
func members(obj json.RawMessage) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("envelope Data is not a JSON object")
	}
	var out []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		out = append(out, member{key, v})
	}
	return out, nil
}

// decodeTimer decodes a timer value: a JSON object (or, tolerantly, a string holding one).
func decodeTimer(v json.RawMessage) (Timer, bool) {
	if s, ok := unquote(v); ok {
		v = json.RawMessage(s)
	}
	var raw struct {
		IsPastDue      json.RawMessage
		Schedule       json.RawMessage
		ScheduleStatus json.RawMessage
	}
	if first(v) != '{' || json.Unmarshal(v, &raw) != nil {
		return Timer{}, false
	}
	var t Timer
	t.IsPastDue = boolean(raw.IsPastDue)
	var schedule metadata
	if json.Unmarshal(raw.Schedule, &schedule) == nil {
		t.Schedule.AdjustForDST = boolean(schedule["AdjustForDST"])
	}
	var status metadata
	if first(raw.ScheduleStatus) == '{' && json.Unmarshal(raw.ScheduleStatus, &status) == nil {
		t.ScheduleStatus = &ScheduleStatus{
			Last:        status.time("Last"),
			Next:        status.time("Next"),
			LastUpdated: status.time("LastUpdated"),
		}
	}
	return t, true
}

// decodeBody decodes a Service Bus body by the rules documented on Message. ok is false
// for null or an absent value.
func decodeBody(v json.RawMessage, contentType string) (body []byte, ok bool) {
	switch first(v) {
	case 0, 'n':
		return nil, false
	case '"':
	default:
		return v, true
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return nil, false
	}
	if inner, ok := innerString(s); ok {
		return []byte(inner), true
	}
	if json.Valid([]byte(s)) {
		return []byte(s), true
	}
	if s != "" && !strings.HasPrefix(strings.ToLower(contentType), "text/") {
		if b, err := base64.StdEncoding.Strict().DecodeString(s); err == nil {
			return b, true
		}
	}
	return []byte(s), true
}

// unquote decodes a JSON string that may be encoded twice ("\"x\"" and "x" both give x).
// ok is false when v is not a JSON string.
func unquote(v json.RawMessage) (string, bool) {
	var s string
	if first(v) != '"' || json.Unmarshal(v, &s) != nil {
		return "", false
	}
	if inner, ok := innerString(s); ok {
		return inner, true
	}
	return s, true
}

// innerString returns the content of s when s is itself a complete JSON string: the
// host's second layer of encoding.
func innerString(s string) (string, bool) {
	if len(s) < 2 || s[0] != '"' {
		return "", false
	}
	var inner string
	if json.Unmarshal([]byte(s), &inner) != nil {
		return "", false
	}
	return inner, true
}

// first returns the first non-space byte of v, or 0.
func first(v []byte) byte {
	for _, c := range v {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c
	}
	return 0
}

// boolean decodes true/false sent as a JSON boolean or as a string ("true", "True").
// Anything else is false.
func boolean(v json.RawMessage) bool {
	if s, ok := unquote(v); ok {
		b, _ := strconv.ParseBool(strings.TrimSpace(s))
		return b
	}
	var b bool
	_ = json.Unmarshal(v, &b)
	return b
}

// parseTime parses an RFC 3339 or .NET round-trip time ("2026-11-24T10:00:00.1234567Z",
// "...+00:00", or without a zone, which is UTC). The result is in UTC.
func parseTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, strings.TrimSpace(s)); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// metadata is a JSON object read tolerantly, one field at a time.
type metadata map[string]json.RawMessage

// str returns the first of keys whose value is a JSON string, decoded; else "".
func (md metadata) str(keys ...string) string {
	for _, k := range keys {
		if s, ok := unquote(md[k]); ok {
			return s
		}
	}
	return ""
}

// integer returns key's value sent as a JSON integer or a string holding one; else 0.
func (md metadata) integer(key string) int64 {
	v := md[key]
	if s, ok := unquote(v); ok {
		n, _ := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		return n
	}
	var n int64
	_ = json.Unmarshal(v, &n)
	return n
}

// time returns the first of keys whose value parses as a time; else the zero time.
func (md metadata) time(keys ...string) time.Time {
	for _, k := range keys {
		if s, ok := unquote(md[k]); ok {
			if t, ok := parseTime(s); ok {
				return t
			}
		}
	}
	return time.Time{}
}

// object returns the first of keys whose value is a non-empty JSON object (or a string
// holding one); else nil.
func (md metadata) object(keys ...string) map[string]any {
	for _, k := range keys {
		v := md[k]
		if s, ok := unquote(v); ok {
			v = json.RawMessage(s)
		}
		var m map[string]any
		if first(v) == '{' && json.Unmarshal(v, &m) == nil && len(m) > 0 {
			return m
		}
	}
	return nil
}

// message reads a Message's metadata fields (all but Body).
func (md metadata) message() Message {
	return Message{
		MessageID:             md.str("MessageId"),
		SessionID:             md.str("SessionId"),
		CorrelationID:         md.str("CorrelationId"),
		ContentType:           md.str("ContentType"),
		Subject:               md.str("Subject", "Label"),
		LockToken:             md.str("LockToken"),
		DeliveryCount:         int(md.integer("DeliveryCount")),
		SequenceNumber:        md.integer("SequenceNumber"),
		EnqueuedTime:          md.time("EnqueuedTimeUtc", "EnqueuedTime"),
		ApplicationProperties: md.object("ApplicationProperties", "UserProperties"),
	}
}

// bodyCollisions returns the messageKeys a JSON object body has as top-level properties.
func bodyCollisions(body []byte) []string {
	if first(body) != '{' {
		return nil
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(body, &obj) != nil {
		return nil
	}
	var out []string
	for _, k := range messageKeys {
		for bk := range obj {
			if strings.EqualFold(k, bk) {
				out = append(out, k)
				break
			}
		}
	}
	return out
}
