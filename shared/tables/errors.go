package tables

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/teamscc/teamscc/shared/fault"
)

// storageError is a request the service refused, reduced to what is safe to log: the
// status, the service's error code and the first line of its message. It unwraps to
// the fault sentinel for the status (if any) and to the *azcore.ResponseError.
type storageError struct {
	status  int
	code    string // service error code, e.g. "EntityAlreadyExists"
	message string // first line of the service's message
	batch   bool   // the status came from inside a failed batch (outer 202)
	action  int    // index of the failed action in the batch; -1 if unknown
	kind    error  // fault.ErrNotFound / ErrConflict / ErrPrecondition, or nil
	cause   error
}

func (e *storageError) Error() string {
	var b strings.Builder
	if e.batch {
		b.WriteString("batch failed")
		if e.action >= 0 {
			fmt.Fprintf(&b, " at action %d", e.action)
		}
		b.WriteString(": ")
	}
	fmt.Fprintf(&b, "table storage answered %d", e.status)
	if e.code != "" {
		b.WriteString(" " + e.code)
	}
	if e.message != "" {
		b.WriteString(": " + e.message)
	}
	if e.kind != nil {
		b.WriteString(" (" + e.kind.Error() + ")")
	}
	return b.String()
}

func (e *storageError) Unwrap() []error {
	if e.kind == nil {
		return []error{e.cause}
	}
	return []error{e.kind, e.cause}
}

// wrap classifies err and prefixes it with op ("verb noun").
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", op, classify(err))
}

// classify translates an SDK error into a storageError carrying the fault sentinel
// for its status, and strips request URLs (a SAS in the query is a secret) from
// transport errors. Other errors (context, validation) pass unchanged.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var se *storageError
	if errors.As(err, &se) {
		return err
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		e := &storageError{status: re.StatusCode, code: re.ErrorCode, action: -1, cause: re}
		var body []byte
		if re.RawResponse != nil {
			body, _ = runtime.Payload(re.RawResponse)
		}
		if re.StatusCode == http.StatusAccepted {
			// A failed batch is answered 202 Accepted; the real status is only inside
			// the multipart body (PLATFORM.md). aztables turns it into a
			// ResponseError with StatusCode 202 and no error code.
			e.batch = true
			if st, code, msg, ok := parseBatchFailure(body); ok {
				e.status, e.code = st, code
				e.action, e.message = splitAction(msg)
			}
		} else if code, msg := parseODataError(body); msg != "" || code != "" {
			if e.code == "" {
				e.code = code
			}
			e.message = msg
		}
		switch e.status {
		case http.StatusNotFound:
			e.kind = fault.ErrNotFound
		case http.StatusConflict:
			e.kind = fault.ErrConflict
		case http.StatusPreconditionFailed:
			e.kind = fault.ErrPrecondition
		}
		return e
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		// url.Error prints the full URL, query (SAS signature) included. A request
		// that got no answer (refused, reset, timed out) is the storage being
		// unavailable, not the request being wrong.
		return fmt.Errorf("table storage request failed: %w: %w", fault.ErrUnavailable, ue.Err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("table storage did not answer in time: %w: %w", fault.ErrUnavailable, err)
	}
	return err
}

var innerStatus = regexp.MustCompile(`HTTP/1\.[01] (\d{3})`)

// parseBatchFailure finds the first failed inner response of a batch answer: its
// status, error code and message.
func parseBatchFailure(body []byte) (status int, code, msg string, ok bool) {
	for _, m := range innerStatus.FindAllSubmatchIndex(body, -1) {
		st, _ := strconv.Atoi(string(body[m[2]:m[3]]))
		if st < 400 {
			continue
		}
		rest := body[m[1]:]
		if i := bytes.IndexByte(rest, '{'); i >= 0 {
			code, msg = parseODataError(rest[i:])
		}
		return st, code, msg, true
	}
	return 0, "", "", false
}

// parseODataError reads {"odata.error":{"code":..,"message":{"value":..}}} from the
// start of b (trailing bytes ignored) and returns the code and the message's first
// line.
func parseODataError(b []byte) (code, msg string) {
	var e struct {
		Err struct {
			Code    string `json:"code"`
			Message struct {
				Value string `json:"value"`
			} `json:"message"`
		} `json:"odata.error"`
	}
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&e); err != nil {
		return "", ""
	}
	msg, _, _ = strings.Cut(e.Err.Message.Value, "\n")
	return e.Err.Code, strings.TrimSpace(msg)
}

// splitAction splits the "N:" prefix the service puts on the message of a failed
// batch action.
func splitAction(msg string) (int, string) {
	head, tail, ok := strings.Cut(msg, ":")
	if !ok {
		return -1, msg
	}
	n, err := strconv.Atoi(head)
	if err != nil {
		return -1, msg
	}
	return n, strings.TrimSpace(tail)
}
