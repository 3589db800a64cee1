package upstream

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
)

// errPanic wraps a panic recovered in one of the feed's goroutines: a bug,
// which ends the connection it happened on (the shard makes a new one)
// rather than the process.
var errPanic = errors.New("upstream: internal error")

// recovered logs a recovered panic v with its stack at ERROR, counts it
// (Status.InternalErrors) and returns it as an error wrapping errPanic.
// Call it from the deferred function that recovered, so that the stack
// still shows where the panic happened.
func (f *Feed) recovered(log *slog.Logger, where string, v any) error {
	f.m.panics.Add(1)
	log.Error("recovered panic", "in", where, "panic", v, "stack", string(debug.Stack()))
	return fmt.Errorf("%w: panic in %s: %v", errPanic, where, v)
}

// guard runs one of the session's loops, turning a panic into the error
// that ends the session.
func (s *session) guard(where string, loop func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = s.f.recovered(s.log, where, v)
		}
	}()
	return loop()
}
