// Package outbound schedules outbound tasks (SPEC §6): a caller (Power Automate over
// Service Bus, or the admin API) asks for a customer to be called at a due time; the
// task waits as a scheduled Service Bus message and, when due, becomes a routing task
// distributed to agents like an inbound call.
//
// At most the tenant's Extensions.OutboundCap tasks are live (scheduled or in
// progress) per service. The cap is enforced by the Store atomically: the task insert
// and the service's counter update are one transaction guarded by the counter's ETag,
// so concurrent requests on any number of instances never exceed it. A slot is freed by
// a state change to a final state together with the counter decrement, again in one
// transaction. The reconciler (Service.Reconcile) recounts live tasks and repairs the
// counter, schedules accepted tasks whose scheduling never happened, and finishes
// routed tasks whose routing task has ended.
//
// Customer identifiers (phone numbers, UPNs) are never logged nor put in error texts.
package outbound

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/routing"
)

// State is where an outbound task is in its life.
type State string

const (
	Scheduled State = "Scheduled" // accepted; a scheduled message fires at Due
	Routed    State = "Routed"    // due: handed to routing as a routing task
	Completed State = "Completed" // its call ended after an agent took it
	Failed    State = "Failed"    // routing gave up (queue timeout, full queue, transfer failed)
	Cancelled State = "Cancelled" // DELETE before it was due
	Abandoned State = "Abandoned" // the call ended before an agent answered
)

// Live reports whether a task in state s holds a slot of the cap.
func (s State) Live() bool { return s == Scheduled || s == Routed }

// CustomerKind says what the customer identifier is.
type CustomerKind string

const (
	PSTN CustomerKind = "PSTN" // an E.164 phone number
	UPN  CustomerKind = "UPN"  // a Teams user (user principal name)
)

// Limits of a request.
const (
	MaxNotes      = 1000
	MaxParams     = 20
	MaxParamKey   = 64
	MaxParamValue = 256
	MaxCustomer   = 256

	DefaultHorizon = 30 * 24 * time.Hour
)

// Request is one request to schedule an outbound task, as the HTTP body and the
// Service Bus message carry it (TenantID and ServiceID come from the path over HTTP).
type Request struct {
	TaskID    string            `json:"taskId"`
	TenantID  string            `json:"tenantId,omitempty"`
	ServiceID string            `json:"serviceId,omitempty"`
	Customer  string            `json:"customer"`
	Due       string            `json:"due"` // RFC 3339; past or now: as soon as possible
	Priority  string            `json:"priority,omitempty"`
	Notes     string            `json:"notes,omitempty"`
	Params    map[string]string `json:"params,omitempty"`
}

// Task is a stored outbound task.
type Task struct {
	TenantID     string            `json:"tenantId"`
	ServiceID    string            `json:"serviceId"`
	ID           string            `json:"taskId"`
	Customer     string            `json:"customer"`
	CustomerKind CustomerKind      `json:"customerKind"`
	Due          time.Time         `json:"due"` // as requested (UTC)
	Priority     routing.Priority  `json:"priority"`
	Notes        string            `json:"notes,omitempty"`
	Params       map[string]string `json:"params,omitempty"`
	// The tenant's "directly invite" flags at acceptance, for the dialler.
	DirectInvitePSTN bool `json:"directInvitePstn"`
	DirectInviteUPN  bool `json:"directInviteUpn"`

	State     State     `json:"state"`
	Accepted  time.Time `json:"accepted"`
	UpdatedAt time.Time `json:"updatedAt"`
	// Sequence is the sequence number of the scheduled message once scheduling
	// happened (0 before): Cancel needs it; the reconciler schedules a Scheduled task
	// that has none.
	Sequence    int64     `json:"sequence,omitempty"`
	ScheduledAt time.Time `json:"scheduledAt,omitempty"` // when the message becomes visible
	// RoutingTaskID is the routing task created when the task was due.
	RoutingTaskID string `json:"routingTaskId,omitempty"`
	// ETag is the stored version this value was read at.
	ETag string `json:"-"`
}

// Clone returns a deep copy.
func (t Task) Clone() Task {
	if t.Params != nil {
		p := make(map[string]string, len(t.Params))
		for k, v := range t.Params {
			p[k] = v
		}
		t.Params = p
	}
	return t
}

// Counter is a service's count of live tasks as the store keeps it.
type Counter struct {
	TenantID  string
	ServiceID string
	Count     int
}

// ErrLimitReached is what a request over the cap fails with (errors.Is); the error is
// a *LimitError carrying the limit and the current count.
var ErrLimitReached = errors.New("OutboundLimitReached")

// LimitError says the service has Current live tasks and the limit is Limit.
type LimitError struct {
	Limit   int
	Current int
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("OutboundLimitReached: the service has %d scheduled or in-progress outbound tasks, the limit is %d", e.Current, e.Limit)
}

// Is makes errors.Is(err, ErrLimitReached) true.
func (e *LimitError) Is(target error) bool { return target == ErrLimitReached }

// Store keeps outbound tasks and each service's counter of live tasks. Safe for
// concurrent use, also across processes sharing the storage.
type Store interface {
	// ReserveOutbound inserts t (State Scheduled) and increments the service's counter
	// in one atomic step, if the counter is below limit. If a task with t's id exists
	// it is returned with created=false and nothing changes (the caller compares
	// fingerprints). Over the cap: a *LimitError and nothing changes.
	ReserveOutbound(ctx context.Context, t Task, limit int) (got Task, created bool, err error)
	// GetOutbound returns one task; fault.ErrNotFound when none.
	GetOutbound(ctx context.Context, tenantID, serviceID, taskID string) (Task, error)
	// ListOutbound returns the service's tasks, ordered by id; only live ones if
	// liveOnly.
	ListOutbound(ctx context.Context, tenantID, serviceID string, liveOnly bool) ([]Task, error)
	// SetOutboundSchedule records the sequence number and time of the task's scheduled
	// message (nothing else changes).
	SetOutboundSchedule(ctx context.Context, tenantID, serviceID, taskID string, seq int64, at time.Time) error
	// MarkOutboundRouted moves a Scheduled task to Routed with its routing task id; a
	// task not Scheduled is returned unchanged.
	MarkOutboundRouted(ctx context.Context, tenantID, serviceID, taskID, routingTaskID string, at time.Time) (Task, error)
	// FinishOutbound moves a live task to the final state s and decrements the counter
	// in one atomic step. A task already final is returned unchanged (idempotent).
	FinishOutbound(ctx context.Context, tenantID, serviceID, taskID string, s State, at time.Time) (Task, error)
	// OutboundCounter returns the service's counter (0 when there is none).
	OutboundCounter(ctx context.Context, tenantID, serviceID string) (int, error)
	// ListOutboundCounters returns every service's counter (the reconciler's list of
	// services with outbound tasks).
	ListOutboundCounters(ctx context.Context) ([]Counter, error)
	// RepairOutboundCounter recounts the service's live tasks and, if the counter
	// differs, sets it to that count, guarded against concurrent changes. It returns
	// the counter before and after.
	RepairOutboundCounter(ctx context.Context, tenantID, serviceID string) (before, after int, err error)
}

var (
	e164    = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)
	upnRule = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)
)

// CheckTaskID accepts caller-supplied task ids: 1..64 of letters, digits, '.', '_', '-'.
func CheckTaskID(s string) error {
	if s == "" {
		return fault.Invalid("taskId", "required")
	}
	if len(s) > 64 {
		return fault.Invalid("taskId", "at most 64 characters")
	}
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fault.Invalid("taskId", "only letters, digits and . _ -")
		}
	}
	return nil
}

// ClassifyCustomer says whether s is an E.164 number or a UPN.
func ClassifyCustomer(s string) (CustomerKind, error) {
	switch {
	case s == "":
		return "", fault.Invalid("customer", "required: an E.164 number (+41441234567) or a UPN")
	case len(s) > MaxCustomer:
		return "", fault.Invalid("customer", fmt.Sprintf("at most %d characters", MaxCustomer))
	case strings.HasPrefix(s, "+"):
		if !e164.MatchString(s) {
			return "", fault.Invalid("customer", "not an E.164 number: + then 2..15 digits, no spaces")
		}
		return PSTN, nil
	case upnRule.MatchString(s):
		return UPN, nil
	default:
		return "", fault.Invalid("customer", "must be an E.164 number (+41441234567) or a UPN (name@domain)")
	}
}

// Validate checks a request against its rules; now and horizon decide the due time's
// upper bound. The error is a *fault.FieldError naming the field and the rule.
func Validate(r Request, now time.Time, horizon time.Duration) (Task, error) {
	if err := routing.CheckID("tenantId", r.TenantID); err != nil {
		return Task{}, err
	}
	if err := routing.CheckID("serviceId", r.ServiceID); err != nil {
		return Task{}, err
	}
	if err := CheckTaskID(r.TaskID); err != nil {
		return Task{}, err
	}
	kind, err := ClassifyCustomer(r.Customer)
	if err != nil {
		return Task{}, err
	}
	if r.Due == "" {
		return Task{}, fault.Invalid("due", "required: an RFC 3339 time (past or now: as soon as possible)")
	}
	due, err := time.Parse(time.RFC3339, r.Due)
	if err != nil {
		return Task{}, fault.Invalid("due", "not an RFC 3339 time (2026-11-24T10:00:00Z)")
	}
	due = due.UTC()
	if horizon <= 0 {
		horizon = DefaultHorizon
	}
	if due.After(now.Add(horizon)) {
		return Task{}, fault.Invalid("due", fmt.Sprintf("more than %d days ahead", int(horizon/(24*time.Hour))))
	}
	p, err := routing.ParsePriority(r.Priority)
	if err != nil {
		return Task{}, err
	}
	if utf8.RuneCountInString(r.Notes) > MaxNotes || !utf8.ValidString(r.Notes) {
		return Task{}, fault.Invalid("notes", fmt.Sprintf("at most %d characters of valid UTF-8", MaxNotes))
	}
	if len(r.Params) > MaxParams {
		return Task{}, fault.Invalid("params", fmt.Sprintf("at most %d entries", MaxParams))
	}
	for k, v := range r.Params {
		if k == "" || len(k) > MaxParamKey || !utf8.ValidString(k) {
			return Task{}, fault.Invalid("params", fmt.Sprintf("names are 1..%d characters", MaxParamKey))
		}
		if len(v) > MaxParamValue || !utf8.ValidString(v) {
			return Task{}, fault.Invalid("params."+k, fmt.Sprintf("at most %d bytes", MaxParamValue))
		}
	}
	t := Task{TenantID: r.TenantID, ServiceID: r.ServiceID, ID: r.TaskID, Customer: r.Customer, CustomerKind: kind,
		Due: due, Priority: p, Notes: r.Notes, State: Scheduled}
	if len(r.Params) > 0 {
		t.Params = make(map[string]string, len(r.Params))
		for k, v := range r.Params {
			t.Params[k] = v
		}
	}
	return t, nil
}

// fingerprint hashes what the caller asked for (not what the tenant settings add).
func fingerprint(t Task) string {
	keys := make([]string, 0, len(t.Params))
	for k := range t.Params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	params := make([][2]string, len(keys))
	for i, k := range keys {
		params[i] = [2]string{k, t.Params[k]}
	}
	b, _ := json.Marshal([]any{t.Customer, t.Due.Format(time.RFC3339Nano), string(t.Priority), t.Notes, params})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// Fingerprint identifies what the caller asked for: a replay with the same task id and
// fingerprint gets the task back; a different one is a conflict.
func Fingerprint(t Task) string { return fingerprint(t) }

// PartitionKey is the key of a service's counter and tasks in storage: tenant id and
// service id never contain '|'.
func PartitionKey(tenantID, serviceID string) string { return tenantID + "|" + serviceID }

// MessageID is the scheduled message's MessageId (duplicate detection drops a second
// schedule of the same task).
func MessageID(t Task) string { return t.TenantID + "|" + t.ServiceID + "|" + t.ID }

// RoutingTaskID is the routing task id of a due outbound task.
func RoutingTaskID(taskID string) string { return "ob-" + taskID }
