package routing

import (
	"fmt"
	"slices"
	"strings"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/tenant"
)

// MaxTargets is how many targets (resource accounts, phone numbers) one service may
// have.
const MaxTargets = 20

// NormalizeTarget is the form targets are compared and indexed in: trimmed, without a
// "tel:" prefix, lower case (GUIDs), phone numbers without the spaces, dashes, dots and
// parentheses people type ("+1 555-555 0100" → "+15555550100"). It does not validate.
func NormalizeTarget(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 4 && strings.EqualFold(s[:4], "tel:") {
		s = s[4:]
	}
	if strings.HasPrefix(s, "+") {
		s = strings.Map(func(r rune) rune {
			switch r {
			case ' ', '-', '.', '(', ')':
				return -1
			}
			return r
		}, s)
	}
	return strings.ToLower(s)
}

// IsE164 reports whether s is "+" and 7..15 digits, the first not 0.
func IsE164(s string) bool {
	if len(s) < 8 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// HasTarget reports whether the service answers calls to target (compared normalized):
// one of its Targets or of its PhoneNumbers.
func (s Service) HasTarget(target string) bool {
	n := NormalizeTarget(target)
	return slices.ContainsFunc(s.Targets, func(t string) bool { return NormalizeTarget(t) == n }) ||
		slices.ContainsFunc(s.PhoneNumbers, func(p PhoneNumber) bool { return NormalizeTarget(p.Number) == n })
}

// ServiceForTarget picks the service of a tenant that a call to target is for, from
// the tenant's services. A target on several services is resolved in favour of the
// ones not PendingDeletion (a number moved to a new service before the old one is
// gone); if that still leaves more than one, the lookup refuses with
// fault.ErrConflict rather than guess. No service: fault.ErrNotFound. Stores use it to
// implement Store.ServiceByTarget, so both adapters agree on the rule.
func ServiceForTarget(services []Service, target string) (Service, error) {
	n := NormalizeTarget(target)
	if n == "" {
		return Service{}, fmt.Errorf("service by target: %w", fault.ErrNotFound)
	}
	var found []Service
	for _, s := range services {
		if s.HasTarget(n) {
			found = append(found, s)
		}
	}
	if len(found) > 1 {
		live := slices.DeleteFunc(slices.Clone(found), func(s Service) bool { return s.PendingDeletion })
		if len(live) > 0 {
			found = live
		}
	}
	switch len(found) {
	case 0:
		return Service{}, fmt.Errorf("service by target: %w", fault.ErrNotFound)
	case 1:
		return found[0], nil
	default:
		ids := make([]string, len(found))
		for i, s := range found {
			ids[i] = s.ID
		}
		return Service{}, fmt.Errorf("service by target: the target is on services %s: %w", strings.Join(ids, ", "), fault.ErrConflict)
	}
}

// ResourceAccount is the service's first resource account (application instance
// object id) among its Targets, lower case; "" when it has none. Calls the service
// places (offers to agents, outbound calls) come from it.
func (s Service) ResourceAccount() string {
	for _, t := range s.Targets {
		if n := NormalizeTarget(t); tenant.IsGUID(n) {
			return n
		}
	}
	return ""
}
