package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/teamscc/teamscc/shared/calls"
	"github.com/teamscc/teamscc/shared/directory"
	"github.com/teamscc/teamscc/shared/entra"
	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/funchost"
	"github.com/teamscc/teamscc/shared/graph"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/simulate"
	"github.com/teamscc/teamscc/shared/tenant"
)

// localBotAppID is the bot's app id in local mode (simulated; it signs in to the
// fake Entra only).
const localBotAppID = "10ca1b07-0000-4000-8000-00000000b07a"

// localCalling is the local runner's Teams: the fake calling platform (Graph's call
// API and the signed notifications, shared/graph's Fake) with simulated agents who
// answer after a few seconds, sometimes decline or let it ring, simulated callers who
// hang up, and the /sim/ endpoints that place calls. Everything it does is simulated.
type localCalling struct {
	fake     *graph.Fake
	platform *graph.Reader
	auth     callingAuth
	tenants  tenant.Store
	routes   routing.Store
}

// Simulated timings: prompts, agents' reactions, callers' patience.
const (
	simGreeting     = 4 * time.Second
	simMusic        = 15 * time.Second
	simAnnouncement = 5 * time.Second
	simPatience     = 3 * time.Minute
)

func newLocalCalling(webhook string, tenants tenant.Store, routes routing.Store) (*localCalling, error) {
	f := graph.NewFake()
	f.EnableCalling(graph.CallingOptions{BotAppID: localBotAppID, Webhook: webhook, RingFor: 25 * time.Second,
		Behave: simulatedCallee, PromptLength: simulatedPromptLength})
	p, err := graph.New(f.Options(localBotAppID))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("local calling platform: %w", err)
	}
	v, err := entra.NewCallingValidator(entra.CallingOptions{MetadataURL: f.CallingMetadataURL(), Audience: localBotAppID, HTTPClient: f.Client()})
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("local calling validator: %w", err)
	}
	return &localCalling{fake: f, platform: p, auth: callingAuth{v}, tenants: tenants, routes: routes}, nil
}

// simulatedCallee: an agent answers most offers after 2–6 s and talks 20–60 s; some
// decline, some let it ring until the service's ring timeout, a few cannot be rung.
// An outbound customer answers after 3–8 s.
func simulatedCallee(callee calls.Party) graph.Behaviour {
	talk := time.Duration(20+rand.IntN(40)) * time.Second
	if callee.Kind == calls.Phone {
		return graph.Behaviour{After: time.Duration(3+rand.IntN(5)) * time.Second, Action: graph.ActAnswer, TalkFor: talk}
	}
	switch n := rand.IntN(100); {
	case n < 65:
		return graph.Behaviour{After: time.Duration(2+rand.IntN(4)) * time.Second, Action: graph.ActAnswer, TalkFor: talk}
	case n < 80:
		return graph.Behaviour{After: 3 * time.Second, Action: graph.ActDecline}
	case n < 97:
		return graph.Behaviour{Action: graph.ActLetRing}
	default:
		return graph.Behaviour{After: time.Second, Action: graph.ActUnreachable}
	}
}

func simulatedPromptLength(uri string) time.Duration {
	switch {
	case strings.Contains(uri, "greeting"):
		return simGreeting
	case strings.Contains(uri, "music"):
		return simMusic
	}
	return simAnnouncement
}

// ServeHTTP serves the simulator:
//
//	POST /sim/calls {"to":"<number or resource account>","from":"<caller number>"}
//	     a caller calls a service; answers the call id and its timeline URL
//	POST /sim/calls/{callId}/hangup   the caller hangs up
func (lc *localCalling) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /sim/calls", lc.placeCall)
	mux.HandleFunc("POST /sim/calls/{callId}/hangup", lc.hangUp)
	mux.ServeHTTP(w, r)
}

func (lc *localCalling) placeCall(w http.ResponseWriter, r *http.Request) {
	var body struct {
		To   string `json:"to"`
		From string `json:"from"`
	}
	if err := decodeStrict(r.Body, &body); err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	to := routing.NormalizeTarget(body.To)
	if to == "" {
		funchost.WriteError(w, r, fault.Invalid("to", "required: a service's phone number or resource account"))
		return
	}
	from := body.From
	if from == "" {
		from = fmt.Sprintf("+1555555%04d", rand.IntN(10000))
	}
	ts, err := lc.tenants.ListTenants(r.Context())
	if err != nil {
		funchost.WriteError(w, r, err)
		return
	}
	for _, t := range ts {
		svc, err := lc.routes.ServiceByTarget(r.Context(), t.ID, to)
		if errors.Is(err, fault.ErrNotFound) {
			continue
		}
		if err != nil {
			funchost.WriteError(w, r, err)
			return
		}
		kind := calls.Phone
		if to[0] != '+' {
			kind = calls.ApplicationInstance
		}
		caller := calls.Party{Kind: calls.Phone, ID: from}
		id := lc.fake.PlaceCall(t.ID, caller, calls.Party{Kind: kind, ID: to})
		time.AfterFunc(simPatience, func() {
			if v, ok := lc.fake.CallView(id); ok && v.State != "terminated" && !v.Group {
				_ = lc.fake.HangUp(id, caller)
			}
		})
		funchost.WriteJSON(w, http.StatusAccepted, map[string]string{"callId": id, "tenantId": t.ID, "serviceId": svc.ID,
			"timeline": "/api/tenants/" + t.ID + "/calls/" + id, "simulated": "true"})
		return
	}
	funchost.WriteError(w, r, fmt.Errorf("to: no service has this target: %w", fault.ErrNotFound))
}

func (lc *localCalling) hangUp(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("callId")
	v, ok := lc.fake.CallView(id)
	if !ok {
		funchost.WriteError(w, r, fmt.Errorf("callId: %w", fault.ErrNotFound))
		return
	}
	if err := lc.fake.HangUp(id, v.Source); err != nil {
		funchost.WriteError(w, r, fmt.Errorf("callId: the call is over: %w", fault.ErrConflict))
		return
	}
	funchost.WriteJSON(w, http.StatusOK, json.RawMessage(`{"hungUp":true}`))
}

// Teams of the simulated Contoso's Teams-based services in the local directory.
var demoTeams = map[string]string{"sales": "7ea30000-0000-4000-8000-00000000a5a1", "billing": "7ea30000-0000-4000-8000-00000000b111"}

// seedDirectory fills the fake directory with the simulated Contoso: its agents as
// users, a few users who are not agents yet (to find with DirectoryUsers and add to a
// skill-based service), and a Team for each Teams-based service holding the agents
// already in it, so a sync changes nothing until members are added or removed. The
// fake has one directory, so the other simulated tenant's people stay out of it.
func (l *localCalling) seedDirectory(ctx context.Context) error {
	agents, err := l.tenants.ListAgents(ctx, simulate.ContosoID)
	if err != nil {
		return fmt.Errorf("seed directory: %w", err)
	}
	users := make([]directory.User, 0, len(agents)+5)
	for _, a := range agents {
		users = append(users, directory.User{ID: a.ID, UPN: a.UPN, DisplayName: a.DisplayName})
	}
	for i := 1; i <= 5; i++ {
		users = append(users, directory.User{ID: fmt.Sprintf("0e0e0000-0000-4000-8000-%012d", i),
			UPN: fmt.Sprintf("newhire%d@contoso.example", i), DisplayName: fmt.Sprintf("New Hire %d", i)})
	}
	l.fake.AddUsers(users...)
	for svc, team := range demoTeams {
		var members []string
		for _, a := range agents {
			if slices.Contains(a.Services, svc) {
				members = append(members, a.ID)
			}
		}
		l.fake.AddGroup(directory.Group{ID: team, DisplayName: "Contoso " + svc})
		l.fake.AddMembers(team, members...)
		if len(members) > 0 {
			l.fake.AddOwners(team, members[0])
		}
		if _, err := l.routes.UpdateService(ctx, simulate.ContosoID, svc, func(s *routing.Service) error {
			s.Team = team
			return nil
		}); err != nil {
			return fmt.Errorf("seed directory: %w", err)
		}
	}
	return nil
}
