package downstream

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// Connection states. A connection only moves forward through them.
const (
	stateOpen    int32 = iota
	stateClosing       // close frame queued; no more data is queued or read
	stateClosed        // descriptor released
)

// protocol is what a connection speaks on top of WebSocket: the native
// protocol or an exchange-compatible dialect (see dialects). Every
// per-protocol decision goes through it; implementations are comparable
// values, safe for concurrent use.
type protocol interface {
	// handleText processes one complete text message from the client. It runs
	// on the connection's read task, never concurrently with itself.
	handleText(c *conn, p []byte)
	// form returns the wire form (formNative, …) of the stream messages c
	// is sent now. It is called for every message on the fan-out path.
	form(c *conn) int
	// maxMessage returns the size limit of one client message.
	maxMessage(cfg *Config) int64
	// streamFailed frames the notice that stream key failed upstream for
	// reason, sent to each of its subscribers.
	streamFailed(key, reason string) []byte
	// name is the protocol's name in [ClientInfo] (ProtocolNative, …).
	name() string
	// streamForbidden frames the notice that stream key ended because
	// the connection's refreshed token no longer allows it.
	streamForbidden(key string) []byte
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
	combined  atomic.Bool // Binance dialect: wrap payloads as {"stream":…,"data":…}
	// normalized holds the streams c takes in the normalized form: an
	// immutable set, replaced (under mu) on subscribe and unsubscribe and
	// read without a lock at fan-out; nil for none.
	normalized atomic.Pointer[map[string]bool]
	poll       pollState
	state      atomic.Int32
	drops      atomic.Int64 // messages dropped from its queue (conflated)
	lastRead   atomic.Int64 // unix nanos of the last read from the client; see keepalive

	// Commands in the current one-second window; only the read task
	// touches them.
	cmdWindow int64
	cmdCount  int

	// rmu is held by the connection's one read task, and by an auth
	// worker while it applies a token and runs the commands held meanwhile:
	// a connection's commands run one at a time.
	rmu sync.Mutex

	// sess is what the connection's token gave it; nil without one.
	sess atomic.Pointer[session]
	// awaitingAuth: a token is required and no auth command came yet.
	awaitingAuth atomic.Bool
	auth         authState

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
	// timer is the connection's pending timer, if any (see after): a
	// write retry or the close grace, never both.
	timer *time.Timer
	// recov holds, by stream key, the streams the client is catching up
	// on (see recovering); nil or empty almost always. Bounded by the
	// client's streams.
	recov map[string]*recovering
	// cuQueue holds the client's catch-ups, the running or queued one
	// first (at most maxCatchups).
	cuQueue []*catchup

	// Only the flush task (one at a time, see writing) touches these.
	out     outBatch // the batch being written
	stalled int64    // unix nanos when writes stopped making progress; 0 while they do

	// smu guards streams.
	smu     sync.Mutex
	streams map[string]struct{} // stream keys this connection is subscribed to
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
	c.after(c.srv.cfg.CloseGrace, c.finish)
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
	c.stopAuthTimers()
	c.srv.releaseCount(c.id, c.sess.Load())
	c.mu.Lock()
	if c.timer != nil && c.timer.Stop() {
		// A write retry that will not run now leaves its batch to us: no
		// flush runs while one waits (writing stays set).
		c.out.reset()
	}
	c.timer = nil
	clear(c.queue)
	c.queue, c.spare, c.queued = nil, nil, 0
	c.mu.Unlock()
	c.srv.unsubscribeAll(c)
	c.srv.forget(c)
}

// after runs f in d unless the connection is released first: finish
// stops the timer. A connection has one timer at a time: the write retry
// while a flush waits for the client's socket, or the close grace, which
// the flush that wrote the close frame starts once nothing waits.
func (c *conn) after(d time.Duration, f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state.Load() == stateClosed {
		return // finish has run, or runs now and finds no timer
	}
	c.timer = time.AfterFunc(d, f)
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
