package graph

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/presence"
)

// Error is a failure of a Graph or Entra call. On its own it is transient (network,
// throttling or 5xx after retries, timeouts, unexpected answers); the calling
// platform's methods wrap refusals in fault.Permanent and answer 404 with an Error
// that unwraps to fault.ErrNotFound. Its text never holds a password, a token, a
// user's name or id, or a phone number; it unwraps to context.Canceled or
// DeadlineExceeded when the caller's context ended, and to fault.ErrUnavailable (with
// DeadlineExceeded for a timed-out attempt) when Graph gave no answer.
type Error struct {
	// Op is the Graph operation ("getPresencesByUserId", "presence", "answer", ...)
	// or "token".
	Op string
	// Status is the HTTP status of the last answer, 0 when there was none.
	Status int
	msg    string
	cause  error // context errors, fault.ErrNotFound or ErrUnavailable: nothing that could carry a secret
}

func (e *Error) Error() string { return "graph " + e.Op + ": " + e.msg }

// Unwrap returns the context error that ended the call, if any.
func (e *Error) Unwrap() error { return e.cause }

var aadstsRE = regexp.MustCompile(`AADSTS(\d+)`)

// authHints are what an admin should know about the common refusals.
var authHints = map[string]string{
	"AADSTS50126":   "wrong username or password",
	"AADSTS50076":   "multi-factor authentication required; exclude the presence account from MFA",
	"AADSTS50079":   "multi-factor authentication registration required; exclude the presence account from MFA",
	"AADSTS50158":   "external security challenge (MFA) required; exclude the presence account",
	"AADSTS53003":   "blocked by conditional access; exclude the presence account from the policy",
	"AADSTS65001":   "admin consent for the app is missing in the tenant",
	"AADSTS50034":   "account does not exist in the directory",
	"AADSTS50057":   "account is disabled",
	"AADSTS50053":   "account is locked or sign-in blocked",
	"AADSTS50055":   "password expired",
	"AADSTS7000215": "invalid client secret",
	"AADSTS700016":  "application not found in the tenant",
	"AADSTS90002":   "tenant not found",
}

// classify turns an SDK error into *presence.AuthError (the credential is refused)
// or *Error (transient). secrets are redacted from every text kept.
func (r *Reader) classify(ctx context.Context, op string, err error, secrets ...string) error {
	if ce := ctx.Err(); ce != nil {
		return &Error{Op: op, msg: ce.Error(), cause: ce}
	}
	var afe *azidentity.AuthenticationFailedError
	if errors.As(err, &afe) {
		return entraError(afe, secrets)
	}
	status, code := 0, ""
	var se *statusError
	var api abs.ApiErrorable
	if errors.As(err, &se) {
		status, code = se.status, se.code
	} else if errors.As(err, &api) {
		status = api.GetStatusCode()
		var od *odataerrors.ODataError
		if errors.As(err, &od) && od.GetErrorEscaped() != nil {
			code = safeCode(deref(od.GetErrorEscaped().GetCode()))
		}
	}
	if status != 0 {
		detail := ""
		if code != "" {
			detail = " (" + code + ")"
		}
		switch status {
		case 401, 403:
			return &presence.AuthError{Code: "HTTP" + strconv.Itoa(status),
				Message: "Graph refused the credential: HTTP " + strconv.Itoa(status) + detail +
					"; check Presence.Read.All consent for the account or app"}
		}
		msg := "HTTP " + strconv.Itoa(status) + detail
		if retryable(status) {
			msg += " after retries"
		}
		if se != nil && se.msg != "" {
			msg += ": " + se.msg
		}
		return &Error{Op: op, Status: status, msg: msg}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		// url.Error's text holds the request URL, with the user of ReadPresence.
		// No answer (refused, reset, timed out): Graph is unavailable for now.
		msg := redact(ue.Err.Error(), secrets)
		cause := fault.ErrUnavailable
		if errors.Is(ue.Err, context.DeadlineExceeded) {
			msg, cause = "attempt timed out", errors.Join(context.DeadlineExceeded, fault.ErrUnavailable)
		}
		return &Error{Op: op, msg: msg, cause: cause}
	}
	return &Error{Op: op, msg: redact(err.Error(), secrets)}
}

// statusError is a Graph answer that was not a success.
type statusError struct {
	status int
	code   string // OData error code, when the body had a plain one
	msg    string
}

func (e *statusError) Error() string {
	return "HTTP " + strconv.Itoa(e.status) + " " + e.code + " " + e.msg
}

// newStatusError reads the OData error code of a failed answer (never its message,
// which may name the user).
func newStatusError(status int, body io.Reader) *statusError {
	var od struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.NewDecoder(io.LimitReader(body, 64<<10)).Decode(&od)
	return &statusError{status: status, code: safeCode(od.Error.Code)}
}

// entraError classifies a refused token request. The AADSTS code comes from the
// response's error_codes, else its error_description, else the error text.
func entraError(afe *azidentity.AuthenticationFailedError, secrets []string) error {
	var body struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
		Codes       []int  `json:"error_codes"`
	}
	status := 0
	if afe.RawResponse != nil {
		status = afe.RawResponse.StatusCode
		if b, err := runtime.Payload(afe.RawResponse); err == nil {
			_ = json.Unmarshal(b, &body)
		}
	}
	code := ""
	switch {
	case len(body.Codes) > 0:
		code = "AADSTS" + strconv.Itoa(body.Codes[0])
	case aadstsRE.MatchString(body.Description):
		code = aadstsRE.FindString(body.Description)
	case aadstsRE.MatchString(afe.Error()):
		code = aadstsRE.FindString(afe.Error())
	}
	desc := describe(body.Description, secrets)
	if status == 429 || status >= 500 {
		msg := "Entra unavailable: HTTP " + strconv.Itoa(status)
		if code != "" {
			msg += " " + code
		}
		return &Error{Op: "token", Status: status, msg: msg}
	}
	if code == "" {
		switch {
		case status >= 400:
			code = "HTTP" + strconv.Itoa(status)
			if e := safeCode(body.Error); e != "" {
				desc = e
			}
		case strings.Contains(afe.Error(), "unknown account type"):
			// MSAL's user-realm lookup does not know the account's domain.
			return &presence.AuthError{Code: "UnknownAccountType", Message: "Entra does not know the presence account's domain"}
		default:
			// No answer from Entra (network, discovery): transient.
			return &Error{Op: "token", msg: "Entra sign-in failed without an answer: " + describe(afe.Error(), secrets)}
		}
	}
	msg := authHints[code]
	if msg == "" {
		msg = "Entra refused the sign-in"
	}
	if desc != "" {
		msg += " (Entra: " + desc + ")"
	}
	return &presence.AuthError{Code: code, Message: msg}
}

// describe keeps the first line of Entra's error_description without its AADSTS
// prefix, redacted and bounded.
func describe(d string, secrets []string) string {
	d, _, _ = strings.Cut(d, "\n")
	d = strings.TrimSpace(strings.TrimSuffix(d, "\r"))
	if loc := aadstsRE.FindStringIndex(d); loc != nil && loc[0] == 0 {
		d = strings.TrimSpace(strings.TrimPrefix(d[loc[1]:], ":"))
	}
	d = redact(d, secrets)
	if len(d) > 200 {
		d = d[:200] + "…"
	}
	return d
}

var (
	emailRE  = regexp.MustCompile(`[^\s'"<>(),;:/]+@[^\s'"<>(),;:/]+`)
	bearerRE = regexp.MustCompile(`(?i)bearer\s+[A-Za-z0-9\-._~+/]+=*`)
)

// redact removes secrets (also URL-escaped), anything that looks like an e-mail or
// UPN, and bearer tokens.
func redact(s string, secrets []string) string {
	for _, sec := range secrets {
		if sec == "" {
			continue
		}
		for _, v := range []string{sec, url.PathEscape(sec), url.QueryEscape(sec)} {
			s = replaceFold(s, v, "***")
		}
	}
	s = emailRE.ReplaceAllString(s, "***")
	return bearerRE.ReplaceAllString(s, "Bearer ***")
}

func replaceFold(s, old, repl string) string {
	if old == "" {
		return s
	}
	lo, lold := strings.ToLower(s), strings.ToLower(old)
	if len(lo) != len(s) { // non-ASCII case folding changed lengths: exact match only
		return strings.ReplaceAll(s, old, repl)
	}
	var b strings.Builder
	for {
		i := strings.Index(lo, lold)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		b.WriteString(repl)
		s, lo = s[i+len(old):], lo[i+len(old):]
	}
}

// safeCode keeps an error code only if it is a plain identifier.
func safeCode(c string) string {
	if c == "" || len(c) > 64 {
		return ""
	}
	for _, r := range c {
		if !(r == '_' || r == '.' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return ""
		}
	}
	return c
}
