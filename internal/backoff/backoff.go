// Package backoff computes capped exponential retry delays with jitter, the
// one rule every reconnecting part of marketgate uses.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Backoff computes capped exponential delays with jitter. Attempt n waits
// a uniformly random time in [d/2, d] with d = Min·2^(n+1) capped at Max,
// and never less than Min: with 500 ms and 30 s, 0.5–1 s, 1–2 s, … 15–30 s.
// The jitter keeps many clients (nodes, shards) from retrying in step.
// Min and Max must be positive with Min ≤ Max; the zero value is not
// usable. It is not safe for concurrent use.
type Backoff struct {
	Min, Max time.Duration
	n        int
}

// Next returns the delay before the next attempt and counts the attempt.
func (b *Backoff) Next() time.Duration {
	d := b.Max
	if b.n < 30 {
		if e := b.Min << (b.n + 1); e > 0 && e < b.Max {
			d = e
		}
	}
	b.n++
	half := d / 2
	delay := half + time.Duration(rand.Int64N(int64(d-half)+1))
	return max(delay, b.Min)
}

// Reset makes the next delay the shortest again.
func (b *Backoff) Reset() { b.n = 0 }

// Exhaust makes the next delay the longest one, for failures that carry a
// penalty (an exchange's 1008 "Too many requests").
func (b *Backoff) Exhaust() { b.n = 30 }

// Attempts returns the attempts counted since the last Reset.
func (b *Backoff) Attempts() int { return b.n }
