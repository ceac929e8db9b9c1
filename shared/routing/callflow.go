package routing

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/tenant"
)

// CallFlow is how a service treats a call besides choosing its agent (SPEC §8): its
// audio, whether it is open, and where a call goes that leaves without an agent.
type CallFlow struct {
	// Closed: the service takes no calls now. An incoming call is answered, hears the
	// Closed announcement and takes the exit.
	Closed  bool    `json:"closed,omitempty"`
	Prompts Prompts `json:"prompts,omitempty"`
	// Exit is taken after a queue timeout, a full queue, a closed service or a failed
	// transfer (each after its announcement). A service of type None redirects every
	// call to the exit's Transfer target before answering (no target: the call is
	// rejected).
	Exit Exit `json:"exit,omitempty"`
}

// Prompts are a service's audio, each the https URI of a WAV file (16 kHz mono PCM,
// what Graph's service-hosted media plays). An unset prompt is silence: nothing is
// played at that point.
type Prompts struct {
	Greeting       string `json:"greeting,omitempty"`       // once, when the call is answered
	Music          string `json:"music,omitempty"`          // looped while the caller waits
	QueueTimeout   string `json:"queueTimeout,omitempty"`   // before the exit after the queue timeout
	QueueFull      string `json:"queueFull,omitempty"`      // before the exit when the queue is full
	Closed         string `json:"closed,omitempty"`         // before the exit when the service is closed
	TransferFailed string `json:"transferFailed,omitempty"` // before the exit when a transfer failed
}

// All returns the prompts that are set, for the platform to fetch ahead.
func (p Prompts) All() []string {
	var out []string
	for _, u := range []string{p.Greeting, p.Music, p.QueueTimeout, p.QueueFull, p.Closed, p.TransferFailed} {
		if u != "" {
			out = append(out, u)
		}
	}
	return out
}

// ExitAction is what happens to a call that leaves without an agent.
type ExitAction string

const (
	// ExitHangUp ends the call (the default).
	ExitHangUp ExitAction = "HangUp"
	// ExitTransfer hands the call to Exit.Target: a Teams user (Entra object id) or a
	// phone number (E.164; allowed only with the PSTN licence of the first service
	// that answered the call, SPEC §3).
	ExitTransfer ExitAction = "Transfer"
	// ExitService queues the call in another service of the tenant (Exit.Target = its id).
	ExitService ExitAction = "Service"
)

// Exit is a service's exit path.
type Exit struct {
	Action ExitAction `json:"action,omitempty"` // "" = HangUp
	Target string     `json:"target,omitempty"`
}

// EffectiveAction is the action with the default applied.
func (x Exit) EffectiveAction() ExitAction {
	if x.Action == "" {
		return ExitHangUp
	}
	return x.Action
}

// MaxPromptURI bounds a prompt URI's length.
const MaxPromptURI = 2048

// validate checks the call flow of service id; errors name the field and the rule.
func (f CallFlow) validate(serviceID string) error {
	for _, p := range []struct{ field, v string }{
		{"calls.prompts.greeting", f.Prompts.Greeting}, {"calls.prompts.music", f.Prompts.Music},
		{"calls.prompts.queueTimeout", f.Prompts.QueueTimeout}, {"calls.prompts.queueFull", f.Prompts.QueueFull},
		{"calls.prompts.closed", f.Prompts.Closed}, {"calls.prompts.transferFailed", f.Prompts.TransferFailed},
	} {
		if p.v == "" {
			continue
		}
		u, err := url.Parse(p.v)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || len(p.v) > MaxPromptURI {
			return fault.Invalid(p.field, fmt.Sprintf("must be an https:// URL of at most %d characters (a WAV file, 16 kHz mono)", MaxPromptURI))
		}
	}
	switch f.Exit.EffectiveAction() {
	case ExitHangUp:
		if f.Exit.Target != "" {
			return fault.Invalid("calls.exit.target", "must be empty when the exit hangs up")
		}
	case ExitTransfer:
		t := NormalizeTarget(f.Exit.Target)
		if !tenant.IsGUID(t) && !IsE164(t) {
			return fault.Invalid("calls.exit.target", "a transfer needs a Teams user (Entra object id) or an E.164 phone number")
		}
	case ExitService:
		if err := CheckID("calls.exit.target", f.Exit.Target); err != nil {
			return err
		}
		if strings.EqualFold(f.Exit.Target, serviceID) {
			return fault.Invalid("calls.exit.target", "must be another service")
		}
	default:
		return fault.Invalid("calls.exit.action", "must be HangUp, Transfer or Service")
	}
	return nil
}
