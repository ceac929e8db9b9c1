package calls

import (
	"strings"
	"testing"
	"time"
)

func TestLegsAreNumberedAndOldOnesDropped(t *testing.T) {
	var x Call
	at := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	for i := 0; i < MaxLegs; i++ {
		l := x.addLeg(Leg{AgentID: "a", State: LegEnded, At: at})
		if l.N != i {
			t.Fatalf("leg %d numbered %d", i, l.N)
		}
	}
	x.Legs[1].State, x.Legs[1].CallID = LegCancelled, "unconfirmed" // may still be up at the platform
	l := x.addLeg(Leg{AgentID: "b", State: LegDialing})
	if l.N != MaxLegs || x.LegBase != 1 || len(x.Legs) != MaxLegs || x.leg(0) != nil || x.leg(1).CallID != "unconfirmed" {
		t.Fatalf("after one more: base %d, %d legs, new leg %d", x.LegBase, len(x.Legs), l.N)
	}
	if got := x.leg(MaxLegs); got == nil || got.AgentID != "b" {
		t.Fatalf("leg(%d) = %+v", MaxLegs, got)
	}
	if x.leg(-1) != nil || x.leg(MaxLegs+1) != nil {
		t.Fatal("legs out of range")
	}
}

func TestNextAtIsTheEarliestDeadline(t *testing.T) {
	at := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	x := Call{Phase: PhaseQueued, GraphID: "g", AnsweredAt: at, KeepAliveAt: at.Add(30 * time.Minute), Due: at.Add(10 * time.Minute),
		Legs: []Leg{{State: LegRinging, Deadline: at.Add(35 * time.Second)}, {State: LegEnded, Deadline: at.Add(time.Second)}}}
	x.reschedule(at)
	if !x.NextAt.Equal(at.Add(35 * time.Second)) {
		t.Fatalf("NextAt %v", x.NextAt)
	}
	x.Legs[0].State = LegEnded
	x.reschedule(at)
	if !x.NextAt.Equal(at.Add(10 * time.Minute)) {
		t.Fatalf("NextAt %v", x.NextAt)
	}
	x.end(at, "CallerHungUp")
	x.reschedule(at)
	if !x.NextAt.IsZero() {
		t.Fatalf("an ended call with nothing up is due at %v", x.NextAt)
	}
	x.Legs[0].State, x.Legs[0].CallID, x.Legs[0].Deadline = LegCancelled, "leg", at.Add(15*time.Second)
	x.reschedule(at)
	if !x.NextAt.Equal(at.Add(15 * time.Second)) {
		t.Fatalf("an ended call whose hung-up leg is not confirmed: NextAt %v", x.NextAt)
	}
}

func TestTransferTargetsAreChecked(t *testing.T) {
	for _, c := range []struct {
		to    TransferTo
		field string
	}{
		{TransferTo{}, "service"},
		{TransferTo{Service: "billing", Phone: "+4930123456"}, "service"},
		{TransferTo{Service: "sales"}, "service"},
		{TransferTo{Service: "a/b"}, "service"},
		{TransferTo{Phone: "0301234567"}, "phone"},
		{TransferTo{Phone: "+49 30 12x"}, "phone"},
		{TransferTo{Service: "billing"}, ""},
		{TransferTo{Phone: "+49 30 1234567"}, ""},
	} {
		err := c.to.validate("sales")
		if (c.field == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.field)) {
			t.Errorf("%+v: %v; want field %q", c.to, err, c.field)
		}
	}
	if p := transferTarget(" tel:+1 555 555 0177"); p != (Party{Kind: Phone, ID: "+15555550177"}) {
		t.Errorf("phone target: %+v", p)
	}
	if p := transferTarget("8A34A46B-3D17-4ADC-8DCE-DC4E7D572698"); p != (Party{Kind: User, ID: "8a34a46b-3d17-4adc-8dce-dc4e7d572698"}) {
		t.Errorf("user target: %+v", p)
	}
}
