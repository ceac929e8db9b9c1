package interact

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/teamscc/teamscc/shared/fault"
)

// Widget key states in View.WidgetKeyStatus.
const (
	KeySet  = "set"  // WidgetKey holds the current key
	KeyNone = "none" // no key yet: PATCH the settings or refresh to create one
	// KeyUnknown: the stored key does not match the validation hash (a refresh did not
	// finish writing it): refresh again.
	KeyUnknown = "unknown"
)

// View is the settings as admins see them: the widget key in clear, the ACS
// connection string only as "set or not".
type View struct {
	TenantID               string    `json:"tenantId"`
	Enabled                bool      `json:"enabled"`
	AuthMode               AuthMode  `json:"authMode"`
	RecoveryTimeoutSeconds int       `json:"recoveryTimeoutSeconds"`
	AllowedOrigins         []string  `json:"allowedOrigins"`
	TokenAudiences         []string  `json:"tokenAudiences"`
	MeetingUserID          string    `json:"meetingUserId"`
	ACSConnectionStringSet bool      `json:"acsConnectionStringSet"`
	WidgetKey              string    `json:"widgetKey,omitempty"`
	WidgetKeyStatus        string    `json:"widgetKeyStatus"`
	WidgetKeyRefreshedAt   time.Time `json:"widgetKeyRefreshedAt,omitzero"`
	PreviousKeyValidUntil  time.Time `json:"previousKeyValidUntil,omitzero"`
	UpdatedAt              time.Time `json:"updatedAt,omitzero"`
}

// tenantExists maps an unknown tenant to fault.ErrNotFound.
func (svc *Service) tenantExists(ctx context.Context, tenantID string) error {
	if _, err := svc.d.Tenants.GetTenant(ctx, tenantID); err != nil {
		return fmt.Errorf("tenant: %w", err)
	}
	return nil
}

// Settings returns the admin view of the tenant's settings (defaults if never set).
// fault.ErrNotFound for an unknown tenant.
func (svc *Service) Settings(ctx context.Context, tenantID string) (View, error) {
	if err := svc.tenantExists(ctx, tenantID); err != nil {
		return View{}, err
	}
	s, err := svc.d.Store.GetSettings(ctx, tenantID)
	if errors.Is(err, fault.ErrNotFound) {
		s = Settings{TenantID: tenantID}
		s.defaults()
	} else if err != nil {
		return View{}, fmt.Errorf("read interact settings: %w", err)
	}
	return svc.view(ctx, s, "")
}

// view builds the admin view; key is the widget key when the caller just made it.
func (svc *Service) view(ctx context.Context, s Settings, key string) (View, error) {
	v := View{TenantID: s.TenantID, Enabled: s.Enabled, AuthMode: s.AuthMode, RecoveryTimeoutSeconds: s.RecoveryTimeoutSeconds,
		AllowedOrigins: append([]string{}, s.AllowedOrigins...), TokenAudiences: append([]string{}, s.TokenAudiences...),
		MeetingUserID: s.MeetingUserID, ACSConnectionStringSet: s.ACSConfigured, WidgetKeyStatus: KeyNone,
		WidgetKeyRefreshedAt: s.KeyRefreshedAt, UpdatedAt: s.UpdatedAt}
	if s.PrevKeyHash != "" && svc.d.Now().Before(s.PrevKeyValidUntil) {
		v.PreviousKeyValidUntil = s.PrevKeyValidUntil
	}
	if s.KeyHash == "" {
		return v, nil
	}
	if key == "" {
		k, err := svc.d.Secrets.GetSecret(ctx, s.TenantID, SecretWidgetKey)
		if err != nil && !errors.Is(err, fault.ErrNotFound) {
			return View{}, fmt.Errorf("read widget key: %w", err)
		}
		key = k
	}
	v.WidgetKeyStatus = KeyUnknown
	if key != "" && subtle.ConstantTimeCompare([]byte(HashKey(key)), []byte(s.KeyHash)) == 1 {
		v.WidgetKey, v.WidgetKeyStatus = key, KeySet
	}
	return v, nil
}

// UpdateSettings applies a partial update. Every field is checked first, and the
// result as a whole (a token mode needs audiences); the first broken rule is a
// *fault.FieldError and nothing is written. The first write of a tenant's settings
// also creates its widget key. fault.ErrNotFound for an unknown tenant.
func (svc *Service) UpdateSettings(ctx context.Context, tenantID string, p Patch) (View, error) {
	p, err := p.normalize()
	if err != nil {
		return View{}, err
	}
	if err := svc.tenantExists(ctx, tenantID); err != nil {
		return View{}, err
	}
	// Check the whole result before anything is written (the secret comes first).
	cur, err := svc.d.Store.GetSettings(ctx, tenantID)
	if errors.Is(err, fault.ErrNotFound) {
		cur = Settings{TenantID: tenantID}
	} else if err != nil {
		return View{}, fmt.Errorf("read interact settings: %w", err)
	}
	cur.defaults()
	if err := svc.apply(&cur, p); err != nil {
		return View{}, err
	}
	if p.ACSConnectionString != nil {
		if err := svc.d.Secrets.PutSecret(ctx, tenantID, SecretACSConnection, *p.ACSConnectionString); err != nil {
			return View{}, fmt.Errorf("store ACS connection string: %w", err)
		}
	}
	var key string
	s, err := svc.d.Store.UpdateSettings(ctx, tenantID, func(s *Settings) error {
		s.defaults()
		key = ""
		if s.KeyHash == "" {
			key = NewGUID()
			s.KeyHash, s.KeyRefreshedAt = HashKey(key), svc.d.Now().UTC()
		}
		return svc.apply(s, p)
	})
	if err != nil {
		return View{}, fmt.Errorf("update interact settings: %w", err)
	}
	svc.remember(newEntry(s, true, svc.d.Now()))
	if key != "" {
		if err := svc.d.Secrets.PutSecret(ctx, tenantID, SecretWidgetKey, key); err != nil {
			return View{}, fmt.Errorf("store widget key: %w", err)
		}
	}
	return svc.view(ctx, s, key)
}

// apply writes the patch onto s and checks the result.
func (svc *Service) apply(s *Settings, p Patch) error {
	if p.Enabled != nil {
		s.Enabled = *p.Enabled
	}
	if p.AuthMode != nil {
		s.AuthMode = *p.AuthMode
	}
	if p.RecoveryTimeoutSeconds != nil {
		s.RecoveryTimeoutSeconds = *p.RecoveryTimeoutSeconds
	}
	if p.AllowedOrigins != nil {
		s.AllowedOrigins = append([]string(nil), *p.AllowedOrigins...)
	}
	if p.TokenAudiences != nil {
		s.TokenAudiences = append([]string(nil), *p.TokenAudiences...)
	}
	if p.MeetingUserID != nil {
		s.MeetingUserID = *p.MeetingUserID
	}
	if p.ACSConnectionString != nil {
		s.ACSConfigured = *p.ACSConnectionString != ""
	}
	if s.AuthMode != ModeNone && len(svc.audiences(*s)) == 0 {
		return fault.Invalid("tokenAudiences", "required for "+string(s.AuthMode)+" (no default audience is configured)")
	}
	s.UpdatedAt = svc.d.Now().UTC()
	return nil
}

// RefreshKey replaces the tenant's widget key with a new random one and returns the
// view holding it. Once it returns, this instance refuses the old key (after
// Config.KeyGrace, if set), without counting it as a failed attempt; see Service for
// other instances. The hash is written first (it is what validation uses), then the
// key for admins; if that second write fails the error says so and the view will
// report KeyUnknown until the next refresh. fault.ErrNotFound for an unknown tenant.
func (svc *Service) RefreshKey(ctx context.Context, tenantID string) (View, error) {
	if err := svc.tenantExists(ctx, tenantID); err != nil {
		return View{}, err
	}
	key := NewGUID()
	now := svc.d.Now().UTC()
	s, err := svc.d.Store.UpdateSettings(ctx, tenantID, func(s *Settings) error {
		s.defaults()
		// The replaced key is kept (hashed) even without a grace period: it is
		// refused then, but recognised as a stale page rather than a guess, so it
		// does not count against the failure limits (Authorize).
		s.PrevKeyHash, s.PrevKeyValidUntil = s.KeyHash, now.Add(svc.cfg.KeyGrace)
		s.KeyHash, s.KeyRefreshedAt, s.UpdatedAt = HashKey(key), now, now
		return nil
	})
	if err != nil {
		return View{}, fmt.Errorf("refresh widget key: %w", err)
	}
	svc.remember(newEntry(s, true, svc.d.Now()))
	if err := svc.d.Secrets.PutSecret(ctx, tenantID, SecretWidgetKey, key); err != nil {
		return View{}, fmt.Errorf("refresh widget key: store the key: %w", err)
	}
	return svc.view(ctx, s, key)
}

// CheckACS checks the tenant's ACS connection string (create and delete an
// identity). CheckNotConfigured when none is set. fault.ErrNotFound for an unknown
// tenant.
func (svc *Service) CheckACS(ctx context.Context, tenantID string) (CheckResult, error) {
	if err := svc.tenantExists(ctx, tenantID); err != nil {
		return CheckResult{}, err
	}
	conn, err := svc.d.Secrets.GetSecret(ctx, tenantID, SecretACSConnection)
	if errors.Is(err, fault.ErrNotFound) || (err == nil && conn == "") || (err == nil && svc.d.ACS == nil) {
		return CheckResult{Status: CheckNotConfigured}, nil
	}
	if err != nil {
		return CheckResult{}, fmt.Errorf("read ACS connection string: %w", err)
	}
	return svc.d.ACS.Check(ctx, conn), nil
}
