package backoff

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	b := Backoff{Min: 500 * time.Millisecond, Max: 30 * time.Second}
	bounds := [][2]time.Duration{
		{500 * time.Millisecond, time.Second},
		{time.Second, 2 * time.Second},
		{2 * time.Second, 4 * time.Second},
		{4 * time.Second, 8 * time.Second},
		{8 * time.Second, 16 * time.Second},
		{15 * time.Second, 30 * time.Second},
		{15 * time.Second, 30 * time.Second},
	}
	for i, want := range bounds {
		if d := b.Next(); d < want[0] || d > want[1] {
			t.Errorf("attempt %d: delay %v; want in [%v, %v]", i, d, want[0], want[1])
		}
	}
	b.Reset()
	if d := b.Next(); d > time.Second {
		t.Errorf("after reset: delay %v; want ≤ 1s", d)
	}
	b.Exhaust()
	if d := b.Next(); d < 15*time.Second {
		t.Errorf("after exhaust: delay %v; want ≥ 15s", d)
	}
	for range 100 {
		b.n = 1000
		if d := b.Next(); d < 15*time.Second || d > 30*time.Second {
			t.Fatalf("attempt 1000: delay %v", d)
		}
	}
}
