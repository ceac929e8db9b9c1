package tables

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/parking"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/storetest"
)

// The conformance suite against Azurite, each case on its own tables.
func TestConformance(t *testing.T) {
	needAzurite(t)
	storetest.Run(t, func(t *testing.T) storetest.Stores {
		s := openAzurite(t)
		return storetest.Stores{Tenants: s, Secrets: s, Presences: s, Parked: s}
	})
}

func TestOpenIsIdempotent(t *testing.T) {
	cfg := azuriteConfig(t)
	for i := 0; i < 2; i++ { // the second Open finds the tables there (409 TableAlreadyExists)
		if _, err := Open(context.Background(), cfg); err != nil {
			t.Fatalf("open #%d: %v", i+1, err)
		}
	}
}

func TestStaleETagIsPrecondition(t *testing.T) {
	s := openAzurite(t)
	ctx := context.Background()
	h := presence.Health{TenantID: "tenant-1", Agents: 1}
	r, err := healthEntity(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.add(ctx, s.health, r); err != nil {
		t.Fatalf("add: %v", err)
	}
	if err := s.add(ctx, s.health, r); !errors.Is(err, fault.ErrConflict) {
		t.Fatalf("second add = %v; want fault.ErrConflict", err)
	}
	_, stale, err := s.readHealth(ctx, "tenant-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.replaceIfMatch(ctx, s.health, r, stale); err != nil {
		t.Fatalf("replace with the current ETag: %v", err)
	}
	err = s.replaceIfMatch(ctx, s.health, r, stale)
	if !errors.Is(err, fault.ErrPrecondition) {
		t.Fatalf("replace with a stale ETag = %v; want fault.ErrPrecondition", err)
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 412 {
		t.Fatalf("the SDK error must stay reachable: %v", err)
	}
	// The same inside a transaction, where the service answers 202 and hides the 412.
	err = submit(ctx, s.health, []action{{kind: aztables.TransactionTypeUpdateReplace, row: r, ifMatch: &stale}})
	if !errors.Is(err, fault.ErrPrecondition) || !strings.Contains(err.Error(), "batch failed at action 0") {
		t.Fatalf("batch with a stale ETag = %v; want fault.ErrPrecondition from the batch", err)
	}
	_, err = s.health.GetEntity(ctx, "tenant-2", healthRow, nil)
	if err = classify(err); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("missing entity = %v; want fault.ErrNotFound", err)
	}
}

func TestFailedBatchSurfacesAndWritesNothing(t *testing.T) {
	s := openAzurite(t)
	ctx := context.Background()
	existing, _ := newRow("presence", "pk", "tenant-1", "rk", "u1", props{"Source": "basic"})
	fresh, _ := newRow("presence", "pk", "tenant-1", "rk", "u2", props{"Source": "basic"})
	if err := s.add(ctx, s.presences, existing); err != nil {
		t.Fatal(err)
	}
	err := submit(ctx, s.presences, []action{
		{kind: aztables.TransactionTypeInsertReplace, row: fresh},
		{kind: aztables.TransactionTypeAdd, row: existing},
	})
	if err == nil {
		t.Fatal("a batch whose second action conflicts must fail (the service answers 202)")
	}
	if !errors.Is(err, fault.ErrConflict) || !strings.Contains(err.Error(), "batch failed at action 1") || !strings.Contains(err.Error(), "409") {
		t.Fatalf("batch error = %v; want the inner 409 as fault.ErrConflict naming the action", err)
	}
	_, err = s.presences.GetEntity(ctx, "tenant-1", "u2", nil)
	if !errors.Is(classify(err), fault.ErrNotFound) {
		t.Fatalf("a failed batch must write nothing, but its first row is there (%v)", err)
	}
}

// 250 presences are three batches, plus the two reads of the membership version that
// bracket the copy to the rosters (none here: no agent is in a service).
func TestSavePresences250IsThreeBatches(t *testing.T) {
	s := openAzurite(t)
	if err := s.SavePresences(context.Background(), "tenant-1", presences(1, time.Now())); err != nil { // first look: lists the memberships
		t.Fatal(err)
	}
	before := s.RoundTrips()
	if err := s.SavePresences(context.Background(), "tenant-1", presences(250, time.Now())); err != nil {
		t.Fatal(err)
	}
	if n := s.RoundTrips() - before; n != 5 {
		t.Fatalf("250 presences took %d round trips, want 3 batches (100+100+50) and 2 version reads", n)
	}
}

func presences(n int, at time.Time) []presence.Presence {
	ps := make([]presence.Presence, n)
	for i := range ps {
		ps[i] = presence.Presence{AgentID: fmt.Sprintf("user-%05d", i), Availability: presence.Busy,
			Activity: presence.ActivityInACall, Source: presence.SourceExtended, ObservedAt: at}
	}
	return ps
}

func TestPresenceTimeKeeps100ns(t *testing.T) {
	s := openAzurite(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 24, 10, 30, 15, 123456789, time.FixedZone("CET", 3600))
	if err := s.SavePresences(ctx, "tenant-1", []presence.Presence{{AgentID: "u1", Availability: presence.Away, ObservedAt: at}, {AgentID: "u2"}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.LoadPresences(ctx, "tenant-1")
	if err != nil || len(got) != 2 {
		t.Fatalf("load = %v, %v", got, err)
	}
	if want := at.Truncate(100 * time.Nanosecond).UTC(); !got[0].ObservedAt.Equal(want) || got[0].ObservedAt.Location() != time.UTC {
		t.Fatalf("observedAt = %v, want %v (UTC, 100 ns)", got[0].ObservedAt, want)
	}
	if !got[1].ObservedAt.IsZero() || got[1].Activity != "" {
		t.Fatalf("zero presence = %+v", got[1])
	}
}

func TestParkKeepsAwkwardMessages(t *testing.T) {
	s := openAzurite(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 24, 10, 30, 15, 0, time.UTC)
	body := strings.Repeat("{\"x\":\"é😀\"}", 30_000) // ~300 KiB: over one property, within the entity
	m := parking.Message{Function: "RouteCall", MessageID: "queue/msg#1?'", Reason: "body: too large", Body: body, ParkedAt: at}
	if err := s.Park(ctx, m); err != nil {
		t.Fatal(err)
	}
	m.DeliveryCount, m.ParkedAt = 2, at.Add(time.Minute)
	if err := s.Park(ctx, m); err != nil {
		t.Fatal(err)
	}
	got, err := s.ListParked(ctx, "RouteCall", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].MessageID != m.MessageID || got[0].Body != body || got[0].DeliveryCount != 2 || !got[0].ParkedAt.Equal(m.ParkedAt) {
		t.Fatalf("re-parked message with an id that is no valid key: %d records, first %+.200v", len(got), got)
	}
}

func TestParkSurvivesAMissingRecord(t *testing.T) {
	// An operator deleted the record by hand, leaving its index row: parking the
	// message again must still work and leave one record.
	s := openAzurite(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 24, 10, 30, 15, 0, time.UTC)
	m := parking.Message{Function: "RouteCall", MessageID: "m1", ParkedAt: at}
	if err := s.Park(ctx, m); err != nil {
		t.Fatal(err)
	}
	if _, err := s.parked.DeleteEntity(ctx, "RouteCall", invertedTicks(at)+"_"+idPart("m1"), nil); err != nil {
		t.Fatal(err)
	}
	m.ParkedAt = at.Add(time.Second)
	if err := s.Park(ctx, m); err != nil {
		t.Fatalf("park after the record vanished: %v", err)
	}
	got, err := s.ListParked(ctx, "", 0)
	if err != nil || len(got) != 1 || !got[0].ParkedAt.Equal(m.ParkedAt) {
		t.Fatalf("parked = %+v, %v", got, err)
	}
}

func TestListParkedAcrossFunctionsReadsOnlyTheNewest(t *testing.T) {
	s := openAzurite(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 24, 10, 30, 15, 0, time.UTC)
	var wg sync.WaitGroup
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn := []string{"RouteCall", "PresenceRefreshTenant", "Outbound"}[i%3]
			if err := s.Park(ctx, parking.Message{Function: fn, MessageID: fmt.Sprint("m", i), ParkedAt: at.Add(time.Duration(i) * time.Second)}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	before := s.RoundTrips()
	got, err := s.ListParked(ctx, "", 4)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range got {
		ids = append(ids, m.MessageID)
	}
	if fmt.Sprint(ids) != "[m29 m28 m27 m26]" {
		t.Fatalf("newest four of all = %v", ids)
	}
	if n := s.RoundTrips() - before; n != 1+4 {
		t.Fatalf("listing took %d round trips; want 1 key scan + 4 reads", n)
	}
	before = s.RoundTrips()
	if got, err := s.ListParked(ctx, "RouteCall", 3); err != nil || len(got) != 3 || got[0].MessageID != "m27" || s.RoundTrips()-before != 1 {
		t.Fatalf("newest three of one function = %+v, %v, %d round trips; want m27 first in one query", got, err, s.RoundTrips()-before)
	}
}

// BenchmarkSavePresences500 writes 500 changed presences of one tenant per op: five
// batches of 100, four in flight.
func BenchmarkSavePresences500(b *testing.B) {
	s := openAzurite(b)
	ctx := context.Background()
	at := time.Now()
	before := s.RoundTrips()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.SavePresences(ctx, "tenant-1", presences(500, at.Add(time.Duration(i)*time.Second))); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(s.RoundTrips()-before)/float64(b.N), "roundtrips/op")
	b.ReportMetric(500*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// redirect sends every request to host instead (what a port forward would do).
type redirect struct{ host string }

func (r redirect) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.URL.Host, req.Host = r.host, r.host
	return http.DefaultTransport.RoundTrip(req)
}

func TestUseDevelopmentStorageTalksToAzurite(t *testing.T) {
	// The expanded shorthand (well-known account, key, path-style endpoint on
	// 127.0.0.1:10002) must be accepted by Azurite; the test Azurite listens on
	// another port, so the transport forwards 10002 to it.
	u, err := url.Parse(needAzurite(t))
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	var mu sync.Mutex
	hc := &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		mu.Lock()
		seen = append(seen, req.URL.Host+req.URL.Path)
		mu.Unlock()
		return redirect{u.Host}.RoundTrip(req)
	})}
	s, err := Open(context.Background(), Config{ConnectionString: "UseDevelopmentStorage=true", TablePrefix: nextPrefix(), HTTPClient: hc})
	if err != nil {
		t.Fatalf("open with UseDevelopmentStorage=true: %v", err)
	}
	if err := s.PutSecret(context.Background(), "tenant-1", "name", "value"); err != nil {
		t.Fatalf("write: %v", err)
	}
	if v, err := s.GetSecret(context.Background(), "tenant-1", "name"); err != nil || v != "value" {
		t.Fatalf("read = %q, %v", v, err)
	}
	if !strings.HasPrefix(seen[0], "127.0.0.1:10002/devstoreaccount1/") || s.RoundTrips() != int64(len(seen)) {
		t.Fatalf("requests went to %v (%d counted)", seen, s.RoundTrips())
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
