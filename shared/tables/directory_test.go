package tables

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/directory"
	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/storetest"
)

func TestDirectoryConformance(t *testing.T) {
	needAzurite(t)
	storetest.Directory(t, func(t *testing.T) directory.Store { return openAzurite(t) })
}

// Round trips: GetSync, PutSync (insert or replace) and DeleteSync are one request
// each; PutSync never reads first.
func TestDirectorySyncRoundTrips(t *testing.T) {
	s := openAzurite(t)
	ctx := context.Background()
	const tid = "0d1f6b1e-7c3a-4c59-9a5e-1f2a3b4c5d6e"
	count := func(what string, want int64, f func() error) {
		t.Helper()
		before := s.RoundTrips()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := s.RoundTrips() - before; got != want {
			t.Errorf("%s: %d round trips; want %d", what, got, want)
		}
	}
	st := directory.SyncState{TenantID: tid, ServiceID: "sales", GroupID: "7b1c2d3e-4f50-4a61-8b72-93a4b5c6d7e8",
		Link: "https://graph.microsoft.com/v1.0/groups/delta?$deltatoken=" + strings.Repeat("x", 4000), At: time.Now(), Members: 12}
	count("insert", 1, func() (err error) { st, err = s.PutSync(ctx, st); return err })
	count("get", 1, func() (err error) { st, err = s.GetSync(ctx, tid, "sales"); return err })
	st.Members++
	count("replace", 1, func() (err error) { st, err = s.PutSync(ctx, st); return err })
	count("delete", 1, func() error { return s.DeleteSync(ctx, tid, "sales") })
	count("delete missing", 1, func() error { return s.DeleteSync(ctx, tid, "sales") })
}

// The copy columns are what people reading the table see: typed, At only when set.
func TestDirectorySyncColumns(t *testing.T) {
	s := openAzurite(t)
	ctx := context.Background()
	const tid = "0d1f6b1e-7c3a-4c59-9a5e-1f2a3b4c5d6e"
	at := time.Date(2026, 11, 24, 10, 30, 15, 123_456_789, time.FixedZone("CET", 3600))
	read := func() record {
		t.Helper()
		resp, err := s.client(tableDirectorySync).GetEntity(ctx, tid, "sales", nil)
		if err != nil {
			t.Fatal(err)
		}
		r, err := decodeRecord(resp.Value)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	st, err := s.PutSync(ctx, directory.SyncState{TenantID: tid, ServiceID: "sales", GroupID: "g-1"})
	if err != nil {
		t.Fatal(err)
	}
	if r := read(); r.has("At") || r.str("GroupId") != "g-1" || string(r["Members"]) != "0" || r.has("Link") {
		t.Errorf("before the first sync: At present %v, GroupId %q, Members %s, Link present %v; want absent, g-1, 0, absent",
			r.has("At"), r.str("GroupId"), r["Members"], r.has("Link"))
	}
	st.At, st.Members, st.Link = at, 25_000, "https://graph.microsoft.com/v1.0/groups/delta?$deltatoken=abc"
	if _, err := s.PutSync(ctx, st); err != nil {
		t.Fatal(err)
	}
	r := read()
	if got, err := r.time("At"); err != nil || !got.Equal(at.Truncate(100*time.Nanosecond)) || r.str("At@odata.type") != "Edm.DateTime" {
		t.Errorf("At = %v (%q), %v; want %v as Edm.DateTime", got, r.str("At@odata.type"), err, at)
	}
	if string(r["Members"]) != "25000" || r.has("Link") {
		t.Errorf("Members = %s, Link present %v; want 25000, absent (the link is only in Data)", r["Members"], r.has("Link"))
	}
	var fe *fault.FieldError
	st.ETag = ""
	st.ServiceID = "a/b"
	if _, err := s.PutSync(ctx, st); !errors.As(err, &fe) {
		t.Errorf("put with a service id containing / = %v; want a *fault.FieldError", err)
	}
}

// A 404 about the table is not a missing row: with the table gone, a delete and a
// replace fail instead of passing for "nothing there" or a lost race.
func TestDirectorySyncMissingTable(t *testing.T) {
	s := openAzurite(t)
	ctx := context.Background()
	const tid = "0d1f6b1e-7c3a-4c59-9a5e-1f2a3b4c5d6e"
	st, err := s.PutSync(ctx, directory.SyncState{TenantID: tid, ServiceID: "sales", GroupID: "g-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.svc.DeleteTable(ctx, s.table(tableDirectorySync), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = s.svc.CreateTable(context.Background(), s.table(tableDirectorySync), nil) }) // for openAzurite's cleanup
	if err := s.DeleteSync(ctx, tid, "sales"); err == nil {
		t.Error("delete with the table gone = nil; want an error")
	}
	if _, err := s.PutSync(ctx, st); err == nil || errors.Is(err, fault.ErrPrecondition) {
		t.Errorf("replace with the table gone = %v; want an error other than fault.ErrPrecondition", err)
	}
}
