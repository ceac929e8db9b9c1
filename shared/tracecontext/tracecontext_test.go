package tracecontext_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/teamscc/teamscc/shared/tracecontext"
)

const (
	traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	spanID  = "00f067aa0ba902b7"
	valid   = "00-" + traceID + "-" + spanID + "-01"
)

func TestParseFollowsTheW3CRules(t *testing.T) {
	tests := []struct {
		name, in string
		ok       bool
		flags    byte
	}{
		{"the specification's example", valid, true, 0x01},
		{"not sampled", "00-" + traceID + "-" + spanID + "-00", true, 0x00},
		{"surrounding space", "  " + valid + " ", true, 0x01},
		{"a later version with more fields", "01-" + traceID + "-" + spanID + "-01-what-comes-next", true, 0x01},
		{"a later version, exact length", "cc-" + traceID + "-" + spanID + "-09", true, 0x09},
		{"version 00 with more fields", valid + "-extra", false, 0},
		{"version ff", "ff-" + traceID + "-" + spanID + "-01", false, 0},
		{"upper-case hex", "00-" + strings.ToUpper(traceID) + "-" + spanID + "-01", false, 0},
		{"all-zero trace id", "00-" + strings.Repeat("0", 32) + "-" + spanID + "-01", false, 0},
		{"all-zero parent id", "00-" + traceID + "-" + strings.Repeat("0", 16) + "-01", false, 0},
		{"short trace id", "00-" + traceID[1:] + "-" + spanID + "-01", false, 0},
		{"not hex", "00-" + traceID[:31] + "g-" + spanID + "-01", false, 0},
		{"bad flags", "00-" + traceID + "-" + spanID + "-0x", false, 0},
		{"a legacy hierarchical Diagnostic-Id", "|" + traceID + "." + spanID + ".", false, 0},
		{"empty", "", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ok := tracecontext.Parse(tt.in, "")
			if ok != tt.ok {
				t.Fatalf("Parse(%q) ok = %v, want %v", tt.in, ok, tt.ok)
			}
			if !ok {
				if c != (tracecontext.Context{}) {
					t.Errorf("an invalid value gave %+v", c)
				}
				return
			}
			if c.TraceIDString() != traceID || c.SpanIDString() != spanID || c.Flags != tt.flags {
				t.Errorf("Parse(%q) = %s %s %02x", tt.in, c.TraceIDString(), c.SpanIDString(), c.Flags)
			}
		})
	}
}

func TestTraceparentRoundTripsAndChildrenKeepTheTrace(t *testing.T) {
	c, ok := tracecontext.Parse(valid, "congo=t61rcWkgMzE")
	if !ok || c.Traceparent() != valid || c.State != "congo=t61rcWkgMzE" {
		t.Fatalf("round trip: %q %q %v", c.Traceparent(), c.State, ok)
	}
	seen := map[string]bool{c.SpanIDString(): true}
	for range 100 {
		k := c.Child()
		if k.TraceID != c.TraceID || k.Flags != c.Flags || k.State != c.State || !k.IsValid() {
			t.Fatalf("child %+v of %+v", k, c)
		}
		if seen[k.SpanIDString()] {
			t.Fatalf("span id %s used twice", k.SpanIDString())
		}
		seen[k.SpanIDString()] = true
	}
	n := tracecontext.New()
	if !n.IsValid() || n.Flags != 0x01 || n.TraceID == c.TraceID || n.TraceID == tracecontext.New().TraceID {
		t.Errorf("new traces: %+v", n)
	}
	if back, ok := tracecontext.Parse(n.Traceparent(), ""); !ok || back != n {
		t.Errorf("a new trace does not parse back: %q", n.Traceparent())
	}
	if k := (tracecontext.Context{}).Child(); !k.IsValid() {
		t.Error("the child of no trace is not a new trace")
	}
}

func TestTracestateIsPassedOnOnlyWhenSafe(t *testing.T) {
	for in, want := range map[string]string{
		"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE": "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
		strings.Repeat("a", 513):                  "",
		"a=b\nInjected: header":                   "",
		"a=\u00e9":                                "",
	} {
		if c, _ := tracecontext.Parse(valid, in); c.State != want {
			t.Errorf("tracestate %q kept as %q, want %q", in, c.State, want)
		}
	}
}

func TestFromHeaderWantsExactlyOneTraceparent(t *testing.T) {
	h := http.Header{}
	if _, ok := tracecontext.FromHeader(h); ok {
		t.Error("no header gave a trace")
	}
	h.Set("Traceparent", valid)
	h.Add("Tracestate", "a=1")
	h.Add("Tracestate", "b=2")
	c, ok := tracecontext.FromHeader(h)
	if !ok || c.TraceIDString() != traceID || c.State != "a=1,b=2" {
		t.Errorf("FromHeader = %+v %v", c, ok)
	}
	h.Add("Traceparent", "00-"+strings.Repeat("1", 32)+"-"+spanID+"-01")
	if _, ok := tracecontext.FromHeader(h); ok {
		t.Error("two traceparent headers gave a trace")
	}
}

func TestFromPropertiesReadsTraceparentThenDiagnosticID(t *testing.T) {
	other := "00-" + strings.Repeat("a", 32) + "-" + spanID + "-01"
	tests := []struct {
		name  string
		props map[string]any
		want  string // trace id; "" = none
		state string
	}{
		{"Diagnostic-Id only (the .NET SDK without ActivitySource)", map[string]any{"Diagnostic-Id": valid}, traceID, ""},
		{"traceparent wins", map[string]any{"traceparent": valid, "tracestate": "x=1", "Diagnostic-Id": other}, traceID, "x=1"},
		{"an invalid traceparent falls back", map[string]any{"traceparent": "nope", "Diagnostic-Id": other}, strings.Repeat("a", 32), ""},
		{"not a string", map[string]any{"Diagnostic-Id": 42.0}, "", ""},
		{"none", map[string]any{"kind": "kick"}, "", ""},
		{"nil", nil, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ok := tracecontext.FromProperties(tt.props)
			if ok != (tt.want != "") || (ok && (c.TraceIDString() != tt.want || c.State != tt.state)) {
				t.Errorf("FromProperties = %s %q %v, want %q %q", c.TraceIDString(), c.State, ok, tt.want, tt.state)
			}
		})
	}
	if c, ok := tracecontext.FromProperties(map[string]string{"Diagnostic-Id": valid}); !ok || c.TraceIDString() != traceID {
		t.Error("string properties are not read")
	}
}

func TestMessagePropertiesCarryANewSpanOfTheContextsTrace(t *testing.T) {
	cur, _ := tracecontext.Parse(valid, "congo=t61rcWkgMzE")
	ctx := tracecontext.NewContext(context.Background(), cur)
	props := map[string]string{"kind": "kick"}
	a := tracecontext.MessageProperties(ctx, props)
	b := tracecontext.MessageProperties(ctx, props)
	if len(props) != 1 {
		t.Fatalf("the caller's map was changed: %v", props)
	}
	for _, p := range []map[string]string{a, b} {
		if p["kind"] != "kick" || p["Diagnostic-Id"] != p["traceparent"] || p["tracestate"] != "congo=t61rcWkgMzE" {
			t.Fatalf("properties %v", p)
		}
		c, ok := tracecontext.FromProperties(p)
		if !ok || c.TraceID != cur.TraceID || c.SpanID == cur.SpanID || c.Flags != cur.Flags {
			t.Errorf("message trace %s, want a new span of %s", p["Diagnostic-Id"], valid)
		}
	}
	if a["Diagnostic-Id"] == b["Diagnostic-Id"] {
		t.Error("two messages share a span id")
	}

	explicit := tracecontext.MessageProperties(ctx, map[string]string{"Diagnostic-Id": "set-by-the-caller"})
	if explicit["Diagnostic-Id"] != "set-by-the-caller" || explicit["traceparent"] != "" {
		t.Errorf("a message's own Diagnostic-Id was replaced: %v", explicit)
	}

	none := tracecontext.MessageProperties(context.Background(), nil)
	if c, ok := tracecontext.FromProperties(none); !ok || none["tracestate"] != "" || c.TraceID == cur.TraceID {
		t.Errorf("without a trace in the context: %v; want a new trace", none)
	}
	if _, ok := tracecontext.FromContext(context.Background()); ok {
		t.Error("an empty context has a trace")
	}
}
