package upstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/marketgate/marketgate/internal/backoff"
	"github.com/marketgate/marketgate/internal/pause"
)

const (
	// stableSession is how long a connection that delivered events (or
	// carried no stream) must have lasted for the reconnect backoff to
	// start over, so the next
	// drop is retried at once. A connection that never worked, or died
	// sooner, keeps the backoff growing: no tight reconnect loop, and the
	// connection-attempt budget bounds the rate regardless.
	stableSession = 2 * time.Second
	// pollInterval is how often a shard checks a rotation for completion.
	pollInterval = 50 * time.Millisecond
	// panicCalm is how long after a recovered panic the restart delay
	// of the next one starts over from BackoffMin.
	panicCalm = time.Minute
	// emptyPoll is how often a shard that may close checks whether it
	// has been empty for Linger.
	emptyPoll = 250 * time.Millisecond
)

// shard is one connection slot of an endpoint: the streams assigned to it
// (at most limit) and the connection carrying them, or two while one
// replaces the other. Its goroutine (run) dials, reconnects, rotates and
// closes; each connection is a [session].
type shard struct {
	f          *Feed
	ep         *endpoint
	id         int
	persistent bool // the endpoint's first shard: never closed for being empty
	log        *slog.Logger
	events     chan sessionEvent // from its sessions

	// Guarded by Feed.mu.
	streams        map[string]*streamState
	limit          int
	cur            *session  // the connection that subscribes; nil while disconnected
	old            *session  // the connection being replaced, during a rotation
	rot            *rotation // the rotation in progress
	started        bool      // its goroutine runs
	noURL          bool      // the exchange refused a URL with streams: subscribe with requests
	state          State
	connectedSince time.Time
	connections    int
	emptySince     time.Time
	restartDelay   time.Duration // before the first dial of the next run, after a panic

	// Its goroutine's only.
	panicBo   backoff.Backoff // spaces restarts after panics
	lastPanic time.Time       // when the last one was recovered
}

// sessionEvent is what a session tells its shard.
type sessionEvent struct {
	s        *session
	ended    bool // the session ended, with err
	err      error
	shutdown bool // the exchange announced it will close the connection
}

// newShardLocked adds a shard to ep; the supervisor starts it.
func (f *Feed) newShardLocked(ep *endpoint) *shard {
	id := ep.nextShard
	ep.nextShard++
	sh := &shard{
		f:       f,
		ep:      ep,
		id:      id,
		log:     f.log.With("endpoint", ep.path, "shard", id),
		events:  make(chan sessionEvent, 8),
		streams: make(map[string]*streamState),
		limit:   ep.maxStreams,
		state:   StateIdle,
		// The lanes of a redundant feed open their connections apart.
		restartDelay: f.laneDelay,
	}
	ep.shards = append(ep.shards, sh)
	f.kickLocked()
	return sh
}

func (sh *shard) addLocked(st *streamState) {
	sh.streams[st.name] = st
	st.shard = sh
	sh.emptySince = time.Time{}
	sh.pokeLocked()
}

// pokeLocked wakes the writer of the connection that subscribes.
func (sh *shard) pokeLocked() {
	if sh.cur != nil {
		sh.cur.signal()
	}
}

// run keeps the shard connected until ctx ends or the shard is closed for
// being empty, and waits for its connections. A panic on its goroutine
// (rotations run there) closes its connections and has the supervisor
// start it again after a backoff.
func (sh *shard) run(ctx context.Context) {
	f := sh.f
	f.mu.Lock()
	delay := sh.restartDelay
	sh.restartDelay = 0
	f.mu.Unlock()
	r := shardRun{
		sh:    sh,
		bo:    backoff.Backoff{Min: f.cfg.BackoffMin, Max: f.cfg.BackoffMax},
		rotBo: backoff.Backoff{Min: f.cfg.BackoffMin, Max: f.cfg.BackoffMax},
		delay: delay,
	}
	defer func() {
		v := recover()
		if v != nil {
			r.abort(f.recovered(sh.log, "shard", v))
		}
		r.stop()
		if v != nil {
			f.mu.Lock()
			f.kickLocked() // started is false now: the supervisor starts it again
			f.mu.Unlock()
		}
	}()
	for ctx.Err() == nil {
		if r.cur == nil {
			if !r.connect(ctx) {
				return
			}
			continue
		}
		timer := time.NewTimer(r.wait())
		select {
		case <-ctx.Done():
		case ev := <-sh.events:
			r.handle(ctx, ev)
		case <-timer.C:
		}
		timer.Stop()
		if ctx.Err() != nil {
			return
		}
		if r.cur != nil && r.rot == nil && !r.closing && !time.Now().Before(r.rotateAt) {
			r.startRotation(ctx)
		}
		if r.rot != nil && !r.rot.closing && r.rotationDue() {
			r.finishRotation(ctx)
		}
		if r.rot == nil && r.closeIfEmpty() {
			return
		}
	}
}

// shardRun is the state of a shard's goroutine.
type shardRun struct {
	sh       *shard
	wg       sync.WaitGroup
	live     int             // sessions whose end is not yet handled
	bo       backoff.Backoff // reconnects
	rotBo    backoff.Backoff // rotation retries
	delay    time.Duration   // before the next dial
	failures int             // attempts and short sessions since the last stable one
	cur      *session
	rot      *rotation
	rotateAt time.Time
	closing  bool // closed for being empty
}

// wait returns how long the loop may sleep before something is due.
func (r *shardRun) wait() time.Duration {
	d := max(time.Until(r.rotateAt), time.Millisecond)
	switch {
	case r.rot != nil:
		return pollInterval
	case !r.sh.persistent:
		return min(d, emptyPoll)
	}
	return d
}

// connect waits out the backoff, dials, and starts the session. It
// returns false when the shard is to end (ctx ended, or it has no streams
// left and may close).
func (r *shardRun) connect(ctx context.Context) bool {
	sh, f := r.sh, r.sh.f
	f.mu.Lock()
	sh.state = StateBackoff
	if r.delay == 0 {
		sh.state = StateConnecting
	}
	f.mu.Unlock()
	if !pause.For(ctx, r.delay) {
		return false
	}
	if r.closeIfEmpty() {
		return false
	}
	s, err := sh.dial(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return false
		}
		r.failures++
		r.delay = r.bo.Next()
		f.mu.Lock()
		f.noteEndLocked(err)
		f.mu.Unlock()
		lvl := slog.LevelDebug
		if r.failures == 1 {
			lvl = slog.LevelWarn
		}
		sh.log.Log(ctx, lvl, "upstream connect failed", "err", err, "retry_in", r.delay, "attempt", r.failures)
		return true
	}
	f.mu.Lock()
	sh.cur = s
	sh.state = StateConnected
	sh.connectedSince = f.cfg.Now()
	if sh.connections++; sh.connections > 1 {
		f.reconnects++
	}
	f.mu.Unlock()
	r.cur = s
	r.rotateAt = s.connectedAt.Add(f.cfg.RotateAfter)
	r.start(ctx, s)
	s.log.Info("upstream connected", "url", logURL(s.url), "url_streams", s.urlStreams)
	return true
}

// start runs s on its own goroutine, which reports its end.
func (r *shardRun) start(ctx context.Context, s *session) {
	r.live++
	r.wg.Go(func() {
		err := s.run(ctx)
		r.sh.events <- sessionEvent{s: s, ended: true, err: err}
	})
	s.signal()
}

// handle reacts to a session's news.
func (r *shardRun) handle(ctx context.Context, ev sessionEvent) {
	sh, f := r.sh, r.sh.f
	if !ev.ended {
		if ev.shutdown && ev.s == r.cur {
			// Rotate now, or right after the rotation in progress.
			ev.s.log.Info("exchange announced a shutdown: rotating now")
			r.rotateAt = time.Now()
		}
		return
	}
	r.live--
	s, err := ev.s, ev.err
	_, closedByExchange := errors.AsType[wsutil.ClosedError](err)
	abrupt := !closedByExchange && !errors.Is(err, errSessionClosed)
	switch {
	case r.rot != nil && s == r.rot.old:
		r.oldEnded(ctx, err, abrupt)
	case r.rot != nil && s == r.rot.nw:
		r.newEnded(ctx, err)
	case s == r.cur:
		r.cur = nil
		f.mu.Lock()
		sh.cur = nil
		sh.connectedSince = time.Time{}
		f.mu.Unlock()
		sh.detach(ctx, s, abrupt)
		r.ended(ctx, s, err)
	default:
		sh.detach(ctx, s, abrupt)
	}
}

// ended records why the shard's only connection ended and picks the delay
// before the next one: none after an abrupt drop (the first retry is at
// once), backoff after a close by the exchange or repeated failures, the
// longest after 1008 "Too many requests".
func (r *shardRun) ended(ctx context.Context, s *session, err error) {
	f := r.sh.f
	if ctx.Err() != nil || errors.Is(err, errSessionClosed) {
		return
	}
	if err == nil {
		err = errors.New("connection ended")
	}
	// A connection worked if it delivered, or if it had nothing to deliver
	// (an endpoint nobody wants a stream of yet, such as OKX's business
	// endpoint): else repeated drops of an idle connection would grow its
	// backoff without end.
	if (s.delivered.Load() || !s.carried.Load()) && time.Since(s.connectedAt) >= stableSession {
		r.bo.Reset()
		r.failures = 0
	}
	attrs := []any{"err", err}
	closed, byExchange := errors.AsType[wsutil.ClosedError](err)
	switch {
	case byExchange && closed.Code == ws.StatusPolicyViolation:
		r.bo.Exhaust() // "Too many requests": the venue penalizes quick returns
		r.delay = r.bo.Next()
	case byExchange:
		r.delay = r.bo.Next()
	case r.failures == 0:
		r.delay = 0
	default:
		r.delay = r.bo.Next()
	}
	r.failures++
	f.mu.Lock()
	f.noteEndLocked(err)
	if byExchange {
		f.closes[int(closed.Code)]++
		attrs = append(attrs, "code", int(closed.Code), "reason", closed.Reason)
	}
	f.mu.Unlock()
	attrs = append(attrs, "retry_in", r.delay, "lasted", time.Since(s.connectedAt).Round(time.Millisecond))
	s.log.Warn("upstream connection ended", attrs...)
}

// closeIfEmpty closes a shard that is not its endpoint's first and has
// had no stream for Linger: it leaves the endpoint (no stream can be
// assigned to it any more) and its connection is closed. It reports
// whether the shard is done.
func (r *shardRun) closeIfEmpty() bool {
	sh, f := r.sh, r.sh.f
	if r.closing {
		return r.live == 0
	}
	if sh.persistent {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(sh.streams) > 0 {
		sh.emptySince = time.Time{}
		return false
	}
	now := time.Now()
	if sh.emptySince.IsZero() {
		sh.emptySince = now
	}
	if now.Sub(sh.emptySince) < max(f.cfg.Linger, 0) {
		return false
	}
	sh.ep.shards = slices.DeleteFunc(sh.ep.shards, func(x *shard) bool { return x == sh })
	r.closing = true
	if r.cur != nil {
		sh.log.Info("closing empty shard")
		r.cur.requestClose()
	}
	return r.live == 0
}

// abort handles a panic on the shard's goroutine: it closes the shard's
// connections, which ends their sessions for stop to collect, and has
// the supervisor start the shard again after a growing delay (a panic
// that recurs must not become a dial loop).
func (r *shardRun) abort(err error) {
	sh, f := r.sh, r.sh.f
	for _, s := range []*session{r.cur, r.rotOld(), r.rotNew()} {
		if s != nil {
			s.conn.Close()
		}
	}
	if sh.panicBo.Max == 0 || time.Since(sh.lastPanic) > panicCalm {
		sh.panicBo = backoff.Backoff{Min: f.cfg.BackoffMin, Max: f.cfg.BackoffMax}
	}
	sh.lastPanic = time.Now()
	f.mu.Lock()
	f.noteEndLocked(err)
	sh.restartDelay = sh.panicBo.Next()
	f.mu.Unlock()
}

func (r *shardRun) rotOld() *session {
	if r.rot == nil {
		return nil
	}
	return r.rot.old
}

func (r *shardRun) rotNew() *session {
	if r.rot == nil {
		return nil
	}
	return r.rot.nw
}

// stop ends the shard: it waits for its sessions (their context has ended,
// or they were asked to close) and handles their ends.
func (r *shardRun) stop() {
	sh, f := r.sh, r.sh.f
	for r.live > 0 {
		ev := <-sh.events
		if ev.ended {
			r.live--
			sh.detach(context.Background(), ev.s, false)
		}
	}
	r.wg.Wait()
	f.mu.Lock()
	sh.cur, sh.old, sh.rot = nil, nil, nil
	sh.started = false
	sh.state = StateStopped
	sh.connectedSince = time.Time{}
	f.mu.Unlock()
}

// dial opens a connection carrying, in its URL, as many of the shard's
// streams as the dialect fits in MaxURLBytes, after taking a connection
// attempt from the budget. The session is not started.
func (sh *shard) dial(ctx context.Context) (*session, error) {
	f := sh.f
	if err := f.limiter.wait(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	var carry []*streamState
	if f.cfg.MaxURLBytes > 0 && !sh.noURL {
		for _, st := range sh.streams {
			if st.wanted && st.failed == "" {
				carry = append(carry, st)
			}
		}
		slices.SortFunc(carry, func(a, b *streamState) int { return strings.Compare(a.name, b.name) })
	}
	f.mu.Unlock()
	u, n := f.d.ConnectURL(f.cfg.URL, sh.ep.path, sortedNames(carry), max(f.cfg.MaxURLBytes, 0))
	carry = carry[:min(max(n, 0), len(carry))]
	d := ws.Dialer{Timeout: f.cfg.DialTimeout}
	conn, br, _, err := d.Dial(ctx, u)
	if err != nil {
		if se, ok := errors.AsType[ws.StatusError](err); ok && len(carry) > 0 && f.d.URLRefused(int(se)) {
			// The exchange will not take that many streams in a URL: find
			// its limit with requests instead.
			f.mu.Lock()
			sh.noURL = true
			f.mu.Unlock()
		}
		return nil, fmt.Errorf("dial %s%s: %w", f.cfg.URL, sh.ep.path, err)
	}
	// Frames the server sent right behind the 101 sit in br: it must be the
	// source for the whole life of the connection (gobwas/ws#19, #214).
	// A buffer also tells the read loop when a burst ends (Buffered() == 0).
	src := br
	if src == nil {
		src = bufio.NewReaderSize(conn, upstreamReadBuffer)
	}
	s := newSession(sh, f.connID.Add(1), conn, src, br)
	s.url = u
	s.urlStreams = len(carry)
	for _, st := range carry {
		s.subs[st.name] = &sessStream{st: st, state: stateSubscribed}
	}
	s.carried.Store(len(carry) > 0)
	return s, nil
}

// detach unlinks an ended connection from its streams. A stream it was
// publishing loses its source (the next event, from whichever connection,
// carries Gap), except one being handed over to another connection,
// which switches there now. A stream being handed over TO it stays where
// it was.
func (sh *shard) detach(ctx context.Context, s *session, abrupt bool) {
	for _, st := range s.streamList() {
		st.pmu.Lock()
		if st.ho != nil && st.ho.to == s {
			st.ho = nil
		}
		switch {
		case st.src == s && st.ho != nil:
			why := forceOldClosed
			if abrupt || !st.ho.to.carries(st.name) {
				// Dropped, or closed before the new connection carried
				// the stream: events in between may never come.
				why = forceOldDropped
			}
			st.forceSwitchLocked(ctx, sh.f, why)
		case st.src == s:
			st.src = nil
			if st.seq > 0 {
				st.gapNext = true
			}
		}
		st.pmu.Unlock()
	}
	sh.f.flush(ctx) // what the forced switches published
	if s.br != nil {
		ws.PutReader(s.br)
	}
}

// upstreamReadBuffer is the read buffer of an upstream connection that the
// Dialer left none for. What one read fills it with is one burst for the
// hub (see hub.Publisher.Flush).
const upstreamReadBuffer = 32 << 10
