package config_test

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/config"
	"github.com/teamscc/teamscc/shared/fault"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestDefaultsNeedNoSettingsAndUseEmbeddedStorage(t *testing.T) {
	c, err := config.Load(env())
	if err != nil {
		t.Fatal(err)
	}
	if c.Storage != "Memory" || c.Port != "8080" || c.Presence.MaxInFlight != 8 || c.Presence.OfflineDamping != 30*time.Second || c.Presence.AccountRetry != 5*time.Minute {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestAStorageConnectionSelectsTables(t *testing.T) {
	for _, k := range []string{"AzureWebJobsStorage", "AzureWebJobsStorage__accountName", "AzureWebJobsStorage__tableServiceUri"} {
		c, err := config.Load(env(k, "x"))
		if err != nil || c.Storage != "Tables" {
			t.Errorf("%s set: storage %q, %v", k, c.Storage, err)
		}
	}
	if c, _ := config.Load(env("AzureWebJobsStorage", "UseDevelopmentStorage=true", "Storage", "memory")); c.Storage != "Memory" {
		t.Errorf("explicit Memory ignored")
	}
}

func TestBadSettingsAreNamedWithTheirRule(t *testing.T) {
	_, err := config.Load(env("PresenceMaxInFlight", "0", "Storage", "disk", "PresenceOfflineDampingSeconds", "x", "GraphBaseUrl", "http://evil.example", "FUNCTIONS_CUSTOMHANDLER_PORT", "70000"))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"PresenceMaxInFlight: must be a whole number 1..64", "Storage: must be Tables or Memory",
		"PresenceOfflineDampingSeconds: must be a whole number 0..600", "GraphBaseUrl: must be an https:// URL", "FUNCTIONS_CUSTOMHANDLER_PORT"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	var fe *fault.FieldError
	if !errors.As(err, &fe) {
		t.Errorf("not a field error: %v", err)
	}
}

func TestZeroDampingStoresOfflineAtOnce(t *testing.T) {
	c, err := config.Load(env("PresenceOfflineDampingSeconds", "0"))
	if err != nil || c.Presence.OfflineDamping >= 0 {
		t.Fatalf("damping %v, %v", c.Presence.OfflineDamping, err)
	}
}

func TestSecretsAreMaskedWhenLogged(t *testing.T) {
	c, err := config.Load(env("GraphClientSecret", "sup3r-secret", "AzureWebJobsStorage", "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=KEY123=="))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "settings", c)
	if s := buf.String(); strings.Contains(s, "sup3r-secret") || strings.Contains(s, "KEY123") || !strings.Contains(s, "***") {
		t.Fatalf("logged: %s", s)
	}
}
