package downstream

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/marketgate/marketgate/hub"
)

// topic is one stream with local subscribers. Its subscriber list is
// replaced, never modified, so fan-out ranges over a snapshot without locks.
type topic struct {
	key  string
	subs atomic.Pointer[[]*conn]

	// Encoded once per topic: the JSON text that precedes each message.
	nativePrefix  []byte // {"stream":"binance:btcusdt@trade","seq":
	dialectPrefix []byte // {"stream":"btcusdt@trade","data":

	// dmu guards the delivery state, which admit keeps. The hub delivers
	// a stream from one goroutine at a time; the lock makes that an
	// invariant here rather than an assumption.
	dmu     sync.Mutex
	seq     uint64      // this node's number of the last message delivered
	origin  uint64      // the publisher delivered (hub.Message.Origin)
	srcSeq  uint64      // its Seq of the last message delivered
	lastID  hub.EventID // the ID of the last message delivered that had one
	next    uint64      // a newer publisher seen so far only repeating delivered events
	nextSeq uint64      // its Seq of the last such repeat

	// For the control API, also under dmu: when the last message was
	// delivered, and the messages of the current and the previous
	// rateWindow (which gives the rate).
	lastAt            int64 // unix nanos
	winStart          int64 // unix nanos
	winCount, winPrev int64
}

// rateWindow is the window of a stream's message rate in StreamInfo.
const rateWindow = 10 * time.Second

// countLocked records one delivered message at now (unix nanos).
func (t *topic) countLocked(now int64) {
	t.lastAt = now
	if d := now - t.winStart; d >= int64(rateWindow) {
		t.winPrev = 0
		if d < 2*int64(rateWindow) {
			t.winPrev = t.winCount
		}
		t.winStart, t.winCount = now-d%int64(rateWindow), 0
	}
	t.winCount++
}

// rate returns the messages per second of the last whole window, and when
// the last message came; dmu is not held.
func (t *topic) rate(now int64) (float64, int64) {
	t.dmu.Lock()
	defer t.dmu.Unlock()
	if now-t.winStart >= 2*int64(rateWindow) {
		return 0, t.lastAt // nothing for a whole window
	}
	prev := t.winPrev
	if now-t.winStart >= int64(rateWindow) {
		prev = t.winCount // the current window is over, and is the last whole one
	}
	return float64(prev) / rateWindow.Seconds(), t.lastAt
}

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
func (t *topic) admit(msg hub.Message) (seq uint64, gap, ok bool) {
	t.dmu.Lock()
	defer t.dmu.Unlock()
	if msg.Origin < t.origin {
		return 0, false, false
	}
	repeat := !msg.ID.IsZero() && !t.lastID.IsZero() && !msg.ID.After(t.lastID)
	switch {
	case msg.Origin > t.origin && repeat:
		t.next, t.nextSeq = msg.Origin, msg.Seq
		return 0, false, false
	case msg.Origin > t.origin:
		proven := (t.next == msg.Origin && msg.Seq == t.nextSeq+1) || msg.ID.Continues(t.lastID)
		gap = t.seq > 0 && !proven
		t.origin, t.next = msg.Origin, 0
	case repeat:
		t.srcSeq = msg.Seq // its numbering goes on: nothing is lost
		return 0, false, false
	default:
		gap = t.seq > 0 && msg.Seq != t.srcSeq+1
	}
	t.srcSeq = msg.Seq
	if !msg.ID.IsZero() {
		t.lastID = msg.ID
	}
	t.countLocked(time.Now().UnixNano())
	t.seq++
	return t.seq, gap || msg.Gap, true
}

func newTopic(key string) *topic {
	qk, _ := json.Marshal(key)
	name := key
	if i := strings.IndexByte(key, ':'); i >= 0 {
		name = key[i+1:]
	}
	qn, _ := json.Marshal(name)
	t := &topic{
		key:           key,
		nativePrefix:  slices.Concat([]byte(`{"stream":`), qk, []byte(`,"seq":`)),
		dialectPrefix: slices.Concat([]byte(`{"stream":`), qn, []byte(`,"data":`)),
	}
	t.subs.Store(&[]*conn{})
	return t
}

// registry maps stream keys to topics. A topic exists exactly while it has
// local subscribers, and exactly then the server is subscribed to it in the
// hub and wants it from the source.
type registry struct {
	// mu guards topics, byIP and every topic's subs writes. Hub and source
	// calls made under it must not block (both interfaces promise that).
	mu     sync.RWMutex
	topics map[string]*topic
	// byIP counts, per client address (ipKey), the connections from it
	// subscribed to each stream: its distinct streams are its keys, which
	// Config.MaxStreamsPerIP bounds. An address without streams has no
	// entry, so the map is bounded by the connections held.
	byIP map[string]map[string]int32
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
	seq, gap, ok := t.admit(msg)
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
	subs := *t.subs.Load()
	size := 0 // of the frames queued
	for _, c := range subs {
		f := fs.frame(c)
		size += len(f)
		c.send(f, conflate)
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
	formNative   = iota // {"stream":…,"seq":N[,"gap":true],"data":…}
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
	frames [numForms][2][]byte // [form][compressed]
}

// frame returns the frame c takes.
func (fs *frameSet) frame(c *conn) []byte {
	form := formRaw
	switch {
	case c.native:
		form = formNative
	case c.combined.Load():
		form = formCombined
	}
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
	var mid [40]byte
	n := 0
	switch form {
	case formNative:
		m := strconv.AppendUint(mid[:0], fs.msg.Seq, 10)
		if fs.msg.Gap {
			m = append(m, `,"gap":true`...)
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

// failStream tells every local subscriber of key that the stream failed
// upstream, and drops the stream: from their subscriptions, the hub and the
// source. Other streams are untouched.
func (s *Server) failStream(key, reason string) {
	r := &s.topics
	r.mu.Lock()
	t := r.topics[key]
	if t == nil {
		r.mu.Unlock()
		return
	}
	subs := *t.subs.Load()
	t.subs.Store(&[]*conn{})
	delete(r.topics, key)
	if err := s.cfg.Hub.Unsubscribe(s.ctx, key, s); err != nil {
		s.log.Error("hub unsubscribe", "stream", key, "err", err)
	}
	s.cfg.Source.Unwant([]string{key})
	r.mu.Unlock()

	s.log.Warn("stream failed upstream", "stream", key, "reason", reason, "subscribers", len(subs))
	native := streamFailedNative(key, reason)
	dialect := streamFailedDialect(key, reason)
	for _, c := range subs {
		c.smu.Lock()
		delete(c.streams, key)
		c.smu.Unlock()
		if c.native {
			c.enqueueReply(native)
		} else {
			c.enqueueReply(dialect)
		}
	}
}

// subscribe adds c to the topics of keys it is not yet subscribed to. Keys
// must be validated and within c's stream limit. It refuses the whole
// command, changing nothing, when it would take this node's distinct
// streams past MaxStreams or those of c's address past MaxStreamsPerIP, or
// when the hub refuses a new stream: a client is never told it subscribed
// to a stream that will bring no data.
func (s *Server) subscribe(c *conn, keys []string) *nativeError {
	c.smu.Lock()
	defer c.smu.Unlock()
	var added []string
	for _, k := range keys {
		if _, ok := c.streams[k]; !ok && !slices.Contains(added, k) {
			added = append(added, k)
		}
	}
	if len(added) == 0 {
		return nil
	}
	ip := ipKey(c.clientAddr())

	r := &s.topics
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.state.Load() != stateOpen {
		// Closed meanwhile; unsubscribeAll may already have run.
		return nil
	}
	var fresh, freshForIP []string
	used := r.byIP[ip]
	for _, k := range added {
		if r.topics[k] == nil {
			fresh = append(fresh, k)
		}
		if used[k] == 0 {
			freshForIP = append(freshForIP, k)
		}
	}
	switch {
	case len(r.topics)+len(fresh) > s.cfg.MaxStreams:
		s.metrics.refusedStreams.Add(1)
		return &nativeError{Code: CodeStreamLimit, Streams: clipList(fresh),
			Msg: fmt.Sprintf("this node carries at most %d distinct streams; try again later", s.cfg.MaxStreams)}
	case len(used)+len(freshForIP) > s.cfg.MaxStreamsPerIP:
		s.metrics.refusedStreams.Add(1)
		return &nativeError{Code: CodeStreamLimit, Streams: clipList(freshForIP),
			Msg: fmt.Sprintf("the connections from one address may hold at most %d distinct streams", s.cfg.MaxStreamsPerIP)}
	}
	for i, k := range fresh {
		if err := s.cfg.Hub.Subscribe(s.ctx, k, s); err != nil {
			s.log.Error("hub subscribe", "stream", k, "err", err)
			for _, done := range fresh[:i] {
				if err := s.cfg.Hub.Unsubscribe(s.ctx, done, s); err != nil {
					s.log.Error("hub unsubscribe", "stream", done, "err", err)
				}
			}
			s.metrics.refusedStreams.Add(1)
			return &nativeError{Code: CodeUpstreamError, Streams: []string{k},
				Msg: "this node cannot carry the stream now; try again later"}
		}
	}
	if c.streams == nil {
		c.streams = make(map[string]struct{}, len(added))
	}
	if used == nil {
		if r.byIP == nil {
			r.byIP = make(map[string]map[string]int32)
		}
		used = make(map[string]int32, len(added))
		r.byIP[ip] = used
	}
	for _, k := range added {
		c.streams[k] = struct{}{}
		used[k]++
		t := r.topics[k]
		if t == nil {
			t = newTopic(k)
			r.topics[k] = t
		}
		subs := *t.subs.Load()
		t.subs.Store(new(append(slices.Clip(subs), c)))
	}
	if len(fresh) > 0 {
		s.cfg.Source.Want(fresh)
	}
	return nil
}

// clipList returns at most maxNamedStreams of keys, for an error reply.
func clipList(keys []string) []string { return keys[:min(len(keys), maxNamedStreams)] }

// unsubscribe removes c from the topics of keys; a topic left without
// subscribers is dropped from the hub and the source.
func (s *Server) unsubscribe(c *conn, keys []string) {
	c.smu.Lock()
	var removed []string
	for _, k := range keys {
		if _, ok := c.streams[k]; ok {
			delete(c.streams, k)
			removed = append(removed, k)
		}
	}
	c.smu.Unlock()
	s.leave(c, removed)
}

// unsubscribeAll removes c from every topic it is in.
func (s *Server) unsubscribeAll(c *conn) {
	c.smu.Lock()
	keys := make([]string, 0, len(c.streams))
	for k := range c.streams {
		keys = append(keys, k)
	}
	clear(c.streams)
	c.smu.Unlock()
	s.leave(c, keys)
}

func (s *Server) leave(c *conn, keys []string) {
	if len(keys) == 0 {
		return
	}
	ip := ipKey(c.clientAddr())
	r := &s.topics
	r.mu.Lock()
	defer r.mu.Unlock()
	if used := r.byIP[ip]; used != nil {
		for _, k := range keys {
			if used[k]--; used[k] <= 0 {
				delete(used, k)
			}
		}
		if len(used) == 0 {
			delete(r.byIP, ip)
		}
	}
	var unwanted []string
	for _, k := range keys {
		t := r.topics[k]
		if t == nil {
			continue
		}
		subs := *t.subs.Load()
		i := slices.Index(subs, c)
		if i < 0 {
			continue
		}
		if len(subs) == 1 {
			t.subs.Store(&[]*conn{})
			delete(r.topics, k)
			if err := s.cfg.Hub.Unsubscribe(s.ctx, k, s); err != nil {
				s.log.Error("hub unsubscribe", "stream", k, "err", err)
			}
			unwanted = append(unwanted, k)
			continue
		}
		t.subs.Store(new(slices.Delete(slices.Clone(subs), i, i+1)))
	}
	if len(unwanted) > 0 {
		s.cfg.Source.Unwant(unwanted)
	}
}

// StreamInfo describes one stream with local subscribers.
type StreamInfo struct {
	Stream      string `json:"stream"`
	Subscribers int    `json:"subscribers"`
	// MessagesPerSecond is the rate of its messages over the last whole
	// 10-second window; LastMessage is when the last one was delivered
	// (zero: none yet).
	MessagesPerSecond float64   `json:"messages_per_second"`
	LastMessage       time.Time `json:"last_message,omitzero"`
}

// Streams lists the streams this node's clients are subscribed to, sorted.
func (s *Server) Streams() []StreamInfo {
	now := time.Now().UnixNano()
	s.topics.mu.RLock()
	out := make([]StreamInfo, 0, len(s.topics.topics))
	for k, t := range s.topics.topics {
		si := StreamInfo{Stream: k, Subscribers: len(*t.subs.Load())}
		var last int64
		si.MessagesPerSecond, last = t.rate(now)
		if last != 0 {
			si.LastMessage = time.Unix(0, last)
		}
		out = append(out, si)
	}
	s.topics.mu.RUnlock()
	slices.SortFunc(out, func(a, b StreamInfo) int { return strings.Compare(a.Stream, b.Stream) })
	return out
}
