package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	webhooks "github.com/pancake-pos/pancake-webhooks"
)

// Defaults of Config.MaxSyncAttemptsPerShop, Config.MaxSyncAttempts and
// Config.SyncAttemptWait.
const (
	DefaultMaxSyncAttemptsPerShop = 32
	DefaultMaxSyncAttempts        = 256
	DefaultSyncAttemptWait        = 10 * time.Second
)

// syncGate bounds the test sends and manual retries under way at once for
// each shop, and for all shops together. Each holds a goroutine and an
// outbound connection for up to the attempt timeout, outside the
// dispatcher's workers and its bound per webhook: with the request rate
// alone, one key could keep over a thousand open against a receiver that
// hangs (100 a second for 15 s); and 340 shops at their 32 each took a
// server to its open-file limit (accept failing, publishes waiting 8 s).
// One over a bound waits for a slot, up to a while, then is a 429.
type syncGate struct {
	what string // what it bounds, for the 429's message: "test sends and retries"
	per  int
	wait time.Duration
	all  chan struct{} // the server's slots; nil: no bound for the server

	mu    sync.Mutex
	shops map[string]*shopSlots
}

// shopSlots are one shop's slots; users counts those holding or waiting
// for one, so that an idle shop's entry is dropped.
type shopSlots struct {
	slots   chan struct{}
	users   int
	waiting int // of users, those waiting for a slot, the shop's or the server's (tests read it)
}

// newSyncGate returns a gate of per slots a shop and all for the server
// (0: the shops' slots only).
func newSyncGate(what string, per, all int, wait time.Duration) *syncGate {
	g := &syncGate{what: what, per: per, wait: wait, shops: map[string]*shopSlots{}}
	if all > 0 {
		g.all = make(chan struct{}, all)
	}
	return g
}

// enter takes a slot of shop, then one of the server; leave gives them
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
	deadline := time.Now().Add(g.wait)
	busy := func(what string, n int) error {
		w.Header().Set("Retry-After", "1")
		return &webhooks.Error{
			Code:    webhooks.ERATELIMITED,
			Message: "Too many " + g.what + " under way " + what + " (" + strconv.Itoa(n) + " at once); retry after 1 s",
			Details: map[string]any{"retry_after_seconds": 1},
		}
	}
	if err := g.take(ctx, s, s.slots, deadline); err != nil {
		done()
		if err == errNoSlot {
			err = busy("for this shop", g.per)
		}
		return nil, err
	}
	if g.all == nil {
		return func() { <-s.slots; done() }, nil
	}
	if err := g.take(ctx, s, g.all, deadline); err != nil {
		<-s.slots
		done()
		if err == errNoSlot {
			err = busy("on this server", cap(g.all))
		}
		return nil, err
	}
	return func() { <-g.all; <-s.slots; done() }, nil
}

// errNoSlot is take's answer when no slot freed before the deadline.
var errNoSlot = errors.New("no slot")

// take puts a token in slots, waiting until deadline at most (counted in
// s.waiting meanwhile).
func (g *syncGate) take(ctx context.Context, s *shopSlots, slots chan struct{}, deadline time.Time) error {
	select {
	case slots <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(time.Until(deadline))
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
	case slots <- struct{}{}:
		return nil
	case <-t.C:
		return errNoSlot
	case <-ctx.Done():
		return ctx.Err()
	}
}
