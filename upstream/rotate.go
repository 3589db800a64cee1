package upstream

import (
	"bytes"
	"context"
	"errors"
	"hash/maphash"
	"time"

	"github.com/gobwas/ws/wsutil"

	"github.com/marketgate/marketgate/hub"
)

// Rotation replaces a shard's connection before the exchange ends it (at
// RotateAfter, or at once on the exchange's shutdown notice) without losing or
// repeating an event: make before break.
//
//  1. A new connection is dialled with the shard's streams in its URL (the
//     rest are subscribed with requests). It becomes the one that
//     subscribes; the old one only answers pings from then on.
//  2. Each stream switches to the new connection on its own, at a point
//     where the two connections agree (see [streamState.deliver]). Until
//     then the old connection publishes it and the new one's events are
//     buffered (HandoverBuffer per stream).
//  3. When every stream has switched (quiet streams switch after
//     quietSwitch without events), or after HandoverTimeout, the old
//     connection is closed with 1000 through its writer. Nothing is
//     unsubscribed.
//
// Switch rules, by how a stream's events are told apart ([Stream.Order]):
//   - consecutive ids (trades, book deltas): switch at the first
//     new-connection event that continues the last published one
//     ([EventID]: Lo ≤ last Hi+1 ≤ Hi, or Prev = last Hi).
//   - monotonic ids (book snapshots and tops, candles by open time then
//     event time): switch where both connections are seen to deliver the
//     same event: the new connection delivered one already published (it
//     is in line: its next newer event is the successor), or the old one
//     published the first event buffered from the new one (the rest of the
//     buffer follows it). This holds for consecutive ids too.
//   - the same bytes ([OrderSame]: ids without order): switch where both
//     connections are seen to deliver the same event, compared by a hash
//     of its bytes: the new connection delivered one the old one published
//     lately ([sameWindow] events), or the old one published one the new
//     one buffered. Without such a point the handover times out and the
//     stream switches with Gap.
//   - no identity (tickers, anything else): switch at the first
//     new-connection event.
//
// Events of the new connection already published are dropped; events of
// the old connection after the switch are dropped. Seq goes on without
// Gap. A forced switch (timeout, or the old connection ended first) sets
// Gap unless continuity is proven; a buffer overflow sets Gap.

// sameWindow is how many recent events of an [OrderSame] stream are
// remembered (as hashes) to find the event where a new connection joins
// the old one's: the events the old one publishes between the new one's
// subscription and its first event.
const sameWindow = 64

// sameSeed seeds the hashes of [OrderSame] events: any seed does, as long
// as both connections' events are hashed alike.
var sameSeed = maphash.MakeSeed()

// sameRing remembers the hashes of the last sameWindow events published
// of an [OrderSame] stream: a rotation's handover and the merger of a
// redundant feed both tell its events apart by them.
type sameRing struct {
	h [sameWindow]uint64
	n int // hashes remembered in all; the newest is at (n-1) mod sameWindow
}

// remember records the hash h of a published event.
func (r *sameRing) remember(h uint64) {
	r.h[r.n%sameWindow] = h
	r.n++
}

// published reports whether an event of hash h was among the last
// sameWindow remembered.
func (r *sameRing) published(h uint64) bool {
	for i := range min(r.n, sameWindow) {
		if r.h[i] == h {
			return true
		}
	}
	return false
}

// newest returns the hash remembered last, if any.
func (r *sameRing) newest() (uint64, bool) {
	if r.n == 0 {
		return 0, false
	}
	return r.h[(r.n-1)%sameWindow], true
}

// remember records the hash h of an event published during a handover.
func (st *streamState) remember(h uint64) { st.recent.remember(h) }

// published reports whether an event of hash h was among the last
// sameWindow published since the latest handover began.
func (st *streamState) published(h uint64) bool { return st.recent.published(h) }

// quietSwitch is how long a stream without any event on the new
// connection waits before it switches anyway: by then the old connection
// has long delivered whatever it had in flight.
const quietSwitch = time.Second

// rotation is a shard replacing its connection.
type rotation struct {
	old, nw  *session
	started  time.Time
	deadline time.Time
	closing  bool // the old connection was asked to close
}

// handover is a stream moving to the connection to.
type handover struct {
	to       *session
	buf      []heldEvent // events of to, newer than the last published
	seen     bool        // to delivered any event
	since    time.Time
	deadline time.Time
}

// heldEvent is a buffered event, copied out of the read buffer.
type heldEvent struct {
	id    EventID
	hasID bool
	hash  uint64 // of data, for an [OrderSame] stream
	data  []byte
}

// startRotation dials the replacement connection and starts handing the
// shard's streams over to it. On failure the old connection carries on
// and the rotation is tried again after a backoff.
func (r *shardRun) startRotation(ctx context.Context) {
	sh, f := r.sh, r.sh.f
	old := r.cur
	old.log.Info("rotating connection", "age", time.Since(old.connectedAt).Round(time.Millisecond))
	nw, err := sh.dial(ctx)
	if err != nil {
		if ctx.Err() == nil {
			delay := r.rotBo.Next()
			r.rotateAt = time.Now().Add(delay)
			old.log.Warn("rotation: connect failed", "err", err, "retry_in", delay)
		}
		return
	}
	r.rotBo.Reset()
	now := time.Now()
	rot := &rotation{old: old, nw: nw, started: now, deadline: now.Add(f.cfg.HandoverTimeout)}
	f.mu.Lock()
	sh.old, sh.cur, sh.rot = old, nw, rot
	sh.connections++
	sh.connectedSince = f.cfg.Now()
	f.mu.Unlock()
	// Before the new connection's reader runs, so none of its events is
	// taken for a stale one.
	for _, st := range nw.streamList() {
		st.beginHandover(nw, rot.deadline)
	}
	r.rot, r.cur = rot, nw
	r.rotateAt = nw.connectedAt.Add(f.cfg.RotateAfter)
	r.start(ctx, nw)
	nw.log.Info("upstream connected", "url", logURL(nw.url), "url_streams", nw.urlStreams, "replaces", old.id)
}

// rotationDue reports whether the rotation can finish: every stream of
// the shard is confirmed on the new connection and has switched (or is
// quiet), or the handover timed out.
func (r *shardRun) rotationDue() bool {
	sh, f, rot := r.sh, r.sh.f, r.rot
	if time.Now().After(rot.deadline) {
		rot.nw.log.Warn("rotation: handover timed out; switching the remaining streams")
		return true
	}
	f.mu.Lock()
	rot.nw.mu.Lock()
	sts := make([]*streamState, 0, len(sh.streams))
	done := true
	for name, st := range sh.streams {
		if !st.wanted || st.failed != "" {
			continue
		}
		if ss := rot.nw.subs[name]; ss == nil || ss.st != st || ss.state != stateSubscribed {
			done = false
			break
		}
		sts = append(sts, st)
	}
	rot.nw.mu.Unlock()
	f.mu.Unlock()
	if !done {
		return false
	}
	for _, st := range sts {
		st.pmu.Lock()
		ho := st.ho
		waiting := ho != nil && ho.to == rot.nw && (ho.seen || time.Since(ho.since) < quietSwitch)
		st.pmu.Unlock()
		if waiting {
			return false
		}
	}
	return true
}

// finishRotation switches the streams still in handover and asks the old
// connection to close; its end completes the rotation (oldEnded).
func (r *shardRun) finishRotation(ctx context.Context) {
	f, rot := r.sh.f, r.rot
	forced := 0
	for _, st := range rot.nw.streamList() {
		st.pmu.Lock()
		if st.ho != nil && st.ho.to == rot.nw {
			st.forceSwitchLocked(ctx, f, forceTimeout)
			forced++
		}
		st.pmu.Unlock()
	}
	f.flush(ctx)
	rot.closing = true
	f.mu.Lock()
	f.rotations++
	f.mu.Unlock()
	rot.nw.log.Info("rotation: streams switched, closing the old connection",
		"old", rot.old.id, "took", time.Since(rot.started).Round(time.Millisecond), "forced", forced)
	rot.old.requestClose()
}

// oldEnded completes a rotation when the old connection has ended, asked
// to or not; streams still in handover switch now.
func (r *shardRun) oldEnded(ctx context.Context, err error, abrupt bool) {
	sh, f, rot := r.sh, r.sh.f, r.rot
	if !rot.closing && ctx.Err() == nil {
		attrs := []any{"err", err}
		f.mu.Lock()
		f.rotations++
		if ce, ok := errors.AsType[wsutil.ClosedError](err); ok {
			f.closes[int(ce.Code)]++
			attrs = append(attrs, "code", int(ce.Code), "reason", ce.Reason)
		}
		f.mu.Unlock()
		rot.old.log.Warn("old connection ended during rotation", attrs...)
	}
	sh.detach(ctx, rot.old, abrupt)
	f.mu.Lock()
	sh.old, sh.rot = nil, nil
	f.mu.Unlock()
	r.rot = nil
}

// newEnded aborts a rotation whose new connection ended: the old one
// carries on (streams that had switched come back to it with Gap) and the
// rotation is tried again after a backoff.
func (r *shardRun) newEnded(ctx context.Context, err error) {
	sh, f, rot := r.sh, r.sh.f, r.rot
	sh.detach(ctx, rot.nw, true)
	f.mu.Lock()
	sh.cur, sh.old, sh.rot = rot.old, nil, nil
	f.mu.Unlock()
	r.cur, r.rot = rot.old, nil
	if ctx.Err() != nil {
		return
	}
	delay := r.rotBo.Next()
	r.rotateAt = time.Now().Add(delay)
	rot.nw.log.Warn("rotation: new connection ended; the old one carries on", "err", err, "retry_in", delay)
	rot.old.signal()
}

// beginHandover makes to the connection that takes over st, unless it
// already publishes st. Called before to can deliver st's events.
func (st *streamState) beginHandover(to *session, deadline time.Time) {
	st.pmu.Lock()
	defer st.pmu.Unlock()
	if st.src == to || (st.ho != nil && st.ho.to == to) {
		return
	}
	st.ho = &handover{to: to, since: time.Now(), deadline: deadline}
	if st.recent != nil {
		st.recent.n = 0 // an OrderSame stream remembers this handover's events only
	}
}

// deliver takes one event of st read by s: it publishes it, buffers it
// for a handover, or drops it (a repeat, or a connection that does not
// publish st). data is valid only during the call.
func (st *streamState) deliver(ctx context.Context, s *session, data []byte) {
	f := s.f
	var id EventID
	hasID := false
	if st.order != OrderNone && st.order != OrderSame {
		id, hasID = f.d.Identity(&st.stream, data)
	}
	st.pmu.Lock()
	defer st.pmu.Unlock()
	if ho := st.ho; ho != nil {
		switch {
		case ho.to == s:
			st.offerLocked(ctx, f, id, hasID, data)
		case st.src == s:
			st.fromSourceLocked(ctx, f, id, hasID, data)
			st.catchUpLocked(ctx, f)
		}
		return
	}
	if st.src == nil {
		st.src = s
	}
	if st.src == s {
		st.fromSourceLocked(ctx, f, id, hasID, data)
	}
}

// offerLocked takes an event of the connection st is moving to.
func (st *streamState) offerLocked(ctx context.Context, f *Feed, id EventID, hasID bool, data []byte) {
	ho := st.ho
	ho.seen = true
	if st.order == OrderSame && st.src != nil {
		st.offerSameLocked(ctx, f, data)
		return
	}
	if st.src == nil || st.order == OrderNone || !st.hasLast || !hasID {
		st.switchLocked(ctx, f)
		st.publishLocked(ctx, f, id, hasID, data)
		return
	}
	if !id.after(st.last) {
		// Already published from the old connection: the new one is in
		// line. Its repeats are dropped, its next newer event follows.
		st.switchLocked(ctx, f)
		st.verify, st.verifyGap = true, false
		return
	}
	if len(ho.buf) == 0 && st.order == OrderConsecutive && id.continues(st.last) {
		st.switchLocked(ctx, f)
		st.publishLocked(ctx, f, id, hasID, data)
		return
	}
	st.holdLocked(ctx, f, heldEvent{id: id, hasID: hasID, data: data})
}

// holdLocked buffers ev, an event of the connection st is moving to, until
// the old connection reaches it; with the buffer full it switches with a
// gap and publishes ev, and past the handover's deadline it forces the
// switch. ev.data is copied.
func (st *streamState) holdLocked(ctx context.Context, f *Feed, ev heldEvent) {
	ho := st.ho
	if len(ho.buf) >= f.cfg.HandoverBuffer {
		f.overflows.Add(1)
		st.src.log.Warn("handover buffer overflow: switching with a gap", "stream", st.name)
		st.gapNext = true
		st.switchLocked(ctx, f)
		st.publishLocked(ctx, f, ev.id, ev.hasID, ev.data)
		return
	}
	ev.data = bytes.Clone(ev.data)
	ho.buf = append(ho.buf, ev)
	if time.Now().After(ho.deadline) {
		st.forceSwitchLocked(ctx, f, forceTimeout)
	}
}

// offerSameLocked takes an event of the connection an [OrderSame] stream
// is moving to: one the old connection published lately puts the new one
// in line (what it buffered before came earlier: published too), others
// wait in the buffer for the old connection to reach them.
func (st *streamState) offerSameLocked(ctx context.Context, f *Feed, data []byte) {
	ho := st.ho
	h := maphash.Bytes(sameSeed, data)
	if st.published(h) {
		ho.buf = nil
		st.switchLocked(ctx, f)
		st.verify, st.verifyGap = true, false // drop its next repeats too
		return
	}
	st.holdLocked(ctx, f, heldEvent{hash: h, data: data})
}

// catchUpLocked runs after the old connection published st.last: the
// buffered events it covered are dropped, and if it covered any, or the
// buffer continues it, st switches.
func (st *streamState) catchUpLocked(ctx context.Context, f *Feed) {
	ho := st.ho
	if st.order == OrderSame {
		h, ok := st.recent.newest()
		if !ok {
			return
		}
		// The old connection reached an event the new one buffered: the
		// rest of the buffer follows it.
		for i, e := range ho.buf {
			if e.hash == h {
				ho.buf = ho.buf[i+1:]
				st.switchLocked(ctx, f)
				return
			}
		}
		return
	}
	if !st.hasLast {
		st.switchLocked(ctx, f)
		return
	}
	dropped := false
	for len(ho.buf) > 0 && !ho.buf[0].id.after(st.last) {
		ho.buf = ho.buf[1:]
		dropped = true
	}
	switch {
	case dropped && len(ho.buf) == 0:
		st.switchLocked(ctx, f)
		st.verify, st.verifyGap = true, false // in line; the old one may be ahead
	case dropped, len(ho.buf) > 0 && st.order == OrderConsecutive && ho.buf[0].id.continues(st.last):
		st.switchLocked(ctx, f)
	}
}

// switchLocked makes the handover's connection st's source and publishes
// what it buffered (the newer events only).
func (st *streamState) switchLocked(ctx context.Context, f *Feed) {
	ho := st.ho
	st.ho, st.src = nil, ho.to
	for _, e := range ho.buf {
		if st.hasLast && e.hasID && !e.id.after(st.last) {
			continue
		}
		st.publishLocked(ctx, f, e.id, e.hasID, e.data)
	}
}

// forceReason is why a stream switches before a switch point was found.
type forceReason uint8

const (
	// forceTimeout: the handover timed out (or only quiet streams were
	// left); the old connection is alive.
	forceTimeout forceReason = iota
	// forceOldClosed: the old connection ended with a close frame, after
	// delivering everything it had, while the new one carried the stream:
	// the new one's events follow its last.
	forceOldClosed
	// forceOldDropped: the old connection ended abruptly; events it had in
	// flight are lost.
	forceOldDropped
)

// forceSwitchLocked switches st before a switch point was found. The first
// event published afterwards carries Gap unless it provably continues the
// last one: consecutive ids are checked; other events are assumed to
// follow only after a clean close of the old connection.
func (st *streamState) forceSwitchLocked(ctx context.Context, f *Feed, why forceReason) {
	ho := st.ho
	dropped := false
	for len(ho.buf) > 0 && st.hasLast && ho.buf[0].hasID && !ho.buf[0].id.after(st.last) {
		ho.buf = ho.buf[1:]
		dropped = true
	}
	switch {
	case len(ho.buf) == 0 && dropped:
		st.verify, st.verifyGap = true, false // in line
	case len(ho.buf) == 0 && st.hasLast:
		st.verify, st.verifyGap = true, why == forceOldDropped // check its next event
	case len(ho.buf) == 0:
		st.gapNext = st.gapNext || why == forceOldDropped
	case dropped:
	case st.order == OrderConsecutive && st.hasLast && ho.buf[0].hasID:
		st.gapNext = st.gapNext || !ho.buf[0].id.continues(st.last)
	case why != forceOldClosed:
		st.gapNext = true
	}
	st.switchLocked(ctx, f)
}

// fromSourceLocked publishes an event of st's source, dropping a repeat
// right after a forced switch.
func (st *streamState) fromSourceLocked(ctx context.Context, f *Feed, id EventID, hasID bool, data []byte) {
	if st.verify {
		if st.order == OrderSame && st.published(maphash.Bytes(sameSeed, data)) {
			return // already published; keep checking
		}
		gap := st.verifyGap
		if st.hasLast && hasID {
			if !id.after(st.last) {
				return // already published; keep checking
			}
			if st.order == OrderConsecutive {
				gap = !id.continues(st.last)
			}
		}
		st.verify = false
		st.gapNext = st.gapNext || gap
	}
	st.publishLocked(ctx, f, id, hasID, data)
}

// publishLocked publishes one event with the next Seq.
func (st *streamState) publishLocked(ctx context.Context, f *Feed, id EventID, hasID bool, data []byte) {
	st.seq++
	gap := st.gapNext
	st.gapNext = false
	if st.recent != nil && st.ho != nil {
		// Only a handover compares events by their bytes: the hash is
		// paid during one, not on every event.
		st.remember(maphash.Bytes(sameSeed, data))
	}
	st.last, st.hasLast = id, hasID
	msg := hub.Message{
		Stream: st.key, Seq: st.seq, Gap: gap, Data: data,
		Conflate:  st.stream.Class.Conflatable(),
		EventTime: f.d.EventTime(data),
	}
	if msg.Conflate {
		msg.Final = f.d.Final(&st.stream, data)
	}
	if e := msg.EventTime; e > f.m.lastEvent.Load() {
		f.m.lastEvent.Store(e) // racy max: a lag figure, not an order
	}
	if hasID {
		msg.ID = hub.EventID{Hi: id.Hi, Sub: id.Sub}
		if st.order == OrderConsecutive {
			msg.ID.Prev = id.Lo - 1
			if id.HasPrev {
				msg.ID.Prev = id.Prev
			}
		}
	}
	err := f.cfg.Publisher.Publish(ctx, msg)
	if err != nil || f.publishFailed.Load() != 0 {
		f.notePublish(ctx, err)
	}
}
