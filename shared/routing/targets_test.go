package routing

import (
	"errors"
	"fmt"
	"testing"

	"github.com/teamscc/teamscc/shared/fault"
)

func TestServiceTargetsAreValidated(t *testing.T) {
	base := Service{TenantID: "t", ID: "s", Type: TeamsBased}
	many := make([]string, MaxTargets+1)
	for i := range many {
		many[i] = fmt.Sprintf("+4930123456%02d", i)
	}
	for name, tc := range map[string]struct {
		targets []string
		ok      bool
	}{
		"none":                      {nil, true},
		"resource account":          {[]string{"0d1e2f3a-4b5c-4d6e-8f70-81a2b3c4d5e6"}, true},
		"upper-case GUID":           {[]string{"0D1E2F3A-4B5C-4D6E-8F70-81A2B3C4D5E6"}, true},
		"E.164":                     {[]string{"+15555550100"}, true},
		"typed with spaces":         {[]string{"+1 555 555 0100"}, true},
		"tel URI":                   {[]string{"tel:+15555550100"}, true},
		"both kinds":                {[]string{"0d1e2f3a-4b5c-4d6e-8f70-81a2b3c4d5e6", "+15555550100"}, true},
		"the maximum":               {many[:MaxTargets], true},
		"too many":                  {many, false},
		"no plus":                   {[]string{"15555550100"}, false},
		"leading zero":              {[]string{"+05555550100"}, false},
		"too short":                 {[]string{"+123456"}, false},
		"too long":                  {[]string{"+1234567890123456"}, false},
		"letters":                   {[]string{"+1555555O100"}, false},
		"not a GUID":                {[]string{"0d1e2f3a-4b5c-4d6e-8f70-81a2b3c4d5eZ"}, false},
		"a UPN":                     {[]string{"sales@contoso.example"}, false},
		"empty":                     {[]string{""}, false},
		"duplicate":                 {[]string{"+15555550100", "+15555550100"}, false},
		"duplicate once normalized": {[]string{"+15555550100", "tel:+1 555 555 0100"}, false},
		"duplicate GUID by case":    {[]string{"0d1e2f3a-4b5c-4d6e-8f70-81a2b3c4d5e6", "0D1E2F3A-4B5C-4D6E-8F70-81A2B3C4D5E6"}, false},
	} {
		s := base
		s.Targets = tc.targets
		err := s.Validate()
		var fe *fault.FieldError
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s: %v", name, err)
		case !tc.ok && (!errors.As(err, &fe) || fe.Field != "targets"):
			t.Errorf("%s: %v; want a *fault.FieldError on targets", name, err)
		}
	}
}

func TestServiceForTargetPrefersLiveServicesAndRefusesAmbiguity(t *testing.T) {
	a := Service{ID: "a", Targets: []string{"+15555550100"}}
	b := Service{ID: "b", Targets: []string{"+15555550100"}, PendingDeletion: true}
	c := Service{ID: "c", Targets: []string{"+1 555 555 0100"}}
	if got, err := ServiceForTarget([]Service{a, b}, "+15555550100"); err != nil || got.ID != "a" {
		t.Errorf("live over pending deletion: %q %v", got.ID, err)
	}
	if got, err := ServiceForTarget([]Service{b}, "+15555550100"); err != nil || got.ID != "b" {
		t.Errorf("only a pending-deletion service: %q %v; want it (IncomingCall refuses it)", got.ID, err)
	}
	if _, err := ServiceForTarget([]Service{a, b, c}, "+15555550100"); !errors.Is(err, fault.ErrConflict) {
		t.Errorf("two live services: %v; want fault.ErrConflict", err)
	}
	if _, err := ServiceForTarget([]Service{a}, "+15555550101"); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("unknown: %v; want fault.ErrNotFound", err)
	}
}
