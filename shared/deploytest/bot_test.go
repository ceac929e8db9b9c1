package deploytest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const (
	botModulePath         = "modules/bot.bicep"
	functionAppModule     = "modules/functionapp.bicep"
	callingWebhookParam   = "callingWebhookUrl" // bot.bicep's parameter for the Teams channel's webhook
	msaAppIDParam         = "msaAppId"          // bot.bicep's parameter for the bot's Microsoft App ID
	graphClientIDParam    = "graphClientId"     // main.bicep's parameter: the app's Entra registration
	callingWebhookSetting = "CallingWebhookUrl"
	webhookFunction       = "TeamsNotifications" // the function the calling platform posts to
)

// nestedEntries returns the `key: value` entries of the object reached from the block
// (open, close) through the keys in path (each an object-valued entry).
func (f *bicepFile) nestedEntries(t testing.TB, open, close int, path ...string) map[string]entry {
	t.Helper()
	es := f.entryMap(t, open, close)
	for _, k := range path {
		e, ok := es[k]
		if !ok {
			t.Fatalf("%s:%d: no %s in the block", f.rel, lineAt(f.src, open), strings.Join(path, "."))
		}
		var err error
		open, close, err = f.block(f.lineOffset(e.line))
		if err != nil {
			t.Fatalf("%s:%d: %s: %v", f.rel, e.line, k, err)
		}
		es = f.entryMap(t, open, close)
	}
	return es
}

// resourceOf returns the one resource of f whose type (without the API version) is typ.
func (f *bicepFile) resourceOf(t testing.TB, typ string) resourceDecl {
	t.Helper()
	var found []resourceDecl
	for _, r := range f.resources(t) {
		if strings.HasPrefix(r.typ, typ+"@") {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s: want one %s resource, found %d", f.rel, typ, len(found))
	}
	return found[0]
}

// webhookRoute is the route of the function the calling webhook must reach.
func webhookRoute(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "functions", webhookFunction, "function.json"))
	if err != nil {
		t.Fatalf("the calling webhook's function: %v", err)
	}
	var doc struct {
		Bindings []struct {
			Type  string `json:"type"`
			Route string `json:"route"`
		} `json:"bindings"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("functions/%s/function.json: %v", webhookFunction, err)
	}
	for _, bd := range doc.Bindings {
		if bd.Type == "httpTrigger" && bd.Route != "" {
			return bd.Route
		}
	}
	t.Fatalf("functions/%s/function.json has no httpTrigger route", webhookFunction)
	return ""
}

// The Teams calling bot: created from main.bicep only with a graphClientId, whose value
// is its Microsoft App ID; its Teams channel has calling on, and its calling webhook is
// the very expression of the CallingWebhookUrl app setting, the function app's own
// https host plus the TeamsNotifications route.
func TestCallingBot(t *testing.T) {
	main := loadBicep(t, "infra/main.bicep")
	params := main.params()
	settings := appSettings(t, main)
	botMod := main.module(t, botModulePath)
	api := main.module(t, functionAppModule)

	if _, ok := params[graphClientIDParam]; !ok {
		t.Fatalf("main.bicep has no parameter %s", graphClientIDParam)
	}
	cond := regexp.MustCompile(`(?m)^module[ \t]+` + botMod.symbol + `[ \t]+'` + regexp.QuoteMeta(botModulePath) +
		`'[ \t]*=[ \t]*if[ \t]*\([ \t]*!empty\(` + graphClientIDParam + `\)[ \t]*\)`)
	if !cond.MatchString(main.noComments) {
		t.Errorf("main.bicep: module %s must be conditional: `= if (!empty(%s))` (the bot needs the app id)", botMod.symbol, graphClientIDParam)
	}
	bp := main.moduleParams(t, botMod)
	if bp[msaAppIDParam].value != graphClientIDParam {
		t.Errorf("main.bicep: module %s gets %s: %q, want the %s parameter", botMod.symbol, msaAppIDParam, bp[msaAppIDParam].value, graphClientIDParam)
	}

	// The app setting and the bot's webhook: one expression, built from the site's host.
	setting, ok := settings[callingWebhookSetting]
	if !ok {
		t.Fatalf("main.bicep appSettings has no %s", callingWebhookSetting)
	}
	if got := bp[callingWebhookParam].value; got != setting.value {
		t.Errorf("main.bicep: module %s gets %s: %q but app setting %s = %q: use the same expression",
			botMod.symbol, callingWebhookParam, got, callingWebhookSetting, setting.value)
	}
	url := setting.value
	if identRE.MatchString(url) {
		open, close := main.varBlockOrLine(t, url)
		url = main.text(open, close)
	}
	want := "'https://${" + api.symbol + ".outputs.defaultHostName}/api/" + webhookRoute(t) + "'"
	if url != want {
		t.Errorf("main.bicep: %s is %s, want %s (the site's own host and the %s route)", callingWebhookSetting, url, want, webhookFunction)
	}
	outs := main.outputs()
	for _, name := range []string{"BOT_NAME", "CALLING_WEBHOOK_URL"} {
		if !outs[name] {
			t.Errorf("main.bicep has no output %s", name)
		}
	}

	// The module: the bot's identity and the Teams channel's calling settings.
	bot := loadBicep(t, "infra/"+botModulePath)
	svc := bot.resourceOf(t, "Microsoft.BotService/botServices")
	top := bot.entryMap(t, svc.open, svc.close)
	for key, want := range map[string]string{"location": "'global'", "kind": "'azurebot'"} {
		if top[key].value != want {
			t.Errorf("bot.bicep: botServices %s: %q, want %s", key, top[key].value, want)
		}
	}
	props := bot.nestedEntries(t, svc.open, svc.close, "properties")
	if props["msaAppId"].value != msaAppIDParam {
		t.Errorf("bot.bicep: msaAppId: %q, want the %s parameter", props["msaAppId"].value, msaAppIDParam)
	}
	// Azure Bot Service no longer creates MultiTenant bots (deprecated 31 July 2025).
	if v := props["msaAppType"].value; v != "'SingleTenant'" && v != "'UserAssignedMSI'" {
		t.Errorf("bot.bicep: msaAppType: %q, want 'SingleTenant' (new MultiTenant bots cannot be created)", v)
	}
	if props["msaAppType"].value == "'SingleTenant'" && props["msaAppTenantId"].value == "" {
		t.Error("bot.bicep: a SingleTenant bot needs msaAppTenantId")
	}
	if props["disableLocalAuth"].value != "true" {
		t.Error("bot.bicep: want disableLocalAuth: true (no channel keys)")
	}
	if props["endpoint"].value == "" {
		t.Error("bot.bicep: the resource requires a messaging endpoint")
	}

	ch := bot.resourceOf(t, "Microsoft.BotService/botServices/channels")
	chTop := bot.entryMap(t, ch.open, ch.close)
	if chTop["parent"].value != svc.symbol || chTop["name"].value != "'MsTeamsChannel'" {
		t.Errorf("bot.bicep: channel %s: want parent: %s and name: 'MsTeamsChannel'", ch.symbol, svc.symbol)
	}
	if v := bot.nestedEntries(t, ch.open, ch.close, "properties")["channelName"].value; v != "'MsTeamsChannel'" {
		t.Errorf("bot.bicep: channel properties.channelName: %q, want 'MsTeamsChannel'", v)
	}
	teams := bot.nestedEntries(t, ch.open, ch.close, "properties", "properties")
	for key, want := range map[string]string{
		"isEnabled":      "true",
		"enableCalling":  "true",
		"callingWebhook": callingWebhookParam,
	} {
		if teams[key].value != want {
			t.Errorf("bot.bicep: Teams channel %s: %q, want %s", key, teams[key].value, want)
		}
	}
	if p, ok := bot.params()[callingWebhookParam]; !ok || p.hasDefault {
		t.Errorf("bot.bicep: want a required parameter %s (main.bicep passes CallingWebhookUrl's expression)", callingWebhookParam)
	}
}

// varBlockOrLine finds `var name = <expression>` and returns the offsets of the
// expression: a bracketed block, or the rest of the line.
func (f *bicepFile) varBlockOrLine(t testing.TB, name string) (from, to int) {
	t.Helper()
	ms := f.find(regexp.MustCompile(`(?m)^var[ \t]+` + regexp.QuoteMeta(name) + `[ \t]*=[ \t]*`))
	if len(ms) != 1 {
		t.Fatalf("%s: want one `var %s = ...`, found %d", f.rel, name, len(ms))
	}
	from = ms[0][1]
	if c := f.masked[from]; c == '{' || c == '[' {
		close, err := matchClose(f.masked, from)
		if err != nil {
			t.Fatalf("%s: var %s: %v", f.rel, name, err)
		}
		return from, close + 1
	}
	to = strings.IndexByte(f.noComments[from:], '\n')
	if to < 0 {
		to = len(f.noComments) - from
	}
	return from, from + to
}

// The Graph-subscription design is gone: nothing in the deployment sets, stores or
// passes its clientState any more.
func TestNoTeamsClientState(t *testing.T) {
	files := append(bicepFiles(t), "infra/main.parameters.json", "local.settings.json.example", "azure.yaml")
	re := regexp.MustCompile(`(?i)teams_?client_?state`)
	for _, rel := range files {
		for i, line := range strings.Split(readRepo(t, rel), "\n") {
			if re.MatchString(line) {
				t.Errorf("%s:%d still names the Teams clientState: %s", rel, i+1, strings.TrimSpace(line))
			}
		}
	}
	for _, s := range configSettings() {
		if re.MatchString(s.Name) {
			t.Errorf("config.Settings still has %s", s.Name)
		}
	}
}
