package downstream

import (
	"strconv"
	"time"

	"github.com/marketgate/marketgate/hub"
)

// admit decides whether msg is delivered, and whether it follows a
// possible gap. Its Seq and Epoch are the stream's position, which the hub
// assigned for the whole cluster: a message at or before the last one
// delivered is dropped (it came twice), and one that does not follow it
// (another epoch, or a break in Seq: messages lost on the way) is marked
// as a gap, as is one the hub marked.
//
// An admitted message that supersedes the earlier ones becomes the
// stream's latest value, and admit returns the subscribers to send it to,
// both in the same critical section as join (see topic.latest).
// now is when it was admitted (unix nanos), where its fan-out starts.
func (t *topic) admit(msg hub.Message) (gap bool, subs []*conn, now int64, ok bool) {
	t.dmu.Lock()
	defer t.dmu.Unlock()
	if t.known && msg.Epoch == t.pos.Epoch && msg.Seq <= t.pos.Seq {
		return false, nil, 0, false
	}
	gap = msg.Gap || (t.known && (msg.Epoch != t.pos.Epoch || msg.Seq != t.pos.Seq+1))
	t.pos, t.known = hub.Position{Epoch: msg.Epoch, Seq: msg.Seq}, true
	now = time.Now().UnixNano()
	t.countLocked(now)
	if msg.Conflate {
		t.keepLatestLocked(msg.Data, t.pos)
	}
	return gap, *t.subs.Load(), now, true
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
	gap, subs, now, ok := t.admit(msg)
	if !ok {
		s.metrics.superseded.Add(1)
		return
	}
	msg.Gap = gap
	fs := frameSet{t: t, msg: msg}
	size := 0 // of the frames queued
	for _, c := range subs {
		f := fs.frame(c)
		size += len(f)
		c.send(&fs, f)
	}
	s.metrics.fannedOut(len(subs), size, msg.EventTime)
	if len(subs) > 0 {
		s.received(now)
	}
	if s.burst.Add(int64(len(subs))) >= maxBurst {
		// A long burst: write out what it queued so far rather than
		// make its first frames wait for the hub's Flush or the write
		// delay. This also bounds the frames a write delay holds.
		s.flushNow()
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
	next  *flushTask // flushNow's list of tasks to submit
	round *round     // the round the task belongs to
}

func (ft *flushTask) flush() {
	for _, c := range ft.conns[:ft.n] {
		c.flush()
	}
	clear(ft.conns[:ft.n])
	ft.n = 0
	r := ft.round
	ft.round = nil
	s := ft.srv
	s.cmu.Lock()
	if len(s.chunks) < s.maxFreeChunks() {
		s.chunks = append(s.chunks, ft)
	}
	s.cmu.Unlock()
	s.taskDone(r)
}

// addPending records that c has stream frames queued and no flush yet;
// the next round (see flushNow) writes them. c.mu is held.
func (s *Server) addPending(c *conn) {
	s.pmu.Lock()
	s.pending = append(s.pending, c)
	s.pmu.Unlock()
}

// The wire forms of a stream message.
const (
	formNative     = iota // {"stream":…,"seq":N[,"gap":true,"epoch":…][,"latest":true],"data":…}
	formCombined          // Binance dialect, combined: {"stream":…,"data":…}
	formRaw               // Binance dialect, raw: the exchange's event as is
	formNormalized        // native, with data in the normalized form (Config.Normalizer)
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
	if n := c.normalized.Load(); n != nil && (*n)[fs.t.key] {
		form = formNormalized
	}
	z := 0
	if c.deflate {
		z = 1
	}
	f := fs.frames[form][z]
	if f == nil {
		f = fs.build(form, c.deflate, c.srv.cfg.Normalizer)
		fs.frames[form][z] = f
	}
	return f
}

var closeBrace = []byte{'}'}

func (fs *frameSet) build(form int, compress bool, norm Normalizer) []byte {
	// Stored by index, not appended: an append could move the array to the
	// heap, and mid with it.
	var parts [4][]byte
	var mid [128]byte
	n := 0
	switch form {
	case formNative, formNormalized:
		m := strconv.AppendUint(mid[:0], fs.msg.Seq, 10)
		if fs.msg.Gap {
			m = append(m, `,"gap":true`...)
			if e := fs.msg.Epoch; e != "" && len(e) <= maxEpochLen && plainEpoch(e) {
				m = append(m, `,"epoch":"`...)
				m = append(m, e...)
				m = append(m, '"')
			}
		}
		if fs.latest {
			m = append(m, `,"latest":true`...)
		}
		m = append(m, `,"data":`...)
		data := fs.msg.Data
		if form == formNormalized && norm != nil {
			if d, ok := norm.Normalize(nil, fs.t.key, data); ok {
				data = d
			}
		}
		parts, n = [4][]byte{fs.t.nativePrefix, m, data, closeBrace}, 4
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

// maxEpochLen bounds the epoch a native frame names after a gap.
const maxEpochLen = 32

// plainEpoch reports whether e needs no escaping in JSON: the hubs make
// epochs of letters and digits.
func plainEpoch(e string) bool {
	for i := range len(e) {
		b := e[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_') {
			return false
		}
	}
	return true
}

// conflatable returns the stream whose newer message may replace fs's
// message in a full queue (hub.Message.Conflate), or nil.
func (fs *frameSet) conflatable() *topic {
	if fs.msg.Conflate {
		return fs.t
	}
	return nil
}

// gapFrame returns, built for c alone, the frame of fs's message marked
// as following a gap (a client that recovered only part of what it
// missed).
func (fs *frameSet) gapFrame(c *conn) []byte {
	g := frameSet{t: fs.t, msg: fs.msg}
	g.msg.Gap = true
	return g.frame(c)
}
