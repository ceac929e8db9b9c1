package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/teamscc/teamscc/shared/simulate"
)

// TestPortalScreenshots writes PNGs of the portal's main pages, as the local runner
// (`make run`) shows them with simulated calls going on, into the folder named by
// PORTAL_SCREENSHOTS (`make screenshots`: docs/screenshots). Without it, it skips.
func TestPortalScreenshots(t *testing.T) {
	dir := os.Getenv("PORTAL_SCREENSHOTS")
	if dir == "" {
		t.Skip("PORTAL_SCREENSHOTS is not set (make screenshots sets it)")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	browser := newBrowser(t)
	base := startLocal(t, map[string]string{"LogLevel": "warn", "PresenceRefreshSchedule": "*/2 * * * * *"})
	tb := newTab(t, browser, base, `if (location.protocol.startsWith('http')) sessionStorage.setItem('teamscc.portal.pollMs', '500');`)
	tb.do("viewport", chromedp.EmulateViewport(1080, 760))
	// shot writes the page from its top (the whole page with full), without the focus
	// ring of what the test clicked last.
	shot := func(name string, full bool) {
		t.Helper()
		ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
		defer cancel()
		if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)`)); err != nil {
			t.Fatal(err)
		}
		capture := chromedp.CaptureScreenshot()
		if full {
			capture = chromedp.FullScreenshot(100)
		}
		b, err := chromedp.Run(ctx, capture)
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fabrikam := "#/t/" + simulate.FabrikamID

	tb.open("#/tenants")
	shot("portal-tenants", false)
	tb.goTo(contoso)
	shot("portal-tenant", false)
	tb.goTo(contoso + "/services/sales")
	shot("portal-service", false)
	waitFor(t, "both tenants' presence read", func() bool {
		var c, f healthView
		getJSON(t, base+"/api/tenants/"+simulate.ContosoID+"/presence/health", &c)
		getJSON(t, base+"/api/tenants/"+simulate.FabrikamID+"/presence/health", &f)
		return c.Health != nil && f.Health != nil
	})
	tb.goTo(contoso + "/agents")
	shot("portal-agents", false)
	tb.goTo(fabrikam + "/presence")
	tb.setField("upn", "agent01@fabrikam.example")
	tb.click(`main form button[type="submit"]`)
	tb.waitVisible(`.test-result table`)
	shot("portal-presence", true)
	tb.goTo(contoso + "/interact")
	shot("portal-interact", false)

	// Simulated callers call sales; simulated agents answer within seconds.
	for range 3 {
		if status, body := post(t, base+"/sim/calls", `{"to":"+15555550100"}`); status != http.StatusAccepted {
			t.Fatalf("place a call: %d %s", status, body)
		}
	}
	tb.goTo(contoso + "/live/sales")
	tb.pollWithin("the simulated calls ringing or connected",
		`document.querySelectorAll('main tr[data-state="Offered"], main tr[data-state="Connected"]').length >= 2`, 60*time.Second)
	shot("portal-live", false)
	tb.click(`main tr[data-task] button`)
	tb.waitVisible(`dialog[open] table`)
	shot("portal-live-explain", false)
	tb.noConsoleErrors()
}
