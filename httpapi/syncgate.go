package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	webhooks "github.com/pancake-pos/pancake-webhooks"
)

// Defaults of Config.MaxSyncAttemptsPerShop and Config.SyncAttemptWait.
const (
	DefaultMaxSyncAttemptsPerShop = 32
	DefaultSyncAttemptWait        = 10 * time.Second
)

// syncGate bounds the test sends and manual retries under way at once for
// each shop. Each holds a goroutine and an outbound connection for up to
// the attempt timeout, outside the dispatcher's workers and its bound per
// webhook: with the request rate alone, one key could keep over a
// thousand open against a receiver that hangs (100 a second for 15 s).
// One over the bound waits for a slot, up to a while, then is a 429.
type syncGate struct {
	per  int
	wait time.Duration

	mu    sync.Mutex
	shops map[string]*shopSlots
}

// shopSlots are one shop's slots; users counts those holding or waiting
// for one, so that an idle shop's entry is dropped.
type shopSlots struct {
	slots   chan struct{}
	users   int
	waiting int // of users, those waiting for a slot (tests read it)
}

func newSyncGate(per int, wait time.Duration) *syncGate {
	return &syncGate{per: per, wait: wait, shops: map[string]*shopSlots{}}
}

// enter takes a slot of shop for a synchronous attempt; leave gives it
// back. When none frees within the wait, it sets Retry-After on w and
// answers rate_limited.
func (g *syncGate) enter(ctx context.Context, w http.ResponseWriter, shop string) (leave func(), err error) {
	g.mu.Lock()
	s := g.shops[shop]
	if s == nil {
		s = &shopSlots{slots: make(chan struct{}, g.per)}
		g.shops[shop] = s
	}
	s.users++
	g.mu.Unlock()
	done := func() {
		g.mu.Lock()
		if s.users--; s.users == 0 {
			delete(g.shops, shop)
		}
		g.mu.Unlock()
	}

	select {
	case s.slots <- struct{}{}:
	default:
		t := time.NewTimer(g.wait)
		defer t.Stop()
		g.mu.Lock()
		s.waiting++
		g.mu.Unlock()
		defer func() {
			g.mu.Lock()
			s.waiting--
			g.mu.Unlock()
		}()
		select {
		case s.slots <- struct{}{}:
		case <-t.C:
			done()
			w.Header().Set("Retry-After", "1")
			return nil, &webhooks.Error{
				Code: webhooks.ERATELIMITED,
				Message: "Too many test sends and retries under way for this shop (" + strconv.Itoa(g.per) +
					" at once); retry after 1 s",
				Details: map[string]any{"retry_after_seconds": 1},
			}
		case <-ctx.Done():
			done()
			return nil, ctx.Err()
		}
	}
	return func() { <-s.slots; done() }, nil
}
