package graph

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/teamscc/teamscc/shared/fault"
)

func TestUserIDResolvesAUPNWithTheTenantsAppToken(t *testing.T) {
	f := NewFake()
	defer f.Close()
	r, err := New(f.Options("app-1"))
	if err != nil {
		t.Fatal(err)
	}
	const tid = "72f988bf-0000-4000-8000-2d7cd011db47"
	f.SetUPN("jane@contoso.com", "7a4e6b0c-1d2e-4f30-8a9b-0c1d2e3f4a5b")
	id, err := r.UserID(context.Background(), tid, "Jane@Contoso.com")
	if err != nil || id != "7a4e6b0c-1d2e-4f30-8a9b-0c1d2e3f4a5b" {
		t.Fatalf("UserID: %q %v", id, err)
	}
	if f.RequestsBy(AppPrincipal("app-1")) != 1 {
		t.Fatalf("requests by the app: %d", f.RequestsBy(AppPrincipal("app-1")))
	}
	_, err = r.UserID(context.Background(), tid, "nobody@contoso.com")
	if !errors.Is(err, fault.ErrNotFound) || strings.Contains(err.Error(), "nobody") {
		t.Fatalf("unknown user: %v", err)
	}
	if _, err := r.UserID(context.Background(), tid, "a/b"); !fault.IsPermanent(err) {
		t.Fatalf("a user id with a slash: %v", err)
	}
}
