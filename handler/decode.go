package main

import (
	"bytes"
	"cmp"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/teamscc/teamscc/shared/fault"
)

// maxBody is the most a request or message body may hold.
const maxBody = 64 << 10

// readBody reads r whole. A body over maxBody is fault.Invalid("body", ...), one that
// cannot be read fault.Invalid("body", "could not be read").
func readBody(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxBody+1))
	switch {
	case err != nil:
		return nil, fault.Invalid("body", "could not be read")
	case len(b) > maxBody:
		return nil, fault.Invalid("body", fmt.Sprintf("must be at most %d KiB", maxBody>>10))
	}
	return b, nil
}

// decodeStrict reads a body of at most maxBody from r and decodes it as decodeJSON
// does. A larger body, or one that cannot be read, is a *fault.FieldError for "body"
// (readBody). The one decoder of request and message bodies: every error names the
// field and the rule.
func decodeStrict(r io.Reader, v any) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	return decodeJSON(b, v)
}

// decodeJSON decodes b, one JSON value and nothing after it, into v, refusing fields v
// does not have, so that a typo is an error rather than a silently ignored setting.
// Numbers decoded into an interface are json.Number. Every error is a
// *fault.FieldError:
//   - a value of the wrong type names its field by path (struct fields and map keys
//     dotted, array elements indexed: "distribution.weights.x", "phoneNumbers[0].kind")
//     and the type it must have ("must be a string", "must be a whole number");
//   - a field v does not have is named by path with "unknown field";
//   - "body" is named only for the body as a whole: not JSON, not a JSON object (or
//     what v is), or followed by more than white space.
func decodeJSON(b []byte, v any) error { return decodeAt("", b, v) }

// decodeAt is decodeJSON for the value of the field at path (a dotted path; "" for the
// body): the fields its errors name start with at.
func decodeAt(at string, b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	err := dec.Decode(v)
	if err == nil {
		if _, err := dec.Token(); err != io.EOF {
			return fault.Invalid(orBody(at), "must be one JSON value with nothing after it")
		}
		return nil
	}
	var fe *fault.FieldError
	var ute *json.UnmarshalTypeError
	switch {
	case errors.As(err, &fe): // a rule of the type's own UnmarshalJSON
		return fault.Invalid(orBody(join(at, fe.Field)), fe.Rule)
	case errors.As(err, &ute):
		path, t, ok := locate(b, reflect.TypeOf(v), wrongType)
		if !ok || deref(t) != deref(ute.Type) {
			path, t = ute.Field, ute.Type
		}
		if at == "" && path == "" {
			return fault.Invalid("body", "must be a JSON object")
		}
		return fault.Invalid(join(at, path), typeRule(t))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		key, qerr := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		if qerr != nil {
			key = strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		}
		path, _, ok := locate(b, reflect.TypeOf(v), unknownKey)
		if !ok || !(path == key || strings.HasSuffix(path, "."+key)) {
			path = key
		}
		return fault.Invalid(join(at, path), "unknown field")
	}
	// Not JSON (a syntax error, an empty or cut-off body), or an error of a type's own
	// UnmarshalJSON that names no field.
	return fault.Invalid(orBody(at), "must be a JSON object")
}

// join is the path of sub (a key, or a path) under the path at.
func join(at, sub string) string {
	switch {
	case at == "":
		return sub
	case sub == "" || strings.HasPrefix(sub, "["):
		return at + sub
	}
	return at + "." + sub
}

// orBody names the body when path is empty.
func orBody(path string) string {
	if path == "" {
		return "body"
	}
	return path
}

// typeRule is the rule a value of the wrong type broke: the JSON type t is read from.
func typeRule(t reflect.Type) string {
	switch t = deref(t); t.Kind() {
	case reflect.String:
		return "must be a string"
	case reflect.Bool:
		return "must be true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "must be a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "must be a whole number, 0 or more"
	case reflect.Float32, reflect.Float64:
		return "must be a number"
	case reflect.Struct, reflect.Map:
		return "must be a JSON object"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return "must be a base64 string"
		}
		return "must be a JSON array"
	}
	return "has the wrong type"
}

func deref(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// problem is what locate looks for.
type problem int

const (
	wrongType  problem = iota // a value encoding/json cannot decode into its Go type
	unknownKey                // an object key naming no field of its struct
)

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// locate walks the JSON value b alongside the Go type t as encoding/json decodes it
// and finds the first place, in document order, that has problem p: its path (struct
// fields and map keys dotted, array elements as [i]) and the Go type expected there
// (nil for an unknown key). encoding/json's own errors lack map keys and array indices
// in their paths and name only the key of an unknown field; decodeAt checks what
// locate finds against them. ok is false when there is no such place or b is not
// JSON. Types that decode themselves (UnmarshalJSON, UnmarshalText) and fields with
// the ",string" option are not looked into.
func locate(b []byte, t reflect.Type, p problem) (path string, want reflect.Type, ok bool) {
	l := &locator{dec: json.NewDecoder(bytes.NewReader(b)), want: p}
	l.dec.UseNumber()
	if err := l.value(t, ""); err != nil || !l.found {
		return "", nil, false
	}
	return l.path, l.typ, true
}

type locator struct {
	dec   *json.Decoder
	want  problem
	found bool
	path  string
	typ   reflect.Type
}

// report notes a problem at path; true when it is the one looked for.
func (l *locator) report(p problem, path string, t reflect.Type) bool {
	if p == l.want {
		l.found, l.path, l.typ = true, path, t
	}
	return l.found
}

// value reads one JSON value expected to decode into t (nil: anything).
func (l *locator) value(t reflect.Type, path string) error {
	tok, err := l.dec.Token()
	if err != nil {
		return err
	}
	t = deref(t)
	if t != nil && (t.Kind() == reflect.Interface || decodesItself(t)) {
		t = nil
	}
	switch tok := tok.(type) {
	case json.Delim:
		if tok == '[' {
			return l.array(t, path)
		}
		return l.object(t, path)
	case string:
		if t != nil && t.Kind() != reflect.String && !(t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8) {
			l.report(wrongType, path, t)
		}
	case json.Number:
		if t != nil && !fitsNumber(t, tok) {
			l.report(wrongType, path, t)
		}
	case bool:
		if t != nil && t.Kind() != reflect.Bool {
			l.report(wrongType, path, t)
		}
	}
	return nil
}

func (l *locator) object(t reflect.Type, path string) error {
	if t != nil && t.Kind() != reflect.Struct && t.Kind() != reflect.Map {
		if l.report(wrongType, path, t) {
			return nil
		}
		t = nil
	}
	for l.dec.More() {
		tok, err := l.dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		sub := key
		if path != "" {
			sub = path + "." + key
		}
		var ft reflect.Type
		switch {
		case t == nil:
		case t.Kind() == reflect.Map:
			ft = t.Elem()
		default:
			var known bool
			if ft, known = fieldType(t, key); !known && l.report(unknownKey, sub, nil) {
				return nil
			}
		}
		if err := l.value(ft, sub); err != nil || l.found {
			return err
		}
	}
	_, err := l.dec.Token()
	return err
}

func (l *locator) array(t reflect.Type, path string) error {
	if t != nil && t.Kind() != reflect.Slice && t.Kind() != reflect.Array {
		if l.report(wrongType, path, t) {
			return nil
		}
		t = nil
	}
	for i := 0; l.dec.More(); i++ {
		var et reflect.Type
		if t != nil {
			et = t.Elem()
		}
		if err := l.value(et, path+"["+strconv.Itoa(i)+"]"); err != nil || l.found {
			return err
		}
	}
	_, err := l.dec.Token()
	return err
}

func decodesItself(t reflect.Type) bool {
	p := reflect.PointerTo(t)
	return t.Implements(jsonUnmarshaler) || p.Implements(jsonUnmarshaler) || t.Implements(textUnmarshaler) || p.Implements(textUnmarshaler)
}

// fitsNumber reports whether encoding/json decodes n into a value of type t.
func fitsNumber(t reflect.Type, n json.Number) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v, err := strconv.ParseInt(string(n), 10, 64)
		return err == nil && !reflect.Zero(t).OverflowInt(v)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v, err := strconv.ParseUint(string(n), 10, 64)
		return err == nil && !reflect.Zero(t).OverflowUint(v)
	case reflect.Float32, reflect.Float64:
		v, err := strconv.ParseFloat(string(n), 64)
		return err == nil && !reflect.Zero(t).OverflowFloat(v)
	}
	return false
}

// jsonField is one JSON field of a struct: its name, its Go type, the struct that
// declares it and the options of its json tag.
type jsonField struct {
	name  string
	typ   reflect.Type
	owner reflect.Type
	opts  string
}

// has reports whether the tag has option o (omitempty, omitzero, string).
func (f jsonField) has(o string) bool { return strings.Contains(","+f.opts+",", ","+o+",") }

// jsonFields lists the JSON fields of struct t as encoding/json sees them: named by
// tag or Go name, exported, "-" left out, the fields of embedded structs without a
// name of their own promoted, a shallower field hiding a deeper one of the same name.
func jsonFields(t reflect.Type) []jsonField {
	var out []jsonField
	named := map[string]bool{}
	seen := map[reflect.Type]bool{}
	for level := []reflect.Type{t}; len(level) > 0; {
		var next []reflect.Type
		var found []jsonField
		for _, t := range level {
			if seen[t] {
				continue
			}
			seen[t] = true
			for i := range t.NumField() {
				f := t.Field(i)
				tag := f.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name, opts, _ := strings.Cut(tag, ",")
				if f.Anonymous && name == "" && deref(f.Type).Kind() == reflect.Struct {
					next = append(next, deref(f.Type))
					continue
				}
				if !f.IsExported() {
					continue
				}
				found = append(found, jsonField{name: cmp.Or(name, f.Name), typ: f.Type, owner: t, opts: opts})
			}
		}
		for _, f := range found {
			if !named[f.name] {
				named[f.name] = true
				out = append(out, f)
			}
		}
		level = next
	}
	return out
}

// fieldType is the type of the field of struct t that encoding/json decodes key into:
// the name that matches exactly, else one that matches ignoring case. A field with
// the ",string" option has a nil type (not looked into).
func fieldType(t reflect.Type, key string) (reflect.Type, bool) {
	fields := jsonFields(t)
	match := slices.IndexFunc(fields, func(f jsonField) bool { return f.name == key })
	if match < 0 {
		match = slices.IndexFunc(fields, func(f jsonField) bool { return strings.EqualFold(f.name, key) })
	}
	if match < 0 {
		return nil, false
	}
	if fields[match].has("string") {
		return nil, true
	}
	return fields[match].typ, true
}
