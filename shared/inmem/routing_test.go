package inmem_test

import (
	"testing"

	"github.com/teamscc/teamscc/shared/inmem"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/storetest"
)

func TestRoutingConformance(t *testing.T) {
	storetest.RunRouting(t, func(t *testing.T) routing.Store { return inmem.New() })
}

func TestRosterConformance(t *testing.T) {
	storetest.RunRosters(t, func(t *testing.T) storetest.RoutingStores { return inmem.New() })
}
