package tables

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Azurite for the tests: started once per test binary on first use, on a free
// loopback port, in memory, and stopped by TestMain. AZURITE_TABLE_ENDPOINT uses an
// Azurite that is already running instead.
//
// When Azurite cannot be had, the tests that need it fail if CI is set or
// REQUIRE_AZURITE=1 (CI must never pass by skipping), and are skipped otherwise.
var azurite struct {
	once     sync.Once
	endpoint string
	err      error
	cmd      *exec.Cmd
	release  func()
	exited   chan struct{}
	dir      string
}

const azuriteHint = "install it with `make test` (runs `npm install --prefix .tools azurite@3.35.0`; needs Node.js 20), " +
	"or set AZURITE_TABLE_BIN to an azurite-table binary, or AZURITE_TABLE_ENDPOINT to a running Azurite's table endpoint"

func TestMain(m *testing.M) {
	code := m.Run()
	stopAzurite()
	os.Exit(code)
}

// needAzurite returns the table endpoint of Azurite (http://127.0.0.1:PORT/devstoreaccount1).
func needAzurite(tb testing.TB) string {
	tb.Helper()
	azurite.once.Do(func() { azurite.endpoint, azurite.err = startAzurite() })
	if azurite.err != nil {
		msg := fmt.Sprintf("Azurite is required for this test but %v; %s", azurite.err, azuriteHint)
		if os.Getenv("CI") != "" || os.Getenv("REQUIRE_AZURITE") == "1" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	return azurite.endpoint
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
	azurite.dir = dir
	var last error
	for try := 0; try < 3; try++ { // the free port may be taken before Azurite binds it
		port, err := freePort()
		if err != nil {
			return "", err
		}
		if last = runAzurite(bin, dir, port); last == nil {
			return fmt.Sprintf("http://127.0.0.1:%d/%s", port, devAccountName), nil
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
			azurite.cmd, azurite.release, azurite.exited = cmd, release, exited
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

func stopAzurite() {
	if azurite.cmd != nil {
		killProcess(azurite.cmd, false)
		select {
		case <-azurite.exited:
		case <-time.After(5 * time.Second):
			killProcess(azurite.cmd, true)
			<-azurite.exited
		}
		azurite.release()
	}
	if azurite.dir != "" {
		_ = os.RemoveAll(azurite.dir)
	}
}

// azuriteConfig is a Config for the test Azurite with a table prefix of its own.
func azuriteConfig(tb testing.TB) Config {
	tb.Helper()
	ep := needAzurite(tb)
	return Config{
		ConnectionString: "DefaultEndpointsProtocol=http;AccountName=" + devAccountName + ";AccountKey=" + devAccountKey + ";TableEndpoint=" + ep,
		TablePrefix:      nextPrefix(),
	}
}

var (
	runID     = randomID()
	prefixSeq atomic.Int64
)

func randomID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// nextPrefix is unique per Store within this run and across runs sharing an Azurite.
func nextPrefix() string { return fmt.Sprintf("T%s%d", runID, prefixSeq.Add(1)) }

// openAzurite opens a Store with fresh tables and deletes them when tb ends.
func openAzurite(tb testing.TB) *Store {
	tb.Helper()
	cfg := azuriteConfig(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, cfg)
	if err != nil {
		tb.Fatalf("open: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var errs []error
		for _, name := range allTables {
			if _, err := s.svc.DeleteTable(ctx, s.table(name), nil); err != nil {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			tb.Logf("delete test tables: %v", classify(err))
		}
	})
	return s
}
