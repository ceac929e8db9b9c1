// Package azurite starts Azurite's table service for tests and benchmarks of any
// package: once per test binary, on a free loopback port, in memory; Stop (from
// TestMain) ends it. AZURITE_TABLE_ENDPOINT uses an Azurite that is already running
// instead; AZURITE_TABLE_BIN names the azurite-table binary (default: the repository's
// .tools install, then PATH). Standard library only.
package azurite

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The development account every Azurite accepts (Microsoft's published, well-known
// key: not a secret).
const (
	AccountName = "devstoreaccount1"
	AccountKey  = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// ConnectionString is the storage connection string of the Azurite at endpoint.
func ConnectionString(endpoint string) string {
	return "DefaultEndpointsProtocol=http;AccountName=" + AccountName + ";AccountKey=" + AccountKey + ";TableEndpoint=" + endpoint
}

var proc struct {
	once     sync.Once
	endpoint string
	err      error
	cmd      *exec.Cmd
	release  func()
	exited   chan struct{}
	dir      string
}

const hint = "install it with `make azurite` (npm install into .tools; needs Node.js 20), " +
	"or set AZURITE_TABLE_BIN to an azurite-table binary, or AZURITE_TABLE_ENDPOINT to a running Azurite's table endpoint"

// Need returns the table endpoint of Azurite (http://127.0.0.1:PORT/devstoreaccount1),
// starting it on first use. When Azurite cannot be had, tb fails if CI is set or
// REQUIRE_AZURITE=1 (CI must never pass by skipping), and is skipped otherwise.
func Need(tb testing.TB) string {
	tb.Helper()
	proc.once.Do(func() { proc.endpoint, proc.err = startAzurite() })
	if proc.err != nil {
		msg := fmt.Sprintf("Azurite is required for this test but %v; %s", proc.err, hint)
		if os.Getenv("CI") != "" || os.Getenv("REQUIRE_AZURITE") == "1" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	return proc.endpoint
}

func startAzurite() (string, error) {
	if ep := os.Getenv("AZURITE_TABLE_ENDPOINT"); ep != "" {
		u, err := url.Parse(ep)
		if err != nil || u.Host == "" {
			return "", fmt.Errorf("AZURITE_TABLE_ENDPOINT %q is not a URL", ep)
		}
		c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
		if err != nil {
			return "", fmt.Errorf("AZURITE_TABLE_ENDPOINT does not answer: %v", err)
		}
		c.Close()
		return strings.TrimRight(ep, "/"), nil
	}
	bin, err := findAzurite()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "azurite-table-")
	if err != nil {
		return "", err
	}
	proc.dir = dir
	var last error
	for try := 0; try < 3; try++ { // the free port may be taken before Azurite binds it
		port, err := freePort()
		if err != nil {
			return "", err
		}
		if last = runAzurite(bin, dir, port); last == nil {
			return fmt.Sprintf("http://127.0.0.1:%d/%s", port, AccountName), nil
		}
	}
	return "", last
}

// findAzurite: AZURITE_TABLE_BIN, else <repo root>/.tools/node_modules/.bin/azurite-table,
// else azurite-table on PATH.
func findAzurite() (string, error) {
	if bin := os.Getenv("AZURITE_TABLE_BIN"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("AZURITE_TABLE_BIN: %v", err)
		}
		return bin, nil
	}
	var tried []string
	if dir, err := os.Getwd(); err == nil {
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				bin := filepath.Join(dir, ".tools", "node_modules", ".bin", "azurite-table")
				if _, err := os.Stat(bin); err == nil {
					return bin, nil
				}
				tried = append(tried, bin)
				break
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	if bin, err := exec.LookPath("azurite-table"); err == nil {
		return bin, nil
	}
	tried = append(tried, "azurite-table on PATH")
	return "", fmt.Errorf("azurite-table was not found (tried %s)", strings.Join(tried, ", "))
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// lockedBuffer collects Azurite's output for error messages.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() < 64<<10 {
		l.b.Write(p)
	}
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.TrimSpace(l.b.String())
}

func runAzurite(bin, dir string, port int) error {
	// --location cannot be combined with --inMemoryPersistence in 3.35.0 ("not
	// supported when the --location option is set"): the temp dir is the working
	// directory instead, where Azurite would put anything it writes.
	// --disableTelemetry: otherwise Azurite tries to reach the internet.
	cmd := exec.Command(bin, "--inMemoryPersistence", "--tableHost", "127.0.0.1", "--tablePort", fmt.Sprint(port),
		"--skipApiVersionCheck", "--disableTelemetry", "--silent")
	cmd.Dir = dir
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	release, err := startProcess(cmd)
	if err != nil {
		return fmt.Errorf("starting %s failed: %v", bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			proc.cmd, proc.release, proc.exited = cmd, release, exited
			return nil
		}
		select {
		case <-exited:
			release()
			return fmt.Errorf("%s exited before answering (%s): %s", bin, cmd.ProcessState, out)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			killProcess(cmd, true)
			<-exited
			release()
			return fmt.Errorf("%s did not answer on port %d within 30s: %s", bin, port, out)
		}
	}
}

// Stop stops the Azurite Need started (call it from TestMain after m.Run).
func Stop() {
	if proc.cmd != nil {
		killProcess(proc.cmd, false)
		select {
		case <-proc.exited:
		case <-time.After(5 * time.Second):
			killProcess(proc.cmd, true)
			<-proc.exited
		}
		proc.release()
	}
	if proc.dir != "" {
		_ = os.RemoveAll(proc.dir)
	}
}
