package latency

import (
	"sync"
	"testing"
	"time"
)

func TestObserveBuckets(t *testing.T) {
	h := New(time.Millisecond, 10*time.Millisecond, time.Second)
	tests := []struct {
		d      time.Duration
		bucket int
	}{
		{0, 0},
		{-time.Hour, 0}, // clocks that disagree count as zero
		{time.Microsecond, 0},
		{time.Millisecond, 0}, // bounds are inclusive
		{time.Millisecond + 1, 1},
		{10 * time.Millisecond, 1},
		{500 * time.Millisecond, 2},
		{time.Second, 2},
		{time.Second + 1, 3}, // +Inf
		{time.Hour, 3},
	}
	for _, tc := range tests {
		before := h.Snapshot().Counts[tc.bucket]
		h.Observe(tc.d)
		if got := h.Snapshot().Counts[tc.bucket]; got != before+1 {
			t.Errorf("Observe(%v) counted in bucket %d? count %d; want %d", tc.d, tc.bucket, got, before+1)
		}
	}
	s := h.Snapshot()
	if s.Count != uint64(len(tests)) {
		t.Errorf("Count = %d; want %d", s.Count, len(tests))
	}
	var sum time.Duration
	for _, tc := range tests {
		sum += max(tc.d, 0)
	}
	if s.Sum != sum {
		t.Errorf("Sum = %v; want %v", s.Sum, sum)
	}
	want := map[float64]uint64{0.001: 4, 0.01: 6, 1: 8}
	got := s.Cumulative()
	if len(got) != len(want) {
		t.Errorf("Cumulative() = %v; want %v", got, want)
	}
	for b, n := range want {
		if got[b] != n {
			t.Errorf("Cumulative()[%v] = %d; want %d", b, got[b], n)
		}
	}
}

func TestEmpty(t *testing.T) {
	s := New(FanOut...).Snapshot()
	if s.Count != 0 || s.Sum != 0 || len(s.Counts) != len(FanOut)+1 {
		t.Errorf("empty snapshot = %+v", s)
	}
	for b, n := range s.Cumulative() {
		if n != 0 {
			t.Errorf("empty Cumulative()[%v] = %d", b, n)
		}
	}
}

func TestConcurrentObserve(t *testing.T) {
	h := New(Request...)
	const goroutines, each = 8, 1000
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				h.Observe(time.Duration(g*i) * time.Microsecond)
			}
		})
	}
	// Snapshots while observing: Count is always the sum of Counts.
	for range 100 {
		s := h.Snapshot()
		var n uint64
		for _, c := range s.Counts {
			n += c
		}
		if n != s.Count {
			t.Fatalf("Count %d; sum of Counts %d", s.Count, n)
		}
	}
	wg.Wait()
	if s := h.Snapshot(); s.Count != goroutines*each {
		t.Errorf("Count = %d; want %d", s.Count, goroutines*each)
	}
}

func TestObserveAllocs(t *testing.T) {
	h := New(FanOut...)
	if a := testing.AllocsPerRun(100, func() { h.Observe(3 * time.Millisecond) }); a != 0 {
		t.Errorf("Observe: %v allocs; want 0", a)
	}
}

func TestNewRejectsBadBounds(t *testing.T) {
	for _, bounds := range [][]time.Duration{
		{0},
		{-time.Second},
		{time.Second, time.Second},
		{time.Second, time.Millisecond},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New(%v) did not panic", bounds)
				}
			}()
			New(bounds...)
		}()
	}
	// The bounds are copied: changing the caller's slice changes nothing.
	b := []time.Duration{time.Millisecond, time.Second}
	h := New(b...)
	b[0] = time.Hour
	h.Observe(2 * time.Millisecond)
	if s := h.Snapshot(); s.Counts[1] != 1 {
		t.Errorf("bounds not copied: counts %v", s.Counts)
	}
}

func TestBuiltinBounds(t *testing.T) {
	for name, b := range map[string][]time.Duration{"FanOut": FanOut, "Request": Request} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s: %v", name, r)
				}
			}()
			New(b...)
		}()
	}
}

func BenchmarkObserve(b *testing.B) {
	h := New(FanOut...)
	b.ReportAllocs()
	for b.Loop() {
		h.Observe(7 * time.Millisecond)
	}
}
