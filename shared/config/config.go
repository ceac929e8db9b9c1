// Package config reads the app settings once at start, validates them and says what is
// wrong by name. Settings lists every setting the handler reads: the README table,
// local.settings.json.example and the Bicep app settings are checked against it.
package config

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/presence"
)

// Setting describes one app setting.
type Setting struct {
	Name    string
	Default string
	Secret  bool // never printed
	Doc     string
}

// Settings is every app setting the handler or its function.json files read.
var Settings = []Setting{
	{Name: "FUNCTIONS_CUSTOMHANDLER_PORT", Default: "8080", Doc: "Port the handler listens on; set by the Functions host."},
	{Name: "Storage", Default: "", Doc: "`Tables` or `Memory`. Empty: `Tables` when an `AzureWebJobsStorage` setting is present, else `Memory` (embedded, lost on exit)."},
	{Name: "AzureWebJobsStorage", Secret: true, Doc: "Storage connection string (or `UseDevelopmentStorage=true` for Azurite); the app's tables live here too."},
	{Name: "AzureWebJobsStorage__accountName", Doc: "Identity-based storage: account name (tables at `https://NAME.table.core.windows.net`)."},
	{Name: "AzureWebJobsStorage__tableServiceUri", Doc: "Identity-based storage: table endpoint (wins over the account name)."},
	{Name: "AzureWebJobsStorage__credential", Doc: "`managedidentity` to use the managed identity; empty for the default Azure credential chain."},
	{Name: "AzureWebJobsStorage__clientId", Doc: "Client id of the user-assigned managed identity."},
	{Name: "TableNamePrefix", Doc: "Letters/digits prepended to every table name (several deployments in one account)."},
	{Name: "PresenceRefreshSchedule", Default: "*/15 * * * * *", Doc: "NCRONTAB schedule of the PresenceRefresh timer (UTC, with seconds)."},
	{Name: "PresenceQueue", Default: "presence-refresh", Doc: "Service Bus queue of \"refresh this tenant now\" requests (PresenceRefreshTenant)."},
	{Name: "CallsQueue", Default: "calls", Doc: "Service Bus queue (sessions on, session = tenant:service) of \"match this service now\" kicks (RouteCall)."},
	{Name: "ServiceBusConnection__fullyQualifiedNamespace", Doc: "Service Bus namespace host (identity-based connection used by the triggers and by the handler to send kicks)."},
	{Name: "ServiceBusConnection__credential", Doc: "`managedidentity` to send with the managed identity; empty for the default Azure credential chain."},
	{Name: "ServiceBusConnection__clientId", Doc: "Client id of the user-assigned managed identity used for Service Bus."},
	{Name: "ServiceBusConnection", Secret: true, Doc: "Service Bus connection string, instead of the identity-based settings (a developer's namespace under `func start`). Empty in Azure."},
	{Name: "PresenceMaxInFlight", Default: "8", Doc: "Graph presence requests in flight per tenant (1..64)."},
	{Name: "PresenceMaxTenantsInFlight", Default: "4", Doc: "Tenants refreshed at once (1..64)."},
	{Name: "PresenceOfflineDampingSeconds", Default: "30", Doc: "An agent must read Offline this long before Offline is stored (0..600; 0 stores at once)."},
	{Name: "PresencePrivacyModePolls", Default: "20", Doc: "Consecutive all-Offline polls before the privacy-mode warning (1..10000)."},
	{Name: "PresenceAccountRetrySeconds", Default: "300", Doc: "How long a refused presence credential is left alone before it is tried again (10..86400)."},
	{Name: "PresenceMaxAgeSeconds", Default: "180", Doc: "How long presence stays good after a credential last read it (30..86400); older, routing treats it as unknown unless a service routes on stale presence."},
	{Name: "GraphClientId", Doc: "Client id of this app's multi-tenant Entra registration (presence accounts sign in through it; application mode uses it)."},
	{Name: "GraphClientSecret", Secret: true, Doc: "Client secret of that registration, for tenants in application mode."},
	{Name: "GraphBaseUrl", Default: "https://graph.microsoft.com/v1.0", Doc: "Microsoft Graph base URL (national clouds, tests)."},
	{Name: "EntraAuthorityHost", Default: "https://login.microsoftonline.com/", Doc: "Entra authority host (national clouds, tests)."},
	{Name: "LogLevel", Default: "info", Doc: "`debug`, `info`, `warn` or `error`."},
	{Name: "AdminAudiences", Doc: "Comma-separated audiences of admin API tokens (this app's client id and/or App ID URI). Empty: every admin call is refused with 401 (the local runner does not check tokens)."},
	{Name: "OperatorAppRole", Default: "Platform.Operator", Doc: "App role value that makes a caller a platform operator."},
	{Name: "InteractKeyGraceSeconds", Default: "0", Doc: "How long a refreshed Interact widget key keeps working (0..3600; 0 refuses it at once)."},
	{Name: "InteractTokenAudiences", Doc: "Comma-separated token audiences accepted by Interact's token modes for tenants that set none of their own."},
	{Name: "EntraJwksUrl", Doc: "Entra signing keys (JWKS) URL; empty: `EntraAuthorityHost` + `common/discovery/v2.0/keys`."},
	{Name: "CallingWebhookUrl", Doc: "Public https URL of the calling webhook (`…/api/teams/notifications`): the callback of every call the app answers or places, and the \"Webhook (for calling)\" of the Azure Bot. Empty: calls are refused (the webhook answers 503)."},
	{Name: "CallingOpenIdMetadataUrl", Default: "https://api.aps.skype.com/v1/.well-known/OpenIdConfiguration", Doc: "OpenID metadata of Microsoft's calling platform: the keys its notification tokens are signed with (tests and the local runner point it at their fake)."},
	{Name: "DirectorySyncSchedule", Default: "0 */15 * * * *", Doc: "NCRONTAB schedule of the DirectorySync timer: brings every Teams-based service's agents in step with its Team's members and owners (Graph delta queries)."},
	{Name: "CallsReconcileSchedule", Default: "*/30 * * * * *", Doc: "NCRONTAB schedule of the CallsReconcile timer: finishes call steps that are overdue (a lost notification, a crash), hangs up offer legs left ringing, keeps long calls alive."},
	{Name: "OutboundRequestsQueue", Default: "outbound-requests", Doc: "Service Bus queue of outbound scheduling requests (ScheduleOutbound; e.g. from Power Automate)."},
	{Name: "OutboundDueQueue", Default: "outbound-due", Doc: "Service Bus queue the accepted outbound tasks are scheduled on for their due time (OutboundDue)."},
	{Name: "OutboundHorizonDays", Default: "30", Doc: "How far ahead an outbound task's due time may be, in days (1..365)."},
	{Name: "OutboundReconcileSchedule", Default: "0 */5 * * * *", Doc: "NCRONTAB schedule of the OutboundReconcile timer (repairs the per-service counters, schedules tasks whose scheduling was interrupted, frees slots of ended tasks)."},
	{Name: "ProvisioningSchedule", Default: "0 30 * * * *", Doc: "NCRONTAB schedule of the ProvisioningRun timer (removes services pending deletion, with their tasks, then applies retention)."},
}

// Config is the validated settings.
type Config struct {
	Port     string
	Storage  string // "Tables" or "Memory"
	LogLevel slog.Level
	Presence presence.Config
	Graph    Graph
	Interact Interact
	Calling  Calling
	// OutboundHorizon is how far ahead an outbound task may be due (OutboundHorizonDays).
	OutboundHorizon time.Duration
	Values          map[string]string // every setting as read (defaults applied); secrets included: never print it
}

// Graph is how to reach Graph and Entra.
type Graph struct {
	ClientID      string
	ClientSecret  string
	BaseURL       string
	AuthorityHost string
}

// Calling is how the app meets Microsoft's calling platform (the app is a calling
// bot whose Microsoft App ID is Graph.ClientID).
type Calling struct {
	WebhookURL  string // CallingWebhookUrl: callback of every call; "" = calls refused
	MetadataURL string // CallingOpenIdMetadataUrl: where the notification signing keys are
}

// Interact is the app-wide part of the Interact widget's settings.
type Interact struct {
	KeyGrace  time.Duration // InteractKeyGraceSeconds
	Audiences []string      // InteractTokenAudiences
	JWKSURL   string        // EntraJwksUrl ("" = derived from EntraAuthorityHost)
}

// Load reads and validates every setting. Errors name the setting and the rule.
func Load(getenv func(string) string) (Config, error) {
	v := map[string]string{}
	for _, s := range Settings {
		val := strings.TrimSpace(getenv(s.Name))
		if val == "" {
			val = s.Default
		}
		v[s.Name] = val
	}
	c := Config{Port: v["FUNCTIONS_CUSTOMHANDLER_PORT"], Values: v,
		Graph: Graph{ClientID: v["GraphClientId"], ClientSecret: v["GraphClientSecret"], BaseURL: v["GraphBaseUrl"], AuthorityHost: v["EntraAuthorityHost"]}}
	var errs []error
	check := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if p, err := strconv.Atoi(c.Port); err != nil || p < 1 || p > 65535 {
		check(fault.Invalid("FUNCTIONS_CUSTOMHANDLER_PORT", "must be a port number 1..65535"))
	}
	switch strings.ToLower(v["Storage"]) {
	case "tables":
		c.Storage = "Tables"
	case "memory":
		c.Storage = "Memory"
	case "":
		c.Storage = "Memory"
		for _, k := range []string{"AzureWebJobsStorage", "AzureWebJobsStorage__accountName", "AzureWebJobsStorage__tableServiceUri"} {
			if v[k] != "" {
				c.Storage = "Tables"
			}
		}
	default:
		check(fault.Invalid("Storage", "must be Tables or Memory"))
	}
	if err := c.LogLevel.UnmarshalText([]byte(v["LogLevel"])); err != nil {
		check(fault.Invalid("LogLevel", "must be debug, info, warn or error"))
	}
	num := func(name string, lo, hi int) int {
		n, err := strconv.Atoi(v[name])
		if err != nil || n < lo || n > hi {
			check(fault.Invalid(name, fmt.Sprintf("must be a whole number %d..%d", lo, hi)))
		}
		return n
	}
	c.Presence = presence.Config{
		MaxInFlight:        num("PresenceMaxInFlight", 1, 64),
		MaxTenantsInFlight: num("PresenceMaxTenantsInFlight", 1, 64),
		OfflineDamping:     time.Duration(num("PresenceOfflineDampingSeconds", 0, 600)) * time.Second,
		PrivacyModePolls:   num("PresencePrivacyModePolls", 1, 10000),
		AccountRetry:       time.Duration(num("PresenceAccountRetrySeconds", 10, 86400)) * time.Second,
		MaxAge:             time.Duration(num("PresenceMaxAgeSeconds", 30, 86400)) * time.Second,
	}
	if c.Presence.OfflineDamping == 0 {
		c.Presence.OfflineDamping = -1 // 0 in the setting means "store Offline at once"
	}
	c.Interact.KeyGrace = time.Duration(num("InteractKeyGraceSeconds", 0, 3600)) * time.Second
	for _, a := range strings.Split(v["InteractTokenAudiences"], ",") {
		if a = strings.TrimSpace(a); a != "" {
			c.Interact.Audiences = append(c.Interact.Audiences, a)
		}
	}
	c.Interact.JWKSURL = v["EntraJwksUrl"]
	c.OutboundHorizon = time.Duration(num("OutboundHorizonDays", 1, 365)) * 24 * time.Hour
	for _, name := range []string{"GraphBaseUrl", "EntraAuthorityHost", "EntraJwksUrl", "CallingOpenIdMetadataUrl"} {
		if name == "EntraJwksUrl" && v[name] == "" {
			continue
		}
		if !strings.HasPrefix(v[name], "https://") && !strings.HasPrefix(v[name], "http://127.0.0.1") && !strings.HasPrefix(v[name], "http://localhost") {
			check(fault.Invalid(name, "must be an https:// URL"))
		}
	}
	c.Calling = Calling{WebhookURL: v["CallingWebhookUrl"], MetadataURL: v["CallingOpenIdMetadataUrl"]}
	if u := c.Calling.WebhookURL; u != "" && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://127.0.0.1") && !strings.HasPrefix(u, "http://localhost") {
		check(fault.Invalid("CallingWebhookUrl", "must be an https:// URL"))
	}
	if len(errs) > 0 {
		return Config{}, fmt.Errorf("invalid settings: %w", joinErrs(errs))
	}
	return c, nil
}

type multi []error

func (m multi) Error() string {
	parts := make([]string, len(m))
	for i, e := range m {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}
func (m multi) Unwrap() []error { return m }

func joinErrs(errs []error) error { return multi(errs) }

// LogValue prints the settings with secrets masked, for the start-up log line.
func (c Config) LogValue() slog.Value {
	var attrs []slog.Attr
	for _, s := range Settings {
		val := c.Values[s.Name]
		if s.Secret && val != "" {
			val = "***"
		}
		if val != "" {
			attrs = append(attrs, slog.String(s.Name, val))
		}
	}
	return slog.GroupValue(attrs...)
}
