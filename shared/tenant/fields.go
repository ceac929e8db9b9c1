package tenant

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/mail"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/teamscc/teamscc/shared/fault"
)

// Level says who may change a field (SPEC §1 field-level rights).
type Level int

const (
	// LevelTenant: non-technical details and the tenant's own settings — tenant admins,
	// partner admins and operators.
	LevelTenant Level = iota
	// LevelTechnical: technical fields (security groups, partner, domain, CRM id) —
	// partner admins and operators.
	LevelTechnical
	// LevelTenantOwned: the tenant's privacy decisions — tenant admins and operators,
	// never the partner those decisions protect the data from.
	LevelTenantOwned
	// LevelOperator: "read-only" toggles — operators only.
	LevelOperator
)

func (l Level) String() string {
	return [...]string{"tenant", "technical", "tenant-owned", "operator"}[l]
}

// Field is one settable field of a tenant, by its JSON path ("details.billing.city").
type Field struct {
	Path   string
	Level  Level
	Secret bool // write-only: stored through Secrets, never returned or audited by value
	set    func(t *Tenant, raw json.RawMessage) error

	secretName string // the Secrets name of a Secret field

}

// SecretUpdate is a secret field's new value, to be stored through Secrets.
type SecretUpdate struct {
	Name  string // secret name (e.g. SecretAccount1Password)
	Value string
}

var (
	e164RE   = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)
	domainRE = regexp.MustCompile(`^(?i)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$`)
	upnRE    = regexp.MustCompile(`^[^@\s/\\#?]{1,113}@([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}$`)
)

// IsGUID reports whether s is a GUID in its usual 8-4-4-4-12 form (any case). The one
// GUID check of the app: a loop, as it runs on routing's target lookups.
func IsGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

type rule func(string) string // "" when the value is fine, else the rule it breaks

func maxLen(n int) rule {
	return func(s string) string {
		if utf8.RuneCountInString(s) > n {
			return fmt.Sprintf("must be at most %d characters", n)
		}
		if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return "must not contain control characters"
		}
		return ""
	}
}

func all(rs ...rule) rule {
	return func(s string) string {
		for _, r := range rs {
			if msg := r(s); msg != "" {
				return msg
			}
		}
		return ""
	}
}

// optional applies r only to a non-empty value: "" clears the field.
func optional(r rule) rule {
	return func(s string) string {
		if s == "" {
			return ""
		}
		return r(s)
	}
}

func required(s string) string {
	if strings.TrimSpace(s) == "" {
		return "is required"
	}
	return ""
}

func groupID(s string) string {
	if !IsGUID(s) {
		return "must be a group object id (GUID)"
	}
	return ""
}

func matches(re *regexp.Regexp, what string) rule {
	return func(s string) string {
		if !re.MatchString(s) {
			return "must be " + what
		}
		return ""
	}
}

func email(s string) string {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || len(s) > 254 || !domainRE.MatchString(s[strings.LastIndexByte(s, '@')+1:]) {
		return "must be an email address (name@domain)"
	}
	return ""
}

func sip(s string) string {
	addr := strings.TrimPrefix(strings.TrimPrefix(s, "sip:"), "SIP:")
	if msg := email(addr); msg != "" {
		return "must be a SIP address (sip:name@domain)"
	}
	return ""
}

func country(s string) string {
	if len(s) != 2 || !strings.Contains(isoCountries, " "+s+" ") {
		return "must be an ISO 3166-1 alpha-2 country code in capitals (e.g. CH)"
	}
	return ""
}

func oneOf(vals ...string) rule {
	return func(s string) string {
		for _, v := range vals {
			if s == v {
				return ""
			}
		}
		return "must be one of " + strings.Join(vals, ", ")
	}
}

// str is a string field with its rule.
func str(path string, l Level, r rule, ptr func(*Tenant) *string) Field {
	return Field{Path: path, Level: l, set: func(t *Tenant, raw json.RawMessage) error {
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return fault.Invalid(path, "must be a string")
		}
		v = strings.TrimSpace(v)
		if msg := r(v); msg != "" {
			return fault.Invalid(path, msg)
		}
		*ptr(t) = v
		return nil
	}}
}

func boolean(path string, l Level, ptr func(*Tenant) *bool) Field {
	return Field{Path: path, Level: l, set: func(t *Tenant, raw json.RawMessage) error {
		var v bool
		if err := json.Unmarshal(raw, &v); err != nil {
			return fault.Invalid(path, "must be true or false")
		}
		*ptr(t) = v
		return nil
	}}
}

func intRange(path string, l Level, lo, hi int, ptr func(*Tenant) *int) Field {
	return Field{Path: path, Level: l, set: func(t *Tenant, raw json.RawMessage) error {
		var v int
		if err := json.Unmarshal(raw, &v); err != nil || v < lo || v > hi {
			return fault.Invalid(path, fmt.Sprintf("must be a whole number %d..%d", lo, hi))
		}
		*ptr(t) = v
		return nil
	}}
}

// days is a retention setting: a whole number of days in its RetentionRanges range.
func days(path string, l Level, ptr func(*Tenant) *int) Field {
	r := RetentionRanges[path]
	return intRange(path, l, r.Min, r.Max, ptr)
}

// secret is a write-only string field, kept through Secrets under name instead of in
// the tenant.
func secret(path, name string, l Level) Field {
	return Field{Path: path, Level: l, Secret: true, secretName: name}
}

// Fields is every field an update may name, with who may change it and its rule.
// The id is not among them: a tenant's id never changes.
var Fields = []Field{
	str("name", LevelTechnical, all(required, maxLen(100)), func(t *Tenant) *string { return &t.Name }),
	str("details.companyName", LevelTenant, optional(maxLen(200)), func(t *Tenant) *string { return &t.Details.CompanyName }),
	str("details.o365Domain", LevelTechnical, optional(all(maxLen(253), matches(domainRE, "a domain name (contoso.com)"))), func(t *Tenant) *string { return &t.Details.O365Domain }),
	str("details.crmId", LevelTechnical, optional(maxLen(100)), func(t *Tenant) *string { return &t.Details.CRMID }),
	str("details.partner", LevelTechnical, optional(maxLen(200)), func(t *Tenant) *string { return &t.Details.Partner }),
	str("details.billing.street1", LevelTenant, optional(maxLen(200)), func(t *Tenant) *string { return &t.Details.Billing.Street1 }),
	str("details.billing.street2", LevelTenant, optional(maxLen(200)), func(t *Tenant) *string { return &t.Details.Billing.Street2 }),
	str("details.billing.zip", LevelTenant, optional(maxLen(20)), func(t *Tenant) *string { return &t.Details.Billing.Zip }),
	str("details.billing.city", LevelTenant, optional(maxLen(100)), func(t *Tenant) *string { return &t.Details.Billing.City }),
	str("details.billing.country", LevelTenant, optional(country), func(t *Tenant) *string { return &t.Details.Billing.Country }),
	str("details.technicalContact.name", LevelTenant, optional(maxLen(200)), func(t *Tenant) *string { return &t.Details.Contact.Name }),
	str("details.technicalContact.email", LevelTenant, optional(email), func(t *Tenant) *string { return &t.Details.Contact.Email }),
	str("details.technicalContact.phone", LevelTenant, optional(matches(e164RE, "a phone number in E.164 form (+41441234567)")), func(t *Tenant) *string { return &t.Details.Contact.Phone }),
	str("details.technicalContact.sip", LevelTenant, optional(sip), func(t *Tenant) *string { return &t.Details.Contact.SIP }),
	str("security.tenantAdminGroup", LevelTechnical, optional(groupID), func(t *Tenant) *string { return &t.Security.TenantAdminGroup }),
	str("security.partnerAdminGroup", LevelTechnical, optional(groupID), func(t *Tenant) *string { return &t.Security.PartnerAdminGroup }),
	str("security.supervisorGroup", LevelTechnical, optional(groupID), func(t *Tenant) *string { return &t.Security.SupervisorGroup }),
	boolean("privacy.partnerSeesUserIdentifiers", LevelTenantOwned, func(t *Tenant) *bool { return &t.Privacy.PartnerSeesUserIDs }),
	boolean("privacy.partnerSeesCustomerIdentifiers", LevelTenantOwned, func(t *Tenant) *bool { return &t.Privacy.PartnerSeesCustomerIDs }),
	boolean("privacy.trackUserStates", LevelTenantOwned, func(t *Tenant) *bool { return &t.Privacy.TrackUserStates }),
	intRange("extensions.outboundCap", LevelTenant, 1, 50, func(t *Tenant) *int { return &t.Extensions.OutboundCap }),
	boolean("extensions.directInvitePstn", LevelOperator, func(t *Tenant) *bool { return &t.Extensions.DirectInvitePSTN }),
	boolean("extensions.directInviteUpn", LevelOperator, func(t *Tenant) *bool { return &t.Extensions.DirectInviteUPN }),
	boolean("extensions.assistantOwnAcs", LevelTenant, func(t *Tenant) *bool { return &t.Extensions.AssistantOwnACS }),
	str("extensions.attendantTeamVisibility", LevelTenant, oneOf("NoMembers", "OwnMembers", "AllMembers"), func(t *Tenant) *string { return &t.Extensions.AttendantTeams }),
	str("extensions.graphFilter", LevelTenant, optional(maxLen(2048)), func(t *Tenant) *string { return &t.Extensions.GraphFilter }),
	str("extensions.defaultOrganizationUnit", LevelTenant, optional(maxLen(200)), func(t *Tenant) *string { return &t.Extensions.DefaultOU }),
	str("extensions.whoMayProvision", LevelTenant, oneOf("Everyone", "TenantAndOUAdmins", "TenantAdmins", "NoOne"), func(t *Tenant) *string { return &t.Extensions.WhoMayProvision }),
	boolean("presence.enabled", LevelTenant, func(t *Tenant) *bool { return &t.Presence.Enabled }),
	str("presence.mode", LevelTenant, oneOf(string(ModeAccounts), string(ModeApplication)), func(t *Tenant) *string { return (*string)(&t.Presence.Mode) }),
	str("presence.account1", LevelTenant, optional(matches(upnRE, "a user principal name (name@domain)")), func(t *Tenant) *string { return &t.Presence.Account1 }),
	str("presence.account2", LevelTenant, optional(matches(upnRE, "a user principal name (name@domain)")), func(t *Tenant) *string { return &t.Presence.Account2 }),
	secret("presence.account1Password", SecretAccount1Password, LevelTenant),
	secret("presence.account2Password", SecretAccount2Password, LevelTenant),
	days("retention.finishedTasksDays", LevelTenant, func(t *Tenant) *int { return &t.Retention.FinishedTasksDays }),
	days("retention.endedCallsDays", LevelTenant, func(t *Tenant) *int { return &t.Retention.EndedCallsDays }),
	days("retention.closedSessionsDays", LevelTenant, func(t *Tenant) *int { return &t.Retention.ClosedSessionsDays }),
	// How long agents' states are kept is the tenant's privacy choice, like tracking them.
	days("retention.userStatesDays", LevelTenantOwned, func(t *Tenant) *int { return &t.Retention.UserStatesDays }),
}

var fieldByPath = func() map[string]Field {
	m := make(map[string]Field, len(Fields))
	for _, f := range Fields {
		m[f.Path] = f
	}
	return m
}()

// Change is a validated update: the fields it names, ready to apply.
type Change struct {
	fields  []Field
	raw     map[string]json.RawMessage
	Secrets []SecretUpdate
}

// Paths lists the fields the change names, sorted.
func (c Change) Paths() []string {
	out := make([]string, len(c.fields))
	for i, f := range c.fields {
		out[i] = f.Path
	}
	return out
}

// Levels lists the levels the change needs, one per field (same order as Paths).
func (c Change) Levels() []Level {
	out := make([]Level, len(c.fields))
	for i, f := range c.fields {
		out[i] = f.Level
	}
	return out
}

// ParseChange reads a partial update: a JSON object shaped like the tenant (nested
// objects), naming only the fields to change. Unknown fields, wrong types and broken
// rules are a *fault.FieldError naming the field; the values are checked against t,
// so nothing of t changes here.
func ParseChange(body []byte, t Tenant) (Change, error) {
	var top map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&top); err != nil || top == nil {
		return Change{}, fault.Invalid("body", "must be a JSON object")
	}
	flat := map[string]json.RawMessage{}
	if err := flatten("", top, flat); err != nil {
		return Change{}, err
	}
	if len(flat) == 0 {
		return Change{}, fault.Invalid("body", "names no field to change")
	}
	c := Change{raw: flat}
	for path, raw := range flat {
		f, ok := fieldByPath[path]
		if !ok {
			if path == "id" || path == "version" || path == "updatedAt" || path == "deleted" {
				return Change{}, fault.Invalid(path, "cannot be changed")
			}
			if isGroup(path) { // a group of fields given as something else than an object
				return Change{}, fault.Invalid(path, "must be a JSON object")
			}
			return Change{}, fault.Invalid(path, "unknown field")
		}
		if f.Secret {
			var v string
			if err := json.Unmarshal(raw, &v); err != nil || v == "" || len(v) > 256 {
				return Change{}, fault.Invalid(path, "must be a non-empty string of at most 256 characters")
			}
			c.Secrets = append(c.Secrets, SecretUpdate{Name: f.secretName, Value: v})
		} else if err := f.set(&t, raw); err != nil {
			return Change{}, err
		}
		c.fields = append(c.fields, f)
	}
	sort.Slice(c.fields, func(i, j int) bool { return c.fields[i].Path < c.fields[j].Path })
	sort.Slice(c.Secrets, func(i, j int) bool { return c.Secrets[i].Name < c.Secrets[j].Name })
	return c, nil
}

// isGroup reports whether path names a group of fields ("details", "presence", ...).
func isGroup(path string) bool {
	for p := range fieldByPath {
		if strings.HasPrefix(p, path+".") {
			return true
		}
	}
	return false
}

// flatten turns nested objects into dotted paths; a leaf is any non-object value.
func flatten(prefix string, m map[string]json.RawMessage, out map[string]json.RawMessage) error {
	for k, v := range m {
		path := k
		if prefix != "" {
			path = prefix + "." + k
		}
		if t := bytes.TrimSpace(v); len(t) > 0 && t[0] == '{' {
			var sub map[string]json.RawMessage
			if err := json.Unmarshal(t, &sub); err != nil {
				return fault.Invalid(path, "must be a JSON object")
			}
			if _, leaf := fieldByPath[path]; !leaf {
				if err := flatten(path, sub, out); err != nil {
					return err
				}
				continue
			}
		}
		out[path] = v
	}
	return nil
}

// Apply sets the change's (non-secret) fields on t. It cannot fail on values
// ParseChange accepted; it is separate so that a store's read-modify-write can apply
// it to the freshest copy.
func (c Change) Apply(t *Tenant) error {
	for _, f := range c.fields {
		if f.Secret {
			continue
		}
		if err := f.set(t, c.raw[f.Path]); err != nil {
			return err
		}
	}
	return nil
}

// Audit returns the changed fields with their new values for the audit trail; secret
// fields show "***".
func (c Change) Audit() map[string]string {
	out := make(map[string]string, len(c.fields))
	for _, f := range c.fields {
		if f.Secret {
			out[f.Path] = "***"
			continue
		}
		out[f.Path] = string(bytes.TrimSpace(c.raw[f.Path]))
	}
	return out
}

// ValidateNew checks a tenant about to be created: the id is a GUID and every field
// holds to its rule.
func ValidateNew(t Tenant) error {
	if !IsGUID(t.ID) {
		return fault.Invalid("id", "must be the Entra tenant id (GUID)")
	}
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return err
	}
	flat := map[string]json.RawMessage{}
	if err := flatten("", top, flat); err != nil {
		return err
	}
	probe := t
	for _, f := range Fields {
		if raw, ok := flat[f.Path]; ok && !f.Secret {
			if err := f.set(&probe, raw); err != nil {
				return err
			}
		}
	}
	return nil
}
