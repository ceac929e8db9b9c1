package deploytest

import (
	"path"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/teamscc/teamscc/shared/config"
)

const keyVaultModulePath = "modules/keyvault.bicep"

// secretSetting is a config.Settings secret that main.bicep sets, with the @secure()
// parameter of main.bicep that carries its value (named like the setting).
type secretSetting struct {
	name  string
	entry entry
	param string
}

func secretSettings(t testing.TB, main *bicepFile) []secretSetting {
	t.Helper()
	settings := appSettings(t, main)
	params := main.params()
	var out []secretSetting
	for _, s := range config.Settings {
		e, ok := settings[s.Name]
		if !ok || !s.Secret {
			continue
		}
		p := ""
		for name := range params {
			if strings.EqualFold(name, s.Name) {
				p = name
			}
		}
		if p == "" {
			t.Errorf("main.bicep: secret setting %s has no parameter of the same name carrying its value (if its value now comes from elsewhere, teach secretSettings where)", s.Name)
			continue
		}
		out = append(out, secretSetting{name: s.Name, entry: e, param: p})
	}
	if len(out) == 0 && !t.Failed() {
		t.Fatal("main.bicep appSettings sets no secret of config.Settings: nothing for the secret tests to check (is the parser broken?)")
	}
	return out
}

// listCall is one call of list() made while evaluating main.bicep.
type listCall struct{ target, apiVersion any }

// mainScenario evaluates main.bicep with the given parameter values against a function
// app whose settings, before this provision, are current (what list() on the site's
// config/appsettings returns).
func mainScenario(t testing.TB, main *bicepFile, set map[string]any, current map[string]any, calls *[]listCall) *evaluator {
	t.Helper()
	ev := newEvaluator(t, main, set)
	ev.funcs["list"] = func(args []any) (any, error) {
		var c listCall
		if len(args) > 0 {
			c.target = args[0]
		}
		if len(args) > 1 {
			c.apiVersion = args[1]
		}
		*calls = append(*calls, c)
		return map[string]any{"id": opaque("the site's config/appsettings"), "properties": current}, nil
	}
	return ev
}

// A secret setting reaches the app only as a Key Vault reference: versionless (a
// rotation reaches the app without a provision), to the secret that this provision
// writes into the deployment's vault with the setting's value. The parameter carrying
// the value is @secure() (kept out of deployment history and logs), and the setting
// never holds the value itself.
func TestSecretSettingsAreKeyVaultReferences(t *testing.T) {
	main := loadBicep(t, "infra/main.bicep")
	params := main.params()
	for _, s := range secretSettings(t, main) {
		if _, isConst := constValue(s.entry.value, params); isConst && s.entry.value != "''" {
			t.Errorf("main.bicep:%d: secret %s is a plain value; make it a Key Vault reference", s.entry.line, s.name)
		}
		if !main.secureParam(s.param) {
			t.Errorf("main.bicep:%d: parameter %s holds a secret but is not @secure()", params[s.param].line, s.param)
		}
		const value = "first-value-of-the-secret"
		var calls []listCall
		got, err := mainScenario(t, main, map[string]any{s.param: value}, map[string]any{}, &calls).eval(s.entry.value)
		if err != nil {
			t.Errorf("main.bicep:%d: %s: %v", s.entry.line, s.name, err)
			continue
		}
		ref, _ := got.(string)
		if strings.Contains(ref, value) {
			t.Errorf("main.bicep:%d: %s holds the secret's value itself: %q", s.entry.line, s.name, ref)
			continue
		}
		checkReference(t, main, s, ref)
	}
}

// checkReference checks that ref is a versionless Key Vault reference to the vault of
// the keyvault module and to the secret that module writes from the setting's parameter.
func checkReference(t testing.TB, main *bicepFile, s secretSetting, ref string) {
	t.Helper()
	where := "main.bicep:" + strconv.Itoa(s.entry.line) + ": " + s.name
	m := regexp.MustCompile(`^@Microsoft\.KeyVault\((.*)\)$`).FindStringSubmatch(ref)
	if m == nil {
		t.Errorf("%s = %q with its value given, want a @Microsoft.KeyVault(...) reference", where, ref)
		return
	}
	fields := map[string]string{}
	for _, kv := range strings.Split(m[1], ";") {
		k, v, _ := strings.Cut(kv, "=")
		fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	if v, ok := fields["SecretVersion"]; ok {
		t.Errorf("%s pins SecretVersion=%s: a rotated secret would never reach the app (leave the version out)", where, v)
	}
	kvMod := main.module(t, keyVaultModulePath)
	kv := loadBicep(t, path.Join("infra", keyVaultModulePath))
	// outputOf resolves «<keyvault module>.outputs.X» to the value of keyvault.bicep's output X.
	outputOf := func(expr string) (any, bool) {
		om := regexp.MustCompile(`^«` + regexp.QuoteMeta(kvMod.symbol) + `\.outputs\.(\w+)»$`).FindStringSubmatch(expr)
		if om == nil {
			return nil, false
		}
		v, err := newEvaluator(t, kv, nil).eval(kv.outputExpr(t, om[1]))
		if err != nil {
			t.Errorf("%s: output %s: %v", kv.rel, om[1], err)
			return nil, false
		}
		return v, true
	}
	var secretName string
	if uri, ok := fields["SecretUri"]; ok {
		um := regexp.MustCompile(`^(.+?)/?secrets/([^/]+)/?$`).FindStringSubmatch(uri)
		if um == nil {
			t.Errorf("%s: SecretUri=%s, want <vault uri>/secrets/<name>/ without a version", where, uri)
			return
		}
		if !strings.Contains(um[1], "«"+kvMod.symbol+".outputs.") {
			t.Errorf("%s: SecretUri=%s does not name the vault of module %s", where, uri, kvMod.symbol)
		}
		secretName = um[2]
	} else {
		vault := fields["VaultName"]
		v, ok := outputOf(vault)
		vaultRes := kv.resourceOf(t, "Microsoft.KeyVault/vaults")
		if !ok || v != opaque(vaultRes.symbol+".name") {
			t.Errorf("%s: VaultName=%s, want the name of module %s's vault (an output = %s.name)", where, vault, kvMod.symbol, vaultRes.symbol)
		}
		secretName = fields["SecretName"]
		if v, ok := outputOf(secretName); ok {
			secretName, _ = v.(string)
		}
	}
	if secretName == "" || strings.ContainsAny(secretName, "«»") {
		t.Errorf("%s: cannot tell which secret %q names", where, ref)
		return
	}
	// The secret of that name in keyvault.bicep, and the parameter its value comes from.
	written := false
	for _, r := range kv.resources(t) {
		if !strings.HasPrefix(r.typ, "Microsoft.KeyVault/vaults/secrets@") {
			continue
		}
		name, err := newEvaluator(t, kv, nil).eval(kv.entryMap(t, r.open, r.close)["name"].value)
		if err != nil || name != secretName {
			continue
		}
		valueParam := kv.nestedEntries(t, r.open, r.close, "properties")["value"].value
		if got := main.moduleParams(t, kvMod)[valueParam].value; got != s.param {
			t.Errorf("main.bicep: module %s gets %s: %q, want %s (the value of %s, the secret %s references)", kvMod.symbol, valueParam, got, s.param, secretName, s.name)
		}
		written = true
	}
	if !written {
		t.Errorf("%s references secret %s, which %s does not write", where, secretName, kv.rel)
	}
}

// The outage this guards against: the azd environment no longer holds a secret (the
// README once advised deleting it after provisioning), and the next `azd provision`
// blanked the app setting although the secret was still in Key Vault. Whether a value
// is given or not, once the secret is stored the setting stays its Key Vault
// reference; it is empty only while no secret was ever stored. The app's settings as
// they were before the provision (list() on the site's config/appsettings) are how the
// template knows.
func TestSecretSettingsSurviveProvisionsWithoutTheirValue(t *testing.T) {
	main := loadBicep(t, "infra/main.bicep")
	api := main.module(t, functionAppModule)
	for _, s := range secretSettings(t, main) {
		var calls []listCall
		badRead := false // report a wrong list() once, not once per scenario
		refAny, err := mainScenario(t, main, map[string]any{s.param: "first-value"}, map[string]any{}, &calls).eval(s.entry.value)
		ref, _ := refAny.(string)
		if err != nil || !strings.HasPrefix(ref, "@Microsoft.KeyVault(") {
			t.Errorf("main.bicep:%d: %s with its value given = %q, %v; want a Key Vault reference", s.entry.line, s.name, ref, err)
			continue
		}
		// A reference set by hand in the other syntax counts as well.
		byHand := "@Microsoft.KeyVault(SecretUri=https://kv-example.vault.azure.net/secrets/" + s.name + "/)"
		for _, c := range []struct {
			name    string
			value   string         // the parameter: what the azd environment holds
			current map[string]any // the app's settings before this provision
			wantRef bool
		}{
			{"first provision without a value", "", map[string]any{}, false},
			{"first provision with a value", "first-value", map[string]any{}, true},
			{"provision without the value after it was stored", "", map[string]any{s.name: ref, "LogLevel": "info"}, true},
			{"provision without the value, reference set by hand", "", map[string]any{s.name: byHand}, true},
			{"rotation: a new value", "second-value", map[string]any{s.name: ref}, true},
			{"provision without the value, setting emptied on purpose", "", map[string]any{s.name: ""}, false},
			{"provision without the value, setting absent", "", map[string]any{"LogLevel": "info"}, false},
		} {
			calls = nil
			got, err := mainScenario(t, main, map[string]any{s.param: c.value}, c.current, &calls).eval(s.entry.value)
			if err != nil {
				t.Errorf("%s, %s: %v", s.name, c.name, err)
				continue
			}
			want := ""
			if c.wantRef {
				want = ref
			}
			if got != want {
				t.Errorf("%s, %s: setting = %q, want %q", s.name, c.name, got, want)
			}
			if gs, _ := got.(string); c.value != "" && strings.Contains(gs, c.value) {
				t.Errorf("%s, %s: the setting holds the secret's value", s.name, c.name)
			}
			// The settings read must be the very site's, as they were before this provision.
			for _, call := range calls {
				if badRead {
					break
				}
				wantTarget := "«" + api.symbol + ".outputs.id»/config/appsettings"
				if !strings.EqualFold(fmtValue(call.target), wantTarget) {
					t.Errorf("%s: list(%v): want list('${%s.outputs.id}/config/appsettings', ...), the settings of the app the settings module writes", s.name, call.target, api.symbol)
					badRead = true
				}
				if v, _ := call.apiVersion.(string); !regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`).MatchString(v) {
					t.Errorf("%s: list(..., %v): want a GA API version", s.name, call.apiVersion)
					badRead = true
				}
			}
		}
	}
	// Reading the settings in the template that writes them is a dependency cycle to ARM.
	as := loadBicep(t, "infra/modules/appsettings.bicep")
	if regexp.MustCompile(`\blist\w*\(`).MatchString(as.masked) {
		t.Error("appsettings.bicep calls list*(): read the current settings in main.bicep and pass the result in (ARM refuses a template that reads the resource it writes)")
	}
}

// No provision writes an empty secret: every Key Vault secret is written only when its
// value, a @secure() parameter, is not empty, so a provision without the value leaves
// the stored secret as it is (deployments are incremental). Where a module holds the
// secret, main.bicep passes it a @secure() parameter.
func TestKeyVaultSecretsAreWrittenOnlyWithAValue(t *testing.T) {
	main := loadBicep(t, "infra/main.bicep")
	found := 0
	for _, rel := range bicepFiles(t) {
		f := loadBicep(t, rel)
		for _, r := range f.resources(t) {
			if !strings.HasPrefix(r.typ, "Microsoft.KeyVault/vaults/secrets@") {
				continue
			}
			found++
			where := rel + ":" + strconv.Itoa(r.line) + ": secret " + r.symbol
			value := f.nestedEntries(t, r.open, r.close, "properties")["value"].value
			if _, isParam := f.params()[value]; !isParam || !f.secureParam(value) {
				t.Errorf("%s: value %q, want a @secure() parameter of %s", where, value, rel)
				continue
			}
			cm := regexp.MustCompile(`=\s*if\s*(\(.*\))\s*$`).FindStringSubmatch(r.header)
			if cm == nil {
				t.Errorf("%s is written on every provision; want `= if (!empty(%s))`: without the value it would be written empty", where, value)
				continue
			}
			for _, c := range []struct {
				value string
				want  bool
			}{{"", false}, {"a-secret-value", true}} {
				got, err := newEvaluator(t, f, map[string]any{value: c.value}).eval(cm[1])
				if err != nil {
					t.Errorf("%s: condition %s: %v", where, cm[1], err)
				} else if got != c.want {
					t.Errorf("%s: with %s = %q the condition %s is %v, want %v", where, value, c.value, cm[1], got, c.want)
				}
			}
			if rel == main.rel {
				continue
			}
			for _, m := range main.modules(t) {
				if path.Join("infra", m.path) != rel {
					continue
				}
				passed := main.moduleParams(t, m)[value].value
				if _, isParam := main.params()[passed]; !isParam || !main.secureParam(passed) {
					t.Errorf("main.bicep:%d: module %s gets %s: %q, want a @secure() parameter of main.bicep", m.line, m.symbol, value, passed)
				}
			}
		}
	}
	if found == 0 {
		t.Fatal("no Microsoft.KeyVault/vaults/secrets resource under infra/: the scanner is broken, or the secrets moved")
	}
}

func fmtValue(v any) string {
	s, err := render(v)
	if err != nil {
		return "?"
	}
	return s
}
