// Command adminaccess prepares the app registration for the admin API, so that the
// first admin call after `azd up` works: the App ID URI api://<client id>, the
// delegated scope Admin.Access with Azure CLI pre-authorised, the app role
// Platform.Operator, the admin portal's address as a SPA redirect URI (once the app
// is deployed: SERVICE_API_URI), and the signed-in Azure CLI user assigned that role.
// With a reports URL (REPORTS_URL: the app's custom domain) it also prepares the
// registration for Power BI's OData feed: that URL as an Application ID URI, the scope
// user_impersonation, Power Query's clients pre-authorised. It sets the azd
// environment's ADMIN_AUDIENCES when it is empty or lacks the client id or the reports
// URL. It runs as azd's preprovision and postprovision hooks (azure.yaml) and can be
// run by hand:
//
//	go run ./scripts/adminaccess -client-id <GRAPH_CLIENT_ID> -app-url https://<app>.azurewebsites.net
//
// It signs in as the Azure CLI user (az login), who must own the registration (or be
// an Application Administrator) and may assign its roles. It changes nothing else of
// the registration, and a second run changes nothing.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"time"
)

func main() {
	clientID := flag.String("client-id", os.Getenv("GRAPH_CLIENT_ID"), "client id of the app registration (default $GRAPH_CLIENT_ID)")
	noAssign := flag.Bool("no-assign", false, "do not make the signed-in user a platform operator")
	appURL := flag.String("app-url", os.Getenv("SERVICE_API_URI"), "the app's address, whose /api/portal/ becomes a SPA redirect URI (default $SERVICE_API_URI)")
	reportsURL := flag.String("reports-url", os.Getenv("REPORTS_URL"), "https://<custom domain of the app>: prepare the registration for Power BI's OData feed (default $REPORTS_URL)")
	hook := flag.Bool("hook", false, "as azd's hook: report problems but never fail the provisioning")
	flag.Parse()
	opts := Options{Assign: !*noAssign}
	if u := strings.TrimSpace(*appURL); u != "" {
		opts.PortalRedirect = strings.TrimSuffix(u, "/") + "/api/portal/"
	}
	if u := strings.TrimSpace(*reportsURL); u != "" {
		r, err := reportsURI(u)
		if err != nil {
			fmt.Fprintln(os.Stderr, "adminaccess: -reports-url:", err)
			os.Exit(2)
		}
		opts.ReportsURI = r
	}
	if err := run(*clientID, opts); err != nil {
		fmt.Fprintln(os.Stderr, "adminaccess:", err)
		fmt.Fprintln(os.Stderr, "adminaccess: the admin API refuses every call until this is done; see README, \"First admin call after azd up\".")
		if !*hook {
			os.Exit(1)
		}
	}
}

func run(clientID string, opts Options) error {
	if clientID == "" {
		fmt.Println("adminaccess: GRAPH_CLIENT_ID is not set: nothing to prepare (the admin API needs the app registration)")
		return nil
	}
	token, err := azOutput("account", "get-access-token", "--resource-type", "ms-graph", "--query", "accessToken", "-o", "tsv")
	if err != nil {
		return fmt.Errorf("%w: %v", errNoAz, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	g := &graph{base: "https://graph.microsoft.com/v1.0", token: token, http: &http.Client{Timeout: 30 * time.Second}}
	res, err := Setup(ctx, g, clientID, opts)
	if err != nil {
		return err
	}
	report(res, opts)
	have := strings.TrimSpace(os.Getenv("ADMIN_AUDIENCES"))
	if want := audiences(have, res.AppIDURI, clientID, opts.ReportsURI); os.Getenv("AZURE_ENV_NAME") != "" && want != have {
		// Under azd: the audiences the app accepts, for the next provision's app settings.
		if out, err := exec.Command("azd", "env", "set", "ADMIN_AUDIENCES", want).CombinedOutput(); err != nil {
			return fmt.Errorf("azd env set ADMIN_AUDIENCES: %v: %s", err, out)
		}
		fmt.Println("adminaccess: ADMIN_AUDIENCES set to", want, "(`azd provision` applies it if this ran after provisioning)")
	}
	return nil
}

// audiences is ADMIN_AUDIENCES as the app needs it: have (else the App ID URI) with
// the client id (the admin portal's tokens carry it) and the reports' URI (Power BI's)
// added when it lacks them.
func audiences(have, appIDURI, clientID, reports string) string {
	if have == "" {
		have = appIDURI
	}
	for _, need := range []string{clientID, reports} {
		found := need == ""
		for a := range strings.SplitSeq(have, ",") {
			found = found || strings.EqualFold(strings.TrimSpace(a), need)
		}
		if !found {
			have += "," + need
		}
	}
	return have
}

// reportsURI checks the base URL Power BI reads the reports at: https, a host, no
// path, query or fragment (Power BI asks Entra for a token for exactly that).
func reportsURI(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSuffix(raw, "/"))
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("%q must be https://<host> with nothing after the host (the base URL of the app's custom domain)", raw)
	}
	if strings.HasSuffix(strings.ToLower(u.Hostname()), ".azurewebsites.net") {
		return "", fmt.Errorf("%q: Entra accepts an https Application ID URI only on a domain verified in your tenant; give the app a custom domain and use it", raw)
	}
	return u.Scheme + "://" + u.Host, nil
}

func report(r Result, opts Options) {
	say := func(changed bool, what string) {
		state := "already there"
		if changed {
			state = "added"
		}
		fmt.Printf("adminaccess: %s: %s\n", what, state)
	}
	say(r.IdentifierURI, "App ID URI "+r.AppIDURI)
	say(r.Scope, "scope "+ScopeValue)
	say(r.Role, "app role "+RoleValue)
	say(r.PreAuthorized, "Azure CLI pre-authorised")
	if opts.PortalRedirect != "" {
		say(r.PortalRedirect, "admin portal redirect URI "+opts.PortalRedirect)
	}
	if opts.ReportsURI != "" {
		say(r.Reports, "Power BI: Application ID URI "+opts.ReportsURI+", scope "+ReportsScopeValue+", Power Query pre-authorised")
	}
	say(r.OperatorAssign, "you as platform operator")
}

// azOutput runs the Azure CLI and returns its trimmed standard output.
func azOutput(args ...string) (string, error) {
	out, err := exec.Command("az", args...).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return "", fmt.Errorf("az %s: %s", args[0], strings.TrimSpace(string(ee.Stderr)))
	}
	return strings.TrimSpace(string(out)), err
}
