package binancesim

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

const (
	// maxFrameSize bounds incoming frames and messages; larger ones close
	// the connection with 1009.
	maxFrameSize = 64 << 10
	// closeGrace is how long the server waits for the client's close frame
	// after sending its own.
	closeGrace = time.Second
	// closeWriteTimeout bounds writing the close frame.
	closeWriteTimeout = time.Second
	// lingerTimeout bounds draining a client after a protocol error, so the
	// close frame is not lost to a TCP reset.
	lingerTimeout = 500 * time.Millisecond
	// maxBatch is the most frames written with one writev.
	maxBatch = 64
)

// Close reasons: Binance's documented ones and, where it documents none,
// those observed in the wild.
const (
	closeRateReason     = "Too many requests"
	closePongReason     = "Pong timeout"
	closeLifetimeReason = "Connection lifetime expired"
	closeShutdownReason = "Server shutdown"
	closeSlowReason     = "Slow consumer"
	closeStrictReason   = `{"code":-1,"msg":"Illegal format ws or stream"}`
	closeStrict         = ws.StatusPolicyViolation
)

// Who closed a connection, as reported in ClientStats.ClosedBy.
const (
	byServer  = "server"
	byClient  = "client"
	byNetwork = "network"
)

// closeMode says what the writer does once a close is requested.
type closeMode int

const (
	closeDrain   closeMode = iota // write the queued frames, then the close frame
	closeNow                      // drop the queued frames, write the close frame
	closeNoFrame                  // write nothing more
)

// closeKind marks closes that count as a violation.
type closeKind int

const (
	ckNone closeKind = iota
	ckRateLimit
	ckPongTimeout
	ckSlow
	ckProtocol
)

// closeRecord is the first close requested for a connection.
type closeRecord struct {
	set    bool
	code   ws.StatusCode
	reason string
	mode   closeMode
	by     string
	kind   closeKind
	frame  []byte // compiled close frame; nil with closeNoFrame
}

// sentPing is a ping awaiting its pong.
type sentPing struct {
	payload string
	sent    time.Time
}

// conn is one WebSocket connection. It runs three goroutines: the reader
// (the HTTP handler's goroutine, which owns rd and the rate window), the
// writer (the only one that writes to nc) and the timers (pings, pong
// timeout, lifetime, shutdown).
//
// Lock order: c.mu, then registry.mu, then c.cmu. c.pmu is a leaf.
type conn struct {
	srv        *Server
	rec        *clientRecord // guarded by srv.mu
	id         uint64
	nc         net.Conn // set by serve before the connection is in srv.open
	log        *slog.Logger
	micro      bool
	route      route     // futures route of the handshake path; routeSpot in spot mode
	ip         string    // the client's IP, for the REST procedure checks
	accepted   time.Time // real time the handshake was accepted; MaxLifetime counts from it
	combined   atomic.Bool
	out        chan []byte        // compiled frames for the writer
	closeReq   chan struct{}      // closed by the first closeWith
	closing    atomic.Bool        // a close was requested: send nothing more
	writerDone chan struct{}      // closed when the writer returns
	shutdownIn chan time.Duration // SendServerShutdown's close delay

	// Owned by the reader goroutine.
	rd       wsutil.Reader
	rate     []time.Time // ring of the last MaxMessagesPerSecond message times
	rateHead int
	linger   bool // drain the client before closing the TCP connection
	ctl      [125]byte

	mu     sync.Mutex // guards the following
	st     ClientStats
	subs   []string              // subscribed names, in subscription order
	subSet map[string]streamSpec // the same names, parsed

	cmu    sync.Mutex // guards the following
	cl     closeRecord
	closed bool // the TCP connection is closed

	pmu   sync.Mutex // guards the following
	pings []sentPing
}

// newConn builds the state of a connection being accepted; it does no I/O.
func (s *Server) newConn(r *http.Request, specs []streamSpec, malformed int, combined, micro bool, rt route) *conn {
	id := s.nextID.Add(1)
	c := &conn{
		srv:        s,
		id:         id,
		log:        s.log.With("conn", id),
		micro:      micro,
		route:      rt,
		ip:         remoteIP(r),
		accepted:   time.Now(),
		out:        make(chan []byte, s.cfg.SendQueue),
		closeReq:   make(chan struct{}),
		writerDone: make(chan struct{}),
		shutdownIn: make(chan time.Duration, 1),
		subSet:     make(map[string]streamSpec, len(specs)),
	}
	c.combined.Store(combined)
	c.st = ClientStats{
		ID: id, Remote: r.RemoteAddr, Path: r.URL.RequestURI(), Connected: s.cfg.Now(),
		Requests: map[string]int{}, InvalidStreams: malformed,
	}
	for _, sp := range specs {
		c.subSet[sp.name] = sp
		c.subs = append(c.subs, sp.name)
		if !s.knownSymbol(sp.symbol) {
			c.st.InvalidStreams++
		}
		if sp.route != rt {
			c.st.WrongRoute++
		}
	}
	c.st.Streams = len(c.subs)
	return c
}

// serve runs an upgraded connection until it ends. br holds any bytes the
// client sent after its handshake.
func (c *conn) serve(nc net.Conn, br *bufio.Reader) {
	s := c.srv
	c.nc = nc
	c.rd = wsutil.Reader{
		Source:         br,
		State:          ws.StateServerSide,
		CheckUTF8:      true,
		MaxFrameSize:   maxFrameSize,
		MaxMessageSize: maxFrameSize,
		OnIntermediate: c.onIntermediate,
	}
	c.log.Debug("connected", "remote", c.st.Remote, "uri", c.st.Path)

	var wg sync.WaitGroup
	wg.Go(c.writeLoop)
	wg.Go(c.timerLoop)
	if !s.openConn(c) {
		c.closeWith(closeRecord{code: ws.StatusGoingAway, reason: closeShutdownReason, mode: closeDrain, by: byServer})
	}
	c.readLoop()
	c.closeWith(closeRecord{code: ws.StatusAbnormalClosure, mode: closeNoFrame, by: byNetwork})
	c.cmu.Lock()
	silent := c.cl.mode == closeNoFrame
	c.cmu.Unlock()
	if silent {
		nc.SetWriteDeadline(time.Now()) // release a writer stuck on a dead peer
	}
	<-c.writerDone
	if c.linger {
		if cw, ok := nc.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		nc.SetReadDeadline(time.Now().Add(lingerTimeout))
		io.Copy(io.Discard, br)
	}
	nc.Close()
	wg.Wait()
	c.release()
}

// release unregisters a finished (or never upgraded) connection and
// freezes its stats.
func (c *conn) release() {
	c.mu.Lock()
	c.srv.reg.remove(c, slices.Collect(maps.Values(c.subSet)))
	c.mu.Unlock()
	c.cmu.Lock()
	c.closed = true
	cl := c.cl
	c.cmu.Unlock()
	c.srv.removeConn(c)
	c.log.Debug("closed", "code", int(cl.code), "reason", cl.reason, "by", cl.by)
}

// stats returns a copy of the connection's ClientStats.
func (c *conn) stats() ClientStats {
	c.mu.Lock()
	st := c.st
	st.Requests = maps.Clone(c.st.Requests)
	c.mu.Unlock()
	c.cmu.Lock()
	cl, closed := c.cl, c.closed
	c.cmu.Unlock()
	st.Closed = closed
	if cl.set {
		st.CloseCode, st.CloseReason, st.ClosedBy = int(cl.code), cl.reason, cl.by
	}
	switch cl.kind {
	case ckRateLimit:
		st.RateLimitClosed = 1
	case ckPongTimeout:
		st.PongTimeouts = 1
	case ckSlow:
		st.SlowClosed = 1
	case ckProtocol:
		st.ProtocolErrors = 1
	}
	return st
}

// countViolation adds n to the counter of kind.
func (c *conn) countViolation(kind violation, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch kind {
	case vInvalidJSON:
		c.st.InvalidJSON += n
	case vMissingMethod:
		c.st.MissingMethod += n
	case vUnknownMethod:
		c.st.UnknownMethod += n
	case vInvalidID:
		c.st.InvalidID += n
	case vInvalidParams:
		c.st.InvalidParams += n
	case vInvalidStreams:
		c.st.InvalidStreams += n
	case vTooManyStreams:
		c.st.TooManyStreams += n
	}
}

// closeWith requests closing the connection. The first request wins and
// is what ClientStats reports; it reports whether this one won. It never
// blocks and may be called with c.mu or the registry lock held.
func (c *conn) closeWith(cl closeRecord) bool {
	switch {
	case cl.mode == closeNoFrame:
	case cl.by == byClient && cl.code == ws.StatusNoStatusRcvd:
		cl.frame = ws.MustCompileFrame(ws.NewCloseFrame(nil))
	case cl.by == byClient:
		cl.frame = ws.MustCompileFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(cl.code, "")))
	default:
		cl.frame = ws.MustCompileFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(cl.code, cl.reason)))
	}
	cl.set = true
	c.cmu.Lock()
	if c.cl.set {
		c.cmu.Unlock()
		return false
	}
	c.cl = cl
	c.closing.Store(true)
	close(c.closeReq)
	c.cmu.Unlock()
	if cl.by != byNetwork {
		c.log.Debug("closing", "code", int(cl.code), "reason", cl.reason, "by", cl.by)
	}
	return true
}

// send queues a compiled frame. A full queue closes the connection as a
// slow consumer. It never blocks.
func (c *conn) send(f []byte) {
	if c.closing.Load() {
		return
	}
	select {
	case c.out <- f:
	default:
		if c.closeWith(closeRecord{code: ws.StatusPolicyViolation, reason: closeSlowReason, mode: closeNow, by: byServer, kind: ckSlow}) {
			c.log.Info("slow consumer", "queue", cap(c.out))
		}
	}
}

// sendText queues a text message.
func (c *conn) sendText(p []byte) { c.send(compileText(p)) }

// sendServerShutdown queues the serverShutdown event in the connection's
// form.
func (c *conn) sendServerShutdown() {
	p := appendServerShutdown(nil, c.srv.cfg.Now().UnixMicro(), c.micro)
	if c.combined.Load() {
		p = wrapCombined("!serverShutdown", p)
	}
	c.sendText(p)
}

// writeLoop is the connection's only writer.
func (c *conn) writeLoop() {
	defer close(c.writerDone)
	batch := make([][]byte, 0, maxBatch)
	for {
		select {
		case <-c.closeReq:
			c.finishWrites(batch)
			return
		default:
		}
		select {
		case <-c.closeReq:
			c.finishWrites(batch)
			return
		case f := <-c.out:
			batch = c.collect(append(batch[:0], f))
			if err := c.writeBatch(batch, time.Now().Add(c.srv.cfg.WriteTimeout)); err != nil {
				c.writeFailed(err)
				return
			}
		}
	}
}

// collect adds queued frames to batch without blocking.
func (c *conn) collect(batch [][]byte) [][]byte {
	for len(batch) < maxBatch {
		select {
		case f := <-c.out:
			batch = append(batch, f)
		default:
			return batch
		}
	}
	return batch
}

func (c *conn) writeBatch(batch [][]byte, deadline time.Time) error {
	c.nc.SetWriteDeadline(deadline)
	bufs := net.Buffers(batch)
	_, err := bufs.WriteTo(c.nc)
	clear(batch) // drop references to shared frames
	return err
}

// writeFailed handles a failed write: a timeout is a slow consumer, any
// other error a broken connection. Either way the reader is cut loose.
func (c *conn) writeFailed(err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		if c.closeWith(closeRecord{code: ws.StatusPolicyViolation, reason: closeSlowReason, mode: closeNoFrame, by: byServer, kind: ckSlow}) {
			c.log.Info("slow consumer", "err", err)
		}
	} else {
		c.closeWith(closeRecord{code: ws.StatusAbnormalClosure, mode: closeNoFrame, by: byNetwork})
	}
	c.nc.SetReadDeadline(time.Now())
}

// finishWrites performs the requested close.
func (c *conn) finishWrites(batch [][]byte) {
	c.cmu.Lock()
	cl := c.cl
	c.cmu.Unlock()
	if cl.mode == closeDrain {
		deadline := time.Now().Add(c.srv.cfg.WriteTimeout) // for the whole drain
		for {
			batch = c.collect(batch[:0])
			if len(batch) == 0 {
				break
			}
			if err := c.writeBatch(batch, deadline); err != nil {
				c.nc.SetReadDeadline(time.Now())
				return
			}
		}
	}
	if cl.frame == nil {
		c.nc.SetReadDeadline(time.Now())
		return
	}
	c.nc.SetWriteDeadline(time.Now().Add(closeWriteTimeout))
	if _, err := c.nc.Write(cl.frame); err != nil || cl.by == byClient {
		c.nc.SetReadDeadline(time.Now())
		return
	}
	// Wait a little for the client's close frame (RFC 6455 §7.1.1).
	c.nc.SetReadDeadline(time.Now().Add(closeGrace))
}

// readLoop reads frames until the connection ends.
func (c *conn) readLoop() {
	var buf bytes.Buffer
	for {
		hdr, err := c.rd.NextFrame()
		if err != nil {
			c.readFailed(err)
			return
		}
		if hdr.OpCode.IsControl() {
			if c.control(hdr, &c.rd) {
				return
			}
			continue
		}
		if c.closing.Load() || !c.admit() {
			if err := c.rd.Discard(); err != nil {
				c.readFailed(err)
				return
			}
			continue
		}
		buf.Reset()
		if _, err := buf.ReadFrom(&c.rd); err != nil {
			c.readFailed(err)
			return
		}
		c.handleRequest(buf.Bytes())
	}
}

// readFailed maps a read error to a close (RFC 6455 §7.4.1).
func (c *conn) readFailed(err error) {
	var pe ws.ProtocolError
	switch {
	case errors.Is(err, errStopReading), c.closing.Load():
		// Handled already, or the end of a close we started.
	case errors.As(err, &pe):
		c.linger = true
		c.closeWith(closeRecord{code: ws.StatusProtocolError, reason: err.Error(), mode: closeNow, by: byServer, kind: ckProtocol})
	case errors.Is(err, wsutil.ErrFrameTooLarge), errors.Is(err, wsutil.ErrMessageTooLarge):
		c.linger = true
		c.closeWith(closeRecord{code: ws.StatusMessageTooBig, reason: "Message too big", mode: closeNow, by: byServer, kind: ckProtocol})
	case errors.Is(err, wsutil.ErrInvalidUTF8):
		c.linger = true
		c.closeWith(closeRecord{code: ws.StatusInvalidFramePayloadData, reason: "Invalid UTF-8", mode: closeNow, by: byServer, kind: ckProtocol})
	default:
		c.closeWith(closeRecord{code: ws.StatusAbnormalClosure, mode: closeNoFrame, by: byNetwork})
	}
}

// onIntermediate handles a control frame between the fragments of a
// message.
func (c *conn) onIntermediate(hdr ws.Header, r io.Reader) error {
	if c.control(hdr, r) {
		return errStopReading
	}
	return nil
}

// control handles one control frame and reports whether reading must stop.
func (c *conn) control(hdr ws.Header, r io.Reader) bool {
	p := c.ctl[:hdr.Length] // CheckHeader bounds control frames to 125 bytes
	if _, err := io.ReadFull(r, p); err != nil {
		c.readFailed(err)
		return true
	}
	switch hdr.OpCode {
	case ws.OpClose:
		return c.peerClose(p)
	case ws.OpPing:
		if !c.closing.Load() && c.admit() {
			c.send(ws.MustCompileFrame(ws.NewPongFrame(bytes.Clone(p))))
		}
	case ws.OpPong:
		if !c.closing.Load() && c.admit() {
			c.pong(p)
		}
	}
	return false
}

// peerClose handles the client's close frame: the reply to ours, or the
// start of a close we echo.
func (c *conn) peerClose(p []byte) bool {
	if c.closing.Load() {
		return true
	}
	if len(p) == 0 {
		c.closeWith(closeRecord{code: ws.StatusNoStatusRcvd, mode: closeNow, by: byClient})
		return true
	}
	code, reason := ws.ParseCloseFrameData(p)
	if err := ws.CheckCloseFrameData(code, reason); err != nil {
		c.closeWith(closeRecord{code: ws.StatusProtocolError, reason: err.Error(), mode: closeNow, by: byServer, kind: ckProtocol})
		return true
	}
	c.closeWith(closeRecord{code: code, reason: reason, mode: closeNow, by: byClient})
	return true
}

// admit counts one incoming message against the rolling one-second window
// and closes the connection when it is one too many.
func (c *conn) admit() bool {
	now := time.Now()
	c.mu.Lock()
	c.st.Messages++
	c.mu.Unlock()
	limit := c.srv.cfg.MaxMessagesPerSecond
	if len(c.rate) < limit {
		c.rate = append(c.rate, now)
		return true
	}
	if now.Sub(c.rate[c.rateHead]) < time.Second {
		if c.closeWith(closeRecord{code: ws.StatusPolicyViolation, reason: closeRateReason, mode: closeDrain, by: byServer, kind: ckRateLimit}) {
			c.log.Info("rate limit exceeded", "limit", limit)
		}
		return false
	}
	c.rate[c.rateHead] = now
	c.rateHead = (c.rateHead + 1) % limit
	return true
}

// pong matches a pong against the outstanding pings. A match answers that
// ping and every older one. In futures mode any pong answers every
// outstanding ping (USD-M: unsolicited pongs maintain the connection),
// and one matching none is an allowed unsolicited pong whatever its
// payload.
func (c *conn) pong(p []byte) {
	anyPong := c.srv.prod.anyPong // USD-M's rule
	c.pmu.Lock()
	idx := slices.IndexFunc(c.pings, func(sp sentPing) bool { return sp.payload == string(p) })
	switch {
	case idx >= 0:
		c.pings = slices.Delete(c.pings, 0, idx+1)
	case anyPong:
		c.pings = c.pings[:0]
	}
	c.pmu.Unlock()
	if idx >= 0 {
		return
	}
	c.mu.Lock()
	if len(p) == 0 || anyPong {
		c.st.UnsolicitedPongs++
	} else {
		c.st.BadPongs++
	}
	c.mu.Unlock()
}

// timerLoop sends pings and enforces the pong timeout, the lifetime and a
// requested shutdown close.
func (c *conn) timerLoop() {
	cfg := &c.srv.cfg
	ping := time.NewTicker(cfg.PingInterval)
	defer ping.Stop()
	life := time.NewTimer(cfg.MaxLifetime - time.Since(c.accepted))
	defer life.Stop()
	pongDue := time.NewTimer(cfg.PongTimeout)
	pongDue.Stop()
	defer pongDue.Stop()
	armed := false
	var shutdown <-chan time.Time
	for {
		select {
		case <-c.closeReq:
			return
		case <-ping.C:
			payload := strconv.AppendInt(nil, cfg.Now().UnixMilli(), 10)
			c.pmu.Lock()
			c.pings = append(c.pings, sentPing{payload: string(payload), sent: time.Now()})
			c.pmu.Unlock()
			c.send(ws.MustCompileFrame(ws.NewPingFrame(payload)))
			if !armed {
				pongDue.Reset(cfg.PongTimeout)
				armed = true
			}
		case <-pongDue.C:
			armed = false
			c.pmu.Lock()
			var oldest time.Time
			if len(c.pings) > 0 {
				oldest = c.pings[0].sent
			}
			c.pmu.Unlock()
			if oldest.IsZero() {
				continue
			}
			if wait := cfg.PongTimeout - time.Since(oldest); wait > 0 {
				pongDue.Reset(wait)
				armed = true
				continue
			}
			if c.closeWith(closeRecord{code: ws.StatusPolicyViolation, reason: closePongReason, mode: closeNow, by: byServer, kind: ckPongTimeout}) {
				c.log.Info("pong timeout", "timeout", cfg.PongTimeout)
			}
		case <-life.C:
			c.closeWith(closeRecord{code: ws.StatusGoingAway, reason: closeLifetimeReason, mode: closeDrain, by: byServer})
		case d := <-c.shutdownIn:
			shutdown = time.After(d)
		case <-shutdown:
			c.closeWith(closeRecord{code: ws.StatusGoingAway, reason: closeShutdownReason, mode: closeDrain, by: byServer})
		}
	}
}
