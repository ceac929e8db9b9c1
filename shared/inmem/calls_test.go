package inmem

import (
	"runtime"
	"testing"
	"time"
	"weak"

	"github.com/teamscc/teamscc/shared/calls"
	"github.com/teamscc/teamscc/shared/storetest"
)

func TestCallsConformance(t *testing.T) {
	storetest.Calls(t, func(t *testing.T) calls.Store { return New() })
}

// A Store's calls are kept beside it (callTables) and dropped once the Store is
// collected, so stores made and forgotten (tests, local runs) do not pile up.
func TestCallsGoWithTheirStore(t *testing.T) {
	s := New()
	if _, err := s.CreateCall(t.Context(), calls.Call{TenantID: "t", ID: "c", Phase: calls.PhaseQueued}); err != nil {
		t.Fatal(err)
	}
	k := weak.Make(s)
	if _, ok := callTables.Load(k); !ok {
		t.Fatal("the store's calls are not in callTables")
	}
	s = nil
	for i := 0; i < 200; i++ {
		runtime.GC()
		if _, ok := callTables.Load(k); !ok {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the calls of a collected Store are still kept")
}
