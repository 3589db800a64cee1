package admin

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limits of failed token attempts. A client address may fail failBurst
// times at once, then once per failEvery; while it has no attempt left,
// its requests answer 429 without the token being compared, the right
// one included. At most maxTracked addresses are remembered (IPv6 by
// /64); beyond, addresses not yet remembered share one budget, so memory
// stays bounded whatever the number of addresses.
const (
	failBurst  = 10
	failEvery  = time.Second
	maxTracked = 1024
)

// failures counts failed token attempts per client address. It is safe
// for concurrent use.
type failures struct {
	now func() time.Time

	mu sync.Mutex // guards the following fields
	// byAddr holds a limiter per address prefix; the invalid Prefix
	// holds the one shared by addresses not remembered once it is full.
	byAddr map[netip.Prefix]*rate.Limiter
}

func newFailures(now func() time.Time) *failures {
	return &failures{now: now, byAddr: map[netip.Prefix]*rate.Limiter{}}
}

// key is the prefix ip is counted under: the address itself, or its /64
// for IPv6, which one client usually holds whole.
func key(ip netip.Addr) netip.Prefix {
	bits := ip.BitLen()
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits) // invalid for an invalid ip: the shared budget
	return p
}

// limiterLocked returns the limiter of ip, nil if it has none yet and
// add is false.
func (f *failures) limiterLocked(ip netip.Addr, add bool) *rate.Limiter {
	k := key(ip)
	if l := f.byAddr[k]; l != nil {
		return l
	}
	if len(f.byAddr) >= maxTracked {
		f.pruneLocked()
	}
	if len(f.byAddr) >= maxTracked {
		k = netip.Prefix{}
		if l := f.byAddr[k]; l != nil || !add {
			return l
		}
	}
	if !add {
		return nil
	}
	l := rate.NewLimiter(rate.Every(failEvery), failBurst)
	f.byAddr[k] = l
	return l
}

// pruneLocked forgets the addresses whose budget is whole again.
func (f *failures) pruneLocked() {
	now := f.now()
	for k, l := range f.byAddr {
		if l.TokensAt(now) >= failBurst {
			delete(f.byAddr, k)
		}
	}
}

// blocked returns how long ip must wait before its next attempt; 0 when
// it may try now.
func (f *failures) blocked(ip netip.Addr) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.limiterLocked(ip, false)
	if l == nil {
		return 0
	}
	tokens := l.TokensAt(f.now())
	if tokens >= 1 {
		return 0
	}
	return time.Duration((1 - tokens) * float64(failEvery))
}

// fail counts a failed attempt of ip. It reports whether that used its
// last attempt, so that the caller logs once per throttled episode.
func (f *failures) fail(ip netip.Addr) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.limiterLocked(ip, true)
	now := f.now()
	l.AllowN(now, 1)
	return l.TokensAt(now) < 1
}
