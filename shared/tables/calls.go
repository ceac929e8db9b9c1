package tables

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/teamscc/teamscc/shared/calls"
	"github.com/teamscc/teamscc/shared/fault"
)

// Calls table (before the prefix):
//
//	Calls   PK tenant id   RK call id   Data (JSON Call; Data1, Data2, ... when longer than 64 KiB)
//	                                    + Phase, Direction, ServiceId, Open, Created, NextAt, Ended (absent when zero)
//
// One partition per tenant, so the reconciler's DueCalls is one partition query on
// NextAt. NextAt is written only when set: a filter NextAt le datetime'…' never
// matches a row without it, i.e. a call with nothing due.
//
// Why Data may be split: Call.Steps is bounded (calls.MaxSteps) but Call.Legs is not
// (every offer attempt adds one), so a long-queued call's JSON can pass the 64 KiB of
// one string property while far below the 1 MiB of an entity; the JSON goes on in
// Data1, Data2, ... (cut on character boundaries) and is joined on read. Only beyond
// 1 MiB is a call refused (a *fault.FieldError).
const tableCalls = "Calls"

var _ calls.Store = (*Store)(nil)

// dataPart names the i-th part of a call's JSON: Data, Data1, Data2, ...
func dataPart(i int) string {
	if i == 0 {
		return "Data"
	}
	return fmt.Sprintf("Data%d", i)
}

func callEntity(c calls.Call) (row, error) {
	if n := len(c.Steps); n > calls.MaxSteps {
		return row{}, fault.Invalid("steps", fmt.Sprintf("%d steps, over calls.MaxSteps (%d)", n, calls.MaxSteps))
	}
	data, err := json.Marshal(c)
	if err != nil {
		return row{}, fmt.Errorf("encode call: %w", err)
	}
	js := string(data)
	if b := 2 * utf16Len(js); b > maxEntityBytes {
		return row{}, fault.Invalid("call", fmt.Sprintf("%d bytes of JSON as UTF-16, over Table storage's 1 MiB entity limit", b))
	}
	p := props{
		"Phase": string(c.Phase), "Direction": string(c.Direction), "ServiceId": c.ServiceID, "Open": c.Open(),
		"Created": c.Created, "NextAt": c.NextAt, "Ended": c.EndedAt, // zero times are left out (newRow)
	}
	for i := 0; ; i++ {
		part, rest := splitUnits(js, bodyPartUnits)
		p[dataPart(i)] = part
		if rest == "" {
			break
		}
		js = rest
	}
	return newRow("call", "tenantId", c.TenantID, "callId", c.ID, p)
}

func decodeCall(r record, etag string) (calls.Call, error) {
	var b strings.Builder
	for i := 0; i == 0 || r.has(dataPart(i)); i++ {
		b.WriteString(r.str(dataPart(i)))
	}
	var c calls.Call
	if err := json.Unmarshal([]byte(b.String()), &c); err != nil {
		return calls.Call{}, fmt.Errorf("decode call: %w", err)
	}
	c.ETag = etag
	return c, nil
}

// CreateCall implements calls.Store: one AddEntity; 409 → fault.ErrConflict. A call
// with a key Table storage refuses, more than calls.MaxSteps steps or over 1 MiB is a
// *fault.FieldError, and nothing is sent.
func (s *Store) CreateCall(ctx context.Context, c calls.Call) (calls.Call, error) {
	r, err := callEntity(c)
	if err != nil {
		return calls.Call{}, fmt.Errorf("create call: %w", err)
	}
	resp, err := s.client(tableCalls).AddEntity(ctx, r.body, nil)
	if err != nil {
		return calls.Call{}, wrap("create call", err)
	}
	c = c.Clone()
	c.ETag = string(resp.ETag)
	return c, nil
}

// GetCall implements calls.Store: one point read; 404 → fault.ErrNotFound.
func (s *Store) GetCall(ctx context.Context, tenantID, id string) (calls.Call, error) {
	if err := errors.Join(checkKey("tenantId", tenantID), checkKey("callId", id)); err != nil {
		return calls.Call{}, fmt.Errorf("get call: %w", err)
	}
	resp, err := s.client(tableCalls).GetEntity(ctx, tenantID, id, nil)
	if err != nil {
		return calls.Call{}, wrap("get call", err)
	}
	r, err := decodeRecord(resp.Value)
	if err != nil {
		return calls.Call{}, fmt.Errorf("get call: %w", err)
	}
	c, err := decodeCall(r, string(resp.ETag))
	if err != nil {
		return calls.Call{}, fmt.Errorf("get call: %w", err)
	}
	return c, nil
}

// UpdateCall implements calls.Store: a point read, fn, and UpdateEntity If-Match the
// ETag read (two round trips). A lost race (412) starts over after a short jittered
// wait, at most maxAttempts times. fn's error is returned as is with nothing written;
// a call that breaks the limits after fn is a *fault.FieldError, also unwritten.
func (s *Store) UpdateCall(ctx context.Context, tenantID, id string, fn func(*calls.Call) error) (calls.Call, error) {
	c := s.client(tableCalls)
	for attempt := 0; ; attempt++ {
		cur, err := s.GetCall(ctx, tenantID, id)
		if err != nil {
			return calls.Call{}, fmt.Errorf("update call: %w", err)
		}
		read := cur.ETag
		if err := fn(&cur); err != nil {
			return calls.Call{}, err
		}
		cur.TenantID, cur.ID = tenantID, id
		r, err := callEntity(cur)
		if err != nil {
			return calls.Call{}, fmt.Errorf("update call: %w", err)
		}
		etag, err := s.updateIf(ctx, c, r, read)
		if err == nil {
			cur = cur.Clone()
			cur.ETag = etag
			return cur, nil
		}
		if !errors.Is(err, fault.ErrPrecondition) {
			return calls.Call{}, fmt.Errorf("update call: %w", err)
		}
		if attempt+1 >= maxAttempts {
			return calls.Call{}, fmt.Errorf("update call: gave up after %d lost races: %w", maxAttempts, err)
		}
		if err := fault.Backoff(ctx, attempt); err != nil {
			return calls.Call{}, fmt.Errorf("update call: %w", err)
		}
	}
}

// DueCalls implements calls.Store: one query of the tenant's partition on NextAt le
// t, following every page (one round trip per 1,000 calls).
func (s *Store) DueCalls(ctx context.Context, tenantID string, t time.Time) ([]calls.Call, error) {
	if err := checkKey("tenantId", tenantID); err != nil {
		return nil, fmt.Errorf("due calls: %w", err)
	}
	out := []calls.Call{}
	u := t.UTC()
	if u.Before(minEdmTime) {
		return out, nil // no stored NextAt is before 1601
	}
	if !u.Before(maxEdmTime) {
		u = maxEdmTime.Add(-100 * time.Nanosecond)
	}
	// The column holds NextAt truncated to 100 ns, as is u, so the filter matches every
	// due call and possibly one due up to 100 ns after t; Data's exact NextAt decides.
	filter := "PartitionKey eq " + odataString(tenantID) + " and NextAt le datetime'" + u.Format(edmTime) + "'"
	err := listAll(ctx, s.client(tableCalls), filter, "", func(r record) error {
		c, err := decodeCall(r, r.str("odata.etag"))
		if err != nil {
			return err
		}
		if !c.NextAt.IsZero() && !c.NextAt.After(t) {
			out = append(out, c)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("due calls: %w", err)
	}
	return out, nil
}
