package inmem_test

import (
	"testing"

	"github.com/teamscc/teamscc/shared/inmem"
	"github.com/teamscc/teamscc/shared/storetest"
)

func TestUserStateConformance(t *testing.T) {
	storetest.RunUserStates(t, func(*testing.T) storetest.UserStateStores { return inmem.New() })
}
