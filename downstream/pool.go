package downstream

import (
	"context"
	"runtime/debug"
	"sync"
)

// pool runs short tasks (reading a readable connection, flushing a write
// queue, closing a connection) on a fixed number of goroutines, so the number
// of goroutines does not grow with the number of connections.
//
// The queue is sized by the caller so that it cannot fill: each connection
// has at most one read task (its descriptor is re-armed only after the task),
// one flush task (guarded by conn.writing) and one close task (guarded by the
// conn state) queued at any time.
type pool struct {
	tasks chan func()
	// onPanic is told of a task that panicked, with the panic's value and
	// stack; the worker goes on with the next task. Connection tasks
	// recover their own panics first (conn.recoverTask), to release their
	// connection.
	onPanic func(v any, stack []byte)
}

func newPool(queue int, onPanic func(v any, stack []byte)) *pool {
	return &pool{tasks: make(chan func(), queue), onPanic: onPanic}
}

// submit queues fn without blocking. It reports false when the queue is full,
// which the sizing above rules out; callers count it as an internal error.
func (p *pool) submit(fn func()) bool {
	select {
	case p.tasks <- fn:
		return true
	default:
		return false
	}
}

// run starts workers goroutines and waits for them; they stop when ctx ends,
// after finishing their current task.
func (p *pool) run(ctx context.Context, workers int) {
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case fn := <-p.tasks:
					p.runTask(fn)
				}
			}
		})
	}
	wg.Wait()
}

// runTask runs fn, recovering a panic so that the worker survives it.
func (p *pool) runTask(fn func()) {
	defer func() {
		if v := recover(); v != nil {
			p.onPanic(v, debug.Stack())
		}
	}()
	fn()
}
