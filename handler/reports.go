package main

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/funchost"
	"github.com/teamscc/teamscc/shared/userstate"
)

// reports serves the tenant's reports.
type reports struct {
	store userstate.Store
	now   func() time.Time
}

// Limits of the user-state report.
const (
	defaultReportSpan = 24 * time.Hour
	maxReportSpan     = 92 * 24 * time.Hour
)

// userStateRow is one record as the report shows it. End and DurationSeconds are null
// while the state still holds.
type userStateRow struct {
	AgentID         string         `json:"agentId"`
	Kind            userstate.Kind `json:"kind"`
	Value           string         `json:"value"`
	Detail          string         `json:"detail"`
	Start           time.Time      `json:"start"`
	End             *time.Time     `json:"end"`
	DurationSeconds *float64       `json:"durationSeconds"`
	Open            bool           `json:"open"`
}

// userStates is GET /api/tenants/{tenantId}/reports/user-states: the records that
// overlap [from, to) (RFC 3339; default the last 24 hours, at most 92 days), in start
// order, as an OData-style page ({"value": [...], "@odata.nextLink": ...}) that Power
// BI's OData feed follows. $filter takes agentId/kind/value eq '…' joined by and; $top
// 1..1000 (default 1000); $skiptoken comes from the nextLink. Partners see agent ids
// masked unless the tenant allows them.
func (rp *reports) userStates(w http.ResponseWriter, r *http.Request) {
	call := adminFrom(r.Context())
	q, err := parseUserStateQuery(r.URL.Query(), rp.now())
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	recs, next, err := rp.store.ListUserStates(r.Context(), call.tenant.ID, q)
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	rows := make([]userStateRow, len(recs))
	for i, rec := range recs {
		rows[i] = userStateRow{AgentID: call.mask.User(rec.AgentID), Kind: rec.Kind, Value: rec.Value, Detail: rec.Detail,
			Start: rec.Start, Open: rec.Open()}
		if !rec.Open() {
			end, secs := rec.End, rec.End.Sub(rec.Start).Seconds()
			rows[i].End, rows[i].DurationSeconds = &end, &secs
		}
	}
	out := map[string]any{"value": rows, "trackingEnabled": call.tenant.Privacy.TrackUserStates}
	if next != "" {
		v := r.URL.Query()
		v.Set("from", q.From.Format(time.RFC3339Nano))
		v.Set("to", q.To.Format(time.RFC3339Nano))
		v.Set("$skiptoken", base64.RawURLEncoding.EncodeToString([]byte(next)))
		out["@odata.nextLink"] = baseURL(r) + r.URL.Path + "?" + v.Encode()
	}
	funchost.WriteJSON(w, http.StatusOK, out)
}

func parseUserStateQuery(v url.Values, now time.Time) (userstate.Query, error) {
	var q userstate.Query
	for name, dst := range map[string]*time.Time{"from": &q.From, "to": &q.To} {
		if s := v.Get(name); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return q, fault.Invalid(name, "must be an RFC 3339 time")
			}
			*dst = t.UTC()
		}
	}
	switch {
	case q.To.IsZero() && q.From.IsZero():
		q.To = now.UTC()
		q.From = q.To.Add(-defaultReportSpan)
	case q.To.IsZero():
		q.To = q.From.Add(defaultReportSpan)
	case q.From.IsZero():
		q.From = q.To.Add(-defaultReportSpan)
	}
	if !q.From.Before(q.To) {
		return q, fault.Invalid("to", "must be after from")
	}
	if q.To.Sub(q.From) > maxReportSpan {
		return q, fault.Invalid("to", "must be at most 92 days after from")
	}
	if s := v.Get("$top"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > userstate.MaxTop {
			return q, fault.Invalid("$top", "must be a whole number 1..1000")
		}
		q.Top = n
	}
	if err := userstate.ParseFilter(v.Get("$filter"), &q); err != nil {
		return q, err
	}
	if s := v.Get("$skiptoken"); s != "" {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || strings.Count(string(b), "|") != 2 {
			return q, fault.Invalid("$skiptoken", "must be the value from @odata.nextLink")
		}
		q.After = string(b)
	}
	return q, nil
}

// baseURL is the scheme and host the caller used: the front end's forwarding headers
// when present, else https (plain http only for a loopback host: the local runner).
func baseURL(r *http.Request) string {
	host := r.Header.Get("X-Forwarded-Host")
	if host == "" {
		host = r.Host
	}
	scheme := r.Header.Get("X-Forwarded-Proto")
	if scheme != "http" && scheme != "https" {
		scheme = "https"
		if h := strings.Split(host, ":")[0]; h == "127.0.0.1" || h == "localhost" || h == "[::1]" {
			scheme = "http"
		}
	}
	return scheme + "://" + host
}
