package simulate_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/inmem"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/simulate"
)

func TestDemoTenantsRefreshAndShowTheFallback(t *testing.T) {
	ctx := context.Background()
	clk := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	now := func() time.Time { return clk }
	s := inmem.New()
	if err := simulate.Seed(ctx, s, s, clk); err != nil {
		t.Fatal(err)
	}
	r := presence.NewRefresher(presence.Config{Source: presence.SourceSimulated}, s, s, s, simulate.NewReader(now), now)
	sum, err := r.RefreshAll(ctx)
	if err != nil || sum.Tenants != 2 || sum.Agents != 28 || sum.Changed != 28 {
		t.Fatalf("first refresh: %+v, %v", sum, err)
	}
	if a := sum.Results[0].Active; a != presence.CredAccount1 {
		t.Errorf("Contoso active %s, want account1", a)
	}
	if a := sum.Results[1].Active; a != presence.CredAccount2 {
		t.Errorf("Fabrikam active %s, want account2 (account 1 needs MFA)", a)
	}
	changed := 0
	for i := 0; i < 20; i++ {
		clk = clk.Add(15 * time.Second)
		sum, _ = r.RefreshAll(ctx)
		changed += sum.Changed
	}
	if changed == 0 {
		t.Fatal("simulated presence never changed in 5 minutes")
	}
	ps, _ := s.LoadPresences(ctx, simulate.ContosoID)
	for _, p := range ps {
		if p.Source != presence.SourceSimulated {
			t.Fatalf("presence not labelled simulated: %+v", p)
		}
	}
}

func TestSimulatedEntraRefusesBadPasswords(t *testing.T) {
	r := simulate.NewReader(nil)
	_, err := r.ReadPresences(context.Background(), simulate.ContosoID, presence.Credential{Kind: presence.CredAccount1, Username: "x", Password: "nope"}, []string{"a"})
	var ae *presence.AuthError
	if !errors.As(err, &ae) || ae.Code != "AADSTS50126" {
		t.Fatalf("bad password: %v", err)
	}
}
