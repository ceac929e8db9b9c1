package teams_test

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/teams"
)

// clientState is the expected clientState of every fixture.
const clientState = "cs-7f3e9a1c5b2d4e6f8a0b1c2d3e4f5a6b"

const (
	tenantID   = "72f988bf-0000-4000-8000-2d7cd011db47"
	serviceRA  = "0d1e2f3a-4b5c-4d6e-8f70-81a2b3c4d5e6" // the service's resource account
	agentID    = "550fae72-d251-43ec-868c-373732c2704f"
	callIn     = "421f0c00-83a1-4b3a-a9b0-5d4e2c1f7a10" // the customer's call to the service
	callOffer  = "7e1d0500-d4bf-4224-8b19-1581168d3201" // our offer leg to the agent
	callSubscr = "9a7c3b10-2e4d-4f6a-8b1c-0d2e3f4a5b6c"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// want is the part of an Event a fixture pins.
type want struct {
	kind      teams.Kind
	call      string
	change    teams.ChangeType
	state     string
	direction string
	target    teams.Party
	agent     string
	tenant    string
	result    teams.Result
	sequence  string
}

func check(t *testing.T, got teams.Event, w want) {
	t.Helper()
	g := want{got.Kind, got.CallID, got.ChangeType, got.State, got.Direction, got.Target, got.Agent, got.TenantID, got.Result, got.Sequence}
	if g != w {
		t.Errorf("event\n got %+v\nwant %+v", g, w)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(got.Key()) {
		t.Errorf("Key() = %q, want 64 hex digits", got.Key())
	}
}

func TestParseFixtures(t *testing.T) {
	ra := teams.Party{Kind: teams.PartyApplicationInstance, ID: serviceRA}
	tests := []struct {
		fixture string
		want    []want
	}{
		{"incoming_created.json", []want{{kind: teams.KindIncoming, call: callIn, change: teams.Created, state: "incoming",
			direction: "incoming", target: ra, tenant: tenantID, sequence: `W/"5445"`}}},
		{"incoming_subscription.json", []want{{kind: teams.KindIncoming, call: callSubscr, change: teams.Created, state: "incoming",
			direction: "incoming", target: teams.Party{Kind: teams.PartyPhone, ID: "+15555550100"}, tenant: tenantID}}},
		{"offer_ringing.json", []want{{kind: teams.KindRinging, call: callOffer, change: teams.Created, state: "establishing",
			direction: "outgoing", target: ra, agent: agentID, tenant: tenantID}}},
		{"established_agent.json", []want{{kind: teams.KindAnswered, call: callOffer, change: teams.Updated, state: "established",
			direction: "outgoing", agent: agentID, sequence: `W/"5447"`}}},
		{"terminated.json", []want{{kind: teams.KindEnded, call: callIn, change: teams.Deleted, state: "terminated",
			result: teams.Result{Code: 200, Subcode: 5001}, sequence: `W/"5460"`}}},
		{"declined.json", []want{{kind: teams.KindDeclined, call: callOffer, change: teams.Deleted, state: "terminated",
			result: teams.Result{Code: 603, Subcode: 10026}}}},
		{"no_answer.json", []want{{kind: teams.KindNoAnswer, call: callOffer, change: teams.Deleted, state: "terminated",
			result: teams.Result{Code: 480, Subcode: 10004}}}},
		{"transferred.json", []want{{kind: teams.KindTransferred, call: callIn, change: teams.Deleted, state: "terminated",
			result: teams.Result{TerminationReason: "AppTransferred"}}}},
		{"transfer_failed.json", []want{{kind: teams.KindTransferFailed, call: callIn, change: teams.Updated, state: "established",
			result: teams.Result{Code: 500, Subcode: 7700}}}},
		{"legacy_app_calls.json", []want{{kind: teams.KindAnswered, call: "8A934F51F25B4EE19613D4049491857B", change: teams.Updated,
			state: "established"}}},
		{"batch_two.json", []want{
			{kind: teams.KindRinging, call: callIn, change: teams.Updated, state: "establishing", sequence: `W/"5446"`},
			{kind: teams.KindAnswered, call: callIn, change: teams.Updated, state: "established", sequence: `W/"5447"`},
		}},
		// The lifecycle notification and the participants update are skipped.
		{"lifecycle_and_participants.json", []want{{kind: teams.KindEnded, call: callIn, change: teams.Deleted, state: "terminated"}}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			got, err := teams.Parse(fixture(t, tt.fixture), clientState)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d events, want %d: %+v", len(got), len(tt.want), got)
			}
			for i := range got {
				check(t, got[i], tt.want[i])
			}
		})
	}
}

func TestParseRefusesTheWholeBatchOnAnyWrongClientState(t *testing.T) {
	tests := []struct {
		name     string
		body     []byte
		expected string
	}{
		{"one wrong among good ones", fixture(t, "bad_clientstate_in_batch.json"), clientState},
		{"missing", fixture(t, "missing_clientstate.json"), clientState},
		{"right length, one byte off", fixture(t, "incoming_created.json"), clientState[:len(clientState)-1] + "c"},
		{"prefix of the expected", fixture(t, "incoming_created.json"), clientState + "x"},
		{"nothing expected", fixture(t, "incoming_created.json"), ""},
		{"clientState of the wrong type", []byte(`{"value":[{"clientState":5,"changeType":"created","resourceUrl":"/communications/calls/x","resourceData":{"state":"incoming"}}]}`), clientState},
		{"item not an object", []byte(`{"value":[1]}`), clientState},
		// Authentication comes before validation: a bad item of an unauthenticated
		// batch is not described to the caller.
		{"malformed and unauthenticated", []byte(`{"value":[{"clientState":"nope","changeType":"moved"}]}`), clientState},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, err := teams.Parse(tt.body, tt.expected)
			if !errors.Is(err, teams.ErrClientState) {
				t.Fatalf("err = %v, want ErrClientState", err)
			}
			if events != nil {
				t.Fatalf("events = %+v, want none", events)
			}
		})
	}
}

func TestParseNamesWhatIsMalformed(t *testing.T) {
	cs := `"clientState":"` + clientState + `"`
	tests := []struct {
		name  string
		body  []byte
		field string
		rule  string // substring
	}{
		{"not JSON", fixture(t, "malformed_not_json.txt"), "body", "JSON object"},
		{"a JSON array", []byte(`[]`), "body", "JSON object"},
		{"value missing", []byte(`{}`), "value", "required"},
		{"value an object", fixture(t, "malformed_value_object.json"), "value", "required"},
		{"value empty", []byte(`{"value":[]}`), "value", "at least one"},
		{"third item without any call id", fixture(t, "malformed_missing_id.json"), "value[2].resourceData.id", "required"},
		{"state of the wrong type", fixture(t, "malformed_state_type.json"), "value[0].resourceData.state", "must be a string"},
		{"result code of the wrong type", fixture(t, "malformed_code_type.json"), "value[0].resourceData.resultInfo.code", "must be a number"},
		{"unknown changeType", fixture(t, "malformed_change_type.json"), "value[0].changeType", "created, updated or deleted"},
		{"changeType missing", []byte(`{"value":[{` + cs + `,"resourceUrl":"/communications/calls/a","resourceData":{"state":"incoming"}}]}`), "value[0].changeType", "required"},
		{"resourceData missing", fixture(t, "malformed_no_resource_data.json"), "value[0].resourceData", "required"},
		{"resourceData not an object", []byte(`{"value":[{` + cs + `,"changeType":"updated","resourceUrl":"/communications/calls/a","resourceData":"established"}]}`), "value[0].resourceData", "must be an object"},
		{"state missing on an update", []byte(`{"value":[{` + cs + `,"changeType":"updated","resourceUrl":"/communications/calls/a","resourceData":{}}]}`), "value[0].resourceData.state", "required"},
		{"changeType of the wrong type", []byte(`{"value":[{` + cs + `,"changeType":1,"resourceUrl":"/communications/calls/a","resourceData":{"state":"incoming"}}]}`), "value[0].changeType", "must be a string"},
		{"targets not an array", []byte(`{"value":[{` + cs + `,"changeType":"created","resourceUrl":"/communications/calls/a","resourceData":{"state":"incoming","targets":{}}}]}`), "value[0].resourceData.targets", "must be an array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, err := teams.Parse(tt.body, clientState)
			var fe *fault.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v (%T), want *fault.FieldError", err, err)
			}
			if fe.Field != tt.field || !strings.Contains(fe.Rule, tt.rule) {
				t.Errorf("got %q: %q, want %q: …%s…", fe.Field, fe.Rule, tt.field, tt.rule)
			}
			if events != nil {
				t.Errorf("events = %+v, want none", events)
			}
		})
	}
}

func TestParseReadsCallIDFromWhereGraphPutsIt(t *testing.T) {
	tests := []struct {
		name string
		item string
		want string
	}{
		{"resourceData.id wins", `"resource":"communications/calls/fromPath","resourceData":{"id":"fromData","state":"incoming"}`, "fromData"},
		{"resourceUrl", `"resourceUrl":"/communications/calls/fromUrl","resourceData":{"state":"incoming"}`, "fromUrl"},
		{"resource without a leading slash", `"resource":"communications/calls/fromResource","resourceData":{"state":"incoming"}`, "fromResource"},
		{"OData key syntax", `"resource":"communications/calls('quoted')","resourceData":{"state":"incoming"}`, "quoted"},
		{"legacy /app/calls", `"resource":"/app/calls/legacy","resourceData":{"state":"incoming"}`, "legacy"},
		{"collection resource with @odata.id", `"resource":"communications/calls","resourceData":{"@odata.id":"/communications/calls/fromODataID","state":"incoming"}`, "fromODataID"},
		{"no resource at all, @odata.id", `"resourceData":{"@odata.id":"/communications/calls/onlyODataID","state":"incoming"}`, "onlyODataID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"value":[{"clientState":"` + clientState + `","changeType":"created",` + tt.item + `}]}`
			events, err := teams.Parse([]byte(body), clientState)
			if err != nil {
				t.Fatal(err)
			}
			if len(events) != 1 || events[0].CallID != tt.want {
				t.Fatalf("events = %+v, want one with CallID %q", events, tt.want)
			}
		})
	}
}

func TestParseSkipsWhatIsNotACall(t *testing.T) {
	items := []string{
		`"lifecycleEvent":"subscriptionRemoved"`,
		`"changeType":"updated","resourceUrl":"/communications/calls/a/participants","resourceData":[{"id":"p"}]`,
		`"changeType":"updated","resourceUrl":"/communications/calls/a/operations/b","resourceData":{"@odata.type":"#microsoft.graph.playPromptOperation","status":"completed"}`,
		`"changeType":"created","resource":"communications/callRecords/r","resourceData":{"id":"r"}`,
		`"changeType":"updated","resource":"communications/calls/a","resourceData":{"@odata.type":"#microsoft.graph.participant","id":"p"}`,
	}
	for _, item := range items {
		body := `{"value":[{"clientState":"` + clientState + `",` + item + `}]}`
		events, err := teams.Parse([]byte(body), clientState)
		if err != nil || len(events) != 0 {
			t.Errorf("%s: events %+v, err %v; want skipped", item, events, err)
		}
	}
}

func TestKeyIsStableForReplaysAndDiffersBetweenChanges(t *testing.T) {
	keys := map[string]string{} // key → fixture and index
	for _, name := range []string{"incoming_created.json", "incoming_subscription.json", "offer_ringing.json",
		"established_agent.json", "terminated.json", "declined.json", "no_answer.json", "transferred.json",
		"transfer_failed.json", "batch_two.json"} {
		body := fixture(t, name)
		first, err := teams.Parse(body, clientState)
		if err != nil {
			t.Fatal(err)
		}
		replay, err := teams.Parse(append([]byte(nil), body...), clientState)
		if err != nil {
			t.Fatal(err)
		}
		for i := range first {
			if first[i].Key() != replay[i].Key() {
				t.Errorf("%s[%d]: replay has another key", name, i)
			}
			where := name + "[" + string(rune('0'+i)) + "]"
			if prev, dup := keys[first[i].Key()]; dup {
				t.Errorf("%s and %s are different changes with the same key", prev, where)
			}
			keys[first[i].Key()] = where
		}
	}

	// Each field that makes a change different changes the key.
	base := teams.Event{CallID: "c", ChangeType: teams.Updated, State: "established", Agent: "a", Sequence: "1",
		Result: teams.Result{Code: 200, Subcode: 1, TerminationReason: "r"}}
	variants := map[string]func(e *teams.Event){
		"call":        func(e *teams.Event) { e.CallID = "d" },
		"change type": func(e *teams.Event) { e.ChangeType = teams.Deleted },
		"state":       func(e *teams.Event) { e.State = "hold" },
		"agent":       func(e *teams.Event) { e.Agent = "b" },
		"sequence":    func(e *teams.Event) { e.Sequence = "2" },
		"code":        func(e *teams.Event) { e.Result.Code = 603 },
		"subcode":     func(e *teams.Event) { e.Result.Subcode = 2 },
		"reason":      func(e *teams.Event) { e.Result.TerminationReason = "s" },
		// Field boundaries count: "c"+"ab" is not "ca"+"b".
		"shifted": func(e *teams.Event) { e.CallID, e.Agent = "cupdated", "" },
	}
	for name, change := range variants {
		e := base
		change(&e)
		if e.Key() == base.Key() {
			t.Errorf("changing the %s keeps the key", name)
		}
	}
	// What is not part of the change does not change the key.
	e := base
	e.NotificationID, e.SubscriptionID, e.TenantID = "n", "s", "t"
	e.State = "Established"
	if e.Key() != base.Key() {
		t.Error("notification id, subscription id, tenant or the state's case changed the key")
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		state  string
		change teams.ChangeType
		result string // extra resourceData members
		want   teams.Kind
	}{
		{"incoming", teams.Created, "", teams.KindIncoming},
		{"establishing", teams.Updated, "", teams.KindRinging},
		{"ringing", teams.Updated, "", teams.KindRinging},
		{"established", teams.Updated, "", teams.KindAnswered},
		{"established", teams.Updated, `,"resultInfo":{"code":200}`, teams.KindAnswered},
		{"established", teams.Updated, `,"resultInfo":{"code":500,"subcode":7000}`, teams.KindTransferFailed},
		{"hold", teams.Updated, "", teams.KindOther},
		{"transferring", teams.Updated, "", teams.KindTransferring},
		{"transferAccepted", teams.Updated, "", teams.KindTransferring},
		{"redirecting", teams.Updated, "", teams.KindTransferring},
		{"terminating", teams.Updated, "", teams.KindOther},
		{"terminated", teams.Deleted, "", teams.KindEnded},
		{"terminated", teams.Deleted, `,"resultInfo":{"code":0,"subcode":7015,"message":"GracefulTransferCompleted"}`, teams.KindTransferred},
		{"terminated", teams.Deleted, `,"resultInfo":{"code":603}`, teams.KindDeclined},
		{"terminated", teams.Deleted, `,"resultInfo":{"code":486}`, teams.KindDeclined},
		{"terminated", teams.Deleted, `,"resultInfo":{"code":408}`, teams.KindNoAnswer},
		{"terminated", teams.Deleted, `,"resultInfo":{"code":487}`, teams.KindNoAnswer},
		{"terminated", teams.Deleted, `,"resultInfo":{"code":500}`, teams.KindEnded},
		{"", teams.Deleted, "", teams.KindEnded},
		{"somethingNew", teams.Updated, "", teams.KindOther},
	}
	for _, tt := range tests {
		state := ""
		if tt.state != "" {
			state = `"state":"` + tt.state + `"`
		} else {
			state = `"direction":"incoming"`
		}
		body := `{"value":[{"clientState":"` + clientState + `","changeType":"` + string(tt.change) +
			`","resourceUrl":"/communications/calls/c","resourceData":{` + state + tt.result + `}}]}`
		events, err := teams.Parse([]byte(body), clientState)
		if err != nil {
			t.Fatalf("%s %s: %v", tt.state, tt.result, err)
		}
		if events[0].Kind != tt.want {
			t.Errorf("state %q %s: kind %q, want %q", tt.state, tt.result, events[0].Kind, tt.want)
		}
	}
}
