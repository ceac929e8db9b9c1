package entra

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// keyCache holds the RSA signing keys of one issuer for both validators: load
// fetches a fresh set (a JWKS, or OpenID metadata and then its JWKS); the cache
// decides when to call it. It is safe for concurrent use.
//
//   - A known kid is answered from memory; once the set is older than refreshEvery a
//     refresh starts in the background and the caller uses the key it has.
//   - An unknown kid (or no keys yet) starts a fetch at most once per unknownKidEvery
//     (5 s while there are no keys at all), so made-up kids cannot make us hammer the
//     key server; callers arriving meanwhile are refused without a fetch.
//   - Concurrent callers share the fetch under way.
//   - A failed fetch keeps the keys the cache has.
type keyCache struct {
	load            func(ctx context.Context) (map[string]*rsa.PublicKey, error)
	now             func() time.Time
	refreshEvery    time.Duration
	unknownKidEvery time.Duration

	keys atomic.Pointer[keySet]

	mu       sync.Mutex
	attempt  time.Time // start of the last fetch
	inflight *fetch

	rounds atomic.Int64 // calls of load
}

type keySet struct {
	m         map[string]*rsa.PublicKey
	fetchedAt time.Time
}

type fetch struct {
	done chan struct{}
	err  error
}

// noKeysBackoff is the least time between fetches while the cache has no keys at all:
// short, so a cold start after an outage recovers quickly, but not a fetch per request.
const noKeysBackoff = 5 * time.Second

// key returns the public key for kid, fetching the keys when allowed.
func (c *keyCache) key(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	now := c.now()
	ks := c.keys.Load()
	if ks != nil {
		if k, ok := ks.m[kid]; ok {
			if now.Sub(ks.fetchedAt) >= c.refreshEvery {
				c.start(now, c.refreshEvery) // in the background; this request uses the key it has
			}
			return k, nil
		}
	}
	every := c.unknownKidEvery
	if ks == nil {
		every = noKeysBackoff
	}
	f := c.start(now, every)
	if f == nil {
		return nil, fmt.Errorf("unknown kid (keys fetched less than %s ago)", every)
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if f.err != nil {
		return nil, f.err
	}
	if ks = c.keys.Load(); ks != nil {
		if k, ok := ks.m[kid]; ok {
			return k, nil
		}
	}
	return nil, errors.New("unknown kid")
}

// start returns the fetch under way, or starts one if the last began at least every
// ago; nil if neither.
func (c *keyCache) start(now time.Time, every time.Duration) *fetch {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inflight != nil {
		return c.inflight
	}
	if !c.attempt.IsZero() && now.Sub(c.attempt) < every {
		return nil
	}
	c.attempt = now
	f := &fetch{done: make(chan struct{})}
	c.inflight = f
	go func() {
		// Its own context: the caller that started it may go away, the others wait.
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		f.err = c.fetch(ctx)
		c.mu.Lock()
		c.inflight = nil
		c.mu.Unlock()
		close(f.done)
	}()
	return f
}

// fetch loads a key set and replaces the cached one; on failure the old set stays.
func (c *keyCache) fetch(ctx context.Context) error {
	c.rounds.Add(1)
	m, err := c.load(ctx)
	if err != nil {
		return err
	}
	c.keys.Store(&keySet{m: m, fetchedAt: c.now()})
	return nil
}

// getJSON GETs u and decodes its JSON body (at most 1 MiB) into v; what names the
// document in errors.
func getJSON(ctx context.Context, client *http.Client, u, what string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", what, err)
	}
	req.Header.Set("Accept", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", what, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch %s: HTTP %d", what, res.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(v); err != nil {
		return fmt.Errorf("fetch %s: %w", what, err)
	}
	return nil
}

type jwks struct {
	Keys []struct {
		Kty string `json:"kty"`
		Use string `json:"use"`
		Kid string `json:"kid"`
		N   string `json:"n"`
		E   string `json:"e"`
	} `json:"keys"`
}

// fetchJWKS reads the JWKS at u and returns its RSA signing keys of at least 2048
// bits by kid; other keys are skipped. A document without a usable key is an error.
func fetchJWKS(ctx context.Context, client *http.Client, u string) (map[string]*rsa.PublicKey, error) {
	var doc jwks
	if err := getJSON(ctx, client, u, "signing keys", &doc); err != nil {
		return nil, err
	}
	m := map[string]*rsa.PublicKey{}
	for _, k := range doc.Keys {
		if k.Kty != "RSA" || (k.Use != "" && k.Use != "sig") || k.Kid == "" {
			continue
		}
		n, err1 := base64.RawURLEncoding.DecodeString(strings.TrimRight(k.N, "="))
		e, err2 := base64.RawURLEncoding.DecodeString(strings.TrimRight(k.E, "="))
		if err1 != nil || err2 != nil || len(e) == 0 || len(e) > 4 {
			continue
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if pub.N.BitLen() < 2048 {
			continue
		}
		m[k.Kid] = pub
	}
	if len(m) == 0 {
		return nil, errors.New("fetch signing keys: no usable RSA key")
	}
	return m, nil
}

// keyURLAllowed reports whether keys or metadata may be read from u: https with a
// host, or plain http to a loopback host (local runs and tests). The host is parsed,
// not prefix-matched, so http://localhost.evil.example/ is refused.
func keyURLAllowed(u string) bool {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return false
	}
	switch p.Scheme {
	case "https":
		return true
	case "http":
		h := p.Hostname()
		if h == "localhost" {
			return true
		}
		a, err := netip.ParseAddr(h)
		return err == nil && a.IsLoopback()
	}
	return false
}
