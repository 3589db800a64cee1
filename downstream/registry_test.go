package downstream

import (
	"testing"
	"time"
)

// TestTopicRate checks the control API's per-stream rate: messages of the
// last whole 10 s window, and nothing once a whole window passed silent.
func TestTopicRate(t *testing.T) {
	const s = int64(time.Second)
	tp := newTopic("binance:btcusdt@trade")
	base := 1000 * s
	for i := range int64(50) { // 50 messages in the first window
		tp.countLocked(base + i*s/10)
	}
	steps := []struct {
		at       int64
		wantRate float64
	}{
		{base + 5*s, 0},  // the first window is not over: no whole window yet
		{base + 12*s, 5}, // it is over: 50 in 10 s
		{base + 25*s, 0}, // a whole window passed with nothing
	}
	for _, st := range steps {
		if got, last := tp.rate(st.at); got != st.wantRate || last != base+49*s/10 {
			t.Errorf("rate at +%ds = %v, last %d; want %v, last %d", (st.at-base)/s, got, last, st.wantRate, base+49*s/10)
		}
	}
	tp.countLocked(base + 12*s) // the second window starts: the first is the previous
	if got, _ := tp.rate(base + 13*s); got != 5 {
		t.Errorf("rate after a new message = %v; want 5 (the last whole window)", got)
	}
}
