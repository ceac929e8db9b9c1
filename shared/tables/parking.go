package tables

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/parking"
)

// Parked layout. PartitionKey is the function name. Two kinds of rows:
//
//   - the record: RowKey = inverted ticks of ParkedAt (19 digits) + "_" + idPart, so a
//     partition lists newest first and a query with Top returns the newest n without
//     reading the rest;
//   - the index, only when MessageID is set: RowKey = "id_" + idPart, Ref = the
//     record's RowKey. It makes Park idempotent per (function, MessageID): a re-park
//     reads the index and, in one transaction of the partition, replaces the index
//     (If-Match its ETag, or Add when new), deletes the old record and writes the new
//     one. Two parks of one message racing lose to each other's ETag and retry, so
//     exactly one record remains.
//
// idPart is "m"+MessageID when MessageID is a plain key fragment, "h"+SHA-256(MessageID)
// otherwise (Service Bus allows any characters, keys do not), and "r"+random for
// messages without a MessageID (each park is then its own record). Record keys start
// with a digit and index keys with "id_", so the record range is RowKey in ['0', ':').
//
// The body, which may be far larger than the 64 KiB a string property holds, is split
// over Body, Body1, Body2, ... up to what fits in the 1 MiB entity (a 256 KiB Service
// Bus message fits whole); only beyond that is it cut, with a visible marker.
const (
	parkedIndexPrefix = "id_"
	recordRange       = "RowKey ge '0' and RowKey lt ':'"
	maxReasonUnits    = 4 << 10 // UTF-16 units kept of Reason
	maxFieldUnits     = 512     // of MessageID and InvocationID
	bodyPartUnits     = maxStringBytes / 2
)

// Park implements parking.Store. Parking the same (Function, MessageID) again replaces
// the record. Function must be a valid key; long Reason, MessageID and InvocationID
// are shortened, a body beyond ~1 MiB is cut with a marker, so that parking (the last
// resort for a bad message) does not fail on the message's contents.
func (s *Store) Park(ctx context.Context, m parking.Message) error {
	if err := checkKey("parked.function", m.Function); err != nil {
		return fmt.Errorf("park message: %w", err)
	}
	if m.MessageID == "" {
		rec, err := parkedRecord(m, "r"+randomHex())
		if err != nil {
			return fmt.Errorf("park message: %w", err)
		}
		_, err = s.parked.UpsertEntity(ctx, rec.body, replace)
		return wrap("park message", err)
	}
	id := idPart(m.MessageID)
	rec, err := parkedRecord(m, id)
	if err != nil {
		return fmt.Errorf("park message: %w", err)
	}
	idx, err := newRow("parked index", "parked.function", m.Function, "parked.index", parkedIndexPrefix+id,
		props{"Ref": rec.rk, "MessageID": shorten(m.MessageID, maxFieldUnits)})
	if err != nil {
		return fmt.Errorf("park message: %w", err)
	}
	gone := "" // a record the index points to that turned out not to exist
	for attempt := 0; ; attempt++ {
		var acts []action
		deleting := ""
		resp, err := s.parked.GetEntity(ctx, m.Function, idx.rk, nil)
		switch err = classify(err); {
		case err == nil:
			r, err := decodeRecord(resp.Value)
			if err != nil {
				return fmt.Errorf("park message: %w", err)
			}
			etag := resp.ETag
			acts = append(acts, action{kind: aztables.TransactionTypeUpdateReplace, row: idx, ifMatch: &etag})
			if ref := r.str("Ref"); ref != rec.rk && ref != gone && ref != "" {
				old, err := newRow("parked", "parked.function", m.Function, "parked.ref", ref, nil)
				if err != nil {
					return fmt.Errorf("park message: index row: %w", err)
				}
				star := azcore.ETagAny
				acts = append(acts, action{kind: aztables.TransactionTypeDelete, row: old, ifMatch: &star})
				deleting = ref
			}
		case errors.Is(err, fault.ErrNotFound):
			acts = append(acts, action{kind: aztables.TransactionTypeAdd, row: idx})
		default:
			return fmt.Errorf("park message: %w", err)
		}
		acts = append(acts, action{kind: aztables.TransactionTypeInsertReplace, row: rec})
		err = submit(ctx, s.parked, acts)
		if err == nil {
			return nil
		}
		switch {
		case errors.Is(err, fault.ErrPrecondition), errors.Is(err, fault.ErrConflict):
			// Another park of this message won; start over from its index.
		case errors.Is(err, fault.ErrNotFound):
			// Action 1 is the delete: the old record is gone already (deleted by hand?),
			// so retry without it. Action 0 is the index, gone too: the next read sees
			// it absent and adds it.
			var se *storageError
			if errors.As(err, &se) && se.action == 1 && deleting != "" {
				gone = deleting
			}
		default:
			return fmt.Errorf("park message: %w", err)
		}
		if attempt+1 >= maxAttempts {
			return fmt.Errorf("park message: gave up after %d lost races: %w", maxAttempts, err)
		}
		if err := fault.Backoff(ctx, attempt); err != nil {
			return fmt.Errorf("park message: %w", err)
		}
	}
}

// parkedRecord builds the record row of m.
func parkedRecord(m parking.Message, id string) (row, error) {
	p := props{
		"MessageID":     shorten(m.MessageID, maxFieldUnits),
		"InvocationID":  shorten(m.InvocationID, maxFieldUnits),
		"DeliveryCount": int32(max(min(m.DeliveryCount, 1<<31-1), -1<<31)),
		"Reason":        shorten(m.Reason, maxReasonUnits),
		"ParkedAt":      m.ParkedAt,
	}
	rk := invertedTicks(m.ParkedAt) + "_" + id
	// Budget for the body: what Azure's size formula leaves of 1 MiB after the keys and
	// the other properties, with room for the truncation marker and part names.
	used := 4 + 2*(utf16Len(m.Function)+utf16Len(rk)) + 1024
	for name, v := range p {
		used += 8 + 2*utf16Len(name) + 8
		if s, ok := v.(string); ok {
			used += 4 + 2*utf16Len(s)
		}
	}
	splitBody(p, m.Body, (maxEntityBytes-used)/2)
	return newRow("parked", "parked.function", m.Function, "parked.id", rk, p)
}

// splitBody stores body over Body, Body1, ... within budget UTF-16 units (each part
// also costs its name and header), cutting it with a marker if it does not fit.
func splitBody(p props, body string, budget int) {
	const partCost = 16 // name and header of one part, in units
	if need := utf16Len(body); need+partCost*(need/bodyPartUnits+1) > budget {
		marker := fmt.Sprintf("\n[truncated by table storage: %d bytes received]", len(body))
		keep := budget - partCost*(budget/bodyPartUnits+1) - utf16Len(marker)
		head, _ := splitUnits(body, keep)
		body = head + marker
	}
	for i := 0; ; i++ {
		part, rest := splitUnits(body, bodyPartUnits)
		name := "Body"
		if i > 0 {
			name = fmt.Sprintf("Body%d", i)
		}
		p[name] = part
		if rest == "" {
			return
		}
		body = rest
	}
}

// splitUnits cuts s after at most n UTF-16 units, on a rune boundary.
func splitUnits(s string, n int) (head, tail string) {
	units := 0
	for i, r := range s {
		u := 1
		if r >= 0x10000 {
			u = 2
		}
		if units+u > n {
			return s[:i], s[i:]
		}
		units += u
	}
	return s, ""
}

// shorten keeps at most n UTF-16 units of s, marking the cut.
func shorten(s string, n int) string {
	if utf16Len(s) <= n {
		return s
	}
	head, _ := splitUnits(s, n-1)
	return head + "…"
}

// idPart identifies a message within its function's partition (see the layout).
func idPart(messageID string) string {
	if len(messageID) <= 200 && utf8.ValidString(messageID) && strings.IndexFunc(messageID, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.:@+=", r))
	}) < 0 {
		return "m" + messageID
	}
	sum := sha256.Sum256([]byte(messageID))
	return "h" + hex.EncodeToString(sum[:])
}

func randomHex() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// maxTicks is .NET's DateTime.MaxValue.Ticks, the classic base for inverted-time keys.
const maxTicks = 3155378975999999999

// invertedTicks is maxTicks minus t in 100 ns ticks since 0001-01-01 UTC, zero-padded
// to 19 digits: later times sort first. The zero time sorts last.
func invertedTicks(t time.Time) string {
	ticks := (t.Unix()+62135596800)*10_000_000 + int64(t.Nanosecond()/100)
	ticks = max(0, min(ticks, maxTicks))
	return fmt.Sprintf("%019d", maxTicks-ticks)
}

// ListParked implements parking.Store: up to limit messages (all if limit <= 0)
// parked by function ("" = every function), newest first.
func (s *Store) ListParked(ctx context.Context, function string, limit int) ([]parking.Message, error) {
	if function == "" {
		return s.listAllParked(ctx, limit)
	}
	if err := checkKey("parked.function", function); err != nil {
		return nil, fmt.Errorf("list parked: %w", err)
	}
	top := int32(maxPage)
	if limit > 0 && limit < maxPage {
		top = int32(limit)
	}
	out := []parking.Message{}
	err := listTop(ctx, s.parked, "PartitionKey eq "+odataString(function)+" and "+recordRange, "", top, func(r record) error {
		m, err := decodeParked(r)
		if err != nil {
			return err
		}
		out = append(out, m)
		if limit > 0 && len(out) >= limit {
			return errStop
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list parked: %w", err)
	}
	return out, nil
}

// listAllParked lists across partitions. The service returns them partition by
// partition, so the newest are found from the keys alone (RowKey starts with the
// inverted time), and only those records are then read in full.
func (s *Store) listAllParked(ctx context.Context, limit int) ([]parking.Message, error) {
	type key struct {
		pk, rk string
		m      parking.Message
	}
	byAge := func(ks []key) {
		sort.Slice(ks, func(i, j int) bool {
			if ks[i].rk != ks[j].rk {
				return ks[i].rk < ks[j].rk
			}
			return ks[i].pk < ks[j].pk
		})
	}
	var keys []key
	if limit <= 0 { // everything is wanted: one full scan
		err := listAll(ctx, s.parked, recordRange, "", func(r record) error {
			m, err := decodeParked(r)
			keys = append(keys, key{r.str("PartitionKey"), r.str("RowKey"), m})
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("list parked: %w", err)
		}
		byAge(keys)
		out := make([]parking.Message, len(keys))
		for i, k := range keys {
			out[i] = k.m
		}
		return out, nil
	}
	err := listAll(ctx, s.parked, recordRange, "PartitionKey,RowKey", func(r record) error {
		keys = append(keys, key{pk: r.str("PartitionKey"), rk: r.str("RowKey")})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list parked: %w", err)
	}
	byAge(keys)
	keys = keys[:min(limit, len(keys))]
	msgs := make([]*parking.Message, len(keys))
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2*maxConcurrentBatches)
	for i, k := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			resp, err := s.parked.GetEntity(ctx, k.pk, k.rk, nil)
			if err = classify(err); err != nil {
				if !errors.Is(err, fault.ErrNotFound) { // re-parked meanwhile: skip it
					errs[i] = err
				}
				return
			}
			r, err := decodeRecord(resp.Value)
			if err == nil {
				var m parking.Message
				m, err = decodeParked(r)
				msgs[i] = &m
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("list parked: %w", err)
	}
	out := make([]parking.Message, 0, len(msgs))
	for _, m := range msgs {
		if m != nil {
			out = append(out, *m)
		}
	}
	return out, nil
}

func decodeParked(r record) (parking.Message, error) {
	at, err := r.time("ParkedAt")
	if err != nil {
		return parking.Message{}, err
	}
	var body strings.Builder
	body.WriteString(r.str("Body"))
	for i := 1; r.has(fmt.Sprintf("Body%d", i)); i++ {
		body.WriteString(r.str(fmt.Sprintf("Body%d", i)))
	}
	return parking.Message{
		Function:      r.str("PartitionKey"),
		MessageID:     r.str("MessageID"),
		InvocationID:  r.str("InvocationID"),
		DeliveryCount: int(r.int("DeliveryCount")),
		Reason:        r.str("Reason"),
		Body:          body.String(),
		ParkedAt:      at,
	}, nil
}
