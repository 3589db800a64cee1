package downstream

import (
	"context"
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
}

func newPool(queue int) *pool {
	return &pool{tasks: make(chan func(), queue)}
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
					fn()
				}
			}
		})
	}
	wg.Wait()
}
