package tables

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Setting names read by ConfigFromEnv. They are the Functions host's own names for its
// storage connection, so the app and the host share one storage account and one set of
// app settings.
const (
	SettingConnection      = "AzureWebJobsStorage"
	SettingAccountName     = "AzureWebJobsStorage__accountName"
	SettingTableServiceURI = "AzureWebJobsStorage__tableServiceUri"
	SettingClientID        = "AzureWebJobsStorage__clientId"
	SettingCredential      = "AzureWebJobsStorage__credential"
	SettingTablePrefix     = "TableNamePrefix"
)

// Config says which Table storage account to use and how to sign in. Exactly one way
// is used: ConnectionString if set, else identity-based (TableServiceURI, else
// AccountName). Its String method masks the connection string, so a Config may be
// printed or logged.
type Config struct {
	// ConnectionString is "UseDevelopmentStorage=true" (Azurite on 127.0.0.1:10002,
	// DevelopmentStorageProxyUri honoured) or an account connection string with
	// AccountName+AccountKey or SharedAccessSignature, and TableEndpoint or
	// DefaultEndpointsProtocol/EndpointSuffix. It holds a secret.
	ConnectionString string
	// AccountName is the identity-based setting AzureWebJobsStorage__accountName; the
	// endpoint is then https://{AccountName}.table.core.windows.net.
	AccountName string
	// TableServiceURI is AzureWebJobsStorage__tableServiceUri; it wins over AccountName
	// (sovereign clouds, private endpoints).
	TableServiceURI string
	// ClientID is AzureWebJobsStorage__clientId: the client id of a user-assigned
	// managed identity, used when Credential is "managedidentity".
	ClientID string
	// Credential is AzureWebJobsStorage__credential: "managedidentity" for a managed
	// identity, "" for DefaultAzureCredential (environment, workload identity, managed
	// identity, Azure CLI, ...).
	Credential string
	// TablePrefix is prepended to every table name (letters and digits only, starting
	// with a letter); tests isolate runs with it.
	TablePrefix string
	// HTTPClient, when set, carries every request (storage and token requests).
	HTTPClient *http.Client
	// TryTimeout bounds one storage request (one try); 0 = DefaultTryTimeout.
	TryTimeout time.Duration
}

// ConfigFromEnv reads the Config from the app settings named by the Setting*
// constants. It does not validate; Open does.
func ConfigFromEnv(getenv func(string) string) Config {
	get := func(k string) string { return strings.TrimSpace(getenv(k)) }
	return Config{
		ConnectionString: get(SettingConnection),
		AccountName:      get(SettingAccountName),
		TableServiceURI:  get(SettingTableServiceURI),
		ClientID:         get(SettingClientID),
		Credential:       get(SettingCredential),
		TablePrefix:      get(SettingTablePrefix),
	}
}

// Configured reports whether any storage connection is set (a connection string or
// an identity-based account), that is whether Open has something to try. Callers use
// it to fall back to the embedded store.
func (c Config) Configured() bool {
	return c.ConnectionString != "" || c.AccountName != "" || c.TableServiceURI != ""
}

// String describes c with the connection string masked.
func (c Config) String() string {
	conn := ""
	if c.ConnectionString != "" {
		conn = "***"
	}
	return fmt.Sprintf("tables.Config{ConnectionString:%q AccountName:%q TableServiceURI:%q ClientID:%q Credential:%q TablePrefix:%q}",
		conn, c.AccountName, c.TableServiceURI, c.ClientID, c.Credential, c.TablePrefix)
}

// GoString masks the connection string for %#v as well.
func (c Config) GoString() string { return c.String() }

// authKind is how a resolved target signs its requests.
type authKind int

const (
	authSharedKey authKind = iota + 1
	authSAS
	authManagedIdentity
	authDefault
)

// target is a Config resolved into an endpoint and a way to sign in. Its fields hold
// secrets (accountKey, sas): never print a target.
type target struct {
	endpoint    string // table service URL without query, e.g. http://127.0.0.1:10002/devstoreaccount1
	auth        authKind
	accountName string
	accountKey  string // authSharedKey
	sas         string // authSAS, without the leading '?'
	clientID    string // authManagedIdentity (optional)
}

// Azurite's well-known development account (public, documented by Microsoft).
const (
	devAccountName = "devstoreaccount1"
	devAccountKey  = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
	devTablePort   = "10002"
)

var errNoStorage = errors.New("no storage configured: set " + SettingConnection +
	" (a connection string, or UseDevelopmentStorage=true for Azurite) or, identity-based, " +
	SettingAccountName + " or " + SettingTableServiceURI)

// resolve validates c and turns it into a target. Errors name the setting at fault and
// never quote the connection string.
func (c Config) resolve() (target, error) {
	if err := checkPrefix(c.TablePrefix); err != nil {
		return target{}, err
	}
	if c.ConnectionString != "" {
		// The host's rule: a plain AzureWebJobsStorage value is a connection string and
		// wins over the AzureWebJobsStorage__* identity-based settings.
		return parseConnectionString(c.ConnectionString)
	}
	var t target
	switch {
	case c.TableServiceURI != "":
		u, err := url.Parse(c.TableServiceURI)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" {
			return target{}, fmt.Errorf("%s: want an absolute http(s) URL without query, like https://account.table.core.windows.net", SettingTableServiceURI)
		}
		t.endpoint = strings.TrimRight(u.String(), "/")
	case c.AccountName != "":
		if !validAccountName(c.AccountName) {
			return target{}, fmt.Errorf("%s: want 3-24 lowercase letters and digits", SettingAccountName)
		}
		t.endpoint = "https://" + c.AccountName + ".table.core.windows.net"
		t.accountName = c.AccountName
	default:
		return target{}, errNoStorage
	}
	switch strings.ToLower(c.Credential) {
	case "managedidentity":
		t.auth, t.clientID = authManagedIdentity, c.ClientID
	case "":
		t.auth = authDefault
	default:
		return target{}, fmt.Errorf("%s: %q is not supported (use \"managedidentity\" or leave it empty for DefaultAzureCredential)", SettingCredential, c.Credential)
	}
	return t, nil
}

func validAccountName(s string) bool {
	if len(s) < 3 || len(s) > 24 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// checkPrefix enforces Azure's table name rule (^[A-Za-z][A-Za-z0-9]{2,62}$) on the
// prefix, leaving room for the longest fixed name.
func checkPrefix(p string) error {
	if p == "" {
		return nil
	}
	if len(p) > 63-len(tablePresenceHealth) {
		return fmt.Errorf("%s: at most %d characters", SettingTablePrefix, 63-len(tablePresenceHealth))
	}
	for i, r := range p {
		letter := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if !letter && (i == 0 || r < '0' || r > '9') {
			return fmt.Errorf("%s: letters and digits only, starting with a letter", SettingTablePrefix)
		}
	}
	return nil
}

// parseConnectionString reads a storage connection string. Keys are matched
// case-insensitively (as the .NET parsers the host uses do); unknown keys
// (BlobEndpoint, QueueEndpoint, ...) are ignored.
func parseConnectionString(s string) (target, error) {
	kv := map[string]string{}
	for _, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return target{}, fmt.Errorf("%s: malformed connection string (want key=value pairs separated by ';')", SettingConnection)
		}
		kv[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	if strings.EqualFold(kv["usedevelopmentstorage"], "true") {
		// aztables rejects the shorthand: spell out Azurite's well-known account.
		host := "http://127.0.0.1"
		if p := kv["developmentstorageproxyuri"]; p != "" {
			u, err := url.Parse(p)
			if err != nil || u.Scheme == "" || u.Hostname() == "" {
				return target{}, fmt.Errorf("%s: DevelopmentStorageProxyUri is not an absolute URL", SettingConnection)
			}
			host = u.Scheme + "://" + u.Hostname()
		}
		return target{endpoint: host + ":" + devTablePort + "/" + devAccountName, auth: authSharedKey,
			accountName: devAccountName, accountKey: devAccountKey}, nil
	}
	t := target{accountName: kv["accountname"]}
	if ep := kv["tableendpoint"]; ep != "" {
		u, err := url.Parse(ep)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return target{}, fmt.Errorf("%s: TableEndpoint is not an absolute http(s) URL", SettingConnection)
		}
		t.endpoint = strings.TrimRight(ep, "/")
	} else {
		if t.accountName == "" {
			return target{}, fmt.Errorf("%s: connection string has neither AccountName nor TableEndpoint", SettingConnection)
		}
		proto := kv["defaultendpointsprotocol"]
		if proto == "" {
			proto = "https"
		}
		if proto != "https" && proto != "http" {
			return target{}, fmt.Errorf("%s: DefaultEndpointsProtocol must be https or http", SettingConnection)
		}
		suffix := kv["endpointsuffix"]
		if suffix == "" {
			suffix = "core.windows.net"
		}
		t.endpoint = proto + "://" + t.accountName + ".table." + suffix
	}
	switch {
	case kv["accountkey"] != "":
		if t.accountName == "" {
			return target{}, fmt.Errorf("%s: AccountKey needs AccountName", SettingConnection)
		}
		t.auth, t.accountKey = authSharedKey, kv["accountkey"]
	case kv["sharedaccesssignature"] != "":
		t.auth, t.sas = authSAS, strings.TrimPrefix(kv["sharedaccesssignature"], "?")
	default:
		return target{}, fmt.Errorf("%s: connection string has neither AccountKey nor SharedAccessSignature", SettingConnection)
	}
	return t, nil
}
