package inmem_test

import (
	"testing"

	"github.com/teamscc/teamscc/shared/audit"
	"github.com/teamscc/teamscc/shared/inmem"
	"github.com/teamscc/teamscc/shared/storetest"
)

func TestAuditConformance(t *testing.T) {
	storetest.RunAudit(t, func(*testing.T) audit.Store { return inmem.New() })
}
