package deploytest

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/teamscc/teamscc/shared/config"
)

// notInAzure are config.Settings names the Bicep must not set: the host sets the port,
// and the storage account refuses keys, so the connection-string form of the storage
// setting is replaced by the identity-based AzureWebJobsStorage__* settings
// (__tableServiceUri is only for clouds or private endpoints where the account name
// is not enough).
var notInAzure = map[string]string{
	"FUNCTIONS_CUSTOMHANDLER_PORT":         "set by the Functions host",
	"AzureWebJobsStorage":                  "a connection string; the account refuses shared keys (identity-based settings instead)",
	"AzureWebJobsStorage__tableServiceUri": "optional; the account name gives the endpoint",
	"ServiceBusConnection":                 "a connection string; the namespace refuses keys (identity-based settings instead)",
}

// hostSettings are app settings the Bicep may set that the handler does not read
// (besides the `<connection>__*` settings of the function.json connections).
var hostSettingPrefixes = []string{"AzureWebJobsStorage__", "APPLICATIONINSIGHTS_"}
var hostSettings = map[string]bool{"AZURE_CLIENT_ID": true}

// forbidden app settings: Flex Consumption refuses or ignores them, or they would undo
// the identity-only design.
var forbidden = map[string]string{
	"FUNCTIONS_WORKER_RUNTIME":                 "Flex Consumption takes the runtime from functionAppConfig.runtime",
	"FUNCTIONS_EXTENSION_VERSION":              "not allowed on Flex Consumption",
	"WEBSITE_TIME_ZONE":                        "not supported on Flex Consumption: schedules are UTC",
	"WEBSITE_RUN_FROM_PACKAGE":                 "Flex Consumption deploys from functionAppConfig.deployment",
	"WEBSITE_CONTENTSHARE":                     "not used on Flex Consumption",
	"WEBSITE_CONTENTAZUREFILECONNECTIONSTRING": "not used on Flex Consumption",
	"AzureWebJobsStorage":                      "a connection string; use the identity-based settings",
	"FUNCTIONS_CUSTOMHANDLER_PORT":             "set by the host",
}

// azureValues are settings whose Azure value deliberately differs from the code default.
var azureValues = map[string]string{
	"Storage":                          "Tables",
	"AzureWebJobsStorage__credential":  "managedidentity",
	"ServiceBusConnection__credential": "managedidentity",
}

// sendOnlyQueues are queues the app only sends to (no trigger reads them), by the app
// setting that names them. A queue in the Bicep that is neither triggered nor listed
// here fails TestServiceBusQueuesMatchTriggers as unused.
var sendOnlyQueues = map[string]bool{}

type function struct {
	name     string
	bindings []map[string]any
}

// functions reads every functions/<Name>/function.json.
func functions(t testing.TB) []function {
	t.Helper()
	root := repoRoot(t)
	paths, err := filepath.Glob(filepath.Join(root, "functions", "*", "function.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no functions/*/function.json: %v", err)
	}
	var out []function
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Bindings []map[string]any `json:"bindings"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out = append(out, function{name: filepath.Base(filepath.Dir(p)), bindings: doc.Bindings})
	}
	return out
}

var settingRefRE = regexp.MustCompile(`%([^%\s]+)%`)

// settingRefs returns every %Setting% named anywhere in a binding, with where it is.
func settingRefs(fns []function) map[string][]string {
	out := map[string][]string{}
	var walk func(where string, v any)
	walk = func(where string, v any) {
		switch v := v.(type) {
		case string:
			for _, m := range settingRefRE.FindAllStringSubmatch(v, -1) {
				out[m[1]] = append(out[m[1]], where)
			}
		case map[string]any:
			for k, x := range v {
				walk(where+"."+k, x)
			}
		case []any:
			for _, x := range v {
				walk(where, x)
			}
		}
	}
	for _, f := range fns {
		for i, b := range f.bindings {
			walk(f.name+"/function.json bindings["+strconv.Itoa(i)+"]", b)
		}
	}
	return out
}

// connections returns the "connection" names used by bindings.
func connections(fns []function) map[string]bool {
	out := map[string]bool{}
	for _, f := range fns {
		for _, b := range f.bindings {
			if c, ok := b["connection"].(string); ok && c != "" {
				out[c] = true
			}
		}
	}
	return out
}

// appSettings parses main.bicep's `var appSettings = {...}`: name → raw expression.
func appSettings(t testing.TB, main *bicepFile) map[string]entry {
	t.Helper()
	open, close := main.varBlock(t, "appSettings")
	out := main.entryMap(t, open, close)
	if len(out) < 10 {
		t.Fatalf("main.bicep appSettings: only %d settings parsed", len(out))
	}
	return out
}

func configSettings() map[string]config.Setting {
	out := map[string]config.Setting{}
	for _, s := range config.Settings {
		out[s.Name] = s
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// The function app gets exactly the settings the code and the bindings read, plus the
// host's identity settings; each handler setting keeps the code's default.
func TestAppSettingsMatchConfigAndFunctions(t *testing.T) {
	main := loadBicep(t, "infra/main.bicep")
	params := main.params()
	settings := appSettings(t, main)
	cfg := configSettings()
	fns := functions(t)
	refs := settingRefs(fns)
	conns := connections(fns)

	for _, name := range sortedKeys(cfg) {
		if why, skip := notInAzure[name]; skip {
			if _, set := settings[name]; set {
				t.Errorf("main.bicep sets %s, which must stay unset in Azure: %s", name, why)
			}
			continue
		}
		if _, ok := settings[name]; !ok {
			t.Errorf("config.Settings has %s but main.bicep appSettings does not set it (add it, or list it in notInAzure with the reason)", name)
		}
	}
	for _, name := range sortedKeys(refs) {
		if _, ok := settings[name]; !ok {
			t.Errorf("%s reads %%%s%% but main.bicep appSettings does not set it", refs[name][0], name)
		}
	}
	for c := range conns {
		// Identity-based connection: the host reads <connection>__fullyQualifiedNamespace
		// (Service Bus) or <connection>__accountName / __*ServiceUri (storage).
		found := false
		for name := range settings {
			if name == c || strings.HasPrefix(name, c+"__") {
				found = true
			}
		}
		if !found {
			t.Errorf("a binding uses connection %q but main.bicep sets no %s__* app setting", c, c)
		}
	}

	for _, name := range sortedKeys(settings) {
		e := settings[name]
		if why, bad := forbidden[name]; bad {
			t.Errorf("main.bicep:%d sets %s: %s", e.line, name, why)
			continue
		}
		s, inConfig := cfg[name]
		_, inRefs := refs[name]
		known := inConfig || inRefs || hostSettings[name]
		for _, p := range hostSettingPrefixes {
			known = known || strings.HasPrefix(name, p)
		}
		for c := range conns {
			known = known || strings.HasPrefix(name, c+"__")
		}
		if !known {
			t.Errorf("main.bicep:%d sets %s, which neither the handler (config.Settings), a function.json nor the host reads", e.line, name)
		}
		if !inConfig {
			continue
		}
		got, constant := constValue(e.value, params)
		if !constant {
			continue // computed from resources (names, ids, Key Vault reference)
		}
		want := s.Default
		if v, ok := azureValues[name]; ok {
			want = v
		}
		if got != want {
			t.Errorf("main.bicep:%d: %s = %q, want %q (the default in shared/config)", e.line, name, got, want)
		}
	}
}

type bicepQueue struct {
	setting, nameExpr string
	requiresSession   bool
	line              int
}

// bicepQueues parses main.bicep's `var serviceBusQueues = [...]`.
func bicepQueues(t testing.TB, main *bicepFile) map[string]bicepQueue {
	t.Helper()
	open, close := main.varBlock(t, "serviceBusQueues")
	out := map[string]bicepQueue{}
	for _, obj := range main.objects(t, open, close) {
		e := main.entryMap(t, obj[0], obj[1])
		line := lineAt(main.src, obj[0])
		setting, ok := literal(e["setting"].value)
		if !ok {
			t.Fatalf("main.bicep:%d: serviceBusQueues entry needs setting: '<AppSetting>'", line)
		}
		rs := e["requiresSession"].value
		if rs != "true" && rs != "false" {
			t.Fatalf("main.bicep:%d: serviceBusQueues %s: requiresSession must be a literal true or false, got %q", line, setting, rs)
		}
		if e["name"].value == "" {
			t.Fatalf("main.bicep:%d: serviceBusQueues %s has no name", line, setting)
		}
		if _, dup := out[setting]; dup {
			t.Errorf("main.bicep:%d: two serviceBusQueues entries for %s", line, setting)
		}
		out[setting] = bicepQueue{setting: setting, nameExpr: e["name"].value, requiresSession: rs == "true", line: line}
	}
	return out
}

// Every queue a serviceBusTrigger reads is declared with the trigger's session mode and
// named by the app setting the trigger references (default = the code's default), and
// every declared queue is read by some function or listed as send-only.
func TestServiceBusQueuesMatchTriggers(t *testing.T) {
	main := loadBicep(t, "infra/main.bicep")
	params := main.params()
	settings := appSettings(t, main)
	queues := bicepQueues(t, main)
	cfg := configSettings()

	type use struct {
		where    string
		sessions bool
		trigger  bool
	}
	uses := map[string][]use{} // by app setting
	for _, f := range functions(t) {
		for _, b := range f.bindings {
			typ, _ := b["type"].(string)
			if typ != "serviceBusTrigger" && typ != "serviceBus" {
				continue
			}
			if _, topic := b["topicName"]; topic {
				t.Errorf("%s uses a topic; this test and the Bicep only know queues", f.name)
				continue
			}
			qn, _ := b["queueName"].(string)
			m := regexp.MustCompile(`^%([^%]+)%$`).FindStringSubmatch(qn)
			if m == nil {
				t.Errorf("%s/function.json: queueName %q must be an app-setting reference %%Setting%%", f.name, qn)
				continue
			}
			sessions, _ := b["isSessionsEnabled"].(bool)
			uses[m[1]] = append(uses[m[1]], use{where: f.name, sessions: sessions, trigger: typ == "serviceBusTrigger"})
		}
	}
	if len(uses) == 0 {
		t.Fatal("no Service Bus bindings found in functions/: the function.json reader is broken")
	}

	for _, setting := range sortedKeys(uses) {
		q, ok := queues[setting]
		if !ok {
			t.Errorf("%s reads the queue named by %%%s%% but main.bicep serviceBusQueues has no entry with setting: '%s'", uses[setting][0].where, setting, setting)
			continue
		}
		for _, u := range uses[setting] {
			if u.trigger && u.sessions != q.requiresSession {
				t.Errorf("%s: isSessionsEnabled %v, but main.bicep:%d declares queue %s with requiresSession %v", u.where, u.sessions, q.line, setting, q.requiresSession)
			}
		}
		e, ok := settings[setting]
		if !ok {
			t.Errorf("queue setting %s is not an app setting in main.bicep", setting)
			continue
		}
		if e.value != q.nameExpr {
			t.Errorf("main.bicep:%d: app setting %s = %s but the queue is named %s: use the same parameter", e.line, setting, e.value, q.nameExpr)
		}
		got, ok := constValue(q.nameExpr, params)
		if !ok {
			t.Errorf("main.bicep:%d: queue %s is named by %s; want a parameter with a literal default", q.line, setting, q.nameExpr)
			continue
		}
		s, ok := cfg[setting]
		if !ok {
			t.Errorf("queue setting %s is not in config.Settings", setting)
		} else if got != s.Default {
			t.Errorf("main.bicep: queue %s defaults to %q, config.Settings to %q", setting, got, s.Default)
		}
	}
	for _, setting := range sortedKeys(queues) {
		if _, used := uses[setting]; !used && !sendOnlyQueues[setting] {
			t.Errorf("main.bicep:%d declares queue %s but no function binding reads %%%s%% (remove it, or add it to sendOnlyQueues)", queues[setting].line, setting, setting)
		}
	}

	// The module must apply the per-queue session flag and the properties every queue needs.
	sb := loadBicep(t, "infra/modules/servicebus.bicep")
	m := main.module(t, "modules/servicebus.bicep")
	if p := main.moduleParams(t, m)["queues"]; p.value != "serviceBusQueues" {
		t.Errorf("main.bicep: module servicebus gets queues: %q, want serviceBusQueues", p.value)
	}
	var queueRes *resourceDecl
	for _, r := range sb.resources(t) {
		if strings.HasPrefix(r.typ, "Microsoft.ServiceBus/namespaces/queues@") {
			queueRes = &r
		}
	}
	if queueRes == nil {
		t.Fatal("servicebus.bicep declares no Microsoft.ServiceBus/namespaces/queues resource")
	}
	body := sb.masked[queueRes.open:queueRes.close]
	for _, want := range []string{"for q in queues", "requiresSession: q.requiresSession", "requiresDuplicateDetection: true",
		"duplicateDetectionHistoryTimeWindow:", "deadLetteringOnMessageExpiration: true", "maxDeliveryCount:", "lockDuration:"} {
		if !strings.Contains(body, want) {
			t.Errorf("servicebus.bicep queue resource lacks %q", want)
		}
	}
	for _, want := range []string{"disableLocalAuth: true", "name: 'Standard'"} {
		if !strings.Contains(sb.noComments, want) {
			t.Errorf("servicebus.bicep lacks %q", want)
		}
	}
}

// appTables reads the table names the app uses from shared/tables: the allTables
// variable and the string constants it lists, which may live in any file of the package
// (they are unexported, so the source is parsed).
func appTables(t testing.TB) []string {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "shared", "tables")
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no Go files in shared/tables: %v", err)
	}
	consts := map[string]string{}
	var list *ast.CompositeLit
	fset := token.NewFileSet()
	for _, path := range paths {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok {
				continue
			}
			for _, s := range g.Specs {
				vs, ok := s.(*ast.ValueSpec)
				if !ok {
					continue
				}
				for i, n := range vs.Names {
					if i >= len(vs.Values) {
						continue
					}
					switch v := vs.Values[i].(type) {
					case *ast.BasicLit:
						if g.Tok == token.CONST && v.Kind == token.STRING {
							consts[n.Name], _ = strconv.Unquote(v.Value)
						}
					case *ast.CompositeLit:
						if n.Name == "allTables" {
							list = v
						}
					}
				}
			}
		}
	}
	if list == nil {
		t.Fatal("shared/tables has no `var allTables = []string{...}`: update appTables in this test to the new source of the table list")
	}
	var out []string
	for _, el := range list.Elts {
		switch v := el.(type) {
		case *ast.Ident:
			name, ok := consts[v.Name]
			if !ok {
				t.Fatalf("shared/tables: allTables lists %s, not a string constant of package tables", v.Name)
			}
			out = append(out, name)
		case *ast.BasicLit:
			s, _ := strconv.Unquote(v.Value)
			out = append(out, s)
		default:
			t.Fatalf("shared/tables: allTables holds an expression this test cannot read")
		}
	}
	if len(out) == 0 {
		t.Fatal("shared/tables: allTables is empty")
	}
	return out
}

// Every table the app uses is declared in the Bicep, and nothing else.
func TestTablesAreDeclared(t *testing.T) {
	main := loadBicep(t, "infra/main.bicep")
	open, close := main.varBlock(t, "appTables")
	declared := map[string]bool{}
	for _, s := range main.stringItems(t, open, close) {
		declared[s] = true
	}
	want := appTables(t)
	for _, name := range want {
		if !declared[name] {
			t.Errorf("the app uses table %s (shared/tables allTables) but main.bicep appTables does not declare it", name)
		}
		delete(declared, name)
	}
	for name := range declared {
		t.Errorf("main.bicep appTables declares %s, which shared/tables does not use", name)
	}

	if !regexp.MustCompile(`(?m)^var tableNames = \[\s*for \w+ in appTables:`).MatchString(main.noComments) {
		t.Error("main.bicep: want `var tableNames = [for t in appTables: ...]` (the prefixed names)")
	}
	m := main.module(t, "modules/storage.bicep")
	if p := main.moduleParams(t, m)["tableNames"]; p.value != "tableNames" {
		t.Errorf("main.bicep: module storage gets tableNames: %q, want tableNames", p.value)
	}
	st := loadBicep(t, "infra/modules/storage.bicep")
	ok := false
	for _, r := range st.resources(t) {
		if strings.HasPrefix(r.typ, "Microsoft.Storage/storageAccounts/tableServices/tables@") &&
			strings.Contains(st.masked[r.open:r.close], "for t in tableNames") {
			ok = true
		}
	}
	if !ok {
		t.Error("storage.bicep: want a tableServices/tables resource looping `for t in tableNames`")
	}
	for _, want := range []string{"allowSharedKeyAccess: false", "allowBlobPublicAccess: false", "minimumTlsVersion: 'TLS1_2'"} {
		if !strings.Contains(st.noComments, want) {
			t.Errorf("storage.bicep lacks %q", want)
		}
	}
}

// Built-in role definition ids.
const (
	roleStorageBlobDataOwner         = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
	roleStorageTableDataContributor  = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
	roleServiceBusDataSender         = "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39"
	roleServiceBusDataReceiver       = "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0"
	roleKeyVaultSecretsUser          = "4633458b-17de-408a-b874-0445c86b69e6"
	roleMonitoringMetricsPublisher   = "3913510d-42f4-4e42-8a64-420c390055eb"
	roleKeyVaultSecretsOfficer       = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
	roleOwner                        = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
	roleContributor                  = "b24988ac-6180-42a0-ab88-20f7382dd24c"
	roleUserAccessAdministrator      = "18d7d88d-d35e-4fb5-a5c3-7773c4a72b9d"
	roleServiceBusDataOwner          = "090c5cfd-751d-490a-894a-3ce6f1109419"
	roleKeyVaultAdministrator        = "00482a5a-887f-4fb3-b363-3b7fe8e74483"
	roleStorageAccountContributor    = "17d1049b-9a84-46fb-8f53-869881c3d3ab"
	roleRoleBasedAccessControlAdmin  = "f58310d9-a9f6-439a-9e8d-f62e7b41a168"
	appIdentityPrincipalParam        = "appPrincipalId"
	deployerPrincipalParam           = "principalId"
	rbacModulePath                   = "modules/rbac.bicep"
	appIdentityPrincipalIDExpression = "identity.outputs.principalId"
)

var roleNames = map[string]string{
	roleStorageBlobDataOwner:        "Storage Blob Data Owner",
	roleStorageTableDataContributor: "Storage Table Data Contributor",
	roleServiceBusDataSender:        "Azure Service Bus Data Sender",
	roleServiceBusDataReceiver:      "Azure Service Bus Data Receiver",
	roleKeyVaultSecretsUser:         "Key Vault Secrets User",
	roleMonitoringMetricsPublisher:  "Monitoring Metrics Publisher",
	roleKeyVaultSecretsOfficer:      "Key Vault Secrets Officer",
	roleOwner:                       "Owner",
	roleContributor:                 "Contributor",
	roleUserAccessAdministrator:     "User Access Administrator",
	roleServiceBusDataOwner:         "Azure Service Bus Data Owner",
	roleKeyVaultAdministrator:       "Key Vault Administrator",
	roleStorageAccountContributor:   "Storage Account Contributor",
	roleRoleBasedAccessControlAdmin: "Role Based Access Control Administrator",
}

var guidRE = regexp.MustCompile(`(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// The app identity holds exactly its six data-plane roles, each scoped to a resource;
// the deployer gets at most its two troubleshooting roles and only when principalId is
// set; no broad role appears anywhere.
func TestRoleAssignments(t *testing.T) {
	wantApp := map[string]bool{
		roleStorageBlobDataOwner: true, roleStorageTableDataContributor: true,
		roleServiceBusDataSender: true, roleServiceBusDataReceiver: true,
		roleKeyVaultSecretsUser: true, roleMonitoringMetricsPublisher: true,
	}
	allowDeployer := map[string]bool{roleStorageTableDataContributor: true, roleKeyVaultSecretsOfficer: true}

	gotApp := map[string]int{}
	assignments := 0
	for _, rel := range bicepFiles(t) {
		f := loadBicep(t, rel)
		for _, g := range guidRE.FindAllString(f.noComments, -1) {
			g = strings.ToLower(g)
			if !wantApp[g] && !allowDeployer[g] {
				name := roleNames[g]
				if name == "" {
					name = "an unknown id"
				}
				t.Errorf("%s mentions %s (%s): only the app's six roles and the deployer's two may appear", rel, g, name)
			}
		}
		roleVars := map[string]string{}
		if regexp.MustCompile(`(?m)^var roles\s*=`).MatchString(f.noComments) {
			open, close := f.varBlock(t, "roles")
			for k, e := range f.entryMap(t, open, close) {
				g, _ := literal(e.value)
				roleVars[k] = strings.ToLower(g)
			}
		}
		symbols := map[string]bool{}
		for _, r := range f.resources(t) {
			symbols[r.symbol] = true
		}
		for _, r := range f.resources(t) {
			if !strings.HasPrefix(r.typ, "Microsoft.Authorization/roleAssignments@") {
				continue
			}
			assignments++
			where := rel + ":" + strconv.Itoa(r.line)
			body := f.entryMap(t, r.open, r.close)
			scope := body["scope"].value
			if !symbols[scope] {
				t.Errorf("%s: role assignment %s has scope %q; want a resource of this file (never the resource group or subscription)", where, r.symbol, scope)
			}
			props, ok := body["properties"]
			if !ok {
				t.Errorf("%s: role assignment %s has no properties", where, r.symbol)
				continue
			}
			po, pc, err := f.block(f.lineOffset(props.line))
			if err != nil {
				t.Fatal(err)
			}
			pe := f.entryMap(t, po, pc)
			role := ""
			if m := regexp.MustCompile(`roles\.(\w+)`).FindStringSubmatch(pe["roleDefinitionId"].value); m != nil {
				role = roleVars[m[1]]
			} else if g := guidRE.FindString(pe["roleDefinitionId"].value); g != "" {
				role = strings.ToLower(g)
			}
			if role == "" {
				t.Errorf("%s: cannot tell the role of %s from %q", where, r.symbol, pe["roleDefinitionId"].value)
				continue
			}
			switch principal := pe["principalId"].value; principal {
			case appIdentityPrincipalParam:
				if !wantApp[role] {
					t.Errorf("%s: the app identity gets %s (%s), which is not one of its six roles", where, roleNames[role], role)
				}
				gotApp[role]++
				if pe["principalType"].value != "'ServicePrincipal'" {
					t.Errorf("%s: app identity assignment %s: want principalType 'ServicePrincipal' (avoids replication-delay failures on new identities)", where, r.symbol)
				}
			case deployerPrincipalParam:
				if !allowDeployer[role] {
					t.Errorf("%s: the deploying principal gets %s (%s); it may only get Table Data Contributor and Key Vault Secrets Officer", where, roleNames[role], role)
				}
				if !strings.Contains(strings.ReplaceAll(r.header, " ", ""), "if(!empty(principalId))") {
					t.Errorf("%s: deployer assignment %s must be conditional: `= if (!empty(principalId))`", where, r.symbol)
				}
			default:
				t.Errorf("%s: role assignment %s to %q: only %s (the app identity) and %s (the deployer) may get roles", where, r.symbol, principal, appIdentityPrincipalParam, deployerPrincipalParam)
			}
		}
	}
	if assignments == 0 {
		t.Fatal("no role assignments found under infra/: the scanner is broken")
	}
	for role := range wantApp {
		switch gotApp[role] {
		case 1:
		case 0:
			t.Errorf("the app identity lacks %s (%s)", roleNames[role], role)
		default:
			t.Errorf("the app identity gets %s (%s) %d times", roleNames[role], role, gotApp[role])
		}
	}

	main := loadBicep(t, "infra/main.bicep")
	p := main.moduleParams(t, main.module(t, rbacModulePath))
	if p[appIdentityPrincipalParam].value != appIdentityPrincipalIDExpression {
		t.Errorf("main.bicep: module rbac gets %s: %q, want %s", appIdentityPrincipalParam, p[appIdentityPrincipalParam].value, appIdentityPrincipalIDExpression)
	}
	if p[deployerPrincipalParam].value != deployerPrincipalParam {
		t.Errorf("main.bicep: module rbac gets %s: %q, want the principalId parameter", deployerPrincipalParam, p[deployerPrincipalParam].value)
	}
}

// azd reads these outputs into the environment; the README and the post-deploy
// steps name them.
func TestOutputsForAzd(t *testing.T) {
	main := loadBicep(t, "infra/main.bicep")
	outs := main.outputs()
	for _, name := range []string{"AZURE_LOCATION", "AZURE_TENANT_ID", "AZURE_RESOURCE_GROUP", "SERVICE_API_NAME",
		"SERVICE_API_URI", "AZURE_FUNCTION_APP_NAME", "SERVICE_BUS_NAMESPACE", "STORAGE_ACCOUNT_NAME",
		"KEY_VAULT_NAME", "OUTBOUND_IP_ADDRESSES"} {
		if !outs[name] {
			t.Errorf("main.bicep has no output %s", name)
		}
	}
	docs := readRepo(t, "README.md")
	for _, name := range []string{"OUTBOUND_IP_ADDRESSES", "azd up", "azd down --purge", "scripts/package.sh"} {
		if !strings.Contains(docs, name) {
			t.Errorf("README.md does not mention %s", name)
		}
	}
}
