package downstream

import (
	"strconv"
	"time"

	"github.com/marketgate/marketgate/hub"
)

// admit decides whether msg is delivered, with which seq and whether it
// follows a possible gap. Clients see this node's numbering: it goes up by
// one per message delivered, whoever published it.
//
// Two publishers may carry the stream for a moment: an upstream handed
// over between nodes (make-before-break), or an owner that lost its lease
// and has not noticed yet. The newer origin wins: an older origin's
// messages are dropped, and so is any message whose ID is not after the
// last one delivered (an event already delivered). A switch to a newer
// origin is without gap only when that origin was seen repeating delivered
// events and continues its own Seq from there (then it carried everything
// after them), or when its first new event is known to follow the last one
// delivered (hub.EventID.Continues: trade ids, diff depth update ids).
// Streams without IDs cannot prove it, so their switch is marked as a gap.
//
// An admitted message that supersedes the earlier ones becomes the
// stream's latest value, and admit returns the subscribers to send it to,
// both in the same critical section as join (see topic.latest).
func (t *topic) admit(msg hub.Message) (seq uint64, gap bool, subs []*conn, ok bool) {
	t.dmu.Lock()
	defer t.dmu.Unlock()
	if msg.Origin < t.origin {
		return 0, false, nil, false
	}
	repeat := !msg.ID.IsZero() && !t.lastID.IsZero() && !msg.ID.After(t.lastID)
	switch {
	case msg.Origin > t.origin && repeat:
		t.next, t.nextSeq = msg.Origin, msg.Seq
		return 0, false, nil, false
	case msg.Origin > t.origin:
		proven := (t.next == msg.Origin && msg.Seq == t.nextSeq+1) || msg.ID.Continues(t.lastID)
		gap = t.seq > 0 && !proven
		t.origin, t.next = msg.Origin, 0
	case repeat:
		t.srcSeq = msg.Seq // its numbering goes on: nothing is lost
		return 0, false, nil, false
	default:
		gap = t.seq > 0 && msg.Seq != t.srcSeq+1
	}
	t.srcSeq = msg.Seq
	if !msg.ID.IsZero() {
		t.lastID = msg.ID
	}
	t.countLocked(time.Now().UnixNano())
	t.seq++
	if msg.Conflate {
		t.keepLatestLocked(msg.Data, t.seq)
	}
	return t.seq, gap || msg.Gap, *t.subs.Load(), true
}

// Receive fans one hub message out to this node's subscribers of its stream.
// Each wire form is framed (and, for clients that negotiated
// permessage-deflate, compressed) at most once, and the same bytes are
// queued on every subscriber that takes it; see frameSet. It never blocks
// on a client: a full queue conflates or closes (see conn.send).
func (s *Server) Receive(msg hub.Message) {
	s.topics.mu.RLock()
	t := s.topics.topics[msg.Stream]
	s.topics.mu.RUnlock()
	if t == nil {
		return
	}
	if msg.Err != "" {
		// Off the publisher's goroutine: failing a stream calls back into
		// the hub and the source, which may be what is publishing.
		key, reason := msg.Stream, msg.Err
		if !s.pool.submit(func() { s.failStream(key, reason) }) {
			s.metrics.internalErrors.Add(1)
		}
		return
	}
	seq, gap, subs, ok := t.admit(msg)
	if !ok {
		s.metrics.superseded.Add(1)
		return
	}
	msg.Seq, msg.Gap = seq, gap
	fs := frameSet{t: t, msg: msg}
	var conflate *topic // a newer message of t may replace this one in a full queue
	if msg.Conflate {
		conflate = t
	}
	size := 0 // of the frames queued
	for _, c := range subs {
		f := fs.frame(c)
		size += len(f)
		c.send(f, conflate, msg.Final)
	}
	s.metrics.fannedOut(len(subs), size, msg.EventTime)
	if s.burst.Add(int64(len(subs))) >= maxBurst {
		// A long burst: write out what it queued so far rather than
		// make its first frames wait for the hub's Flush.
		s.Flush()
	}
}

// maxBurst is the number of frames Receive queues before it flushes
// without waiting for the hub's Flush: about a millisecond of fan-out, so
// a burst delays no frame by much more than that.
const maxBurst = 16384

// flushChunk is the number of connections one pool task flushes.
const flushChunk = 32

// flushTask is a pool task that flushes up to flushChunk connections, one
// after the other: a burst costs the pool one task per flushChunk
// connections instead of one per connection. Tasks are recycled.
type flushTask struct {
	srv   *Server
	conns [flushChunk]*conn
	n     int
	run   func()     // flushTask.flush, made once
	next  *flushTask // Flush's list of tasks to submit
}

func (ft *flushTask) flush() {
	for _, c := range ft.conns[:ft.n] {
		c.flush()
	}
	clear(ft.conns[:ft.n])
	ft.n = 0
	ft.srv.chunks.Put(ft)
}

// addPending records that c has stream frames queued and no flush yet;
// the hub's next Flush writes them. c.mu is held.
func (s *Server) addPending(c *conn) {
	s.pmu.Lock()
	s.pending = append(s.pending, c)
	s.pmu.Unlock()
}

// Flush writes out the frames Receive queued since the last Flush: the
// pending connections are handed to the worker pool in chunks of
// flushChunk, and each gets one writev for all the frames the burst
// brought it. It implements [hub.Receiver] and never blocks.
func (s *Server) Flush() {
	s.burst.Store(0)
	var list *flushTask
	s.pmu.Lock()
	p := s.pending
	for i := 0; i < len(p); i += flushChunk {
		ft, _ := s.chunks.Get().(*flushTask)
		if ft == nil {
			ft = &flushTask{srv: s}
			ft.run = ft.flush
		}
		ft.n = copy(ft.conns[:], p[i:])
		ft.next, list = list, ft
	}
	clear(p)
	s.pending = p[:0]
	s.pmu.Unlock()
	// Submitted without pmu: addPending takes it under a conn's mu, which
	// a flush takes.
	for ft := list; ft != nil; {
		next := ft.next
		ft.next = nil
		if !s.pool.submit(ft.run) {
			// Cannot happen (see pool); do not strand the frames.
			s.metrics.internalErrors.Add(1)
			ft.flush()
		}
		ft = next
	}
}

// The wire forms of a stream message.
const (
	formNative   = iota // {"stream":…,"seq":N[,"gap":true][,"latest":true],"data":…}
	formCombined        // Binance dialect, combined: {"stream":…,"data":…}
	formRaw             // Binance dialect, raw: the exchange's event as is
	numForms
)

// frameSet holds the frames of one hub message, each built on first use
// and then shared by every subscriber that takes it: one per wire form,
// plain and permessage-deflate compressed. A message nobody compresses is
// never compressed, and one that several subscribers compress is
// compressed once.
type frameSet struct {
	t      *topic
	msg    hub.Message         // a copy: a pointer to Receive's would move it to the heap
	latest bool                // the stream's latest value, sent on subscribe (native: "latest":true)
	frames [numForms][2][]byte // [form][compressed]
}

// frame returns the frame c takes.
func (fs *frameSet) frame(c *conn) []byte {
	form := c.proto.form(c)
	z := 0
	if c.deflate {
		z = 1
	}
	f := fs.frames[form][z]
	if f == nil {
		f = fs.build(form, c.deflate)
		fs.frames[form][z] = f
	}
	return f
}

var closeBrace = []byte{'}'}

func (fs *frameSet) build(form int, compress bool) []byte {
	// Stored by index, not appended: an append could move the array to the
	// heap, and mid with it.
	var parts [4][]byte
	var mid [64]byte
	n := 0
	switch form {
	case formNative:
		m := strconv.AppendUint(mid[:0], fs.msg.Seq, 10)
		if fs.msg.Gap {
			m = append(m, `,"gap":true`...)
		}
		if fs.latest {
			m = append(m, `,"latest":true`...)
		}
		m = append(m, `,"data":`...)
		parts, n = [4][]byte{fs.t.nativePrefix, m, fs.msg.Data, closeBrace}, 4
	case formCombined:
		parts, n = [4][]byte{fs.t.dialectPrefix, fs.msg.Data, closeBrace}, 3
	default:
		parts[0], n = fs.msg.Data, 1
	}
	p := parts[:n]
	if compress {
		if f := deflateTextFrame(p...); f != nil {
			return f
		}
		// RFC 7692 §6: any message may go uncompressed.
	}
	return textFrame(p...)
}
