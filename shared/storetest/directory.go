package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/directory"
	"github.com/teamscc/teamscc/shared/fault"
)

// Directory is the conformance suite of directory.Store. newStore must return an
// empty, isolated store each call. It checks that every field of a SyncState survives
// a round trip (At by Equal, a 4 KB delta link), the not-found, conflict and
// precondition outcomes of the contract (a refused write writes nothing), that a
// write returns a new ETag the next write can use, that deletes are idempotent, that
// states of different tenants and services are kept apart, and, under races, that
// read-modify-write with the ETag loses no update and that one of N concurrent
// inserts wins.
func Directory(t *testing.T, newStore func(t *testing.T) directory.Store) {
	t.Run("RoundTrip", func(t *testing.T) { testSyncRoundTrip(t, newStore(t)) })
	t.Run("Missing", func(t *testing.T) { testSyncMissing(t, newStore(t)) })
	t.Run("InsertExistingIsConflict", func(t *testing.T) { testSyncInsertTwice(t, newStore(t)) })
	t.Run("ConditionalReplace", func(t *testing.T) { testSyncReplace(t, newStore(t)) })
	t.Run("Delete", func(t *testing.T) { testSyncDelete(t, newStore(t)) })
	t.Run("KeptApart", func(t *testing.T) { testSyncApart(t, newStore(t)) })
	t.Run("EmptyIDsRefused", func(t *testing.T) { testSyncEmptyIDs(t, newStore(t)) })
	t.Run("ConcurrentReadModifyWriteLosesNothing", func(t *testing.T) { testSyncUpdateRace(t, newStore(t)) })
	t.Run("ConcurrentInsertsOneWinner", func(t *testing.T) { testSyncInsertRace(t, newStore(t)) })
}

const (
	syncSales   = "sales"
	syncSupport = "support"
)

// deltaLink is a Graph delta link of exactly n bytes, with the characters a real one
// carries (query separators, percent escapes, base64url).
func deltaLink(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	var b strings.Builder
	b.WriteString("https://graph.microsoft.com/v1.0/groups/delta?$select=members,owners&$filter=id+eq+%270d1e2f3a-4b5c-4d6e-8f70-81a2b3c4d5e6%27&$deltatoken=")
	for i := 0; b.Len() < n; i++ {
		b.WriteByte(alphabet[(i*37+i/64)%len(alphabet)])
	}
	return b.String()
}

// fullSync is a state with every field but ETag set; At carries nanoseconds and a
// zone other than UTC (stores keep the instant).
func fullSync(tenantID, serviceID string) directory.SyncState {
	return directory.SyncState{
		TenantID: tenantID, ServiceID: serviceID,
		GroupID: "7b1c2d3e-4f50-4a61-8b72-93a4b5c6d7e8",
		Link:    deltaLink(4096),
		At:      at.Add(90*time.Second + 7*time.Nanosecond).In(time.FixedZone("CET", 3600)),
		Members: 137,
		Error:   "Graph answered 429 for the Team Zürich ☎ 😀",
	}
}

// sameSync fails t unless got is want with At Equal and the ETag etag.
func sameSync(t *testing.T, what string, got, want directory.SyncState, etag string) {
	t.Helper()
	want.ETag = etag
	g, w := got, want
	g.At, w.At = time.Time{}, time.Time{}
	if g == w && got.At.Equal(want.At) {
		return
	}
	if got.Link != want.Link { // name the difference, not 4 KB of it
		i := 0
		for i < min(len(got.Link), len(want.Link)) && got.Link[i] == want.Link[i] {
			i++
		}
		t.Errorf("%s: Link of %d bytes; want %d bytes, first difference at byte %d", what, len(got.Link), len(want.Link), i)
	}
	got.Link, want.Link = "", ""
	t.Fatalf("%s (Link left out):\n got %+v\nwant %+v", what, got, want)
}

func mustPutSync(t *testing.T, s directory.Store, st directory.SyncState) directory.SyncState {
	t.Helper()
	got, err := s.PutSync(context.Background(), st)
	if err != nil {
		t.Fatalf("put sync %s/%s (ETag %q): %v", st.TenantID, st.ServiceID, st.ETag, err)
	}
	if got.ETag == "" || got.ETag == st.ETag {
		t.Fatalf("put sync %s/%s returned ETag %q; want a new one (was %q)", st.TenantID, st.ServiceID, got.ETag, st.ETag)
	}
	sameSync(t, "put returns what it wrote", got, st, got.ETag)
	return got
}

func mustGetSync(t *testing.T, s directory.Store, tenantID, serviceID string) directory.SyncState {
	t.Helper()
	got, err := s.GetSync(context.Background(), tenantID, serviceID)
	if err != nil {
		t.Fatalf("get sync %s/%s: %v", tenantID, serviceID, err)
	}
	return got
}

func testSyncRoundTrip(t *testing.T, s directory.Store) {
	in := fullSync(tenantA, syncSales)
	if zero := zeroFields(reflect.ValueOf(in), ""); len(zero) > 0 {
		t.Fatalf("the fixture leaves %v zero: set them so the round trip covers them", zero)
	}
	if len(in.Link) != 4096 {
		t.Fatalf("the fixture's link is %d bytes; want 4096", len(in.Link))
	}
	put := mustPutSync(t, s, in)
	sameSync(t, "get after insert", mustGetSync(t, s, tenantA, syncSales), in, put.ETag)

	// Before the first sync: no link, no time, no members, no error.
	first := directory.SyncState{TenantID: tenantA, ServiceID: syncSupport, GroupID: in.GroupID}
	put = mustPutSync(t, s, first)
	sameSync(t, "get of a state with only its ids and group", mustGetSync(t, s, tenantA, syncSupport), first, put.ETag)
}

func testSyncMissing(t *testing.T, s directory.Store) {
	ctx := context.Background()
	_, err := s.GetSync(ctx, tenantA, syncSales)
	mustNotFound(t, "get of a service never synced", err)
	mustPutSync(t, s, fullSync(tenantA, syncSales))
	_, err = s.GetSync(ctx, tenantA, syncSupport)
	mustNotFound(t, "get of another service", err)
	_, err = s.GetSync(ctx, tenantB, syncSales)
	mustNotFound(t, "get of the service id in another tenant", err)
}

func testSyncInsertTwice(t *testing.T, s directory.Store) {
	ctx := context.Background()
	in := fullSync(tenantA, syncSales)
	put := mustPutSync(t, s, in)
	again := in
	again.Members, again.Link = 1, ""
	if _, err := s.PutSync(ctx, again); !errors.Is(err, fault.ErrConflict) {
		t.Fatalf("second insert (empty ETag) = %v; want fault.ErrConflict", err)
	}
	sameSync(t, "a refused insert wrote", mustGetSync(t, s, tenantA, syncSales), in, put.ETag)
}

func testSyncReplace(t *testing.T, s directory.Store) {
	ctx := context.Background()
	v1 := mustPutSync(t, s, fullSync(tenantA, syncSales))
	if got := mustGetSync(t, s, tenantA, syncSales); got.ETag != v1.ETag {
		t.Fatalf("get after insert has ETag %q; want the one the insert returned (%q)", got.ETag, v1.ETag)
	}

	v2 := v1
	v2.Link, v2.Members, v2.Error = deltaLink(1024), 138, ""
	v2.At = v1.At.Add(time.Minute)
	v2 = mustPutSync(t, s, v2) // the new ETag differs from v1's: checked by mustPutSync
	sameSync(t, "get after a replace", mustGetSync(t, s, tenantA, syncSales), v2, v2.ETag)

	// The ETag a write returns is good for the next write.
	v3 := v2
	v3.Members = 139
	v3 = mustPutSync(t, s, v3)
	if v3.ETag == v1.ETag {
		t.Fatalf("third write returned the first write's ETag %q", v1.ETag)
	}

	// A stale ETag writes nothing.
	stale := v2
	stale.Members, stale.Link = 1, "https://graph.microsoft.com/v1.0/groups/delta?$deltatoken=stale"
	for _, old := range []string{v1.ETag, v2.ETag} {
		stale.ETag = old
		if _, err := s.PutSync(ctx, stale); !errors.Is(err, fault.ErrPrecondition) {
			t.Fatalf("put with the stale ETag %q = %v; want fault.ErrPrecondition", old, err)
		}
	}
	sameSync(t, "a write with a stale ETag wrote", mustGetSync(t, s, tenantA, syncSales), v3, v3.ETag)

	// A replace of a state that was deleted is a lost race too, and writes nothing.
	if err := s.DeleteSync(ctx, tenantA, syncSales); err != nil {
		t.Fatal(err)
	}
	stale.ETag = v3.ETag
	if _, err := s.PutSync(ctx, stale); !errors.Is(err, fault.ErrPrecondition) {
		t.Fatalf("put with an ETag after the state was deleted = %v; want fault.ErrPrecondition", err)
	}
	_, err := s.GetSync(ctx, tenantA, syncSales)
	mustNotFound(t, "a write to a deleted state with its old ETag", err)
}

func testSyncDelete(t *testing.T, s directory.Store) {
	ctx := context.Background()
	if err := s.DeleteSync(ctx, tenantA, syncSales); err != nil {
		t.Fatalf("delete of a state never stored = %v; want nil", err)
	}
	in := fullSync(tenantA, syncSales)
	first := mustPutSync(t, s, in)
	if err := s.DeleteSync(ctx, tenantA, syncSales); err != nil {
		t.Fatalf("delete: %v", err)
	}
	_, err := s.GetSync(ctx, tenantA, syncSales)
	mustNotFound(t, "get after delete", err)
	if err := s.DeleteSync(ctx, tenantA, syncSales); err != nil {
		t.Fatalf("second delete = %v; want nil", err)
	}
	// After a delete the service starts over with an insert.
	again := mustPutSync(t, s, in)
	sameSync(t, "get after a delete and a new insert", mustGetSync(t, s, tenantA, syncSales), in, again.ETag)
	stale := in
	stale.ETag, stale.Members = first.ETag, 1
	if _, err := s.PutSync(ctx, stale); !errors.Is(err, fault.ErrPrecondition) {
		t.Fatalf("put with the ETag of the state before the delete = %v; want fault.ErrPrecondition", err)
	}
}

func testSyncApart(t *testing.T, s directory.Store) {
	ctx := context.Background()
	want := map[[2]string]directory.SyncState{}
	i := 0
	for _, tid := range []string{tenantA, tenantB} {
		for _, sid := range []string{syncSales, syncSupport} {
			st := fullSync(tid, sid)
			st.GroupID = fmt.Sprintf("7b1c2d3e-4f50-4a61-8b72-%012d", i)
			st.Link = deltaLink(1024 + i)
			st.Members = i
			st.At = at.Add(time.Duration(i) * time.Second)
			want[[2]string{tid, sid}] = mustPutSync(t, s, st)
			i++
		}
	}
	check := func(what string) {
		t.Helper()
		for k, w := range want {
			sameSync(t, what+": "+k[0]+"/"+k[1], mustGetSync(t, s, k[0], k[1]), w, w.ETag)
		}
	}
	check("each state as written")

	k := [2]string{tenantA, syncSupport}
	up := want[k]
	up.Members = 99
	want[k] = mustPutSync(t, s, up)
	check("after replacing one")

	if err := s.DeleteSync(ctx, tenantB, syncSales); err != nil {
		t.Fatal(err)
	}
	delete(want, [2]string{tenantB, syncSales})
	_, err := s.GetSync(ctx, tenantB, syncSales)
	mustNotFound(t, "the deleted state", err)
	check("after deleting another")
}

// testSyncEmptyIDs: a state without its ids is refused with a *fault.FieldError.
func testSyncEmptyIDs(t *testing.T, s directory.Store) {
	ctx := context.Background()
	var fe *fault.FieldError
	for _, k := range [][2]string{{"", syncSales}, {tenantA, ""}} {
		st := fullSync(k[0], k[1])
		if _, err := s.PutSync(ctx, st); !errors.As(err, &fe) {
			t.Fatalf("put %q/%q = %v; want a *fault.FieldError", k[0], k[1], err)
		}
		if _, err := s.GetSync(ctx, k[0], k[1]); !errors.As(err, &fe) {
			t.Fatalf("get %q/%q = %v; want a *fault.FieldError", k[0], k[1], err)
		}
		if err := s.DeleteSync(ctx, k[0], k[1]); !errors.As(err, &fe) {
			t.Fatalf("delete %q/%q = %v; want a *fault.FieldError", k[0], k[1], err)
		}
	}
}

// testSyncUpdateRace: N goroutines each add one member by reading the state and
// writing it back with the ETag read, again after each fault.ErrPrecondition: all N
// increments are there, and every successful write returned its own ETag.
func testSyncUpdateRace(t *testing.T, s directory.Store) {
	ctx := context.Background()
	base := fullSync(tenantA, syncSales)
	base.Members = 0
	first := mustPutSync(t, s, base)
	const n = 16
	// A goroutine loses at most once per other goroutine's win (n-1) with a correct
	// store; the bound only keeps a broken one from spinning forever.
	const maxTries = 20 * n
	var wg sync.WaitGroup
	etags := make(chan string, n)
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for try := 0; try < maxTries; try++ {
				cur, err := s.GetSync(ctx, tenantA, syncSales)
				if err != nil {
					errs <- fmt.Errorf("goroutine %d: get: %w", i, err)
					return
				}
				cur.Members++
				cur.Error = fmt.Sprint("written by ", i)
				got, err := s.PutSync(ctx, cur)
				if errors.Is(err, fault.ErrPrecondition) {
					continue
				}
				if err != nil {
					errs <- fmt.Errorf("goroutine %d: put: %w", i, err)
					return
				}
				etags <- got.ETag
				return
			}
			errs <- fmt.Errorf("goroutine %d: still losing after %d tries", i, maxTries)
		}()
	}
	wg.Wait()
	close(etags)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	seen := map[string]bool{first.ETag: true}
	for e := range etags {
		if seen[e] {
			t.Errorf("ETag %q returned by two writes", e)
		}
		seen[e] = true
	}
	if got := mustGetSync(t, s, tenantA, syncSales); got.Members != n {
		t.Fatalf("after %d concurrent read-modify-writes Members = %d; want %d (an update was lost)", n, got.Members, n)
	} else if !seen[got.ETag] {
		t.Fatalf("the stored ETag %q is none that a write returned", got.ETag)
	}
}

// testSyncInsertRace: N goroutines insert the same state (empty ETag): exactly one
// wins, the others get fault.ErrConflict, and the stored state is the winner's.
func testSyncInsertRace(t *testing.T, s directory.Store) {
	ctx := context.Background()
	var got [16]directory.SyncState
	won := oneWinner(t, len(got), is(fault.ErrConflict), "fault.ErrConflict", func(i int) error {
		st := fullSync(tenantA, syncSales)
		st.Members = i
		var err error
		got[i], err = s.PutSync(ctx, st)
		return err
	})
	want := fullSync(tenantA, syncSales)
	want.Members = won
	sameSync(t, "the stored state after concurrent inserts is the winner's", mustGetSync(t, s, tenantA, syncSales), want, got[won].ETag)
}
