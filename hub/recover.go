package hub

import (
	"log/slog"
	"runtime/debug"
	"sync/atomic"
)

// receiverGuard recovers a panic of a receiver's Receive or Flush: a bug
// in one receiver must end neither the process nor the delivery of the
// messages that follow, to it and to the others. Each panic is logged
// with its stack at ERROR and counted.
type receiverGuard struct {
	log    *slog.Logger
	panics *atomic.Uint64
}

// receive calls rc.Receive(msg), recovering a panic.
func (g receiverGuard) receive(rc Receiver, msg Message) {
	defer g.recover("Receive", msg.Stream)
	rc.Receive(msg)
}

// flush calls rc.Flush(), recovering a panic.
func (g receiverGuard) flush(rc Receiver) {
	defer g.recover("Flush", "")
	rc.Flush()
}

// recover must be deferred: it is the function that calls recover.
func (g receiverGuard) recover(call, stream string) {
	v := recover()
	if v == nil {
		return
	}
	g.panics.Add(1)
	attrs := []any{"call", call, "panic", v, "stack", string(debug.Stack())}
	if stream != "" {
		attrs = append(attrs, "stream", stream)
	}
	g.log.Error("recovered panic in a hub receiver", attrs...)
}
