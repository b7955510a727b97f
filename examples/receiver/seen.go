package main

import (
	"container/list"
	"sync"
	"time"
)

// seenSet remembers webhook-ids, at most size of them, each for ttl after it
// was last seen; the least recently seen is forgotten first. It is safe for
// concurrent use.
//
// An id is added before its event is handled and removed if handling
// fails, so two concurrent attempts of one event are handled once; if that
// one fails, the other has already been answered 204 and the server's
// retry of the failed one brings the event back.
type seenSet struct {
	mu    sync.Mutex
	max   int
	ttl   time.Duration
	now   func() time.Time
	order *list.List // of *seenEntry, most recently seen first
	index map[string]*list.Element
}

type seenEntry struct {
	id string
	at time.Time // last seen
}

// newSeenSet returns an empty set; now is the clock.
func newSeenSet(size int, ttl time.Duration, now func() time.Time) *seenSet {
	return &seenSet{max: size, ttl: ttl, now: now, order: list.New(), index: map[string]*list.Element{}}
}

// Add records id and reports whether it is new (not seen within ttl).
// Seeing it again refreshes it.
func (s *seenSet) Add(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if el, ok := s.index[id]; ok {
		e := el.Value.(*seenEntry)
		fresh := now.Sub(e.at) < s.ttl
		e.at = now
		s.order.MoveToFront(el)
		return !fresh
	}
	// Forget the expired ones, and the oldest beyond max.
	for el := s.order.Back(); el != nil; el = s.order.Back() {
		e := el.Value.(*seenEntry)
		if s.order.Len() < s.max && now.Sub(e.at) < s.ttl {
			break
		}
		s.order.Remove(el)
		delete(s.index, e.id)
	}
	s.index[id] = s.order.PushFront(&seenEntry{id: id, at: now})
	return true
}

// Remove forgets id.
func (s *seenSet) Remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.index[id]; ok {
		s.order.Remove(el)
		delete(s.index, id)
	}
}

// Len returns how many ids are remembered.
func (s *seenSet) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.order.Len()
}
