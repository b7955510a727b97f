package httpapi

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Bounds of a limiterSet's memory.
const (
	// limiterIdle is how long an unused limiter is kept. A limiter idle for
	// longer than it takes to refill is indistinguishable from a new one.
	limiterIdle = 10 * time.Minute
	// limiterSweepEvery is how often idle limiters are swept, lazily.
	limiterSweepEvery = time.Minute
	// maxLimiters caps the number of limiters kept at once.
	maxLimiters = 100_000
)

// limiterSet holds one token bucket per API key (by hash). Idle limiters are
// evicted lazily while serving, so nothing runs in the background.
type limiterSet struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	mu        sync.Mutex
	limiters  map[string]*keyLimiter
	lastSweep time.Time
}

type keyLimiter struct {
	lim      *rate.Limiter
	lastSeen time.Time
}

func newLimiterSet(limit rate.Limit, burst int, now func() time.Time) *limiterSet {
	return &limiterSet{limit: limit, burst: burst, now: now, limiters: map[string]*keyLimiter{}}
}

// allow takes one token for key. When none is left it returns false and how
// long until one is.
func (s *limiterSet) allow(key string) (bool, time.Duration) {
	if s == nil || s.limit == rate.Inf {
		return true, 0
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.lastSweep) >= limiterSweepEvery || len(s.limiters) >= maxLimiters {
		s.sweep(now)
	}
	kl, ok := s.limiters[key]
	if !ok {
		kl = &keyLimiter{lim: rate.NewLimiter(s.limit, s.burst)}
		s.limiters[key] = kl
	}
	kl.lastSeen = now
	res := kl.lim.ReserveN(now, 1)
	if !res.OK() {
		return false, time.Second
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

func (s *limiterSet) sweep(now time.Time) {
	s.lastSweep = now
	for k, kl := range s.limiters {
		if now.Sub(kl.lastSeen) >= limiterIdle {
			delete(s.limiters, k)
		}
	}
	// Still full (a flood of keys): forget arbitrary ones; a forgotten key
	// starts again with a full bucket, which errs on the side of serving.
	for k := range s.limiters {
		if len(s.limiters) < maxLimiters {
			break
		}
		delete(s.limiters, k)
	}
}

// retryAfterSeconds rounds d up to whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) int {
	secs := int(math.Ceil(d.Seconds()))
	return max(secs, 1)
}
