package inmem_test

import (
	"testing"

	"github.com/teamscc/teamscc/shared/inmem"
	"github.com/teamscc/teamscc/shared/storetest"
)

func TestOutboundConformance(t *testing.T) {
	storetest.RunOutbound(t, func(t *testing.T) storetest.OutboundStore { return inmem.New() })
}

func BenchmarkOutboundReserveAtTheCap(b *testing.B) {
	storetest.BenchOutboundCapBoundary(b, inmem.New())
}
