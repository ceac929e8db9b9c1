package tables

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/teamscc/teamscc/shared/userstate"
)

// UserStates table (before the prefix):
//
//	UserStates   PK tenant id   RK "c|" agent id                          Data (JSON Cursor)
//	                            RK "r|" start "|" agent id "|" kind        AgentId, Kind, Value, Detail,
//	                                                                       Start, End (absent while open), Open
//
// An agent's cursor and the tenant's records share a partition, so one observation —
// records upserted, cursor written If-Match its ETag — is ONE entity group
// transaction. Record keys begin with the start instant (fixed width, UTC), so a
// report is one partition query over a RowKey range; the other properties are typed
// columns for Storage Explorer and Power BI.
const (
	tableUserStates = "UserStates"
	cursorPrefix    = "c|"
	recordPrefix    = "r|"
)

var _ userstate.Store = (*Store)(nil)

func cursorEntity(c userstate.Cursor) (row, error) {
	data, err := json.Marshal(c)
	if err != nil {
		return row{}, err
	}
	return newRow("user state cursor", "tenantId", c.TenantID, "agentId", cursorPrefix+c.AgentID, props{"Data": string(data)})
}

func userStateEntity(r userstate.Record) (row, error) {
	return newRow("user state", "tenantId", r.TenantID, "agentId", recordPrefix+userstate.Key(r), props{
		"AgentId": r.AgentID, "Kind": string(r.Kind), "Value": r.Value, "Detail": r.Detail,
		"Start": r.Start, "End": r.End, "Open": r.Open(),
	})
}

func decodeCursor(r record) (userstate.Cursor, error) {
	var c userstate.Cursor
	if err := r.data("user state cursor", &c); err != nil {
		return c, err
	}
	c.ETag = r.str("odata.etag")
	return c, nil
}

// GetUserStateCursor implements userstate.Store.
func (s *Store) GetUserStateCursor(ctx context.Context, tenantID, agentID string) (userstate.Cursor, error) {
	if err := checkKey("tenantId", tenantID); err != nil {
		return userstate.Cursor{}, fmt.Errorf("get user state cursor: %w", err)
	}
	if err := checkKey("agentId", agentID); err != nil {
		return userstate.Cursor{}, fmt.Errorf("get user state cursor: %w", err)
	}
	resp, err := s.client(tableUserStates).GetEntity(ctx, tenantID, cursorPrefix+agentID, nil)
	if err != nil {
		return userstate.Cursor{}, wrap("get user state cursor", err)
	}
	r, err := decodeRecord(resp.Value)
	if err != nil {
		return userstate.Cursor{}, fmt.Errorf("get user state cursor: %w", err)
	}
	c, err := decodeCursor(r)
	c.ETag = string(resp.ETag)
	return c, err
}

// ListUserStateCursors implements userstate.Store: one query of the cursor rows.
func (s *Store) ListUserStateCursors(ctx context.Context, tenantID string) ([]userstate.Cursor, error) {
	if err := checkKey("tenantId", tenantID); err != nil {
		return nil, fmt.Errorf("list user state cursors: %w", err)
	}
	filter := "PartitionKey eq " + odataString(tenantID) + " and RowKey ge '" + cursorPrefix + "' and RowKey lt 'c}'"
	var out []userstate.Cursor
	err := listAll(ctx, s.client(tableUserStates), filter, "", func(r record) error {
		c, err := decodeCursor(r)
		if err != nil {
			return err
		}
		out = append(out, c)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list user state cursors: %w", err)
	}
	return out, nil
}

// CommitUserStates implements userstate.Store: the cursor's action (Add, Update
// If-Match, or Delete If-Match) and up to MaxCommit record upserts in one
// transaction; records beyond that go first, in batches of their own.
func (s *Store) CommitUserStates(ctx context.Context, c userstate.Cursor, remove bool, records []userstate.Record) error {
	cur, err := cursorEntity(c)
	if err != nil {
		return fmt.Errorf("commit user states: %w", err)
	}
	rows := make([]row, 0, len(records))
	for _, r := range records {
		r.TenantID = c.TenantID
		e, err := userStateEntity(r)
		if err != nil {
			return fmt.Errorf("commit user states: %w", err)
		}
		rows = append(rows, e)
	}
	rows = dedupe(rows)
	client := s.client(tableUserStates)
	if extra := len(rows) - userstate.MaxCommit; extra > 0 {
		if err := upsertAll(ctx, client, rows[:extra]); err != nil {
			return fmt.Errorf("commit user states: %w", err)
		}
		rows = rows[extra:]
	}
	var ca action
	etag := azcore.ETag(c.ETag)
	switch {
	case remove && c.ETag == "":
		return fmt.Errorf("commit user states: remove needs an ETag")
	case remove:
		ca = action{kind: aztables.TransactionTypeDelete, row: cur, ifMatch: &etag}
	case c.ETag == "":
		ca = action{kind: aztables.TransactionTypeAdd, row: cur}
	default:
		ca = action{kind: aztables.TransactionTypeUpdateReplace, row: cur, ifMatch: &etag}
	}
	if err := submit(ctx, client, append(upserts(rows), ca)); err != nil {
		return fmt.Errorf("commit user states: %w", err)
	}
	return nil
}

// ListUserStates implements userstate.Store: one partition query over the RowKeys from
// the UTC day of q.From (records never span a midnight) to q.To, the rest of q as
// server-side filters.
func (s *Store) ListUserStates(ctx context.Context, tenantID string, q userstate.Query) ([]userstate.Record, string, error) {
	if err := checkKey("tenantId", tenantID); err != nil {
		return nil, "", fmt.Errorf("list user states: %w", err)
	}
	lo := "RowKey ge " + odataString(recordPrefix+userstate.KeyFrom(userstate.DayStart(q.From)))
	if q.After != "" {
		lo = "RowKey gt " + odataString(recordPrefix+q.After)
	}
	var f strings.Builder
	f.WriteString("PartitionKey eq " + odataString(tenantID) + " and " + lo +
		" and RowKey lt " + odataString(recordPrefix+userstate.KeyFrom(q.To)) +
		" and (Open eq true or End gt datetime'" + q.From.UTC().Format(edmTime) + "')")
	for name, v := range map[string]string{"AgentId": q.AgentID, "Kind": string(q.Kind), "Value": q.Value} {
		if v != "" {
			f.WriteString(" and " + name + " eq " + odataString(v))
		}
	}
	top := q.Top
	if top <= 0 || top > userstate.MaxTop {
		top = userstate.MaxTop
	}
	var out []userstate.Record
	next := ""
	// One more than asked says whether a next page exists.
	err := listTop(ctx, s.client(tableUserStates), f.String(), "", int32(min(top+1, maxPage)), func(r record) error {
		rec, err := decodeUserState(tenantID, r)
		if err != nil || !q.Matches(&rec) { // the filter asked for these; checked again all the same
			return err
		}
		if len(out) == top {
			next = userstate.Key(out[len(out)-1])
			return errStop
		}
		out = append(out, rec)
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("list user states: %w", err)
	}
	return out, next, nil
}

func decodeUserState(tenantID string, r record) (userstate.Record, error) {
	rec := userstate.Record{TenantID: tenantID, AgentID: r.str("AgentId"), Kind: userstate.Kind(r.str("Kind")),
		Value: r.str("Value"), Detail: r.str("Detail")}
	var err error
	if rec.Start, err = r.time("Start"); err != nil {
		return rec, err
	}
	rec.End, err = r.time("End")
	return rec, err
}
