package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/calls"
	"github.com/teamscc/teamscc/shared/graph"
	"github.com/teamscc/teamscc/shared/simulate"
)

// Every notification delivered twice changes nothing twice: the same requests reach
// the platform as with single deliveries, and the call ends connected to one agent.
func TestDuplicateNotificationsChangeNothingTwice(t *testing.T) {
	run := func(dup bool) ([]string, calls.Call) {
		a := newCallsApp(t, graph.CallingOptions{Duplicate: dup})
		id := a.fake.PlaceCall(simulate.ContosoID, caller, salesLine)
		a.settle(t)
		must(t, a.fake.FinishPrompt(id))
		a.settle(t)
		_, leg := a.ringingLeg(t, simulate.ContosoID, id)
		must(t, a.fake.Decline(leg))
		a.settle(t)
		_, leg = a.ringingLeg(t, simulate.ContosoID, id)
		must(t, a.fake.Answer(leg))
		a.settle(t)
		must(t, a.fake.HangUp(id, caller))
		a.settle(t)
		return a.ops(), a.call(t, simulate.ContosoID, id)
	}
	once, x1 := run(false)
	twice, x2 := run(true)
	equalLines(t, "requests with every notification twice", twice, once)
	if x2.Phase != calls.PhaseEnded || x2.EndReason != x1.EndReason || len(x2.Legs) != len(x1.Legs) || len(x2.Steps) != len(x1.Steps) {
		t.Fatalf("with duplicates: %+v\nwithout: %+v", x2, x1)
	}
}

// Crashes and lost notifications: the reconciler finishes what is overdue.
func TestTheReconcilerRepairsWhatWasLost(t *testing.T) {
	t.Run("the established notification is lost", func(t *testing.T) {
		a := newCallsApp(t, graph.CallingOptions{})
		a.fake.DropNotifications(func(d graph.Delivery) bool { return d.Kind == "state" && d.Detail == "established" })
		id := a.fake.PlaceCall(simulate.ContosoID, caller, salesLine)
		a.settle(t)
		if x := a.call(t, simulate.ContosoID, id); x.Phase != calls.PhaseAnswering {
			t.Fatalf("without the notification: %+v", x)
		}
		a.fake.DropNotifications(nil)
		a.advance(t, calls.AnswerGrace+time.Second)
		a.reconcile(t)
		if v, _ := a.fake.CallView(id); v.Playing != prompt("greeting") {
			t.Fatalf("after the reconciler the caller hears %q", v.Playing)
		}
	})
	t.Run("the end of the greeting is lost", func(t *testing.T) {
		a := newCallsApp(t, graph.CallingOptions{})
		a.fake.DropNotifications(func(d graph.Delivery) bool { return d.Kind == "operation" })
		id := a.fake.PlaceCall(simulate.ContosoID, caller, salesLine)
		a.settle(t)
		must(t, a.fake.FinishPrompt(id))
		a.advance(t, calls.PromptWatchdog+time.Second)
		a.reconcile(t)
		if x := a.call(t, simulate.ContosoID, id); x.Phase != calls.PhaseQueued || len(x.Legs) != 1 {
			t.Fatalf("after the reconciler: %+v", x)
		}
	})
	t.Run("the agent cannot be joined", func(t *testing.T) {
		a := newCallsApp(t, graph.CallingOptions{})
		id := a.fake.PlaceCall(simulate.ContosoID, caller, salesLine)
		a.settle(t)
		must(t, a.fake.FinishPrompt(id))
		a.settle(t)
		first, leg := a.ringingLeg(t, simulate.ContosoID, id)
		// The platform refuses the invite (a crash of the join as far as the caller
		// is concerned): the caller must not wait with nobody.
		a.fake.FailNext(4, http.StatusServiceUnavailable, "")
		must(t, a.fake.Answer(leg))
		a.advance(t, calls.RetrySoon+time.Second)
		a.reconcile(t)
		x := a.call(t, simulate.ContosoID, id)
		if x.Phase != calls.PhaseQueued {
			t.Fatalf("after a failed join: %+v", x)
		}
		next, _ := a.ringingLeg(t, simulate.ContosoID, id)
		if next == first {
			t.Fatal("the agent who could not be joined rang again at once")
		}
		if st := a.agent(t, simulate.ContosoID, first); st.Hold != nil || st.InACW(a.clk.Now()) {
			t.Fatalf("the dropped agent is still held: %+v", st)
		}
	})
	t.Run("a leg left ringing for a call that is gone", func(t *testing.T) {
		a := newCallsApp(t, graph.CallingOptions{})
		id := a.fake.PlaceCall(simulate.ContosoID, caller, salesLine)
		a.settle(t)
		must(t, a.fake.FinishPrompt(id))
		a.settle(t)
		agent, leg := a.ringingLeg(t, simulate.ContosoID, id)
		// The caller hangs up; the hang-up of the leg fails (both tries), as if the
		// instance had crashed before sending it.
		a.fake.FailNext(2, http.StatusServiceUnavailable, "")
		must(t, a.fake.HangUp(id, caller))
		a.settle(t)
		if got := a.fake.Ringing(calls.Party{Kind: calls.User, ID: agent}); !slices.Contains(got, leg) {
			t.Fatal("the failed hang-up should have left the leg ringing")
		}
		a.advance(t, 20*time.Second+calls.LegGrace+time.Second)
		a.reconcile(t)
		if got := a.fake.Ringing(calls.Party{Kind: calls.User, ID: agent}); slices.Contains(got, leg) {
			t.Fatal("the agent's Teams still rings for a call that is gone")
		}
	})
	t.Run("a long call is kept alive", func(t *testing.T) {
		a := newCallsApp(t, graph.CallingOptions{})
		id := a.fake.PlaceCall(simulate.ContosoID, caller, salesLine)
		a.settle(t)
		a.connect(t, id)
		a.fake.ResetCallRequests()
		a.advance(t, calls.KeepAliveEvery+time.Second)
		a.reconcile(t)
		if ops := a.ops(); !slices.Equal(ops, []string{"keepAlive"}) {
			t.Fatalf("after 30 minutes: %v; want one keepAlive", ops)
		}
		a.reconcile(t)
		if ops := a.ops(); len(ops) != 1 {
			t.Fatalf("a second run within the period: %v", ops)
		}
	})
}

// The webhook accepts only the calling platform's tokens for this bot: no token, a
// malformed one, alg none, HS256 signed with the public key, an expired one, another
// audience or issuer, an unknown key are all refused with 401, and nothing is stored
// or answered. A body from the Graph docs, properly signed, is accepted.
func TestTheWebhookRefusesForgedTokens(t *testing.T) {
	a := newCallsApp(t, graph.CallingOptions{})
	tid := simulate.ContosoID
	body, err := os.ReadFile(filepath.Join("..", "shared", "teams", "testdata", "incoming_created.json"))
	if err != nil {
		t.Fatal(err)
	}
	const callID = "421f0c00-83a1-4b3a-a9b0-5d4e2c1f7a10"
	b64 := base64.RawURLEncoding
	jwt := func(header, claims map[string]any, sign func(string) []byte) string {
		h, _ := json.Marshal(header)
		c, _ := json.Marshal(claims)
		s := b64.EncodeToString(h) + "." + b64.EncodeToString(c)
		return s + "." + b64.EncodeToString(sign(s))
	}
	good := map[string]any{"iss": graph.CallingIssuer, "aud": testBotAppID, "tid": tid, "iat": time.Now().Add(-time.Minute).Unix(),
		"nbf": time.Now().Add(-time.Minute).Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	pubDER, _ := x509.MarshalPKIXPublicKey(a.fake.CallingPublicKey())
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	edit := func(k string, v any) func(map[string]any) { return func(c map[string]any) { c[k] = v } }
	for name, authz := range map[string]string{
		"no token":     "",
		"not a bearer": "Basic " + b64.EncodeToString([]byte("bot:secret")),
		"malformed":    "Bearer not.a.jwt",
		"alg none":     "Bearer " + jwt(map[string]any{"alg": "none", "kid": graph.CallingKeyID}, good, func(string) []byte { return nil }),
		"HS256 with the public key": "Bearer " + jwt(map[string]any{"alg": "HS256", "kid": graph.CallingKeyID}, good, func(s string) []byte {
			m := hmac.New(sha256.New, pubDER)
			m.Write([]byte(s))
			return m.Sum(nil)
		}),
		"expired":              "Bearer " + a.fake.CallingToken(tid, edit("exp", time.Now().Add(-time.Hour).Unix())),
		"wrong audience":       "Bearer " + a.fake.CallingToken(tid, edit("aud", "another-bot")),
		"wrong issuer":         "Bearer " + a.fake.CallingToken(tid, edit("iss", "https://login.microsoftonline.com/"+tid+"/v2.0")),
		"no tenant":            "Bearer " + a.fake.CallingToken(tid, func(c map[string]any) { delete(c, "tid") }),
		"unknown key":          "Bearer " + graph.SignRS256(other, "someone-elses", good),
		"known kid, other key": "Bearer " + graph.SignRS256(other, graph.CallingKeyID, good),
	} {
		status, resp := post(t, a.base+"/api/teams/notifications", string(body), "Authorization", authz)
		if status != http.StatusUnauthorized || strings.Contains(resp, "eyJ") {
			t.Errorf("%s: %d %s; want 401 without echoing the token", name, status, resp)
		}
	}
	if _, err := a.store.GetCall(context.Background(), tid, callID); err == nil || len(a.fake.CallRequests()) != 0 {
		t.Fatal("a refused notification stored a call or reached the platform")
	}
	a.fake.AdoptCall(tid, callID, calls.Party{Kind: calls.Phone, ID: "+15555550123"},
		calls.Party{Kind: calls.ApplicationInstance, ID: demoSalesResourceAccount})
	status, resp := post(t, a.base+"/api/teams/notifications", string(body), "Authorization", "Bearer "+a.fake.CallingToken(tid, nil))
	if status != http.StatusAccepted {
		t.Fatalf("a properly signed notification from the Graph docs: %d %s", status, resp)
	}
	a.settle(t)
	if x, err := a.store.GetCall(context.Background(), tid, callID); err != nil || x.ServiceID != "sales" || x.Phase != calls.PhaseGreeting {
		t.Fatalf("the Graph-docs incoming call: %+v %v", x, err)
	}
	if rq := a.fake.CallRequests(); len(rq) != 2 || rq[0].Op != "answer" || rq[1].Op != "playPrompt" {
		t.Fatalf("requests: %+v", rq)
	}
}

// The first callback of an incoming call may come in the legacy format: it is
// answered 204 and the Graph-format notification that follows is handled.
func TestTheLegacyFirstCallbackIsAnswered204(t *testing.T) {
	a := newCallsApp(t, graph.CallingOptions{LegacyFirst: true})
	id := a.fake.PlaceCall(simulate.ContosoID, caller, salesLine)
	a.settle(t)
	ds := a.fake.Deliveries()
	if len(ds) < 2 || ds[0].Kind != "legacy" || ds[0].Status != http.StatusNoContent || ds[1].Kind != "incoming" || ds[1].Status != http.StatusAccepted {
		t.Fatalf("deliveries: %+v", ds)
	}
	if x := a.call(t, simulate.ContosoID, id); x.Phase != calls.PhaseGreeting {
		t.Fatalf("call %+v", x)
	}
}

// slowCalls delays the first write of every call.
type slowCalls struct {
	calls.Store
	delay time.Duration
	fail  bool
	n     atomic.Int64
}

func (s *slowCalls) CreateCall(ctx context.Context, c calls.Call) (calls.Call, error) {
	s.n.Add(1)
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return calls.Call{}, ctx.Err()
	}
	if s.fail {
		return calls.Call{}, context.DeadlineExceeded
	}
	return s.Store.CreateCall(ctx, c)
}

// The answer does not wait for a slow store: a first write that takes 6 s does not
// delay the answer past the store budget, and the call goes on once the write lands.
// A store that never answers in time leaves no caller with an app that does not
// know the call: the call is hung up.
func TestTheAnswerDoesNotWaitForASlowStore(t *testing.T) {
	t.Run("slow", func(t *testing.T) {
		a := newCallsAppTuned(t, func(d *deps) {
			d.calls = &slowCalls{Store: d.calls, delay: 1500 * time.Millisecond}
			d.tuneCalls = func(o *calls.Options) { o.StoreBudget = 300 * time.Millisecond }
		})
		id := a.fake.PlaceCall(simulate.ContosoID, caller, salesLine)
		a.settle(t)
		rq := a.fake.CallRequests()
		if len(rq) == 0 || rq[0].Op != "answer" || rq[0].Elapsed > time.Second {
			t.Fatalf("answer: %+v; want it after the 300 ms budget, before the 1.5 s write", rq)
		}
		if x := a.call(t, simulate.ContosoID, id); x.Phase != calls.PhaseGreeting {
			t.Fatalf("once the write landed the call goes on: %+v", x)
		}
	})
	t.Run("stalled", func(t *testing.T) {
		a := newCallsAppTuned(t, func(d *deps) {
			d.calls = &slowCalls{Store: d.calls, delay: 400 * time.Millisecond, fail: true}
			d.tuneCalls = func(o *calls.Options) { o.StoreBudget, o.BackgroundWrite = 100*time.Millisecond, time.Second }
		})
		id := a.fake.PlaceCall(simulate.ContosoID, caller, salesLine)
		a.settle(t)
		waitFor(t, "the unstored call to be hung up", func() bool {
			v, _ := a.fake.CallView(id)
			return v.State == "terminated"
		})
		if ops := a.ops(); len(ops) == 0 || ops[0] != "answer" || ops[len(ops)-1] != "hangUp" {
			t.Fatalf("requests: %v", ops)
		}
	})
}

// An answer the platform refuses for a moment (503 to both tries) is sent again when
// the platform redelivers the incoming call: the caller is answered at once, not
// left for the reconciler.
func TestAFailedAnswerIsSentAgainOnRedelivery(t *testing.T) {
	a := newCallsApp(t, graph.CallingOptions{})
	a.fake.FailNext(2, http.StatusServiceUnavailable, "")
	id := a.fake.PlaceCall(simulate.ContosoID, caller, salesLine)
	a.settle(t)
	if x := a.call(t, simulate.ContosoID, id); x.Phase == calls.PhaseAnswering {
		t.Fatalf("after the redelivery the call is still waiting for its answer: %+v", x)
	}
	if v, _ := a.fake.CallView(id); v.Playing != prompt("greeting") {
		t.Fatalf("the caller hears %q, want the greeting", v.Playing)
	}
}
