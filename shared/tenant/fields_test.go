package tenant_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/tenant"
)

const tid = "0d1f6b1e-7c3a-4c59-9a5e-1f2a3b4c5d6e"

// Every rule has a failing and a passing case; a rejected change names the field and
// leaves the tenant as it was.
func TestEveryFieldRuleRefusesBadValuesAndAcceptsGoodOnes(t *testing.T) {
	cases := []struct {
		path      string
		good, bad string // JSON values
		rule      string
	}{
		{"name", `"Contoso"`, `""`, "is required"},
		{"name", `"Contoso"`, `"` + strings.Repeat("x", 101) + `"`, "at most 100"},
		{"details.companyName", `"Contoso AG"`, `"a\u0007b"`, "control characters"},
		{"details.o365Domain", `"contoso.onmicrosoft.com"`, `"contoso"`, "domain name"},
		{"details.crmId", `"CRM-1"`, `"` + strings.Repeat("x", 101) + `"`, "at most 100"},
		{"details.partner", `"Partner AG"`, `12`, "must be a string"},
		{"details.billing.street1", `"Main 1"`, `"` + strings.Repeat("x", 201) + `"`, "at most 200"},
		{"details.billing.zip", `"8000"`, `"` + strings.Repeat("9", 21) + `"`, "at most 20"},
		{"details.billing.city", `"Zürich"`, `"` + strings.Repeat("x", 101) + `"`, "at most 100"},
		{"details.billing.country", `"CH"`, `"ch"`, "ISO 3166-1"},
		{"details.billing.country", `"DE"`, `"XX"`, "ISO 3166-1"},
		{"details.technicalContact.email", `"ops@contoso.com"`, `"Ops <ops@contoso.com>"`, "email address"},
		{"details.technicalContact.email", `"ops@contoso.com"`, `"ops@localhost"`, "email address"},
		{"details.technicalContact.phone", `"+41441234567"`, `"044 123 45 67"`, "E.164"},
		{"details.technicalContact.phone", `"+41441234567"`, `"+0441234567"`, "E.164"},
		{"details.technicalContact.sip", `"sip:ops@contoso.com"`, `"sip:ops"`, "SIP address"},
		{"security.tenantAdminGroup", `"6f1d0c9e-1111-2222-3333-444455556666"`, `"admins"`, "GUID"},
		{"security.partnerAdminGroup", `"6f1d0c9e-1111-2222-3333-444455556667"`, `"6f1d0c9e-1111-2222-3333"`, "GUID"},
		{"privacy.trackUserStates", `true`, `"yes"`, "true or false"},
		{"extensions.outboundCap", `50`, `51`, "1..50"},
		{"extensions.outboundCap", `1`, `0`, "1..50"},
		{"extensions.outboundCap", `20`, `2.5`, "1..50"},
		{"extensions.attendantTeamVisibility", `"AllMembers"`, `"Everybody"`, "one of NoMembers"},
		{"extensions.whoMayProvision", `"NoOne"`, `"nobody"`, "one of Everyone"},
		{"extensions.graphFilter", `"startswith(displayName,'A')"`, `"` + strings.Repeat("x", 2049) + `"`, "at most 2048"},
		{"presence.mode", `"Application"`, `"Delegated"`, "one of Accounts"},
		{"presence.account1", `"presence1@contoso.com"`, `"presence1"`, "user principal name"},
		{"presence.account1Password", `"s3cret"`, `""`, "non-empty string"},
		{"retention.finishedTasksDays", `30`, `0`, "1..3650"},
		{"retention.finishedTasksDays", `3650`, `3651`, "1..3650"},
		{"retention.endedCallsDays", `1`, `-1`, "1..3650"},
		{"retention.closedSessionsDays", `365`, `366`, "1..365"},
		{"retention.userStatesDays", `90`, `"90"`, "1..3650"},
	}
	base := tenant.New(tid, "Contoso")
	for _, c := range cases {
		body := nest(c.path, c.bad)
		_, err := tenant.ParseChange([]byte(body), base)
		var fe *fault.FieldError
		if !errors.As(err, &fe) || fe.Field != c.path || !strings.Contains(fe.Rule, c.rule) {
			t.Errorf("%s = %s: error %v, want field %s rule containing %q", c.path, c.bad, err, c.path, c.rule)
		}
		ch, err := tenant.ParseChange([]byte(nest(c.path, c.good)), base)
		if err != nil {
			t.Errorf("%s = %s refused: %v", c.path, c.good, err)
			continue
		}
		got := base
		if err := ch.Apply(&got); err != nil {
			t.Errorf("apply %s: %v", c.path, err)
		}
	}
	if base.Name != "Contoso" || base.Extensions.OutboundCap != tenant.DefaultOutboundCap {
		t.Fatalf("parsing changed the tenant: %+v", base)
	}
}

// nest turns "a.b.c" and a JSON value into {"a":{"b":{"c":value}}}.
func nest(path, value string) string {
	parts := strings.Split(path, ".")
	s := value
	for i := len(parts) - 1; i >= 0; i-- {
		s = `{"` + parts[i] + `":` + s + `}`
	}
	return s
}

func TestAChangeNamesItsFieldsLevelsAndAuditValuesWithoutSecrets(t *testing.T) {
	body := `{"details":{"companyName":"Contoso AG","billing":{"country":"CH"}},"extensions":{"directInvitePstn":true},
		"presence":{"account1Password":"hunter2"}}`
	ch, err := tenant.ParseChange([]byte(body), tenant.New(tid, "Contoso"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"details.billing.country", "details.companyName", "extensions.directInvitePstn", "presence.account1Password"}
	if got := ch.Paths(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("paths %v, want %v", got, want)
	}
	if lv := ch.Levels(); lv[2] != tenant.LevelOperator || lv[0] != tenant.LevelTenant {
		t.Fatalf("levels %v", lv)
	}
	if len(ch.Secrets) != 1 || ch.Secrets[0].Name != tenant.SecretAccount1Password || ch.Secrets[0].Value != "hunter2" {
		t.Fatalf("secrets %+v", ch.Secrets)
	}
	a := ch.Audit()
	if a["presence.account1Password"] != "***" || a["details.companyName"] != `"Contoso AG"` {
		t.Fatalf("audit %v", a)
	}
	for _, v := range a {
		if strings.Contains(v, "hunter2") {
			t.Fatal("audit holds a secret")
		}
	}
}

func TestUnknownAndImmutableFieldsAreRefusedByName(t *testing.T) {
	for body, field := range map[string]string{
		`{"details":{"colour":"red"}}`:   "details.colour",
		`{"id":"x"}`:                     "id",
		`{"version":3}`:                  "version",
		`{}`:                             "body",
		`[1]`:                            "body",
		`{"details":{"billing":"Main"}}`: "details.billing",
	} {
		_, err := tenant.ParseChange([]byte(body), tenant.New(tid, "Contoso"))
		var fe *fault.FieldError
		if !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%s: %v, want a field error naming %s", body, err, field)
		}
	}
}

func TestValidateNewChecksTheIdAndEveryField(t *testing.T) {
	if err := tenant.ValidateNew(tenant.New(tid, "Contoso")); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	bad := tenant.New("contoso", "Contoso")
	if err := tenant.ValidateNew(bad); err == nil || !strings.Contains(err.Error(), "id:") {
		t.Fatalf("bad id: %v", err)
	}
	bad = tenant.New(tid, "Contoso")
	bad.Details.Contact.Phone = "0441234567"
	if err := tenant.ValidateNew(bad); err == nil || !strings.Contains(err.Error(), "details.technicalContact.phone") {
		t.Fatalf("bad phone: %v", err)
	}
	bad = tenant.New(tid, "Contoso")
	bad.Extensions.OutboundCap = 0
	if err := tenant.ValidateNew(bad); err == nil || !strings.Contains(err.Error(), "extensions.outboundCap") {
		t.Fatalf("cap 0: %v", err)
	}
}

// Retention settings never set are their defaults; set ones are kept. Who may change
// them: the user-state retention is the tenant's privacy choice (not the partner's),
// the others the tenant's settings.
func TestRetentionDefaultsAndLevels(t *testing.T) {
	got := tenant.New(tid, "Contoso").Retention.Effective()
	want := tenant.Retention{FinishedTasksDays: 30, EndedCallsDays: 30, ClosedSessionsDays: 7, UserStatesDays: 90}
	if got != want {
		t.Fatalf("defaults %+v, want %+v", got, want)
	}
	set := tenant.Retention{FinishedTasksDays: 400, UserStatesDays: 14}.Effective()
	if set.FinishedTasksDays != 400 || set.UserStatesDays != 14 || set.EndedCallsDays != 30 {
		t.Fatalf("effective %+v", set)
	}
	ch, err := tenant.ParseChange([]byte(`{"retention":{"userStatesDays":14,"closedSessionsDays":3,"finishedTasksDays":60}}`), tenant.New(tid, "Contoso"))
	if err != nil {
		t.Fatal(err)
	}
	levels := map[string]tenant.Level{}
	for i, p := range ch.Paths() {
		levels[p] = ch.Levels()[i]
	}
	if levels["retention.userStatesDays"] != tenant.LevelTenantOwned || levels["retention.closedSessionsDays"] != tenant.LevelTenant ||
		levels["retention.finishedTasksDays"] != tenant.LevelTenant {
		t.Fatalf("levels %v", levels)
	}
	var after tenant.Tenant
	if err := ch.Apply(&after); err != nil || after.Retention != (tenant.Retention{FinishedTasksDays: 60, ClosedSessionsDays: 3, UserStatesDays: 14}) {
		t.Fatalf("applied %+v, %v", after.Retention, err)
	}
}

func TestAGroupGivenAsAValueIsNamedAsAnObject(t *testing.T) {
	var fe *fault.FieldError
	_, err := tenant.ParseChange([]byte(`{"details":5}`), tenant.New("0d1f6b1e-7c3a-4c59-9a5e-1f2a3b4c5d6e", "Contoso"))
	if !errors.As(err, &fe) || fe.Field != "details" || fe.Rule != "must be a JSON object" {
		t.Fatalf("got %v; want details: must be a JSON object", err)
	}
}
