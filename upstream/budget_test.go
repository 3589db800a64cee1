package upstream

import (
	"testing"
	"time"
)

// TestRequestBudget spends a connection's request budget as fast as it
// allows, for five windows, and checks that no rolling window holds more
// than the budget, that a burst goes out at once, and that the budget is
// used rather than starved.
func TestRequestBudget(t *testing.T) {
	tests := []struct {
		max    int
		window time.Duration
	}{
		{480, time.Hour}, // OKX
		{8, time.Hour},
		{4, time.Minute},
		{1, time.Minute}, // one request a connection
		{3, time.Second},
	}
	for _, tc := range tests {
		b := requestBudget(tc.max, tc.window)
		start := time.Unix(1_700_000_000, 0)
		step := tc.window / 1000
		var sent []time.Time
		for now := start; now.Before(start.Add(5 * tc.window)); now = now.Add(step) {
			for b.AllowN(now, 1) {
				sent = append(sent, now)
			}
		}
		for i, at := range sent {
			n := 0
			for _, later := range sent[i:] {
				if later.Sub(at) < tc.window {
					n++
				}
			}
			if n > tc.max {
				t.Fatalf("max %d per %v: %d requests in the window from %v", tc.max, tc.window, n, at.Sub(start))
			}
		}
		burst := 0
		for _, at := range sent {
			if at.Equal(start) {
				burst++
			}
		}
		if want := max(tc.max/4, 1); burst != want {
			t.Errorf("max %d per %v: a burst of %d; want %d", tc.max, tc.window, burst, want)
		}
		// Five windows allow at most burst + 5 × (max-burst); a greedy
		// spender gets all but the last refill's fraction of them.
		if want := burst + 5*(tc.max-burst); len(sent) < want-1 || len(sent) > want {
			t.Errorf("max %d per %v: %d requests in 5 windows; want %d", tc.max, tc.window, len(sent), want)
		}
	}
	if requestBudget(0, time.Hour) != nil || requestBudget(10, 0) != nil {
		t.Error("a budget without a max or a window")
	}
}
