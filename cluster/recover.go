package cluster

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/marketgate/marketgate/internal/pause"
)

// panicPause is how long a loop that panicked waits before it starts
// again, so that a panic on every iteration costs a log line a second, not
// a spinning CPU.
const panicPause = time.Second

// supervise runs loop until it returns. If it panics, the panic is logged
// with its stack and loop starts again after panicPause, unless ctx ended:
// a bug ends the iteration it hit, never the process.
func (n *Node) supervise(ctx context.Context, name string, loop func(context.Context)) {
	for n.protect(name, func() { loop(ctx) }) && pause.For(ctx, panicPause) {
		n.log.Info("restarting the cluster loop after a panic", "loop", name)
	}
}

// protect calls f and reports whether it panicked, logging the panic.
func (n *Node) protect(name string, f func()) (panicked bool) {
	defer func() {
		if v := recover(); v != nil {
			panicked = true
			n.panics.Add(1)
			n.log.Error("panic in the cluster loop", "loop", name, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
	}()
	f()
	return false
}
