package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/interact"
)

// RunInteract is the conformance suite of interact.Store. newStore must return an
// empty, isolated store each call.
func RunInteract(t *testing.T, newStore func(t *testing.T) interact.Store) {
	t.Run("Settings", func(t *testing.T) { testInteractSettings(t, newStore(t)) })
	t.Run("SettingsConcurrentUpdatesLoseNothing", func(t *testing.T) { testInteractSettingsRace(t, newStore(t)) })
	t.Run("Sessions", func(t *testing.T) { testSessions(t, newStore(t)) })
	t.Run("SessionConcurrentUpdatesLoseNothing", func(t *testing.T) { testSessionRace(t, newStore(t)) })
}

var errAbort = errors.New("abort")

func testInteractSettings(t *testing.T, s interact.Store) {
	ctx := context.Background()
	_, err := s.GetSettings(ctx, tenantA)
	mustNotFound(t, "settings never stored", err)

	want := interact.Settings{TenantID: tenantA, Enabled: true, AuthMode: interact.ModeVerifyTokenAndTenant,
		RecoveryTimeoutSeconds: 35, AllowedOrigins: []string{"https://contoso.com", "https://www.contoso.com:8443"},
		TokenAudiences: []string{"api://widget"}, MeetingUserID: "6a1d5f2e-1111-4222-8333-944455556666", ACSConfigured: true,
		KeyHash: interact.HashKey("k2"), PrevKeyHash: interact.HashKey("k1"), PrevKeyValidUntil: at.Add(time.Minute),
		KeyRefreshedAt: at, UpdatedAt: at, Version: 1}
	got, err := s.UpdateSettings(ctx, tenantA, func(x *interact.Settings) error {
		if x.Version != 0 || x.TenantID != tenantA || x.KeyHash != "" {
			return fmt.Errorf("first update sees %+v; want zero settings with TenantID", *x)
		}
		v := want
		v.Version = 99 // the store decides the version
		*x = v
		return nil
	})
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("first update = %+v, %v; want %+v", got, err, want)
	}
	read, err := s.GetSettings(ctx, tenantA)
	if err != nil || !reflect.DeepEqual(read, want) {
		t.Fatalf("get = %+v, %v; want %+v", read, err, want)
	}
	read.AllowedOrigins[0] = "https://mutated.example"
	if again, _ := s.GetSettings(ctx, tenantA); again.AllowedOrigins[0] != "https://contoso.com" {
		t.Fatal("a caller mutating the returned settings changed the stored ones")
	}
	got, err = s.UpdateSettings(ctx, tenantA, func(x *interact.Settings) error {
		if !reflect.DeepEqual(*x, want) {
			return fmt.Errorf("second update sees %+v", *x)
		}
		x.Enabled = false
		x.AllowedOrigins = nil
		return nil
	})
	if err != nil || got.Version != 2 || got.Enabled || len(got.AllowedOrigins) != 0 {
		t.Fatalf("second update = %+v, %v; want version 2, disabled, no origins", got, err)
	}
	if _, err := s.UpdateSettings(ctx, tenantA, func(x *interact.Settings) error { x.Enabled = true; return errAbort }); !errors.Is(err, errAbort) {
		t.Fatalf("update whose fn fails = %v; want its error", err)
	}
	if read, _ := s.GetSettings(ctx, tenantA); read.Version != 2 || read.Enabled {
		t.Fatalf("a failed update wrote: %+v", read)
	}
	if _, err := s.UpdateSettings(ctx, tenantB, func(x *interact.Settings) error { return errAbort }); !errors.Is(err, errAbort) {
		t.Fatal("fn error on a new row must abort")
	}
	_, err = s.GetSettings(ctx, tenantB)
	mustNotFound(t, "settings of another tenant after an aborted first write", err)
}

func testInteractSettingsRace(t *testing.T, s interact.Store) {
	ctx := context.Background()
	const n = 16
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.UpdateSettings(ctx, tenantA, func(x *interact.Settings) error {
				x.AllowedOrigins = append(x.AllowedOrigins, fmt.Sprintf("https://o%02d.example", i))
				return nil
			}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, err := s.GetSettings(ctx, tenantA)
	if err != nil || len(got.AllowedOrigins) != n || got.Version != n {
		t.Fatalf("after %d concurrent updates: %d origins, version %d, %v; want %d and %d", n, len(got.AllowedOrigins), got.Version, err, n, n)
	}
}

func testSessions(t *testing.T, s interact.Store) {
	ctx := context.Background()
	id := "3f2c1b0a-9e8d-4c7b-a6f5-e4d3c2b1a090"
	_, err := s.GetSession(ctx, tenantA, id)
	mustNotFound(t, "unknown session", err)
	_, err = s.UpdateSession(ctx, tenantA, id, func(*interact.Session) error { return nil })
	mustNotFound(t, "update of an unknown session", err)

	sess := interact.Session{TenantID: tenantA, ID: id, CustomerID: "customer é 42 <x@y>", State: interact.SessionOpen,
		CreatedAt: at, ACSIdentity: "8:acs:r1_0000"}
	if err := s.CreateSession(ctx, sess); err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := s.CreateSession(ctx, sess); !errors.Is(err, fault.ErrConflict) {
		t.Fatalf("create twice = %v; want fault.ErrConflict", err)
	}
	if got, err := s.GetSession(ctx, tenantA, id); err != nil || !reflect.DeepEqual(got, sess) {
		t.Fatalf("get = %+v, %v; want %+v", got, err, sess)
	}
	_, err = s.GetSession(ctx, tenantB, id)
	mustNotFound(t, "the session under another tenant", err)

	closed := at.Add(3 * time.Second)
	got, err := s.UpdateSession(ctx, tenantA, id, func(x *interact.Session) error {
		x.State, x.ClosedAt = interact.SessionClosed, closed
		return nil
	})
	want := sess
	want.State, want.ClosedAt = interact.SessionClosed, closed
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("close = %+v, %v; want %+v", got, err, want)
	}
	if _, err := s.UpdateSession(ctx, tenantA, id, func(x *interact.Session) error { x.State = interact.SessionOpen; return errAbort }); !errors.Is(err, errAbort) {
		t.Fatalf("update whose fn fails = %v", err)
	}
	if got, _ := s.GetSession(ctx, tenantA, id); !reflect.DeepEqual(got, want) {
		t.Fatalf("a failed update wrote: %+v", got)
	}
}

func testSessionRace(t *testing.T, s interact.Store) {
	ctx := context.Background()
	id := "3f2c1b0a-9e8d-4c7b-a6f5-e4d3c2b1a091"
	if err := s.CreateSession(ctx, interact.Session{TenantID: tenantA, ID: id, CustomerID: "c", State: interact.SessionOpen, CreatedAt: at}); err != nil {
		t.Fatal(err)
	}
	const n = 16
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.UpdateSession(ctx, tenantA, id, func(x *interact.Session) error { x.Recoveries++; return nil }); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got, err := s.GetSession(ctx, tenantA, id); err != nil || got.Recoveries != n {
		t.Fatalf("after %d concurrent updates: %+v, %v", n, got, err)
	}
}
