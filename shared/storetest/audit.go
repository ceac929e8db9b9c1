package storetest

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/audit"
)

// RunAudit is the conformance suite of audit.Store.
func RunAudit(t *testing.T, newStore func(t *testing.T) audit.Store) {
	t.Run("AppendAndListNewestFirstInARange", func(t *testing.T) {
		s := newStore(t)
		ctx := context.Background()
		var want []audit.Entry
		for i := 0; i < 5; i++ {
			e := audit.Entry{TenantID: tenantA, At: at.Add(time.Duration(i) * time.Minute), ActorID: "actor", ActorTenant: tenantB,
				Roles: []string{"partnerAdmin"}, Operation: "tenant.update", Target: tenantA,
				Fields: map[string]string{"details.companyName": fmt.Sprintf(`"Contoso %d"`, i), "presence.account1Password": "***"}}
			if err := s.Append(ctx, e); err != nil {
				t.Fatalf("append: %v", err)
			}
			want = append([]audit.Entry{e}, want...)
		}
		if err := s.Append(ctx, audit.Entry{TenantID: tenantB, At: at, Operation: "tenant.create"}); err != nil {
			t.Fatal(err)
		}
		got, err := s.ListAudit(ctx, tenantA, time.Time{}, time.Time{}, 0)
		if err != nil || len(got) != 5 {
			t.Fatalf("list: %d entries, %v", len(got), err)
		}
		for i := range got {
			if !got[i].At.Equal(want[i].At) || !reflect.DeepEqual(got[i].Fields, want[i].Fields) || got[i].ActorTenant != tenantB || got[i].Roles[0] != "partnerAdmin" {
				t.Fatalf("entry %d = %+v, want %+v (newest first)", i, got[i], want[i])
			}
		}
		// [from, to): minutes 1, 2 and 3.
		got, err = s.ListAudit(ctx, tenantA, at.Add(time.Minute), at.Add(4*time.Minute), 0)
		if err != nil || len(got) != 3 || !got[0].At.Equal(at.Add(3*time.Minute)) || !got[2].At.Equal(at.Add(time.Minute)) {
			t.Fatalf("range: %+v, %v", got, err)
		}
		got, _ = s.ListAudit(ctx, tenantA, time.Time{}, time.Time{}, 2)
		if len(got) != 2 || !got[0].At.Equal(at.Add(4*time.Minute)) {
			t.Fatalf("limit 2: %+v", got)
		}
	})
	t.Run("ConcurrentAppendsAtTheSameInstantAreAllKept", func(t *testing.T) {
		s := newStore(t)
		var wg sync.WaitGroup
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.Append(context.Background(), audit.Entry{TenantID: tenantA, At: at, Operation: fmt.Sprint("op", i)}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if got, _ := s.ListAudit(context.Background(), tenantA, time.Time{}, time.Time{}, 0); len(got) != 16 {
			t.Fatalf("%d of 16 entries kept", len(got))
		}
	})
}
