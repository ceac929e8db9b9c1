package tables

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/tenant"
)

// A reader that reads the version and lists the agents just before each request of a
// PutAgents (as close to the writer's transactions as a reader can get) never reads
// the version the write leaves with a list that lacks the write's agents: the version
// is never visible before its agents. (The conformance suite races writers and
// readers; this pins the one ordering deterministically.)
func TestAReaderDuringAnAgentWriteNeverPairsTheNewVersionWithTheOldList(t *testing.T) {
	reader := openAzurite(t)
	ctx := context.Background()
	const tid = "0d1f6b1e-7c3a-4c59-9a5e-1f2a3b4c5d6e"
	type seen struct {
		version string
		ids     map[string]bool
	}
	var (
		mu    sync.Mutex
		reads []seen
		armed atomic.Bool
	)
	hc := &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if armed.Load() {
			v, err := reader.AgentsVersion(req.Context(), tid)
			if err != nil {
				return nil, err
			}
			list, err := reader.ListAgents(req.Context(), tid)
			if err != nil {
				return nil, err
			}
			ids := map[string]bool{}
			for _, a := range list {
				ids[a.ID] = true
			}
			mu.Lock()
			reads = append(reads, seen{v, ids})
			mu.Unlock()
		}
		return http.DefaultTransport.RoundTrip(req)
	})}
	writer, err := Open(ctx, Config{ConnectionString: "DefaultEndpointsProtocol=http;AccountName=" + devAccountName +
		";AccountKey=" + devAccountKey + ";TableEndpoint=" + needAzurite(t), TablePrefix: reader.prefix, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	for round, n := range []int{40, 250} { // one transaction, then three
		agents := make([]tenant.Agent, n)
		for i := range agents {
			agents[i] = tenant.Agent{ID: fmt.Sprintf("r%d-%04d", round, i)}
		}
		armed.Store(true)
		err := writer.PutAgents(ctx, tid, agents)
		armed.Store(false)
		if err != nil {
			t.Fatal(err)
		}
		final, err := reader.AgentsVersion(ctx, tid)
		if err != nil || final == "" {
			t.Fatalf("version after the write: %q, %v", final, err)
		}
		mu.Lock()
		got := reads
		reads = nil
		mu.Unlock()
		for _, r := range got {
			if r.version != final {
				continue
			}
			for _, a := range agents {
				if !r.ids[a.ID] {
					t.Fatalf("%d agents: a reader read the version the write left before the write's agents", n)
				}
			}
		}
		if want := (n + 98) / 99; len(got) != want {
			t.Fatalf("%d agents: %d requests, want %d transactions of at most 99 agents and the version", n, len(got), want)
		}
		list, err := reader.ListAgents(ctx, tid)
		if err != nil || len(list) != 40+n*round {
			t.Fatalf("listed %d agents, %v; want %d, the version row not among them", len(list), err, 40+n*round)
		}
	}
}

func TestTheVersionRowIsNoAgent(t *testing.T) {
	s := openAzurite(t)
	err := s.PutAgents(context.Background(), "tenant-1", []tenant.Agent{{ID: agentsVersionRow}})
	var fe *fault.FieldError
	if !errors.As(err, &fe) || fe.Field != "agent.id" {
		t.Fatalf("an agent with the version row's key: %v; want a *fault.FieldError on agent.id", err)
	}
}
