package archtest

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/teamscc/teamscc"

// adapters may import SDKs; nothing else under shared/ may, directly or through
// another package.
var adapters = map[string]bool{
	module + "/shared/tables":     true,
	module + "/shared/graph":      true,
	module + "/shared/servicebus": true,
	module + "/shared/entra":      true,
	module + "/shared/acs":        true,
}

func goList(t *testing.T, args ...string) []string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list"}, args...)...).Output()
	if err != nil {
		t.Fatalf("go list %v: %v", args, err)
	}
	return strings.Fields(string(out))
}

func TestDomainPackagesImportNoSDK(t *testing.T) {
	pkgs := goList(t, module+"/shared/...")
	checked := 0
	for _, p := range pkgs {
		if adapters[p] {
			continue
		}
		checked++
		for _, dep := range goList(t, "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", p) {
			if adapters[dep] {
				t.Errorf("%s imports the adapter %s: the domain must not depend on adapters", p, dep)
			} else if !strings.HasPrefix(dep, module+"/") {
				t.Errorf("%s imports %s: only adapters (%v) may use a third-party module", p, dep, keys(adapters))
			}
		}
	}
	if checked < 5 {
		t.Fatalf("only %d packages checked: the package list is wrong", checked)
	}
}

// Graph's SDK is heavy to build; only its adapter and the binary may pull it in.
func TestOnlyTheGraphAdapterAndTheBinaryUseMsgraph(t *testing.T) {
	for _, p := range goList(t, module+"/...") {
		if p == module+"/shared/graph" || p == module+"/handler" {
			continue
		}
		for _, dep := range goList(t, "-deps", "-f", "{{.ImportPath}}", p) {
			if strings.HasPrefix(dep, "github.com/microsoftgraph/") {
				t.Errorf("%s pulls in %s", p, dep)
				break
			}
		}
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, strings.TrimPrefix(k, module+"/"))
	}
	return out
}
