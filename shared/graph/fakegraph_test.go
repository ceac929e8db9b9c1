package graph

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/teamscc/teamscc/shared/presence"
)

func fakeToken(t *testing.T, f *Fake, username, password string) string {
	t.Helper()
	form := url.Values{"grant_type": {"password"}, "client_id": {testClientID}, "username": {username},
		"password": {password}, "scope": {GraphScope}}
	resp, err := f.Client().PostForm(f.URL+"/"+testTenant+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || tr.AccessToken == "" {
		t.Fatalf("token: %v %d", err, resp.StatusCode)
	}
	return tr.AccessToken
}

// The fake inflates gzip bodies (the SDK's default) and answers only known users.
func TestFakeGzipAndAnswer(t *testing.T) {
	f := NewFake()
	defer f.Close()
	f.SetPresence("a", "Busy", "InACall")
	tok := fakeToken(t, f, user1, pass1)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write([]byte(`{"ids":["a","b"]}`))
	zw.Close()
	req, _ := http.NewRequest(http.MethodPost, f.GraphURL+"/communications/getPresencesByUserId", &buf)
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := f.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Value []struct{ ID, Availability, Activity string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || len(out.Value) != 1 || out.Value[0].ID != "a" || out.Value[0].Activity != "InACall" {
		t.Errorf("status %d, %+v", resp.StatusCode, out)
	}
	if f.RequestsBy(user1) != 1 || f.IDsSeen() != 2 {
		t.Errorf("counters: by=%d ids=%d", f.RequestsBy(user1), f.IDsSeen())
	}
	// No token: 401.
	req, _ = http.NewRequest(http.MethodPost, f.GraphURL+"/communications/getPresencesByUserId", strings.NewReader(`{"ids":["a"]}`))
	resp2, err := f.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token: status %d", resp2.StatusCode)
	}
}

func TestFakeStateAndCounters(t *testing.T) {
	f := NewFake()
	defer f.Close()
	f.SetPresences([]string{"a", "b"}, "Away", "Away")
	if av, act, ok := f.Presence("b"); !ok || av != "Away" || act != "Away" {
		t.Errorf("Presence(b) = %q %q %v", av, act, ok)
	}
	f.DeletePresence("b")
	if _, _, ok := f.Presence("b"); ok {
		t.Error("b not deleted")
	}
	r, err := New(f.Options(testClientID))
	if err != nil {
		t.Fatal(err)
	}
	f.SetLatency(time.Millisecond)
	f.Throttle(1, "0")
	obs, err := r.ReadPresences(context.Background(), testTenant, acct1, []string{"a", "b"})
	if err != nil || len(obs) != 1 || obs[0].Availability != presence.Away {
		t.Fatalf("got %+v, %v", obs, err)
	}
	st := f.Stats()
	if st.GraphRequests != 2 || st.Throttled != 1 || st.IDsSeen != 2 || st.TokenRequests != 1 || st.MaxInFlight != 1 {
		t.Errorf("stats %+v", st)
	}
	f.ResetCounters()
	if st := f.Stats(); st != (FakeStats{}) || f.RequestsBy(user1) != 0 {
		t.Errorf("after reset %+v", st)
	}
	seen := 0
	f.OnGraphRequest(func(*http.Request) { seen++ })
	if _, err := r.ReadPresence(context.Background(), testTenant, acct1, "a"); err != nil {
		t.Fatal(err)
	}
	f.OnGraphRequest(nil)
	if seen != 1 {
		t.Errorf("hook saw %d requests", seen)
	}
}
