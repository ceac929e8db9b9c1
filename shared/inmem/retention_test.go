package inmem_test

import (
	"testing"

	"github.com/teamscc/teamscc/shared/inmem"
	"github.com/teamscc/teamscc/shared/storetest"
)

func TestRetentionConformance(t *testing.T) {
	storetest.RunRetention(t, func(*testing.T) storetest.RetentionStores { return inmem.New() })
}
