package tenant

// Details is the tenant's descriptive information (SPEC §2 "Tenant information").
type Details struct {
	CompanyName string  `json:"companyName,omitempty"`
	O365Domain  string  `json:"o365Domain,omitempty"`
	CRMID       string  `json:"crmId,omitempty"`
	Partner     string  `json:"partner,omitempty"`
	Billing     Address `json:"billing"`
	Contact     Contact `json:"technicalContact"`
}

// Address is a billing address.
type Address struct {
	Street1 string `json:"street1,omitempty"`
	Street2 string `json:"street2,omitempty"`
	Zip     string `json:"zip,omitempty"`
	City    string `json:"city,omitempty"`
	Country string `json:"country,omitempty"` // ISO 3166-1 alpha-2
}

// Contact is the tenant's technical contact.
type Contact struct {
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
	Phone string `json:"phone,omitempty"` // E.164
	SIP   string `json:"sip,omitempty"`
}

// Security names the Entra security groups whose members administer the tenant.
type Security struct {
	TenantAdminGroup  string `json:"tenantAdminGroup,omitempty"`  // group object id in the tenant's directory
	PartnerAdminGroup string `json:"partnerAdminGroup,omitempty"` // group object id in the partner's directory
	// SupervisorGroup's members (in the tenant's directory) read reports, call
	// timelines and routing explanations, and change nothing.
	SupervisorGroup string `json:"supervisorGroup,omitempty"`
}

// Privacy is what partners may see, and whether agent states are tracked.
type Privacy struct {
	PartnerSeesUserIDs     bool `json:"partnerSeesUserIdentifiers"`
	PartnerSeesCustomerIDs bool `json:"partnerSeesCustomerIdentifiers"`
	// TrackUserStates records every agent state change for reporting (GDPR-sensitive,
	// off by default).
	TrackUserStates bool `json:"trackUserStates"`
}

// Extensions are the tenant's extension settings (SPEC §2).
type Extensions struct {
	// OutboundCap is the maximum of scheduled outbound tasks per service (1..50).
	OutboundCap      int    `json:"outboundCap"`
	DirectInvitePSTN bool   `json:"directInvitePstn"`
	DirectInviteUPN  bool   `json:"directInviteUpn"`
	AssistantOwnACS  bool   `json:"assistantOwnAcs"`
	AttendantTeams   string `json:"attendantTeamVisibility"` // NoMembers | OwnMembers | AllMembers
	GraphFilter      string `json:"graphFilter,omitempty"`   // a $filter fragment, stored as given
	DefaultOU        string `json:"defaultOrganizationUnit,omitempty"`
	WhoMayProvision  string `json:"whoMayProvision"` // Everyone | TenantAndOUAdmins | TenantAdmins | NoOne
}

// Defaults of a new tenant's settings.
const (
	DefaultOutboundCap     = 20
	DefaultAttendantTeams  = "OwnMembers"
	DefaultWhoMayProvision = "Everyone"
)

// New returns a tenant with every setting at its default: partner visibility off,
// user-state tracking off, presence tracking off.
func New(id, name string) Tenant {
	return Tenant{ID: id, Name: name, Extensions: Extensions{OutboundCap: DefaultOutboundCap,
		AttendantTeams: DefaultAttendantTeams, WhoMayProvision: DefaultWhoMayProvision},
		Presence: PresenceSettings{Mode: ModeAccounts}}
}
