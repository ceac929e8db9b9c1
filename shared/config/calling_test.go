package config

import (
	"errors"
	"testing"

	"github.com/teamscc/teamscc/shared/fault"
)

func TestCallingSettingsAreReadAndChecked(t *testing.T) {
	env := map[string]string{"CallingWebhookUrl": "https://app.example/api/teams/notifications"}
	c, err := Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.Calling.WebhookURL != env["CallingWebhookUrl"] || c.Calling.MetadataURL != "https://api.aps.skype.com/v1/.well-known/OpenIdConfiguration" {
		t.Fatalf("calling settings: %+v", c.Calling)
	}
	for _, bad := range []struct{ name, v string }{
		{"CallingWebhookUrl", "http://app.example/api/teams/notifications"},
		{"CallingOpenIdMetadataUrl", "ftp://keys.example/"},
	} {
		var fe *fault.FieldError
		if _, err := Load(func(k string) string {
			if k == bad.name {
				return bad.v
			}
			return ""
		}); !errors.As(err, &fe) || fe.Field != bad.name {
			t.Errorf("%s=%q: %v; want a *fault.FieldError naming it", bad.name, bad.v, err)
		}
	}
}
