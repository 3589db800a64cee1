package cluster

import (
	"context"
	"slices"
	"sync"
	"time"
)

// carrier is the only caller of [Local]'s Want, Unwant and UnwantNow. For
// each exchange it keeps what Local carries equal to the cluster's demand
// for that exchange while this node's claim on the exchange is valid, and
// empty otherwise: when the claim ends, everything goes at once.
//
// A claim is valid until a deadline on the monotonic clock that the lease
// loop moves on every successful renewal. The watchdog goroutine ([carrier.watch])
// stops carrying at that deadline even while the lease loop is stuck in a
// Redis call, so a node that cannot renew never carries for longer than its
// lease lasts in Redis.
type carrier struct {
	local Local
	// wake tells the watchdog that a deadline changed.
	wake chan struct{}

	// mu guards the following fields, and is held while Local is called so
	// that its calls are serialized and each sees the state the previous
	// one left.
	mu sync.Mutex
	// frozen is set when the node is killed in a test: no more calls.
	frozen bool
	// union is the cluster's demand by exchange, read while some claim is
	// valid; nil while none is.
	union map[string]map[string]struct{}
	// gen counts changes of union.
	gen uint64
	// ex holds the state of each exchange of Config.Exchanges.
	ex map[string]*carryState
}

// carryState is what the carrier knows about one exchange.
type carryState struct {
	// until is the end of this node's claim; zero when there is none.
	until time.Time
	// active reports whether the last reconcile found the claim valid.
	active bool
	// gen is the union generation the last reconcile applied.
	gen uint64
	// carried is what Local carries for the exchange.
	carried map[string]struct{}
}

// newCarrier returns a carrier for exchanges over local.
func newCarrier(local Local, exchanges []string) *carrier {
	c := &carrier{
		local: local,
		wake:  make(chan struct{}, 1),
		ex:    make(map[string]*carryState, len(exchanges)),
	}
	for _, x := range exchanges {
		c.ex[x] = &carryState{carried: make(map[string]struct{})}
	}
	return c
}

// setUntil records that this node's claim on exchange ex is valid until
// until (zero: no claim) and brings Local in line at once: a node that
// loses or gives up a claim has stopped carrying when setUntil returns.
func (c *carrier) setUntil(ex string, until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.ex[ex]
	if c.frozen || s == nil {
		return
	}
	s.until = until
	now := time.Now()
	if !c.anyValidLocked(now) && c.union != nil {
		c.union = nil
		c.gen++
	}
	c.reconcileLocked(ex, s, now)
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// setUnion records the cluster's demand, grouped by exchange, and brings
// Local in line for every exchange with a valid claim. It drops union when
// no claim is valid, so that a later claim never starts from old demand.
func (c *carrier) setUnion(union map[string]map[string]struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.frozen {
		return
	}
	now := time.Now()
	if !c.anyValidLocked(now) {
		union = nil
	}
	c.union = union
	c.gen++
	for ex, s := range c.ex {
		c.reconcileLocked(ex, s, now)
	}
}

// valid reports whether this node holds a valid claim on some exchange,
// that is whether it needs the cluster's demand.
func (c *carrier) valid() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.anyValidLocked(time.Now())
}

// anyValidLocked reports whether some claim is valid at now.
func (c *carrier) anyValidLocked(now time.Time) bool {
	for _, s := range c.ex {
		if now.Before(s.until) {
			return true
		}
	}
	return false
}

// expire stops carrying the exchanges whose claim ended by now, and
// returns the earliest end of a claim still valid (zero if none).
func (c *carrier) expire(now time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.frozen {
		return time.Time{}
	}
	var next time.Time
	for ex, s := range c.ex {
		c.reconcileLocked(ex, s, now)
		if s.active && (next.IsZero() || s.until.Before(next)) {
			next = s.until
		}
	}
	if next.IsZero() && c.union != nil {
		c.union = nil
		c.gen++
	}
	return next
}

// stopAll stops carrying everything.
func (c *carrier) stopAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.frozen {
		return
	}
	now := time.Now()
	c.union = nil
	c.gen++
	for ex, s := range c.ex {
		s.until = time.Time{}
		c.reconcileLocked(ex, s, now)
	}
}

// freeze makes the carrier call Local no more, as if the process had died.
func (c *carrier) freeze() {
	c.mu.Lock()
	c.frozen = true
	c.mu.Unlock()
}

// reconcileLocked makes Local carry union[ex] if the claim on ex is valid
// at now, and nothing of ex otherwise. It does nothing when neither the
// validity nor the union changed since the last time, so renewals cost
// nothing.
func (c *carrier) reconcileLocked(ex string, s *carryState, now time.Time) {
	active := now.Before(s.until)
	if active == s.active && (!active || s.gen == c.gen) {
		return
	}
	var target map[string]struct{}
	if active {
		target = c.union[ex]
	}
	added, removed := diff(s.carried, target)
	// Unwant first: a Local with a bound on its streams then has room.
	// Without a claim, at once: another node carries them now. Each change
	// is recorded once Local took it: after a panic in Local, the next
	// reconcile tries again what is left.
	switch {
	case len(removed) == 0:
	case active:
		c.local.Unwant(removed)
	default:
		c.local.UnwantNow(removed)
	}
	for _, k := range removed {
		delete(s.carried, k)
	}
	if len(added) > 0 {
		c.local.Want(added)
	}
	for _, k := range added {
		s.carried[k] = struct{}{}
	}
	s.active, s.gen = active, c.gen
}

// watch stops carrying each exchange when its claim ends, until ctx ends.
func (c *carrier) watch(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		d := time.Hour
		if next := c.expire(time.Now()); !next.IsZero() {
			d = max(time.Until(next), time.Millisecond)
		}
		t.Reset(d)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.wake:
		}
	}
}

// diff returns the keys of want that have lacks (added) and the keys of
// have that want lacks (removed), each sorted.
func diff(have, want map[string]struct{}) (added, removed []string) {
	for k := range want {
		if _, ok := have[k]; !ok {
			added = append(added, k)
		}
	}
	for k := range have {
		if _, ok := want[k]; !ok {
			removed = append(removed, k)
		}
	}
	slices.Sort(added)
	slices.Sort(removed)
	return added, removed
}

// groupByExchange groups stream keys by exchange, keeping only the
// exchanges of known.
func groupByExchange(keys []string, known map[string]bool) map[string]map[string]struct{} {
	g := make(map[string]map[string]struct{}, len(known))
	for _, k := range keys {
		ex, ok := streamExchange(k)
		if !ok || !known[ex] {
			continue
		}
		if g[ex] == nil {
			g[ex] = make(map[string]struct{})
		}
		g[ex][k] = struct{}{}
	}
	return g
}
