package upstream

import (
	"math/rand/v2"
	"time"
)

// backoff computes capped exponential reconnect delays with jitter. Attempt
// n waits a uniformly random time in [d/2, d] with d = min·2^(n+1) capped
// at max, and never less than min: 0.5–1 s, 1–2 s, … 15–30 s by default.
// The zero value is not usable; it is not safe for concurrent use.
type backoff struct {
	min, max time.Duration
	n        int
}

// next returns the delay before the next attempt and counts the attempt.
func (b *backoff) next() time.Duration {
	d := b.max
	if b.n < 30 {
		if e := b.min << (b.n + 1); e > 0 && e < b.max {
			d = e
		}
	}
	b.n++
	half := d / 2
	delay := half + time.Duration(rand.Int64N(int64(d-half)+1))
	return max(delay, b.min)
}

// reset makes the next delay the shortest again.
func (b *backoff) reset() { b.n = 0 }

// exhaust makes the next delay the longest one, for closes that carry a
// penalty (1008 "Too many requests").
func (b *backoff) exhaust() { b.n = 30 }
