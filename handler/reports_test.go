package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/graph"
	"github.com/teamscc/teamscc/shared/simulate"
)

type userStatePage struct {
	Value []struct {
		AgentID         string   `json:"agentId"`
		Kind            string   `json:"kind"`
		Value           string   `json:"value"`
		End             *string  `json:"end"`
		DurationSeconds *float64 `json:"durationSeconds"`
		Open            bool     `json:"open"`
	} `json:"value"`
	Context         string `json:"@odata.context"`
	NextLink        string `json:"@odata.nextLink"`
	TrackingEnabled bool   `json:"@TeamsCC.trackingEnabled"`
}

// do sends a request to the app (the local runner's admin: no token needed).
func (a *callsApp) do(t *testing.T, method, path, body string, headers ...string) (int, string, string) {
	t.Helper()
	return adminClient{t: t, base: a.base}.do(method, path, "", body, headers...)
}

func (a *callsApp) trackUserStates(t *testing.T, on bool) {
	t.Helper()
	T := "/api/tenants/" + simulate.ContosoID
	_, _, etag := a.do(t, "GET", T, "")
	if status, b, _ := a.do(t, "PATCH", T, `{"privacy":{"trackUserStates":`+strconv.FormatBool(on)+`}}`, "If-Match", etag); status != 200 {
		t.Fatalf("turn tracking %v: %d %s", on, status, b)
	}
}

func (a *callsApp) userStates(t *testing.T, query string, headers ...string) userStatePage {
	t.Helper()
	status, b, _ := a.do(t, "GET", "/api/tenants/"+simulate.ContosoID+"/reports/user-states?"+query, "", headers...)
	if status != 200 {
		t.Fatalf("report ?%s: %d %s", query, status, b)
	}
	var p userStatePage
	if err := json.Unmarshal([]byte(b), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// A call rings an agent, is answered and ends; after-call work ends early: the report
// shows each phase once, in order, and turning tracking off closes what was open.
func TestUserStateReportFollowsACallOverHTTP(t *testing.T) {
	a := newCallsApp(t, graph.CallingOptions{})
	c := "/api/tenants/" + simulate.ContosoID
	if p := a.userStates(t, ""); len(p.Value) != 0 || p.TrackingEnabled {
		t.Fatalf("tracking is off by default, yet: %+v", p)
	}
	a.trackUserStates(t, true)
	id := a.fake.PlaceCall(simulate.ContosoID, caller, salesLine)
	a.advance(t, time.Second)
	must(t, a.fake.FinishPrompt(id)) // the agent rings from here
	a.advance(t, 2*time.Second)
	agent, leg := a.ringingLeg(t, simulate.ContosoID, id)
	must(t, a.fake.Answer(leg))
	a.advance(t, 30*time.Second)
	must(t, a.fake.HangUp(id, caller))
	a.advance(t, 5*time.Second)
	if status, b, _ := a.do(t, "POST", c+"/agents/"+agent+"/acw", `{"action":"end"}`); status != 200 {
		t.Fatalf("end ACW: %d %s", status, b)
	}
	a.clk.Advance(time.Second)

	f := url.Values{"$filter": {"agentId eq '" + agent + "' and kind eq 'routing'"}}.Encode()
	p := a.userStates(t, f)
	var phases []string
	for _, r := range p.Value {
		phases = append(phases, r.Value)
		if r.AgentID != agent || r.Kind != "routing" {
			t.Fatalf("filter let through %+v", r)
		}
	}
	if got := strings.Join(phases, " "); got != "Idle Ringing Connected ACW Idle" {
		t.Fatalf("routing phases = %q; want Idle Ringing Connected ACW Idle", got)
	}
	if last := p.Value[len(p.Value)-1]; !last.Open || last.End != nil || last.DurationSeconds != nil {
		t.Fatalf("the current phase should be open with no end: %+v", last)
	}
	if first := p.Value[0]; first.Open || first.End == nil || first.DurationSeconds == nil || *first.DurationSeconds < 0 {
		t.Fatalf("a closed phase needs its end and duration: %+v", first)
	}

	// Pages of one record (Prefer: odata.maxpagesize=1) follow @odata.nextLink through
	// the same records.
	all := a.userStates(t, "")
	var paged int
	q := ""
	for range 200 {
		p := a.userStates(t, q, "Prefer", "odata.maxpagesize=1")
		if len(p.Value) > 1 {
			t.Fatalf("a page of %d records, at most 1 preferred", len(p.Value))
		}
		paged += len(p.Value)
		if p.NextLink == "" {
			break
		}
		u, err := url.Parse(p.NextLink)
		if err != nil || u.Host == "" || !strings.HasSuffix(u.Path, "/reports/user-states") {
			t.Fatalf("nextLink %q is not an absolute link to the report", p.NextLink)
		}
		q = u.RawQuery
	}
	if paged != len(all.Value) || paged < 4*5 {
		t.Fatalf("paged %d records, the full page has %d (want ≥ 20: 5 agents × 4 kinds)", paged, len(all.Value))
	}

	for query, field := range map[string]string{
		"$filter=" + url.QueryEscape("kind eq 'mood'"): "$filter",
		"$top=-1":           "$top",
		"from=yesterday":    "from",
		"$skiptoken=%21%21": "$skiptoken",
		"from=2026-01-01T00:00:00Z&to=2026-12-01T00:00:00Z": "to",
	} {
		status, b, _ := a.do(t, "GET", c+"/reports/user-states?"+query, "")
		if status != 400 || !strings.Contains(b, `"field":"`+field+`"`) {
			t.Errorf("?%s: %d %s; want 400 naming %s", query, status, b, field)
		}
	}

	a.trackUserStates(t, false)
	p = a.userStates(t, "")
	if p.TrackingEnabled || len(p.Value) != len(all.Value) {
		t.Fatalf("after turning off: tracking %v, %d records (had %d)", p.TrackingEnabled, len(p.Value), len(all.Value))
	}
	for _, r := range p.Value {
		if r.Open {
			t.Fatalf("turning tracking off left %+v open", r)
		}
	}
	// Off means off: new changes are not recorded.
	a.fake.PlaceCall(simulate.ContosoID, caller, salesLine)
	a.settle(t)
	if n := len(a.userStates(t, "").Value); n != len(all.Value) {
		t.Fatalf("records after tracking was turned off: %d, before %d", n, len(all.Value))
	}
}

// The report is an OData v4 service Power BI's OData feed can read: the service
// document names the entity set and where it is, $metadata is CSDL naming every
// property a row has, pages carry their context and follow @odata.nextLink, $top caps
// the whole result, $select projects, and an option the feed does not implement is a
// 501 naming it rather than an answer that ignores it.
func TestTheUserStateReportIsAnODataFeed(t *testing.T) {
	a := newCallsApp(t, graph.CallingOptions{})
	a.trackUserStates(t, true)
	id := a.fake.PlaceCall(simulate.ContosoID, caller, salesLine)
	a.advance(t, time.Second)
	must(t, a.fake.FinishPrompt(id))
	a.advance(t, 2*time.Second)
	_, leg := a.ringingLeg(t, simulate.ContosoID, id)
	must(t, a.fake.Answer(leg))
	a.advance(t, 10*time.Second)
	root := "/api/tenants/" + simulate.ContosoID + "/reports"

	// The service document.
	res := a.feed(t, root, "")
	if res.status != 200 || res.header.Get("OData-Version") != "4.0" {
		t.Fatalf("service document: %d, OData-Version %q", res.status, res.header.Get("OData-Version"))
	}
	var svc struct {
		Context string `json:"@odata.context"`
		Value   []struct{ Name, Kind, URL string }
	}
	if err := json.Unmarshal(res.body, &svc); err != nil || len(svc.Value) != 1 {
		t.Fatalf("service document: %v %s", err, res.body)
	}
	if e := svc.Value[0]; e.Name != "UserStates" || e.Kind != "EntitySet" || e.URL != "user-states" || !strings.HasSuffix(svc.Context, root+"/$metadata") {
		t.Fatalf("service document names %+v, context %q", svc.Value[0], svc.Context)
	}

	// $metadata: well-formed CSDL whose entity type has exactly the properties of a row.
	res = a.feed(t, root+"/$metadata", "")
	if res.status != 200 || !strings.HasPrefix(res.header.Get("Content-Type"), "application/xml") {
		t.Fatalf("$metadata: %d %s", res.status, res.header.Get("Content-Type"))
	}
	var csdl struct {
		XMLName      xml.Name `xml:"Edmx"`
		Version      string   `xml:"Version,attr"`
		DataServices struct {
			Schema struct {
				Namespace  string `xml:"Namespace,attr"`
				EntityType []struct {
					Name string `xml:"Name,attr"`
					Key  struct {
						PropertyRef []struct {
							Name string `xml:"Name,attr"`
						}
					}
					Property []struct {
						Name     string `xml:"Name,attr"`
						Type     string `xml:"Type,attr"`
						Nullable string `xml:"Nullable,attr"`
					}
				}
				EntityContainer struct {
					EntitySet []struct {
						Name       string `xml:"Name,attr"`
						EntityType string `xml:"EntityType,attr"`
					}
				}
			}
		}
	}
	if err := xml.Unmarshal(res.body, &csdl); err != nil {
		t.Fatalf("$metadata is not well-formed XML: %v\n%s", err, res.body)
	}
	sc := csdl.DataServices.Schema
	if csdl.Version != "4.0" || len(sc.EntityType) != 1 || len(sc.EntityContainer.EntitySet) != 1 ||
		sc.EntityContainer.EntitySet[0].Name != "UserStates" || sc.EntityContainer.EntitySet[0].EntityType != sc.Namespace+"."+sc.EntityType[0].Name {
		t.Fatalf("$metadata does not describe one entity set UserStates of its entity type: %s", res.body)
	}
	types := map[string]string{}
	for _, p := range sc.EntityType[0].Property {
		types[p.Name] = p.Type
	}
	for _, k := range sc.EntityType[0].Key.PropertyRef {
		if types[k.Name] == "" {
			t.Errorf("key %s is not a property", k.Name)
		}
	}
	res = a.feed(t, root+"/user-states", "")
	var page struct {
		Context string           `json:"@odata.context"`
		Value   []map[string]any `json:"value"`
	}
	if err := json.Unmarshal(res.body, &page); err != nil || len(page.Value) < 10 {
		t.Fatalf("feed: %v, %d rows", err, len(page.Value))
	}
	// OData JSON readers want the context URL first (streaming readers, Power Query's).
	if !bytes.HasPrefix(res.body, []byte(`{"@odata.context":`)) {
		t.Fatalf("the page does not start with its context: %.80s", res.body)
	}
	if page.Context != a.base+root+"/$metadata#UserStates" || res.header.Get("OData-Version") != "4.0" {
		t.Fatalf("feed context %q, OData-Version %q", page.Context, res.header.Get("OData-Version"))
	}
	edm := map[string]string{"string": "Edm.String", "bool": "Edm.Boolean", "float64": "Edm.Double"}
	for _, row := range page.Value {
		if len(row) != len(types) {
			t.Fatalf("a row has %d properties, $metadata %d: %v", len(row), len(types), row)
		}
		for name, v := range row {
			want, ok := types[name]
			if !ok {
				t.Fatalf("the feed answers %s, which $metadata does not name", name)
			}
			got := edm[fmt.Sprintf("%T", v)]
			if s, isStr := v.(string); isStr {
				if _, err := time.Parse(time.RFC3339Nano, s); err == nil && (name == "start" || name == "end") {
					got = "Edm.DateTimeOffset"
				}
			}
			if v != nil && got != want {
				t.Errorf("%s = %v (%s), $metadata says %s", name, v, got, want)
			}
		}
	}

	// $top caps the whole result across pages; the next links carry what is left.
	total := len(page.Value)
	var sizes []int
	q := "?%24top=5"
	for range 10 {
		res := a.feed(t, root+"/user-states"+q, "odata.maxpagesize=2")
		if got := res.header.Get("Preference-Applied"); got != "odata.maxpagesize=2" {
			t.Fatalf("Preference-Applied %q", got)
		}
		var p userStatePage
		if err := json.Unmarshal(res.body, &p); err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(p.Value))
		if p.NextLink == "" {
			break
		}
		u, err := url.Parse(p.NextLink)
		if err != nil || u.Path != root+"/user-states" {
			t.Fatalf("nextLink %q", p.NextLink)
		}
		q = "?" + u.RawQuery
	}
	if fmt.Sprint(sizes) != "[2 2 1]" || total < 5 {
		t.Fatalf("$top=5 in pages of 2 came as %v (of %d records)", sizes, total)
	}
	if p := a.userStates(t, "$top=0"); len(p.Value) != 0 || p.NextLink != "" {
		t.Fatalf("$top=0: %d records, next %q", len(p.Value), p.NextLink)
	}

	// $select projects, and the context says so.
	res = a.feed(t, root+"/user-states?%24select=agentId,start&%24top=3", "")
	var sel struct {
		Context string           `json:"@odata.context"`
		Value   []map[string]any `json:"value"`
	}
	if err := json.Unmarshal(res.body, &sel); err != nil || len(sel.Value) != 3 {
		t.Fatalf("$select: %v %s", err, res.body)
	}
	for _, row := range sel.Value {
		if len(row) != 2 || row["agentId"] == nil || row["start"] == nil {
			t.Fatalf("$select=agentId,start answered %v", row)
		}
	}
	if !strings.HasSuffix(sel.Context, "#UserStates(agentId,start)") {
		t.Fatalf("context %q", sel.Context)
	}

	for query, want := range map[string]struct {
		status int
		field  string
	}{
		"%24skip=10":                      {501, "$skip"},
		"%24count=true":                   {501, "$count"},
		"%24orderby=agentId":              {501, "$orderby"},
		"%24expand=agent":                 {501, "$expand"},
		"%24select=mood":                  {400, "$select"},
		"%24orderby=start&%24count=false": {200, ""},
	} {
		res := a.feed(t, root+"/user-states?"+query, "")
		if res.status != want.status || want.field != "" && !strings.Contains(string(res.body), `"field":"`+want.field+`"`) {
			t.Errorf("?%s: %d %s; want %d naming %q", query, res.status, res.body, want.status, want.field)
		}
	}
}

type feedAnswer struct {
	status int
	header http.Header
	body   []byte
}

// feed sends GET path with an optional Prefer header (the local admin: no token).
func (a *callsApp) feed(t *testing.T, path, prefer string) feedAnswer {
	t.Helper()
	req, _ := http.NewRequest("GET", a.base+path, nil)
	req.Header.Set("Accept", "application/json;odata.metadata=minimal;q=1.0,application/json;q=0.9")
	req.Header.Set("OData-MaxVersion", "4.0")
	if prefer != "" {
		req.Header.Set("Prefer", prefer)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return feedAnswer{res.StatusCode, res.Header, b}
}

// A caller without a token (Power BI's first request) gets a 401 whose challenge
// names Entra's authority, so Power BI offers "Organizational account"; a token that
// fails is invalid_token. Every admin route answers so, the feed's included.
func TestAnUnauthenticatedCallerIsToldWhereToSignIn(t *testing.T) {
	c, is := startAdmin(t)
	authority := strings.TrimSuffix(is.authority(), "/")
	root := "/api/tenants/" + tenantT + "/reports"
	for _, path := range []string{root, root + "/$metadata", root + "/user-states", "/api/tenants"} {
		for _, token := range []string{"", "not-a-token"} {
			req, _ := http.NewRequest("GET", c.base+path, nil)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			ch := res.Header.Get("WWW-Authenticate")
			if res.StatusCode != 401 || !strings.HasPrefix(ch, "Bearer ") ||
				!strings.Contains(ch, `authorization_uri="`+authority+`/common/oauth2/authorize"`) ||
				!strings.Contains(ch, `realm="`+authority+`/common"`) {
				t.Errorf("GET %s (token %q): %d, WWW-Authenticate %q", path, token, res.StatusCode, ch)
			}
			if invalid := strings.Contains(ch, `error="invalid_token"`); invalid != (token != "") {
				t.Errorf("GET %s (token %q): error=invalid_token %v in %q", path, token, invalid, ch)
			}
		}
	}
}
