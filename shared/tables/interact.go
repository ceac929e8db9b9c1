package tables

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/interact"
)

// Interact tables (before the prefix):
//
//	InteractSettings  PK tenant id  RK "settings"   Data (JSON) + Enabled, AuthMode, Version, UpdatedAt
//	InteractSessions  PK tenant id  RK session id   Data (JSON) + State, CreatedAt, ClosedAt
//
// Neither holds a secret: the widget key is only a SHA-256 here (the key and the ACS
// connection string are in Secrets).
const (
	tableInteractSettings = "InteractSettings"
	tableInteractSessions = "InteractSessions"
	settingsRow           = "settings"
)

var _ interact.Store = (*Store)(nil)

func (s *Store) interactSettings() *aztables.Client {
	return s.svc.NewClient(s.table(tableInteractSettings))
}

func (s *Store) interactSessions() *aztables.Client {
	return s.svc.NewClient(s.table(tableInteractSessions))
}

// GetSettings implements interact.Store: fault.ErrNotFound if never stored.
func (s *Store) GetSettings(ctx context.Context, tenantID string) (interact.Settings, error) {
	v, _, err := s.readSettings(ctx, tenantID)
	if err != nil {
		return interact.Settings{}, fmt.Errorf("get interact settings: %w", err)
	}
	return v, nil
}

func (s *Store) readSettings(ctx context.Context, tenantID string) (interact.Settings, azcore.ETag, error) {
	if err := checkKey("tenantId", tenantID); err != nil {
		return interact.Settings{}, "", err
	}
	resp, err := s.interactSettings().GetEntity(ctx, tenantID, settingsRow, nil)
	if err != nil {
		return interact.Settings{}, "", classify(err)
	}
	r, err := decodeRecord(resp.Value)
	if err != nil {
		return interact.Settings{}, "", err
	}
	var v interact.Settings
	if err := r.data("interact settings", &v); err != nil {
		return interact.Settings{}, "", err
	}
	v.TenantID = tenantID
	return v, resp.ETag, nil
}

func settingsEntity(v interact.Settings) (row, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return row{}, err
	}
	return newRow("interact settings", "tenantId", v.TenantID, "settings", settingsRow, props{
		"Data":      string(data),
		"Enabled":   v.Enabled,
		"AuthMode":  string(v.AuthMode),
		"Version":   v.Version,
		"UpdatedAt": v.UpdatedAt,
	})
}

// UpdateSettings implements interact.Store with the same ETag loop as UpdateHealth
// (AddEntity when absent, UpdateEntity If-Match when present, fresh read after a lost
// race, at most maxAttempts).
func (s *Store) UpdateSettings(ctx context.Context, tenantID string, fn func(*interact.Settings) error) (interact.Settings, error) {
	c := s.interactSettings()
	for attempt := 0; ; attempt++ {
		cur, etag, err := s.readSettings(ctx, tenantID)
		found := err == nil
		if err != nil && !errors.Is(err, fault.ErrNotFound) {
			return interact.Settings{}, fmt.Errorf("update interact settings: %w", err)
		}
		v := cur
		if !found {
			v = interact.Settings{TenantID: tenantID}
		}
		if err := fn(&v); err != nil {
			return interact.Settings{}, err
		}
		v.TenantID, v.Version = tenantID, cur.Version+1
		r, err := settingsEntity(v)
		if err != nil {
			return interact.Settings{}, fmt.Errorf("update interact settings: %w", err)
		}
		if found {
			err = s.replaceIfMatch(ctx, c, r, etag)
		} else {
			err = s.add(ctx, c, r)
		}
		if err == nil {
			return v, nil
		}
		if err := retryable("update interact settings", attempt, err); err != nil {
			return interact.Settings{}, err
		}
		if err := fault.Backoff(ctx, attempt); err != nil {
			return interact.Settings{}, fmt.Errorf("update interact settings: %w", err)
		}
	}
}

// retryable returns nil when err is a lost race worth another attempt, else the
// error to give up with.
func retryable(op string, attempt int, err error) error {
	lost := errors.Is(err, fault.ErrPrecondition) || errors.Is(err, fault.ErrConflict) || errors.Is(err, fault.ErrNotFound)
	if !lost {
		return fmt.Errorf("%s: %w", op, err)
	}
	if attempt+1 >= maxAttempts {
		return fmt.Errorf("%s: gave up after %d lost races: %w", op, maxAttempts, err)
	}
	return nil
}

func sessionEntity(v interact.Session) (row, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return row{}, err
	}
	return newRow("session", "tenantId", v.TenantID, "sessionId", v.ID, props{
		"Data":      string(data),
		"State":     string(v.State),
		"CreatedAt": v.CreatedAt,
		"ClosedAt":  v.ClosedAt,
	})
}

// CreateSession implements interact.Store: fault.ErrConflict if the id exists.
func (s *Store) CreateSession(ctx context.Context, v interact.Session) error {
	r, err := sessionEntity(v)
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return wrap("create session", s.add(ctx, s.interactSessions(), r))
}

// GetSession implements interact.Store: fault.ErrNotFound if unknown.
func (s *Store) GetSession(ctx context.Context, tenantID, sessionID string) (interact.Session, error) {
	v, _, err := s.readSession(ctx, s.interactSessions(), tenantID, sessionID)
	if err != nil {
		return interact.Session{}, fmt.Errorf("get session: %w", err)
	}
	return v, nil
}

func (s *Store) readSession(ctx context.Context, c *aztables.Client, tenantID, sessionID string) (interact.Session, azcore.ETag, error) {
	if err := checkKey("tenantId", tenantID); err != nil {
		return interact.Session{}, "", err
	}
	if err := checkKey("sessionId", sessionID); err != nil {
		return interact.Session{}, "", err
	}
	resp, err := c.GetEntity(ctx, tenantID, sessionID, nil)
	if err != nil {
		return interact.Session{}, "", classify(err)
	}
	r, err := decodeRecord(resp.Value)
	if err != nil {
		return interact.Session{}, "", err
	}
	var v interact.Session
	if err := r.data("session", &v); err != nil {
		return interact.Session{}, "", err
	}
	v.TenantID, v.ID = tenantID, sessionID
	return v, resp.ETag, nil
}

// UpdateSession implements interact.Store: read with ETag, apply fn, UpdateEntity
// If-Match, fresh read after a lost race. fault.ErrNotFound if unknown.
func (s *Store) UpdateSession(ctx context.Context, tenantID, sessionID string, fn func(*interact.Session) error) (interact.Session, error) {
	c := s.interactSessions()
	for attempt := 0; ; attempt++ {
		v, etag, err := s.readSession(ctx, c, tenantID, sessionID)
		if err != nil {
			return interact.Session{}, fmt.Errorf("update session: %w", err)
		}
		if err := fn(&v); err != nil {
			return interact.Session{}, err
		}
		v.TenantID, v.ID = tenantID, sessionID
		r, err := sessionEntity(v)
		if err != nil {
			return interact.Session{}, fmt.Errorf("update session: %w", err)
		}
		if err = s.replaceIfMatch(ctx, c, r, etag); err == nil {
			return v, nil
		}
		if err := retryable("update session", attempt, err); err != nil {
			return interact.Session{}, err
		}
		if err := fault.Backoff(ctx, attempt); err != nil {
			return interact.Session{}, fmt.Errorf("update session: %w", err)
		}
	}
}
