package servicebus

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ConnectionSetting is the app-setting name of the Service Bus connection, as the
// Functions host reads it: a connection string in ConnectionSetting itself, or the
// identity-based form ConnectionSetting+"__fullyQualifiedNamespace" (with "__credential"
// and "__clientId" for a user-assigned managed identity).
const ConnectionSetting = "ServiceBusConnection"

// CredentialManagedIdentity is the value of "__credential" that selects a managed
// identity, as in the Functions host.
const CredentialManagedIdentity = "managedidentity"

// Retry defaults. Why explicit: in azservicebus RetryOptions{MaxRetries: 0} means "the
// default, 3" with a 4 s first delay and a 120 s cap, too slow for an HTTP edge that
// must answer Graph within seconds.
const (
	DefaultMaxRetries    = 2
	DefaultRetryDelay    = 500 * time.Millisecond
	DefaultMaxRetryDelay = 5 * time.Second
)

// Options says how to reach a namespace. Exactly one way is used: ConnectionString when
// set (as the Functions host prefers a connection string), else FullyQualifiedNamespace
// with an Entra credential.
type Options struct {
	// FullyQualifiedNamespace is "<name>.servicebus.windows.net" (an "sb://" prefix and
	// a trailing "/" are tolerated).
	FullyQualifiedNamespace string
	// Credential "managedidentity" uses ManagedIdentityCredential (user-assigned when
	// ClientID is set, system-assigned otherwise); anything else DefaultAzureCredential.
	Credential string
	// ClientID of a user-assigned managed identity; used only with Credential
	// "managedidentity".
	ClientID string
	// ConnectionString holds a shared access key: a secret, for a developer's
	// namespace. Never printed (see String).
	ConnectionString string

	// MaxRetries is how often a failed operation is retried: 0 means DefaultMaxRetries,
	// a negative value means no retry.
	MaxRetries int
	// RetryDelay and MaxRetryDelay shape the exponential backoff; 0 means the defaults.
	RetryDelay, MaxRetryDelay time.Duration
}

// OptionsFromEnv reads the options from the app settings named after
// ConnectionSetting (see there). Retry settings keep their defaults. It returns the
// error of Validate.
func OptionsFromEnv(getenv func(string) string) (Options, error) {
	o := Options{
		ConnectionString:        strings.TrimSpace(getenv(ConnectionSetting)),
		FullyQualifiedNamespace: strings.TrimSpace(getenv(ConnectionSetting + "__fullyQualifiedNamespace")),
		Credential:              strings.TrimSpace(getenv(ConnectionSetting + "__credential")),
		ClientID:                strings.TrimSpace(getenv(ConnectionSetting + "__clientId")),
	}
	return o, o.Validate()
}

// Validate checks that one way to reach a namespace is set and well formed. Its errors
// name settings, never their secret values.
func (o Options) Validate() error {
	if o.ConnectionString != "" {
		if _, ok := connectionEndpoint(o.ConnectionString); !ok {
			return errors.New(ConnectionSetting + ": not a Service Bus connection string (Endpoint=sb://…;SharedAccessKeyName=…;SharedAccessKey=…)")
		}
		return nil
	}
	if o.FullyQualifiedNamespace == "" {
		return errors.New(ConnectionSetting + ": set " + ConnectionSetting + "__fullyQualifiedNamespace (identity) or " + ConnectionSetting + " (connection string)")
	}
	ns := o.namespace()
	if ns == "" || strings.ContainsAny(ns, "/ ;=?#") || !strings.Contains(ns, ".") {
		return fmt.Errorf("%s__fullyQualifiedNamespace: %q is not a host name like <name>.servicebus.windows.net", ConnectionSetting, o.FullyQualifiedNamespace)
	}
	if o.ClientID != "" && !strings.EqualFold(o.Credential, CredentialManagedIdentity) {
		return fmt.Errorf("%s__clientId is set but %s__credential is not %q", ConnectionSetting, ConnectionSetting, CredentialManagedIdentity)
	}
	return nil
}

// namespace is FullyQualifiedNamespace without scheme or trailing slash.
func (o Options) namespace() string {
	ns := strings.TrimSpace(o.FullyQualifiedNamespace)
	ns = strings.TrimPrefix(ns, "sb://")
	return strings.TrimSuffix(ns, "/")
}

// managedIdentity reports whether Credential selects a managed identity.
func (o Options) managedIdentity() bool {
	return strings.EqualFold(o.Credential, CredentialManagedIdentity)
}

// String describes the options with the secret masked: safe to log.
func (o Options) String() string {
	if o.ConnectionString != "" {
		ep, _ := connectionEndpoint(o.ConnectionString)
		return fmt.Sprintf("servicebus{endpoint=%s, connectionString=***}", ep)
	}
	cred := "DefaultAzureCredential"
	if o.managedIdentity() {
		cred = "ManagedIdentity(system-assigned)"
		if o.ClientID != "" {
			cred = "ManagedIdentity(clientId=" + o.ClientID + ")"
		}
	}
	return fmt.Sprintf("servicebus{namespace=%s, credential=%s}", o.namespace(), cred)
}

// connectionEndpoint returns the Endpoint of a connection string (not a secret) and
// whether the string has an sb:// endpoint and a key or signature.
func connectionEndpoint(cs string) (string, bool) {
	var endpoint string
	var key bool
	for part := range strings.SplitSeq(cs, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch strings.ToLower(k) {
		case "endpoint":
			endpoint = v
		case "sharedaccesskey", "sharedaccesssignature":
			key = v != ""
		}
	}
	return endpoint, strings.HasPrefix(strings.ToLower(endpoint), "sb://") && key
}
