package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"sync/atomic"
)

// The latency histogram has fixed log-linear buckets over microseconds:
// values below 2*subCount are exact, and each power of two above is split
// into subCount equal buckets, so a bucket's width is at most 1/subCount
// (1.6%) of its values. Memory is fixed: numBuckets counters, whatever the
// number of samples.
const (
	subBits    = 6
	subCount   = 1 << subBits
	maxExp     = 34 // values up to 2^(maxExp+subBits+1) µs (about 4 years) have a bucket
	numBuckets = (maxExp + 2) * subCount
)

// bucketOf returns the bucket index of v (microseconds); larger values than
// the last bucket covers go into the last bucket.
func bucketOf(v uint64) int {
	if v < 2*subCount {
		return int(v)
	}
	e := bits.Len64(v) - subBits - 1
	if e > maxExp {
		return numBuckets - 1
	}
	return e*subCount + int(v>>uint(e))
}

// bucketBounds returns the smallest and the largest value of bucket i.
func bucketBounds(i int) (lo, hi uint64) {
	if i < 2*subCount {
		return uint64(i), uint64(i)
	}
	e := uint(i/subCount - 1)
	m := uint64(i%subCount + subCount)
	return m << e, (m+1)<<e - 1
}

// Hist is a histogram of latencies in microseconds with the fixed buckets
// above. The zero value is empty and ready to use. It is not safe for
// concurrent use; [Recorder] is. It marshals to JSON as a sparse list of
// [bucket, count] pairs.
type Hist struct {
	counts []uint64
}

// Record adds one value.
func (h *Hist) Record(v uint64) { h.add(bucketOf(v), 1) }

func (h *Hist) add(i int, n uint64) {
	if h.counts == nil {
		h.counts = make([]uint64, numBuckets)
	}
	h.counts[i] += n
}

// Total returns the number of values recorded.
func (h Hist) Total() uint64 {
	var t uint64
	for _, c := range h.counts {
		t += c
	}
	return t
}

// Merge adds the counts of o to h.
func (h *Hist) Merge(o Hist) {
	for i, c := range o.counts {
		if c != 0 {
			h.add(i, c)
		}
	}
}

// Sub returns h minus an earlier state of the same histogram: the values
// recorded in between. A bucket that would go negative counts zero.
func (h Hist) Sub(prev Hist) Hist {
	var d Hist
	for i, c := range h.counts {
		var p uint64
		if i < len(prev.counts) {
			p = prev.counts[i]
		}
		if c > p {
			d.add(i, c-p)
		}
	}
	return d
}

// Quantile returns the value at quantile q (0 < q <= 1) as the upper bound
// of the bucket holding it, or 0 when h is empty: the true value is at most
// that and at least 98.4% of it.
func (h Hist) Quantile(q float64) uint64 {
	total := h.Total()
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	rank = max(1, min(rank, total))
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum >= rank {
			_, hi := bucketBounds(i)
			return hi
		}
	}
	return 0 // unreachable: cum reaches total
}

// MarshalJSON encodes the non-empty buckets as [[index,count],...].
func (h Hist) MarshalJSON() ([]byte, error) {
	pairs := make([][2]uint64, 0, 64)
	for i, c := range h.counts {
		if c != 0 {
			pairs = append(pairs, [2]uint64{uint64(i), c})
		}
	}
	return json.Marshal(pairs)
}

// UnmarshalJSON decodes what MarshalJSON wrote.
func (h *Hist) UnmarshalJSON(b []byte) error {
	var pairs [][2]uint64
	if err := json.Unmarshal(b, &pairs); err != nil {
		return fmt.Errorf("histogram: %w", err)
	}
	h.counts = nil
	for _, p := range pairs {
		if p[0] >= numBuckets {
			return fmt.Errorf("histogram: bucket %d out of range", p[0])
		}
		h.add(int(p[0]), p[1])
	}
	return nil
}

// Recorder is a [Hist] that many goroutines record into at once, with one
// atomic add per value. Its memory is fixed (numBuckets counters).
type Recorder struct {
	counts [numBuckets]atomic.Uint64
}

// Record adds one value; safe for concurrent use.
func (r *Recorder) Record(v uint64) { r.counts[bucketOf(v)].Add(1) }

// AddTo adds the counts recorded so far to h.
func (r *Recorder) AddTo(h *Hist) {
	for i := range r.counts {
		if c := r.counts[i].Load(); c != 0 {
			h.add(i, c)
		}
	}
}
