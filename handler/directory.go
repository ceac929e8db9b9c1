package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/teamscc/teamscc/shared/access"
	"github.com/teamscc/teamscc/shared/directory"
	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/funchost"
)

// directoryAdmin serves the people side of administration: Team member syncs,
// adding directory users to skill-based services, directory search and group views.
// dir is nil when no Graph is configured (503 naming the setting).
type directoryAdmin struct {
	dir *directory.Directory
}

func (h *directoryAdmin) ready(w http.ResponseWriter, r *http.Request) bool {
	if h.dir == nil {
		funchost.WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"error": map[string]string{
			"code": "not_configured", "message": "the tenant directory cannot be read: set GraphClientId (and consent its directory permissions)"}})
		return false
	}
	return true
}

// writeDirectoryError maps a directory failure: no credential → 424 (the tenant has
// not consented yet), the rest as usual.
func writeDirectoryError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, directory.ErrNoCredential) {
		funchost.WriteJSON(w, http.StatusFailedDependency, map[string]any{"error": map[string]string{"code": "no_directory_access",
			"message": "no credential may read this tenant's directory: consent the app's directory permissions (see the README)"}})
		return
	}
	funchost.WriteError(w, r, err)
}

// syncMembers is POST /api/tenants/{tenantId}/services/{serviceId}/members/sync.
func (h *directoryAdmin) syncMembers(w http.ResponseWriter, r *http.Request) {
	if !h.ready(w, r) {
		return
	}
	ids, err := pathIDs(r, "tenantId", "serviceId")
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	res, err := h.dir.SyncService(r.Context(), ids[0], ids[1])
	if err != nil {
		writeDirectoryError(w, r, err)
		return
	}
	funchost.WriteJSON(w, http.StatusOK, res)
}

// addAgent is POST /api/tenants/{tenantId}/services/{serviceId}/agents {"user":"<upn or id>"}.
func (h *directoryAdmin) addAgent(w http.ResponseWriter, r *http.Request) {
	if !h.ready(w, r) {
		return
	}
	ids, err := pathIDs(r, "tenantId", "serviceId")
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	var body addAgentBody
	if err := decodeStrict(r.Body, &body); err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	a, err := h.dir.AddAgent(r.Context(), ids[0], ids[1], body.User)
	if err != nil {
		writeDirectoryError(w, r, err)
		return
	}
	m := adminFrom(r.Context()).mask
	funchost.WriteJSON(w, http.StatusOK, map[string]string{"id": m.User(a.ID), "upn": m.User(a.UPN), "displayName": m.User(a.DisplayName),
		"serviceId": ids[1]})
}

// removeAgent is DELETE /api/tenants/{tenantId}/services/{serviceId}/agents/{agentId}.
func (h *directoryAdmin) removeAgent(w http.ResponseWriter, r *http.Request) {
	if !h.ready(w, r) {
		return
	}
	ids, err := pathIDs(r, "tenantId", "serviceId", "agentId")
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	if err := h.dir.RemoveAgent(r.Context(), ids[0], ids[1], ids[2]); err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// pageQuery reads $top (default 25) and $skiptoken.
func pageQuery(r *http.Request) (int, string, error) {
	q := r.URL.Query()
	top := 25
	if v := q.Get("$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > directory.MaxTop {
			return 0, "", fault.Invalid("$top", fmt.Sprintf("must be a whole number 1..%d", directory.MaxTop))
		}
		top = n
	}
	tok := q.Get("$skiptoken")
	if len(tok) > 2048 || strings.ContainsAny(tok, " \"'\\") {
		return 0, "", fault.Invalid("$skiptoken", "must be the token of the previous page")
	}
	return top, tok, nil
}

// userView is a directory user as admins see it (masked for partners).
type userView struct {
	ID          string `json:"id"`
	UPN         string `json:"upn"`
	DisplayName string `json:"displayName"`
}

func usersView(m access.Masker, us []directory.User) []userView {
	out := make([]userView, len(us))
	for i, u := range us {
		out[i] = userView{ID: m.User(u.ID), UPN: m.User(u.UPN), DisplayName: m.User(u.DisplayName)}
	}
	return out
}

// nextLink is the link to the next page of a listing ("" on the last).
func nextLink(r *http.Request, top int, token string) string {
	if token == "" {
		return ""
	}
	q := r.URL.Query()
	q.Set("$top", strconv.Itoa(top))
	q.Set("$skiptoken", token)
	return r.URL.Path + "?" + q.Encode()
}

// pagedRead reads what a paged directory read needs: the tenant in the path, $top and
// $skiptoken; false when it already answered (not configured, bad input).
func (h *directoryAdmin) pagedRead(w http.ResponseWriter, r *http.Request) (tenantID string, top int, page string, ok bool) {
	if !h.ready(w, r) {
		return "", 0, "", false
	}
	ids, err := pathIDs(r, "tenantId")
	if err == nil {
		top, page, err = pageQuery(r)
	}
	if err != nil {
		funchost.WriteError(w, r, err)
		return "", 0, "", false
	}
	return ids[0], top, page, true
}

// writePage answers a page of users under key (with the other fields of out), with
// the link to the next page when there is one.
func writePage(w http.ResponseWriter, r *http.Request, out map[string]any, key string, us []directory.User, top int, next string) {
	out[key] = usersView(adminFrom(r.Context()).mask, us)
	if l := nextLink(r, top, next); l != "" {
		out["@odata.nextLink"] = l
	}
	funchost.WriteJSON(w, http.StatusOK, out)
}

// searchUsers is GET /api/tenants/{tenantId}/directory/users?search=&$top=&$skiptoken=.
func (h *directoryAdmin) searchUsers(w http.ResponseWriter, r *http.Request) {
	tenantID, top, page, ok := h.pagedRead(w, r)
	if !ok {
		return
	}
	us, next, err := h.dir.SearchUsers(r.Context(), tenantID, r.URL.Query().Get("search"), top, page)
	if err != nil {
		writeDirectoryError(w, r, err)
		return
	}
	writePage(w, r, map[string]any{}, "value", us, top, next)
}

// group is GET /api/tenants/{tenantId}/groups/{groupId}?$top=&$skiptoken=: a group
// of the tenant's directory with a page of its members.
func (h *directoryAdmin) group(w http.ResponseWriter, r *http.Request) {
	tenantID, top, page, ok := h.pagedRead(w, r)
	if !ok {
		return
	}
	g, us, next, err := h.dir.GroupMembers(r.Context(), tenantID, strings.ToLower(r.PathValue("groupId")), top, page)
	if err != nil {
		writeDirectoryError(w, r, fmt.Errorf("group: %w", err))
		return
	}
	writePage(w, r, map[string]any{"id": g.ID, "displayName": g.DisplayName}, "members", us, top, next)
}

// syncAll is the DirectorySync timer.
func (h *directoryAdmin) syncAll(ctx context.Context, _ funchost.Timer) error {
	if h.dir == nil {
		return nil
	}
	res, err := h.dir.SyncAll(ctx)
	if res.Services > 0 {
		funchost.Logger(ctx).Info("teams synced", "services", res.Services, "failed", res.Failed, "added", res.Added, "removed", res.Removed)
	}
	return err
}
