package inmem_test

import (
	"testing"

	"github.com/teamscc/teamscc/shared/inmem"
	"github.com/teamscc/teamscc/shared/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Stores {
		s := inmem.New()
		return storetest.Stores{Tenants: s, Secrets: s, Presences: s, Parked: s}
	})
}
