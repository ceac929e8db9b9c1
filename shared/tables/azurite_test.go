package tables

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/azurite"
)

func TestMain(m *testing.M) {
	code := m.Run()
	azurite.Stop()
	os.Exit(code)
}

// needAzurite returns the table endpoint of the test Azurite (see package azurite).
func needAzurite(tb testing.TB) string {
	tb.Helper()
	return azurite.Need(tb)
}

// azuriteConfig is a Config for the test Azurite with a table prefix of its own.
func azuriteConfig(tb testing.TB) Config {
	tb.Helper()
	ep := needAzurite(tb)
	return Config{
		ConnectionString: azurite.ConnectionString(ep),
		TablePrefix:      nextPrefix(),
		// Azurite, shared by every package's tests running at once, slows down sharply
		// with thousands of rows: a seeding transaction may take longer than Azure's.
		TryTimeout: 15 * time.Second,
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
	return openAzuriteWith(tb, azuriteConfig(tb))
}

// openAzuriteWith is openAzurite with cfg from azuriteConfig, adjusted (an HTTP client).
func openAzuriteWith(tb testing.TB, cfg Config) *Store {
	tb.Helper()
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
