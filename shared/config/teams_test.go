package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/teamscc/teamscc/shared/fault"
)

func TestTeamsClientStateIsSecretAndBounded(t *testing.T) {
	env := map[string]string{"TeamsClientState": strings.Repeat("s", 128)}
	c, err := Load(func(k string) string { return env[k] })
	if err != nil || c.Values["TeamsClientState"] != env["TeamsClientState"] {
		t.Fatalf("128 characters: %v", err)
	}
	env["TeamsClientState"] += "s"
	var fe *fault.FieldError
	if _, err := Load(func(k string) string { return env[k] }); !errors.As(err, &fe) || fe.Field != "TeamsClientState" {
		t.Fatalf("129 characters: %v; want a *fault.FieldError on TeamsClientState", err)
	}
	for _, s := range Settings {
		if s.Name == "TeamsClientState" && !s.Secret {
			t.Fatal("TeamsClientState must be Secret (masked in the start-up log)")
		}
	}
}
