package interact

import (
	"math"
	"sync"
	"time"
)

// Limiter rate-limits failed attempts per (tenant, client address) with a token
// bucket: each failure takes a token; while a bucket holds less than one token the
// client is refused without checking its credentials. Buckets refill at one token per
// Refill up to Burst. Successes cost nothing.
//
// Memory is bounded: at most MaxClients buckets are kept. When full, buckets that have
// refilled completely (equivalent to absent) are dropped first, then arbitrary ones;
// a dropped client starts over with a full bucket, which only ever favours it, never
// locks anyone out. Safe for concurrent use.
type Limiter struct {
	burst      float64
	perSecond  float64
	maxClients int

	mu      sync.Mutex
	buckets map[limitKey]*bucket
}

type limitKey struct{ tenant, client string }

type bucket struct {
	tokens float64
	last   time.Time
}

// LimitConfig configures a Limiter. Zero fields take the defaults: Burst 10, Refill 6 s
// (ten failures, then one per 6 s), MaxClients 10,000.
type LimitConfig struct {
	Burst      int
	Refill     time.Duration
	MaxClients int
}

// NewLimiter returns a Limiter.
func NewLimiter(c LimitConfig) *Limiter {
	if c.Burst <= 0 {
		c.Burst = 10
	}
	if c.Refill <= 0 {
		c.Refill = 6 * time.Second
	}
	if c.MaxClients <= 0 {
		c.MaxClients = 10_000
	}
	return &Limiter{burst: float64(c.Burst), perSecond: 1 / c.Refill.Seconds(), maxClients: c.MaxClients,
		buckets: make(map[limitKey]*bucket)}
}

// refill brings b up to now.
func (l *Limiter) refill(b *bucket, now time.Time) {
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = math.Min(l.burst, b.tokens+dt*l.perSecond)
		b.last = now
	}
}

// Allow reports whether the client may try now; if not, how long until it may.
func (l *Limiter) Allow(tenantID, client string, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[limitKey{tenantID, client}]
	if !ok {
		return 0, true
	}
	l.refill(b, now)
	if b.tokens >= 1 {
		return 0, true
	}
	wait := time.Duration((1 - b.tokens) / l.perSecond * float64(time.Second))
	return max(wait, time.Second), false
}

// Fail records one failed attempt of the client.
func (l *Limiter) Fail(tenantID, client string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := limitKey{tenantID, client}
	b, ok := l.buckets[k]
	if !ok {
		if len(l.buckets) >= l.maxClients {
			l.evict(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[k] = b
	}
	l.refill(b, now)
	b.tokens = math.Max(0, b.tokens-1)
}

// evict makes room: first the buckets that are full again, then arbitrary ones down
// to 90 % of the bound. Called with l.mu held.
func (l *Limiter) evict(now time.Time) {
	for k, b := range l.buckets {
		l.refill(b, now)
		if b.tokens >= l.burst {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) < l.maxClients*9/10 {
			break
		}
		delete(l.buckets, k)
	}
}

// Len reports how many clients are tracked (tests).
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
