package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

const (
	// numShards spreads the hot counters and histograms of a worker's
	// connections over several cache lines.
	numShards = 8
	// readBuf is each subscribing connection's read buffer: frames up to
	// this size are parsed in place, larger ones are copied once.
	readBuf = 4096
	// idleReadBuf is the read buffer of an idle connection, which only
	// ever reads pings and a close.
	idleReadBuf = 256
	// maxWarnings bounds the connection errors a worker logs; the rest are
	// only counted.
	maxWarnings = 5
)

// shard holds the counters that every message touches.
type shard struct {
	msgs, bytes, seqGaps, missing atomic.Int64
	latency                       Recorder
}

// worker opens and reads the connections of one process: those whose global
// index g has g % cfg.procs == index. Its counters are safe for concurrent
// use; snapshot may be called at any time.
type worker struct {
	cfg   config
	index int
	log   *slog.Logger

	attempted, opened, closed, subscribed atomic.Int64
	dialErrs, hsErrs, subErrs, dropped    atomic.Int64
	streamErrs                            atomic.Int64
	pending                               atomic.Int64 // launched, not yet settled
	rampDone                              atomic.Bool
	warnings                              atomic.Int64
	shards                                [numShards]shard
}

func newWorker(cfg config, index int, log *slog.Logger) *worker {
	return &worker{cfg: cfg, index: index, log: log.With("proc", index)}
}

// snapshot returns the worker's cumulative counters.
func (w *worker) snapshot() Snapshot {
	s := Snapshot{
		Ready:     w.rampDone.Load() && w.pending.Load() == 0,
		Attempted: w.attempted.Load(), Opened: w.opened.Load(), Closed: w.closed.Load(),
		Subscribed: w.subscribed.Load(), DialErrors: w.dialErrs.Load(), HandshakeErrors: w.hsErrs.Load(),
		SubscribeErrors: w.subErrs.Load(), Dropped: w.dropped.Load(), StreamErrors: w.streamErrs.Load(),
	}
	for i := range w.shards {
		sh := &w.shards[i]
		s.Msgs += sh.msgs.Load()
		s.Bytes += sh.bytes.Load()
		s.SeqGaps += sh.seqGaps.Load()
		s.Missing += sh.missing.Load()
		sh.latency.AddTo(&s.Latency)
	}
	if p, err := readProc(0); err == nil {
		s.CPU = p.CPU
	}
	return s
}

// run opens the worker's connections at its share of cfg.rate, then waits
// until every connection has ended. Connections end when ctx does (each
// sends a close frame) or when the server drops them; run returns after
// the last one.
func (w *worker) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	defer w.rampDone.Store(true)
	per := time.Duration(float64(time.Second) * float64(w.cfg.procs) / w.cfg.rate)
	t := time.NewTimer(0)
	defer t.Stop()
	start := time.Now()
	for k, g := 0, w.index; g < w.cfg.conns; k, g = k+1, g+w.cfg.procs {
		if d := time.Until(start.Add(time.Duration(k) * per)); d > 0 {
			t.Reset(d)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		} else if ctx.Err() != nil {
			return
		}
		w.attempted.Add(1)
		w.pending.Add(1)
		wg.Go(func() { w.runConn(ctx, g) })
	}
}

// warn logs a connection error, at most maxWarnings times per worker.
func (w *worker) warn(msg string, args ...any) {
	if n := w.warnings.Add(1); n <= maxWarnings {
		if n == maxWarnings {
			msg += " (further connection errors are only counted)"
		}
		w.log.Warn(msg, args...)
	}
}

// dial opens connection g's WebSocket from its source address.
func (w *worker) dial(ctx context.Context, g int, bufSize int) (net.Conn, *bufio.Reader, error) {
	var local net.Addr
	if n := len(w.cfg.sources); n > 0 {
		local = net.TCPAddrFromAddrPort(netip.AddrPortFrom(w.cfg.sources[g%n], 0))
	}
	d := ws.Dialer{
		ReadBufferSize:  bufSize,
		WriteBufferSize: 512,
		Timeout:         w.cfg.dialTimeout,
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nd := net.Dialer{LocalAddr: local}
			return nd.DialContext(ctx, network, addr)
		},
	}
	nc, br, _, err := d.Dial(ctx, w.cfg.url)
	if err != nil {
		return nil, nil, err
	}
	if br == nil {
		br = bufio.NewReaderSize(nc, bufSize)
	}
	return nc, br, nil
}

// runConn is connection g from dial to close.
func (w *worker) runConn(ctx context.Context, g int) {
	settled := false
	settle := func() {
		if !settled {
			settled = true
			w.pending.Add(-1)
		}
	}
	defer settle()
	bufSize := readBuf
	if w.cfg.idle {
		bufSize = idleReadBuf
	}
	nc, br, err := w.dial(ctx, g, bufSize)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		if oe, ok := errors.AsType[*net.OpError](err); ok && oe.Op == "dial" {
			w.dialErrs.Add(1)
			w.warn("dial", "conn", g, "err", err)
		} else {
			w.hsErrs.Add(1)
			w.warn("handshake", "conn", g, "err", err)
		}
		return
	}
	w.opened.Add(1)
	defer w.closed.Add(1)
	defer nc.Close()
	// Ending ctx interrupts the read; the reader then says goodbye.
	stop := context.AfterFunc(ctx, func() { _ = nc.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	c := &clientConn{w: w, nc: nc, br: br, sh: &w.shards[g%numShards], hdr: make([]byte, 2, ws.MaxHeaderSize-2), sample: w.cfg.samples(g)}
	if w.cfg.idle {
		settle()
	} else {
		streams := connStreams(w.cfg.streams, w.cfg.perConn, g)
		c.seqs = make([]seqState, len(streams))
		for i, s := range streams {
			c.seqs[i].stream = s
		}
		cmd, _ := json.Marshal(struct {
			Op      string   `json:"op"`
			ID      int      `json:"id"`
			Streams []string `json:"streams"`
		}{"subscribe", 1, streams})
		_ = nc.SetWriteDeadline(time.Now().Add(w.cfg.dialTimeout))
		err := wsutil.WriteClientText(nc, cmd)
		_ = nc.SetWriteDeadline(time.Time{})
		if err != nil {
			w.dropped.Add(1)
			w.warn("subscribe", "conn", g, "err", err)
			return
		}
		c.awaiting = settle
		_ = nc.SetReadDeadline(time.Now().Add(w.cfg.dialTimeout))
		if ctx.Err() != nil { // the AfterFunc may have run before the deadline was set
			return
		}
	}
	err = c.read(ctx)
	if errors.Is(err, errSwitch) {
		if w.cfg.others == othersMute {
			err = c.mute(ctx)
		} else {
			err = c.count(ctx)
		}
	}
	switch {
	case ctx.Err() != nil:
		_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
		_ = wsutil.WriteClientMessage(nc, ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
	case c.awaiting != nil:
		w.subErrs.Add(1)
		w.warn("no subscribe reply", "conn", g, "err", err)
	case err != nil:
		w.dropped.Add(1)
		w.warn("connection dropped", "conn", g, "err", err)
	}
}

// seqState is the last seq seen on one stream of a connection.
type seqState struct {
	stream string
	last   uint64
}

// clientConn reads one connection; only its goroutine touches it.
type clientConn struct {
	w   *worker
	nc  net.Conn
	br  *bufio.Reader
	sh  *shard
	hdr []byte
	// awaiting, while the subscribe reply has not come, settles the
	// connection.
	awaiting func()
	seqs     []seqState
	// sample: parse every message (latency, seqs); otherwise, once
	// subscribed, run as --others says (see count and mute).
	sample bool
}

// CloseError is a close frame received from the server, which ended the
// connection; the client echoed its code.
type CloseError struct {
	Code   ws.StatusCode
	Reason string
}

// Error describes the close as "closed by server: <code> <reason>".
func (e CloseError) Error() string { return fmt.Sprintf("closed by server: %d %q", e.Code, e.Reason) }

// read handles frames until the connection ends; it returns the reason.
func (c *clientConn) read(ctx context.Context) error {
	for {
		h, err := ws.ReadHeaderBuffer(c.br, c.hdr)
		if err != nil {
			return err
		}
		if h.Masked || h.Length < 0 {
			return errors.New("masked or oversized frame from server")
		}
		n := int(h.Length)
		var p []byte
		big := n > c.br.Size()
		if big {
			p = make([]byte, n)
			if _, err := io.ReadFull(c.br, p); err != nil {
				return err
			}
		} else if p, err = c.br.Peek(n); err != nil {
			return err
		}
		var stop error
		switch h.OpCode {
		case ws.OpText, ws.OpBinary, ws.OpContinuation:
			if h.Fin && h.OpCode == ws.OpText {
				stop = c.handle(ctx, p)
			}
		case ws.OpPing:
			pong := bytes.Clone(p)
			_ = c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
			stop = wsutil.WriteClientMessage(c.nc, ws.OpPong, pong)
			_ = c.nc.SetWriteDeadline(time.Time{})
		case ws.OpClose:
			code, reason := ws.ParseCloseFrameData(p)
			if code.Empty() {
				code = ws.StatusNoStatusRcvd
			}
			body := ws.NewCloseFrameBody(code, "")
			if code == ws.StatusNoStatusRcvd {
				body = nil
			}
			_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
			_ = wsutil.WriteClientMessage(c.nc, ws.OpClose, body)
			stop = CloseError{code, reason}
		}
		if !big {
			_, _ = c.br.Discard(n)
		}
		if stop != nil {
			return stop
		}
	}
}

// handle accounts one text message. It returns an error to end the
// connection.
func (c *clientConn) handle(ctx context.Context, p []byte) error {
	m := scanMessage(p)
	switch m.kind {
	case kindData:
		c.sh.msgs.Add(1)
		c.sh.bytes.Add(int64(len(p)))
		if m.hasE {
			lat := time.Now().UnixMicro() - m.eventMicros
			c.sh.latency.Record(uint64(max(lat, 0)))
		}
		if m.hasSeq {
			c.checkSeq(m.stream, m.seq, m.gap)
		}
	case kindStreamError:
		c.w.streamErrs.Add(1)
		c.w.warn("stream ended upstream", "stream", string(m.stream), "msg", string(p))
	case kindReply:
		if c.awaiting == nil || string(m.id) != "1" {
			return nil
		}
		if m.isError {
			c.w.subErrs.Add(1)
			c.w.warn("subscribe refused", "reply", string(p))
		} else {
			c.w.subscribed.Add(1)
		}
		c.awaiting()
		c.awaiting = nil
		_ = c.nc.SetReadDeadline(time.Time{})
		if ctx.Err() != nil { // the AfterFunc's deadline was just overwritten
			return ctx.Err()
		}
		if !c.sample {
			return errSwitch
		}
	}
	return nil
}

// checkSeq counts a break in a stream's seq (one not following the
// previous by exactly 1), except where a gap notice announces it.
func (c *clientConn) checkSeq(stream []byte, seq uint64, gap bool) {
	for i := range c.seqs {
		s := &c.seqs[i]
		if s.stream != string(stream) {
			continue
		}
		if s.last != 0 && !gap && seq != s.last+1 {
			c.sh.seqGaps.Add(1)
			if seq > s.last {
				c.sh.missing.Add(int64(seq - s.last - 1))
			}
		}
		s.last = seq
		return
	}
}
