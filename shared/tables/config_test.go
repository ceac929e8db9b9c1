package tables

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

const fakeKey = "c2VjcmV0LWtleS1ub3QtcmVhbA==" // base64, not a real key

func TestResolveConfig(t *testing.T) {
	tests := []struct {
		name     string
		cfg      Config
		endpoint string
		auth     authKind
		account  string
		clientID string
		errHas   []string // non-empty: resolve must fail naming these
	}{
		{name: "nothing configured names the settings", cfg: Config{},
			errHas: []string{"AzureWebJobsStorage", "AzureWebJobsStorage__accountName", "AzureWebJobsStorage__tableServiceUri"}},
		{name: "development storage expands to Azurite", cfg: Config{ConnectionString: "UseDevelopmentStorage=true"},
			endpoint: "http://127.0.0.1:10002/devstoreaccount1", auth: authSharedKey, account: "devstoreaccount1"},
		{name: "development storage, any case, trailing semicolon", cfg: Config{ConnectionString: " usedevelopmentstorage=TRUE; "},
			endpoint: "http://127.0.0.1:10002/devstoreaccount1", auth: authSharedKey, account: "devstoreaccount1"},
		{name: "development storage proxy keeps the table port", cfg: Config{ConnectionString: "UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://azurite.local"},
			endpoint: "http://azurite.local:10002/devstoreaccount1", auth: authSharedKey, account: "devstoreaccount1"},
		{name: "account key with defaults", cfg: Config{ConnectionString: "AccountName=acct;AccountKey=" + fakeKey},
			endpoint: "https://acct.table.core.windows.net", auth: authSharedKey, account: "acct"},
		{name: "protocol and suffix", cfg: Config{ConnectionString: "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=" + fakeKey + ";EndpointSuffix=core.chinacloudapi.cn"},
			endpoint: "https://acct.table.core.chinacloudapi.cn", auth: authSharedKey, account: "acct"},
		{name: "TableEndpoint wins over protocol and suffix", cfg: Config{ConnectionString: "DefaultEndpointsProtocol=https;AccountName=devstoreaccount1;AccountKey=" + fakeKey + ";BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;TableEndpoint=http://127.0.0.1:10002/devstoreaccount1/"},
			endpoint: "http://127.0.0.1:10002/devstoreaccount1", auth: authSharedKey, account: "devstoreaccount1"},
		{name: "keys are case-insensitive", cfg: Config{ConnectionString: "accountname=acct;accountkey=" + fakeKey + ";endpointsuffix=example.net"},
			endpoint: "https://acct.table.example.net", auth: authSharedKey, account: "acct"},
		{name: "SAS with TableEndpoint", cfg: Config{ConnectionString: "TableEndpoint=https://acct.table.core.windows.net/;SharedAccessSignature=sv=2019-02-02&sig=c2ln"},
			endpoint: "https://acct.table.core.windows.net", auth: authSAS},
		{name: "SAS with account name", cfg: Config{ConnectionString: "AccountName=acct;SharedAccessSignature=?sv=2019-02-02&sig=c2ln"},
			endpoint: "https://acct.table.core.windows.net", auth: authSAS, account: "acct"},
		{name: "no key nor SAS", cfg: Config{ConnectionString: "AccountName=acct"}, errHas: []string{"AzureWebJobsStorage", "AccountKey"}},
		{name: "not key=value", cfg: Config{ConnectionString: "just some text"}, errHas: []string{"AzureWebJobsStorage", "malformed"}},
		{name: "bad protocol", cfg: Config{ConnectionString: "DefaultEndpointsProtocol=ftp;AccountName=acct;AccountKey=" + fakeKey}, errHas: []string{"DefaultEndpointsProtocol"}},
		{name: "connection string wins over identity settings", cfg: Config{ConnectionString: "UseDevelopmentStorage=true", AccountName: "other", TableServiceURI: "https://other.table.core.windows.net"},
			endpoint: "http://127.0.0.1:10002/devstoreaccount1", auth: authSharedKey, account: "devstoreaccount1"},
		{name: "identity: account name", cfg: Config{AccountName: "acct"},
			endpoint: "https://acct.table.core.windows.net", auth: authDefault, account: "acct"},
		{name: "identity: table service URI wins over account name", cfg: Config{AccountName: "acct", TableServiceURI: "https://other.table.core.usgovcloudapi.net/"},
			endpoint: "https://other.table.core.usgovcloudapi.net", auth: authDefault},
		{name: "identity: user-assigned managed identity", cfg: Config{AccountName: "acct", Credential: "managedidentity", ClientID: "1b2c3d4e-0000-4000-8000-000000000001"},
			endpoint: "https://acct.table.core.windows.net", auth: authManagedIdentity, account: "acct", clientID: "1b2c3d4e-0000-4000-8000-000000000001"},
		{name: "identity: system-assigned managed identity, any case", cfg: Config{AccountName: "acct", Credential: "ManagedIdentity"},
			endpoint: "https://acct.table.core.windows.net", auth: authManagedIdentity, account: "acct"},
		{name: "identity: unknown credential", cfg: Config{AccountName: "acct", Credential: "password"}, errHas: []string{"AzureWebJobsStorage__credential"}},
		{name: "identity: bad account name", cfg: Config{AccountName: "My_Account"}, errHas: []string{"AzureWebJobsStorage__accountName"}},
		{name: "identity: table service URI not a URL", cfg: Config{TableServiceURI: "acct.table.core.windows.net"}, errHas: []string{"AzureWebJobsStorage__tableServiceUri"}},
		{name: "prefix must start with a letter", cfg: Config{ConnectionString: "UseDevelopmentStorage=true", TablePrefix: "1abc"}, errHas: []string{"TableNamePrefix"}},
		{name: "prefix letters and digits only", cfg: Config{ConnectionString: "UseDevelopmentStorage=true", TablePrefix: "ab-c"}, errHas: []string{"TableNamePrefix"}},
		{name: "prefix too long for PresenceHealth", cfg: Config{ConnectionString: "UseDevelopmentStorage=true", TablePrefix: "a" + strings.Repeat("b", 49)}, errHas: []string{"TableNamePrefix"}},
		{name: "longest prefix", cfg: Config{ConnectionString: "UseDevelopmentStorage=true", TablePrefix: "a" + strings.Repeat("b", 48)},
			endpoint: "http://127.0.0.1:10002/devstoreaccount1", auth: authSharedKey, account: "devstoreaccount1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.cfg.resolve()
			if len(tt.errHas) > 0 {
				if err == nil {
					t.Fatalf("resolve = %+v, want an error", got.endpoint)
				}
				for _, s := range tt.errHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not name %q", err, s)
					}
				}
				if strings.Contains(err.Error(), fakeKey) {
					t.Errorf("error %q leaks the account key", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("resolve: %v", err)
			}
			if got.endpoint != tt.endpoint || got.auth != tt.auth || got.accountName != tt.account || got.clientID != tt.clientID {
				t.Fatalf("resolve = endpoint %q auth %d account %q clientID %q; want %q %d %q %q",
					got.endpoint, got.auth, got.accountName, got.clientID, tt.endpoint, tt.auth, tt.account, tt.clientID)
			}
		})
	}
}

func TestDevelopmentStorageUsesWellKnownKey(t *testing.T) {
	got, err := Config{ConnectionString: "UseDevelopmentStorage=true"}.resolve()
	if err != nil || got.accountKey != devAccountKey {
		t.Fatalf("resolve = key %q, %v; want Azurite's well-known key", got.accountKey, err)
	}
}

func TestConfigFromEnv(t *testing.T) {
	env := map[string]string{
		"AzureWebJobsStorage":                  " UseDevelopmentStorage=true ",
		"AzureWebJobsStorage__accountName":     "acct",
		"AzureWebJobsStorage__tableServiceUri": "https://acct.table.core.windows.net",
		"AzureWebJobsStorage__clientId":        "client-id",
		"AzureWebJobsStorage__credential":      "managedidentity",
		"TableNamePrefix":                      "Dev1",
	}
	got := ConfigFromEnv(func(k string) string { return env[k] })
	want := Config{ConnectionString: "UseDevelopmentStorage=true", AccountName: "acct", TableServiceURI: "https://acct.table.core.windows.net",
		ClientID: "client-id", Credential: "managedidentity", TablePrefix: "Dev1"}
	if got != want {
		t.Fatalf("ConfigFromEnv = %v, want %v", got, want)
	}
	if !got.Configured() || (Config{}).Configured() || !(Config{AccountName: "a"}).Configured() {
		t.Fatal("Configured must be true exactly when a connection string or an identity-based account is set")
	}
}

func TestConfigPrintsNoSecret(t *testing.T) {
	cfg := Config{ConnectionString: "AccountName=acct;AccountKey=" + fakeKey, TablePrefix: "P"}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(verb, cfg); strings.Contains(s, fakeKey) || !strings.Contains(s, "***") {
			t.Errorf("%s of Config = %s: must mask the connection string", verb, s)
		}
	}
}

func TestOpenErrorsNameSettingsAndLeakNothing(t *testing.T) {
	ctx := context.Background()
	if _, err := Open(ctx, Config{}); err == nil || !strings.Contains(err.Error(), "AzureWebJobsStorage__accountName") {
		t.Fatalf("Open(empty) = %v; want an error naming the settings", err)
	}
	const badKey = "not base64 but secret!"
	_, err := Open(ctx, Config{ConnectionString: "AccountName=acct;AccountKey=" + badKey})
	if err == nil {
		t.Fatal("Open with a malformed account key must fail")
	}
	if strings.Contains(err.Error(), badKey) || strings.Contains(err.Error(), "AccountKey=") {
		t.Fatalf("error leaks the key: %v", err)
	}
}
