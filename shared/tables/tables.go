// Package tables is the Azure Table storage adapter: it implements tenant.Store,
// tenant.Secrets, presence.Store and parking.Store with aztables, against Azure or
// Azurite.
//
// Layout (every name gets Config.TablePrefix in front):
//
//	Tenants         PK "tenant"       RK tenant id        Data (JSON) + Name, Deleted, PresenceEnabled, PresenceMode, UpdatedAt
//	Agents          PK tenant id      RK agent id         Data (JSON) + UPN, DisplayName
//	                                  RK "~agents-version"  Version: rewritten by every agent batch (see AgentsVersion)
//	Secrets         PK tenant id      RK secret name      Value
//	Presences       PK tenant id      RK agent id         Availability, Activity, Source, ObservedAt, OfflineAt (Edm.DateTime)
//	PresenceHealth  PK tenant id      RK "health"         Data (JSON) + Active, Agents, LastErrorCode, LastPollAt
//	Parked          PK function name  RK inverted ticks "_" id   the message (see parking.go)
//	                                  RK "id_" id         index row: Ref = the record's RowKey
//	InteractSettings, InteractSessions: see interact.go
//	RoutingQueues, RoutingAgents: see routing.go
//	Outbound: see outbound.go
//	Calls           PK tenant id      RK call id          Data (JSON) + Phase, Direction, ServiceId, Open, Created, NextAt (only when set); see calls.go
//	DirectorySync   PK tenant id      RK service id       Data (JSON) + GroupId, At (only when set), Members; see directory.go
//
// Data is the authoritative JSON of the domain struct (so a field added to the domain
// is kept without touching this package); the typed columns beside it are copies for
// people reading the tables in Storage Explorer or Power BI, and are never read back.
//
// Azure's limits are enforced here before a request, because Azurite does not enforce
// them all: keys (no / \ # ? ', no control characters, at most 1 KiB), string
// properties of at most 64 KiB, entities of at most 1 MiB, batches of at most 100
// entities, one partition and 4 MiB. A broken rule is a *fault.FieldError.
//
// Errors: 404 → fault.ErrNotFound, 409 → fault.ErrConflict, 412 → fault.ErrPrecondition
// (errors.Is), also when the status comes from inside a failed batch. Error texts
// carry no secrets, URLs, tenant or agent ids. A Store is safe for concurrent use.
package tables

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/teamscc/teamscc/shared/parking"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/tenant"
)

// Fixed table names (before the prefix).
const (
	tableTenants        = "Tenants"
	tableAgents         = "Agents"
	tableSecrets        = "Secrets"
	tablePresences      = "Presences"
	tablePresenceHealth = "PresenceHealth"
	tableParked         = "Parked"
)

var allTables = []string{tableTenants, tableAgents, tableSecrets, tablePresences, tablePresenceHealth, tableParked,
	tableInteractSettings, tableInteractSessions,
	tableRoutingQueues, tableRoutingAgents, // routing tables: see routing.go
	tableAudit,
	tableOutbound,      // outbound tasks and counters: see outbound.go
	tableUserStates,    // user-state cursors and records: see userstate.go
	tableCalls,         // call controller state: see calls.go
	tableDirectorySync} // Teams membership sync states: see directory.go

// DefaultTryTimeout is how long one storage request may take before it is given up
// (Config.TryTimeout); storageRetries how many times a failed request is tried again.
// A stalled endpoint therefore fails a request after about 2 × 3 s.
const (
	DefaultTryTimeout = 3 * time.Second
	storageRetries    = 1
)

// Store is the Table storage implementation of the domain stores. Create it with Open.
type Store struct {
	svc       *aztables.ServiceClient
	auth      authKind
	prefix    string
	tenants   *aztables.Client
	agents    *aztables.Client
	secrets   *aztables.Client
	presences *aztables.Client
	health    *aztables.Client
	parked    *aztables.Client

	roundTrips atomic.Int64
	members    memberCache // agents' services per tenant, for the rosters (roster.go)
}

var (
	_ tenant.Store   = (*Store)(nil)
	_ tenant.Secrets = (*Store)(nil)
	_ presence.Store = (*Store)(nil)
	_ parking.Store  = (*Store)(nil)
)

// Open validates cfg, builds the client and creates the tables that are missing
// (one request per table). It fails when no storage is configured (naming the
// settings), when a setting is malformed, or when the account cannot be reached or
// refuses the table creation. Errors never quote the connection string.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	s, err := newStore(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.createTables(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// New builds a Store without touching the network: the tables must exist (Open
// creates them). For tests and tools that point at storage set up elsewhere.
func New(cfg Config) (*Store, error) { return newStore(cfg) }

// newStore builds a Store without touching the network.
func newStore(cfg Config) (*Store, error) {
	t, err := cfg.resolve()
	if err != nil {
		return nil, fmt.Errorf("open table storage: %w", err)
	}
	s := &Store{prefix: cfg.TablePrefix, auth: t.auth}
	try := cfg.TryTimeout
	if try <= 0 {
		try = DefaultTryTimeout
	}
	opts := azcore.ClientOptions{
		// Per retry: every HTTP request is counted, retries included.
		PerRetryPolicies: []policy.Policy{countPolicy{&s.roundTrips}},
		Telemetry:        policy.TelemetryOptions{ApplicationID: "teamscc"},
		// A storage endpoint that stalls must not hold an invocation for as long as it
		// stalls: each try gives up after TryTimeout, and only one retry follows, so a
		// request fails (fault.ErrUnavailable: HTTP 503, a message retried) within a few
		// seconds. Throttling and 5xx answers are retried the same way.
		Retry: policy.RetryOptions{TryTimeout: try, MaxRetries: storageRetries, RetryDelay: 200 * time.Millisecond, MaxRetryDelay: 2 * time.Second},
	}
	if cfg.HTTPClient != nil {
		opts.Transport = cfg.HTTPClient
	}
	copts := &aztables.ClientOptions{ClientOptions: opts}
	switch t.auth {
	case authSharedKey:
		// The connection string is rebuilt in canonical form with the endpoint we
		// resolved: the SDK's parser matches keys case-sensitively and cannot expand
		// UseDevelopmentStorage.
		s.svc, err = aztables.NewServiceClientFromConnectionString(
			"AccountName="+t.accountName+";AccountKey="+t.accountKey+";TableEndpoint="+t.endpoint, copts)
	case authSAS:
		// Not through NewServiceClientFromConnectionString: with a SAS it ignores
		// TableEndpoint and EndpointSuffix (aztables v1.4.1 connection_string.go).
		s.svc, err = aztables.NewServiceClientWithNoCredential(t.endpoint+"/?"+t.sas, copts)
	case authManagedIdentity, authDefault:
		var cred azcore.TokenCredential
		cred, err = newCredential(t, cfg.HTTPClient)
		if err == nil {
			s.svc, err = aztables.NewServiceClient(t.endpoint, cred, copts)
		}
	}
	if err != nil {
		// The SDK's messages do not echo keys, but stay on the safe side: only say
		// which setting failed and the SDK's own error kind.
		return nil, fmt.Errorf("open table storage: create client from %s: %w", describeAuth(t.auth), classify(err))
	}
	s.tenants = s.svc.NewClient(s.table(tableTenants))
	s.agents = s.svc.NewClient(s.table(tableAgents))
	s.secrets = s.svc.NewClient(s.table(tableSecrets))
	s.presences = s.svc.NewClient(s.table(tablePresences))
	s.health = s.svc.NewClient(s.table(tablePresenceHealth))
	s.parked = s.svc.NewClient(s.table(tableParked))
	return s, nil
}

func newCredential(t target, hc *http.Client) (azcore.TokenCredential, error) {
	var co azcore.ClientOptions
	if hc != nil {
		co.Transport = hc
	}
	if t.auth == authManagedIdentity {
		o := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: co}
		if t.clientID != "" {
			o.ID = azidentity.ClientID(t.clientID)
		}
		return azidentity.NewManagedIdentityCredential(o)
	}
	return azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{ClientOptions: co})
}

func describeAuth(a authKind) string {
	switch a {
	case authSharedKey:
		return SettingConnection + " (account key)"
	case authSAS:
		return SettingConnection + " (shared access signature)"
	case authManagedIdentity:
		return "managed identity"
	default:
		return "DefaultAzureCredential"
	}
}

func (s *Store) table(name string) string { return s.prefix + name }

// createTables creates the six tables concurrently; "already exists" is success.
func (s *Store) createTables(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(allTables))
	for i, name := range allTables {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.svc.CreateTable(ctx, s.table(name), nil)
			var re *azcore.ResponseError
			if errors.As(err, &re) && re.ErrorCode == string(aztables.TableAlreadyExists) {
				return
			}
			if err != nil {
				errs[i] = fmt.Errorf("create table %s: %w", s.table(name), classify(err))
			}
		}()
	}
	wg.Wait()
	for _, err := range errs { // the first is enough: the others share its cause
		if err == nil {
			continue
		}
		var se *storageError
		if errors.As(err, &se) && se.status == http.StatusForbidden && (s.auth == authManagedIdentity || s.auth == authDefault) {
			return fmt.Errorf("open table storage: %w (the identity needs the Storage Table Data Contributor role on the account)", err)
		}
		return fmt.Errorf("open table storage: %w", err)
	}
	return nil
}

// RoundTrips reports how many HTTP requests the Store has made so far, retries and
// table creation included. Benchmarks and tests divide it by operations.
func (s *Store) RoundTrips() int64 { return s.roundTrips.Load() }

// countPolicy counts requests; it runs once per attempt (PerRetryPolicies).
type countPolicy struct{ n *atomic.Int64 }

func (p countPolicy) Do(req *policy.Request) (*http.Response, error) {
	p.n.Add(1)
	return req.Next()
}
