package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// The admin portal in a real browser: headless Chromium driven over the DevTools
// protocol (chromedp), against the app over HTTP. Chromium is found on PATH; without
// it the browser tests skip, unless CI=1 or REQUIRE_BROWSER=1 make them fail.

// chromiumPath finds the browser: chromium first (Debian's package), then the names
// other systems give it.
func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// newBrowser starts a headless Chromium for the test and stops it at the end.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		msg := "no Chromium on PATH (chromium): the browser tests need it (Debian: apt-get install -y chromium)"
		if os.Getenv("CI") == "1" || os.Getenv("REQUIRE_BROWSER") == "1" {
			t.Fatal(msg + "; CI=1 or REQUIRE_BROWSER=1 is set, so this fails instead of skipping")
		}
		t.Skip(msg)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.WindowSize(1280, 900),
		// Our own pages only; running as root (CI containers) needs it.
		chromedp.NoSandbox,
		chromedp.Flag("lang", "en-US"))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start Chromium (%s): %v", path, err)
	}
	return ctx
}

// tab is one browser tab with what its pages wrote to the console.
type tab struct {
	t    *testing.T
	ctx  context.Context
	base string // the app's URL

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

// stepTimeout bounds one step (a navigation, a wait): generous for a loaded CI
// machine, and a failing step says which one it was.
const stepTimeout = 20 * time.Second

// newTab opens a tab on the browser. init runs in every page before the page's own
// scripts (e.g. to put a token into sessionStorage, as the sign-in would).
func newTab(t *testing.T, browser context.Context, base, init string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	tb := &tab{t: t, ctx: ctx, base: base}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			tb.mu.Lock()
			tb.console = append(tb.console, m)
			tb.mu.Unlock()
		}
	}()
	if init != "" {
		if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: init}); err != nil {
			t.Fatalf("init script: %v", err)
		}
	}
	return tb
}

// do runs actions as one step, failing the test with what the step was.
func (tb *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("%s: %v\nconsole: %v\npage: %s", what, err, tb.messages(), tb.mainText())
	}
}

// poll waits until the JavaScript expression js is true in the page.
func (tb *tab) poll(what, js string) {
	tb.t.Helper()
	tb.pollWithin(what, js, stepTimeout)
}

// pollWithin is poll with its own time limit.
func (tb *tab) pollWithin(what, js string, limit time.Duration) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, limit)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](js)); err != nil {
		tb.t.Fatalf("%s: %v\nconsole: %v\npage: %s", what, err, tb.messages(), tb.mainText())
	}
}

// mainText is the text of the page's <main>, for failure messages.
func (tb *tab) mainText() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 2*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.getElementById('main') || document.body || {}).innerText || ''`))
	return s
}

// open loads the portal at fragment and waits until the view has rendered.
func (tb *tab) open(fragment string) {
	tb.t.Helper()
	tb.do("open "+fragment, chromedp.Navigate(tb.base+"/api/portal/"+fragment))
	tb.waitRendered(fragment)
}

// goTo moves the loaded portal to another view (as a click on a link does).
func (tb *tab) goTo(fragment string) {
	tb.t.Helper()
	tb.do("go to "+fragment, chromedp.Evaluate[chromedp.Void](`location.hash = `+jsString(fragment)))
	tb.waitRendered(fragment)
}

// waitRendered waits until <main> shows fragment's view, rendered.
func (tb *tab) waitRendered(fragment string) {
	tb.t.Helper()
	tb.do("render "+fragment, chromedp.WaitVisible(chromedp.CSS(`main[data-route=`+jsString(fragment)+`][aria-busy="false"]`)))
}

// text is the text of the first element sel matches, once it is visible.
func (tb *tab) text(sel string) string {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		tb.t.Fatalf("text of %s: %v\nconsole: %v\npage: %s", sel, err, tb.messages(), tb.mainText())
	}
	return s
}

// eval runs JavaScript in the page and decodes its result.
func evalIn[T any](tb *tab, js string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		tb.t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// field is the form control named name (a field's API path).
func field(name string) string { return `[name=` + jsString(name) + `]` }

// setField replaces a text field's value by typing, as a user does (what was there
// is selected first, so the typing replaces it).
func (tb *tab) setField(name, value string) {
	tb.t.Helper()
	tb.do("type into "+name,
		chromedp.WaitVisible(chromedp.CSS(field(name))),
		chromedp.Evaluate[chromedp.Void](`(() => { const c = document.querySelector(`+jsString(field(name))+`); c.focus(); c.select(); })()`),
		chromedp.SendKeys(chromedp.CSS(field(name)), value))
	if got := evalIn[string](tb, `document.querySelector(`+jsString(field(name))+`).value`); got != value {
		tb.t.Fatalf("typed %q into %s, it holds %q", value, name, got)
	}
}

func (tb *tab) click(sel string) {
	tb.t.Helper()
	tb.do("click "+sel, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

func (tb *tab) waitVisible(sel string) {
	tb.t.Helper()
	tb.do("wait for "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
}

func (tb *tab) messages() []chromedp.ConsoleMessage {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]chromedp.ConsoleMessage(nil), tb.console...)
}

// noConsoleErrors fails the test for every uncaught exception, console.error call
// and browser log error (a failed request among them) the tab's pages produced.
// Answers the test expects (a 412, a 403) are named in expected: a browser log
// error whose text holds one of them is allowed.
func (tb *tab) noConsoleErrors(expected ...string) {
	tb.t.Helper()
	for _, m := range tb.messages() {
		if m.Type != chromedp.ConsoleError && !m.IsException() {
			continue
		}
		allowed := false
		for _, e := range expected {
			allowed = allowed || (!m.IsException() && m.Source == "network" && strings.Contains(m.Text, e))
		}
		if !allowed {
			tb.t.Errorf("console %s (%s %s:%d): %s", m.Type, m.Source, m.URL, m.Line, m.Text)
		}
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// tokenInit is the init script of a signed-in tab: the token the sign-in would have
// put into sessionStorage, and a quick poll of the live queue.
func tokenInit(token string) string {
	return fmt.Sprintf(`if (location.protocol.startsWith('http')) {
  sessionStorage.setItem('teamscc.portal.token', JSON.stringify({accessToken: %s, refreshToken: '', expiresAt: Date.now() + 3600e3}));
  sessionStorage.setItem('teamscc.portal.pollMs', '300');
}`, jsString(token))
}
