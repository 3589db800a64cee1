// Package latency counts durations into fixed buckets with atomic
// counters: cheap enough for a hot path, with no allocation per
// observation and no lock. The gateway's packages keep their latencies in
// a [Histogram] and expose [Snapshot]s; package telemetry turns those
// into Prometheus histograms at scrape time, so the packages that observe
// need not import Prometheus.
package latency

import (
	"fmt"
	"sync/atomic"
	"time"
)

// FanOut are the bucket bounds of the exchange-event-to-fan-out latency:
// 0.5 ms to 2.5 s.
var FanOut = []time.Duration{
	500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond,
	250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2500 * time.Millisecond,
}

// Request are the bucket bounds of exchange request round trips: 1 ms to
// 10 s (a reply later than its timeout is never observed).
var Request = []time.Duration{
	time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// Histogram counts durations into buckets with fixed upper bounds, plus
// one unbounded bucket. It is safe for concurrent use; Observe neither
// allocates nor locks.
type Histogram struct {
	bounds []time.Duration // ascending upper bounds, inclusive
	counts []atomic.Uint64 // len(bounds)+1: the last one is +Inf
	sum    atomic.Int64    // nanoseconds
}

// New returns an empty histogram with the given bucket upper bounds, which
// must be positive and strictly ascending. The bounds are constants of the
// program, so New panics on invalid ones rather than return an error no
// caller could handle.
func New(bounds ...time.Duration) *Histogram {
	for i, b := range bounds {
		if b <= 0 || (i > 0 && b <= bounds[i-1]) {
			panic(fmt.Sprintf("latency: bounds must be positive and strictly ascending: %v", bounds))
		}
	}
	return &Histogram{
		bounds: append([]time.Duration(nil), bounds...),
		counts: make([]atomic.Uint64, len(bounds)+1),
	}
}

// Observe counts d in the first bucket whose bound is at least d. A
// negative d (clocks that disagree) counts as zero.
func (h *Histogram) Observe(d time.Duration) {
	d = max(d, 0)
	i := 0
	for i < len(h.bounds) && d > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

// Snapshot returns the counts so far. Buckets are read one at a time, so
// a snapshot taken while observations go on may be off by those few, but
// Count is always the sum of Counts.
func (h *Histogram) Snapshot() Snapshot {
	s := Snapshot{
		Bounds: h.bounds,
		Counts: make([]uint64, len(h.counts)),
		Sum:    time.Duration(h.sum.Load()),
	}
	for i := range h.counts {
		s.Counts[i] = h.counts[i].Load()
		s.Count += s.Counts[i]
	}
	return s
}

// Snapshot is the state of a [Histogram] at one moment.
type Snapshot struct {
	// Bounds are the buckets' upper bounds, shared with the histogram:
	// read only.
	Bounds []time.Duration
	// Counts are the observations per bucket, not cumulative:
	// Counts[i] for Bounds[i-1] < d ≤ Bounds[i]; the last one for d
	// above every bound.
	Counts []uint64
	// Count is the number of observations.
	Count uint64
	// Sum is the sum of the observations.
	Sum time.Duration
}

// Cumulative returns the number of observations at most each bound, in
// seconds: the buckets of a Prometheus histogram (without +Inf, which is
// Count).
func (s Snapshot) Cumulative() map[float64]uint64 {
	out := make(map[float64]uint64, len(s.Bounds))
	var n uint64
	for i, b := range s.Bounds {
		n += s.Counts[i]
		out[b.Seconds()] = n
	}
	return out
}
