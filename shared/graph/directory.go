package graph

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/directoryobjects"
	"github.com/microsoftgraph/msgraph-sdk-go/groups"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/teamscc/teamscc/shared/directory"
	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/tenant"
)

// The Reader is also the directory's Graph (directory.Graph): Entra users and groups
// read with the credential each call names (the app's application permission, or a
// presence account's delegated token).
//
// Errors of these methods, mapped once here: bad input is a *fault.FieldError before
// any request; 404 is fault.ErrNotFound (errors.Is); a refused credential (Entra's
// refusals, 401 and 403 from Graph, a credential not configured) is
// *presence.AuthError, not permanent, so the caller tries its next credential; any
// other 4xx is fault.Permanent; 429 and 5xx after retryTransport's retries, network
// errors and timeouts are transient *Error. No error text holds a user id, a UPN,
// the search text, a token or a secret.
//
// Identifiers: tenant and group ids and the ids of Users must be object ids (GUIDs);
// FindUser takes a GUID or a UPN (local@domain; an apostrophe is allowed, as Entra
// allows it, and is doubled inside the OData literal).
var _ directory.Graph = (*Reader)(nil)

// Graph operations named in errors.
const (
	opGroupDelta   = "groupDelta"
	opGetByIDs     = "getByIds"
	opFindUser     = "findUser"
	opSearchUsers  = "searchUsers"
	opGetGroup     = "getGroup"
	opGroupMembers = "groupMembers"
)

const (
	// maxDeltaPages bounds one GroupDelta round: a Graph that kept answering
	// nextLinks (a loop) must not keep the caller forever. At 100 members a page it
	// is a group of a million members.
	maxDeltaPages = 10000
	// maxFilter bounds a tenant's Graph filter fragment; Graph's URL limit is ~2 KB
	// for directory queries and the filter is only a part of it.
	maxFilter = 1024
	// maxSearch bounds the search text (runes).
	maxSearch = 120
	// maxPageToken bounds a page token handed back by a client.
	maxPageToken = 4096
	// maxUPN bounds a UPN; Entra's own limit is 113 characters, guests' #EXT#
	// names included, so this only refuses absurd input.
	maxUPN = 256
)

// userSelect is what every user read asks for.
var userSelect = []string{"id", "userPrincipalName", "displayName"}

// userJSON is the part of Graph's user resource the directory uses.
type userJSON struct {
	Type        string `json:"@odata.type"`
	ID          string `json:"id"`
	UPN         string `json:"userPrincipalName"`
	DisplayName string `json:"displayName"`
}

func (u userJSON) user() directory.User {
	return directory.User{ID: u.ID, UPN: u.UPN, DisplayName: u.DisplayName}
}

// userPage is one page of a user collection.
type userPage struct {
	NextLink string     `json:"@odata.nextLink"`
	Value    []userJSON `json:"value"`
}

// deltaRef is one item of members@delta or owners@delta.
type deltaRef struct {
	Type    string    `json:"@odata.type"`
	ID      string    `json:"id"`
	Removed *struct{} `json:"@removed"` // reason "deleted" or "changed": both end the membership
}

// deltaPage is one page of GET /groups/delta with $select=members,owners.
type deltaPage struct {
	NextLink  string `json:"@odata.nextLink"`
	DeltaLink string `json:"@odata.deltaLink"`
	Value     []struct {
		ID      string     `json:"id"`
		Removed *struct{}  `json:"@removed"`
		Members []deltaRef `json:"members@delta"`
		Owners  []deltaRef `json:"owners@delta"`
	} `json:"value"`
}

// GroupDelta implements directory.Graph. The first round (link "") is
// GET /groups/delta?$filter=id eq '{groupID}'&$select=members,owners; every later
// request follows Graph's @odata.nextLink, then the round's @odata.deltaLink (link)
// starts the next one. Links are followed only on the configured Graph host and
// scheme, so a stored or answered link cannot send the token elsewhere.
//
// Members and owners that are not users are left out. An id seen more than once in
// a round counts by its last appearance (Graph does not promise one entry per id,
// nor an order). A group that Graph reports removed (deleted, even if restorable)
// is fault.ErrNotFound: its members are gone with it and the caller treats the
// Team as deleted; so is a first round that never mentions the group. A link Graph
// no longer accepts (410 Gone, or syncStateNotFound / resyncRequired /
// Directory_ExpiredPageToken), and a stored link that is not a link of the
// configured Graph host, is directory.ErrResync.
func (r *Reader) GroupDelta(ctx context.Context, tenantID string, cred presence.Credential, groupID, link string) (directory.GroupDelta, error) {
	const op = opGroupDelta
	if err := errors.Join(checkGUID("tenantID", tenantID), checkGUID("groupID", groupID)); err != nil {
		return directory.GroupDelta{}, err
	}
	if link != "" {
		if err := r.checkGraphLink(link); err != nil {
			return directory.GroupDelta{}, fmt.Errorf("graph %s: the stored link is not a Graph link of the configured host: %w", op, directory.ErrResync)
		}
	}
	actx, err := r.dirAuth(ctx, tenantID, cred)
	if err != nil {
		return directory.GroupDelta{}, err
	}
	members, owners := newDeltaSet(), newDeltaSet()
	seen, next := false, link
	out := directory.GroupDelta{}
	for {
		if out.Pages >= maxDeltaPages {
			return directory.GroupDelta{}, fault.Permanent(&Error{Op: op, msg: "more than " + strconv.Itoa(maxDeltaPages) + " pages in one round"})
		}
		var page deltaPage
		cfg := &groups.DeltaRequestBuilderGetRequestConfiguration{Options: []abs.RequestOption{decodeInto(&page)}}
		b := r.client.Groups().Delta()
		if next == "" {
			filter := "id eq " + odataString(groupID)
			cfg.QueryParameters = &groups.DeltaRequestBuilderGetQueryParameters{Filter: &filter, Select: []string{"members", "owners"}}
		} else {
			b = b.WithUrl(next)
		}
		_, err := b.GetAsDeltaGetResponse(actx, cfg)
		out.Pages++
		if err != nil {
			if next != "" && ctx.Err() == nil && deltaExpired(err) {
				return directory.GroupDelta{}, fmt.Errorf("graph %s: %w", op, directory.ErrResync)
			}
			return directory.GroupDelta{}, r.dirFault(ctx, op, cred, err)
		}
		for _, g := range page.Value {
			if !strings.EqualFold(g.ID, groupID) {
				continue
			}
			seen = true
			if g.Removed != nil {
				return directory.GroupDelta{}, &Error{Op: op, Status: 200, msg: "the group was deleted", cause: fault.ErrNotFound}
			}
			members.add(g.Members)
			owners.add(g.Owners)
		}
		if page.NextLink != "" {
			if err := r.checkGraphLink(page.NextLink); err != nil {
				return directory.GroupDelta{}, fault.Permanent(&Error{Op: op, Status: 200, msg: "Graph answered a nextLink to another host; not followed"})
			}
			next = page.NextLink
			continue
		}
		if page.DeltaLink == "" {
			return directory.GroupDelta{}, fault.Permanent(&Error{Op: op, Status: 200, msg: "the answer holds neither a nextLink nor a deltaLink"})
		}
		if err := r.checkGraphLink(page.DeltaLink); err != nil {
			return directory.GroupDelta{}, fault.Permanent(&Error{Op: op, Status: 200, msg: "Graph answered a deltaLink to another host; not kept"})
		}
		if link == "" && !seen {
			return directory.GroupDelta{}, &Error{Op: op, Status: 200, msg: "the group is not in the directory", cause: fault.ErrNotFound}
		}
		out.MembersAdded, out.MembersRemoved = members.result()
		out.OwnersAdded, out.OwnersRemoved = owners.result()
		out.Link = page.DeltaLink
		return out, nil
	}
}

// deltaSet merges the members@delta (or owners@delta) items of one round: the
// last appearance of an id wins, ids keep the order of their first appearance.
type deltaSet struct {
	index map[string]int // lower-case id -> position in ids
	ids   []string
	gone  []bool
}

func newDeltaSet() *deltaSet { return &deltaSet{index: map[string]int{}} }

func (s *deltaSet) add(refs []deltaRef) {
	for _, ref := range refs {
		// Only users: devices, service principals, contacts and nested groups can
		// be members of a Team's group too.
		if ref.ID == "" || !strings.EqualFold(ref.Type, "#microsoft.graph.user") {
			continue
		}
		key := strings.ToLower(ref.ID)
		if i, ok := s.index[key]; ok {
			s.gone[i] = ref.Removed != nil
			continue
		}
		s.index[key] = len(s.ids)
		s.ids = append(s.ids, ref.ID)
		s.gone = append(s.gone, ref.Removed != nil)
	}
}

func (s *deltaSet) result() (added, removed []string) {
	for i, id := range s.ids {
		if s.gone[i] {
			removed = append(removed, id)
		} else {
			added = append(added, id)
		}
	}
	return added, removed
}

// deltaExpired reports whether Graph refused a delta state token: 410 Gone (the
// documented "synchronization reset", also answered for maintenance or migration
// of the tenant), or a 4xx whose code says the token expired. The delta-query
// overview only promises "a 40X-series error with error codes such as
// syncStateNotFound"; resyncRequired is in Graph's error-code list, and Entra's
// directory answers an expired page token with Directory_ExpiredPageToken.
func deltaExpired(err error) bool {
	var se *statusError
	if !errors.As(err, &se) {
		return false
	}
	if se.status == 410 {
		return true
	}
	if se.status < 400 || se.status > 499 {
		return false
	}
	switch strings.ToLower(se.code) {
	case "syncstatenotfound", "resyncrequired", "directory_expiredpagetoken":
		return true
	}
	return false
}

// checkGraphLink accepts only an absolute link on the configured Graph base URL's
// scheme and host (port included), under its path, without user info.
func (r *Reader) checkGraphLink(link string) error {
	u, err := url.Parse(link)
	if err != nil {
		return errors.New("unparsable link")
	}
	base, err := url.Parse(r.opts.BaseURL)
	if err != nil {
		return errors.New("unparsable base URL")
	}
	if !strings.EqualFold(u.Scheme, base.Scheme) || u.User != nil || u.Opaque != "" ||
		!strings.EqualFold(hostPort(u), hostPort(base)) ||
		!strings.HasPrefix(u.EscapedPath(), strings.TrimRight(base.EscapedPath(), "/")+"/") {
		return errors.New("link not on the configured Graph host")
	}
	return nil
}

// hostPort is u's host with the scheme's default port made explicit.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "443"
		if strings.EqualFold(u.Scheme, "http") {
			port = "80"
		}
	}
	return strings.ToLower(u.Hostname()) + ":" + port
}

// Users implements directory.Graph: POST /directoryObjects/getByIds with
// {"ids": [...], "types": ["user"]} (Graph's limit is 1000 ids; $select is not
// available there, so the whole objects come back and only id, UPN and display
// name are kept). Duplicates are sent once; the answer's order is Graph's.
func (r *Reader) Users(ctx context.Context, tenantID string, cred presence.Credential, ids []string) ([]directory.User, error) {
	const op = opGetByIDs
	if err := checkGUID("tenantID", tenantID); err != nil {
		return nil, err
	}
	if len(ids) > directory.MaxIDsPerRead {
		return nil, fault.Invalid("ids", "at most "+strconv.Itoa(directory.MaxIDsPerRead)+" a read")
	}
	uniq := make([]string, 0, len(ids))
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if !tenant.IsGUID(id) {
			return nil, fault.Invalid("ids", "must be object ids (GUIDs)")
		}
		if k := strings.ToLower(id); !seen[k] {
			seen[k] = true
			uniq = append(uniq, id)
		}
	}
	if len(uniq) == 0 {
		return nil, nil
	}
	actx, err := r.dirAuth(ctx, tenantID, cred)
	if err != nil {
		return nil, err
	}
	body := directoryobjects.NewGetByIdsPostRequestBody()
	body.SetIds(uniq)
	body.SetTypes([]string{"user"})
	var answer struct {
		Value []userJSON `json:"value"`
	}
	cfg := &directoryobjects.GetByIdsRequestBuilderPostRequestConfiguration{Options: []abs.RequestOption{decodeInto(&answer)}}
	if _, err := r.client.DirectoryObjects().GetByIds().PostAsGetByIdsPostResponse(actx, body, cfg); err != nil {
		return nil, r.dirFault(ctx, op, cred, err)
	}
	out := make([]directory.User, 0, len(answer.Value))
	for _, u := range answer.Value {
		if u.ID != "" && (u.Type == "" || strings.EqualFold(u.Type, "#microsoft.graph.user")) {
			out = append(out, u.user())
		}
	}
	return out, nil
}

// FindUser implements directory.Graph: GET /users?$filter=({key} eq '{user}') and
// ({filter})&$select=id,userPrincipalName,displayName&$count=true with
// ConsistencyLevel: eventual, where key is id for a GUID and userPrincipalName
// otherwise. Why not "id eq 'x' or userPrincipalName eq 'x'": Entra refuses an id
// literal that is not a GUID (400 "Invalid object identifier"), so the OR form
// fails for every UPN. The advanced-query headers are always sent because a
// tenant filter may use operators only advanced queries accept (ne, endsWith,
// not); the price is eventual consistency (a user created seconds ago may be
// missed).
func (r *Reader) FindUser(ctx context.Context, tenantID string, cred presence.Credential, user, filter string) (directory.User, error) {
	const op = opFindUser
	if err := errors.Join(checkGUID("tenantID", tenantID), checkUser(user), checkFilter(filter)); err != nil {
		return directory.User{}, err
	}
	actx, err := r.dirAuth(ctx, tenantID, cred)
	if err != nil {
		return directory.User{}, err
	}
	key := "userPrincipalName"
	if tenant.IsGUID(user) {
		key = "id"
	}
	f := key + " eq " + odataString(user)
	if filter != "" {
		f = "(" + f + ") and (" + filter + ")"
	}
	count := true
	var page userPage
	cfg := &users.UsersRequestBuilderGetRequestConfiguration{
		Headers: eventual(),
		QueryParameters: &users.UsersRequestBuilderGetQueryParameters{
			Filter: &f, Select: userSelect, Count: &count,
		},
		Options: []abs.RequestOption{decodeInto(&page)},
	}
	if _, err := r.client.Users().Get(actx, cfg); err != nil {
		return directory.User{}, r.dirFault(ctx, op, cred, err, user, filter)
	}
	for _, u := range page.Value {
		if u.ID != "" {
			return u.user(), nil
		}
	}
	return directory.User{}, &Error{Op: op, Status: 200, msg: "no such user passes the filter", cause: fault.ErrNotFound}
}

// SearchUsers implements directory.Graph: GET /users?$search="displayName:{q}" OR
// "userPrincipalName:{q}" OR "mail:{q}"&$filter={filter}&$select=id,
// userPrincipalName,displayName&$top={top}&$count=true with ConsistencyLevel:
// eventual ($search is an advanced query). An empty query lists the users that
// pass filter. Graph matches displayName by the start of any of its words and
// userPrincipalName and mail by their start.
//
// Paging: next is only the $skiptoken value of Graph's @odata.nextLink, never the
// link; a page token is put back into the same request rebuilt from the same
// arguments, so a client cannot make this Reader call an arbitrary URL. The query
// must not hold '"' or '\' (they would end or escape the search clause).
func (r *Reader) SearchUsers(ctx context.Context, tenantID string, cred presence.Credential, query, filter string, top int, page string) ([]directory.User, string, error) {
	const op = opSearchUsers
	if err := errors.Join(checkGUID("tenantID", tenantID), checkSearch(query), checkFilter(filter),
		checkTop(top), checkPageToken(page)); err != nil {
		return nil, "", err
	}
	actx, err := r.dirAuth(ctx, tenantID, cred)
	if err != nil {
		return nil, "", err
	}
	count, top32 := true, int32(top)
	qp := &users.UsersRequestBuilderGetQueryParameters{Select: userSelect, Top: &top32, Count: &count}
	if q := strings.TrimSpace(query); q != "" {
		s := `"displayName:` + q + `" OR "userPrincipalName:` + q + `" OR "mail:` + q + `"`
		qp.Search = &s
	}
	if filter != "" {
		qp.Filter = &filter
	}
	var answer userPage
	cfg := &users.UsersRequestBuilderGetRequestConfiguration{
		Headers:         eventual(),
		QueryParameters: qp,
		Options:         []abs.RequestOption{decodeInto(&answer)},
	}
	b := r.client.Users()
	if page != "" {
		ri, err := b.ToGetRequestInformation(actx, cfg)
		if err != nil {
			return nil, "", r.dirFault(ctx, op, cred, err, query, filter)
		}
		raw, err := withSkipToken(ri, page)
		if err != nil {
			return nil, "", r.dirFault(ctx, op, cred, err, query, filter)
		}
		b = b.WithUrl(raw)
		cfg.QueryParameters = nil
	}
	if _, err := b.Get(actx, cfg); err != nil {
		return nil, "", r.dirFault(ctx, op, cred, err, query, filter)
	}
	return r.userPageResult(op, answer)
}

// Group implements directory.Graph: GET /groups/{id}?$select=id,displayName.
func (r *Reader) Group(ctx context.Context, tenantID string, cred presence.Credential, groupID string) (directory.Group, error) {
	const op = opGetGroup
	if err := errors.Join(checkGUID("tenantID", tenantID), checkGUID("groupID", groupID)); err != nil {
		return directory.Group{}, err
	}
	actx, err := r.dirAuth(ctx, tenantID, cred)
	if err != nil {
		return directory.Group{}, err
	}
	var answer struct {
		ID          string `json:"id"`
		DisplayName string `json:"displayName"`
	}
	cfg := &groups.GroupItemRequestBuilderGetRequestConfiguration{
		QueryParameters: &groups.GroupItemRequestBuilderGetQueryParameters{Select: []string{"id", "displayName"}},
		Options:         []abs.RequestOption{decodeInto(&answer)},
	}
	if _, err := r.client.Groups().ByGroupId(groupID).Get(actx, cfg); err != nil {
		return directory.Group{}, r.dirFault(ctx, op, cred, err)
	}
	if answer.ID == "" {
		return directory.Group{}, fault.Permanent(&Error{Op: op, Status: 200, msg: "the answer holds no id"})
	}
	return directory.Group{ID: answer.ID, DisplayName: answer.DisplayName}, nil
}

// GroupMembers implements directory.Graph: GET /groups/{id}/members/microsoft.graph.user
// ?$select=id,userPrincipalName,displayName&$top={top} (the OData cast leaves out
// members that are not users), paged as SearchUsers.
func (r *Reader) GroupMembers(ctx context.Context, tenantID string, cred presence.Credential, groupID string, top int, page string) ([]directory.User, string, error) {
	const op = opGroupMembers
	if err := errors.Join(checkGUID("tenantID", tenantID), checkGUID("groupID", groupID),
		checkTop(top), checkPageToken(page)); err != nil {
		return nil, "", err
	}
	actx, err := r.dirAuth(ctx, tenantID, cred)
	if err != nil {
		return nil, "", err
	}
	top32 := int32(top)
	var answer userPage
	cfg := &groups.ItemMembersGraphUserRequestBuilderGetRequestConfiguration{
		QueryParameters: &groups.ItemMembersGraphUserRequestBuilderGetQueryParameters{Select: userSelect, Top: &top32},
		Options:         []abs.RequestOption{decodeInto(&answer)},
	}
	b := r.client.Groups().ByGroupId(groupID).Members().GraphUser()
	if page != "" {
		ri, err := b.ToGetRequestInformation(actx, cfg)
		if err != nil {
			return nil, "", r.dirFault(ctx, op, cred, err)
		}
		raw, err := withSkipToken(ri, page)
		if err != nil {
			return nil, "", r.dirFault(ctx, op, cred, err)
		}
		b = b.WithUrl(raw)
		cfg.QueryParameters = nil
	}
	if _, err := b.Get(actx, cfg); err != nil {
		return nil, "", r.dirFault(ctx, op, cred, err)
	}
	return r.userPageResult(op, answer)
}

// userPageResult turns a page of users into the answer and the next page token.
func (r *Reader) userPageResult(op string, p userPage) ([]directory.User, string, error) {
	out := make([]directory.User, 0, len(p.Value))
	for _, u := range p.Value {
		if u.ID != "" {
			out = append(out, u.user())
		}
	}
	if p.NextLink == "" {
		return out, "", nil
	}
	next := skipToken(p.NextLink)
	if next == "" || checkPageToken(next) != nil {
		return nil, "", fault.Permanent(&Error{Op: op, Status: 200, msg: "the nextLink holds no usable $skiptoken"})
	}
	return out, next, nil
}

// skipToken is the $skiptoken value of a nextLink ("" when none). Graph spells the
// parameter $skiptoken; the comparison ignores case and a percent-encoded '$'.
func skipToken(link string) string {
	u, err := url.Parse(link)
	if err != nil {
		return ""
	}
	for k, v := range u.Query() {
		if strings.EqualFold(k, "$skiptoken") && len(v) == 1 {
			return v[0]
		}
	}
	return ""
}

// withSkipToken is the URL of ri (the first page's request, built by the SDK's
// request builder from the caller's arguments) with $skiptoken=token added.
func withSkipToken(ri *abs.RequestInformation, token string) (string, error) {
	u, err := ri.GetUri()
	if err != nil {
		return "", err
	}
	q := u.RawQuery
	if q != "" {
		q += "&"
	}
	// %20, not '+': OData reads a '+' in a query value literally.
	u.RawQuery = q + "%24skiptoken=" + strings.ReplaceAll(url.QueryEscape(token), "+", "%20")
	return u.String(), nil
}

// eventual is the header set of advanced directory queries.
func eventual() *abs.RequestHeaders {
	h := abs.NewRequestHeaders()
	h.Add("ConsistencyLevel", "eventual")
	return h
}

// dirAuth returns ctx carrying tenantID's credential cred. A credential that is not
// configured is *presence.AuthError, as a refused one.
func (r *Reader) dirAuth(ctx context.Context, tenantID string, cred presence.Credential) (context.Context, error) {
	auth, err := r.auth(tenantID, cred)
	if err != nil {
		return nil, err
	}
	return withAuth(ctx, auth), nil
}

// dirFault maps the error of one directory request made with cred. identifiers (a
// user, the search text, the tenant filter; also as OData literals) are redacted
// from any text kept, with the credential's secrets.
func (r *Reader) dirFault(ctx context.Context, op string, cred presence.Credential, err error, identifiers ...string) error {
	if status, msg, ok := refused(ctx, err); ok {
		switch status {
		case 404:
			return &Error{Op: op, Status: status, msg: msg + ": not in the directory", cause: fault.ErrNotFound}
		case 401, 403:
			// Graph answers 403 Authorization_RequestDenied both for a missing
			// permission (no consent) and for an object the principal may not read
			// (a hidden-membership group); neither says which. Both are the
			// credential's limits: the caller's next credential may read it.
			return &presence.AuthError{Code: "HTTP" + strconv.Itoa(status),
				Message: "Graph refused the credential for " + op + ": " + msg +
					"; check the directory permissions (User.Read.All, GroupMember.Read.All) consented for the account or app"}
		}
		return fault.Permanent(&Error{Op: op, Status: status, msg: msg})
	}
	secrets := append(r.secrets(cred, ""), identifiers...)
	for _, id := range identifiers {
		if id != "" {
			secrets = append(secrets, odataString(id), strings.Trim(odataString(id), "'"))
		}
	}
	return r.classify(ctx, op, err, secrets...)
}

// odataString is s as an OData string literal: quoted, with ' doubled.
func odataString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func checkGUID(field, s string) error {
	if s == "" {
		return fault.Invalid(field, "required")
	}
	if !tenant.IsGUID(s) {
		return fault.Invalid(field, "must be a GUID")
	}
	return nil
}

// checkUser accepts an object id or a UPN: local@domain, printable, no spaces,
// at most maxUPN characters. The rule names no value.
func checkUser(s string) error {
	if s == "" {
		return fault.Invalid("user", "required")
	}
	if tenant.IsGUID(s) {
		return nil
	}
	at := strings.LastIndexByte(s, '@')
	if len(s) > maxUPN || at <= 0 || at == len(s)-1 || hasSpaceOrControl(s) || !utf8.ValidString(s) {
		return fault.Invalid("user", "must be an object id (GUID) or a UPN (name@domain, at most 256 characters, no spaces)")
	}
	return nil
}

// checkSearch refuses search text that could break out of its quoted $search
// clause ('"', '\'), control characters, and text over maxSearch characters.
func checkSearch(q string) error {
	if !utf8.ValidString(q) || utf8.RuneCountInString(q) > maxSearch {
		return fault.Invalid("search", "must be at most "+strconv.Itoa(maxSearch)+" characters")
	}
	for _, c := range q {
		if c == '"' || c == '\\' || c < ' ' || c == 0x7f {
			return fault.Invalid("search", `must not contain " or \ or control characters`)
		}
	}
	return nil
}

// checkFilter accepts an OData $filter fragment whose string literals are closed
// and whose parentheses balance outside them, so that it cannot close the
// parenthesis it is put in ("(ours) and (filter)") and widen the query.
func checkFilter(f string) error {
	if f == "" {
		return nil
	}
	bad := fault.Invalid("filter", "must be an OData $filter fragment of at most "+strconv.Itoa(maxFilter)+
		" characters with closed quotes and balanced parentheses")
	if len(f) > maxFilter || !utf8.ValidString(f) || strings.TrimSpace(f) == "" {
		return bad
	}
	depth, inString := 0, false
	for i := 0; i < len(f); i++ {
		c := f[i]
		if c < ' ' || c == 0x7f {
			return bad
		}
		switch {
		case inString:
			if c == '\'' {
				if i+1 < len(f) && f[i+1] == '\'' {
					i++
				} else {
					inString = false
				}
			}
		case c == '\'':
			inString = true
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth < 0 {
				return bad
			}
		}
	}
	if inString || depth != 0 {
		return bad
	}
	return nil
}

func checkTop(top int) error {
	if top < 1 || top > directory.MaxTop {
		return fault.Invalid("top", "must be 1.."+strconv.Itoa(directory.MaxTop))
	}
	return nil
}

// checkPageToken accepts "" or printable ASCII without spaces, as Graph's
// $skiptoken values are; the token is escaped into the rebuilt request anyway.
func checkPageToken(p string) error {
	if len(p) > maxPageToken {
		return fault.Invalid("page", "must be a page token of this API")
	}
	for i := 0; i < len(p); i++ {
		if p[i] <= ' ' || p[i] >= 0x7f {
			return fault.Invalid("page", "must be a page token of this API")
		}
	}
	return nil
}
