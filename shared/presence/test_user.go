package presence

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/teamscc/teamscc/shared/fault"
)

// TestAttempt is one credential tried by TestUser.
type TestAttempt struct {
	Credential CredentialKind `json:"credential"`
	OK         bool           `json:"ok"`
	ErrorCode  string         `json:"errorCode,omitempty"`
}

// TestResult says which credential answered for the user, and what it read.
type TestResult struct {
	AnsweredBy   CredentialKind `json:"answeredBy,omitempty"` // empty when none did
	Availability Availability   `json:"availability,omitempty"`
	Activity     string         `json:"activity,omitempty"`
	Attempts     []TestAttempt  `json:"attempts"`
}

var (
	upnPattern  = regexp.MustCompile(`^[^@\s/\\#?]{1,113}@[A-Za-z0-9.-]{1,255}\.[A-Za-z]{2,}$`)
	guidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
)

// TestUser reads one user's presence now (the admin's Test UPN action), trying the
// tenant's credentials in order whatever their recent failures, and says which one
// answered. It does not change stored presence or health. user is a UPN or an object
// id; anything else is a *fault.FieldError. An unknown tenant is fault.ErrNotFound.
func (r *Refresher) TestUser(ctx context.Context, tenantID, user string) (TestResult, error) {
	user = strings.TrimSpace(user)
	if !upnPattern.MatchString(user) && !guidPattern.MatchString(user) {
		return TestResult{}, fault.Invalid("upn", "must be a user principal name (name@domain) or an object id (GUID)")
	}
	t, err := r.tenants.GetTenant(ctx, tenantID)
	if err != nil {
		return TestResult{}, fmt.Errorf("get tenant: %w", err)
	}
	res := TestResult{Attempts: []TestAttempt{}}
	for _, a := range r.credentials(ctx, t, Health{}, r.now()) {
		at := TestAttempt{Credential: a.cred.Kind}
		if a.err != nil {
			at.ErrorCode = errorCode(a.err)
			res.Attempts = append(res.Attempts, at)
			continue
		}
		o, err := r.reader.ReadPresence(ctx, t.ID, a.cred, user)
		switch {
		case err == nil:
			at.OK = true
			res.Attempts = append(res.Attempts, at)
			res.AnsweredBy, res.Availability, res.Activity = a.cred.Kind, o.Availability, o.Activity
			return res, nil
		case errors.Is(err, fault.ErrNotFound):
			// The credential works; the user does not exist in the tenant.
			return res, fault.Invalid("upn", "no such user in the tenant")
		case isAuth(err):
			at.ErrorCode = errorCode(err)
			res.Attempts = append(res.Attempts, at)
		default:
			return res, fmt.Errorf("read presence: %w", err)
		}
	}
	return res, nil
}
