// Command adminaccess prepares the app registration for the admin API, so that the
// first admin call after `azd up` works: the App ID URI api://<client id>, the
// delegated scope Admin.Access with Azure CLI pre-authorised, the app role
// Platform.Operator, the admin portal's address as a SPA redirect URI (once the app
// is deployed: SERVICE_API_URI), and the signed-in Azure CLI user assigned that role.
// It also sets the azd environment's ADMIN_AUDIENCES when it is empty. It runs as
// azd's preprovision and postprovision hooks (azure.yaml) and can be run by hand:
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
	"os"
	"os/exec"
	"strings"
	"time"
)

func main() {
	clientID := flag.String("client-id", os.Getenv("GRAPH_CLIENT_ID"), "client id of the app registration (default $GRAPH_CLIENT_ID)")
	noAssign := flag.Bool("no-assign", false, "do not make the signed-in user a platform operator")
	appURL := flag.String("app-url", os.Getenv("SERVICE_API_URI"), "the app's address, whose /api/portal/ becomes a SPA redirect URI (default $SERVICE_API_URI)")
	hook := flag.Bool("hook", false, "as azd's hook: report problems but never fail the provisioning")
	flag.Parse()
	opts := Options{Assign: !*noAssign}
	if u := strings.TrimSpace(*appURL); u != "" {
		opts.PortalRedirect = strings.TrimSuffix(u, "/") + "/api/portal/"
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
	if os.Getenv("AZURE_ENV_NAME") != "" && strings.TrimSpace(os.Getenv("ADMIN_AUDIENCES")) == "" {
		// Under azd: the audience the app accepts, for this provision's app settings.
		if out, err := exec.Command("azd", "env", "set", "ADMIN_AUDIENCES", res.AppIDURI+","+clientID).CombinedOutput(); err != nil {
			return fmt.Errorf("azd env set ADMIN_AUDIENCES: %v: %s", err, out)
		}
		fmt.Println("adminaccess: ADMIN_AUDIENCES set to", res.AppIDURI+","+clientID)
	}
	return nil
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
