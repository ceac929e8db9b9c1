package deploytest

import (
	"strings"
	"testing"
)

// yamlScalars flattens the simple YAML azure.yaml uses (nested maps of scalars, no lists,
// no anchors) into dotted paths: "services.api.language" → "custom".
func yamlScalars(t testing.TB, src string) map[string]string {
	t.Helper()
	out := map[string]string{}
	type level struct {
		indent int
		key    string
	}
	var stack []level
	for n, line := range strings.Split(src, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if strings.HasPrefix(trimmed, "- ") || strings.ContainsAny(trimmed[:1], "&*|>[{") {
			t.Fatalf("azure.yaml:%d: %q: this test reads only nested `key: value` maps", n+1, trimmed)
		}
		indent := len(line) - len(strings.TrimLeft(line, " "))
		if strings.HasPrefix(line[indent:], "\t") {
			t.Fatalf("azure.yaml:%d: tab indentation", n+1)
		}
		key, value, ok := strings.Cut(trimmed, ":")
		if !ok {
			t.Fatalf("azure.yaml:%d: %q has no colon", n+1, trimmed)
		}
		if i := strings.Index(value, " #"); i >= 0 {
			value = value[:i]
		}
		value = strings.Trim(strings.TrimSpace(value), `"'`)
		for len(stack) > 0 && stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		parts := make([]string, 0, len(stack)+1)
		for _, l := range stack {
			parts = append(parts, l.key)
		}
		parts = append(parts, strings.TrimSpace(key))
		p := strings.Join(parts, ".")
		if value == "" {
			stack = append(stack, level{indent: indent, key: strings.TrimSpace(key)})
			continue
		}
		out[p] = value
	}
	return out
}

// azureService is the one service azure.yaml deploys.
func azureService(t testing.TB) string {
	t.Helper()
	names := map[string]bool{}
	for k := range yamlScalars(t, readRepo(t, "azure.yaml")) {
		if rest, ok := strings.CutPrefix(k, "services."); ok {
			name, _, _ := strings.Cut(rest, ".")
			names[name] = true
		}
	}
	if len(names) != 1 {
		t.Fatalf("azure.yaml: want one service, found %v", sortedKeys(names))
	}
	for n := range names {
		return n
	}
	return ""
}

// azd must treat the app as a custom-handler function app whose package is the dist
// folder the prepackage hook assembles (PLATFORM.md: `language: go` is the native
// worker and wrong here).
func TestAzureYaml(t *testing.T) {
	y := yamlScalars(t, readRepo(t, "azure.yaml"))
	svc := "services." + azureService(t) + "."
	for key, want := range map[string]string{
		svc + "project":  ".",
		svc + "language": "custom",
		svc + "host":     "function",
		svc + "dist":     "dist",
	} {
		if got := y[key]; got != want {
			t.Errorf("azure.yaml %s = %q, want %q", key, got, want)
		}
	}
	if y["name"] == "" {
		t.Error("azure.yaml has no name")
	}
	posix := y[svc+"hooks.prepackage.posix.run"]
	if !strings.Contains(posix, "scripts/package.sh") || !strings.HasSuffix(posix, " "+y[svc+"dist"]) {
		t.Errorf("azure.yaml prepackage posix hook runs %q; want scripts/package.sh writing to the dist folder", posix)
	}
	if y[svc+"hooks.prepackage.posix.shell"] != "sh" {
		t.Errorf("azure.yaml prepackage posix hook shell = %q, want sh", y[svc+"hooks.prepackage.posix.shell"])
	}
	if win := y[svc+"hooks.prepackage.windows.run"]; win != "" && !strings.Contains(win, "scripts/package.ps1") {
		t.Errorf("azure.yaml prepackage windows hook runs %q; want scripts/package.ps1", win)
	}
}

func TestYamlScalars(t *testing.T) {
	got := yamlScalars(t, "name: x # c\nservices:\n  api:\n    host: function\n  web:\n    host: 'app'\ninfra:\n  path: infra\n")
	want := map[string]string{"name": "x", "services.api.host": "function", "services.web.host": "app", "infra.path": "infra"}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}
