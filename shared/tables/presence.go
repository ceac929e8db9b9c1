package tables

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/presence"
)

// healthRow is the RowKey of a tenant's health in PresenceHealth.
const healthRow = "health"

// Retry budget of UpdateHealth (and Park) when a conditional write loses a race.
// Sixteen concurrent writers of one row all finish well within it.
const maxAttempts = 40

// presenceProps adds p's columns to pr, their names prefixed (the presence table: "";
// a roster row: "P"). ObservedAt and OfflineAt are kept to 100 ns (Edm.DateTime; a
// zero OfflineAt is left out and reads back zero).
func presenceProps(pr props, prefix string, p presence.Presence) props {
	pr[prefix+"Availability"], pr[prefix+"Activity"], pr[prefix+"Source"] = string(p.Availability), p.Activity, string(p.Source)
	pr[prefix+"ObservedAt"], pr[prefix+"OfflineAt"] = p.ObservedAt, p.OfflineAt
	return pr
}

// decodePresence reads agentID's presence from the columns presenceProps wrote.
func decodePresence(r record, prefix, agentID string) (presence.Presence, error) {
	at, err := r.time(prefix + "ObservedAt")
	if err != nil {
		return presence.Presence{}, err
	}
	off, err := r.time(prefix + "OfflineAt")
	if err != nil {
		return presence.Presence{}, err
	}
	return presence.Presence{AgentID: agentID, Availability: presence.Availability(r.str(prefix + "Availability")), Activity: r.str(prefix + "Activity"),
		Source: presence.Source(r.str(prefix + "Source")), ObservedAt: at, OfflineAt: off}, nil
}

// LoadPresences implements presence.Store: every stored presence of the tenant.
func (s *Store) LoadPresences(ctx context.Context, tenantID string) ([]presence.Presence, error) {
	if err := checkKey("tenantId", tenantID); err != nil {
		return nil, fmt.Errorf("load presences: %w", err)
	}
	out := []presence.Presence{}
	err := listAll(ctx, s.presences, "PartitionKey eq "+odataString(tenantID), "RowKey,Availability,Activity,Source,ObservedAt,OfflineAt",
		func(r record) error {
			p, err := decodePresence(r, "", r.str("RowKey"))
			out = append(out, p)
			return err
		})
	if err != nil {
		return nil, fmt.Errorf("load presences: %w", err)
	}
	return out, nil
}

// SavePresences implements presence.Store: inserts or replaces presences in
// transactions of at most 100 rows, a few at a time. ObservedAt and OfflineAt are
// kept to 100 ns (Edm.DateTime; a zero OfflineAt is left out and reads back zero).
// Every presence is validated before the first request; each transaction is atomic,
// the call is not. The presences reach the rosters of the agents' services first
// (roster.go).
func (s *Store) SavePresences(ctx context.Context, tenantID string, ps []presence.Presence) error {
	rows := make([]row, 0, len(ps))
	for _, p := range ps {
		r, err := newRow("presence", "tenantId", tenantID, "presence.agentId", p.AgentID, presenceProps(props{}, "", p))
		if err != nil {
			return fmt.Errorf("save presences: %w", err)
		}
		rows = append(rows, r)
	}
	if len(rows) == 0 {
		return nil
	}
	// Copied to the rosters first (routing reads presence there): if the copy fails
	// nothing is stored, and the refresher finds the same changes again.
	return wrap("save presences", s.presencesToRosters(ctx, tenantID, ps, func() error { return upsertAll(ctx, s.presences, rows) }))
}

// GetHealth implements presence.Store: fault.ErrNotFound before the first update.
func (s *Store) GetHealth(ctx context.Context, tenantID string) (presence.Health, error) {
	h, _, err := s.readHealth(ctx, tenantID)
	if err != nil {
		return presence.Health{}, fmt.Errorf("get presence health: %w", err)
	}
	return h, nil
}

// readHealth reads the health row and its ETag.
func (s *Store) readHealth(ctx context.Context, tenantID string) (presence.Health, azcore.ETag, error) {
	if err := checkKey("tenantId", tenantID); err != nil {
		return presence.Health{}, "", err
	}
	resp, err := s.health.GetEntity(ctx, tenantID, healthRow, nil)
	if err != nil {
		return presence.Health{}, "", classify(err)
	}
	r, err := decodeRecord(resp.Value)
	if err != nil {
		return presence.Health{}, "", err
	}
	var h presence.Health
	if err := r.data("presence health", &h); err != nil {
		return presence.Health{}, "", err
	}
	h.TenantID = tenantID
	return h, resp.ETag, nil
}

func healthEntity(h presence.Health) (row, error) {
	data, err := json.Marshal(h)
	if err != nil {
		return row{}, err
	}
	return newRow("presence health", "tenantId", h.TenantID, "health", healthRow, props{
		"Data":          string(data),
		"Active":        string(h.Active),
		"Agents":        int32(min(h.Agents, 1<<31-1)),
		"LastErrorCode": h.LastErrorCode,
		"LastPollAt":    h.LastPollAt,
	})
}

// UpdateHealth implements presence.Store: read with ETag, apply fn, write
// conditionally (AddEntity when absent, UpdateEntity If-Match when present); on a
// lost race (409 or 412) it waits a little and starts over with a fresh read, so no
// update is lost. An error from fn aborts with nothing written. After maxAttempts
// lost races it gives up with an error wrapping fault.ErrPrecondition.
//
// If a write's answer is lost in transit and the SDK retries it, the retry loses to
// our own write (412/409) and fn is applied again on top of it: fn runs at least once
// per successful update, like any ETag loop over an unreliable network.
func (s *Store) UpdateHealth(ctx context.Context, tenantID string, fn func(*presence.Health) error) (presence.Health, error) {
	for attempt := 0; ; attempt++ {
		cur, etag, err := s.readHealth(ctx, tenantID)
		found := err == nil
		if err != nil && !errors.Is(err, fault.ErrNotFound) {
			return presence.Health{}, fmt.Errorf("update presence health: %w", err)
		}
		h := cur
		if !found {
			h = presence.Health{TenantID: tenantID}
		}
		if err := fn(&h); err != nil {
			return presence.Health{}, err
		}
		h.TenantID = tenantID
		r, err := healthEntity(h)
		if err != nil {
			return presence.Health{}, fmt.Errorf("update presence health: %w", err)
		}
		if found {
			err = s.replaceIfMatch(ctx, s.health, r, etag)
		} else {
			err = s.add(ctx, s.health, r)
		}
		if err == nil {
			return h, nil
		}
		lost := errors.Is(err, fault.ErrPrecondition) || errors.Is(err, fault.ErrConflict) ||
			errors.Is(err, fault.ErrNotFound) // deleted between read and write
		if !lost {
			return presence.Health{}, fmt.Errorf("update presence health: %w", err)
		}
		if attempt+1 >= maxAttempts {
			return presence.Health{}, fmt.Errorf("update presence health: gave up after %d lost races: %w", maxAttempts, err)
		}
		if err := fault.Backoff(ctx, attempt); err != nil {
			return presence.Health{}, fmt.Errorf("update presence health: %w", err)
		}
	}
}

// replaceIfMatch replaces the entity only if its ETag is still etag. A stale ETag is
// fault.ErrPrecondition; a vanished entity fault.ErrNotFound. (UpsertEntity ignores
// ETags, so it is never used for read-modify-write.)
func (s *Store) replaceIfMatch(ctx context.Context, c *aztables.Client, r row, etag azcore.ETag) error {
	_, err := c.UpdateEntity(ctx, r.body, &aztables.UpdateEntityOptions{IfMatch: &etag, UpdateMode: aztables.UpdateModeReplace})
	return classify(err)
}

// add inserts the entity; fault.ErrConflict if it exists.
func (s *Store) add(ctx context.Context, c *aztables.Client, r row) error {
	_, err := c.AddEntity(ctx, r.body, nil)
	return classify(err)
}
