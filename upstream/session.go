package upstream

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/marketgate/marketgate/hub"
)

// session is one upstream connection: a reader goroutine that parses
// events, replies and control frames, and a writer goroutine that is the
// only code writing to the socket. Both run inside run.
type session struct {
	b         *Binance
	conn      net.Conn
	src       io.Reader // the Dialer's bufio.Reader over conn, or conn
	log       *slog.Logger
	wake      chan struct{} // capacity 1: a reply or ping arrived
	sendClose atomic.Bool   // the reader asks the writer to send a close frame

	// Writer-only.
	last        time.Time // when the last frame went out (monotonic clock)
	lastWasPong bool

	// Reader-only.
	dropped       int   // events of streams this connection does not carry
	publishFailed int   // consecutive Publish failures
	publishErr    error // the first of them

	// mu guards the following fields.
	mu         sync.Mutex
	streams    map[string]*sessStream // every stream subscribed, in flight or gone (a tombstone)
	tombstones int                    // entries of streams in stateGone
	forgot     bool                   // tombstones were dropped: Seq continuity is unknown
	pending    map[int64]*pendingReq  // requests awaiting a reply, ≤ maxPending
	pong       []byte                 // payload of the newest unanswered ping
	pongDue    bool
}

// subState is where a stream stands on one connection.
type subState uint8

const (
	stateGone         subState = iota // not subscribed; kept for its Seq
	stateSubPending                   // SUBSCRIBE sent, no reply yet
	stateSubscribed                   // the exchange confirmed it
	stateUnsubPending                 // UNSUBSCRIBE sent, no reply yet
	stateUncertain                    // the request timed out: re-diff
)

// maxTombstones bounds the entries kept for streams that left a
// connection. Past it they are all dropped, and every stream that starts
// afterwards on the connection begins with Gap set.
const maxTombstones = 4096

// sessStream is a stream on one connection. Its entry outlives an
// unsubscription (as a tombstone in stateGone) so that Seq never restarts
// within a connection: a stream subscribed again continues its Seq and
// its first event carries Gap, because events were missed meanwhile.
type sessStream struct {
	state   subState
	retried bool   // its request already timed out once
	resumed bool   // subscribed again after leaving: the next event has Gap
	seq     uint64 // events published on this connection
	key     string // "binance:<name>", built once
}

// goneLocked turns st (of name) into a tombstone. The caller holds s.mu.
func (s *session) goneLocked(name string, st *sessStream) {
	if st.state == stateGone {
		return
	}
	st.state, st.retried = stateGone, false
	if st.seq == 0 {
		delete(s.streams, name) // nothing to continue
		return
	}
	if s.tombstones++; s.tombstones > maxTombstones {
		for n, t := range s.streams {
			if t.state == stateGone {
				delete(s.streams, n)
			}
		}
		s.tombstones, s.forgot = 0, true
	}
}

// pendingReq is a request awaiting its reply.
type pendingReq struct {
	method   method
	names    []string
	deadline time.Time
	retry    bool // carries streams whose previous request timed out
}

func newSession(b *Binance, id uint64, conn net.Conn, src io.Reader) *session {
	return &session{
		b:       b,
		conn:    conn,
		src:     src,
		log:     b.log.With("conn", id),
		wake:    make(chan struct{}, 1),
		streams: make(map[string]*sessStream),
		pending: make(map[int64]*pendingReq),
	}
}

// run serves the connection until it fails or ctx ends, and returns why.
// Both goroutines have ended when it returns, and conn is closed.
func (s *session) run(ctx context.Context) error {
	// The first goroutine to fail sets the cause; the writer records its
	// error before closing conn, so the reader's "use of closed network
	// connection" that follows never hides why the connection ended.
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	wg.Go(func() { cancel(s.readLoop(sctx)) })
	wg.Go(func() {
		cancel(s.writeLoop(ctx, sctx))
		s.conn.Close() // ends the reader
	})
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return context.Cause(sctx)
}

func (s *session) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// countsLocked returns the confirmed and the in-flight streams. The caller
// holds b.mu.
func (s *session) countsLocked() (subscribed, pending int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.streams {
		switch st.state {
		case stateGone:
		case stateSubscribed:
			subscribed++
		default:
			pending++
		}
	}
	return subscribed, pending
}

// ---- writer ----

// writeLoop sends pongs and subscription requests, spaced at least
// RequestInterval apart, until ctx (the session's context) ends. parent is
// the context of Run: when it ended, the writer says goodbye with a close
// frame. The caller closes conn when it returns, which ends the reader.
func (s *session) writeLoop(parent, ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := s.b.cfg.Now()
		if err := s.expire(now); err != nil {
			return err
		}
		wait := s.paceWait()
		if wait <= 0 {
			f, ok := s.next(now)
			if ok {
				if err := s.send(f); err != nil {
					return err
				}
				continue
			}
			wait = s.nextDeadline(now)
		}
		var tc <-chan time.Time
		if wait >= 0 {
			timer.Reset(wait)
			tc = timer.C
		}
		select {
		case <-ctx.Done():
			if parent.Err() != nil || s.sendClose.Load() {
				s.goodbye()
			}
			return nil
		case <-s.wake:
		case <-s.b.wake:
		case <-tc:
		}
	}
}

// paceWait returns how long the next frame must wait to keep
// RequestInterval after the previous one.
func (s *session) paceWait() time.Duration {
	if s.last.IsZero() {
		return 0
	}
	return time.Until(s.last.Add(s.b.cfg.RequestInterval))
}

// goodbye sends a normal-closure close frame, still respecting the pacing.
func (s *session) goodbye() {
	if w := s.paceWait(); w > 0 {
		time.Sleep(w)
	}
	if err := s.send(outFrame{closeCode: ws.StatusNormalClosure}); err != nil {
		s.log.Debug("send close frame", "err", err)
	}
}

// send writes one frame.
func (s *session) send(f outFrame) error {
	p, err := f.compile()
	if err != nil {
		return err
	}
	timeout := writeTimeout
	if f.closeCode != 0 {
		timeout = closeTimeout // best effort: never hold up a shutdown
	}
	if err := s.conn.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return fmt.Errorf("set write deadline: %w", err)
	}
	_, err = s.conn.Write(p)
	s.last, s.lastWasPong = time.Now(), f.isPong
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if f.req != nil {
		s.log.Debug("sent request", "method", f.req.Method, "id", f.req.ID, "streams", len(f.req.Params))
	}
	return nil
}

// next returns the frame to send now, if any. A due pong goes first, unless
// the previous frame was a pong too and a request is waiting: pongs jump
// the queue but cannot starve it (a ping flood gets every other slot; only
// the newest ping is answered).
func (s *session) next(now time.Time) (outFrame, bool) {
	if !s.lastWasPong {
		if f, ok := s.takePong(); ok {
			return f, true
		}
	}
	if req := s.diff(now); req != nil {
		return outFrame{req: req}, true
	}
	return s.takePong()
}

func (s *session) takePong() (outFrame, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.pongDue {
		return outFrame{}, false
	}
	p := s.pong
	s.pong, s.pongDue = nil, false
	return outFrame{isPong: true, pong: p}, true
}

// diff compares the desired set with the connection's streams and returns
// the next request to send, or nil. Unsubscribes go first. It registers the
// request as pending and moves its streams to the in-flight states, so the
// same change is never requested twice.
func (s *session) diff(now time.Time) *request {
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	b.pruneLocked(now)
	if len(s.pending) >= maxPending {
		return nil
	}
	wanted := func(name string) bool {
		d := b.desired[name]
		return d != nil && d.failed == ""
	}
	var names []string
	for name, st := range s.streams {
		if (st.state == stateSubscribed || st.state == stateUncertain) && !wanted(name) {
			names = append(names, name)
		}
	}
	if len(names) > 0 {
		return s.requestLocked(methodUnsubscribe, names, now)
	}
	room := b.cfg.MaxStreams - (len(s.streams) - s.tombstones)
	for name, d := range b.desired {
		st := s.streams[name]
		if st != nil && st.state != stateUncertain && st.state != stateGone {
			continue
		}
		if sym := d.stream.Symbol; sym != "" && (d.failed == "" || d.noSymbol) {
			// Re-checked on every diff: a symbol may be listed later.
			known, _ := b.symbols.has(sym)
			d.noSymbol = !known
			d.failed = ""
			if !known {
				d.failed = fmt.Sprintf("unknown symbol %q", sym)
			}
		}
		if d.failed != "" {
			continue
		}
		if st == nil || st.state == stateGone {
			if room <= 0 {
				continue
			}
			room--
		}
		names = append(names, name)
	}
	if len(names) > 0 {
		return s.requestLocked(methodSubscribe, names, now)
	}
	return nil
}

// requestLocked builds a request for up to MaxParams of names and records
// it as pending. The caller holds b.mu and s.mu.
func (s *session) requestLocked(m method, names []string, now time.Time) *request {
	slices.Sort(names)
	if len(names) > s.b.cfg.MaxParams {
		names = names[:s.b.cfg.MaxParams]
	}
	id := s.b.nextID.Add(1)
	p := &pendingReq{method: m, names: names, deadline: now.Add(s.b.cfg.ReplyTimeout)}
	for _, name := range names {
		st := s.streams[name]
		switch {
		case st == nil:
			st = &sessStream{key: exchangeBinance + ":" + name}
			s.streams[name] = st
		case st.state == stateGone:
			s.tombstones--
			st.resumed = true
		}
		if st.retried {
			p.retry = true
		}
		if m == methodSubscribe {
			st.state = stateSubPending
		} else {
			st.state = stateUnsubPending
		}
	}
	s.pending[id] = p
	return &request{Method: m.String(), Params: names, ID: id}
}

// expire handles requests whose reply is overdue: their streams become
// uncertain, so the next diff requests them again. A retry that times out
// too ends the connection.
func (s *session) expire(now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, p := range s.pending {
		if now.Before(p.deadline) {
			continue
		}
		if p.retry {
			return fmt.Errorf("%w: %s id %d (a retry)", ErrReplyTimeout, p.method, id)
		}
		delete(s.pending, id)
		for _, name := range p.names {
			if st := s.streams[name]; st != nil {
				st.state, st.retried = stateUncertain, true
			}
		}
		s.log.Warn("reply timeout, retrying", "method", p.method.String(), "id", id, "streams", len(p.names))
	}
	return nil
}

// nextDeadline returns the time until the earliest reply deadline or
// linger expiry, or -1 if there is none.
func (s *session) nextDeadline(now time.Time) time.Duration {
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	var earliest time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (earliest.IsZero() || t.Before(earliest)) {
			earliest = t
		}
	}
	for _, p := range s.pending {
		consider(p.deadline)
	}
	for _, d := range b.desired {
		consider(d.removeAt)
	}
	if earliest.IsZero() {
		return -1
	}
	return max(earliest.Sub(now), time.Millisecond)
}

// ---- reader ----

// readLoop reads frames until the connection fails. It answers pings
// through the writer, publishes events and matches replies.
func (s *session) readLoop(ctx context.Context) error {
	cfg := &s.b.cfg
	rd := wsutil.Reader{
		Source:         s.src,
		State:          ws.StateClientSide,
		CheckUTF8:      true, // Data goes to browsers as text frames
		MaxFrameSize:   cfg.MaxMessageSize,
		MaxMessageSize: cfg.MaxMessageSize,
		OnIntermediate: s.control, // pings inside fragmented messages
	}
	var buf bytes.Buffer
	var deadlineSet time.Time
	for {
		if now := time.Now(); now.Sub(deadlineSet) >= cfg.IdleTimeout/16 {
			if err := s.conn.SetReadDeadline(now.Add(cfg.IdleTimeout)); err != nil {
				return fmt.Errorf("set read deadline: %w", err)
			}
			deadlineSet = now
		}
		h, err := rd.NextFrame()
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if h.OpCode.IsControl() {
			if err := s.control(h, &rd); err != nil {
				return err
			}
			continue
		}
		buf.Reset()
		if _, err := buf.ReadFrom(&rd); err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if h.OpCode != ws.OpText {
			s.log.Debug("ignored binary message", "bytes", buf.Len())
			continue
		}
		if err := s.handle(ctx, buf.Bytes()); err != nil {
			return err
		}
		if buf.Cap() > 1<<20 {
			buf = bytes.Buffer{} // do not pin a rare huge message's buffer
		}
	}
}

// control handles a control frame whose payload r yields.
func (s *session) control(h ws.Header, r io.Reader) error {
	p, err := io.ReadAll(io.LimitReader(r, 125))
	if err != nil {
		return fmt.Errorf("read control frame: %w", err)
	}
	switch h.OpCode {
	case ws.OpPing:
		// Answer the newest ping only (RFC 6455 §5.5.3 allows it); the
		// payload is copied into the pong by the writer.
		s.mu.Lock()
		s.pong, s.pongDue = p, true
		s.mu.Unlock()
		s.signal()
	case ws.OpClose:
		code, reason := ws.ParseCloseFrameData(p)
		if code.Empty() {
			code = ws.StatusNoStatusRcvd
		}
		s.sendClose.Store(true)
		return wsutil.ClosedError{Code: code, Reason: reason}
	}
	return nil
}

// handle processes one text message.
func (s *session) handle(ctx context.Context, p []byte) error {
	in, err := parseInbound(p)
	if err != nil {
		s.log.Debug("ignored message", "err", err, "bytes", len(p))
		return nil
	}
	if in.isReply {
		s.reply(in)
		return nil
	}
	if string(in.stream) == "!serverShutdown" {
		s.sendClose.Store(true)
		return ErrServerShutdown
	}
	s.mu.Lock()
	st := s.streams[string(in.stream)]
	if st == nil || st.state == stateGone {
		s.mu.Unlock()
		if s.dropped++; s.dropped == 1 {
			s.log.Debug("dropped event of a stream not subscribed", "stream", string(in.stream))
		}
		return nil
	}
	st.seq++
	seq, key, gap := st.seq, st.key, st.resumed || (st.seq == 1 && s.forgot)
	st.resumed = false
	s.mu.Unlock()

	if seq == 1 {
		// First event of the stream on this connection: a gap if it had
		// flowed before (on an earlier connection) while it stayed desired.
		s.b.mu.Lock()
		if d := s.b.desired[string(in.stream)]; d != nil {
			gap = gap || d.flowed
			d.flowed = true
		}
		s.b.mu.Unlock()
	}
	err = s.b.cfg.Publisher.Publish(ctx, hub.Message{Stream: key, Seq: seq, Gap: gap, Data: in.data})
	switch {
	case err != nil && ctx.Err() == nil:
		if s.publishFailed++; s.publishFailed == 1 {
			s.publishErr = err
			s.log.Warn("publish failing", "err", err)
		}
	case err == nil && s.publishFailed > 0:
		s.log.Info("publish recovered", "failed", s.publishFailed, "first_err", s.publishErr)
		s.publishFailed, s.publishErr = 0, nil
	}
	return nil
}

// reply matches a reply to its pending request.
func (s *session) reply(in inbound) {
	if !in.idOK {
		s.log.Warn("exchange error without request id", "code", in.err.Code, "reason", in.err.Msg)
		return
	}
	b := s.b
	b.mu.Lock()
	s.mu.Lock()
	p := s.pending[in.id]
	if p == nil {
		s.mu.Unlock()
		b.mu.Unlock()
		s.log.Debug("reply to unknown request", "id", in.id)
		return
	}
	delete(s.pending, in.id)
	for _, name := range p.names {
		st := s.streams[name]
		if st == nil {
			continue
		}
		st.retried = false
		switch {
		case in.err != nil:
			s.goneLocked(name, st)
			if d := b.desired[name]; d != nil && p.method == methodSubscribe {
				d.failed = fmt.Sprintf("exchange error %d: %s", in.err.Code, in.err.Msg)
			}
		case p.method == methodSubscribe && st.state == stateSubPending:
			st.state = stateSubscribed
		case p.method == methodUnsubscribe && st.state == stateUnsubPending:
			s.goneLocked(name, st)
		}
	}
	s.mu.Unlock()
	b.mu.Unlock()
	if in.err != nil {
		s.log.Warn("exchange rejected request", "method", p.method.String(), "id", in.id,
			"code", in.err.Code, "reason", in.err.Msg, "streams", len(p.names))
	} else {
		s.log.Debug("request confirmed", "method", p.method.String(), "id", in.id, "streams", len(p.names))
	}
	s.signal()
}
