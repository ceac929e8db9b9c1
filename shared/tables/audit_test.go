package tables

import (
	"testing"

	"github.com/teamscc/teamscc/shared/audit"
	"github.com/teamscc/teamscc/shared/storetest"
)

func TestAuditConformance(t *testing.T) {
	needAzurite(t)
	storetest.RunAudit(t, func(t *testing.T) audit.Store { return openAzurite(t) })
}
