package downstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// readBufferSize is the size of the read buffer a connection borrows while
// one of its read tasks runs.
const readBufferSize = 4 << 10

// Connection states. A connection only moves forward through them.
const (
	stateOpen    int32 = iota
	stateClosing       // close frame queued; no more data is queued or read
	stateClosed        // descriptor released
)

// protocol is what a connection speaks on top of WebSocket: the native
// protocol or the Binance-compatible dialect.
type protocol interface {
	// handleText processes one complete text message from the client. It runs
	// on the connection's read task, never concurrently with itself.
	handleText(c *conn, p []byte)
}

// conn is one browser WebSocket connection. While idle it owns no goroutine
// and no buffer: epoll reports it readable, a pool worker reads it, and the
// write queue is flushed by a pool worker only while it holds frames.
//
// It is kept small on purpose, because an idle connection costs what this
// struct, the net.Conn and the map entries holding it cost: its remote
// address is read from nc when needed, its logger is made only when
// something is logged, and a read buffer is borrowed only while a read task
// runs; what a client sent of an unfinished frame is kept (in rs) only
// until the frame is whole.
type conn struct {
	srv    *Server
	id     uint64
	nc     net.Conn
	origin string
	// remote is the client's address when a trusted proxy forwarded it
	// (Config.TrustedProxies); empty when the client is the TCP peer.
	remote    string
	connected int64 // unix nanos of the upgrade
	proto     protocol
	native    bool        // speaks the native protocol (else the Binance dialect)
	combined  atomic.Bool // Binance dialect: wrap payloads as {"stream":…,"data":…}
	poll      pollState
	state     atomic.Int32
	drops     atomic.Int64 // messages dropped from its queue (conflated)
	lastRead  atomic.Int64 // unix nanos of the last read from the client; see keepalive

	// Commands in the current one-second window; only the read task
	// touches them.
	cmdWindow int64
	cmdCount  int

	// rmu is held by the connection's one read task.
	rmu sync.Mutex

	// rs is what the read task keeps between readiness reports while the
	// client has sent part of a frame or of a fragmented message; nil
	// otherwise. Only the read task (one at a time, see readTask) changes
	// it; Server.expireReads reads it.
	rs atomic.Pointer[readState]

	// deflate is set before the connection is shared: the client
	// negotiated permessage-deflate, so it is sent the compressed form of
	// stream messages and may send compressed messages.
	deflate bool

	// mu guards the following fields.
	mu        sync.Mutex
	queue     []qframe // frames waiting to be written, oldest first
	spare     []qframe // the previous batch's backing array, reused
	queued    int      // bytes in queue
	writing   bool     // a flush task is queued, running or waiting to retry
	closeAt   bool     // the last queued frame is a close frame
	keepOut   bool     // it answers the client's close: the batch being written goes out whole
	flushTask func()   // c.flush, made once; see flushTaskLocked

	// Only the flush task (one at a time, see writing) touches these.
	out     outBatch // the batch being written
	stalled int64    // unix nanos when writes stopped making progress; 0 while they do

	// smu guards streams.
	smu     sync.Mutex
	streams map[string]struct{} // stream keys this connection is subscribed to
}

// onReadable is the epoll callback. It runs on the epoll goroutine, so it only
// hands the connection to the worker pool.
func (c *conn) onReadable() {
	if c.state.Load() == stateClosed {
		return
	}
	if !c.srv.pool.submit(c.readTask) {
		c.srv.metrics.internalErrors.Add(1)
		c.logAt(slog.LevelError, "worker queue full; closing connection")
		c.finish()
	}
}

// readTask handles what the client has sent so far and re-arms the
// descriptor. It never waits for the client: see readAvailable.
func (c *conn) readTask() {
	defer c.recoverTask("read")
	switch c.state.Load() {
	case stateClosed:
		return
	case stateClosing:
		c.drainClosing()
		return
	}
	// The kernel, not Go, hands the connection from one read task to the
	// next (epoll re-arm), so rmu gives the memory model the edge it needs.
	c.rmu.Lock()
	ok := c.readAvailable()
	c.rmu.Unlock()
	if ok {
		// Re-arm only after every trace of this task is gone: the next
		// readiness report may start another read task at once.
		if err := c.srv.poller.resume(c); err != nil {
			c.finish()
		}
	}
}

// maxReadPerTask bounds the bytes one read task takes from a client, so a
// client that sends without pause shares the workers with the others: the
// rest is reported readable again at once (level-triggered epoll) and read
// by a later task.
const maxReadPerTask = 16 * readBufferSize

// readAvailable reads what the socket holds now, without waiting, handles
// every whole frame in it, and keeps an incomplete frame or message in
// c.rs for the next task. It reports whether the connection is still open
// for reading.
func (c *conn) readAvailable() bool {
	now := time.Now().UnixNano()
	c.lastRead.Store(now)
	rs := c.rs.Load()
	if rs == nil {
		rs = readStates.Get().(*readState)
		rs.limit, rs.deflate = c.maxMessage(), c.deflate
	}
	buf := readBuffers.Get().(*[readBufferSize]byte)
	ok := true
	for total := 0; ok && total < maxReadPerTask; {
		n, err := c.readNow(buf[:])
		if n > 0 {
			total += n
			if ferr := rs.feed(buf[:n], c); ferr != nil {
				c.fail(ferr)
				ok = false
			}
		}
		switch {
		case !ok:
		case errors.Is(err, errWouldBlock):
			err = nil
		case err != nil:
			c.fail(err)
			ok = false
		}
		if err != nil || n < len(buf) {
			break // the socket is empty: what comes later is reported again
		}
	}
	readBuffers.Put(buf)
	c.keepReadState(rs, now, ok)
	return ok
}

// keepReadState keeps rs on c while it holds an incomplete frame or
// message of a connection still open, recording since when, and otherwise
// recycles it.
func (c *conn) keepReadState(rs *readState, now int64, open bool) {
	if open && rs.pending() {
		if rs.completed || rs.since.Load() == 0 {
			// Something new is incomplete: its time starts now.
			rs.since.Store(now)
		}
		rs.completed = false
		if c.rs.Load() == nil {
			c.rs.Store(rs)
			c.srv.trackPartial(c, true)
		}
		return
	}
	if c.rs.Load() != nil {
		c.rs.Store(nil)
		c.srv.trackPartial(c, false)
	}
	rs.release()
}

// maxMessage is the size limit of one client message on c.
func (c *conn) maxMessage() int64 {
	if c.native {
		return c.srv.cfg.MaxMessageSize
	}
	return c.srv.cfg.MaxDialectMessageSize
}

// message implements frameSink: one whole data message from the client.
func (c *conn) message(op ws.OpCode, compressed bool, p []byte) error {
	if op == ws.OpBinary {
		c.closeWith(ws.StatusUnsupportedData, "binary messages are not supported")
		return errPeerClosed
	}
	if compressed {
		var err error
		if p, err = c.inflate(p); err != nil {
			return err
		}
	}
	if !utf8.Valid(p) {
		return wsutil.ErrInvalidUTF8
	}
	if !c.allowCommand() {
		return errPeerClosed
	}
	c.proto.handleText(c, p)
	if c.state.Load() != stateOpen {
		return errPeerClosed
	}
	return nil
}

// control implements frameSink: it answers one control frame. Pings and
// pongs count against the command rate like commands (a pong flood costs
// as much as a ping flood); a ping's pong and the close reply are queued
// behind everything the client sent before them (RFC 6455 §5.5.2, §5.5.1).
func (c *conn) control(op ws.OpCode, body []byte) error {
	switch op {
	case ws.OpPing, ws.OpPong:
		if !c.allowCommand() {
			return errPeerClosed // closed for flooding; the close frame is queued
		}
		if op == ws.OpPing && !c.enqueueReply(compileFrame(ws.OpPong, body)) {
			return errPeerClosed
		}
		return nil
	case ws.OpClose:
		code, reason := ws.ParseCloseFrameData(body)
		switch {
		case len(body) == 0:
			code = ws.StatusNormalClosure
		case code >= 5000: // RFC 6455 §7.4.2: no close codes above 4999
			c.closeWith(ws.StatusProtocolError, "invalid close code")
			return errPeerClosed
		default:
			if err := ws.CheckCloseFrameData(code, reason); err != nil {
				c.closeWith(ws.StatusProtocolError, err.Error())
				return errPeerClosed
			}
		}
		// RFC 6455 §5.5.1: echo the status code, after the answers to
		// everything read before the close.
		c.closeAfterReplies(code)
		return errPeerClosed
	}
	return nil
}

// allowCommand counts one client message (a command, a ping or a pong)
// against MaxCommandsPerSecond and closes the connection with 1008 when a
// flood exceeds it.
func (c *conn) allowCommand() bool {
	sec := time.Now().Unix()
	if sec != c.cmdWindow {
		c.cmdWindow, c.cmdCount = sec, 0
	}
	c.cmdCount++
	if c.cmdCount <= c.srv.cfg.MaxCommandsPerSecond {
		return true
	}
	c.closeWith(ws.StatusPolicyViolation, "too many messages per second")
	return false
}

// errPeerClosed reports that the client started the close handshake and we
// answered it.
var errPeerClosed = errors.New("downstream: peer closed")

// fail ends the connection after a read error with the close code RFC 6455
// names for it.
func (c *conn) fail(err error) {
	code, reason, drop := closeFor(err)
	switch {
	case code != 0:
		c.closeWith(code, reason)
	case drop != "":
		if drop == "read_error" {
			c.logAt(slog.LevelDebug, "read failed", "err", err)
		}
		c.srv.metrics.closed(drop)
		c.finish()
	}
}

// closeFor maps a read error to its outcome: a close code and reason
// (RFC 6455 §7.4.1), or a counter label when the connection is just
// dropped (the peer is gone), or neither when the close is already queued.
func closeFor(err error) (code ws.StatusCode, reason, drop string) {
	var perr ws.ProtocolError
	switch {
	case errors.Is(err, errPeerClosed):
		return 0, "", ""
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return 0, "", "eof"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return ws.StatusPolicyViolation, "message not completed in time", ""
	case errors.As(err, &perr), errors.Is(err, ws.ErrHeaderLengthMSB), errors.Is(err, ws.ErrHeaderLengthUnexpected):
		return ws.StatusProtocolError, err.Error(), ""
	case errors.Is(err, wsutil.ErrInvalidUTF8):
		return ws.StatusInvalidFramePayloadData, "invalid UTF-8 in text message", ""
	case errors.Is(err, errBadDeflate):
		return ws.StatusInvalidFramePayloadData, "invalid compressed data", ""
	case errors.Is(err, wsutil.ErrFrameTooLarge), errors.Is(err, wsutil.ErrMessageTooLarge):
		return ws.StatusMessageTooBig, "message too big", ""
	}
	return 0, "", "read_error"
}

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
}

// replyTag marks queued answers to the client (qframe.t): the close
// handshake keeps them when it drops stream frames. It is no stream, so
// no conflation ever matches it.
var replyTag = new(topic)

// conflatable reports whether a newer frame of the same stream may replace
// e while it waits.
func (e qframe) conflatable() bool { return e.t != nil && e.t != replyTag }

// send queues a stream message's frame; t is its stream when the message
// is conflatable, else nil. When the queue would exceed WriteQueueBytes the
// client reads slower than its streams arrive, and the stream decides:
//   - a conflatable stream's frame replaces that stream's frames still
//     waiting, so the client skips to the newest value (native clients see
//     seq jump); see conflateLocked;
//   - any other frame closes the connection with [StatusSlowConsumer]: a
//     gap would corrupt what the client builds from the stream.
//
// With room in the queue it appends without allocating (the queue's arrays
// are reused from batch to batch).
func (c *conn) send(frame []byte, t *topic) {
	c.mu.Lock()
	if c.state.Load() != stateOpen {
		c.mu.Unlock()
		return
	}
	switch {
	case c.queued+len(frame) <= c.srv.cfg.WriteQueueBytes:
		c.enqueueLocked(frame, t, false)
	case t != nil && c.conflateLocked(frame, t):
	default:
		c.mu.Unlock()
		c.closeWith(StatusSlowConsumer, "slow consumer")
		return
	}
	c.mu.Unlock()
}

// conflateLocked queues frame, the newest message of the conflatable stream
// t, on a full queue. Every frame of t still waiting is dropped and frame
// takes the place of the last of them, so the client gets the newest value
// no later than it would have got the value it replaces. When that leaves
// no room (t had nothing waiting, or its new frame is larger), every other
// conflatable stream is cut down to its last waiting frame as well. It
// reports false when the queue is still full: it holds frames that must
// not be dropped, or the newest values of more streams than fit. Each
// frame dropped counts as a "conflated" drop.
//
// It runs only when the queue is full, in time linear in its length.
func (c *conn) conflateLocked(frame []byte, t *topic) bool {
	q := c.queue
	last := -1
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
			if e.t == t {
				dropped++
				if i != last {
					c.queued -= len(e.frame)
					continue
				}
				c.queued += len(frame) - len(e.frame)
				e.frame, pending = frame, nil
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
		c.enqueueLocked(pending, t, false)
	}
	return true
}

// keepLastLocked drops every queued frame of a conflatable stream that a
// later queued frame of the same stream supersedes, and returns how many
// it dropped. It allocates; conflateLocked calls it only as a last resort.
func (c *conn) keepLastLocked() int {
	q := c.queue
	seen := make(map[*topic]bool)
	w := len(q) // the frames kept are q[w:], in order
	for i := len(q) - 1; i >= 0; i-- {
		e := q[i]
		if e.conflatable() {
			if seen[e.t] {
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
	c.enqueueLocked(frame, replyTag, true)
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

// subscribeThenReply joins a subscribe command's streams and queues its
// reply as one step: holding the queue lock across both keeps the reply
// from being written before the streams are joined (a client that reads the
// reply gets every message published after it) and keeps every message of
// the streams behind the reply. When the node refuses the streams (see
// Server.subscribe), the reply is refused(err) instead. Lock order: c.mu,
// then c.smu, then the registry's. Like enqueueReply, it closes a client
// whose queue is full. It reports whether the streams were joined.
func (c *conn) subscribeThenReply(reply []byte, keys []string, refused func(*nativeError) []byte) bool {
	c.mu.Lock()
	if reply == nil || c.state.Load() != stateOpen {
		c.mu.Unlock()
		return false
	}
	if !c.roomLocked(len(reply)) {
		c.mu.Unlock()
		c.closeWith(StatusSlowConsumer, "slow consumer")
		return false
	}
	if e := c.srv.subscribe(c, keys); e != nil {
		c.mu.Unlock()
		if f := refused(e); f != nil {
			c.enqueueReply(f)
		}
		return false
	}
	c.enqueueLocked(reply, replyTag, true)
	c.mu.Unlock()
	return true
}

// enqueueLocked appends frame to the queue and makes sure a flush will
// write it: at once when now is set (replies, pongs), else at the hub's
// next Flush, which ends the burst the frame came in (see Server.Flush).
func (c *conn) enqueueLocked(frame []byte, t *topic, now bool) {
	c.queue = append(c.queue, qframe{frame, t})
	c.queued += len(frame)
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
				time.AfterFunc(writeRetry, c.retryFlush)
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

// logAt logs msg with the connection's id. A connection keeps no logger:
// this builds the record only when level is enabled.
func (c *conn) logAt(level slog.Level, msg string, args ...any) {
	log := c.srv.log
	if !log.Enabled(context.Background(), level) {
		return
	}
	log.Log(context.Background(), level, msg, append([]any{"conn", c.id}, args...)...)
}

// closeWith starts the close handshake: pending frames are dropped, a close
// frame with code and reason is queued, and the connection stops reading
// commands. It is safe to call from any goroutine, more than once.
func (c *conn) closeWith(code ws.StatusCode, reason string) {
	c.startClose(code, reason, false)
}

// closeAfterReplies answers the client's close frame: the answers to what
// it sent before the close (replies, pongs) stay queued ahead of the close
// reply, stream frames are dropped.
func (c *conn) closeAfterReplies(code ws.StatusCode) {
	c.startClose(code, "", true)
}

func (c *conn) startClose(code ws.StatusCode, reason string, keepReplies bool) {
	if !c.state.CompareAndSwap(stateOpen, stateClosing) {
		return
	}
	c.srv.metrics.closed(closeReason(code))
	c.logAt(slog.LevelDebug, "closing", "code", int(code), "reason", reason)
	c.mu.Lock()
	q := c.queue[:0]
	c.queued = 0
	if keepReplies {
		for _, e := range c.queue {
			if e.t == replyTag {
				q = append(q, e)
				c.queued += len(e.frame)
			}
		}
	}
	clear(c.queue[len(q):])
	c.queue = q
	c.closeAt = true
	c.keepOut = keepReplies
	c.queue = append(c.queue, qframe{frame: closeFrame(code, reason)})
	if !c.writing {
		c.writing = true
		if !c.srv.pool.submit(c.flushTaskLocked()) {
			c.writing = false
			c.mu.Unlock()
			c.finish()
			return
		}
	}
	c.mu.Unlock()
	c.srv.unsubscribeAll(c)
}

// closeSent runs once the close frame is on the wire. It half-closes the
// socket so the client reads our close frame before any reset, then gives the
// client CloseGrace to answer before the descriptor is released.
func (c *conn) closeSent() {
	if tc, ok := c.nc.(interface{ CloseWrite() error }); ok {
		tc.CloseWrite()
	}
	time.AfterFunc(c.srv.cfg.CloseGrace, c.finish)
	if err := c.srv.poller.resume(c); err != nil {
		c.finish()
	}
}

// drainClosing discards what a closing client still sends (its close reply)
// and releases the connection at end of stream. Like a read task, it takes
// only what the socket holds now.
func (c *conn) drainClosing() {
	var buf [512]byte
	for range 16 {
		n, err := c.readNow(buf[:])
		if errors.Is(err, errWouldBlock) {
			break
		}
		if err != nil {
			c.finish()
			return
		}
		if n < len(buf) {
			break
		}
	}
	if err := c.srv.poller.resume(c); err != nil {
		c.finish()
	}
}

// recoverTask ends a connection whose read or flush task panicked: the
// panic is logged with its stack and counted, the connection is released,
// and the worker and every other connection go on. It must be deferred
// directly by the task.
func (c *conn) recoverTask(task string) {
	r := recover()
	if r == nil {
		return
	}
	c.srv.metrics.internalErrors.Add(1)
	c.srv.log.Error("panic in connection task; closing the connection",
		"conn", c.id, "task", task, "panic", r, "stack", string(debug.Stack()))
	c.finish()
}

// finish releases the connection at once: it leaves epoll, then closes the
// socket (in that order; see poller.remove), and forgets its subscriptions.
func (c *conn) finish() {
	if c.state.Swap(stateClosed) == stateClosed {
		return
	}
	c.srv.poller.remove(c)
	c.nc.Close()
	c.mu.Lock()
	clear(c.queue)
	c.queue, c.spare, c.queued = nil, nil, 0
	c.mu.Unlock()
	c.srv.unsubscribeAll(c)
	c.srv.forget(c)
}

// subscribed returns a copy of the connection's stream keys.
func (c *conn) subscribed() []string {
	c.smu.Lock()
	defer c.smu.Unlock()
	out := make([]string, 0, len(c.streams))
	for k := range c.streams {
		out = append(out, k)
	}
	return out
}

// clientAddr returns the client's address: the one a trusted proxy
// forwarded, else the TCP peer's.
func (c *conn) clientAddr() netip.Addr {
	if c.remote != "" {
		return parseAddr(c.remote)
	}
	return parseAddr(c.nc.RemoteAddr().String())
}

// remoteString is the client's address as the control API and logs show
// it: the forwarded address, or the TCP peer's address and port.
func (c *conn) remoteString() string {
	if c.remote != "" {
		return c.remote
	}
	return c.nc.RemoteAddr().String()
}
