// Package fault holds the few error kinds every layer agrees on. Adapters translate
// their SDK errors into these; each edge (HTTP, Service Bus) maps them to a status
// or to retry-versus-park exactly once.
package fault

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

var (
	// ErrNotFound: the entity does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: an insert found the entity already there.
	ErrConflict = errors.New("already exists")
	// ErrPrecondition: a conditional write lost (stale ETag or version).
	ErrPrecondition = errors.New("precondition failed")
	// ErrUnavailable: a dependency (storage, Graph) did not answer in time or could not
	// be reached. Transient: HTTP answers 503 with Retry-After, a message is retried.
	ErrUnavailable = errors.New("a dependency did not answer in time")
)

// FieldError says which input field broke which rule. It is permanent.
type FieldError struct {
	Field string
	Rule  string
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Rule) }

// Invalid returns a *FieldError for field and rule.
func Invalid(field, rule string) error { return &FieldError{Field: field, Rule: rule} }

type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent marks err as one that redelivery cannot fix (bad input, unknown tenant):
// a Service Bus message failing with it is parked with its reason, not retried.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// IsPermanent reports whether err (or anything it wraps) was marked Permanent or is a
// *FieldError.
func IsPermanent(err error) bool {
	var p permanent
	var f *FieldError
	return errors.As(err, &p) || errors.As(err, &f)
}

// Backoff waits before attempt (0-based) of a retry after a lost race: a random delay
// up to 2 ms doubled per attempt, at most 100 ms ("full jitter"), so contenders spread
// out instead of colliding again. It returns early with ctx's error.
func Backoff(ctx context.Context, attempt int) error {
	const base, limit = 2 * time.Millisecond, 100 * time.Millisecond
	d := time.Duration(rand.Int64N(int64(min(base<<min(attempt, 6), limit)) + 1))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
