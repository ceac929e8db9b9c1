package devhost

import (
	"encoding/json"
	"net/http"
	"reflect"
	"sync/atomic"
	"testing"
	"time"
)

func TestTimerEnvelopeMatchesTheHost(t *testing.T) {
	handler := newFakeHandler(t, nil)
	clock := newFakeClock("2026-01-01T00:00:30Z")
	startHost(t, Options{
		AppRoot: writeApp(t, forwardingHostJSON, map[string]string{
			"Tick": timerFunction("0 * * * * *"),    // once a minute: ScheduleStatus present
			"Fast": timerFunction("*/15 * * * * *"), // more often: ScheduleStatus null
		}),
		HandlerURL: handler.URL,
		Now:        clock.Now,
	})
	clock.Advance(30 * time.Second) // 00:01:00: both are due

	got := map[string]invocation{}
	for len(got) < 2 {
		inv := handler.next(t)
		got[inv.path] = inv
	}
	for path, inv := range got {
		if !guidPattern.MatchString(inv.header.Get("X-Azure-Functions-InvocationId")) {
			t.Errorf("%s: invocation id %q is not a GUID", path, inv.header.Get("X-Azure-Functions-InvocationId"))
		}
		if inv.header.Get("X-Azure-Functions-HostVersion") == "" {
			t.Errorf("%s: no X-Azure-Functions-HostVersion", path)
		}
		if len(inv.meta) != 1 || inv.meta["sys"] == nil {
			t.Errorf("%s: Metadata = %v, want only sys", path, inv.meta)
		}
		var sys struct{ MethodName, UtcNow, RandGuid string }
		if err := json.Unmarshal(inv.meta["sys"], &sys); err != nil {
			t.Fatal(err)
		}
		if "/"+sys.MethodName != path || sys.UtcNow == "" || !guidPattern.MatchString(sys.RandGuid) {
			t.Errorf("%s: sys = %+v", path, sys)
		}
	}

	tick, ok := got["/Tick"]
	if !ok {
		t.Fatalf("Tick not invoked; got %v", got)
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(tick.data["myTimer"], &data); err != nil {
		t.Fatalf("Data.myTimer = %s: %v", tick.data["myTimer"], err)
	}
	if string(data["Schedule"]) != `{"AdjustForDST":true}` || string(data["IsPastDue"]) != "false" {
		t.Errorf("Data.myTimer = %s", tick.data["myTimer"])
	}
	var status map[string]string
	if err := json.Unmarshal(data["ScheduleStatus"], &status); err != nil {
		t.Fatalf("ScheduleStatus = %s: %v", data["ScheduleStatus"], err)
	}
	want := map[string]string{"Last": "0001-01-01T00:00:00Z", "Next": "2026-01-01T00:01:00Z", "LastUpdated": "2026-01-01T00:00:30Z"}
	if !reflect.DeepEqual(status, want) {
		t.Errorf("first run ScheduleStatus = %v, want %v", status, want)
	}

	fast := got["/Fast"]
	want2 := `{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":false}`
	if string(fast.data["myTimer"]) != want2 {
		t.Errorf("sub-minute Data.myTimer = %s, want %s", fast.data["myTimer"], want2)
	}
}

func TestTimerSkipsATickWhileARunIsOutstanding(t *testing.T) {
	release := make(chan struct{})
	var running, maxRunning atomic.Int32
	handler := newFakeHandler(t, func(r *http.Request, _ invocation) int {
		n := running.Add(1)
		defer running.Add(-1)
		if n > maxRunning.Load() {
			maxRunning.Store(n)
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return http.StatusInternalServerError // a failed run is not retried either
	})
	logs := &logBuffer{}
	clock := newFakeClock("2026-01-01T00:00:00Z")
	startHost(t, Options{
		AppRoot:    writeApp(t, forwardingHostJSON, map[string]string{"Tick": timerFunction("* * * * * *")}),
		HandlerURL: handler.URL,
		Now:        clock.Now,
		Logger:     logs.logger(),
	})
	clock.Advance(time.Second)
	handler.next(t) // first run, now blocked in the handler

	eventually(t, "a skipped tick", func() bool {
		clock.Advance(time.Second)
		time.Sleep(10 * time.Millisecond)
		return logs.count("timer skipped") > 0
	})
	if n := len(handler.calls); n != 0 {
		t.Fatalf("%d more runs started while the first was outstanding", n)
	}
	close(release)
	eventually(t, "the next run after the first finished", func() bool {
		clock.Advance(time.Second)
		time.Sleep(10 * time.Millisecond)
		return len(handler.calls) > 0
	})
	if m := maxRunning.Load(); m != 1 {
		t.Errorf("%d runs of the timer at once, want 1", m)
	}
}

func TestTimerScheduleStatusRecordsTheLastRun(t *testing.T) {
	handler := newFakeHandler(t, nil)
	clock := newFakeClock("2026-01-01T00:00:30Z")
	h := startHost(t, Options{
		AppRoot:    writeApp(t, forwardingHostJSON, map[string]string{"Tick": timerFunction("0 * * * * *")}),
		HandlerURL: handler.URL,
		Now:        clock.Now,
	})
	clock.Advance(30 * time.Second)
	handler.next(t)
	eventually(t, "the first run to finish", func() bool { return !h.byName["tick"].running.Load() })
	clock.Advance(time.Minute)
	inv := handler.next(t)
	var data struct{ ScheduleStatus map[string]string }
	if err := json.Unmarshal(inv.data["myTimer"], &data); err != nil {
		t.Fatal(err)
	}
	if data.ScheduleStatus["Last"] != "2026-01-01T00:01:00Z" || data.ScheduleStatus["Next"] != "2026-01-01T00:02:00Z" {
		t.Errorf("second run ScheduleStatus = %v, want Last 00:01:00 and Next 00:02:00", data.ScheduleStatus)
	}
}
