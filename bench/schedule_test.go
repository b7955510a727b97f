package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

type started struct {
	k   int
	due time.Time
	at  time.Time
}

func TestOpenLoopOnSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		start := t0.Add(10 * time.Millisecond)
		var mu sync.Mutex
		var got []started
		n, lag := OpenLoop(context.Background(), start, 2*time.Millisecond, 500, 8, func(k int, due time.Time) {
			mu.Lock()
			got = append(got, started{k, due, time.Now()})
			mu.Unlock()
		})
		if n != 500 || len(got) != 500 {
			t.Fatalf("started %d (%d recorded), want 500", n, len(got))
		}
		if lag != 0 {
			t.Errorf("lag %v with instant sends", lag)
		}
		for _, s := range got {
			want := start.Add(time.Duration(s.k) * 2 * time.Millisecond)
			if !s.due.Equal(want) || !s.at.Equal(want) {
				t.Fatalf("send %d due %v started %v, want both at %v", s.k, s.due.Sub(t0), s.at.Sub(t0), want.Sub(t0))
			}
		}
		if el := time.Since(t0); el != 10*time.Millisecond+499*2*time.Millisecond {
			t.Errorf("took %v", el)
		}
	})
}

// A stalled answer delays nothing else: the other sends start on time and the
// stalled one's latency counts from its scheduled time.
func TestOpenLoopStallIsNotHidden(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var mu sync.Mutex
		late := 0
		var stalledLatency time.Duration
		n, lag := OpenLoop(context.Background(), start, 10*time.Millisecond, 100, 64, func(k int, due time.Time) {
			if !time.Now().Equal(due) {
				mu.Lock()
				late++
				mu.Unlock()
			}
			if k == 10 {
				time.Sleep(300 * time.Millisecond) // the server stalls on this one
				mu.Lock()
				stalledLatency = time.Since(due)
				mu.Unlock()
			}
		})
		if n != 100 || late != 0 || lag != 0 {
			t.Errorf("started %d, %d late, lag %v: want 100, 0, 0", n, late, lag)
		}
		if stalledLatency != 300*time.Millisecond {
			t.Errorf("stalled send measured %v from its due time, want 300ms", stalledLatency)
		}
	})
}

// With every send slower than the interval and a bound of 2 in flight, the
// bound holds, the due times stay on the schedule and the lag shows.
func TestOpenLoopBoundsInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var cur, peak atomic.Int64
		var mu sync.Mutex
		dues := map[int]time.Time{}
		n, lag := OpenLoop(context.Background(), start, 10*time.Millisecond, 20, 2, func(k int, due time.Time) {
			c := cur.Add(1)
			for {
				p := peak.Load()
				if c <= p || peak.CompareAndSwap(p, c) {
					break
				}
			}
			mu.Lock()
			dues[k] = due
			mu.Unlock()
			time.Sleep(35 * time.Millisecond)
			cur.Add(-1)
		})
		if n != 20 || peak.Load() != 2 {
			t.Errorf("started %d, peak in flight %d: want 20, 2", n, peak.Load())
		}
		for k, d := range dues {
			if !d.Equal(start.Add(time.Duration(k) * 10 * time.Millisecond)) {
				t.Errorf("send %d due at %v", k, d.Sub(start))
			}
		}
		// Two slots, each free every 35 ms: send 2j starts at 35j ms and
		// 2j+1 at 35j+10 ms, so the last (k = 19, due at 190 ms) starts at
		// 325 ms.
		if lag != 135*time.Millisecond {
			t.Errorf("max lag %v, want 135ms", lag)
		}
	})
}

func TestOpenLoopStopsOnCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 95*time.Millisecond)
		defer cancel()
		start := time.Now()
		n, _ := OpenLoop(ctx, start, 10*time.Millisecond, 1000, 4, func(int, time.Time) {})
		if n != 10 {
			t.Errorf("started %d before the cancel, want 10 (0..90 ms)", n)
		}
		if el := time.Since(start); el != 95*time.Millisecond {
			t.Errorf("returned after %v", el)
		}
	})
}
