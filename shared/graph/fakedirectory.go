package graph

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/teamscc/teamscc/shared/directory"
	"github.com/teamscc/teamscc/shared/tenant"
)

// The Fake's directory: Entra users and groups under /v1.0, behind the same
// authentication, latency and fault injection as the presence endpoints.
//
//   - GET /groups/delta (also delta() and microsoft.graph.delta(), as the SDK
//     spells it): the first request must be $filter=id eq '{group}' (with $select
//     naming members and/or owners; none selects both). A round is paged at
//     SetDirectoryPageSize items; its links are absolute URLs on the Fake's host
//     whose opaque tokens name a position in the group's change log, so a delta
//     link returns only what changed since (net of changes that cancel out). A
//     token the Fake does not know, or any after ExpireDeltaLinks, answers 410
//     syncStateNotFound.
//   - POST /directoryObjects/getByIds (at most 1000 ids; types user and group).
//   - GET /users with $filter, $search, $top, $count and $skiptoken. $search and
//     $count need ConsistencyLevel: eventual (400 otherwise, as Graph). The filter
//     evaluator knows id, userPrincipalName, displayName and mail with eq and
//     startswith(p,'x'), accountEnabled eq true|false, and, or and parentheses;
//     anything else is 400 Request_UnsupportedQuery, and an id literal that is not a
//     GUID is 400 "Invalid object identifier", as Entra answers.
//   - GET /groups/{id} and GET /groups/{id}/members/microsoft.graph.user (also
//     graph.user) with $top and $skiptoken.
//
// Users given to SetUPN are users of the directory too (id and UPN, no display
// name) unless AddUser names the same id. Members and owners need not be users the
// Fake knows; a member listed by the members endpoint without a user record has
// only its id.
type fakeDirectory struct {
	f *Fake

	mu       sync.RWMutex
	users    map[string]*fakeUser  // lower-case id
	byUPN    map[string]*fakeUser  // lower-case UPN
	order    []*fakeUser           // every AddUser in order; removed ones stay, marked gone
	groups   map[string]*fakeGroup // lower-case id
	pageSize int
	cursors  map[string]*fakeCursor // rounds in progress, by token id
	links    map[string]fakeLink    // delta links, by token id
	deny     map[string]int         // lower-case principal -> status
	secret   string                 // random prefix of token ids

	requests, deltaPages, deltaItems, getByIDs, userLists, groupReads, memberLists atomic.Int64
	seq                                                                            atomic.Int64
}

type fakeUser struct {
	id, upn, name    string
	lid, lupn, lname string
	words            []string // lower-case words of the display name
	enabled, gone    bool
	frag             []byte // the user's JSON object
}

type fakeGroup struct {
	id, name string
	deleted  bool
	members  map[string]string // lower-case id -> id
	owners   map[string]string
	sorted   []string // sorted member ids; nil when stale
	log      []fakeChange
}

// fakeChange is one entry of a group's change log. Only real changes are logged (an
// add of a member is logged only if it was not one), which the net computation of
// a delta relies on.
type fakeChange struct {
	owner   bool // owners@delta, else members@delta
	group   bool // the group itself was removed
	id      string
	removed bool
}

// fakeCursor is one delta round being paged.
type fakeCursor struct {
	group           string // lower-case id
	items           []fakeChange
	logPos          int // where the round's delta link starts
	members, owners bool
	initial         bool
	missing         bool // initial round of a group that does not exist
}

type fakeLink struct {
	group           string
	logPos          int
	members, owners bool
}

// FakeDirectoryStats are the counters of the directory endpoints.
type FakeDirectoryStats struct {
	Requests    int64 // every request that reached a directory endpoint (after auth and faults)
	DeltaPages  int64 // groups/delta requests
	DeltaItems  int64 // members@delta and owners@delta items answered
	GetByIDs    int64 // directoryObjects/getByIds requests
	UserLists   int64 // GET /users requests
	GroupReads  int64 // GET /groups/{id} requests
	MemberLists int64 // group members requests
}

// DefaultDirectoryPageSize is the Fake's default page size of delta rounds and
// user lists without $top.
const DefaultDirectoryPageSize = 100

func newFakeDirectory(f *Fake) *fakeDirectory {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &fakeDirectory{
		f:        f,
		users:    map[string]*fakeUser{},
		byUPN:    map[string]*fakeUser{},
		groups:   map[string]*fakeGroup{},
		pageSize: DefaultDirectoryPageSize,
		cursors:  map[string]*fakeCursor{},
		links:    map[string]fakeLink{},
		deny:     map[string]int{},
		secret:   hex.EncodeToString(b[:]),
	}
}

func (d *fakeDirectory) register(mux *http.ServeMux) {
	g := d.f.graph
	for _, p := range []string{"delta", "delta()", "microsoft.graph.delta()"} {
		mux.HandleFunc("GET /v1.0/groups/"+p, g(d.serveDelta))
	}
	mux.HandleFunc("GET /v1.0/groups/{group}", g(d.serveGroup))
	mux.HandleFunc("GET /v1.0/groups/{group}/members/graph.user", g(d.serveMembers))
	mux.HandleFunc("GET /v1.0/groups/{group}/members/microsoft.graph.user", g(d.serveMembers))
	mux.HandleFunc("POST /v1.0/directoryObjects/getByIds", g(d.serveGetByIDs))
	mux.HandleFunc("GET /v1.0/users", g(d.serveUsers))
}

// ---- the directory's state ----

// AddUser adds u to the directory (enabled), or replaces the user with u.ID.
func (f *Fake) AddUser(u directory.User) { f.AddUsers(u) }

// AddUsers adds many users at once, as AddUser.
func (f *Fake) AddUsers(us ...directory.User) {
	d := f.dir
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, u := range us {
		lid := strings.ToLower(u.ID)
		if old := d.users[lid]; old != nil {
			delete(d.byUPN, old.lupn)
			old.gone = true
		}
		fu := &fakeUser{id: u.ID, upn: u.UPN, name: u.DisplayName, enabled: true}
		fu.index()
		d.users[lid] = fu
		if fu.lupn != "" {
			d.byUPN[fu.lupn] = fu
		}
		d.order = append(d.order, fu)
	}
}

func (u *fakeUser) index() {
	u.lid, u.lupn, u.lname = strings.ToLower(u.id), strings.ToLower(u.upn), strings.ToLower(u.name)
	u.words = strings.FieldsFunc(u.lname, func(r rune) bool {
		return r == ' ' || r == '-' || r == '.' || r == '_' || r == ',' || r == '(' || r == ')'
	})
	var b []byte
	b = append(b, `{"@odata.type":"#microsoft.graph.user","id":`...)
	b = appendJSONString(b, u.id)
	b = append(b, `,"userPrincipalName":`...)
	b = appendJSONString(b, u.upn)
	b = append(b, `,"displayName":`...)
	b = appendJSONString(b, u.name)
	b = append(b, `,"mail":`...)
	b = appendJSONString(b, u.upn)
	b = append(b, `,"accountEnabled":`...)
	b = strconv.AppendBool(b, u.enabled)
	u.frag = append(b, '}')
}

// SetAccountEnabled enables or disables a user added with AddUser (filters on
// accountEnabled see it); an unknown id is ignored.
func (f *Fake) SetAccountEnabled(id string, enabled bool) {
	d := f.dir
	d.mu.Lock()
	defer d.mu.Unlock()
	if u := d.users[strings.ToLower(id)]; u != nil {
		u.enabled = enabled
		u.index()
	}
}

// RemoveUser deletes a user added with AddUser; like Entra, it also ends the user's
// memberships and ownerships (logged for delta queries).
func (f *Fake) RemoveUser(id string) {
	d := f.dir
	d.mu.Lock()
	defer d.mu.Unlock()
	lid := strings.ToLower(id)
	if u := d.users[lid]; u != nil {
		u.gone = true
		delete(d.users, lid)
		delete(d.byUPN, u.lupn)
	}
	for _, g := range d.groups {
		g.change(false, []string{id}, true)
		g.change(true, []string{id}, true)
	}
}

// AddGroup adds a group, or renames an existing one (and restores a removed one).
func (f *Fake) AddGroup(g directory.Group) {
	d := f.dir
	d.mu.Lock()
	defer d.mu.Unlock()
	fg := d.group(g.ID)
	fg.name = g.DisplayName
	fg.deleted = false
}

// RemoveGroup deletes a group: reads answer 404, and a delta round that covers the
// removal reports the group "@removed".
func (f *Fake) RemoveGroup(id string) {
	d := f.dir
	d.mu.Lock()
	defer d.mu.Unlock()
	if g := d.groups[strings.ToLower(id)]; g != nil && !g.deleted {
		g.deleted = true
		g.log = append(g.log, fakeChange{group: true, id: g.id, removed: true})
	}
}

// AddMembers makes users (object ids) members of the group, creating the group
// (without a display name) if needed.
func (f *Fake) AddMembers(groupID string, ids ...string) { f.dir.change(groupID, false, ids, false) }

// RemoveMembers ends the memberships of users in the group.
func (f *Fake) RemoveMembers(groupID string, ids ...string) { f.dir.change(groupID, false, ids, true) }

// AddOwners makes users owners of the group, creating it if needed.
func (f *Fake) AddOwners(groupID string, ids ...string) { f.dir.change(groupID, true, ids, false) }

// RemoveOwners ends the ownerships of users of the group.
func (f *Fake) RemoveOwners(groupID string, ids ...string) { f.dir.change(groupID, true, ids, true) }

// Membership returns the group's member and owner ids, sorted (nil for an unknown
// group).
func (f *Fake) Membership(groupID string) (members, owners []string) {
	d := f.dir
	d.mu.RLock()
	defer d.mu.RUnlock()
	g := d.groups[strings.ToLower(groupID)]
	if g == nil {
		return nil, nil
	}
	for _, id := range g.members {
		members = append(members, id)
	}
	for _, id := range g.owners {
		owners = append(owners, id)
	}
	slices.Sort(members)
	slices.Sort(owners)
	return members, owners
}

// SetDirectoryPageSize sets the number of members and owners per delta page and
// the page size of user and member lists without $top (n < 1: the default, 100).
func (f *Fake) SetDirectoryPageSize(n int) {
	if n < 1 {
		n = DefaultDirectoryPageSize
	}
	f.dir.mu.Lock()
	f.dir.pageSize = n
	f.dir.mu.Unlock()
}

// ExpireDeltaLinks makes every delta link and next link given so far unknown: Graph
// answers them 410 Gone.
func (f *Fake) ExpireDeltaLinks() {
	d := f.dir
	d.mu.Lock()
	d.cursors = map[string]*fakeCursor{}
	d.links = map[string]fakeLink{}
	d.mu.Unlock()
}

// DenyDirectory makes the directory endpoints answer requests authenticated as
// principal (a username or AppPrincipal) with status and Graph's
// Authorization_RequestDenied ("Insufficient privileges"), as Entra does without
// consent to a directory permission; 0 clears.
func (f *Fake) DenyDirectory(principal string, status int) {
	d := f.dir
	d.mu.Lock()
	if status == 0 {
		delete(d.deny, strings.ToLower(principal))
	} else {
		d.deny[strings.ToLower(principal)] = status
	}
	d.mu.Unlock()
}

// DirectoryRequests is the number of requests that reached a directory endpoint.
func (f *Fake) DirectoryRequests() int64 { return f.dir.requests.Load() }

// DirectoryStats returns the directory's counters.
func (f *Fake) DirectoryStats() FakeDirectoryStats {
	d := f.dir
	return FakeDirectoryStats{
		Requests: d.requests.Load(), DeltaPages: d.deltaPages.Load(), DeltaItems: d.deltaItems.Load(),
		GetByIDs: d.getByIDs.Load(), UserLists: d.userLists.Load(), GroupReads: d.groupReads.Load(),
		MemberLists: d.memberLists.Load(),
	}
}

// group returns the group with id, created if unknown. d.mu is held.
func (d *fakeDirectory) group(id string) *fakeGroup {
	lid := strings.ToLower(id)
	g := d.groups[lid]
	if g == nil {
		g = &fakeGroup{id: id, members: map[string]string{}, owners: map[string]string{}}
		d.groups[lid] = g
	}
	return g
}

func (d *fakeDirectory) change(groupID string, owner bool, ids []string, remove bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if remove && d.groups[strings.ToLower(groupID)] == nil {
		return
	}
	d.group(groupID).change(owner, ids, remove)
}

// change adds or removes members (owners), logging only real changes. d.mu is held.
func (g *fakeGroup) change(owner bool, ids []string, remove bool) {
	set := g.members
	if owner {
		set = g.owners
	}
	for _, id := range ids {
		lid := strings.ToLower(id)
		_, in := set[lid]
		if in != remove {
			continue
		}
		if remove {
			delete(set, lid)
		} else {
			set[lid] = id
		}
		if !owner {
			g.sorted = nil
		}
		g.log = append(g.log, fakeChange{owner: owner, id: id, removed: remove})
	}
}

// sortedMembers is the group's member ids in order. d.mu is held for writing.
func (g *fakeGroup) sortedMembers() []string {
	if g.sorted == nil {
		s := make([]string, 0, len(g.members))
		for lid := range g.members {
			s = append(s, lid)
		}
		slices.Sort(s)
		g.sorted = s
	}
	return g.sorted
}

// ---- handlers ----

// enter counts a directory request and answers it if its principal is denied.
func (d *fakeDirectory) enter(w http.ResponseWriter, r *http.Request, c *atomic.Int64) bool {
	d.requests.Add(1)
	c.Add(1)
	principal, _ := fakePrincipal(r.Header.Get("Authorization"))
	d.mu.RLock()
	status := d.deny[strings.ToLower(principal)]
	d.mu.RUnlock()
	if status != 0 {
		graphError(w, status, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
		return false
	}
	return true
}

func (d *fakeDirectory) serveDelta(w http.ResponseWriter, r *http.Request) {
	if !d.enter(w, r, &d.deltaPages) {
		return
	}
	q := r.URL.Query()
	skip, delta := q.Get("$skiptoken"), q.Get("$deltatoken")
	d.mu.Lock()
	defer d.mu.Unlock()
	var (
		cid string
		cur *fakeCursor
		off int
	)
	switch {
	case skip != "":
		id, o, ok := d.parseToken(skip)
		if cur = d.cursors[id]; !ok || cur == nil || o > len(cur.items) {
			d.gone(w)
			return
		}
		cid, off = id, o
	case delta != "":
		id, _, ok := d.parseToken(delta)
		l, known := d.links[id]
		if !ok || !known {
			d.gone(w)
			return
		}
		cur = &fakeCursor{group: l.group, members: l.members, owners: l.owners}
		if g := d.groups[l.group]; g != nil {
			cur.logPos = len(g.log)
			cur.items = netChanges(g.log[l.logPos:], l.members, l.owners)
		}
		cid = d.newCursor(cur)
	default:
		gid, ok := deltaFilter(q.Get("$filter"))
		if !ok {
			graphError(w, http.StatusBadRequest, "Request_UnsupportedQuery",
				"The fake's groups/delta supports only $filter=id eq '{group id}'.")
			return
		}
		cur = &fakeCursor{group: strings.ToLower(gid), initial: true}
		cur.members, cur.owners = deltaSelect(q.Get("$select"))
		g := d.groups[cur.group]
		if g == nil || g.deleted {
			// The log of a group created later starts at 0, where the link starts.
			cur.missing = true
			if g != nil {
				cur.logPos = len(g.log)
			}
		} else {
			cur.logPos = len(g.log)
			if cur.members {
				for _, id := range g.sortedMembers() {
					cur.items = append(cur.items, fakeChange{id: g.members[id]})
				}
			}
			if cur.owners {
				os := make([]string, 0, len(g.owners))
				for _, id := range g.owners {
					os = append(os, id)
				}
				slices.Sort(os)
				for _, id := range os {
					cur.items = append(cur.items, fakeChange{owner: true, id: id})
				}
			}
		}
		cid = d.newCursor(cur)
	}

	end := min(off+d.pageSize, len(cur.items))
	page := cur.items[off:end]
	g := d.groups[cur.group]
	buf := make([]byte, 0, 256+len(page)*80)
	buf = append(buf, `{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#groups",`...)
	if end < len(cur.items) {
		buf = append(buf, `"@odata.nextLink":`...)
		buf = appendJSONString(buf, d.f.URL+"/v1.0/groups/delta?$skiptoken="+d.token(cid, end))
	} else {
		lid := d.newLinkID()
		d.links[lid] = fakeLink{group: cur.group, logPos: cur.logPos, members: cur.members, owners: cur.owners}
		delete(d.cursors, cid)
		buf = append(buf, `"@odata.deltaLink":`...)
		buf = appendJSONString(buf, d.f.URL+"/v1.0/groups/delta?$deltatoken="+d.token(lid, 0))
	}
	buf = append(buf, `,"value":[`...)
	switch {
	case cur.missing:
	case len(page) == 1 && page[0].group:
		buf = append(buf, `{"id":`...)
		buf = appendJSONString(buf, g.id)
		buf = append(buf, `,"@removed":{"reason":"changed"}}`...)
	case len(page) > 0 || (cur.initial && off == 0):
		buf = append(buf, `{"id":`...)
		buf = appendJSONString(buf, g.id)
		for _, owners := range []bool{false, true} {
			first := true
			for _, c := range page {
				if c.owner != owners {
					continue
				}
				if first {
					if owners {
						buf = append(buf, `,"owners@delta":[`...)
					} else {
						buf = append(buf, `,"members@delta":[`...)
					}
				} else {
					buf = append(buf, ',')
				}
				first = false
				buf = append(buf, `{"@odata.type":"#microsoft.graph.user","id":`...)
				buf = appendJSONString(buf, c.id)
				if c.removed {
					buf = append(buf, `,"@removed":{"reason":"deleted"}`...)
				}
				buf = append(buf, '}')
			}
			if !first {
				buf = append(buf, ']')
			}
		}
		buf = append(buf, '}')
	}
	buf = append(buf, ']', '}')
	d.deltaItems.Add(int64(len(page)))
	writeRaw(w, http.StatusOK, buf)
}

// gone answers a state token the Fake does not know, as Graph answers an expired
// one: 410 with a Location to start over.
func (d *fakeDirectory) gone(w http.ResponseWriter) {
	w.Header().Set("Location", d.f.URL+"/v1.0/groups/delta?$deltatoken=")
	graphError(w, http.StatusGone, "syncStateNotFound", "The sync state generation is not found.")
}

// netChanges is what log (a window of a group's log) changed, one entry per id, in
// the order of their last change: an id whose first and last changes differ (added
// then removed, or the reverse) ends where it began and is left out. A removal of
// the group hides everything else.
func netChanges(log []fakeChange, members, owners bool) []fakeChange {
	type state struct {
		first, last bool
		pos         int
		c           fakeChange
	}
	type key struct {
		owner bool
		id    string
	}
	m := map[key]*state{}
	for i, c := range log {
		if c.group {
			return []fakeChange{c}
		}
		if (c.owner && !owners) || (!c.owner && !members) {
			continue
		}
		k := key{c.owner, strings.ToLower(c.id)}
		if s := m[k]; s != nil {
			s.last, s.pos, s.c = c.removed, i, c
		} else {
			m[k] = &state{first: c.removed, last: c.removed, pos: i, c: c}
		}
	}
	out := make([]*state, 0, len(m))
	for _, s := range m {
		if s.first == s.last {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].pos < out[j].pos })
	items := make([]fakeChange, len(out))
	for i, s := range out {
		items[i] = s.c
	}
	return items
}

// deltaFilter reads the group id of $filter=id eq '{id}'.
func deltaFilter(f string) (string, bool) {
	f = strings.TrimSpace(f)
	rest, ok := strings.CutPrefix(f, "id eq '")
	if !ok || !strings.HasSuffix(rest, "'") {
		return "", false
	}
	id := strings.TrimSuffix(rest, "'")
	return id, tenant.IsGUID(id)
}

// deltaSelect reads which relationships $select tracks (none named: both).
func deltaSelect(s string) (members, owners bool) {
	if s == "" {
		return true, true
	}
	for _, p := range strings.Split(s, ",") {
		switch strings.ToLower(strings.TrimSpace(p)) {
		case "members":
			members = true
		case "owners":
			owners = true
		}
	}
	return members, owners
}

func (d *fakeDirectory) newCursor(c *fakeCursor) string {
	id := d.newLinkID()
	d.cursors[id] = c
	return id
}

func (d *fakeDirectory) newLinkID() string {
	return d.secret + strconv.FormatInt(d.seq.Add(1), 36)
}

// token is the opaque state token of (id, offset).
func (d *fakeDirectory) token(id string, off int) string {
	return base64.RawURLEncoding.EncodeToString([]byte(id + "." + strconv.Itoa(off)))
}

func (d *fakeDirectory) parseToken(t string) (string, int, bool) {
	b, err := base64.RawURLEncoding.DecodeString(t)
	if err != nil {
		return "", 0, false
	}
	id, o, ok := strings.Cut(string(b), ".")
	n, err := strconv.Atoi(o)
	if !ok || err != nil || n < 0 || !strings.HasPrefix(id, d.secret) {
		return "", 0, false
	}
	return id, n, true
}

func (d *fakeDirectory) serveGroup(w http.ResponseWriter, r *http.Request) {
	if !d.enter(w, r, &d.groupReads) || !groupPathID(w, r) {
		return
	}
	d.mu.RLock()
	g := d.groups[strings.ToLower(r.PathValue("group"))]
	var id, name string
	ok := g != nil && !g.deleted
	if ok {
		id, name = g.id, g.name
	}
	d.mu.RUnlock()
	if !ok {
		graphError(w, http.StatusNotFound, "Request_ResourceNotFound",
			"Resource '"+r.PathValue("group")+"' does not exist or one of its queried reference-property objects are not present.")
		return
	}
	buf := []byte(`{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#groups(id,displayName)/$entity","id":`)
	buf = appendJSONString(buf, id)
	buf = append(buf, `,"displayName":`...)
	buf = appendJSONString(buf, name)
	writeRaw(w, http.StatusOK, append(buf, '}'))
}

func (d *fakeDirectory) serveMembers(w http.ResponseWriter, r *http.Request) {
	if !d.enter(w, r, &d.memberLists) || !groupPathID(w, r) {
		return
	}
	q := r.URL.Query()
	top, ok := d.top(w, q.Get("$top"))
	if !ok {
		return
	}
	after := ""
	if s := q.Get("$skiptoken"); s != "" {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || !strings.HasPrefix(string(b), "m:") {
			graphError(w, http.StatusBadRequest, "Directory_ExpiredPageToken", "The specified page token value has expired and can no longer be included in your request.")
			return
		}
		after = string(b[2:])
	}
	d.mu.Lock()
	g := d.groups[strings.ToLower(r.PathValue("group"))]
	if g == nil || g.deleted {
		d.mu.Unlock()
		graphError(w, http.StatusNotFound, "Request_ResourceNotFound",
			"Resource '"+r.PathValue("group")+"' does not exist or one of its queried reference-property objects are not present.")
		return
	}
	ids := g.sortedMembers()
	start := 0
	if after != "" {
		start = sort.SearchStrings(ids, after)
		if start < len(ids) && ids[start] == after {
			start++
		}
	}
	end := min(start+top, len(ids))
	buf := make([]byte, 0, 256+(end-start)*160)
	buf = append(buf, `{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#users(id,userPrincipalName,displayName)",`...)
	if end < len(ids) {
		v := r.URL.Query()
		v.Set("$skiptoken", base64.RawURLEncoding.EncodeToString([]byte("m:"+ids[end-1])))
		buf = append(buf, `"@odata.nextLink":`...)
		buf = appendJSONString(buf, d.f.URL+r.URL.Path+"?"+v.Encode())
		buf = append(buf, ',')
	}
	buf = append(buf, `"value":[`...)
	for i, lid := range ids[start:end] {
		if i > 0 {
			buf = append(buf, ',')
		}
		if u := d.users[lid]; u != nil {
			buf = append(buf, u.frag...)
		} else {
			buf = append(buf, `{"@odata.type":"#microsoft.graph.user","id":`...)
			buf = appendJSONString(buf, g.members[lid])
			buf = append(buf, '}')
		}
	}
	d.mu.Unlock()
	writeRaw(w, http.StatusOK, append(buf, ']', '}'))
}

// groupPathID answers a group id that is not a GUID as Entra does.
func groupPathID(w http.ResponseWriter, r *http.Request) bool {
	if id := r.PathValue("group"); !tenant.IsGUID(id) {
		graphError(w, http.StatusBadRequest, "Request_BadRequest", "Invalid object identifier '"+id+"'.")
		return false
	}
	return true
}

func (d *fakeDirectory) serveGetByIDs(w http.ResponseWriter, r *http.Request) {
	if !d.enter(w, r, &d.getByIDs) {
		return
	}
	body, ok := requestBody(w, r)
	if !ok {
		return
	}
	var req struct {
		IDs   []string `json:"ids"`
		Types []string `json:"types"`
	}
	if err := json.NewDecoder(body).Decode(&req); err != nil {
		graphError(w, http.StatusBadRequest, "Request_BadRequest", "Invalid request body.")
		return
	}
	if len(req.IDs) == 0 || len(req.IDs) > directory.MaxIDsPerRead {
		graphError(w, http.StatusBadRequest, "Request_BadRequest", "The number of ids must be between 1 and 1000.")
		return
	}
	for _, id := range req.IDs {
		if !tenant.IsGUID(id) {
			graphError(w, http.StatusBadRequest, "Request_BadRequest", "Invalid GUID specified.")
			return
		}
	}
	wantUsers, wantGroups := len(req.Types) == 0, len(req.Types) == 0
	for _, t := range req.Types {
		switch strings.ToLower(t) {
		case "user", "microsoft.graph.user":
			wantUsers = true
		case "group", "microsoft.graph.group":
			wantGroups = true
		}
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	var extra map[string]*fakeUser
	buf := make([]byte, 0, 256+len(req.IDs)*160)
	buf = append(buf, `{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#directoryObjects","value":[`...)
	first := true
	sep := func() {
		if !first {
			buf = append(buf, ',')
		}
		first = false
	}
	for _, id := range req.IDs {
		lid := strings.ToLower(id)
		if wantUsers {
			u := d.users[lid]
			if u == nil {
				if extra == nil {
					extra = d.upnOnlyUsers()
				}
				u = extra[lid]
			}
			if u != nil {
				sep()
				buf = append(buf, u.frag...)
				continue
			}
		}
		if g := d.groups[lid]; wantGroups && g != nil && !g.deleted {
			sep()
			buf = append(buf, `{"@odata.type":"#microsoft.graph.group","id":`...)
			buf = appendJSONString(buf, g.id)
			buf = append(buf, `,"displayName":`...)
			buf = appendJSONString(buf, g.name)
			buf = append(buf, '}')
		}
	}
	writeRaw(w, http.StatusOK, append(buf, ']', '}'))
}

// upnOnlyUsers are the users given to SetUPN only, by lower-case id. d.mu is held.
func (d *fakeDirectory) upnOnlyUsers() map[string]*fakeUser {
	f := d.f
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make(map[string]*fakeUser, len(f.upns))
	for upn, id := range f.upns {
		lid := strings.ToLower(id)
		if d.users[lid] != nil {
			continue
		}
		u := &fakeUser{id: id, upn: upn, enabled: true}
		u.index()
		out[lid] = u
	}
	return out
}

func (d *fakeDirectory) serveUsers(w http.ResponseWriter, r *http.Request) {
	if !d.enter(w, r, &d.userLists) {
		return
	}
	q := r.URL.Query()
	eventual := strings.EqualFold(r.Header.Get("ConsistencyLevel"), "eventual")
	search, count := q.Get("$search"), strings.EqualFold(q.Get("$count"), "true")
	if search != "" && !eventual {
		graphError(w, http.StatusBadRequest, "Request_UnsupportedQuery",
			"Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'")
		return
	}
	if count && !eventual {
		graphError(w, http.StatusBadRequest, "Request_BadRequest", "$count is not currently supported.")
		return
	}
	match := func(*fakeUser) bool { return true }
	if f := q.Get("$filter"); f != "" {
		p, code, err := parseFakeFilter(f)
		if err != "" {
			graphError(w, http.StatusBadRequest, code, err)
			return
		}
		match = p
	}
	if search != "" {
		s, ok := parseFakeSearch(search)
		if !ok {
			graphError(w, http.StatusBadRequest, "Request_BadRequest", "Invalid search query.")
			return
		}
		m := match
		match = func(u *fakeUser) bool { return m(u) && s(u) }
	}
	top, ok := d.top(w, q.Get("$top"))
	if !ok {
		return
	}
	start := 0
	if s := q.Get("$skiptoken"); s != "" {
		b, err := base64.RawURLEncoding.DecodeString(s)
		n, err2 := strconv.Atoi(strings.TrimPrefix(string(b), "u:"))
		if err != nil || err2 != nil || !strings.HasPrefix(string(b), "u:") || n < 0 {
			graphError(w, http.StatusBadRequest, "Directory_ExpiredPageToken", "The specified page token value has expired and can no longer be included in your request.")
			return
		}
		start = n
	}
	d.mu.RLock()
	all := d.order
	if extra := d.upnOnlyUsers(); len(extra) > 0 {
		more := make([]*fakeUser, 0, len(extra))
		for _, u := range extra {
			more = append(more, u)
		}
		sort.Slice(more, func(i, j int) bool { return more[i].lid < more[j].lid })
		all = append(all[:len(all):len(all)], more...)
	}
	var page []*fakeUser
	next, total := -1, 0
	for i, u := range all {
		if u.gone || !match(u) {
			continue
		}
		if i >= start {
			if len(page) < top {
				page = append(page, u)
			} else if next < 0 {
				next = i
				if !count {
					break
				}
			}
		}
		total++
	}
	buf := make([]byte, 0, 256+len(page)*160)
	buf = append(buf, `{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#users(id,userPrincipalName,displayName)",`...)
	if count {
		buf = append(buf, `"@odata.count":`...)
		buf = strconv.AppendInt(buf, int64(total), 10)
		buf = append(buf, ',')
	}
	if next >= 0 {
		v := r.URL.Query()
		v.Set("$skiptoken", base64.RawURLEncoding.EncodeToString([]byte("u:"+strconv.Itoa(next))))
		buf = append(buf, `"@odata.nextLink":`...)
		buf = appendJSONString(buf, d.f.URL+"/v1.0/users?"+v.Encode())
		buf = append(buf, ',')
	}
	buf = append(buf, `"value":[`...)
	for i, u := range page {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, u.frag...)
	}
	d.mu.RUnlock()
	writeRaw(w, http.StatusOK, append(buf, ']', '}'))
}

// top reads $top (default: the page size; Graph's limit is 999).
func (d *fakeDirectory) top(w http.ResponseWriter, s string) (int, bool) {
	if s == "" {
		d.mu.RLock()
		defer d.mu.RUnlock()
		return d.pageSize, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 999 {
		graphError(w, http.StatusBadRequest, "Request_BadRequest", "Invalid page size specified: '"+s+"'. Must be between 1 and 999 inclusive.")
		return 0, false
	}
	return n, true
}

func writeRaw(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// ---- $filter and $search ----

// parseFakeFilter compiles the $filter subset the Fake knows. A failure names the
// Graph error code and message.
func parseFakeFilter(s string) (pred func(*fakeUser) bool, code, msg string) {
	toks, ok := lexFilter(s)
	if !ok {
		return nil, "BadRequest", "Invalid filter clause: syntax error."
	}
	p := &filterParser{toks: toks}
	pred = p.or()
	if p.err == "" && p.pos != len(p.toks) {
		p.unsupported()
	}
	if p.err != "" {
		return nil, p.code, p.err
	}
	return pred, "", ""
}

type filterTok struct {
	kind byte // 'i' identifier, 's' string, '(', ')', ','
	text string
}

func lexFilter(s string) ([]filterTok, bool) {
	var out []filterTok
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case c == '(' || c == ')' || c == ',':
			out = append(out, filterTok{kind: c})
			i++
		case c == '\'':
			var b strings.Builder
			i++
			for {
				if i >= len(s) {
					return nil, false
				}
				if s[i] == '\'' {
					if i+1 < len(s) && s[i+1] == '\'' {
						b.WriteByte('\'')
						i += 2
						continue
					}
					i++
					break
				}
				b.WriteByte(s[i])
				i++
			}
			out = append(out, filterTok{kind: 's', text: b.String()})
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t(),'", rune(s[j])) {
				j++
			}
			out = append(out, filterTok{kind: 'i', text: s[i:j]})
			i = j
		}
	}
	return out, true
}

type filterParser struct {
	toks      []filterTok
	pos       int
	err, code string
}

func (p *filterParser) unsupported() {
	if p.err == "" {
		p.code, p.err = "Request_UnsupportedQuery", "Unsupported or invalid query filter clause specified."
	}
}

func (p *filterParser) peekWord(w string) bool {
	return p.pos < len(p.toks) && p.toks[p.pos].kind == 'i' && strings.EqualFold(p.toks[p.pos].text, w)
}

func (p *filterParser) expect(kind byte) (filterTok, bool) {
	if p.pos >= len(p.toks) || p.toks[p.pos].kind != kind {
		p.unsupported()
		return filterTok{}, false
	}
	p.pos++
	return p.toks[p.pos-1], true
}

func (p *filterParser) or() func(*fakeUser) bool {
	l := p.and()
	for p.err == "" && p.peekWord("or") {
		p.pos++
		r, l0 := p.and(), l
		l = func(u *fakeUser) bool { return l0(u) || r(u) }
	}
	return l
}

func (p *filterParser) and() func(*fakeUser) bool {
	l := p.unary()
	for p.err == "" && p.peekWord("and") {
		p.pos++
		r, l0 := p.unary(), l
		l = func(u *fakeUser) bool { return l0(u) && r(u) }
	}
	return l
}

func (p *filterParser) unary() func(*fakeUser) bool {
	never := func(*fakeUser) bool { return false }
	if p.pos >= len(p.toks) {
		p.unsupported()
		return never
	}
	if p.toks[p.pos].kind == '(' {
		p.pos++
		e := p.or()
		if _, ok := p.expect(')'); !ok {
			return never
		}
		return e
	}
	if p.peekWord("startswith") {
		p.pos++
		if _, ok := p.expect('('); !ok {
			return never
		}
		prop, ok := p.expect('i')
		if !ok {
			return never
		}
		if _, ok := p.expect(','); !ok {
			return never
		}
		lit, ok := p.expect('s')
		if !ok {
			return never
		}
		if _, ok := p.expect(')'); !ok {
			return never
		}
		get := stringProp(prop.text)
		if get == nil {
			p.unsupported()
			return never
		}
		v := strings.ToLower(lit.text)
		return func(u *fakeUser) bool { return strings.HasPrefix(get(u), v) }
	}
	prop, ok := p.expect('i')
	if !ok {
		return never
	}
	if !p.peekWord("eq") {
		p.unsupported()
		return never
	}
	p.pos++
	if strings.EqualFold(prop.text, "accountEnabled") {
		switch {
		case p.peekWord("true"):
			p.pos++
			return func(u *fakeUser) bool { return u.enabled }
		case p.peekWord("false"):
			p.pos++
			return func(u *fakeUser) bool { return !u.enabled }
		}
		p.unsupported()
		return never
	}
	lit, ok := p.expect('s')
	if !ok {
		return never
	}
	get := stringProp(prop.text)
	if get == nil {
		p.unsupported()
		return never
	}
	if strings.EqualFold(prop.text, "id") && !tenant.IsGUID(lit.text) {
		p.code, p.err = "Request_BadRequest", "Invalid object identifier '"+lit.text+"'."
		return never
	}
	v := strings.ToLower(lit.text)
	return func(u *fakeUser) bool { return get(u) == v }
}

// stringProp reads a user's lower-cased string property (mail is the UPN here).
func stringProp(name string) func(*fakeUser) string {
	switch strings.ToLower(name) {
	case "id":
		return func(u *fakeUser) string { return u.lid }
	case "userprincipalname", "mail":
		return func(u *fakeUser) string { return u.lupn }
	case "displayname":
		return func(u *fakeUser) string { return u.lname }
	}
	return nil
}

// parseFakeSearch compiles $search: quoted "property:text" clauses joined by OR or
// AND (AND first). displayName matches the start of any word of the name or of the
// whole name; userPrincipalName and mail match their start.
func parseFakeSearch(s string) (func(*fakeUser) bool, bool) {
	var ors []func(*fakeUser) bool
	var ands []func(*fakeUser) bool
	s = strings.TrimSpace(s)
	for {
		if !strings.HasPrefix(s, `"`) {
			return nil, false
		}
		end := strings.IndexByte(s[1:], '"')
		if end < 0 {
			return nil, false
		}
		prop, text, ok := strings.Cut(s[1:1+end], ":")
		if !ok {
			return nil, false
		}
		text = strings.ToLower(text)
		var m func(*fakeUser) bool
		switch strings.ToLower(prop) {
		case "displayname":
			m = func(u *fakeUser) bool {
				if strings.HasPrefix(u.lname, text) {
					return true
				}
				for _, w := range u.words {
					if strings.HasPrefix(w, text) {
						return true
					}
				}
				return false
			}
		case "userprincipalname", "mail":
			m = func(u *fakeUser) bool { return strings.HasPrefix(u.lupn, text) }
		default:
			return nil, false
		}
		ands = append(ands, m)
		s = strings.TrimSpace(s[2+end:])
		if s == "" {
			break
		}
		op, rest, _ := strings.Cut(s, " ")
		s = strings.TrimSpace(rest)
		switch op {
		case "AND":
		case "OR":
			ors = append(ors, allOf(ands))
			ands = nil
		default:
			return nil, false
		}
	}
	ors = append(ors, allOf(ands))
	return func(u *fakeUser) bool {
		for _, o := range ors {
			if o(u) {
				return true
			}
		}
		return false
	}, true
}

func allOf(ps []func(*fakeUser) bool) func(*fakeUser) bool {
	return func(u *fakeUser) bool {
		for _, p := range ps {
			if !p(u) {
				return false
			}
		}
		return true
	}
}
