package main

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/calls"
	"github.com/teamscc/teamscc/shared/graph"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/simulate"
)

// pump delivers due Service Bus messages to their functions until stop is closed
// (one consumer, as a session gives one per service).
func (a *callsApp) pump(tb testing.TB, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			msgs := a.bus.due()
			if len(msgs) == 0 {
				time.Sleep(200 * time.Microsecond)
				continue
			}
			for _, b := range msgs {
				if status, body := postTB(tb, a.base+"/"+queueFunctions[b.queue], sbEnvelope(string(b.m.Body), b.m.ID, 1)); status != http.StatusOK {
					tb.Errorf("%s: %d %s", queueFunctions[b.queue], status, body)
				}
			}
		}
	}()
	return &wg
}

// BenchmarkCallsOverHTTP: whole calls through one app instance on the embedded
// store, the fake calling platform playing Teams over HTTPS on loopback: the incoming
// notification (signed token checked), answer, greeting, queue with music, the kick
// over the host's envelope, an offer leg, the agent's answer, the join, the caller's
// hang-up. Agents answer at once and talk 20 ms; 8 calls are under way at a time.
// Reports calls per second and the time from the incoming notification to the answer
// request (p50, p99).
func BenchmarkCallsOverHTTP(b *testing.B) {
	const inFlight = 8
	a := newCallsApp(b, graph.CallingOptions{
		Behave: func(calls.Party) graph.Behaviour {
			return graph.Behaviour{Action: graph.ActAnswer, TalkFor: 20 * time.Millisecond}
		},
		PromptLength: func(string) time.Duration { return time.Millisecond },
	})
	tid := simulate.ContosoID
	zero := 0
	for _, s := range []string{"sales", "support", "billing"} {
		a.updateService(b, tid, s, func(s *routing.Service) {
			s.Distribution.ACW.Seconds = &zero
			s.Distribution.RONA = routing.RONASettings{}
			s.Distribution.QueueTimeoutSecs, s.Distribution.MaxQueueLength = 0, 0
		})
	}
	stop := make(chan struct{})
	wg := a.pump(b, stop)
	var ended atomic.Int64
	sem := make(chan struct{}, inFlight)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sem <- struct{}{}
		from := calls.Party{Kind: calls.Phone, ID: "+1555555" + string(rune('0'+i%10)) + "000"}
		id := a.fake.PlaceCall(tid, from, salesLine)
		go func() {
			defer func() { <-sem }()
			for {
				if v, ok := a.fake.CallView(id); ok && v.State == "terminated" {
					ended.Add(1)
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	for range inFlight {
		sem <- struct{}{}
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
	var lat []time.Duration
	for _, r := range a.fake.CallRequests() {
		if r.Op == "answer" {
			lat = append(lat, r.Elapsed)
		}
	}
	slices.Sort(lat)
	if len(lat) != b.N || ended.Load() != int64(b.N) {
		b.Fatalf("%d answers, %d calls ended, want %d", len(lat), ended.Load(), b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "answer-p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "answer-p99-ms")
}

// BenchmarkAnswerWithASlowStore: the first write of each call takes 6 s; the answer
// goes out when the store budget (4 s) runs out, not when the write lands, and the
// call goes on once it has. Reports the time to the answer request.
func BenchmarkAnswerWithASlowStore(b *testing.B) {
	a := newCallsAppTuned(b, func(d *deps) { d.calls = &slowCalls{Store: d.calls, delay: 6 * time.Second} })
	var total time.Duration
	for b.Loop() {
		a.fake.ResetCallRequests()
		id := a.fake.PlaceCall(simulate.ContosoID, caller, salesLine)
		a.settle(b)
		rq := a.fake.CallRequests()
		if len(rq) == 0 || rq[0].Op != "answer" {
			b.Fatalf("requests: %+v", rq)
		}
		total += rq[0].Elapsed
		if x := a.call(b, simulate.ContosoID, id); x.Phase != calls.PhaseGreeting {
			b.Fatalf("call: %+v", x)
		}
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s-to-answer")
}

// BenchmarkKicksOverHTTP: one kick per op — a call's task is created in process (as
// the call controller creates it once the call is queued; not timed) and its kick is
// delivered to RouteCall over HTTP with the host's envelope (timed), on the embedded
// store, without a calling platform (the decision is recorded, nobody is rung). The
// task is then ended so agents stay free, and the messages the bench never delivers
// (ring expiries, queue timeouts scheduled for later) are dropped, as the broker
// would hold them, not the app. Besides the overall rate it reports the rate over the
// first and the last 5,000 kicks (from 10,000): flat means the cost does not grow
// with the calls the store has seen.
func BenchmarkKicksOverHTTP(b *testing.B) {
	a := newCallsAppTuned(b, func(d *deps) { d.platform = nil })
	ctx := b.Context()
	tid := simulate.ContosoID
	zero := 0
	a.updateService(b, tid, "billing", func(s *routing.Service) { s.Distribution.ACW.Seconds = &zero })
	e := routing.NewEngine(routing.Options{Store: a.store, Tenants: a.store, Presences: a.store, Sender: a.bus, Queue: "calls", Now: a.clk.Now})
	var took []time.Duration
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		id := fmt.Sprintf("bench-%d", i)
		if _, err := e.IncomingCall(ctx, routing.IncomingCall{TenantID: tid, ServiceID: "billing", CallID: id}); err != nil {
			b.Fatal(err)
		}
		due := a.bus.due()
		b.StartTimer()
		start := time.Now()
		for _, m := range due {
			if status, body := postTB(b, a.base+"/"+queueFunctions[m.queue], sbEnvelope(string(m.m.Body), m.m.ID, 1)); status != http.StatusOK {
				b.Fatalf("%d %s", status, body)
			}
		}
		took = append(took, time.Since(start))
		b.StopTimer()
		if task, err := a.store.GetTask(ctx, tid, "billing", id); err != nil || task.State != routing.Offered {
			b.Fatalf("not offered: %+v %v", task, err)
		}
		if _, err := e.CallStateChanged(ctx, routing.CallEvent{TenantID: tid, ServiceID: "billing", TaskID: id, Change: routing.Ended}); err != nil {
			b.Fatal(err)
		}
		a.bus.due() // the ended call's kick is not part of the measure
		a.bus.forget()
		b.StartTimer()
	}
	rate := func(ds []time.Duration) float64 {
		var sum time.Duration
		for _, d := range ds {
			sum += d
		}
		return float64(len(ds)) / sum.Seconds()
	}
	b.ReportMetric(rate(took), "kicks/s")
	if n := len(took); n >= 10000 {
		b.ReportMetric(rate(took[:5000]), "kicks/s-first-5000")
		b.ReportMetric(rate(took[n-5000:]), "kicks/s-last-5000")
	}
}
