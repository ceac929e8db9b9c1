package tables

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/retention"
	"github.com/teamscc/teamscc/shared/userstate"
)

// Retention (retention.Store). Every purge is one query for the rows old enough (keys,
// ETags and the one or two columns the rule needs; one request per 1,000 rows read),
// then deletes If-Match the ETag read, grouped by partition into transactions of up to
// 100 rows. A row that changed since the read (a task that finished, a session
// recovered, a message parked again) fails its delete with 412, or 404 when it is
// gone: it is left out and the rest of its transaction sent again. So nothing newer
// than the cutoff is deleted, and a repeated call deletes nothing more.
//
// The queries filter on the typed columns beside Data (Open, Created, Ended, State,
// ClosedAt, CreatedAt, At, End), and use key ranges where the layout orders rows by
// time:
//   - user-state records: RowKeys begin with the start instant, so the range ends at
//     the cutoff (a record ends after it starts, and never spans a midnight);
//   - parked messages: RowKeys begin with the inverted park time, so the range starts
//     at the cutoff (and the index rows are those whose Ref is in that range);
//   - finished tasks: the done range of the service's partition ("~~t_"; plus done
//     rows still in the open range, written before done tasks moved). Within it the
//     order is by task id, so Created narrows the rows on the server (a task ends after
//     it starts) and Ended decides;
//   - calls and sessions are filtered within the tenant's partition
//     (a scan of it on the server): their RowKeys are what readers look them up by (a
//     call id, a random session id), which a time-ordered key would
//     break or double.
//
// Rows written before the Ended column existed are judged by Created: calls and tasks
// end within hours of their start (routing.MaxCallDuration).

// victim is a row to delete If-Match the ETag it was read at; item says it counts
// as one deleted item (a parked message's index row does not).
type victim struct {
	pk, rk string
	etag   azcore.ETag
	item   bool
}

// edmCutoff is before as the service compares it: UTC, truncated to its 100 ns (so a
// time read back below it was below before) and within its date range.
func edmCutoff(before time.Time) (time.Time, string) {
	b := before.UTC().Truncate(100 * time.Nanosecond)
	if b.Before(minEdmTime) {
		b = minEdmTime
	}
	if !b.Before(maxEdmTime) {
		b = maxEdmTime.Add(-100 * time.Nanosecond)
	}
	return b, "datetime'" + b.Format(edmTime) + "'"
}

// endedBefore: a row ended before b, or (without Ended) created before it, which the
// query checked.
func endedBefore(b time.Time) func(record) bool {
	return func(r record) bool {
		e, err := r.time("Ended")
		return err == nil && e.Before(b)
	}
}

// collect runs the query and keeps the rows ok accepts (nil: every row), at most
// limit, reading pages of up to limit rows; more says the last page read had more
// rows, or the service had another page (which may turn out empty: the next call
// finds out), so a call that fills its limit never reads a page just to say so.
func collect(ctx context.Context, c *aztables.Client, filter, sel string, limit int, ok func(record) bool) (vs []victim, more bool, err error) {
	top := int32(min(limit, maxPage))
	pager := c.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter, Select: &sel, Top: &top})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, false, classify(err)
		}
		for _, b := range page.Entities {
			r, err := decodeRecord(b)
			if err != nil {
				return nil, false, err
			}
			if ok != nil && !ok(r) {
				continue
			}
			if len(vs) == limit {
				return vs, true, nil
			}
			vs = append(vs, victim{pk: r.str("PartitionKey"), rk: r.str("RowKey"), etag: azcore.ETag(r.str("odata.etag")), item: true})
		}
		if len(vs) == limit {
			return vs, pager.More(), nil
		}
	}
	return vs, false, nil
}

// purge is collect then deleteAll.
func (s *Store) purge(ctx context.Context, c *aztables.Client, filter, sel string, limit int, ok func(record) bool) (retention.Result, error) {
	vs, more, err := collect(ctx, c, filter, sel, retention.ClampLimit(limit), ok)
	if err != nil {
		return retention.Result{}, err
	}
	n, err := deleteAll(ctx, c, vs)
	return retention.Result{Deleted: n, More: more}, err
}

// deleteAll deletes the victims: a transaction per partition and 100 rows (a single
// row: a plain delete), up to maxConcurrentBatches at once. Rows that changed or went
// since they were read are skipped. It returns the items deleted.
func deleteAll(ctx context.Context, c *aztables.Client, vs []victim) (int, error) {
	var batches [][]victim
	at := map[string]int{} // partition → its open batch
	for _, v := range vs {
		i, ok := at[v.pk]
		if !ok || len(batches[i]) == maxBatchEntities {
			batches = append(batches, nil)
			i = len(batches) - 1
			at[v.pk] = i
		}
		batches[i] = append(batches[i], v)
	}
	var total atomic.Int64
	err := inBatches(ctx, len(batches), false, func(ctx context.Context, i int) error {
		n, err := deleteBatch(ctx, c, batches[i])
		total.Add(int64(n))
		return err
	})
	return int(total.Load()), err
}

// gone: the row changed since it was read (412) or is gone (404).
func gone(err error) bool {
	return errors.Is(err, fault.ErrPrecondition) || errors.Is(err, fault.ErrNotFound)
}

// deleteBatch deletes the rows of one partition in one transaction. A row that
// changed or went fails the whole transaction: that row is left out and the rest sent
// again (one row at a time when the service does not say which row failed).
func deleteBatch(ctx context.Context, c *aztables.Client, b []victim) (int, error) {
	items := func(vs []victim) int {
		n := 0
		for _, v := range vs {
			if v.item {
				n++
			}
		}
		return n
	}
	b = slices.Clone(b)
	for len(b) > 1 {
		acts := make([]action, len(b))
		for i, v := range b {
			r, err := newRow("row", "partitionKey", v.pk, "rowKey", v.rk, nil)
			if err != nil {
				return 0, err
			}
			acts[i] = action{kind: aztables.TransactionTypeDelete, row: r, ifMatch: &b[i].etag}
		}
		err := submit(ctx, c, acts)
		if err == nil {
			return items(b), nil
		}
		if !gone(err) {
			return 0, err
		}
		var se *storageError
		if !errors.As(err, &se) || se.action < 0 || se.action >= len(b) {
			n := 0
			for _, v := range b {
				d, err := deleteBatch(ctx, c, []victim{v})
				if err != nil {
					return n, err
				}
				n += d
			}
			return n, nil
		}
		b = slices.Delete(b, se.action, se.action+1)
	}
	if len(b) == 0 {
		return 0, nil
	}
	v := b[0]
	_, err := c.DeleteEntity(ctx, v.pk, v.rk, &aztables.DeleteEntityOptions{IfMatch: &v.etag})
	if err = classify(err); gone(err) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	return items(b), nil
}

const taskRanges = "((RowKey ge '" + donePrefix + "' and RowKey lt '~~t`') or (RowKey ge '" + taskPrefix + "' and RowKey lt 't`'))"

// PurgeFinishedTasks implements retention.Store: one query of the service's done
// range (see above), deletes in transactions of 100.
func (s *Store) PurgeFinishedTasks(ctx context.Context, tenantID, serviceID string, before time.Time, limit int) (retention.Result, error) {
	pk := queuePK(tenantID, serviceID)
	if err := checkKey("serviceId", pk); err != nil {
		return retention.Result{}, fmt.Errorf("purge finished tasks: %w", err)
	}
	b, lit := edmCutoff(before)
	filter := "PartitionKey eq " + odataString(pk) + " and " + taskRanges + " and Open eq false and (Ended lt " + lit + " or Created lt " + lit + ")"
	res, err := s.purge(ctx, s.client(tableRoutingQueues), filter, "PartitionKey,RowKey,Ended", limit, endedBefore(b))
	if err != nil {
		return res, fmt.Errorf("purge finished tasks: %w", err)
	}
	return res, nil
}

// PurgeEndedCalls implements retention.Store: one query of the tenant's partition
// on Open, Ended and Created, deletes in transactions of 100.
func (s *Store) PurgeEndedCalls(ctx context.Context, tenantID string, before time.Time, limit int) (retention.Result, error) {
	if err := checkKey("tenantId", tenantID); err != nil {
		return retention.Result{}, fmt.Errorf("purge ended calls: %w", err)
	}
	b, lit := edmCutoff(before)
	filter := "PartitionKey eq " + odataString(tenantID) + " and Open eq false and (Ended lt " + lit + " or Created lt " + lit + ")"
	res, err := s.purge(ctx, s.client(tableCalls), filter, "PartitionKey,RowKey,Ended", limit, endedBefore(b))
	if err != nil {
		return res, fmt.Errorf("purge ended calls: %w", err)
	}
	return res, nil
}

// PurgeSessions implements retention.Store: one query of the tenant's partition on
// State, ClosedAt and CreatedAt, deletes in transactions of 100.
func (s *Store) PurgeSessions(ctx context.Context, tenantID string, closedBefore, openedBefore time.Time, limit int) (retention.Result, error) {
	if err := checkKey("tenantId", tenantID); err != nil {
		return retention.Result{}, fmt.Errorf("purge sessions: %w", err)
	}
	_, closed := edmCutoff(closedBefore)
	_, opened := edmCutoff(openedBefore)
	filter := "PartitionKey eq " + odataString(tenantID) + " and ((State eq 'closed' and ClosedAt lt " + closed +
		") or (State eq 'open' and CreatedAt lt " + opened + "))"
	res, err := s.purge(ctx, s.interactSessions(), filter, "PartitionKey,RowKey", limit, nil)
	if err != nil {
		return res, fmt.Errorf("purge sessions: %w", err)
	}
	return res, nil
}

// PurgeUserStates implements retention.Store: one query of the tenant's records up
// to the cutoff's key, on Open and End; deletes in transactions of 100.
func (s *Store) PurgeUserStates(ctx context.Context, tenantID string, before time.Time, limit int) (retention.Result, error) {
	if err := checkKey("tenantId", tenantID); err != nil {
		return retention.Result{}, fmt.Errorf("purge user states: %w", err)
	}
	b, lit := edmCutoff(before)
	filter := "PartitionKey eq " + odataString(tenantID) + " and RowKey ge '" + recordPrefix + "' and RowKey lt " +
		odataString(recordPrefix+userstate.KeyFrom(b)) + " and Open eq false and End lt " + lit
	res, err := s.purge(ctx, s.client(tableUserStates), filter, "PartitionKey,RowKey", limit, nil)
	if err != nil {
		return res, fmt.Errorf("purge user states: %w", err)
	}
	return res, nil
}

// PurgeParked implements retention.Store: one query of every function's partition
// for the records parked before the cutoff (a RowKey range) and the index rows that
// point at them; deletes in transactions of 100 per function. The limit counts both
// kinds of rows, Deleted the messages. An index row left by a call that stopped at
// its limit is found by the next (its Ref still points into the range).
func (s *Store) PurgeParked(ctx context.Context, before time.Time, limit int) (retention.Result, error) {
	b, _ := edmCutoff(before)
	// A record parked before b has a larger inverted time: its RowKey is at least the
	// cutoff's digits followed by "~" (beyond "_", what follows the digits).
	from := odataString(invertedTicks(b) + "~")
	filter := "(RowKey ge " + from + " and RowKey lt ':') or (RowKey ge '" + parkedIndexPrefix + "' and RowKey lt 'id`' and Ref ge " + from + ")"
	vs, more, err := collect(ctx, s.parked, filter, "PartitionKey,RowKey,Ref", retention.ClampLimit(limit), nil)
	if err != nil {
		return retention.Result{}, fmt.Errorf("purge parked: %w", err)
	}
	for i := range vs {
		vs[i].item = !strings.HasPrefix(vs[i].rk, parkedIndexPrefix)
	}
	n, err := deleteAll(ctx, s.parked, vs)
	if err != nil {
		return retention.Result{Deleted: n, More: more}, fmt.Errorf("purge parked: %w", err)
	}
	return retention.Result{Deleted: n, More: more}, nil
}

var _ retention.Store = (*Store)(nil)
