package deploytest

import (
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Without a Bicep compiler, catch what it would: unbalanced brackets or quotes, module
// paths that do not exist, parameters passed to a module that does not declare them (or
// required ones not passed), outputs read from a module that does not produce them,
// resource types without an API version or on a preview one, abbreviations that are
// not in abbreviations.json.
func TestBicepLint(t *testing.T) {
	root := repoRoot(t)
	for _, rel := range bicepFiles(t) {
		f := loadBicep(t, rel)
		if err := balanced(f.masked); err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		for _, r := range f.resources(t) {
			where := rel + ":" + strconv.Itoa(r.line)
			if !strings.ContainsAny(r.typ, "/.") {
				continue // child shorthand inside its parent ('config', 'containers')
			}
			m := regexp.MustCompile(`^([A-Za-z]+\.[A-Za-z]+(?:/[A-Za-z]+)+)@(\d{4}-\d{2}-\d{2})(-preview)?$`).FindStringSubmatch(r.typ)
			switch {
			case m == nil:
				t.Errorf("%s: resource type %q: want Namespace.Provider/type@yyyy-mm-dd", where, r.typ)
			case m[3] != "":
				t.Errorf("%s: resource type %q uses a preview API version; use a GA one", where, r.typ)
			}
		}

		dir := path.Dir(rel)
		mods := map[string]*bicepFile{}
		for _, m := range f.modules(t) {
			where := rel + ":" + strconv.Itoa(m.line)
			if strings.HasPrefix(m.path, "br:") || strings.HasPrefix(m.path, "br/") || strings.HasPrefix(m.path, "ts:") || strings.HasPrefix(m.path, "ts/") {
				continue // registry module: its contract is not in this repository
			}
			target := path.Join(dir, m.path)
			if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(target))); err != nil {
				t.Errorf("%s: module %s: %s does not exist", where, m.symbol, target)
				continue
			}
			mf := loadBicep(t, target)
			mods[m.symbol] = mf
			declared := mf.params()
			passed := f.moduleParams(t, m)
			for name, e := range passed {
				if _, ok := declared[name]; !ok {
					t.Errorf("%s:%d: module %s passes %s, which %s does not declare", rel, e.line, m.symbol, name, target)
				}
			}
			for name, p := range declared {
				if _, ok := passed[name]; !ok && !p.hasDefault {
					t.Errorf("%s: module %s does not pass %s, which %s requires", where, m.symbol, name, target)
				}
			}
			if !regexp.MustCompile(`(?m)^\s*scope:`).MatchString(f.noComments[m.open:m.close]) && strings.Contains(f.noComments, "targetScope = 'subscription'") {
				t.Errorf("%s: module %s has no scope (a subscription-scope file must put it in the resource group)", where, m.symbol)
			}
		}
		for _, m := range regexp.MustCompile(`\b(\w+)\.outputs\.(\w+)`).FindAllStringSubmatch(f.noComments, -1) {
			mf, ok := mods[m[1]]
			if !ok {
				continue // a registry module, or a resource (deployments) symbol
			}
			if !mf.outputs()[m[2]] {
				t.Errorf("%s reads %s.outputs.%s, which %s does not output", rel, m[1], m[2], mf.rel)
			}
		}

		for _, m := range regexp.MustCompile(`loadJsonContent\('([^']+)'\)`).FindAllStringSubmatch(f.noComments, -1) {
			b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(path.Join(dir, m[1]))))
			if err != nil {
				t.Errorf("%s: loadJsonContent: %v", rel, err)
				continue
			}
			var keys map[string]any
			if err := json.Unmarshal(b, &keys); err != nil {
				t.Errorf("%s: %s: %v", rel, m[1], err)
				continue
			}
			for _, use := range regexp.MustCompile(`\babbrs\.(\w+)`).FindAllStringSubmatch(f.noComments, -1) {
				if _, ok := keys[use[1]]; !ok && strings.HasSuffix(m[1], "abbreviations.json") {
					t.Errorf("%s uses abbrs.%s, which %s does not define", rel, use[1], m[1])
				}
			}
		}
	}
}

// azd fills main.parameters.json from the environment: every parameter without a
// default must be there, and every entry must be a parameter of main.bicep.
func TestMainParametersFile(t *testing.T) {
	main := loadBicep(t, "infra/main.bicep")
	if !strings.Contains(main.noComments, "targetScope = 'subscription'") {
		t.Error("main.bicep: want targetScope = 'subscription' (azd creates the resource group)")
	}
	params := main.params()
	var doc struct {
		Parameters map[string]struct {
			Value any `json:"value"`
		} `json:"parameters"`
	}
	if err := json.Unmarshal([]byte(readRepo(t, "infra/main.parameters.json")), &doc); err != nil {
		t.Fatalf("infra/main.parameters.json: %v", err)
	}
	for name, p := range params {
		if _, ok := doc.Parameters[name]; !ok && !p.hasDefault {
			t.Errorf("main.bicep:%d: parameter %s has no default and no value in main.parameters.json", p.line, name)
		}
	}
	for name, v := range doc.Parameters {
		if _, ok := params[name]; !ok {
			t.Errorf("main.parameters.json sets %s, which main.bicep does not declare", name)
		}
		s, _ := v.Value.(string)
		for _, ref := range regexp.MustCompile(`\$\{[^}]*\}?`).FindAllString(s, -1) {
			if !regexp.MustCompile(`^\$\{[A-Z][A-Z0-9_]*(=[^}]*)?\}$`).MatchString(ref) {
				t.Errorf("main.parameters.json %s: %q is not ${NAME} or ${NAME=default}", name, ref)
			}
		}
	}
	for _, want := range map[string]string{"environmentName": "${AZURE_ENV_NAME}", "location": "${AZURE_LOCATION}", "principalId": "${AZURE_PRINCIPAL_ID}"} {
		found := false
		for _, v := range doc.Parameters {
			if v.Value == want {
				found = true
			}
		}
		if !found {
			t.Errorf("main.parameters.json does not use %s", want)
		}
	}
}

// The function app is what azd deploys the `api` service to: Flex Consumption, custom
// runtime, identity-based deployment storage, hardened transport. Its settings are the
// appSettings variable, applied to that very site by appsettings.bicep once it exists.
func TestFunctionAppModule(t *testing.T) {
	f := loadBicep(t, "infra/modules/functionapp.bicep")
	flat := regexp.MustCompile(`\s+`).ReplaceAllString(f.noComments, " ")
	for _, want := range []string{
		"name: 'FC1' tier: 'FlexConsumption'",
		"reserved: true",
		"kind: 'functionapp,linux'",
		"'azd-service-name': serviceName",
		"runtime: { name: 'custom' version: '1.0' }",
		"type: 'UserAssignedIdentity' userAssignedIdentityResourceId: identityId",
		"instanceMemoryMB: instanceMemoryMB",
		"maximumInstanceCount: maximumInstanceCount",
		"httpsOnly: true",
		"minTlsVersion: '1.2'",
		"ftpsState: 'Disabled'",
		"keyVaultReferenceIdentity: identityId",
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("functionapp.bicep lacks %q", want)
		}
	}
	if !f.outputs()["defaultHostName"] || !strings.Contains(flat, "output defaultHostName string = site.properties.defaultHostName") {
		t.Error("functionapp.bicep: want `output defaultHostName string = site.properties.defaultHostName` (CallingWebhookUrl is built from it)")
	}
	main := loadBicep(t, "infra/main.bicep")
	api := main.module(t, "modules/functionapp.bicep")
	p := main.moduleParams(t, api)
	if v, _ := literal(p["serviceName"].value); v != azureService(t) {
		t.Errorf("main.bicep: module %s gets serviceName %s, azure.yaml deploys service %q", api.symbol, p["serviceName"].value, azureService(t))
	}
	if _, ok := p["appSettings"]; ok {
		t.Errorf("main.bicep: module %s gets appSettings; the settings go to modules/appsettings.bicep, after the site exists", api.symbol)
	}

	as := loadBicep(t, "infra/modules/appsettings.bicep")
	asFlat := regexp.MustCompile(`\s+`).ReplaceAllString(as.noComments, " ")
	for _, want := range []string{
		"resource site 'Microsoft.Web/sites@",
		"existing = { name: functionAppName }",
		"parent: site name: 'appsettings' properties: appSettings",
	} {
		if !strings.Contains(asFlat, want) {
			t.Errorf("appsettings.bicep lacks %q", want)
		}
	}
	sp := main.moduleParams(t, main.module(t, "modules/appsettings.bicep"))
	if sp["appSettings"].value != "appSettings" {
		t.Errorf("main.bicep: module appsettings gets appSettings: %q, want the appSettings variable (the one the drift tests read)", sp["appSettings"].value)
	}
	if want := api.symbol + ".outputs.name"; sp["functionAppName"].value != want {
		t.Errorf("main.bicep: module appsettings gets functionAppName: %q, want %s (the site the settings belong to, and after it)", sp["functionAppName"].value, want)
	}
}
