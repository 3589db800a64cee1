package downstream

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// qframe is one frame in a connection's write queue.
type qframe struct {
	frame []byte // shared read-only with every subscriber that sends it
	// t is the stream the frame carries when a newer message of it
	// supersedes this one (hub.Message.Conflate), so that conflateLocked
	// may replace it while it waits; replyTag for an answer to the client
	// (a reply, a pong, a keepalive ping); nil for every other frame
	// (stream frames where a gap corrupts what the client builds, close
	// frames).
	t *topic
	// final marks a frame of t that no later frame of t supersedes
	// (hub.Message.Final: a closed candle). It replaced t's earlier
	// frames when it was queued, but it is itself never replaced or
	// dropped: later frames of t queue behind it.
	final bool
}

// replyTag marks queued answers to the client (qframe.t): the close
// handshake keeps them when it drops stream frames. It is no stream, so
// no conflation ever matches it.
var replyTag = new(topic)

// conflatable reports whether a newer frame of the same stream may replace
// e while it waits.
func (e qframe) conflatable() bool { return e.t != nil && e.t != replyTag && !e.final }

// send queues fs's frame for c, frame (fs.frame(c)). When the queue would
// exceed WriteQueueBytes the client reads slower than its streams arrive,
// and the stream decides:
//   - a conflatable stream's frame replaces that stream's frames still
//     waiting, so the client skips to the newest value (native clients see
//     seq jump); see conflateLocked. A final frame does so too, but once
//     queued it is never replaced or dropped: a chart keeps every closed
//     candle;
//   - any other frame closes the connection with [StatusSlowConsumer]: a
//     gap would corrupt what the client builds from the stream.
//
// A stream the client is catching up on (see recovering) takes its
// frames aside first. With room in the queue it appends without
// allocating (the queue's arrays are reused from batch to batch).
func (c *conn) send(fs *frameSet, frame []byte) {
	c.mu.Lock()
	if c.state.Load() != stateOpen {
		c.mu.Unlock()
		return
	}
	if len(c.recov) != 0 {
		var ok bool
		if frame, ok = c.watchLocked(fs, frame); !ok {
			c.mu.Unlock()
			return
		}
	}
	if !c.queueLocked(frame, fs.conflatable(), fs.msg.Final, false) {
		c.mu.Unlock()
		c.closeWith(StatusSlowConsumer, "slow consumer")
		return
	}
	c.mu.Unlock()
}

// queueLocked queues a stream frame as send describes (t is its stream
// when conflatable, else nil; now as for enqueueLocked) and reports
// false when there is no room for it: the client must be closed.
func (c *conn) queueLocked(frame []byte, t *topic, final, now bool) bool {
	switch {
	case c.queued+len(frame) <= c.srv.cfg.WriteQueueBytes:
		c.enqueueLocked(qframe{frame, t, final && t != nil}, now)
	case t != nil && c.conflateLocked(frame, t, final):
	default:
		return false
	}
	return true
}

// conflateLocked queues frame, the newest message of the conflatable stream
// t (final: a final one), on a full queue. Every frame of t still waiting
// is dropped and frame takes the place of the last of them, so the client
// gets the newest value no later than it would have got the value it
// replaces. Final frames of t are the exception: they stay, and when the
// last frame of t waiting is final, frame goes behind it (at the end of
// the queue), so the client never sees t go back. When that leaves no room
// (t had nothing waiting that could be replaced, or its new frame is
// larger), every other conflatable stream is cut down to its last waiting
// frame as well. It reports false when the queue is still full: it holds
// frames that must not be dropped, or the newest values of more streams
// than fit. Each frame dropped counts as a "conflated" drop.
//
// It runs only when the queue is full, in time linear in its length.
func (c *conn) conflateLocked(frame []byte, t *topic, final bool) bool {
	q := c.queue
	last := -1 // the last frame of t waiting, final or not
	for i := len(q) - 1; i >= 0; i-- {
		if q[i].t == t {
			last = i
			break
		}
	}
	pending := frame // not queued yet
	if last >= 0 {
		n, dropped := 0, 0
		for i, e := range q {
			if e.t == t && !e.final {
				dropped++
				if i != last {
					c.queued -= len(e.frame)
					continue
				}
				c.queued += len(frame) - len(e.frame)
				e.frame, e.final, pending = frame, final, nil
			}
			q[n] = e
			n++
		}
		clear(q[n:])
		c.queue = q[:n]
		c.srv.metrics.dropped("conflated", dropped)
		c.drops.Add(int64(dropped))
	}
	limit := c.srv.cfg.WriteQueueBytes
	if c.queued+len(pending) > limit {
		n := c.keepLastLocked()
		c.srv.metrics.dropped("conflated", n)
		c.drops.Add(int64(n))
		if c.queued+len(pending) > limit {
			return false
		}
	}
	if pending != nil {
		c.enqueueLocked(qframe{pending, t, final}, false)
	}
	return true
}

// keepLastLocked drops every queued frame of a conflatable stream that a
// later queued frame of the same stream supersedes, and returns how many
// it dropped. A final frame supersedes the earlier frames of its stream
// and is itself always kept. It allocates; conflateLocked calls it only as
// a last resort.
func (c *conn) keepLastLocked() int {
	q := c.queue
	seen := make(map[*topic]bool)
	w := len(q) // the frames kept are q[w:], in order
	for i := len(q) - 1; i >= 0; i-- {
		e := q[i]
		if e.conflatable() || e.final {
			if seen[e.t] && !e.final {
				c.queued -= len(e.frame)
				continue
			}
			seen[e.t] = true
		}
		w--
		q[w] = e
	}
	n := copy(q, q[w:])
	clear(q[n:])
	c.queue = q[:n]
	return w
}

// enqueueReply queues an answer to the client: a command's reply, a pong
// or a keepalive ping. Answers count against WriteQueueBytes like stream
// frames, so a client that sends commands but does not read their replies
// cannot grow its queue: when the queue is full even after its conflatable
// frames are cut down, the connection is closed with [StatusSlowConsumer].
// It reports whether the answer was queued.
func (c *conn) enqueueReply(frame []byte) bool {
	c.mu.Lock()
	if c.state.Load() != stateOpen {
		c.mu.Unlock()
		return false
	}
	if !c.roomLocked(len(frame)) {
		c.mu.Unlock()
		c.closeWith(StatusSlowConsumer, "slow consumer")
		return false
	}
	c.enqueueLocked(qframe{frame: frame, t: replyTag}, true)
	c.mu.Unlock()
	return true
}

// roomLocked reports whether n more bytes fit the write queue, cutting
// conflatable streams down to their newest frame if that makes room.
func (c *conn) roomLocked(n int) bool {
	limit := c.srv.cfg.WriteQueueBytes
	if c.queued+n <= limit {
		return true
	}
	dropped := c.keepLastLocked()
	c.srv.metrics.dropped("conflated", dropped)
	c.drops.Add(int64(dropped))
	return c.queued+n <= limit
}

// enqueueLocked appends e to the queue and makes sure a flush will write
// it: at once when now is set (replies, pongs), else at the hub's next
// Flush, which ends the burst the frame came in (see Server.Flush).
func (c *conn) enqueueLocked(e qframe, now bool) {
	c.queue = append(c.queue, e)
	c.queued += len(e.frame)
	if c.writing {
		return // a flush is queued, running, waiting to retry, or pending
	}
	c.writing = true
	if !now {
		c.srv.addPending(c)
		return
	}
	if !c.srv.pool.submit(c.flushTaskLocked()) {
		c.srv.metrics.internalErrors.Add(1)
		c.writing = false
	}
}

// A flush writes what the client's socket buffer takes without waiting
// (on Linux; elsewhere it waits at most writeSlice). When the buffer is
// full it gives its worker back and tries again writeRetry later, so
// clients that stop reading, however many, hold no worker that the others
// need.
const (
	writeSlice = 2 * time.Millisecond
	writeRetry = 10 * time.Millisecond
)

// maxKeptQueue is the most entries a connection's idle queue arrays keep
// between flushes; larger ones, grown while the client was slow, are
// released when its queue empties.
const maxKeptQueue = 256

// errWouldBlock reports that the client's socket buffer is full (on a
// write) or empty (on a read).
var errWouldBlock = errors.New("socket buffer full")

// flush writes queued frames until the queue is empty, coalescing each batch
// into one writev. Only one flush per connection runs at a time. When the
// client's socket buffer is full, flush keeps what it has not written,
// returns, and runs again writeRetry later; a connection whose writes make
// no progress for WriteTimeout is dropped.
func (c *conn) flush() {
	defer c.recoverTask("flush")
	for {
		if c.state.Load() == stateClosed {
			c.out.reset()
			c.mu.Lock()
			c.writing = false
			c.mu.Unlock()
			return
		}
		if c.out.empty() {
			c.mu.Lock()
			if len(c.queue) == 0 {
				// The next flush may start as soon as writing is false.
				c.stalled = 0
				c.writing = false
				// A slow episode leaves large arrays behind: let them go.
				if cap(c.queue) > maxKeptQueue {
					c.queue = nil
				}
				if cap(c.spare) > maxKeptQueue {
					c.spare = nil
				}
				c.out.shrink()
				closing := c.closeAt
				c.mu.Unlock()
				if closing {
					c.closeSent()
				}
				return
			}
			batch := c.queue
			c.queue = c.spare[:0]
			c.spare = nil
			c.queued = 0
			c.mu.Unlock()

			c.out.load(batch)
			clear(batch)
			c.mu.Lock()
			c.spare = batch[:0]
			c.mu.Unlock()
		} else if c.state.Load() == stateClosing {
			// The close frame is queued behind the unwritten rest of the
			// batch: finish the frame on the wire and drop the others,
			// unless the close answers the client's, which gets the
			// answers to all it sent before (see closeAfterReplies).
			c.mu.Lock()
			keep := c.keepOut
			c.mu.Unlock()
			if !keep {
				c.out.keepFirst()
			}
		}

		n, err := c.out.write(c)
		if err == nil {
			c.stalled = 0
			continue
		}
		if errors.Is(err, errWouldBlock) {
			now := time.Now().UnixNano()
			if n > 0 || c.stalled == 0 {
				c.stalled = now
			}
			if time.Duration(now-c.stalled) < c.srv.cfg.WriteTimeout {
				c.after(writeRetry, c.retryFlush)
				return
			}
			err = fmt.Errorf("no progress for %v: %w", c.srv.cfg.WriteTimeout, err)
		}
		c.logAt(slog.LevelDebug, "write failed", "err", err)
		c.srv.metrics.closed("write_error")
		c.out.reset()
		c.finish()
		return
	}
}

// flushTaskLocked returns c.flush as a func value, made once: a method
// value made at each submit would be an allocation per flush, and so per
// delivered frame on a connection that keeps up.
func (c *conn) flushTaskLocked() func() {
	if c.flushTask == nil {
		c.flushTask = c.flush
	}
	return c.flushTask
}

// retryFlush runs flush again after the client's socket buffer was full.
func (c *conn) retryFlush() {
	c.mu.Lock()
	task := c.flushTaskLocked()
	c.mu.Unlock()
	if !c.srv.pool.submit(task) {
		c.srv.metrics.internalErrors.Add(1)
		c.finish()
	}
}
