package downstream

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// readBufferSize is the size of the read buffer a connection borrows while
// one of its read tasks runs.
const readBufferSize = 4 << 10

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
func (c *conn) maxMessage() int64 { return c.proto.maxMessage(&c.srv.cfg) }

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
	if c.holdCommand(p) {
		if c.state.Load() != stateOpen {
			return errPeerClosed
		}
		return nil
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
	if c.cmdCount <= c.srv.limits.Load().MaxCommandsPerSecond {
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
