package upstream

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/time/rate"
)

const (
	// maxPending bounds the requests awaiting a reply on one connection.
	maxPending = 16
	// writeTimeout bounds a single frame write.
	writeTimeout = 10 * time.Second
	// closeTimeout bounds writing the close frame on the way out.
	closeTimeout = time.Second
)

// errSessionClosed ends a connection the gateway closed on purpose: its
// rotation is done, or its shard has no streams left.
var errSessionClosed = errors.New("upstream: connection closed by the gateway")

// session is one upstream connection: a reader goroutine that routes
// events, matches replies and notes pings, and a writer goroutine that is
// the only code writing to the socket. Both run inside run. Only the
// shard's current session subscribes (diff); one being replaced only
// answers pings until it is closed.
type session struct {
	f           *Feed
	sh          *shard
	id          uint64
	conn        net.Conn
	src         *bufio.Reader // the Dialer's bufio.Reader over conn, or a new one
	br          *bufio.Reader // returned to gobwas' pool after the session
	log         *slog.Logger
	url         string
	urlStreams  int
	connectedAt time.Time     // monotonic
	wake        chan struct{} // capacity 1: a reply, ping, change or close request
	sendClose   atomic.Bool   // the exchange closed: echo a close frame
	closeReq    atomic.Bool   // the shard asks the writer to close the connection
	delivered   atomic.Bool   // an event of a subscribed stream arrived: the connection worked
	carried     atomic.Bool   // a stream was on the connection at some time (else it had nothing to deliver)
	m           *feedMetrics  // f's: request round trips, messages read

	// Writer-only.
	last        time.Time // when the last frame went out (monotonic clock)
	lastWasPong bool
	budget      *rate.Limiter // SUBSCRIBE/UNSUBSCRIBE requests (MaxRequests per RequestWindow); nil: unlimited
	hb          Heartbeat     // the dialect's client heartbeat

	// Reader-only.
	dropped         int       // events of streams this connection does not carry
	malformedLogged time.Time // when a malformed message was last logged
	malformedQuiet  int       // malformed messages since, not logged

	// mu guards the following fields.
	mu         sync.Mutex
	subs       map[string]*sessStream // streams subscribed or with a request in flight
	pending    map[int64]*pendingReq  // requests awaiting a reply (some of their streams unanswered), ≤ maxPending
	pong       []byte                 // payload of the newest unanswered ping
	pongDue    bool
	batchCap   int // params per SUBSCRIBE while probing the exchange's stream limit; 0: MaxParams
	subPending int // SUBSCRIBE requests in flight
}

// subState is where a stream stands on one connection.
type subState uint8

const (
	stateSubPending   subState = iota + 1 // SUBSCRIBE sent, no reply yet
	stateSubscribed                       // the exchange confirmed it (or it came in the URL)
	stateUnsubPending                     // UNSUBSCRIBE sent, no reply yet
	stateUncertain                        // the request timed out: re-diff
)

// sessStream is a stream on one connection.
type sessStream struct {
	st      *streamState
	state   subState
	req     int64 // the request in flight for it, awaiting its answer; 0: none
	retried bool  // its request already timed out once
}

// pendingReq is a request awaiting its reply.
type pendingReq struct {
	op       Op
	names    []string
	open     int // names not answered yet (exchanges may answer stream by stream)
	deadline time.Time
	retry    bool      // carries streams whose previous request timed out
	sent     time.Time // when it was built, right before it is written (monotonic)
}

func newSession(sh *shard, id uint64, conn net.Conn, src, br *bufio.Reader) *session {
	return &session{
		f:           sh.f,
		sh:          sh,
		id:          id,
		conn:        conn,
		src:         src,
		br:          br,
		log:         sh.log.With("conn", id),
		connectedAt: time.Now(),
		wake:        make(chan struct{}, 1),
		m:           sh.f.metrics(),
		hb:          sh.f.d.Heartbeat(),
		subs:        make(map[string]*sessStream),
		pending:     make(map[int64]*pendingReq),
		budget:      requestBudget(sh.f.cfg.MaxRequests, sh.f.cfg.RequestWindow),
	}
}

// requestBudget returns the token bucket that keeps a connection's
// requests within max per rolling window, or nil when max is 0. It holds
// burst = max/4 tokens (at least 1) and refills the other max-burst over
// the window: any window of that length sees at most burst + (max-burst)
// = max requests.
func requestBudget(max int, window time.Duration) *rate.Limiter {
	if max <= 0 || window <= 0 {
		return nil
	}
	burst := cmp.Or(max/4, 1)
	return rate.NewLimiter(rate.Limit(float64(max-burst)/window.Seconds()), burst)
}

// budgetWait returns how long until the request budget holds a request
// (0: now).
func (s *session) budgetWait() time.Duration {
	if s.budget == nil {
		return 0
	}
	missing := 1 - s.budget.Tokens()
	if missing <= 0 {
		return 0
	}
	if s.budget.Limit() <= 0 {
		return time.Hour // a budget that never refills (max 1): no more requests
	}
	// A reservation cannot be asked instead: cancelling one that was due
	// at once does not give its token back.
	return time.Duration(missing / float64(s.budget.Limit()) * float64(time.Second))
}

// requestDue returns the next request to send, as diff does, when the
// request budget holds one, and spends it.
func (s *session) requestDue(now time.Time) (*request, []*streamState) {
	if s.budgetWait() > 0 {
		return nil, nil
	}
	req, subscribing := s.diff(now)
	if req == nil || s.budget == nil {
		return req, subscribing
	}
	s.budget.Allow() // takes the token budgetWait saw: the writer is its only spender
	if s.budget.Tokens() < 1 {
		s.log.Warn("request budget spent: further subscribe requests on this connection wait for it to refill",
			"max", s.f.cfg.MaxRequests, "window", s.f.cfg.RequestWindow, "wait", s.budgetWait())
	}
	return req, subscribing
}

// run serves the connection until it fails, it is asked to close, or ctx
// ends, and returns why (nil when ctx ended). Both goroutines have ended
// when it returns, and conn is closed. A panic in either ends the
// connection with an error wrapping errPanic.
func (s *session) run(ctx context.Context) error {
	// The first goroutine to fail sets the cause; the writer records its
	// error before closing conn, so the reader's "use of closed network
	// connection" that follows never hides why the connection ended.
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	wg.Go(func() { cancel(s.guard("reader", func() error { return s.readLoop(sctx) })) })
	wg.Go(func() {
		cancel(s.guard("writer", func() error { return s.writeLoop(ctx, sctx) }))
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

// requestClose asks the writer to close the connection with 1000.
func (s *session) requestClose() {
	s.closeReq.Store(true)
	s.signal()
}

// streamList returns the streams on the connection.
func (s *session) streamList() []*streamState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*streamState, 0, len(s.subs))
	for _, ss := range s.subs {
		out = append(out, ss.st)
	}
	return out
}

// carries reports whether the exchange confirmed the stream name on s.
func (s *session) carries(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.subs[name]
	return ss != nil && ss.state == stateSubscribed
}

// counts returns the confirmed and the in-flight streams.
func (s *session) counts() (subscribed, pending int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ss := range s.subs {
		if ss.state == stateSubscribed {
			subscribed++
		} else {
			pending++
		}
	}
	return subscribed, pending
}

// ---- writer ----

// writeLoop sends pongs and subscription requests, spaced at least
// RequestInterval apart, until ctx (the session's context) ends or the
// shard asks for a close. parent is the context of Run: when it ended,
// the writer says goodbye with a close frame. The caller closes conn when
// it returns, which ends the reader.
func (s *session) writeLoop(parent, ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := s.f.cfg.Now()
		if err := s.expire(now); err != nil {
			return err
		}
		wait := s.paceWait()
		if wait <= 0 {
			if s.closeReq.Load() {
				s.goodbye() // no pong first: the connection is going
				return errSessionClosed
			}
			f, ok := s.next(ctx, now)
			if ok {
				if err := s.send(f); err != nil {
					return err
				}
				continue
			}
			wait = s.nextDeadline(now)
			if hb := s.heartbeatWait(); hb >= 0 && (wait < 0 || hb < wait) {
				wait = max(hb, time.Millisecond)
			}
			if bw := s.budgetWait(); bw > 0 && (wait < 0 || bw < wait) {
				wait = bw // a request may be waiting for the budget
			}
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
	return time.Until(s.last.Add(s.f.cfg.RequestInterval))
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
	p, err := f.compile(s.f.d)
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
		s.log.Debug("sent request", "method", f.req.op.String(), "id", f.req.id, "streams", len(f.req.names))
	}
	return nil
}

// next returns the frame to send now, if any. A due pong goes first, unless
// the previous frame was a pong too and a request is waiting: pongs jump
// the queue but cannot starve it (a ping flood gets every other slot; only
// the newest ping is answered).
func (s *session) next(ctx context.Context, now time.Time) (outFrame, bool) {
	if !s.lastWasPong {
		if f, ok := s.takePong(); ok {
			return f, true
		}
	}
	// A spent request budget holds requests (the writer wakes when it
	// refills); pongs and heartbeats go on.
	if req, subscribing := s.requestDue(now); req != nil {
		// Streams another connection publishes are handed over: set up
		// before the request goes out, hence before their first event.
		deadline := time.Now().Add(s.f.cfg.HandoverTimeout)
		for _, st := range subscribing {
			st.beginHandover(s, deadline)
		}
		return outFrame{req: req}, true
	}
	if f, ok := s.takePong(); ok {
		return f, true
	}
	if s.heartbeatWait() == 0 {
		return outFrame{heartbeat: s.hb.Payload}, true
	}
	return outFrame{}, false
}

// heartbeatWait returns how long until the dialect's heartbeat is due
// (0: now), or -1 when the dialect has none. It is due after Every
// without any frame sent.
func (s *session) heartbeatWait() time.Duration {
	if s.hb.Every <= 0 {
		return -1
	}
	last := s.last
	if last.IsZero() {
		last = s.connectedAt
	}
	return max(time.Until(last.Add(s.hb.Every)), 0)
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

// diff compares the shard's streams with the connection's and returns the
// next request to send, or nil, and for a SUBSCRIBE its streams.
// Unsubscribes go first. It registers the request as pending and moves
// its streams to the in-flight states, so the same change is never
// requested twice. Streams that left the shard and are off the connection
// are released; streams whose symbol no longer trades fail.
func (s *session) diff(now time.Time) (*request, []*streamState) {
	f, sh := s.f, s.sh
	f.mu.Lock()
	defer f.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	f.pruneLocked(now)
	if sh.cur != s || len(s.pending) >= maxPending {
		return nil, nil
	}
	var names []string
	for name, ss := range s.subs {
		st := ss.st
		keep := st.wanted && st.failed == "" && st.shard == sh && f.streams[name] == st
		if keep && st.resub && ss.st == st {
			// Resubscribe: a subscribed stream goes off the connection
			// (its flag stays until the unsubscribe is sent: a request
			// takes MaxParams names at most), then comes back through
			// the subscribe below. One on its way on or off gets a fresh
			// subscribe anyway.
			switch ss.state {
			case stateSubscribed:
				keep = false
			case stateSubPending, stateUnsubPending:
				st.resub = false
			}
		}
		if !keep && (ss.state == stateSubscribed || ss.state == stateUncertain) {
			names = append(names, name)
		}
	}
	if len(names) > 0 {
		return s.requestLocked(OpUnsubscribe, names, now), nil
	}
	var subs []*streamState
	for name, st := range sh.streams {
		ss := s.subs[name]
		if !st.wanted || st.failed != "" {
			if ss == nil {
				f.releaseLocked(st) // off the connection: leaves the shard
			}
			continue
		}
		if ss != nil && (ss.st != st || ss.state != stateUncertain) {
			continue // on the connection already (or an older state of it is leaving)
		}
		if sym := st.stream.Symbol; sym != "" {
			if known, _ := f.symbols.has(sym); !known {
				// A cluster's owner gets streams other nodes validated: a
				// symbol listed since the last refresh asks for one.
				f.symbols.noteMiss()
				f.failLocked(st, fmt.Sprintf("unknown symbol %q", sym))
				continue
			}
		}
		st.resub = false // a fresh subscribe brings what it asked for
		subs = append(subs, st)
	}
	if len(subs) == 0 || (s.batchCap > 0 && s.subPending > 0) {
		return nil, nil
	}
	slices.SortFunc(subs, func(a, b *streamState) int { return strings.Compare(a.name, b.name) })
	limit := f.cfg.MaxParams
	if s.batchCap > 0 {
		limit = min(limit, s.batchCap)
	}
	if len(subs) > limit {
		subs = subs[:limit]
	}
	return s.requestLocked(OpSubscribe, sortedNames(subs), now), subs
}

// requestLocked builds a request for up to MaxParams of names and records
// it as pending. The caller holds f.mu and s.mu.
func (s *session) requestLocked(op Op, names []string, now time.Time) *request {
	slices.Sort(names)
	if len(names) > s.f.cfg.MaxParams {
		names = names[:s.f.cfg.MaxParams]
	}
	id := s.f.nextID.Add(1)
	p := &pendingReq{op: op, names: names, open: len(names), deadline: now.Add(s.f.cfg.ReplyTimeout), sent: time.Now()}
	for _, name := range names {
		ss := s.subs[name]
		if ss == nil {
			ss = &sessStream{st: s.f.streams[name]}
			s.subs[name] = ss
			s.carried.Store(true)
		}
		if ss.retried {
			p.retry = true
		}
		ss.req = id
		if op == OpSubscribe {
			ss.state = stateSubPending
		} else {
			ss.state = stateUnsubPending
		}
	}
	if op == OpSubscribe {
		s.subPending++
	}
	s.pending[id] = p
	return &request{op: op, names: names, id: id}
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
			return fmt.Errorf("%w: %s id %d (a retry)", ErrReplyTimeout, p.op, id)
		}
		delete(s.pending, id)
		if p.op == OpSubscribe {
			s.subPending--
		}
		for _, name := range p.names {
			if ss := s.subs[name]; ss != nil && ss.req == id {
				ss.state, ss.retried, ss.req = stateUncertain, true, 0
			}
		}
		s.log.Warn("reply timeout, retrying", "method", p.op.String(), "id", id, "streams", p.open)
	}
	return nil
}

// nextDeadline returns the time until the earliest reply deadline or
// linger expiry, or -1 if there is none.
func (s *session) nextDeadline(now time.Time) time.Duration {
	f := s.f
	f.mu.Lock()
	defer f.mu.Unlock()
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
	if s.sh.cur == s {
		for st := range f.lingering {
			if st.shard == s.sh {
				consider(st.removeAt)
			}
		}
	}
	if earliest.IsZero() {
		return -1
	}
	return max(earliest.Sub(now), time.Millisecond)
}

// logURL shortens a long connection URL for the log: the streams it
// carries (which may be a thousand names) are counted separately, so the
// query is cut after its first '='.
func logURL(u string) string {
	q := strings.IndexByte(u, '?')
	if q < 0 || len(u) <= 200 {
		return u
	}
	if e := strings.IndexByte(u[q:], '='); e >= 0 {
		return u[:q+e+1] + "…"
	}
	return u[:q+1] + "…"
}
