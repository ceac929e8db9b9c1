package tables

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/teamscc/teamscc/shared/fault"
)

// Azure Table storage limits. Azurite does not enforce all of them, so this package
// does, before any request.
const (
	maxKeyBytes      = 1 << 10  // PartitionKey, RowKey (counted in UTF-16, like strings)
	maxStringBytes   = 64 << 10 // a string property, UTF-16 encoded
	maxEntityBytes   = 1 << 20  // one entity, by Azure's size formula
	maxProperties    = 252      // custom properties per entity
	maxBatchEntities = 100      // actions per transaction
	maxBatchBytes    = 4 << 20  // request payload of a transaction
	batchOverhead    = 512      // multipart headers and URL of one action, generously
)

// edmTime is how Edm.DateTime values are written: UTC with exactly 7 fractional
// digits, the service's own 100 ns resolution (Go's Format truncates, never rounds).
const edmTime = "2006-01-02T15:04:05.0000000Z"

// Edm.DateTime range the service accepts.
var (
	minEdmTime = time.Date(1601, 1, 1, 0, 0, 0, 0, time.UTC)
	maxEdmTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
)

// props are an entity's custom properties. Values are string, bool, int32, int64 or
// time.Time; a zero time.Time is left out (Azure rejects dates before 1601).
type props map[string]any

// row is an entity ready for the SDK: its JSON and its size by Azure's formula.
type row struct {
	pk, rk string
	body   []byte
	size   int
}

// utf16Len is the length of s in UTF-16 code units, which is what Azure's size limits
// count (bytes = 2 × units).
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		if r >= 0x10000 {
			n += 2
		} else {
			n++
		}
	}
	return n
}

// checkKey enforces Azure's key rules, plus two of the SDK's: no empty key (its URL
// builders refuse it) and no single quote (its batch requests put keys into the URL
// without doubling quotes, so such a key would address the wrong entity or fail).
func checkKey(field, k string) error {
	switch {
	case k == "":
		return fault.Invalid(field, "required")
	case !utf8.ValidString(k):
		return fault.Invalid(field, "not valid UTF-8")
	case 2*utf16Len(k) > maxKeyBytes:
		return fault.Invalid(field, "longer than 1 KiB (Table storage key limit)")
	}
	for _, r := range k {
		switch {
		case r == '/' || r == '\\' || r == '#' || r == '?':
			return fault.Invalid(field, `must not contain / \ # or ? (Table storage key rule)`)
		case r == '\'':
			return fault.Invalid(field, "must not contain ' (not escaped by the SDK's batch requests)")
		case r <= 0x1f || (r >= 0x7f && r <= 0x9f):
			return fault.Invalid(field, "must not contain control characters (Table storage key rule)")
		}
	}
	return nil
}

// newRow validates keys and properties against Azure's limits and encodes the entity
// with the OData type annotations Table storage needs for DateTime and Int64.
// what names the entity in errors ("agent", "presence").
func newRow(what, pkField, pk, rkField, rk string, p props) (row, error) {
	if err := checkKey(pkField, pk); err != nil {
		return row{}, err
	}
	if err := checkKey(rkField, rk); err != nil {
		return row{}, err
	}
	if len(p) > maxProperties {
		return row{}, fault.Invalid(what, fmt.Sprintf("%d properties, over Table storage's %d", len(p), maxProperties))
	}
	size := 4 + 2*(utf16Len(pk)+utf16Len(rk))
	m := make(map[string]any, 2+2*len(p))
	m["PartitionKey"], m["RowKey"] = pk, rk
	for name, v := range p {
		n := 8 + 2*utf16Len(name)
		switch v := v.(type) {
		case string:
			b := 2 * utf16Len(v)
			if b > maxStringBytes {
				return row{}, fault.Invalid(what+"."+name, fmt.Sprintf("%d bytes as UTF-16, over Table storage's 64 KiB string limit", b))
			}
			n += 4 + b
			m[name] = v
		case bool:
			n++
			m[name] = v
		case int32:
			n += 4
			m[name] = v
		case int64:
			n += 8
			m[name] = strconv.FormatInt(v, 10)
			m[name+"@odata.type"] = "Edm.Int64"
		case time.Time:
			if v.IsZero() {
				continue
			}
			u := v.UTC()
			if u.Before(minEdmTime) || !u.Before(maxEdmTime) {
				return row{}, fault.Invalid(what+"."+name, "outside Table storage's date range 1601-9999")
			}
			n += 8
			m[name] = u.Format(edmTime)
			m[name+"@odata.type"] = "Edm.DateTime"
		default:
			return row{}, fmt.Errorf("%s.%s: unsupported property type %T", what, name, v)
		}
		size += n
	}
	if size > maxEntityBytes {
		return row{}, fault.Invalid(what, fmt.Sprintf("%d bytes, over Table storage's 1 MiB entity limit", size))
	}
	body, err := json.Marshal(m)
	if err != nil {
		return row{}, fmt.Errorf("encode %s: %w", what, err)
	}
	return row{pk: pk, rk: rk, body: body, size: size}, nil
}

// record is an entity as the service returned it.
type record map[string]json.RawMessage

func decodeRecord(b []byte) (record, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode entity: %w", err)
	}
	return r, nil
}

func (r record) str(name string) string {
	var s string
	_ = json.Unmarshal(r[name], &s)
	return s
}

func (r record) has(name string) bool { _, ok := r[name]; return ok }

func (r record) int(name string) int64 {
	raw := r[name]
	if len(raw) > 0 && raw[0] == '"' { // Edm.Int64 travels as a string
		n, _ := strconv.ParseInt(r.str(name), 10, 64)
		return n
	}
	var n int64
	_ = json.Unmarshal(raw, &n)
	return n
}

// time reads an Edm.DateTime property; absent is the zero time.
func (r record) time(name string) (time.Time, error) {
	s := r.str(name)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("decode %s: not a date", name)
	}
	return t.UTC(), nil
}

// data decodes the JSON Data property into v.
func (r record) data(what string, v any) error {
	if err := json.Unmarshal([]byte(r.str("Data")), v); err != nil {
		return fmt.Errorf("decode %s: %w", what, err)
	}
	return nil
}

// odataString quotes s for an OData filter.
func odataString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
