package downstream

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
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
	dmu sync.Mutex
	// pos is the position of the last message delivered (hub.Position),
	// valid when known is set.
	pos   hub.Position
	known bool

	// latest is the newest message delivered of a stream whose messages
	// supersede each other (hub.Message.Conflate: tickers, book tops and
	// snapshots, candles), for a client that subscribes later: its data
	// (a copy, in a buffer reused from one message to the next) and this
	// node's seq of it. Under dmu: a subscriber joins the list and reads
	// latest in one step, and admit keeps latest and takes the list in
	// one step, so a new subscriber gets each message once, in order,
	// either as the latest value or live.
	latest    []byte
	latestPos hub.Position
	hasLatest bool

	// For the control API, also under dmu: when the last message was
	// delivered, and the messages of the current and the previous
	// rateWindow (which gives the rate).
	lastAt            int64 // unix nanos
	winStart          int64 // unix nanos
	winCount, winPrev int64
}

// rateWindow is the window of a stream's message rate in StreamInfo.
const rateWindow = 10 * time.Second

// maxKeptLatest is the largest latest-value buffer a topic keeps between
// messages; a larger one, grown by a rare big message, is let go.
const maxKeptLatest = 64 << 10

// keepLatestLocked records data, delivered at pos, as the stream's latest
// value; dmu is held.
func (t *topic) keepLatestLocked(data []byte, pos hub.Position) {
	if cap(t.latest) > maxKeptLatest && len(data) <= maxKeptLatest {
		t.latest = nil
	}
	t.latest = append(t.latest[:0], data...)
	t.latestPos, t.hasLatest = pos, true
}

// joined is what joining one stream gave a connection.
type joined struct {
	t *topic
	// latest is the frame of t's latest value for the connection, nil
	// when t has none.
	latest []byte
	// pos is t's position when the connection joined, valid when known
	// (t has delivered a message): every later message of t reaches the
	// connection live.
	pos   hub.Position
	known bool
}

// join adds c to t's subscribers (the registry's mu is held) and returns
// what c needs to go on from there: t's position and latest value.
func (t *topic) join(c *conn) joined {
	t.dmu.Lock()
	defer t.dmu.Unlock()
	subs := *t.subs.Load()
	t.subs.Store(new(append(slices.Clip(subs), c)))
	j := joined{t: t, pos: t.pos, known: t.known}
	if t.hasLatest {
		fs := frameSet{t: t, msg: hub.Message{Stream: t.key, Seq: t.latestPos.Seq, Epoch: t.latestPos.Epoch, Data: t.latest}, latest: true}
		j.latest = fs.frame(c)
	}
	return j
}

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
// hub and wants it from the source. The hub calls get no deadline or
// cancellation: [hub.Hub] promises that Subscribe and Unsubscribe do not
// block, and they run on client read tasks, where no context is at hand.
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
	if err := s.cfg.Hub.Unsubscribe(context.Background(), key, s); err != nil {
		s.log.Error("hub unsubscribe", "stream", key, "err", err)
	}
	s.cfg.Source.Unwant([]string{key})
	r.mu.Unlock()

	s.log.Warn("stream failed upstream", "stream", key, "reason", reason, "subscribers", len(subs))
	notices := make(map[protocol][]byte, 2) // each framed once
	for _, c := range subs {
		c.smu.Lock()
		delete(c.streams, key)
		c.smu.Unlock()
		c.dropRecovering([]string{key})
		f, ok := notices[c.proto]
		if !ok {
			f = c.proto.streamFailed(key, reason)
			notices[c.proto] = f
		}
		c.enqueueReply(f)
	}
}

// subscribe adds c to the topics of keys it is not yet subscribed to. Keys
// must be validated and within c's stream limit. It refuses the whole
// command, changing nothing, when it would take this node's distinct
// streams past MaxStreams or those of c's address past MaxStreamsPerIP, or
// when the hub refuses a new stream: a client is never told it subscribed
// to a stream that will bring no data. It returns what joining each new
// stream gave c (keys c was already subscribed to are left out): the
// caller, holding c.mu since before the call, queues the latest values
// right after its reply, ahead of any live message.
func (s *Server) subscribe(c *conn, keys []string) ([]joined, *nativeError) {
	c.smu.Lock()
	defer c.smu.Unlock()
	var added []string
	for _, k := range keys {
		if _, ok := c.streams[k]; !ok && !slices.Contains(added, k) {
			added = append(added, k)
		}
	}
	if len(added) == 0 {
		return nil, nil
	}
	ip := ipKey(c.clientAddr())

	r := &s.topics
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.state.Load() != stateOpen {
		// Closed meanwhile; unsubscribeAll may already have run.
		return nil, nil
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
	lim := s.limits.Load()
	switch {
	case len(r.topics)+len(fresh) > lim.MaxStreams:
		s.metrics.refusedStreams.Add(1)
		return nil, &nativeError{Code: CodeStreamLimit, Streams: clipList(fresh),
			Msg: fmt.Sprintf("this node carries at most %d distinct streams; try again later", lim.MaxStreams)}
	case len(used)+len(freshForIP) > lim.MaxStreamsPerIP:
		s.metrics.refusedStreams.Add(1)
		return nil, &nativeError{Code: CodeStreamLimit, Streams: clipList(freshForIP),
			Msg: fmt.Sprintf("the connections from one address may hold at most %d distinct streams", lim.MaxStreamsPerIP)}
	}
	for i, k := range fresh {
		if err := s.cfg.Hub.Subscribe(context.Background(), k, s); err != nil {
			s.log.Error("hub subscribe", "stream", k, "err", err)
			for _, done := range fresh[:i] {
				if err := s.cfg.Hub.Unsubscribe(context.Background(), done, s); err != nil {
					s.log.Error("hub unsubscribe", "stream", done, "err", err)
				}
			}
			s.metrics.refusedStreams.Add(1)
			return nil, &nativeError{Code: CodeUpstreamError, Streams: []string{k},
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
	js := make([]joined, 0, len(added))
	for _, k := range added {
		c.streams[k] = struct{}{}
		used[k]++
		t := r.topics[k]
		if t == nil {
			t = newTopic(k)
			r.topics[k] = t
		}
		js = append(js, t.join(c))
	}
	if len(fresh) > 0 {
		s.cfg.Source.Want(fresh)
	}
	return js, nil
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
	c.dropRecovering(removed)
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
			if err := s.cfg.Hub.Unsubscribe(context.Background(), k, s); err != nil {
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
