package main

import (
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"slices"
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

// userStates is GET /api/tenants/{tenantId}/reports/user-states, the UserStates entity
// set of the reports' OData service (reportsService, reportsMetadata): the records that
// overlap [from, to) (RFC 3339; default the last 24 hours, at most 92 days), in start
// order, as an OData JSON page ({"@odata.context", "value": [...], "@odata.nextLink"})
// that Power BI's OData feed reads and follows. $filter takes agentId/kind/value eq '…'
// joined by and; $select names properties; $top caps the whole result (the next links
// carry what is left of it); a page holds at most 1000 records, fewer when the caller
// prefers (Prefer: odata.maxpagesize=N); $skiptoken comes from the nextLink. Options
// the feed does not implement ($skip, $orderby other than start, $count, $expand, …)
// answer 501 naming the option rather than being ignored. Partners see agent ids masked
// unless the tenant allows them.
func (rp *reports) userStates(w http.ResponseWriter, r *http.Request) {
	call := adminFrom(r.Context())
	q, opts, err := parseUserStateQuery(r.URL.Query(), r.Header, rp.now())
	if err != nil {
		writeFeedError(w, r, err)
		return
	}
	var recs []userstate.Record
	next := ""
	if q.Top > 0 {
		if recs, next, err = rp.store.ListUserStates(r.Context(), call.tenant.ID, q); err != nil {
			funchost.WriteError(w, r, err)
			return
		}
	}
	rows := make([]any, len(recs))
	for i, rec := range recs {
		row := userStateRow{AgentID: call.mask.User(rec.AgentID), Kind: rec.Kind, Value: rec.Value, Detail: rec.Detail,
			Start: rec.Start, Open: rec.Open()}
		if !rec.Open() {
			end, secs := rec.End, rec.End.Sub(rec.Start).Seconds()
			row.End, row.DurationSeconds = &end, &secs
		}
		rows[i] = opts.project(row)
	}
	root := path.Dir(r.URL.Path) // the service root: …/reports
	out := feedPage{Context: baseURL(r) + root + "/$metadata#" + userStatesSet + opts.contextSelect(),
		TrackingEnabled: call.tenant.Privacy.TrackUserStates, Value: rows}
	left := opts.top - len(recs) // what $top still allows after this page
	if next != "" && (opts.top < 0 || left > 0) {
		v := r.URL.Query()
		v.Set("from", q.From.Format(time.RFC3339Nano))
		v.Set("to", q.To.Format(time.RFC3339Nano))
		v.Set("$skiptoken", base64.RawURLEncoding.EncodeToString([]byte(next)))
		if opts.top >= 0 {
			v.Set("$top", strconv.Itoa(left))
		}
		out.NextLink = baseURL(r) + r.URL.Path + "?" + v.Encode()
	}
	if opts.maxPage > 0 {
		w.Header().Set("Preference-Applied", "odata.maxpagesize="+strconv.Itoa(opts.maxPage))
	}
	writeOData(w, http.StatusOK, out)
}

// feedPage is a page of the feed in the order OData JSON wants: the context URL first,
// the collection's annotations before its value, the next link last.
type feedPage struct {
	Context         string `json:"@odata.context"`
	TrackingEnabled bool   `json:"@TeamsCC.trackingEnabled"` // trackingAnnotation
	Value           []any  `json:"value"`
	NextLink        string `json:"@odata.nextLink,omitempty"`
}

// The OData names of the reports' service: its schema namespace, entity container and
// the user-state entity set, type and instance annotation. The entity set's URL stays
// user-states (an OData name may not hold '-'); the service document maps the two.
const (
	odataNamespace     = "TeamsCC"
	userStatesSet      = "UserStates"
	userStatesURL      = "user-states"
	trackingAnnotation = "@" + odataNamespace + ".trackingEnabled"
)

// userStateProps are the properties of a report row, in the order of userStateRow,
// with their EDM types, nullability and value (the $metadata document and $select use
// them).
var userStateProps = []struct {
	name, edm string
	nullable  bool
	get       func(userStateRow) any
}{
	{"agentId", "Edm.String", false, func(r userStateRow) any { return r.AgentID }},
	{"kind", "Edm.String", false, func(r userStateRow) any { return r.Kind }},
	{"value", "Edm.String", false, func(r userStateRow) any { return r.Value }},
	{"detail", "Edm.String", false, func(r userStateRow) any { return r.Detail }},
	{"start", "Edm.DateTimeOffset", false, func(r userStateRow) any { return r.Start }},
	{"end", "Edm.DateTimeOffset", true, func(r userStateRow) any { return r.End }},
	{"durationSeconds", "Edm.Double", true, func(r userStateRow) any { return r.DurationSeconds }},
	{"open", "Edm.Boolean", false, func(r userStateRow) any { return r.Open }},
}

// feedOptions are the OData options of a feed request beyond the store's query.
type feedOptions struct {
	top     int      // $top: records in all pages together; -1 = no limit
	maxPage int      // Prefer: odata.maxpagesize (0: not asked)
	selects []string // $select: properties to answer; nil = all
}

// project is row with only the selected properties.
func (o feedOptions) project(row userStateRow) any {
	if o.selects == nil {
		return row
	}
	out := make(map[string]any, len(o.selects))
	for _, p := range userStateProps {
		if slices.Contains(o.selects, p.name) {
			out[p.name] = p.get(row)
		}
	}
	return out
}

// contextSelect is the select list of the context URL: "(agentId,kind)" or "".
func (o feedOptions) contextSelect() string {
	if o.selects == nil {
		return ""
	}
	return "(" + strings.Join(o.selects, ",") + ")"
}

// errNotImplemented marks a system query option the feed does not implement: OData
// says such a request fails with 501 rather than being answered as if it were absent.
var errNotImplemented = errors.New("not implemented")

// writeFeedError answers err: 501 naming the option for errNotImplemented, else as
// WriteError does.
func writeFeedError(w http.ResponseWriter, r *http.Request, err error) {
	var fe *fault.FieldError
	if errors.Is(err, errNotImplemented) && errors.As(err, &fe) {
		funchost.WriteJSON(w, http.StatusNotImplemented, map[string]any{"error": map[string]string{
			"code": "not_implemented", "field": fe.Field, "rule": fe.Rule, "message": fe.Error()}})
		return
	}
	funchost.WriteError(w, r, err)
}

// notImplemented is a FieldError for option that also matches errNotImplemented.
func notImplemented(option, rule string) error {
	return fmt.Errorf("%w: %w", errNotImplemented, fault.Invalid(option, rule))
}

// writeOData answers v as OData JSON (minimal metadata, OData-Version 4.0).
func writeOData(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		funchost.WriteJSON(w, http.StatusInternalServerError, map[string]any{"error": map[string]string{"code": "internal", "message": "internal error"}})
		return
	}
	w.Header().Set("Content-Type", "application/json;odata.metadata=minimal;charset=utf-8")
	w.Header().Set("OData-Version", "4.0")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// reportsService is GET /api/tenants/{tenantId}/reports: the OData service document of
// the reports, naming the entity set and its URL relative to this root.
func (rp *reports) reportsService(w http.ResponseWriter, r *http.Request) {
	root := strings.TrimSuffix(r.URL.Path, "/")
	writeOData(w, http.StatusOK, map[string]any{"@odata.context": baseURL(r) + root + "/$metadata",
		"value": []map[string]string{{"name": userStatesSet, "kind": "EntitySet", "url": userStatesURL}}})
}

// reportsMetadata is GET /api/tenants/{tenantId}/reports/$metadata: the CSDL document
// describing the entity set, its properties and what the feed supports (Capabilities
// vocabulary), so an OData client (Power BI) types the columns and folds only the
// query options the feed implements.
func (rp *reports) reportsMetadata(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/xml;charset=utf-8")
	w.Header().Set("OData-Version", "4.0")
	_, _ = io.WriteString(w, reportsCSDL)
}

// reportsCSDL is the $metadata document (built once from userStateProps).
var reportsCSDL = func() string {
	var b strings.Builder
	b.WriteString(xml.Header)
	b.WriteString(`<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">` + "\n")
	b.WriteString(`  <edmx:Reference Uri="https://oasis-tcs.github.io/odata-vocabularies/vocabularies/Org.OData.Capabilities.V1.xml">` + "\n")
	b.WriteString(`    <edmx:Include Namespace="Org.OData.Capabilities.V1" Alias="Capabilities"/>` + "\n  </edmx:Reference>\n")
	b.WriteString(`  <edmx:DataServices>` + "\n")
	b.WriteString(`    <Schema Namespace="` + odataNamespace + `" xmlns="http://docs.oasis-open.org/odata/ns/edm">` + "\n")
	b.WriteString(`      <EntityType Name="UserState">` + "\n")
	b.WriteString(`        <Key><PropertyRef Name="agentId"/><PropertyRef Name="kind"/><PropertyRef Name="start"/></Key>` + "\n")
	for _, p := range userStateProps {
		fmt.Fprintf(&b, "        <Property Name=%q Type=%q Nullable=%q/>\n", p.name, p.edm, strconv.FormatBool(p.nullable))
	}
	b.WriteString(`      </EntityType>` + "\n")
	b.WriteString(`      <Term Name="trackingEnabled" Type="Edm.Boolean" AppliesTo="EntitySet"/>` + "\n")
	b.WriteString(`      <EntityContainer Name="Reports">` + "\n")
	b.WriteString(`        <EntitySet Name="` + userStatesSet + `" EntityType="` + odataNamespace + `.UserState">` + "\n")
	b.WriteString(`          <Annotation Term="Capabilities.TopSupported" Bool="true"/>` + "\n")
	b.WriteString(`          <Annotation Term="Capabilities.SkipSupported" Bool="false"/>` + "\n")
	for _, term := range []string{"CountRestrictions Countable", "SortRestrictions Sortable", "ExpandRestrictions Expandable",
		"SearchRestrictions Searchable"} {
		t, prop, _ := strings.Cut(term, " ")
		fmt.Fprintf(&b, "          <Annotation Term=\"Capabilities.%s\"><Record><PropertyValue Property=%q Bool=\"false\"/></Record></Annotation>\n", t, prop)
	}
	b.WriteString(`          <Annotation Term="Capabilities.FilterRestrictions"><Record>` + "\n")
	b.WriteString(`            <PropertyValue Property="NonFilterableProperties"><Collection>`)
	for _, p := range userStateProps {
		if !filterable[p.name] {
			b.WriteString("<PropertyPath>" + p.name + "</PropertyPath>")
		}
	}
	b.WriteString("</Collection></PropertyValue>\n          </Record></Annotation>\n")
	b.WriteString(`          <Annotation Term="Capabilities.FilterFunctions"><Collection><String>eq</String><String>and</String></Collection></Annotation>` + "\n")
	b.WriteString("        </EntitySet>\n      </EntityContainer>\n    </Schema>\n  </edmx:DataServices>\n</edmx:Edmx>\n")
	return b.String()
}()

// filterable are the properties $filter takes (userstate.ParseFilter).
var filterable = map[string]bool{"agentId": true, "kind": true, "value": true}

// feedUnsupported are the system query options the feed does not implement, with
// why (OData: 501 rather than an answer that ignores them).
var feedUnsupported = map[string]string{
	"$skip":    "not supported: page with @odata.nextLink",
	"$count":   "not supported",
	"$expand":  "not supported: the entity has no navigation properties",
	"$search":  "not supported: use $filter",
	"$apply":   "not supported",
	"$compute": "not supported",
	"$levels":  "not supported",
}

// parseUserStateQuery reads a feed request: the time window, $filter, $select, $top,
// $orderby, $skiptoken and the Prefer header's odata.maxpagesize.
func parseUserStateQuery(v url.Values, h http.Header, now time.Time) (userstate.Query, feedOptions, error) {
	q, o := userstate.Query{}, feedOptions{top: -1}
	for name, dst := range map[string]*time.Time{"from": &q.From, "to": &q.To} {
		if s := v.Get(name); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return q, o, fault.Invalid(name, "must be an RFC 3339 time")
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
		return q, o, fault.Invalid("to", "must be after from")
	}
	if q.To.Sub(q.From) > maxReportSpan {
		return q, o, fault.Invalid("to", "must be at most 92 days after from")
	}
	for name := range v {
		if rule, ok := feedUnsupported[name]; ok && !(name == "$count" && v.Get(name) == "false") {
			return q, o, notImplemented(name, rule)
		}
	}
	if s := v.Get("$format"); s != "" && s != "json" && !strings.HasPrefix(s, "application/json") {
		return q, o, notImplemented("$format", "only json")
	}
	if s := strings.TrimSpace(v.Get("$orderby")); s != "" && s != "start" && s != "start asc" {
		return q, o, notImplemented("$orderby", "records come in start order; other orders are not supported")
	}
	if s := v.Get("$top"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return q, o, fault.Invalid("$top", "must be a whole number 0 or more")
		}
		o.top = n
	}
	q.Top = userstate.MaxTop
	if n, ok := maxPageSize(h); ok {
		o.maxPage = min(n, userstate.MaxTop)
		q.Top = o.maxPage
	}
	if o.top >= 0 {
		q.Top = min(q.Top, o.top)
	}
	if s := strings.TrimSpace(v.Get("$select")); s != "" && s != "*" {
		var known []string
		for _, p := range userStateProps {
			known = append(known, p.name)
		}
		o.selects = []string{}
		for _, p := range strings.Split(s, ",") {
			p = strings.TrimSpace(p)
			if !slices.Contains(known, p) {
				return q, o, fault.Invalid("$select", "unknown property "+strconv.Quote(p)+" ("+strings.Join(known, ", ")+")")
			}
			if !slices.Contains(o.selects, p) {
				o.selects = append(o.selects, p)
			}
		}
	}
	if err := userstate.ParseFilter(v.Get("$filter"), &q); err != nil {
		return q, o, err
	}
	if s := v.Get("$skiptoken"); s != "" {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || strings.Count(string(b), "|") != 2 {
			return q, o, fault.Invalid("$skiptoken", "must be the value from @odata.nextLink")
		}
		q.After = string(b)
	}
	return q, o, nil
}

// maxPageSize reads odata.maxpagesize=N (N ≥ 1) from the Prefer headers.
func maxPageSize(h http.Header) (int, bool) {
	for _, line := range h.Values("Prefer") {
		for _, pref := range strings.Split(line, ",") {
			name, val, ok := strings.Cut(strings.TrimSpace(pref), "=")
			if !ok || !strings.EqualFold(strings.TrimSpace(name), "odata.maxpagesize") {
				continue
			}
			if n, err := strconv.Atoi(strings.Trim(strings.TrimSpace(val), `"`)); err == nil && n >= 1 {
				return n, true
			}
		}
	}
	return 0, false
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
