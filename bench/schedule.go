package bench

import (
	"context"
	"sync"
	"time"
)

// OpenLoop sends n requests on a fixed schedule, whatever the server does:
// request k is due at start + k*interval and is started in its own goroutine
// no earlier than that; a slow answer delays nothing but itself, so a stall
// shows as latency measured from the scheduled time instead of being hidden by
// clients that wait. At most maxInFlight sends run at once (a bound on
// goroutines and connections): when that many are outstanding, the next ones
// start late, still carrying their scheduled time. OpenLoop returns when every
// started send has finished, with the number started and the largest delay
// between a due time and the actual start. When ctx ends, no more are started.
func OpenLoop(ctx context.Context, start time.Time, interval time.Duration, n, maxInFlight int,
	send func(k int, scheduled time.Time)) (started int, maxLag time.Duration) {
	if maxInFlight < 1 {
		maxInFlight = 1
	}
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for k := 0; k < n; k++ {
		due := start.Add(time.Duration(k) * interval)
		if d := time.Until(due); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				return started, maxLag
			case <-timer.C:
			}
		}
		select {
		case <-ctx.Done():
			return started, maxLag
		case sem <- struct{}{}:
		}
		if lag := time.Since(due); lag > maxLag {
			maxLag = lag
		}
		started++
		wg.Go(func() {
			defer func() { <-sem }()
			send(k, due)
		})
	}
	return started, maxLag
}
