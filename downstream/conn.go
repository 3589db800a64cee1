package downstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

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
// something is logged, and the frame reader exists only while a read task
// runs (a task always stops at a message boundary; see readAvailable).
type conn struct {
	srv       *Server
	id        uint64
	nc        net.Conn
	origin    string
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

	// deflate is set before the connection is shared: the client
	// negotiated permessage-deflate, so it is sent the compressed form of
	// stream messages, and rx tracks RSV1 of the messages it sends.
	deflate bool
	rx      *rsvCheck

	// mu guards the following fields.
	mu        sync.Mutex
	queue     []qframe // frames waiting to be written, oldest first
	spare     []qframe // the previous batch's backing array, reused
	queued    int      // bytes in queue
	writing   bool     // a flush task is queued, running or waiting to retry
	closeAt   bool     // the last queued frame is a close frame
	flushTask func()   // c.flush, made once; see flushTaskLocked

	// Only the flush task (one at a time, see writing) touches these.
	out     outBatch  // the batch being written
	stalled time.Time // when writes stopped making progress; zero if they do

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

// readTask reads every complete message the connection has buffered, handles
// each, and re-arms the descriptor. A message that has started arriving must
// complete within ReadTimeout.
func (c *conn) readTask() {
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

// readAvailable handles the messages in one readiness report and reports
// whether the connection is still open for reading.
func (c *conn) readAvailable() bool {
	c.lastRead.Store(time.Now().UnixNano())
	br := c.acquireReader()
	defer c.releaseReader(br)
	rd := c.frameReader(br)
	defer releaseFrameReader(rd)
	c.nc.SetReadDeadline(time.Now().Add(c.srv.cfg.ReadTimeout))
	var msg bytes.Buffer
	for {
		msg.Reset()
		// readMessage returns only with a whole message (or an error), so
		// the task ends at a message boundary and no reader state need
		// outlive it.
		op, err := c.readMessage(rd, &msg)
		if err != nil {
			c.fail(err)
			return false
		}
		if op != 0 && !c.allowCommand() {
			return false
		}
		switch op {
		case ws.OpText:
			c.proto.handleText(c, msg.Bytes())
		case ws.OpBinary:
			c.closeWith(ws.StatusUnsupportedData, "binary messages are not supported")
			return false
		}
		if c.state.Load() != stateOpen {
			return false
		}
		if br.Buffered() == 0 {
			return true
		}
	}
}

// frameReaders lends frame readers to read tasks.
var frameReaders = sync.Pool{New: func() any { return new(wsutil.Reader) }}

// frameReader returns a frame reader over br set up for c: the server side
// of RFC 6455 with c's message size limit and, if negotiated,
// permessage-deflate. Give it back with releaseFrameReader.
func (c *conn) frameReader(br io.Reader) *wsutil.Reader {
	rd := frameReaders.Get().(*wsutil.Reader)
	limit := c.maxMessage()
	*rd = wsutil.Reader{
		Source:         br,
		State:          ws.StateServerSide,
		CheckUTF8:      true,
		MaxFrameSize:   limit,
		MaxMessageSize: limit,
		OnIntermediate: c.control,
	}
	if c.deflate {
		rd.State = rd.State.Set(ws.StateExtended)
		rd.Extensions = []wsutil.RecvExtension{c.rx}
		// wsutil.Reader would check the compressed bytes; inflate checks
		// the message instead.
		rd.CheckUTF8 = false
	}
	return rd
}

func releaseFrameReader(rd *wsutil.Reader) {
	*rd = wsutil.Reader{}
	frameReaders.Put(rd)
}

// maxMessage is the size limit of one client message on c.
func (c *conn) maxMessage() int64 {
	if c.native {
		return c.srv.cfg.MaxMessageSize
	}
	return c.srv.cfg.MaxDialectMessageSize
}

// readMessage reads the next data message into buf, answering the control
// frames that precede it. It returns op 0 when only control frames were read.
func (c *conn) readMessage(rd *wsutil.Reader, buf *bytes.Buffer) (ws.OpCode, error) {
	hdr, err := rd.NextFrame()
	if err != nil {
		return 0, err
	}
	if hdr.OpCode.IsControl() {
		return 0, c.control(hdr, rd)
	}
	if _, err := buf.ReadFrom(rd); err != nil {
		return 0, err
	}
	if c.deflate {
		if err := c.inflate(hdr.OpCode, buf); err != nil {
			return 0, err
		}
	}
	return hdr.OpCode, nil
}

// control answers one control frame whose payload r yields (at most 125
// bytes, which wsutil.Reader has checked).
func (c *conn) control(hdr ws.Header, r io.Reader) error {
	var p [125]byte
	n, err := io.ReadFull(r, p[:hdr.Length])
	if err != nil {
		return err
	}
	body := p[:n]
	switch hdr.OpCode {
	case ws.OpPing:
		if !c.allowCommand() {
			return errPeerClosed // closed for flooding; the close frame is queued
		}
		c.enqueueControl(compileFrame(ws.OpPong, body))
	case ws.OpClose:
		code, reason := ws.ParseCloseFrameData(body)
		if len(body) == 0 {
			c.closeWith(ws.StatusNormalClosure, "")
			return errPeerClosed
		}
		if code >= 5000 { // RFC 6455 §7.4.2: no close codes above 4999
			c.closeWith(ws.StatusProtocolError, "invalid close code")
			return errPeerClosed
		}
		if err := ws.CheckCloseFrameData(code, reason); err != nil {
			c.closeWith(ws.StatusProtocolError, err.Error())
			return errPeerClosed
		}
		// RFC 6455 §5.5.1: echo the status code.
		c.closeWith(code, "")
		return errPeerClosed
	}
	// Unsolicited pongs are allowed and need no answer.
	return nil
}

// allowCommand counts one client message (a command or a ping) against
// MaxCommandsPerSecond and closes the connection with 1008 when a flood
// exceeds it. Replies and pongs bypass the write queue's byte limit, so this
// is also what bounds them.
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
	// may replace it while it waits; nil for every other frame (replies,
	// control frames, streams where a gap corrupts what the client builds).
	t *topic
}

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
		if e.t != nil {
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

// enqueueControl queues a reply or pong regardless of the byte limit: replies
// are small and bounded by the client's own command rate.
func (c *conn) enqueueControl(frame []byte) {
	c.mu.Lock()
	if c.state.Load() == stateOpen {
		c.enqueueLocked(frame, nil, true)
	}
	c.mu.Unlock()
}

// replyThenSubscribe queues a subscribe command's reply and joins its
// streams as one step: holding the queue lock across both keeps the reply
// from being written before the streams are joined (a client that reads the
// reply gets every message published after it) and keeps every message of
// the streams behind the reply. Lock order: c.mu, then c.smu, then the
// registry's.
func (c *conn) replyThenSubscribe(reply []byte, keys []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if reply == nil || c.state.Load() != stateOpen {
		return
	}
	c.enqueueLocked(reply, nil, true)
	c.srv.subscribe(c, keys)
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

// errWouldBlock reports that the client's socket buffer is full.
var errWouldBlock = errors.New("socket buffer full")

// flush writes queued frames until the queue is empty, coalescing each batch
// into one writev. Only one flush per connection runs at a time. When the
// client's socket buffer is full, flush keeps what it has not written,
// returns, and runs again writeRetry later; a connection whose writes make
// no progress for WriteTimeout is dropped.
func (c *conn) flush() {
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
				c.stalled = time.Time{}
				c.writing = false
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
			// batch: finish the frame on the wire, drop the others.
			c.out.keepFirst()
		}

		n, err := c.out.write(c)
		if err == nil {
			c.stalled = time.Time{}
			continue
		}
		if errors.Is(err, errWouldBlock) {
			now := time.Now()
			if n > 0 || c.stalled.IsZero() {
				c.stalled = now
			}
			if now.Sub(c.stalled) < c.srv.cfg.WriteTimeout {
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

// closeWith starts the close handshake: pending data is dropped, a close
// frame with code and reason is queued, and the connection stops reading
// commands. It is safe to call from any goroutine, more than once.
func (c *conn) closeWith(code ws.StatusCode, reason string) {
	if !c.state.CompareAndSwap(stateOpen, stateClosing) {
		return
	}
	c.srv.metrics.closed(closeReason(code))
	c.logAt(slog.LevelDebug, "closing", "code", int(code), "reason", reason)
	c.mu.Lock()
	clear(c.queue)
	c.queue = c.queue[:0]
	c.queued = 0
	c.closeAt = true
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
// and releases the connection at end of stream.
func (c *conn) drainClosing() {
	var buf [512]byte
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	for range 16 {
		if _, err := c.nc.Read(buf[:]); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			c.finish()
			return
		}
	}
	if err := c.srv.poller.resume(c); err != nil {
		c.finish()
	}
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
