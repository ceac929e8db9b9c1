package acs_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/acs"
	"github.com/teamscc/teamscc/shared/interact"
)

var secret = base64.StdEncoding.EncodeToString([]byte("the-shared-access-key-0123456789"))

// fakeACS checks every request's HMAC signature, written here independently of the
// adapter, and keeps identities.
type fakeACS struct {
	t   *testing.T
	mu  sync.Mutex
	ids map[string]bool
	seq int
	log []string
}

func (f *fakeACS) verify(r *http.Request, body []byte) bool {
	sum := sha256.Sum256(body)
	hash := base64.StdEncoding.EncodeToString(sum[:])
	if r.Header.Get("x-ms-content-sha256") != hash {
		return false
	}
	date := r.Header.Get("x-ms-date")
	d, err := time.Parse(time.RFC1123, date)
	if err != nil || !strings.HasSuffix(date, " GMT") || time.Since(d).Abs() > 5*time.Minute {
		return false
	}
	key, _ := base64.StdEncoding.DecodeString(secret)
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s\n%s\n%s;%s;%s", r.Method, r.RequestURI, date, r.Host, hash)
	want := "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=" + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	return hmac.Equal([]byte(r.Header.Get("Authorization")), []byte(want))
}

func (f *fakeACS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if !f.verify(r, body) {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if r.URL.Query().Get("api-version") != acs.APIVersion {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, r.Method+" "+r.URL.Path)
	exp := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/identities":
		var in struct {
			CreateTokenFor []string `json:"createTokenFor"`
		}
		_ = json.Unmarshal(body, &in)
		f.seq++
		id := fmt.Sprintf("8:acs:res_%04d", f.seq)
		f.ids[id] = true
		out := map[string]any{"identity": map[string]string{"id": id}}
		if len(in.CreateTokenFor) > 0 {
			out["accessToken"] = map[string]string{"token": "tok-" + strings.Join(in.CreateTokenFor, "+"), "expiresOn": exp}
		}
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(out)
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/:issueAccessToken"):
		id := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/identities/"), "/:issueAccessToken")
		if !f.ids[id] {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"token": "tok2", "expiresOn": exp})
	case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/identities/"):
		delete(f.ids, strings.TrimPrefix(r.URL.Path, "/identities/"))
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func start(t *testing.T) (*fakeACS, string) {
	f := &fakeACS{t: t, ids: map[string]bool{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, "endpoint=" + srv.URL + "/;accesskey=" + secret
}

func TestIdentitiesAndTokensWithSignedRequests(t *testing.T) {
	f, conn := start(t)
	c := acs.New(nil, nil)
	ctx := context.Background()
	id, err := c.CreateIdentity(ctx, conn, interact.TokenScopes)
	if err != nil || id.ID != "8:acs:res_0001" || id.Token != "tok-chat+voip" || id.ExpiresOn.IsZero() {
		t.Fatalf("create = %+v, %v", id, err)
	}
	tok, err := c.IssueToken(ctx, conn, id.ID, []string{"voip"})
	if err != nil || tok.Token != "tok2" || tok.ID != id.ID {
		t.Fatalf("issue = %+v, %v", tok, err)
	}
	if err := c.DeleteIdentity(ctx, conn, id.ID); err != nil {
		t.Fatal(err)
	}
	if len(f.ids) != 0 {
		t.Fatalf("identities left: %v", f.ids)
	}
}

func TestCheck(t *testing.T) {
	f, conn := start(t)
	c := acs.New(nil, nil)
	ctx := context.Background()
	if r := c.Check(ctx, conn); r.Status != interact.CheckOK {
		t.Fatalf("good string: %+v", r)
	}
	if len(f.ids) != 0 || len(f.log) != 2 {
		t.Fatalf("check must create and delete one identity: %v, left %v", f.log, f.ids)
	}
	wrong := strings.Replace(conn, secret, base64.StdEncoding.EncodeToString([]byte("another-key")), 1)
	r := c.Check(ctx, wrong)
	if r.Status != interact.CheckBadKey || strings.Contains(r.Detail, "another") {
		t.Fatalf("wrong key: %+v", r)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	if r := c.Check(ctx, "endpoint=http://"+addr+";accesskey="+secret); r.Status != interact.CheckUnreachable || strings.Contains(r.Detail, secret) {
		t.Fatalf("closed port: %+v", r)
	}
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) }))
	defer broken.Close()
	if r := c.Check(ctx, "endpoint="+broken.URL+";accesskey="+secret); r.Status != interact.CheckFailed || !strings.Contains(r.Detail, "500") {
		t.Fatalf("5xx: %+v", r)
	}
	if r := c.Check(ctx, "nonsense"); r.Status != interact.CheckFailed {
		t.Fatalf("malformed: %+v", r)
	}
	_, err := c.CreateIdentity(ctx, wrong, nil)
	if err == nil || strings.Contains(err.Error(), "accesskey") || strings.Contains(err.Error(), secret) {
		t.Fatalf("errors must not quote the connection string: %v", err)
	}
}

// Every failure matches exactly one of the domain's ACS error kinds; a server that
// accepts the connection and never answers is unreachable once the client's timeout
// passes.
func TestErrorsMatchTheDomainKinds(t *testing.T) {
	_, conn := start(t)
	wrong := strings.Replace(conn, secret, base64.StdEncoding.EncodeToString([]byte("another-key")), 1)
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	defer broken.Close()
	garbled := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, "<html>")
	}))
	defer garbled.Close()
	release := make(chan struct{})
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer silent.Close()
	defer close(release)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()

	c := acs.New(&http.Client{Timeout: 200 * time.Millisecond}, nil)
	kinds := []error{interact.ErrACSRefused, interact.ErrACSUnreachable, interact.ErrACSFailed}
	for _, tc := range []struct {
		name, conn string
		want       error
	}{
		{"wrong key", wrong, interact.ErrACSRefused},
		{"503", "endpoint=" + broken.URL + ";accesskey=" + secret, interact.ErrACSFailed},
		{"undecodable answer", "endpoint=" + garbled.URL + ";accesskey=" + secret, interact.ErrACSFailed},
		{"closed port", "endpoint=http://" + closed + ";accesskey=" + secret, interact.ErrACSUnreachable},
		{"never answers", "endpoint=" + silent.URL + ";accesskey=" + secret, interact.ErrACSUnreachable},
	} {
		_, err := c.CreateIdentity(context.Background(), tc.conn, interact.TokenScopes)
		for _, k := range kinds {
			if errors.Is(err, k) != (k == tc.want) {
				t.Errorf("%s: %v: errors.Is(%v) = %v", tc.name, err, k, k != tc.want)
			}
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the error quotes the key: %v", tc.name, err)
		}
	}
	if r := c.Check(context.Background(), "endpoint="+silent.URL+";accesskey="+secret); r.Status != interact.CheckUnreachable {
		t.Errorf("check against a server that never answers: %+v", r)
	}
}
