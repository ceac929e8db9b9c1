package tables

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/teamscc/teamscc/shared/audit"
)

// Audit table: PartitionKey = tenant id; RowKey = inverted ticks of At (19 digits) +
// "_" + 8 random hex digits, so one partition query lists a tenant's entries newest
// first and a time range is a RowKey range. Data holds the entry as JSON; At,
// ActorID and Operation are typed copies for Storage Explorer and Power BI.
const tableAudit = "Audit"

var _ audit.Store = (*Store)(nil)

// Append implements audit.Store: an insert, never an update.
func (s *Store) Append(ctx context.Context, e audit.Entry) error {
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	r, err := newRow("audit", "tenantId", e.TenantID, "audit.rowKey", invertedTicks(e.At)+"_"+hex.EncodeToString(suffix[:]), props{
		"Data":      string(data),
		"At":        e.At,
		"ActorID":   e.ActorID,
		"Operation": e.Operation,
	})
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	return wrap("append audit", s.add(ctx, s.svc.NewClient(s.table(tableAudit)), r))
}

// ListAudit implements audit.Store with one partition query over a RowKey range.
func (s *Store) ListAudit(ctx context.Context, tenantID string, from, to time.Time, limit int) ([]audit.Entry, error) {
	if err := checkKey("tenantId", tenantID); err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	filter := "PartitionKey eq " + odataString(tenantID)
	if !to.IsZero() { // At < to  ⇔  inverted(At) > inverted(to); "_" sorts after digits
		filter += " and RowKey gt " + odataString(invertedTicks(to)+"_~")
	}
	if !from.IsZero() { // At >= from  ⇔  inverted(At) <= inverted(from)
		filter += " and RowKey lt " + odataString(invertedTicks(from)+"_~")
	}
	top := int32(maxPage)
	if limit > 0 && limit < maxPage {
		top = int32(limit)
	}
	out := []audit.Entry{}
	err := listTop(ctx, s.svc.NewClient(s.table(tableAudit)), filter, "Data", top, func(r record) error {
		var e audit.Entry
		if err := r.data("audit", &e); err != nil {
			return err
		}
		out = append(out, e)
		if limit > 0 && len(out) >= limit {
			return errStop
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	return out, nil
}
