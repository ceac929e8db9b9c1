// Package storetest is the conformance suite every store implementation must pass:
// the embedded one (inmem) always, the Table storage one (tables) against Azurite.
// It lives in a non-test file so both adapters' tests can run it.
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
	"github.com/teamscc/teamscc/shared/parking"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/tenant"
)

// Stores is one implementation of every store interface, usually one value.
type Stores struct {
	Tenants   tenant.Store
	Secrets   tenant.Secrets
	Presences presence.Store
	Parked    parking.Store
}

// Run runs the whole suite. newStores must return empty, isolated stores each call.
func Run(t *testing.T, newStores func(t *testing.T) Stores) {
	t.Run("Tenants", func(t *testing.T) { testTenants(t, newStores(t).Tenants) })
	t.Run("TenantCreateAndUpdate", func(t *testing.T) { testTenantUpdate(t, newStores(t).Tenants) })
	t.Run("TenantConcurrentUpdatesOneWinnerPerVersion", func(t *testing.T) { testTenantRace(t, newStores(t).Tenants) })
	t.Run("Agents", func(t *testing.T) { testAgents(t, newStores(t).Tenants) })
	t.Run("AgentsVersion", func(t *testing.T) { testAgentsVersion(t, newStores(t).Tenants) })
	t.Run("AgentsVersionNeverPairsWithAnOlderList", func(t *testing.T) { testAgentsVersionRace(t, newStores(t).Tenants) })
	t.Run("Secrets", func(t *testing.T) { testSecrets(t, newStores(t).Secrets) })
	t.Run("Presences", func(t *testing.T) { testPresences(t, newStores(t).Presences) })
	t.Run("Health", func(t *testing.T) { testHealth(t, newStores(t).Presences) })
	t.Run("HealthConcurrentUpdatesLoseNothing", func(t *testing.T) { testHealthRace(t, newStores(t).Presences) })
	t.Run("Parking", func(t *testing.T) { testParking(t, newStores(t).Parked) })
	t.Run("ParkingConcurrentReparkKeepsOne", func(t *testing.T) { testParkingRace(t, newStores(t).Parked) })
}

// at is a fixed instant with sub-second precision that every store must keep.
var at = time.Date(2026, 11, 24, 10, 30, 15, 123_000_000, time.UTC)

const (
	tenantA = "0d1f6b1e-7c3a-4c59-9a5e-1f2a3b4c5d6e"
	tenantB = "9e8d7c6b-5a49-4837-8261-7f6e5d4c3b2a"
)

func mustNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("%s: want fault.ErrNotFound, got %v", what, err)
	}
}

func testTenants(t *testing.T, s tenant.Store) {
	ctx := context.Background()
	_, err := s.GetTenant(ctx, tenantA)
	mustNotFound(t, "unknown tenant", err)

	a := tenant.Tenant{ID: tenantA, Name: "Contoso", UpdatedAt: at,
		Presence: tenant.PresenceSettings{Enabled: true, Mode: tenant.ModeAccounts, Account1: "p1@contoso.com", Account2: "p2@contoso.com"}}
	b := tenant.Tenant{ID: tenantB, Name: "Fabrikam", UpdatedAt: at, Presence: tenant.PresenceSettings{Mode: tenant.ModeApplication}}
	for _, tn := range []tenant.Tenant{b, a} {
		if err := s.PutTenant(ctx, tn); err != nil {
			t.Fatalf("put tenant: %v", err)
		}
	}
	got, err := s.GetTenant(ctx, tenantA)
	if err != nil || !reflect.DeepEqual(got, a) {
		t.Fatalf("get tenant = %+v, %v; want %+v", got, err, a)
	}
	a.Name, a.Deleted = "Contoso Ltd", true
	if err := s.PutTenant(ctx, a); err != nil {
		t.Fatalf("replace tenant: %v", err)
	}
	list, err := s.ListTenants(ctx)
	if err != nil {
		t.Fatalf("list tenants: %v", err)
	}
	if len(list) != 2 || !reflect.DeepEqual(list[0], a) || !reflect.DeepEqual(list[1], b) {
		t.Fatalf("list tenants = %+v; want [%+v %+v] ordered by id", list, a, b)
	}
}

func testAgents(t *testing.T, s tenant.Store) {
	ctx := context.Background()
	got, err := s.ListAgents(ctx, tenantA)
	if err != nil || len(got) != 0 {
		t.Fatalf("agents of a tenant with none = %v, %v; want empty, nil", got, err)
	}
	// More than one batch (100) and out of order.
	const n = 250
	agents := make([]tenant.Agent, n)
	for i := range agents {
		agents[i] = tenant.Agent{ID: fmt.Sprintf("agent-%04d", n-1-i), UPN: fmt.Sprintf("a%d@contoso.com", i), DisplayName: "Agent", Services: []string{"sales", "support"}}
	}
	if err := s.PutAgents(ctx, tenantA, agents); err != nil {
		t.Fatalf("put agents: %v", err)
	}
	if err := s.PutAgents(ctx, tenantB, agents[:1]); err != nil {
		t.Fatalf("put agents of another tenant: %v", err)
	}
	agents[0].DisplayName = "Renamed"
	agents[0].Services = nil
	if err := s.PutAgents(ctx, tenantA, agents[:1]); err != nil {
		t.Fatalf("replace agent: %v", err)
	}
	got, err = s.ListAgents(ctx, tenantA)
	if err != nil {
		t.Fatalf("list agents: %v", err)
	}
	if len(got) != n {
		t.Fatalf("list agents: %d agents, want %d", len(got), n)
	}
	for i := 1; i < n; i++ {
		if got[i-1].ID >= got[i].ID {
			t.Fatalf("list agents not ordered by id at %d: %q then %q", i, got[i-1].ID, got[i].ID)
		}
	}
	last := got[n-1]
	if last.ID != agents[0].ID || last.DisplayName != "Renamed" || len(last.Services) != 0 || last.TenantID != tenantA {
		t.Fatalf("replaced agent = %+v", last)
	}
	if got[0].UPN != agents[n-1].UPN || !reflect.DeepEqual(got[0].Services, []string{"sales", "support"}) {
		t.Fatalf("agent fields not kept: %+v", got[0])
	}
	other, _ := s.ListAgents(ctx, tenantB)
	if len(other) != 1 {
		t.Fatalf("tenant B sees %d agents, want 1", len(other))
	}
}

func testSecrets(t *testing.T, s tenant.Secrets) {
	ctx := context.Background()
	_, err := s.GetSecret(ctx, tenantA, tenant.SecretAccount1Password)
	mustNotFound(t, "unset secret", err)
	if err := s.PutSecret(ctx, tenantA, tenant.SecretAccount1Password, "s3cret!"); err != nil {
		t.Fatalf("put secret: %v", err)
	}
	if err := s.PutSecret(ctx, tenantA, tenant.SecretAccount1Password, "rotated"); err != nil {
		t.Fatalf("replace secret: %v", err)
	}
	if v, err := s.GetSecret(ctx, tenantA, tenant.SecretAccount1Password); err != nil || v != "rotated" {
		t.Fatalf("get secret = %q, %v", v, err)
	}
	_, err = s.GetSecret(ctx, tenantB, tenant.SecretAccount1Password)
	mustNotFound(t, "another tenant's secret", err)
}

func testPresences(t *testing.T, s presence.Store) {
	ctx := context.Background()
	got, err := s.LoadPresences(ctx, tenantA)
	if err != nil || len(got) != 0 {
		t.Fatalf("presences of a new tenant = %v, %v", got, err)
	}
	// Several batches and more than one page of 1,000.
	const n = 1234
	ps := make([]presence.Presence, n)
	for i := range ps {
		ps[i] = presence.Presence{AgentID: fmt.Sprintf("user-%05d", i), Availability: presence.Busy, Activity: presence.ActivityInACall,
			Source: presence.SourceExtended, ObservedAt: at.Add(time.Duration(i) * time.Millisecond)}
	}
	if err := s.SavePresences(ctx, tenantA, ps); err != nil {
		t.Fatalf("save presences: %v", err)
	}
	ps[7] = presence.Presence{AgentID: ps[7].AgentID, Availability: presence.Available, Source: presence.SourceBasic, ObservedAt: at.Add(time.Hour),
		OfflineAt: at.Add(time.Minute)}
	ps[8].Availability, ps[8].OfflineAt = presence.Offline, at.Add(time.Second)
	if err := s.SavePresences(ctx, tenantA, ps[7:9]); err != nil {
		t.Fatalf("replace presence: %v", err)
	}
	if err := s.SavePresences(ctx, tenantB, ps[:3]); err != nil {
		t.Fatalf("save other tenant: %v", err)
	}
	got, err = s.LoadPresences(ctx, tenantA)
	if err != nil {
		t.Fatalf("load presences: %v", err)
	}
	if len(got) != n {
		t.Fatalf("loaded %d presences, want %d", len(got), n)
	}
	byID := map[string]presence.Presence{}
	for _, p := range got {
		byID[p.AgentID] = p
	}
	for _, want := range ps {
		p := byID[want.AgentID]
		if !p.Same(want) || !p.ObservedAt.Equal(want.ObservedAt) || !p.OfflineAt.Equal(want.OfflineAt) {
			t.Fatalf("presence %s = %+v, want %+v", want.AgentID, p, want)
		}
	}
	other, _ := s.LoadPresences(ctx, tenantB)
	if len(other) != 3 {
		t.Fatalf("tenant B has %d presences, want 3", len(other))
	}
	if err := s.SavePresences(ctx, tenantA, nil); err != nil {
		t.Fatalf("saving nothing must be fine: %v", err)
	}
}

func testHealth(t *testing.T, s presence.Store) {
	ctx := context.Background()
	_, err := s.GetHealth(ctx, tenantA)
	mustNotFound(t, "health before first poll", err)

	boom := errors.New("boom")
	if _, err := s.UpdateHealth(ctx, tenantA, func(h *presence.Health) error { h.Agents = 9; return boom }); !errors.Is(err, boom) {
		t.Fatalf("update with failing fn = %v, want boom", err)
	}
	_, err = s.GetHealth(ctx, tenantA)
	mustNotFound(t, "health after a failed update", err)

	want := presence.Health{TenantID: tenantA, Active: presence.CredAccount2, ActiveSince: at, LastErrorCode: "AADSTS50076",
		LastError: "MFA required", LastErrorAt: at, Account1: presence.AccountStatus{CheckedAt: at, ErrorCode: "AADSTS50076"},
		Account2: presence.AccountStatus{OK: true, CheckedAt: at}, LastPollAt: at, LastPollTook: 1500 * time.Millisecond, Agents: 20,
		LastChanged: 3, Requests: 1, OfflinePolls: 2, Generation: 5,
		Warnings: []presence.Warning{{Code: "PrivacyMode", Message: "all offline", Fix: "Set-CsPrivacyConfiguration -EnablePrivacyMode $false"}}}
	got, err := s.UpdateHealth(ctx, tenantA, func(h *presence.Health) error {
		if h.TenantID != tenantA || h.Agents != 0 {
			return fmt.Errorf("first update must see an empty health for the tenant, got %+v", *h)
		}
		*h = want
		return nil
	})
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("update health = %+v, %v", got, err)
	}
	got, err = s.GetHealth(ctx, tenantA)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("get health = %+v, %v; want %+v", got, err, want)
	}
	_, err = s.GetHealth(ctx, tenantB)
	mustNotFound(t, "another tenant's health", err)
}

func testHealthRace(t *testing.T, s presence.Store) {
	ctx := context.Background()
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.UpdateHealth(ctx, tenantA, func(h *presence.Health) error { h.Generation++; return nil })
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent update: %v", err)
		}
	}
	h, err := s.GetHealth(ctx, tenantA)
	if err != nil || h.Generation != n {
		t.Fatalf("after %d concurrent increments generation = %d (%v): an update was lost", n, h.Generation, err)
	}
}

func testParking(t *testing.T, s parking.Store) {
	ctx := context.Background()
	msgs := []parking.Message{
		{Function: "RouteCall", MessageID: "m1", InvocationID: "i1", DeliveryCount: 1, Reason: "tenantId: unknown tenant", Body: `{"tenantId":"x"}`, ParkedAt: at},
		{Function: "PresenceRefreshTenant", MessageID: "m2", Reason: "body: not JSON", Body: "garbage", ParkedAt: at.Add(time.Second)},
		{Function: "RouteCall", MessageID: "m3", Reason: "serviceId: required", Body: "{}", ParkedAt: at.Add(2 * time.Second)},
	}
	for _, m := range msgs {
		if err := s.Park(ctx, m); err != nil {
			t.Fatalf("park: %v", err)
		}
	}
	again := msgs[0]
	again.DeliveryCount = 2
	if err := s.Park(ctx, again); err != nil {
		t.Fatalf("park again: %v", err)
	}
	got, err := s.ListParked(ctx, "RouteCall", 10)
	if err != nil {
		t.Fatalf("list parked: %v", err)
	}
	if len(got) != 2 || got[0].MessageID != "m3" || !reflect.DeepEqual(got[1], again) {
		t.Fatalf("parked RouteCall = %+v; want m3 then m1 (parked twice, kept once)", got)
	}
	all, _ := s.ListParked(ctx, "", 2)
	if len(all) != 2 || all[0].MessageID != "m3" || all[1].MessageID != "m2" {
		t.Fatalf("newest two of all = %+v", all)
	}
}

// testParkingRace: the same message parked concurrently (redeliveries racing, each at
// its own time) leaves exactly one record, and messages without a MessageID are never
// merged.
func testParkingRace(t *testing.T, s parking.Store) {
	ctx := context.Background()
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n+2)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.Park(ctx, parking.Message{Function: "RouteCall", MessageID: "m1", DeliveryCount: i + 1,
				Reason: "tenantId: unknown tenant", Body: "{}", ParkedAt: at.Add(time.Duration(i) * time.Millisecond)})
		}()
	}
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.Park(ctx, parking.Message{Function: "RouteCall", Reason: "timer: failed", ParkedAt: at.Add(-time.Hour)})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent park: %v", err)
		}
	}
	got, err := s.ListParked(ctx, "RouteCall", 0)
	if err != nil {
		t.Fatalf("list parked: %v", err)
	}
	var withID []parking.Message
	for _, m := range got {
		if m.MessageID == "m1" {
			withID = append(withID, m)
		}
	}
	if len(withID) != 1 || len(got) != 3 {
		t.Fatalf("after %d concurrent parks of m1 and 2 without MessageID: %d records of m1, %d in all; want 1 and 3: %+v", n, len(withID), len(got), got)
	}
	if got[0].MessageID != "m1" || got[1].MessageID != "" || got[2].MessageID != "" {
		t.Fatalf("want m1 (newest) then the two timer records, got %+v", got)
	}
}

// oneWinner runs try(0..n-1) at once and returns the one i that won: try answers nil
// for a win and an error for a loss, which lost must accept (what names the losers'
// expected error in the failure). Another error, or other than exactly one winner,
// fails the test.
func oneWinner(t *testing.T, n int, lost func(error) bool, what string, try func(i int) error) int {
	t.Helper()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners []int
	)
	for i := range n {
		wg.Go(func() {
			err := try(i)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				winners = append(winners, i)
			case !lost(err):
				t.Errorf("a loser must be %s: %v", what, err)
			}
		})
	}
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("%d of %d concurrent writers won; want exactly one", len(winners), n)
	}
	return winners[0]
}

// is is a lost func for oneWinner: the error is (wraps) target.
func is(target error) func(error) bool { return func(err error) bool { return errors.Is(err, target) } }
