package upstream

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/marketgate/marketgate/internal/pause"
)

// attemptLimiter keeps connection attempts within a budget: at most n in
// any window w, counted with a sliding log of attempt times, so that no
// burst of reconnects, rotations and new shards of one exchange host can
// exceed it (the exchange's limit per IP). It uses the real
// monotonic clock, like the frame pacing. Safe for concurrent use.
type attemptLimiter struct {
	n   int
	w   time.Duration
	log *slog.Logger

	// mu guards the following fields.
	mu        sync.Mutex
	times     []time.Time // attempts within the last w, oldest first
	exhausted bool        // the budget is spent; logged once per episode
	waits     int         // episodes of a spent budget
}

func newAttemptLimiter(n int, w time.Duration, log *slog.Logger) *attemptLimiter {
	return &attemptLimiter{n: n, w: w, log: log, times: make([]time.Time, 0, n)}
}

// wait records an attempt, first waiting while the budget is spent. It
// returns ctx's error if ctx ends first.
func (l *attemptLimiter) wait(ctx context.Context) error {
	for {
		l.mu.Lock()
		now := time.Now()
		k := 0
		for k < len(l.times) && now.Sub(l.times[k]) >= l.w {
			k++
		}
		if k > 0 {
			l.times = append(l.times[:0], l.times[k:]...)
		}
		if len(l.times) < l.n {
			l.times = append(l.times, now)
			if l.exhausted {
				l.exhausted = false
				l.log.Info("connection attempt budget available again")
			}
			l.mu.Unlock()
			return nil
		}
		d := l.times[0].Add(l.w).Sub(now)
		if !l.exhausted {
			l.exhausted = true
			l.waits++
			l.log.Warn("connection attempt budget spent, waiting",
				"limit", l.n, "window", l.w, "wait", d)
		}
		l.mu.Unlock()
		if !pause.For(ctx, d) {
			return ctx.Err()
		}
	}
}

// waitCount returns how many times the budget was spent.
func (l *attemptLimiter) waitCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.waits
}
