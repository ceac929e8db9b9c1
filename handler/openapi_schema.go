package main

import (
	"encoding/json"
	"maps"
	"reflect"
	"strings"
	"time"
	"unicode"

	"github.com/teamscc/teamscc/shared/outbound"
	"github.com/teamscc/teamscc/shared/routing"
	"github.com/teamscc/teamscc/shared/userstate"
)

// schemaMode says which side of the wire a schema describes: the same Go type is
// answered whole but may be sent in part.
type schemaMode int

const (
	// modeOut: an answer. A field Go always writes (no omitempty/omitzero) is
	// required; a nil slice, map or pointer it writes as null is nullable.
	modeOut schemaMode = iota
	// modeIn: a request body. Nothing is required unless the operation says so.
	modeIn
	// modePatch: a merge patch. Nothing is required and every field may be null
	// (null removes a value).
	modePatch
)

// componentFor names the component of a struct type in a mode: "Service",
// "ServiceInput", "ServicePatch"; a request type already named for it keeps its name
// (OutboundRequest, AgentPatch).
func componentFor(t reflect.Type, m schemaMode) string {
	name := componentName(t)
	switch m {
	case modeIn:
		for _, s := range []string{"Input", "Body", "Request", "Patch"} {
			if strings.HasSuffix(name, s) {
				return name
			}
		}
		return name + "Input"
	case modePatch:
		return name + "Patch"
	}
	return name
}

// schema is one JSON Schema object of the OpenAPI document.
type schema = map[string]any

// schemaGen derives OpenAPI 3.0 schemas from Go types as encoding/json writes and
// reads them, so the description cannot say one thing while the handlers answer
// another. Named structs become components (#/components/schemas/…), one per mode.
type schemaGen struct {
	comps map[string]any
	names map[string]madeFrom // component name → what it was made from
}

type madeFrom struct {
	t reflect.Type
	m schemaMode
}

func newSchemaGen() *schemaGen {
	return &schemaGen{comps: map[string]any{}, names: map[string]madeFrom{}}
}

// hint is what a field's Go type cannot say: its format, values and meaning.
type hint struct {
	t     reflect.Type
	field string // its JSON name
}

// fieldHints are merged into the schemas of those fields.
var fieldHints = map[hint]schema{
	{reflect.TypeFor[outbound.Request](), "taskId"}: {"description": "Your id of the task: 1..64 letters, digits, '.', '_' or '-'. " +
		"The same id with the same content again is a replay (200, the same task); with other content a conflict (409).",
		"pattern": "^[A-Za-z0-9._-]{1,64}$"},
	{reflect.TypeFor[outbound.Request](), "customer"}: {"description": "Whom to call: an E.164 phone number (+41445551234) or a Teams user's UPN."},
	{reflect.TypeFor[outbound.Request](), "due"}: {"format": "date-time", "description": "When to call (RFC 3339); now or in the past: as soon as possible. " +
		"At most OutboundHorizonDays (30 by default) ahead."},
	{reflect.TypeFor[outbound.Request](), "priority"}: {"enum": []any{"Normal", "High", "Strict"}, "description": "Routing priority (default Normal)."},
	{reflect.TypeFor[outbound.Request](), "notes"}:    {"maxLength": outbound.MaxNotes, "description": "Shown to the agent."},
	{reflect.TypeFor[outbound.Request](), "params"}: {"maxProperties": outbound.MaxParams,
		"description": "Up to 20 key/value pairs handed to the agent (keys up to 64, values up to 256 characters)."},
	{reflect.TypeFor[outbound.Request](), "tenantId"}:  {"description": "Leave out over HTTP (the path's); required on Service Bus."},
	{reflect.TypeFor[outbound.Request](), "serviceId"}: {"description": "Leave out over HTTP (the path's); required on Service Bus."},
	{reflect.TypeFor[outbound.Task](), "state"}:        {"description": "Scheduled and Routed hold a slot of the service's cap; the others are final."},
}

// enums are the values of the string types a caller picks from (the handlers refuse
// others; the tests check answers against them).
var enums = map[reflect.Type][]string{
	reflect.TypeFor[routing.Priority]():      {string(routing.Normal), string(routing.High), string(routing.Strict)},
	reflect.TypeFor[outbound.State]():        {string(outbound.Scheduled), string(outbound.Routed), string(outbound.Completed), string(outbound.Failed), string(outbound.Cancelled), string(outbound.Abandoned)},
	reflect.TypeFor[outbound.CustomerKind](): {string(outbound.PSTN), string(outbound.UPN)},
	reflect.TypeFor[userstate.Kind]():        {"presence", "duty", "routing", "selectable"},
}

// of returns the schema of values of t in mode m: a reference for a named struct.
func (g *schemaGen) of(t reflect.Type, m schemaMode) schema {
	switch t {
	case reflect.TypeFor[time.Time]():
		return schema{"type": "string", "format": "date-time"}
	case reflect.TypeFor[time.Duration]():
		return schema{"type": "integer", "format": "int64", "description": "nanoseconds"}
	case reflect.TypeFor[json.RawMessage]():
		return schema{}
	}
	if vals, ok := enums[t]; ok {
		e := make([]any, len(vals))
		for i, v := range vals {
			e[i] = v
		}
		return schema{"type": "string", "enum": e}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return g.of(t.Elem(), m)
	case reflect.String:
		return schema{"type": "string"}
	case reflect.Bool:
		return schema{"type": "boolean"}
	case reflect.Int8, reflect.Int16, reflect.Int32:
		return schema{"type": "integer", "format": "int32"}
	case reflect.Int, reflect.Int64:
		return schema{"type": "integer", "format": "int64"}
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint, reflect.Uint64:
		return schema{"type": "integer", "minimum": 0}
	case reflect.Float32, reflect.Float64:
		return schema{"type": "number"}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return schema{"type": "string", "format": "byte"}
		}
		return schema{"type": "array", "items": g.item(t.Elem(), m)}
	case reflect.Map:
		return schema{"type": "object", "additionalProperties": g.item(t.Elem(), m)}
	case reflect.Struct:
		if t.Name() == "" {
			return g.object(t, m)
		}
		name := componentFor(t, m)
		if _, done := g.comps[name]; !done {
			g.names[name] = madeFrom{t, m}

			g.comps[name] = schema{} // a placeholder while the fields are made (recursive types)
			g.comps[name] = g.object(t, m)
		}
		if prev := g.names[name]; prev != (madeFrom{t, m}) {
			panic("openapi: two schemas named " + name + ": " + prev.t.String() + " and " + t.String())
		}
		return schema{"$ref": "#/components/schemas/" + name}
	}
	return schema{} // interfaces: any JSON value
}

// item is the schema of a slice element or map value: nullable when Go may write null.
func (g *schemaGen) item(t reflect.Type, m schemaMode) schema {
	s := g.of(t, m)
	if t.Kind() == reflect.Pointer || m == modePatch {
		return nullable(s)
	}
	return s
}

// nullable marks s as allowing null (a reference is wrapped: 3.0 ignores siblings of $ref).
func nullable(s schema) schema {
	if _, ok := s["$ref"]; ok {
		return schema{"nullable": true, "allOf": []any{s}}
	}
	out := schema{"nullable": true}
	for k, v := range s {
		out[k] = v
	}
	return out
}

// object is the schema of struct t's JSON fields, embedded structs flattened as
// encoding/json does.
func (g *schemaGen) object(t reflect.Type, m schemaMode) schema {
	props := map[string]any{}
	var required []any
	for _, f := range jsonFields(t) {
		omit := f.has("omitempty") || f.has("omitzero")
		s := g.of(f.typ, m)
		if f.has("string") {
			s = schema{"type": "string"}
		}
		k := f.typ.Kind()
		mayBeNull := !omit && (k == reflect.Pointer || k == reflect.Slice || k == reflect.Map || k == reflect.Interface)
		if m == modePatch || m == modeIn && k == reflect.Pointer || m == modeOut && mayBeNull {
			s = nullable(s)
		}
		if h, ok := fieldHints[hint{f.owner, f.name}]; ok {
			s = maps.Clone(s)
			maps.Copy(s, h)
		}
		props[f.name] = s
		if m == modeOut && !omit {
			required = append(required, f.name)
		}
	}
	out := schema{"type": "object", "properties": props}
	if len(required) > 0 {
		out["required"] = required
	}
	return out
}

// componentName names a component after its Go type: the package's name in front
// unless the type already starts with it (tenant.Tenant → Tenant, outbound.Task →
// OutboundTask); the handler's own types by their name alone.
func componentName(t reflect.Type) string {
	name := upperFirst(t.Name())
	pkg := t.PkgPath()
	if i := strings.LastIndexByte(pkg, '/'); i >= 0 {
		pkg = pkg[i+1:]
	}
	if pkg == "main" || pkg == "handler" || strings.HasPrefix(name, upperFirst(pkg)) {
		return name
	}
	return upperFirst(pkg) + name
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	r := []rune(s)
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}
