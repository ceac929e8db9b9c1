package inmem

import (
	"testing"

	"github.com/teamscc/teamscc/shared/directory"
	"github.com/teamscc/teamscc/shared/storetest"
)

func TestDirectoryConformance(t *testing.T) {
	storetest.Directory(t, func(t *testing.T) directory.Store { return New() })
}
