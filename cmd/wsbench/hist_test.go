package main

import (
	"encoding/json"
	"math"
	"sync"
	"testing"
)

func TestBucketBounds(t *testing.T) {
	// Every value falls in a bucket whose bounds hold it, buckets are
	// contiguous, and a bucket is at most 1/64 of its values wide.
	prevHi := uint64(0)
	for i := range numBuckets {
		lo, hi := bucketBounds(i)
		if i > 0 && lo != prevHi+1 {
			t.Fatalf("bucketBounds(%d) = [%d,%d]; previous ended at %d", i, lo, hi, prevHi)
		}
		if hi < lo || (lo >= 2*subCount && float64(hi-lo+1) > float64(lo)/subCount) {
			t.Fatalf("bucketBounds(%d) = [%d,%d]: too wide", i, lo, hi)
		}
		for _, v := range []uint64{lo, hi, lo + (hi-lo)/2} {
			if got := bucketOf(v); got != i {
				t.Fatalf("bucketOf(%d) = %d; want %d", v, got, i)
			}
		}
		prevHi = hi
	}
	if got := bucketOf(math.MaxUint64); got != numBuckets-1 {
		t.Errorf("bucketOf(MaxUint64) = %d; want the last bucket %d", got, numBuckets-1)
	}
}

func TestQuantile(t *testing.T) {
	uniform := func(n uint64) Hist {
		var h Hist
		for v := uint64(1); v <= n; v++ {
			h.Record(v)
		}
		return h
	}
	tests := []struct {
		name string
		h    Hist
		q    float64
		want uint64 // exact value; the result may be up to 1/64 above
	}{
		{"empty", Hist{}, 0.5, 0},
		{"one value", uniform(1), 0.999, 1},
		{"exact range p50", uniform(100), 0.5, 50},
		{"exact range max", uniform(100), 1, 100},
		{"p50 of 1..10000", uniform(10000), 0.5, 5000},
		{"p99 of 1..10000", uniform(10000), 0.99, 9900},
		{"p999 of 1..10000", uniform(10000), 0.999, 9990},
		{"q 0 is the minimum", uniform(10000), 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.h.Quantile(tc.q)
			if got < tc.want || float64(got) > float64(tc.want)*(1+1.0/subCount) {
				t.Errorf("Quantile(%v) = %d; want %d (+1/64)", tc.q, got, tc.want)
			}
		})
	}
}

func TestHistMergeSubJSON(t *testing.T) {
	var a, b Hist
	for _, v := range []uint64{1, 5, 1000, 1000, 70000} {
		a.Record(v)
	}
	for _, v := range []uint64{5, 2_000_000} {
		b.Record(v)
	}
	sum := Hist{}
	sum.Merge(a)
	sum.Merge(b)
	if got := sum.Total(); got != 7 {
		t.Fatalf("merged Total() = %d; want 7", got)
	}
	if got := sum.Sub(a); got.Total() != 2 || got.Quantile(1) < 2_000_000 {
		t.Errorf("Sub: Total() = %d, max %d; want 2, >= 2000000", got.Total(), got.Quantile(1))
	}
	if got := a.Sub(sum); got.Total() != 0 {
		t.Errorf("Sub of a later state: Total() = %d; want 0", got.Total())
	}
	enc, err := json.Marshal(sum)
	if err != nil {
		t.Fatal(err)
	}
	var back Hist
	if err := json.Unmarshal(enc, &back); err != nil {
		t.Fatalf("Unmarshal(%s): %v", enc, err)
	}
	if d := back.Sub(sum); back.Total() != 7 || d.Total() != 0 {
		t.Errorf("JSON round trip %s: Total() = %d", enc, back.Total())
	}
	for _, bad := range []string{`[[99999,1]]`, `{"a":1}`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("Unmarshal(%s) = nil; want an error", bad)
		}
	}
}

func TestRecorderConcurrent(t *testing.T) {
	var r Recorder
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				r.Record(uint64(g*1000 + i))
			}
		})
	}
	wg.Wait()
	var h Hist
	r.AddTo(&h)
	if got := h.Total(); got != 8000 {
		t.Errorf("Total() = %d; want 8000", got)
	}
}
