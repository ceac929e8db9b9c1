package tables

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// maxConcurrentBatches bounds the transactions one call has in flight. One partition
// takes ~2,000 entities/s, so a few concurrent batches of 100 are what it can absorb.
const maxConcurrentBatches = 4

// action is one operation of a transaction.
type action struct {
	kind    aztables.TransactionType
	row     row
	ifMatch *azcore.ETag
}

// submit runs one transaction. Azure's transaction rules are checked here because
// Azurite accepts batches Azure refuses; a failure inside the batch (answered 202)
// comes back as a classified error with the inner status.
func submit(ctx context.Context, c *aztables.Client, actions []action) error {
	if len(actions) == 0 {
		return nil
	}
	if len(actions) > maxBatchEntities {
		return fmt.Errorf("batch of %d actions, over Table storage's %d", len(actions), maxBatchEntities)
	}
	size, pk := 0, actions[0].row.pk
	seen := make(map[string]bool, len(actions))
	tas := make([]aztables.TransactionAction, len(actions))
	for i, a := range actions {
		if a.row.pk != pk {
			return errors.New("batch spans more than one partition")
		}
		if seen[a.row.rk] {
			return errors.New("batch has two actions on one row")
		}
		seen[a.row.rk] = true
		size += len(a.row.body) + batchOverhead + 3*(len(a.row.pk)+len(a.row.rk))
		tas[i] = aztables.TransactionAction{ActionType: a.kind, Entity: a.row.body, IfMatch: a.ifMatch}
	}
	if size > maxBatchBytes {
		return fmt.Errorf("batch of about %d bytes, over Table storage's 4 MiB", size)
	}
	_, err := c.SubmitTransaction(ctx, tas, nil)
	return classify(err)
}

// chunk splits the rows of one partition into batches of at most 100 rows and 4 MiB.
func chunk(rows []row) [][]row { return chunkBy(rows, maxBatchEntities, maxBatchBytes) }

// batchBytes is what a row adds to a transaction's payload, generously.
func batchBytes(r row) int { return len(r.body) + batchOverhead + 3*(len(r.pk)+len(r.rk)) }

// chunkBy splits rows into batches of at most maxRows rows and about maxBytes.
func chunkBy(rows []row, maxRows, maxBytes int) [][]row {
	var out [][]row
	start, size := 0, 0
	for i, r := range rows {
		n := batchBytes(r)
		if i > start && (i-start == maxRows || size+n > maxBytes) {
			out = append(out, rows[start:i])
			start, size = i, 0
		}
		size += n
	}
	if start < len(rows) {
		out = append(out, rows[start:])
	}
	return out
}

// dedupe keeps the last row for each RowKey (a batch may not touch a row twice, and
// the last write is what a sequence of upserts would leave).
func dedupe(rows []row) []row {
	last := make(map[string]int, len(rows))
	for i, r := range rows {
		last[r.rk] = i
	}
	if len(last) == len(rows) {
		return rows
	}
	out := make([]row, 0, len(last))
	for i, r := range rows {
		if last[r.rk] == i {
			out = append(out, r)
		}
	}
	return out
}

// upsertAll inserts or replaces rows of one partition in transactions, at most
// maxConcurrentBatches at once. Each batch is atomic, the call is not: on error some
// batches may be written. The first error cancels the batches not yet started.
func upsertAll(ctx context.Context, c *aztables.Client, rows []row) error {
	return upsertBatches(ctx, c, chunk(dedupe(rows)), nil)
}

// upsertAllStamped is upsertAll with one more row in every transaction: stamp (same
// partition, a RowKey none of rows has). So every batch that commits also rewrites
// the stamp row, and changes its ETag, atomically with its rows.
func upsertAllStamped(ctx context.Context, c *aztables.Client, rows []row, stamp row) error {
	return upsertBatches(ctx, c, chunkBy(dedupe(rows), maxBatchEntities-1, maxBatchBytes-batchBytes(stamp)), &stamp)
}

// upsertBatches submits the batches, at most maxConcurrentBatches at once, each with
// the stamp row when there is one.
func upsertBatches(ctx context.Context, c *aztables.Client, batches [][]row, stamp *row) error {
	return inBatches(ctx, len(batches), true, func(ctx context.Context, i int) error {
		as := upserts(batches[i])
		if stamp != nil {
			as = append(as, action{kind: aztables.TransactionTypeInsertReplace, row: *stamp})
		}
		return submit(ctx, c, as)
	})
}

// inBatches runs fn for batches 0..n-1, at most maxConcurrentBatches at once. With
// stop, the first error cancels the batches still running, starts no more and is the
// one returned; without, every batch runs and their errors are returned joined.
func inBatches(ctx context.Context, n int, stop bool, fn func(ctx context.Context, i int) error) error {
	if n == 1 {
		return fn(ctx, 0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, maxConcurrentBatches)
	)
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if err := ctx.Err(); err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				if stop {
					cancel()
				}
			}
		})
	}
	wg.Wait()
	if stop && len(errs) > 0 {
		return errs[0]
	}
	return errors.Join(errs...)
}

func upserts(rows []row) []action {
	as := make([]action, len(rows))
	for i, r := range rows {
		as[i] = action{kind: aztables.TransactionTypeInsertReplace, row: r}
	}
	return as
}

// errStop, returned by a listAll callback, ends the listing without an error.
var errStop = errors.New("stop listing")

// listAll pages through the entities matching filter (1,000 a page, the service's
// maximum) and hands each to fn, until fn returns errStop.
func listAll(ctx context.Context, c *aztables.Client, filter, sel string, fn func(record) error) error {
	return listTop(ctx, c, filter, sel, maxPage, fn)
}

// maxPage is the most entities the service returns in one page.
const maxPage = 1000

// listTop is listAll with pages of top entities.
func listTop(ctx context.Context, c *aztables.Client, filter, sel string, top int32, fn func(record) error) error {
	opts := &aztables.ListEntitiesOptions{Filter: &filter, Top: &top}
	if sel != "" {
		opts.Select = &sel
	}
	pager := c.NewListEntitiesPager(opts)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return classify(err)
		}
		for _, b := range page.Entities {
			r, err := decodeRecord(b)
			if err != nil {
				return err
			}
			if err := fn(r); err != nil {
				if errors.Is(err, errStop) {
					return nil
				}
				return err
			}
		}
	}
	return nil
}
