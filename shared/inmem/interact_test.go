package inmem_test

import (
	"testing"

	"github.com/teamscc/teamscc/shared/inmem"
	"github.com/teamscc/teamscc/shared/interact"
	"github.com/teamscc/teamscc/shared/storetest"
)

func TestInteractConformance(t *testing.T) {
	storetest.RunInteract(t, func(t *testing.T) interact.Store { return inmem.New() })
}
