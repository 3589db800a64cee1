// Package demand merges the two reasons a gateway node wants a stream
// upstream: its clients want it, or an operator pinned it. A [Set] keeps
// both and forwards only the changes of their union to a [Sink], so a
// stream is wanted while either holds and released when neither does.
//
// The single-node gateway forwards the union to the upstream router; a
// cluster node forwards it to the demand it registers in Redis.
package demand

import "sync"

// Sink receives the changes of a [Set]'s union. Want gets keys that just
// entered it, Unwant keys that just left it; a key is never wanted twice
// in a row, nor unwanted while not wanted. The Set calls it with its lock
// held, one call at a time, so the Sink must not block and must not call
// the Set back.
type Sink interface {
	Want(keys []string)
	Unwant(keys []string)
}

// Set is the union of the keys clients want and the keys pinned. Wants
// and pins are separate: Unwant does not undo a Pin, nor Unpin a Want. Its
// methods are safe for concurrent use and never block beyond the Sink.
type Set struct {
	sink   Sink
	limit  int
	onDrop func(n int)

	// mu guards the following fields.
	mu      sync.Mutex
	clients map[string]struct{}
	pinned  map[string]struct{}
	// size is the number of keys in clients ∪ pinned.
	size int
}

// New returns an empty set that forwards the changes of its union to
// sink. With limit > 0 the union holds at most limit keys: a key that
// would grow it beyond is dropped (not recorded, so a later Unwant or
// Unpin of it does nothing), and onDrop, when not nil, is called with the
// number dropped by the call, after the lock is released.
func New(sink Sink, limit int, onDrop func(n int)) *Set {
	return &Set{sink: sink, limit: limit, onDrop: onDrop,
		clients: make(map[string]struct{}), pinned: make(map[string]struct{})}
}

// Want records that clients want keys.
func (s *Set) Want(keys []string) { s.add(keys, false) }

// Unwant records that clients no longer want keys; pinned keys stay in
// the union.
func (s *Set) Unwant(keys []string) { s.remove(keys, false) }

// Pin keeps key in the union until [Set.Unpin], whether or not clients
// want it.
func (s *Set) Pin(key string) { s.add([]string{key}, true) }

// Unpin removes a pin set by [Set.Pin]; the key stays in the union while
// clients want it.
func (s *Set) Unpin(key string) { s.remove([]string{key}, true) }

// Len returns the number of keys in the union.
func (s *Set) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size
}

// add adds keys to the clients' set or the pins.
func (s *Set) add(keys []string, pin bool) {
	var fwd []string
	dropped := 0
	s.mu.Lock()
	set, other := s.clients, s.pinned
	if pin {
		set, other = s.pinned, s.clients
	}
	for _, k := range keys {
		if _, ok := set[k]; ok {
			continue
		}
		if _, ok := other[k]; !ok {
			if s.limit > 0 && s.size >= s.limit {
				dropped++
				continue
			}
			s.size++
			fwd = append(fwd, k)
		}
		set[k] = struct{}{}
	}
	if len(fwd) > 0 {
		s.sink.Want(fwd)
	}
	s.mu.Unlock()
	if dropped > 0 && s.onDrop != nil {
		s.onDrop(dropped)
	}
}

// remove removes keys from the clients' set or the pins.
func (s *Set) remove(keys []string, pin bool) {
	var fwd []string
	s.mu.Lock()
	defer s.mu.Unlock()
	set, other := s.clients, s.pinned
	if pin {
		set, other = s.pinned, s.clients
	}
	for _, k := range keys {
		if _, ok := set[k]; !ok {
			continue
		}
		delete(set, k)
		if _, ok := other[k]; !ok {
			s.size--
			fwd = append(fwd, k)
		}
	}
	if len(fwd) > 0 {
		s.sink.Unwant(fwd)
	}
}
