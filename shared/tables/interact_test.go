package tables

import (
	"testing"

	"github.com/teamscc/teamscc/shared/interact"
	"github.com/teamscc/teamscc/shared/storetest"
)

// The Interact conformance suite against Azurite, each case on its own tables.
func TestInteractConformance(t *testing.T) {
	needAzurite(t)
	storetest.RunInteract(t, func(t *testing.T) interact.Store { return openAzurite(t) })
}
