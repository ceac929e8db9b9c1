package interact

import (
	"math"
	"sync"
	"time"
)

// Limiter rate-limits failed attempts per (tenant, client) key with a token bucket:
// each failure takes a token; while a bucket holds less than one token the key is
// refused without checking its credentials. Buckets refill at one token per Refill up
// to Burst. Successes cost nothing.
//
// The Service keeps two: one per (tenant, client address) and one per tenant (client
// ""), see Config.Limit and Config.TenantLimit.
//
// Memory is bounded: at most MaxClients buckets are kept. When full, buckets that have
// refilled completely (equivalent to absent) are dropped first, then arbitrary ones;
// a dropped key starts over with a full bucket, which only ever favours it, never
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

// wait is how long until b holds one token again (at least a second, for Retry-After).
func (l *Limiter) wait(b *bucket) time.Duration {
	d := time.Duration((1 - b.tokens) / l.perSecond * float64(time.Second))
	return max(d, time.Second)
}

// Take takes one attempt from the client's bucket up front, so that concurrent
// attempts cannot overrun it: ok is false, with how long until one is available, when
// the bucket holds less than one token. A taken attempt counts as a failure unless it
// is given back with Return.
func (l *Limiter) Take(tenantID, client string, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(limitKey{tenantID, client}, now)
	l.refill(b, now)
	if b.tokens < 1 {
		return l.wait(b), false
	}
	b.tokens--
	return 0, true
}

// Return gives back an attempt taken by Take: the attempt did not fail. A bucket
// dropped meanwhile is full already. (Full buckets stay until evicted: dropping them
// here would cost an allocation on every success.)
func (l *Limiter) Return(tenantID, client string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.buckets[limitKey{tenantID, client}]; ok {
		l.refill(b, now)
		b.tokens = math.Min(l.burst, b.tokens+1)
	}
}

// bucket returns k's bucket, a full new one if there is none. Called with l.mu held.
func (l *Limiter) bucket(k limitKey, now time.Time) *bucket {
	b, ok := l.buckets[k]
	if !ok {
		if len(l.buckets) >= l.maxClients {
			l.evict(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[k] = b
	}
	return b
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
