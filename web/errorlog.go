package web

import (
	"log/slog"
	"strings"
	"sync"
	"time"
)

// acceptLogEvery is the least time between two logs of accept errors.
const acceptLogEvery = 5 * time.Second

// errorLog is the writer of http.Server's ErrorLog. Accept errors, which
// mean the listener fails (most often EMFILE, "too many open files": no
// descriptor left, so no browser gets in), are logged at WARN, at most
// once per acceptLogEvery with the number left out since the last. The
// rest (TLS handshake noise from scanners, malformed requests) stays at
// DEBUG. It is safe for concurrent use.
type errorLog struct {
	log *slog.Logger
	now func() time.Time

	mu sync.Mutex // guards the following fields
	// last is when an accept error was last logged; left counts those
	// not logged since.
	last time.Time
	left int
}

func newErrorLog(log *slog.Logger, now func() time.Time) *errorLog {
	return &errorLog{log: log, now: now}
}

// acceptPrefix starts net/http's log of a failed Accept, which it retries
// with a backoff of up to 1 s.
const acceptPrefix = "http: Accept error: "

// Write logs one line of http.Server's ErrorLog.
func (l *errorLog) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	detail, ok := strings.CutPrefix(msg, acceptPrefix)
	if !ok {
		l.log.Debug(msg)
		return len(p), nil
	}
	l.mu.Lock()
	now := l.now()
	if !l.last.IsZero() && now.Sub(l.last) < acceptLogEvery {
		l.left++
		l.mu.Unlock()
		return len(p), nil
	}
	left := l.left
	l.last, l.left = now, 0
	l.mu.Unlock()
	l.log.Warn("accepting connections fails; retrying (is the descriptor limit reached?)",
		"err", detail, "not_logged", left, "logged_at_most_every", acceptLogEvery)
	return len(p), nil
}
