package inmem

import (
	"testing"

	"github.com/teamscc/teamscc/shared/calls"
	"github.com/teamscc/teamscc/shared/storetest"
)

func TestCallsConformance(t *testing.T) {
	storetest.Calls(t, func(t *testing.T) calls.Store { return New() })
}
