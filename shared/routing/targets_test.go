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

// Phone numbers follow SPEC §3 (Calling Plans: only Service numbers) and are targets.
func TestServicePhoneNumbersAreValidatedAndAreTargets(t *testing.T) {
	base := Service{TenantID: "t", ID: "s", Type: TeamsBased, Targets: []string{"+15555550100"}}
	for name, tc := range map[string]struct {
		numbers []PhoneNumber
		field   string // "" = valid
	}{
		"direct routing":         {[]PhoneNumber{{"+41441234567", DirectRouting}}, ""},
		"calling plan service":   {[]PhoneNumber{{"+41 44 123 45 67", CallingPlanService}}, ""},
		"calling plan user":      {[]PhoneNumber{{"+41441234567", CallingPlanUser}}, "phoneNumbers[0].kind"},
		"unknown kind":           {[]PhoneNumber{{"+41441234567", "Mobile"}}, "phoneNumbers[0].kind"},
		"not E.164":              {[]PhoneNumber{{"0441234567", DirectRouting}}, "phoneNumbers[0].number"},
		"also a target":          {[]PhoneNumber{{"tel:+15555550100", DirectRouting}}, "phoneNumbers[0].number"},
		"duplicate":              {[]PhoneNumber{{"+41441234567", DirectRouting}, {"+41441234567", CallingPlanService}}, "phoneNumbers[1].number"},
		"over the target budget": {make([]PhoneNumber, MaxTargets), "targets"},
	} {
		s := base
		s.PhoneNumbers = tc.numbers
		err := s.Validate()
		var fe *fault.FieldError
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field):
			t.Errorf("%s: %v; want a *fault.FieldError on %s", name, err, tc.field)
		}
	}
	s := base
	s.PhoneNumbers = []PhoneNumber{{"+41441234567", CallingPlanService}}
	if !s.HasTarget("+41 44 123 45 67") || !s.HasTarget("+15555550100") || s.HasTarget("+41441234568") {
		t.Error("HasTarget reads Targets and PhoneNumbers")
	}
	other := Service{ID: "o", PhoneNumbers: []PhoneNumber{{"+41441234567", DirectRouting}}}
	if _, err := ServiceForTarget([]Service{s, other}, "+41441234567"); !errors.Is(err, fault.ErrConflict) {
		t.Errorf("a number on two services: %v, want fault.ErrConflict", err)
	}
	for _, o := range [][]string{{"me-1"}, make([]string, MaxOwners+1)} {
		s := base
		s.Owners = o
		if err := s.Validate(); !errors.As(err, new(*fault.FieldError)) {
			t.Errorf("owners %v: %v", o, err)
		}
	}
}
