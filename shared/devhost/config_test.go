package devhost

import (
	"reflect"
	"strings"
	"testing"
)

func settings(m map[string]string) func(string) string {
	return func(name string) string { return m[name] }
}

func TestNewResolvesAppSettingReferences(t *testing.T) {
	root := writeApp(t, forwardingHostJSON, map[string]string{
		"PresenceRefresh": timerFunction("%PresenceRefreshSchedule%"),
		"RouteCall":       queueFunction("%CallsQueue%", true),
		"Health":          httpFunction("tenants/{tenantId}/%HealthRoute%", "get"),
	})
	h, err := New(Options{AppRoot: root, HandlerURL: "http://127.0.0.1:1", Setting: settings(map[string]string{
		"PresenceRefreshSchedule": "0 */5 * * * *",
		"CallsQueue":              "calls",
		"HealthRoute":             "presence/health",
	})})
	if err != nil {
		t.Fatal(err)
	}
	want := []Function{
		{Name: "Health", Trigger: HTTPTrigger, Binding: "req", Route: "tenants/{tenantId}/presence/health", Methods: []string{"GET"}, AuthLevel: "function"},
		{Name: "PresenceRefresh", Trigger: TimerTrigger, Binding: "myTimer", Schedule: "0 */5 * * * *"},
		{Name: "RouteCall", Trigger: ServiceBusTrigger, Binding: "msg", Queue: "calls", Connection: "ServiceBus", Sessions: true},
	}
	if got := h.Functions(); !reflect.DeepEqual(got, want) {
		t.Errorf("Functions() =\n%+v\nwant\n%+v", got, want)
	}
}

func TestNewReportsHostJSONSettingsWithDefaults(t *testing.T) {
	fns := map[string]string{"Tick": timerFunction("0 * * * * *")}
	h, err := New(Options{AppRoot: writeApp(t, forwardingHostJSON, fns), HandlerURL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	want := HostConfig{ExecutablePath: "handler", ForwardHTTP: true, RoutePrefix: "api", MaxConcurrentCalls: 16, MaxConcurrentSessions: 8}
	if got := h.HostConfig(); got != want {
		t.Errorf("defaults: got %+v, want %+v", got, want)
	}

	custom := `{"customHandler":{"description":{"defaultExecutablePath":"bin/handler"},"enableForwardingHttpRequest":true},
		"extensions":{"serviceBus":{"maxConcurrentCalls":4,"maxConcurrentSessions":2},"http":{"routePrefix":""}}}`
	h, err = New(Options{AppRoot: writeApp(t, custom, fns), HandlerURL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	want = HostConfig{ExecutablePath: "bin/handler", ForwardHTTP: true, RoutePrefix: "", MaxConcurrentCalls: 4, MaxConcurrentSessions: 2}
	if got := h.HostConfig(); got != want {
		t.Errorf("custom: got %+v, want %+v", got, want)
	}
}

func TestNewFailsWhenAReferencedSettingIsMissing(t *testing.T) {
	root := writeApp(t, forwardingHostJSON, map[string]string{"PresenceRefresh": timerFunction("%PresenceRefreshSchedule%")})
	_, err := New(Options{AppRoot: root, HandlerURL: "http://127.0.0.1:1", Setting: settings(nil)})
	if err == nil {
		t.Fatal("New succeeded with a missing setting")
	}
	for _, want := range []string{"functions/PresenceRefresh/function.json", "bindings[0].schedule", "PresenceRefreshSchedule"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func TestNewRejectsInvalidAppsNamingFileAndField(t *testing.T) {
	tests := []struct {
		name, hostJSON, function string
		want                     []string
	}{
		{"unknown binding type", forwardingHostJSON,
			`{"bindings":[{"name":"b","type":"blobTrigger","direction":"in"}]}`,
			[]string{"functions/F/function.json", "bindings[0].type", "blobTrigger"}},
		{"bad schedule", forwardingHostJSON, timerFunction("0 0 25 * * *"),
			[]string{"functions/F/function.json", "bindings[0].schedule"}},
		{"missing queueName", forwardingHostJSON,
			`{"bindings":[{"name":"msg","type":"serviceBusTrigger","direction":"in","topicName":"t"}]}`,
			[]string{"functions/F/function.json", "bindings[0].queueName"}},
		{"no trigger", forwardingHostJSON,
			`{"bindings":[{"name":"res","type":"http","direction":"out"}]}`,
			[]string{"functions/F/function.json", "no trigger"}},
		{"httpTrigger without http output", forwardingHostJSON,
			`{"bindings":[{"name":"req","type":"httpTrigger","direction":"in"}]}`,
			[]string{"functions/F/function.json", "http output"}},
		{"http function without forwarding", `{"customHandler":{"description":{"defaultExecutablePath":"handler"}}}`,
			httpFunction("x"),
			[]string{"host.json", "enableForwardingHttpRequest"}},
		{"bad maxConcurrentCalls", `{"extensions":{"serviceBus":{"maxConcurrentCalls":0}}}`, timerFunction("0 * * * * *"),
			[]string{"host.json", "maxConcurrentCalls"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := writeApp(t, tt.hostJSON, map[string]string{"F": tt.function})
			_, err := New(Options{AppRoot: root, HandlerURL: "http://127.0.0.1:1"})
			if err == nil {
				t.Fatal("New succeeded")
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
		})
	}
}

func TestNewRejectsTwoFunctionsOnOneQueue(t *testing.T) {
	root := writeApp(t, forwardingHostJSON, map[string]string{"A": queueFunction("calls", false), "B": queueFunction("Calls", false)})
	if _, err := New(Options{AppRoot: root, HandlerURL: "http://127.0.0.1:1"}); err == nil {
		t.Fatal("New succeeded")
	}
}
