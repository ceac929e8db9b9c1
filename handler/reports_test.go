package main

import (
	"encoding/json"
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
	NextLink        string `json:"@odata.nextLink"`
	TrackingEnabled bool   `json:"trackingEnabled"`
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

func (a *callsApp) userStates(t *testing.T, query string) userStatePage {
	t.Helper()
	status, b, _ := a.do(t, "GET", "/api/tenants/"+simulate.ContosoID+"/reports/user-states?"+query, "")
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

	// Paging with $top=1 follows @odata.nextLink through the same records.
	all := a.userStates(t, "")
	var paged int
	q := "$top=1"
	for range 200 {
		p := a.userStates(t, q)
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
		"$top=0":            "$top",
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
