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

const (
	serviceRA = "0d1e2f3a-4b5c-4d6e-8f70-81a2b3c4d5e6" // the service's resource account
	agentID   = "550fae72-d251-43ec-868c-373732c2704f"
	callIn    = "421f0c00-83a1-4b3a-a9b0-5d4e2c1f7a10" // the customer's call to the service
	callOffer = "7e1d0500-d4bf-4224-8b19-1581168d3201" // an offer leg to the agent
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// want is the part of a call Event a fixture pins.
type want struct {
	kind      teams.Kind
	call      string
	change    teams.ChangeType
	state     string
	direction string
	source    teams.Party
	target    teams.Party
	agent     string
	result    teams.Result
	sequence  string
}

func TestParseCallFixtures(t *testing.T) {
	ra := teams.Party{Kind: teams.PartyApplicationInstance, ID: serviceRA}
	tests := []struct {
		fixture string
		want    []want
	}{
		{"incoming_created.json", []want{{kind: teams.KindIncoming, call: callIn, change: teams.Created, state: "incoming",
			direction: "incoming", source: teams.Party{Kind: teams.PartyPhone, ID: "+15555550123"}, target: ra, sequence: `W/"5445"`}}},
		{"offer_ringing.json", []want{{kind: teams.KindRinging, call: callOffer, change: teams.Created, state: "establishing",
			direction: "outgoing", source: ra, target: teams.Party{Kind: teams.PartyUser, ID: agentID}, agent: agentID}}},
		{"established_agent.json", []want{{kind: teams.KindAnswered, call: callOffer, change: teams.Updated, state: "established",
			direction: "outgoing", target: teams.Party{Kind: teams.PartyUser, ID: agentID}, agent: agentID, sequence: `W/"5447"`}}},
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
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			got, err := teams.Parse(fixture(t, tt.fixture))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d events, want %d: %+v", len(got), len(tt.want), got)
			}
			for i, e := range got {
				g := want{e.Kind, e.CallID, e.ChangeType, e.State, e.Direction, e.Source, e.Target, e.Agent, e.Result, e.Sequence}
				if g != tt.want[i] {
					t.Errorf("event %d\n got %+v\nwant %+v", i, g, tt.want[i])
				}
				if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(e.Key()) {
					t.Errorf("Key() = %q", e.Key())
				}
			}
		})
	}
}

func TestParseRostersAndOperations(t *testing.T) {
	ev, err := teams.Parse(fixture(t, "roster_connected.json"))
	if err != nil || len(ev) != 1 || ev[0].Kind != teams.KindRoster || ev[0].CallID != callIn || len(ev[0].Participants) != 3 {
		t.Fatalf("roster: %+v %v", ev, err)
	}
	if p := ev[0].Participants; p[0].Party.Kind != teams.PartyApplicationInstance || p[1].Party != (teams.Party{Kind: teams.PartyPhone, ID: "+15555550123"}) ||
		p[2].Party != (teams.Party{Kind: teams.PartyUser, ID: agentID}) || p[2].ID != "3a2b1c0d-1111-4aaa-8bbb-000000000003" {
		t.Fatalf("participants: %+v", p)
	}

	ev, err = teams.Parse(fixture(t, "prompt_completed.json"))
	if err != nil || len(ev) != 1 || ev[0].Kind != teams.KindOperation {
		t.Fatalf("prompt: %+v %v", ev, err)
	}
	op := ev[0].Operation
	if op.Type != "playPromptOperation" || op.ClientContext != "music:3" || !op.Succeeded() || op.ID == "" || ev[0].CallID != callIn {
		t.Fatalf("operation: %+v", op)
	}

	ev, err = teams.Parse(fixture(t, "invite_failed.json"))
	if err != nil || len(ev) != 1 {
		t.Fatalf("invite: %+v %v", ev, err)
	}
	if op := ev[0].Operation; op.Type != "inviteParticipantsOperation" || op.Succeeded() || !op.Done() || op.Result.Code != 408 || op.ClientContext != "invite:0" {
		t.Fatalf("failed invite: %+v", op)
	}

	// A lifecycle notification is skipped; the participants update and the end are read.
	ev, err = teams.Parse(fixture(t, "lifecycle_and_participants.json"))
	if err != nil || len(ev) != 2 || ev[0].Kind != teams.KindRoster || ev[1].Kind != teams.KindEnded {
		t.Fatalf("lifecycle and participants: %+v %v", ev, err)
	}
}

func TestParseRecognisesTheLegacyFormat(t *testing.T) {
	if _, err := teams.Parse(fixture(t, "legacy_incoming.json")); !errors.Is(err, teams.ErrLegacy) {
		t.Fatalf("legacy body: %v; want ErrLegacy", err)
	}
}

func TestParseNamesWhatIsMalformed(t *testing.T) {
	tests := []struct {
		name  string
		body  []byte
		field string
		rule  string // substring
	}{
		{"not JSON", fixture(t, "malformed_not_json.txt"), "body", "JSON object"},
		{"a JSON array", []byte(`[]`), "body", "JSON object"},
		{"value an object", fixture(t, "malformed_value_object.json"), "value", "required"},
		{"value empty", []byte(`{"value":[]}`), "value", "at least one"},
		{"third item without any call id", fixture(t, "malformed_missing_id.json"), "value[2].resourceData.id", "required"},
		{"state of the wrong type", fixture(t, "malformed_state_type.json"), "value[0].resourceData.state", "must be a string"},
		{"result code of the wrong type", fixture(t, "malformed_code_type.json"), "value[0].resourceData.resultInfo.code", "must be a number"},
		{"unknown changeType", fixture(t, "malformed_change_type.json"), "value[0].changeType", "created, updated or deleted"},
		{"changeType missing", []byte(`{"value":[{"resourceUrl":"/communications/calls/a","resourceData":{"state":"incoming"}}]}`), "value[0].changeType", "required"},
		{"resourceData missing", fixture(t, "malformed_no_resource_data.json"), "value[0].resourceData", "required"},
		{"resourceData not an object", []byte(`{"value":[{"changeType":"updated","resourceUrl":"/communications/calls/a","resourceData":"established"}]}`), "value[0].resourceData", "must be an object"},
		{"state missing on an update", []byte(`{"value":[{"changeType":"updated","resourceUrl":"/communications/calls/a","resourceData":{}}]}`), "value[0].resourceData.state", "required"},
		{"targets not an array", []byte(`{"value":[{"changeType":"created","resourceUrl":"/communications/calls/a","resourceData":{"state":"incoming","targets":{}}}]}`), "value[0].resourceData.targets", "must be an array"},
		{"a call id with a slash", []byte(`{"value":[{"changeType":"updated","resourceUrl":"/communications/calls/a","resourceData":{"id":"a/b","state":"established"}}]}`), "value[0].resourceData.id", "must not contain"},
		{"roster not an array", []byte(`{"value":[{"changeType":"updated","resourceUrl":"/communications/calls/a/participants","resourceData":"x"}]}`), "value[0].resourceData", "array of participants"},
		{"operation without status", []byte(`{"value":[{"changeType":"deleted","resourceUrl":"/communications/calls/a/operations/b","resourceData":{"@odata.type":"#microsoft.graph.playPromptOperation"}}]}`), "value[0].resourceData.status", "required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, err := teams.Parse(tt.body)
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

func TestParseReadsTheCallIDFromWhereGraphPutsIt(t *testing.T) {
	for _, c := range []struct{ name, item, want string }{
		{"resourceData.id wins", `"resourceUrl":"/communications/calls/fromPath","resourceData":{"id":"fromData","state":"incoming"}`, "fromData"},
		{"resourceUrl", `"resourceUrl":"/communications/calls/fromUrl","resourceData":{"state":"incoming"}`, "fromUrl"},
		{"resource without a leading slash", `"resource":"communications/calls/fromResource","resourceData":{"state":"incoming"}`, "fromResource"},
		{"OData key syntax", `"resource":"communications/calls('quoted')","resourceData":{"state":"incoming"}`, "quoted"},
		{"@odata.id", `"resourceData":{"@odata.id":"/communications/calls/fromODataID","state":"incoming"}`, "fromODataID"},
	} {
		ev, err := teams.Parse([]byte(`{"value":[{"changeType":"created",` + c.item + `}]}`))
		if err != nil || len(ev) != 1 || ev[0].CallID != c.want {
			t.Errorf("%s: %+v %v; want call %s", c.name, ev, err, c.want)
		}
	}
}

func TestEventsLogNoIdentifier(t *testing.T) {
	ev, err := teams.Parse(fixture(t, "roster_connected.json"))
	if err != nil {
		t.Fatal(err)
	}
	in, _ := teams.Parse(fixture(t, "incoming_created.json"))
	for _, e := range append(ev, in...) {
		s := e.LogValue().String()
		for _, id := range []string{callIn, agentID, serviceRA, "+15555550123"} {
			if strings.Contains(s, id) {
				t.Errorf("log value %s holds %s", s, id)
			}
		}
	}
}

func BenchmarkParseIncomingCall(b *testing.B) {
	body := fixture(b, "incoming_created.json")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := teams.Parse(body); err != nil {
			b.Fatal(err)
		}
	}
}
