package routing_test

import (
	"context"
	"testing"

	"github.com/teamscc/teamscc/shared/routing"
)

// A due outbound task is routed like an inbound call: it waits, the kick offers it to
// an eligible agent; a phone number needs the service's PSTN licence; a replay
// creates nothing new.
func TestOutboundDueIsRoutedLikeAnInboundCall(t *testing.T) {
	f := newFixture(t, 2, routing.Service{ID: "sales", Type: routing.TeamsBased},
		routing.Service{ID: "ivr", Type: routing.None})
	ctx := context.Background()
	in := routing.OutboundDue{TenantID: tid, ServiceID: "sales", TaskID: "ob-t1", Priority: routing.High,
		Call: routing.OutboundCall{Customer: "+41441234567", PSTN: true}}
	if _, err := f.engine.OutboundDue(ctx, in); !isField(err) {
		t.Fatalf("a number without a PSTN licence = %v; want a field error", err)
	}
	in.Call = routing.OutboundCall{Customer: "jane@contoso.com", DirectInviteUPN: true}
	task, err := f.engine.OutboundDue(ctx, in)
	if err != nil || task.State != routing.Waiting || task.Outbound == nil || !task.Outbound.DirectInviteUPN || task.Priority != routing.High {
		t.Fatalf("task = %+v %v", task, err)
	}
	again, err := f.engine.OutboundDue(ctx, in)
	if err != nil || again.ID != task.ID || !again.Created.Equal(task.Created) {
		t.Fatalf("replay = %+v %v", again, err)
	}
	if r := f.kick(t, "sales"); r.Offered != 1 {
		t.Fatalf("kick = %+v; want the outbound task offered", r)
	}
	in.ServiceID = "ivr"
	if _, err := f.engine.OutboundDue(ctx, in); !isField(err) {
		t.Fatalf("a service of type None = %v", err)
	}
}
