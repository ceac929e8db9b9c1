package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/directory"
	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/presence"
)

const testGroup = "9b1c0d2e-3f40-4a5b-8c6d-7e8f90a1b2c3"

// userID is the object id of the n-th test user.
func userID(n int) string { return fmt.Sprintf("7a4e6b0c-0000-4000-8000-%012d", n) }

func userIDs(from, to int) []string {
	out := make([]string, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, userID(i))
	}
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func fieldOf(err error) string {
	var fe *fault.FieldError
	if errors.As(err, &fe) {
		return fe.Field
	}
	return ""
}

func TestGroupDeltaFirstRoundReadsEveryMemberAndOwnerOverPages(t *testing.T) {
	f, r, _ := newTest(t, nil)
	f.SetDirectoryPageSize(7)
	f.AddGroup(directory.Group{ID: testGroup, DisplayName: "Support"})
	f.AddMembers(testGroup, userIDs(0, 30)...)
	f.AddOwners(testGroup, userIDs(100, 103)...)

	d, err := r.GroupDelta(context.Background(), testTenant, app, testGroup, "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sorted(d.MembersAdded), userIDs(0, 30)) || !slices.Equal(sorted(d.OwnersAdded), userIDs(100, 103)) {
		t.Fatalf("members %d owners %d", len(d.MembersAdded), len(d.OwnersAdded))
	}
	if len(d.MembersRemoved)+len(d.OwnersRemoved) != 0 {
		t.Fatalf("removals in a first round: %+v", d)
	}
	if d.Pages != 5 || f.DirectoryStats().DeltaPages != 5 { // 33 items, 7 a page
		t.Fatalf("pages %d, fake saw %d", d.Pages, f.DirectoryStats().DeltaPages)
	}
	if !strings.HasPrefix(d.Link, f.GraphURL+"/groups/delta?") {
		t.Fatalf("link %q", d.Link)
	}
}

func TestGroupDeltaReturnsExactlyTheChangesSinceTheLink(t *testing.T) {
	f, r, _ := newTest(t, nil)
	f.SetDirectoryPageSize(7)
	f.AddMembers(testGroup, userIDs(0, 30)...)
	f.AddOwners(testGroup, userID(100))
	ctx := context.Background()
	d, err := r.GroupDelta(ctx, testTenant, app, testGroup, "")
	if err != nil {
		t.Fatal(err)
	}
	items := f.DirectoryStats().DeltaItems

	f.AddMembers(testGroup, userIDs(30, 33)...)
	f.RemoveMembers(testGroup, userID(3), userID(4))
	f.AddOwners(testGroup, userID(101))
	f.RemoveOwners(testGroup, userID(100))
	f.AddMembers(testGroup, userID(50)) // added and removed again: no change
	f.RemoveMembers(testGroup, userID(50))
	f.RemoveMembers(testGroup, userID(5)) // removed and added again: no change
	f.AddMembers(testGroup, userID(5))

	d2, err := r.GroupDelta(ctx, testTenant, app, testGroup, d.Link)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sorted(d2.MembersAdded), userIDs(30, 33)) ||
		!slices.Equal(sorted(d2.MembersRemoved), []string{userID(3), userID(4)}) ||
		!slices.Equal(d2.OwnersAdded, []string{userID(101)}) || !slices.Equal(d2.OwnersRemoved, []string{userID(100)}) {
		t.Fatalf("delta: %+v", d2)
	}
	if got := f.DirectoryStats().DeltaItems - items; got != 7 || d2.Pages != 1 {
		t.Fatalf("the second round read %d items in %d pages, want 7 in 1", got, d2.Pages)
	}
	if d2.Link == d.Link {
		t.Fatal("the delta link did not move")
	}

	d3, err := r.GroupDelta(ctx, testTenant, app, testGroup, d2.Link)
	if err != nil || d3.Pages != 1 || len(d3.MembersAdded)+len(d3.MembersRemoved)+len(d3.OwnersAdded)+len(d3.OwnersRemoved) != 0 {
		t.Fatalf("a round without changes: %+v %v", d3, err)
	}

	// A deleted user leaves the group as Entra removes it.
	f.AddUser(directory.User{ID: userID(7), UPN: "u7@contoso.example"})
	f.RemoveUser(userID(7))
	d4, err := r.GroupDelta(ctx, testTenant, app, testGroup, d3.Link)
	if err != nil || !slices.Equal(d4.MembersRemoved, []string{userID(7)}) {
		t.Fatalf("after a user was deleted: %+v %v", d4, err)
	}
	members, _ := f.Membership(testGroup)
	if len(members) != 30 {
		t.Fatalf("fake membership: %d", len(members))
	}
}

func TestGroupDeltaExpiredOrForeignLinkIsErrResync(t *testing.T) {
	f, r, _ := newTest(t, nil)
	f.AddMembers(testGroup, userIDs(0, 3)...)
	ctx := context.Background()
	d, err := r.GroupDelta(ctx, testTenant, app, testGroup, "")
	if err != nil {
		t.Fatal(err)
	}
	f.ExpireDeltaLinks()
	if _, err := r.GroupDelta(ctx, testTenant, app, testGroup, d.Link); !errors.Is(err, directory.ErrResync) {
		t.Fatalf("expired link: %v", err)
	}

	before := f.GraphRequests()
	for _, link := range []string{
		strings.Replace(d.Link, f.URL, "https://graph.evil.example", 1),
		strings.Replace(d.Link, "https://", "http://", 1),
		"https://user@" + strings.TrimPrefix(d.Link, "https://"),
		"https://graph.microsoft.com/v1.0/groups/delta?$deltatoken=x",
		f.URL + "/v2.0/groups/delta?$deltatoken=x",
		"not a link",
	} {
		if _, err := r.GroupDelta(ctx, testTenant, app, testGroup, link); !errors.Is(err, directory.ErrResync) {
			t.Fatalf("stored link %q: %v", link, err)
		}
	}
	if f.GraphRequests() != before {
		t.Fatal("a foreign stored link was followed")
	}

	// A nextLink that expires in the middle of a round.
	f.SetDirectoryPageSize(1)
	var n atomic.Int32
	f.OnGraphRequest(func(r *http.Request) {
		if strings.Contains(r.URL.Path, "/groups/delta") && n.Add(1) == 2 {
			f.ExpireDeltaLinks()
		}
	})
	if _, err := r.GroupDelta(ctx, testTenant, app, testGroup, ""); !errors.Is(err, directory.ErrResync) {
		t.Fatalf("expired nextLink: %v", err)
	}
}

func TestDeltaExpiryAnswers(t *testing.T) {
	for _, c := range []struct {
		status int
		code   string
		want   bool
	}{
		{410, "", true},
		{410, "syncStateNotFound", true},
		{400, "syncStateNotFound", true},
		{400, "resyncRequired", true},
		{400, "Directory_ExpiredPageToken", true},
		{400, "Request_BadRequest", false},
		{404, "", false},
		{500, "syncStateNotFound", false},
	} {
		if got := deltaExpired(&statusError{status: c.status, code: c.code}); got != c.want {
			t.Errorf("%d %s: %v", c.status, c.code, got)
		}
	}
}

// rewriteTransport answers delta requests with a crafted page and records every
// host asked.
type rewriteTransport struct {
	next  http.RoundTripper
	body  string
	mu    sync.Mutex
	hosts []string
}

func (t *rewriteTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	t.hosts = append(t.hosts, req.URL.Host)
	t.mu.Unlock()
	resp, err := t.next.RoundTrip(req)
	if err != nil || !strings.Contains(req.URL.Path, "/groups/delta") {
		return resp, err
	}
	resp.Body.Close()
	resp.Body = io.NopCloser(strings.NewReader(t.body))
	resp.ContentLength = int64(len(t.body))
	resp.Header.Del("Content-Length")
	return resp, nil
}

func TestGroupDeltaRefusesALinkToAnotherHost(t *testing.T) {
	for _, kind := range []string{"nextLink", "deltaLink"} {
		t.Run(kind, func(t *testing.T) {
			var rt *rewriteTransport
			f, r, _ := newTest(t, func(o *Options) {
				rt = &rewriteTransport{next: o.HTTPClient.Transport,
					body: `{"@odata.` + kind + `":"https://graph.evil.example/v1.0/groups/delta?$skiptoken=abc","value":[{"id":"` + testGroup + `"}]}`}
				o.HTTPClient = &http.Client{Transport: rt}
			})
			f.AddMembers(testGroup, userID(1))
			_, err := r.GroupDelta(context.Background(), testTenant, app, testGroup, "")
			if !fault.IsPermanent(err) || errors.Is(err, directory.ErrResync) || strings.Contains(err.Error(), "evil") {
				t.Fatalf("foreign %s: %v", kind, err)
			}
			rt.mu.Lock()
			defer rt.mu.Unlock()
			for _, h := range rt.hosts {
				if strings.Contains(h, "evil") {
					t.Fatalf("request sent to %s", h)
				}
			}
		})
	}
}

func TestGroupDeltaOfADeletedGroupIsNotFound(t *testing.T) {
	f, r, _ := newTest(t, nil)
	ctx := context.Background()
	if _, err := r.GroupDelta(ctx, testTenant, app, testGroup, ""); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("unknown group: %v", err)
	}
	f.AddGroup(directory.Group{ID: testGroup})
	d, err := r.GroupDelta(ctx, testTenant, app, testGroup, "")
	if err != nil || d.Pages != 1 || len(d.MembersAdded) != 0 {
		t.Fatalf("empty group: %+v %v", d, err)
	}
	f.AddMembers(testGroup, userID(1))
	f.RemoveGroup(testGroup)
	if _, err := r.GroupDelta(ctx, testTenant, app, testGroup, d.Link); !errors.Is(err, fault.ErrNotFound) || fault.IsPermanent(err) {
		t.Fatalf("removed group: %v", err)
	}
}

func TestDeltaSetKeepsUsersByTheirLastAppearance(t *testing.T) {
	s := newDeltaSet()
	user := "#microsoft.graph.user"
	s.add([]deltaRef{{Type: user, ID: "a"}, {Type: "#microsoft.graph.group", ID: "g"}, {Type: user, ID: "b"},
		{Type: "#microsoft.graph.device", ID: "d"}, {Type: user, ID: "c", Removed: &struct{}{}}, {Type: user}})
	s.add([]deltaRef{{Type: user, ID: "B", Removed: &struct{}{}}, {Type: user, ID: "C"}})
	added, removed := s.result()
	if !slices.Equal(added, []string{"a", "c"}) || !slices.Equal(removed, []string{"b"}) {
		t.Fatalf("added %v removed %v", added, removed)
	}
}

func TestUsersReadsByIDsAndLeavesUnknownOnesOut(t *testing.T) {
	f, r, _ := newTest(t, nil)
	var us []directory.User
	for i := 0; i < 1000; i += 2 {
		us = append(us, directory.User{ID: userID(i), UPN: fmt.Sprintf("u%d@contoso.example", i), DisplayName: fmt.Sprint("User ", i)})
	}
	f.AddUsers(us...)
	f.AddGroup(directory.Group{ID: testGroup})
	ctx := context.Background()
	ids := append(userIDs(0, 999), testGroup) // a group id is not a user
	got, err := r.Users(ctx, testTenant, app, ids)
	if err != nil || len(got) != 500 || f.DirectoryStats().GetByIDs != 1 {
		t.Fatalf("%d users, %v, %d requests", len(got), err, f.DirectoryStats().GetByIDs)
	}
	if got[1] != us[1] {
		t.Fatalf("user: %+v", got[1])
	}
	if _, err := r.Users(ctx, testTenant, app, userIDs(0, 1001)); fieldOf(err) != "ids" {
		t.Fatalf("1001 ids: %v", err)
	}
	if _, err := r.Users(ctx, testTenant, app, []string{"jane@contoso.example"}); fieldOf(err) != "ids" {
		t.Fatalf("a UPN: %v", err)
	}
	if got, err := r.Users(ctx, testTenant, app, nil); err != nil || got != nil || f.DirectoryStats().GetByIDs != 1 {
		t.Fatalf("no ids: %v %v", got, err)
	}
}

func TestFindUserByUPNOrIDWithTheTenantFilter(t *testing.T) {
	f, r, _ := newTest(t, nil)
	jane := directory.User{ID: userID(1), UPN: "jane.o'neil+cc@contoso.example", DisplayName: "Jane O'Neil"}
	guest := directory.User{ID: userID(2), UPN: "bob_fabrikam.example#EXT#@contoso.example", DisplayName: "Bob"}
	f.AddUsers(jane, guest)
	f.SetAccountEnabled(guest.ID, false)
	f.SetUPN("legacy@contoso.example", userID(3))
	ctx := context.Background()
	for _, c := range []struct {
		user, filter string
		want         directory.User
	}{
		{"JANE.O'NEIL+CC@contoso.example", "", jane},
		{jane.ID, "", jane},
		{jane.UPN, "accountEnabled eq true", jane},
		{jane.UPN, "startswith(displayName,'jane') or userPrincipalName eq 'x@y'", jane},
		{guest.UPN, "", guest},
		{"legacy@contoso.example", "", directory.User{ID: userID(3), UPN: "legacy@contoso.example"}},
	} {
		got, err := r.FindUser(ctx, testTenant, app, c.user, c.filter)
		if err != nil || got != c.want {
			t.Errorf("%s [%s]: %+v %v", c.user, c.filter, got, err)
		}
	}
	for _, c := range []struct{ user, filter string }{
		{guest.UPN, "accountEnabled eq true"},
		{guest.ID, "accountEnabled eq true"},
		{"nobody@contoso.example", ""},
		{jane.UPN, "startswith(displayName,'x')"},
	} {
		_, err := r.FindUser(ctx, testTenant, app, c.user, c.filter)
		if !errors.Is(err, fault.ErrNotFound) || fault.IsPermanent(err) {
			t.Errorf("%s [%s]: %v", c.user, c.filter, err)
		}
		if err != nil && strings.Contains(strings.ToLower(err.Error()), strings.ToLower(c.user)) {
			t.Errorf("the error names the user: %v", err)
		}
	}
	// A filter the fake (like Graph for some operators) refuses: permanent, no UPN in it.
	_, err := r.FindUser(ctx, testTenant, app, jane.UPN, "endswith(mail,'"+jane.UPN+"')")
	if !fault.IsPermanent(err) || strings.Contains(err.Error(), "jane") || strings.Contains(err.Error(), "contoso") {
		t.Fatalf("unsupported filter: %v", err)
	}
}

func TestSearchUsersPagesWithASkipTokenOnly(t *testing.T) {
	f, r, _ := newTest(t, nil)
	var us []directory.User
	for i := 0; i < 25; i++ {
		us = append(us, directory.User{ID: userID(i), UPN: fmt.Sprintf("agent%02d@contoso.example", i), DisplayName: fmt.Sprintf("Agent %02d", i)})
	}
	us = append(us,
		directory.User{ID: userID(50), UPN: "rd@contoso.example", DisplayName: "R&D #1"},
		directory.User{ID: userID(51), UPN: "zed@contoso.example", DisplayName: "Zed Agentson"},
		directory.User{ID: userID(52), UPN: "yan@contoso.example", DisplayName: "Yan"})
	f.AddUsers(us...)
	f.SetAccountEnabled(userID(3), false)
	ctx := context.Background()

	var all []directory.User
	page, pages := "", 0
	for {
		got, next, err := r.SearchUsers(ctx, testTenant, app, "agent", "accountEnabled eq true", 10, page)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		all = append(all, got...)
		if next == "" {
			break
		}
		if strings.Contains(next, "://") || strings.Contains(next, "users") || strings.Contains(next, "agent") {
			t.Fatalf("the page token is more than Graph's skiptoken: %q", next)
		}
		page = next
	}
	// 24 enabled agents (starts of a word of the name and of the UPN) and Zed Agentson.
	if len(all) != 25 || pages != 3 {
		t.Fatalf("%d users in %d pages", len(all), pages)
	}
	seen := map[string]bool{}
	for _, u := range all {
		if seen[u.ID] || u.ID == userID(3) {
			t.Fatalf("user %s twice or disabled", u.ID)
		}
		seen[u.ID] = true
	}

	got, next, err := r.SearchUsers(ctx, testTenant, app, "r&d #", "", 5, "")
	if err != nil || len(got) != 1 || got[0].ID != userID(50) || next != "" {
		t.Fatalf("r&d: %+v %q %v", got, next, err)
	}
	got, _, err = r.SearchUsers(ctx, testTenant, app, "", "userPrincipalName eq 'yan@contoso.example'", 5, "")
	if err != nil || len(got) != 1 || got[0].ID != userID(52) {
		t.Fatalf("no search text: %+v %v", got, err)
	}

	// A page token is only ever a query value on the configured host.
	before := f.DirectoryStats().UserLists
	_, _, err = r.SearchUsers(ctx, testTenant, app, "agent", "", 10, "https://graph.evil.example/v1.0/users?x=1&$skiptoken=a")
	if !fault.IsPermanent(err) || f.DirectoryStats().UserLists != before+1 {
		t.Fatalf("a URL as page token: %v", err)
	}
}

func TestGroupAndGroupMembers(t *testing.T) {
	f, r, _ := newTest(t, nil)
	f.AddGroup(directory.Group{ID: testGroup, DisplayName: "Support"})
	var us []directory.User
	for i := 0; i < 23; i++ {
		us = append(us, directory.User{ID: userID(i), UPN: fmt.Sprintf("m%d@contoso.example", i), DisplayName: fmt.Sprint("M", i)})
	}
	f.AddUsers(us...)
	f.AddMembers(testGroup, userIDs(0, 23)...)
	ctx := context.Background()

	g, err := r.Group(ctx, testTenant, app, testGroup)
	if err != nil || g != (directory.Group{ID: testGroup, DisplayName: "Support"}) {
		t.Fatalf("group: %+v %v", g, err)
	}
	other := "00000000-1111-4222-8333-444444444444"
	if _, err := r.Group(ctx, testTenant, app, other); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("unknown group: %v", err)
	}
	var all []directory.User
	page, pages := "", 0
	for {
		got, next, err := r.GroupMembers(ctx, testTenant, app, testGroup, 10, page)
		if err != nil {
			t.Fatal(err)
		}
		all, page, pages = append(all, got...), next, pages+1
		if next == "" {
			break
		}
	}
	if pages != 3 || len(all) != 23 || all[0] != us[0] {
		t.Fatalf("%d members in %d pages: %+v", len(all), pages, all[:1])
	}
	if _, _, err := r.GroupMembers(ctx, testTenant, app, other, 10, ""); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("members of an unknown group: %v", err)
	}
}

func TestDirectoryReadsWithTheCredentialNamed(t *testing.T) {
	f, r, _ := newTest(t, nil)
	f.AddUser(directory.User{ID: userID(1), UPN: "jane@contoso.example"})
	f.AddMembers(testGroup, userID(1))
	ctx := context.Background()
	if _, err := r.FindUser(ctx, testTenant, app, userID(1), ""); err != nil {
		t.Fatal(err)
	}
	if f.RequestsBy(AppPrincipal(testClientID)) != 1 || f.RequestsBy(user1) != 0 {
		t.Fatal("the app's credential was not the one used")
	}
	if _, err := r.GroupDelta(ctx, testTenant, acct1, testGroup, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Users(ctx, testTenant, acct1, []string{userID(1)}); err != nil {
		t.Fatal(err)
	}
	if f.RequestsBy(user1) != 2 || f.RequestsBy(AppPrincipal(testClientID)) != 1 {
		t.Fatal("the presence account's credential was not the one used")
	}
}

func TestDirectoryRefusalsAreAuthErrorsThatAreNotPermanent(t *testing.T) {
	f, r, _ := newTest(t, nil)
	f.AddMembers(testGroup, userID(1))
	f.DenyDirectory(AppPrincipal(testClientID), 403)
	f.FailToken(user2, 50076)
	ctx := context.Background()
	calls := map[string]func(cred presence.Credential) error{
		"delta": func(c presence.Credential) error {
			_, err := r.GroupDelta(ctx, testTenant, c, testGroup, "")
			return err
		},
		"users": func(c presence.Credential) error {
			_, err := r.Users(ctx, testTenant, c, []string{userID(1)})
			return err
		},
		"find": func(c presence.Credential) error {
			_, err := r.FindUser(ctx, testTenant, c, "jane@contoso.example", "")
			return err
		},
		"search": func(c presence.Credential) error {
			_, _, err := r.SearchUsers(ctx, testTenant, c, "jane", "", 5, "")
			return err
		},
		"group": func(c presence.Credential) error { _, err := r.Group(ctx, testTenant, c, testGroup); return err },
		"members": func(c presence.Credential) error {
			_, _, err := r.GroupMembers(ctx, testTenant, c, testGroup, 5, "")
			return err
		},
	}
	for name, call := range calls {
		for _, c := range []struct {
			cred presence.Credential
			code string
		}{{app, "HTTP403"}, {acct2, "AADSTS50076"}} {
			err := call(c.cred)
			var ae *presence.AuthError
			if !errors.As(err, &ae) || ae.Code != c.code || fault.IsPermanent(err) || errors.Is(err, fault.ErrNotFound) {
				t.Errorf("%s with %s: %v", name, c.cred.Kind, err)
			}
			if err != nil && (strings.Contains(err.Error(), "jane") || strings.Contains(err.Error(), pass2) || strings.Contains(err.Error(), user2)) {
				t.Errorf("%s: the error leaks: %v", name, err)
			}
		}
		if err := call(acct1); err != nil && !errors.Is(err, fault.ErrNotFound) {
			t.Errorf("%s with account 1: %v", name, err)
		}
	}
	noSecret, err := New(Options{ClientID: testClientID, BaseURL: f.GraphURL, AuthorityHost: f.AuthorityHost, HTTPClient: f.Client()})
	if err != nil {
		t.Fatal(err)
	}
	var ae *presence.AuthError
	if _, err := noSecret.Group(ctx, testTenant, app, testGroup); !errors.As(err, &ae) || ae.Code != "NotConfigured" {
		t.Fatalf("no client secret: %v", err)
	}
}

func TestDirectoryTransientErrorsDoNotLeakIdentifiers(t *testing.T) {
	f, r, _ := newTest(t, func(o *Options) { o.MaxRetries = 1 })
	f.AddUser(directory.User{ID: userID(1), UPN: "jane@contoso.example"})
	ctx := context.Background()
	f.FailNext(2, 503, "")
	_, err1 := r.FindUser(ctx, testTenant, app, "jane@contoso.example", "startswith(displayName,'Secret Name')")
	var ge *Error
	if !errors.As(err1, &ge) || ge.Status != 503 || fault.IsPermanent(err1) {
		t.Fatalf("503: %v", err1)
	}
	f.FailNext(2, 503, "")
	_, _, err2 := r.SearchUsers(ctx, testTenant, app, "needle-text", "", 5, "")
	if !errors.As(err2, &ge) || ge.Status != 503 || fault.IsPermanent(err2) {
		t.Fatalf("503: %v", err2)
	}
	for _, e := range []error{err1, err2} {
		for _, s := range []string{"jane", "Secret", "needle", FakeClientSecret} {
			if strings.Contains(e.Error(), s) {
				t.Fatalf("%q in %v", s, e)
			}
		}
	}

	// Cancelled: transient, unwraps to the context's error.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := r.Group(cctx, testTenant, app, testGroup); !errors.Is(err, context.Canceled) || fault.IsPermanent(err) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestDirectoryInputIsCheckedBeforeAnyRequest(t *testing.T) {
	f, r, _ := newTest(t, nil)
	ctx := context.Background()
	long := strings.Repeat("a", 300) + "@contoso.example"
	for _, c := range []struct {
		field string
		call  func() error
	}{
		{"tenantID", func() error { _, err := r.Group(ctx, "contoso.onmicrosoft.com", app, testGroup); return err }},
		{"groupID", func() error { _, err := r.Group(ctx, testTenant, app, "../users"); return err }},
		{"groupID", func() error { _, err := r.GroupDelta(ctx, testTenant, app, "", ""); return err }},
		{"groupID", func() error { _, _, err := r.GroupMembers(ctx, testTenant, app, "x?y", 10, ""); return err }},
		{"top", func() error { _, _, err := r.GroupMembers(ctx, testTenant, app, testGroup, 0, ""); return err }},
		{"top", func() error {
			_, _, err := r.SearchUsers(ctx, testTenant, app, "a", "", directory.MaxTop+1, "")
			return err
		}},
		{"page", func() error { _, _, err := r.SearchUsers(ctx, testTenant, app, "a", "", 10, "a b"); return err }},
		{"search", func() error { _, _, err := r.SearchUsers(ctx, testTenant, app, `a" OR "mail:`, "", 10, ""); return err }},
		{"search", func() error { _, _, err := r.SearchUsers(ctx, testTenant, app, `a\`, "", 10, ""); return err }},
		{"search", func() error { _, _, err := r.SearchUsers(ctx, testTenant, app, "a\nb", "", 10, ""); return err }},
		{"filter", func() error {
			_, _, err := r.SearchUsers(ctx, testTenant, app, "a", "x eq 'y') or (true", 10, "")
			return err
		}},
		{"filter", func() error {
			_, err := r.FindUser(ctx, testTenant, app, userID(1), "displayName eq 'unclosed")
			return err
		}},
		{"filter", func() error { _, err := r.FindUser(ctx, testTenant, app, userID(1), "((a eq 'b')"); return err }},
		{"user", func() error { _, err := r.FindUser(ctx, testTenant, app, "jane", ""); return err }},
		{"user", func() error { _, err := r.FindUser(ctx, testTenant, app, "jane doe@contoso.example", ""); return err }},
		{"user", func() error { _, err := r.FindUser(ctx, testTenant, app, long, ""); return err }},
		{"ids", func() error { _, err := r.Users(ctx, testTenant, app, []string{"1"}); return err }},
	} {
		err := c.call()
		if fieldOf(err) != c.field || !fault.IsPermanent(err) {
			t.Errorf("%s: %v", c.field, err)
		}
		if err != nil && strings.Contains(err.Error(), "contoso") {
			t.Errorf("the rule names the value: %v", err)
		}
	}
	if f.GraphRequests() != 0 || f.TokenRequests() != 0 {
		t.Fatalf("%d Graph and %d token requests for bad input", f.GraphRequests(), f.TokenRequests())
	}
}

// A group of 5,000 members in a directory of 50,000 users syncs quickly in process.
func TestGroupDeltaOfALargeGroupIsQuick(t *testing.T) {
	f, r, _ := newTest(t, nil)
	us := make([]directory.User, 50000)
	for i := range us {
		us[i] = directory.User{ID: userID(i), UPN: fmt.Sprintf("user%d@contoso.example", i), DisplayName: fmt.Sprint("User ", i)}
	}
	f.AddUsers(us...)
	f.AddMembers(testGroup, userIDs(0, 5000)...)
	f.AddOwners(testGroup, userID(0))
	ctx := context.Background()
	if _, err := r.Group(ctx, testTenant, app, testGroup); err != nil { // warms the credential
		t.Fatal(err)
	}
	start := time.Now()
	d, err := r.GroupDelta(ctx, testTenant, app, testGroup, "")
	took := time.Since(start)
	if err != nil || len(d.MembersAdded) != 5000 || d.Pages != 51 {
		t.Fatalf("%d members in %d pages: %v", len(d.MembersAdded), d.Pages, err)
	}
	f.RemoveMembers(testGroup, userIDs(0, 25)...)
	f.AddMembers(testGroup, userIDs(5000, 5025)...)
	start2 := time.Now()
	d2, err := r.GroupDelta(ctx, testTenant, app, testGroup, d.Link)
	took2 := time.Since(start2)
	if err != nil || len(d2.MembersAdded) != 25 || len(d2.MembersRemoved) != 25 || d2.Pages != 1 {
		t.Fatalf("1%% change: %+v %v", d2, err)
	}
	t.Logf("first round %v (%d pages), 1%% change %v", took, d.Pages, took2)
	// Generous under -race on 2 cores; without it the first round takes ~50 ms.
	if took > 5*time.Second || took2 > time.Second {
		t.Fatalf("too slow: %v, %v", took, took2)
	}
}

// The fake's own rules, seen over HTTP.
func TestFakeDirectoryAnswersAsGraph(t *testing.T) {
	f := NewFake()
	defer f.Close()
	f.AddUser(directory.User{ID: userID(1), UPN: "jane@contoso.example", DisplayName: "Jane Doe"})
	tok := fakeToken(t, f, user1, pass1)
	get := func(path string, eventual bool) (int, string) {
		req, _ := http.NewRequest("GET", f.GraphURL+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		if eventual {
			req.Header.Set("ConsistencyLevel", "eventual")
		}
		resp, err := f.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	q := url.QueryEscape
	for _, c := range []struct {
		path     string
		eventual bool
		status   int
		want     string
	}{
		{"/users?$search=" + q(`"displayName:doe"`), false, 400, "Request_UnsupportedQuery"},
		{"/users?$search=" + q(`"displayName:doe"`), true, 200, userID(1)},
		{"/users?$count=true", false, 400, "$count"},
		{"/users?$filter=" + q("endswith(mail,'x')"), true, 400, "Request_UnsupportedQuery"},
		{"/users?$filter=" + q("accountEnabled ne false"), true, 400, "Request_UnsupportedQuery"},
		{"/users?$filter=" + q("id eq 'jane@contoso.example'"), false, 400, "Invalid object identifier"},
		{"/users?$filter=" + q("(id eq '"+userID(1)+"' or userPrincipalName eq 'x@y') and accountEnabled eq true"), false, 200, userID(1)},
		{"/users?$filter=" + q("startswith(displayName,'JA')"), false, 200, userID(1)},
		{"/users?$filter=" + q("userPrincipalName eq 'other@contoso.example'"), false, 200, `"value":[]`},
		{"/users?$top=1000", false, 400, "Request_BadRequest"},
		{"/groups/delta?$filter=" + q("displayName eq 'x'"), false, 400, "Request_UnsupportedQuery"},
		{"/groups/delta?$skiptoken=unknown", false, 410, "syncStateNotFound"},
		{"/groups/delta?$deltatoken=unknown", false, 410, "syncStateNotFound"},
		{"/groups/" + testGroup, false, 404, "Request_ResourceNotFound"},
	} {
		status, body := get(c.path, c.eventual)
		if status != c.status || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %s", c.path, status, body)
		}
	}
	if f.DirectoryRequests() != 14 {
		t.Fatalf("directory requests: %d", f.DirectoryRequests())
	}
	// Unauthenticated requests never reach the directory.
	resp, err := f.Client().Get(f.GraphURL + "/users")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || f.DirectoryRequests() != 14 {
		t.Fatalf("no token: %d", resp.StatusCode)
	}
	// getByIds refuses more than 1000 ids.
	body, _ := jsonBody(map[string]any{"ids": userIDs(0, 1001)})
	req, _ := http.NewRequest("POST", f.GraphURL+"/directoryObjects/getByIds", body)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err = f.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("1001 ids: %d", resp.StatusCode)
	}
}

func jsonBody(v any) (io.Reader, error) {
	b, err := json.Marshal(v)
	return bytes.NewReader(b), err
}

func BenchmarkGroupDelta5000(b *testing.B) {
	f := NewFake()
	defer f.Close()
	r, err := New(f.Options(testClientID))
	if err != nil {
		b.Fatal(err)
	}
	f.AddMembers(testGroup, userIDs(0, 5000)...)
	f.AddOwners(testGroup, userIDs(0, 3)...)
	ctx := context.Background()
	first, err := r.GroupDelta(ctx, testTenant, app, testGroup, "")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("first", func(b *testing.B) {
		b.ReportAllocs()
		pages, n := 0, 0
		for b.Loop() {
			d, err := r.GroupDelta(ctx, testTenant, app, testGroup, "")
			if err != nil || len(d.MembersAdded) != 5000 {
				b.Fatal(len(d.MembersAdded), err)
			}
			pages, n = pages+d.Pages, n+1
		}
		b.ReportMetric(float64(pages)/float64(n), "pages/op")
	})
	b.Run("change1pct", func(b *testing.B) {
		b.ReportAllocs()
		link, pages, n, next := first.Link, 0, 0, 5000
		for b.Loop() {
			b.StopTimer()
			// 1% of 5,000: 25 leave, 25 join.
			f.RemoveMembers(testGroup, userIDs(next-5000, next-4975)...)
			f.AddMembers(testGroup, userIDs(next, next+25)...)
			next += 25
			b.StartTimer()
			d, err := r.GroupDelta(ctx, testTenant, app, testGroup, link)
			if err != nil || len(d.MembersAdded) != 25 || len(d.MembersRemoved) != 25 {
				b.Fatal(d, err)
			}
			link, pages, n = d.Link, pages+d.Pages, n+1
		}
		b.ReportMetric(float64(pages)/float64(n), "pages/op")
	})
}
