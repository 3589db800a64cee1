package upstream

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// maxKeptBuffer is the read buffer capacity kept between messages; a rare
// larger message's buffer is let go.
const maxKeptBuffer = 1 << 20

// readLoop reads frames until the connection fails. It routes events,
// matches replies, notes pings for the writer, and tells the shard about
// a shutdown announcement. Every message is read into one reused buffer:
// in steady state routing allocates nothing.
func (s *session) readLoop(ctx context.Context) error {
	cfg := &s.f.cfg
	rd := s.newReader(s.src)
	var buf bytes.Buffer
	var deadlineSet time.Time
	for {
		if now := time.Now(); now.Sub(deadlineSet) >= cfg.IdleTimeout/16 {
			if err := s.conn.SetReadDeadline(now.Add(cfg.IdleTimeout)); err != nil {
				return fmt.Errorf("set read deadline: %w", err)
			}
			deadlineSet = now
		}
		if err := s.readOne(ctx, rd, &buf); err != nil {
			return err
		}
		if s.src.Buffered() == 0 {
			// The burst this read brought is published: the hub may write it
			// out (one system call per browser for the whole burst).
			s.f.flush(ctx)
		}
	}
}

// newReader returns the connection's message reader over src.
func (s *session) newReader(src io.Reader) *wsutil.Reader {
	return &wsutil.Reader{
		Source:         src,
		State:          ws.StateClientSide,
		CheckUTF8:      false, // checked per message in readOne, faster
		MaxFrameSize:   s.f.cfg.MaxMessageSize,
		MaxMessageSize: s.f.cfg.MaxMessageSize,
		OnIntermediate: s.control, // pings inside fragmented messages
	}
}

// readOne reads and handles one frame: a control frame, or a message
// read into buf.
func (s *session) readOne(ctx context.Context, rd *wsutil.Reader, buf *bytes.Buffer) error {
	h, err := rd.NextFrame()
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if h.OpCode.IsControl() {
		return s.control(h, rd)
	}
	buf.Reset()
	if _, err := buf.ReadFrom(rd); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if h.OpCode != ws.OpText {
		s.log.Debug("ignored binary message", "bytes", buf.Len())
		return nil
	}
	// Data goes to browsers in text frames: it must be UTF-8 (RFC 6455
	// §8.1). utf8.Valid has an ASCII fast path that wsutil's per-byte
	// check lacks.
	if !utf8.Valid(buf.Bytes()) {
		return fmt.Errorf("read: %w", wsutil.ErrInvalidUTF8)
	}
	kind := s.route(ctx, buf.Bytes())
	s.m.in.add(kind, buf.Len())
	if buf.Cap() > maxKeptBuffer {
		*buf = bytes.Buffer{}
	}
	return nil
}

// control handles a control frame whose payload r yields.
func (s *session) control(h ws.Header, r io.Reader) error {
	var b [125]byte
	n, err := io.ReadFull(io.LimitReader(r, 125), b[:])
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return fmt.Errorf("read control frame: %w", err)
	}
	p := b[:n]
	switch h.OpCode {
	case ws.OpPing:
		// Answer the newest ping only (RFC 6455 §5.5.3 allows it), with its
		// payload, through the writer: it is the only one writing.
		s.mu.Lock()
		s.pong, s.pongDue = append(s.pong[:0], p...), true
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

// route handles one text message. Events go to their stream by the
// dialect's parse and a map lookup, neither of which allocates; p is
// only valid during the call. It returns the stream type the message
// went to (an index into the dialect's Kinds), or -1 for any other
// message (for the metrics).
func (s *session) route(ctx context.Context, p []byte) int {
	in, err := s.f.d.Parse(p)
	if err != nil {
		s.malformed(err, len(p))
		return -1
	}
	switch in.Kind {
	case InEvent:
	case InReply:
		s.reply(in)
		return -1
	case InShutdown:
		s.log.Info("exchange announced a shutdown")
		select {
		case s.sh.events <- sessionEvent{s: s, shutdown: true}:
		default:
		}
		return -1
	default: // InPong, InIgnore: the read deadline already moved
		return -1
	}
	s.mu.Lock()
	var st *streamState
	if ss := s.subs[string(in.Stream)]; ss != nil {
		st = ss.st
	}
	s.mu.Unlock()
	if st == nil {
		if s.dropped++; s.dropped == 1 {
			s.log.Debug("dropped event of a stream not subscribed", "stream", string(in.Stream))
		}
		return -1
	}
	if !s.delivered.Load() {
		s.delivered.Store(true)
	}
	st.deliver(ctx, s, in.Data)
	return st.stream.Kind
}

// malformedLogEvery spaces the logs of malformed messages on one
// connection.
const malformedLogEvery = 10 * time.Second

// malformed counts a message that could not be parsed, which is dropped,
// and logs it at most once per malformedLogEvery: an exchange sending
// garbage must not flood the log.
func (s *session) malformed(err error, n int) {
	s.m.malformed.Add(1)
	s.malformedQuiet++
	if now := time.Now(); s.malformedLogged.IsZero() || now.Sub(s.malformedLogged) >= malformedLogEvery {
		s.log.Debug("dropped malformed message", "err", err, "bytes", n, "dropped", s.malformedQuiet)
		s.malformedLogged, s.malformedQuiet = now, 0
	}
}

// answer is the part of a pending request one reply answers.
type answer struct {
	id    int64
	p     *pendingReq
	names []string
}

// answersLocked returns what in answers: its request (by id), the named
// streams of it, or, without an id, the requests its streams are
// pending in. The caller holds s.mu.
func (s *session) answersLocked(in Inbound) []answer {
	if in.HasID {
		p := s.pending[in.ID]
		if p == nil {
			return nil
		}
		if len(in.Streams) == 0 {
			return []answer{{id: in.ID, p: p, names: p.names}}
		}
		a := answer{id: in.ID, p: p}
		for _, name := range in.Streams {
			if ss := s.subs[name]; ss != nil && ss.req == in.ID {
				a.names = append(a.names, name)
			}
		}
		return []answer{a}
	}
	var out []answer
	for _, name := range in.Streams {
		ss := s.subs[name]
		if ss == nil || ss.req == 0 || s.pending[ss.req] == nil {
			continue
		}
		i := 0
		for i < len(out) && out[i].id != ss.req {
			i++
		}
		if i == len(out) {
			out = append(out, answer{id: ss.req, p: s.pending[ss.req]})
		}
		out[i].names = append(out[i].names, name)
	}
	return out
}

// reply matches a reply to its pending request: all of it, or (for
// exchanges that answer stream by stream) the streams it names; the
// request stays pending until each of its streams is answered. A refused
// SUBSCRIBE fails its streams (their Err messages are published by the
// supervisor), except "too many subscriptions" (ReplyError.Full), which
// moves them to other shards.
func (s *session) reply(in Inbound) {
	if !in.HasID && len(in.Streams) == 0 {
		if in.Err != nil {
			s.log.Warn("exchange error without request id", "code", in.Err.Code, "reason", in.Err.Msg)
		}
		return
	}
	f := s.f
	f.mu.Lock()
	s.mu.Lock()
	answers := s.answersLocked(in)
	if len(answers) == 0 {
		s.mu.Unlock()
		f.mu.Unlock()
		s.log.Debug("reply to unknown request", "id", in.ID, "streams", len(in.Streams))
		return
	}
	var off []*streamState // left the connection
	shed := false
	for _, a := range answers {
		p := a.p
		whole := len(in.Streams) == 0
		if whole {
			p.open = 0
		}
		full := in.Err != nil && p.op == OpSubscribe && in.Err.Full
		for _, name := range a.names {
			ss := s.subs[name]
			if ss == nil || (!whole && ss.req != a.id) {
				continue
			}
			if !whole {
				p.open--
			}
			ss.retried, ss.req = false, 0
			switch {
			case in.Err != nil:
				delete(s.subs, name)
				off = append(off, ss.st)
				if !full && p.op == OpSubscribe && ss.st.wanted && f.streams[name] == ss.st {
					f.failLocked(ss.st, fmt.Sprintf("exchange refused the stream: %s (code %s)", in.Err.Msg, in.Err.Code))
				}
			case p.op == OpSubscribe && ss.state == stateSubPending:
				ss.state = stateSubscribed
			case p.op == OpUnsubscribe && ss.state == stateUnsubPending:
				delete(s.subs, name)
				off = append(off, ss.st)
			}
		}
		if p.open <= 0 {
			delete(s.pending, a.id)
			if p.op == OpSubscribe {
				s.subPending--
			}
			s.m.observeReply(p.sent)
		}
		if full && s.fullLocked(a.names) {
			shed = true
		}
		if in.Err != nil {
			s.log.Warn("exchange refused request", "method", p.op.String(), "id", a.id,
				"code", in.Err.Code, "reason", in.Err.Msg, "streams", len(a.names))
		} else {
			s.log.Debug("request confirmed", "method", p.op.String(), "id", a.id, "streams", len(a.names))
		}
	}
	s.mu.Unlock()
	if shed {
		for _, x := range s.sh.ep.shards {
			f.shedLocked(x)
		}
	}
	f.mu.Unlock()
	for _, st := range off {
		st.pmu.Lock()
		if st.ho != nil && st.ho.to == s {
			st.ho = nil
		}
		if st.src == s {
			st.src = nil
			if st.seq > 0 {
				st.gapNext = true // events were missed while it was off
			}
		}
		st.pmu.Unlock()
	}
	s.signal()
}

// fullLocked handles "too many subscriptions" for a SUBSCRIBE of names:
// the connection holds fewer streams than the shard thought it may.
// Requests are halved until a single stream is refused; then the
// connection's count is the exchange's limit, which becomes the limit of
// every shard of the endpoint; it reports whether streams beyond it must
// move to other shards (shedLocked). The caller holds f.mu and s.mu.
func (s *session) fullLocked(names []string) bool {
	f, ep := s.f, s.sh.ep
	if n := len(names); n > 1 {
		s.batchCap = max(1, n/2)
		return false
	}
	held := 0
	for _, ss := range s.subs {
		if ss.state == stateSubscribed || ss.state == stateSubPending {
			held++
		}
	}
	if held == 0 {
		// Not even one stream fits: nothing to learn, the stream fails.
		if st := f.streams[names[0]]; st != nil && st.wanted {
			f.failLocked(st, "exchange refused the stream: too many subscriptions")
		}
		return false
	}
	if held < ep.maxStreams {
		s.log.Warn("exchange stream limit per connection is lower than configured",
			"limit", held, "configured", f.cfg.MaxStreams)
		ep.maxStreams = held
	}
	s.batchCap = 0
	for _, x := range ep.shards {
		x.limit = min(x.limit, ep.maxStreams)
	}
	return true
}

// shedLocked moves streams off sh while it holds more than its limit,
// taking those not on its connection. The caller holds f.mu only.
func (f *Feed) shedLocked(sh *shard) {
	excess := len(sh.streams) - sh.limit
	if excess <= 0 {
		return
	}
	var move []*streamState
	if cur := sh.cur; cur != nil {
		cur.mu.Lock()
	}
	for name, st := range sh.streams {
		if len(move) == excess {
			break
		}
		if cur := sh.cur; cur != nil && cur.subs[name] != nil {
			continue
		}
		move = append(move, st)
	}
	if cur := sh.cur; cur != nil {
		cur.mu.Unlock()
	}
	for _, st := range move {
		f.releaseLocked(st)
	}
}
