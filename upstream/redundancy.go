package upstream

import (
	"context"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/marketgate/marketgate/hub"
)

// Redundancy ([Config.Redundancy] N > 1) carries every stream on N
// connections at once, so that an abrupt drop of any one loses nothing.
//
// A [Feed] with redundancy N runs N lanes: itself (lane 0) and N−1 lane
// feeds, each a complete set of shards that subscribes the same streams,
// rotates and reconnects on its own. Lane k opens its connections
// k × laneStagger after lane 0 and rotates them at RotateAfter −
// k·RotateAfter/(2N), so the lanes' connections are of different ages and
// do not fail together. The lanes share one connection-attempt budget
// and the symbol list, and each lane gets MaxShards/N connections per
// endpoint, so N lanes together stay within the limits of one feed.
//
// Every lane de-duplicates its own connections as a lone feed does
// (rotate.go) and publishes to a [merger], which publishes each event to
// the hub once, in order, with its own Seq. The merger tells events
// apart by what each stream's [Order] says about them:
//   - ids (trades, book deltas, snapshots, candles): an event is new when
//     its id is after the last published one ([hub.EventID.After]).
//   - the same bytes ([OrderSame]): an event is new when its hash (with
//     the rotation's sameSeed) is not among the last sameWindow published.
//   - no identity ([OrderNone]): an event is new when its event time is
//     after the last published one's; without event times only one lane
//     (the one that published last) is taken, another after it has been
//     quiet for quietSwitch.
//
// A lane whose event carries Gap (it reconnected, or its rotation could
// not prove continuity) is not trusted while another lane is: like a new
// connection in a rotation it is "joining", and its events are held
// (HandoverBuffer at most) until it is seen in line — it delivered an
// event already published, or (consecutive ids) the one right after the
// last published — when the held events newer than the last published go
// out. If the lanes in line fall quiet for quietSwitch, or the buffer
// fills, the held events go out with Gap unless continuity is proven.
// With N = 2 one connection of a stream may drop at any time: the other,
// in line, carries the stream until the dropped one is back in line.

// MaxRedundancy bounds [Config.Redundancy].
const MaxRedundancy = 4

// laneStagger spaces the first connections of the lanes.
const laneStagger = time.Second

// merger merges the events of a feed's lanes into one publication per
// event. Safe for concurrent use; lock order: a lane's streamState.pmu,
// then mergeStream.mu, then merger.mu (a leaf).
type merger struct {
	pub    hub.Publisher
	d      Dialect
	prefix string // "<exchange>:"
	lanes  int
	hold   int // HandoverBuffer: held events per stream
	limit  int // streams remembered; past it they are all forgotten

	merged atomic.Int64 // events published
	dups   atomic.Int64 // events dropped as already published
	forced atomic.Int64 // joining lanes taken without proof (Gap unless continuity shows)

	// mu guards the following fields.
	mu      sync.Mutex
	streams map[string]*mergeStream
	forgot  bool // streams were forgotten: new ones start with Gap
}

// mergeStream is the merged state of one stream.
type mergeStream struct {
	order Order

	// mu guards the following fields; it is held while publishing, so
	// the stream's events are published one at a time, in order.
	mu       sync.Mutex
	seq      uint64
	gapNext  bool
	last     hub.EventID
	hasLast  bool
	lastTime int64               // the newest event time published
	ring     *sameRing           // OrderSame only
	inLine   [MaxRedundancy]bool // lanes whose events are known to follow the published ones
	primary  int                 // OrderNone without event times: the lane taken
	lastAt   time.Time           // when a lane in line last published
	// held are events of the joining lane heldLane, oldest first, copied.
	held     []heldMsg
	heldLane int
	heldAt   time.Time // when the first of them was held
}

// heldMsg is an event of a joining lane, held until it is in line.
type heldMsg struct {
	msg  hub.Message
	hash uint64 // of Data, for an [OrderSame] stream
}

func newMerger(cfg Config) *merger {
	return &merger{
		pub:     cfg.Publisher,
		d:       cfg.Dialect,
		prefix:  cfg.Dialect.Name() + ":",
		lanes:   cfg.Redundancy,
		hold:    cfg.HandoverBuffer,
		limit:   cfg.MaxShards*cfg.MaxStreams + maxTombstones,
		streams: make(map[string]*mergeStream),
	}
}

// laneOut is the [hub.Publisher] of lane k: it hands events to the
// merger. Only lane 0 publishes a stream's failure (Err): the lanes share
// the limits and the symbol list, so they fail alike.
type laneOut struct {
	m *merger
	k int
}

// Publish offers msg to the merger.
func (o laneOut) Publish(ctx context.Context, msg hub.Message) error {
	if msg.Err != "" && o.k != 0 {
		return nil
	}
	return o.m.publish(ctx, o.k, msg)
}

// Flush flushes the feed's publisher.
func (o laneOut) Flush(ctx context.Context) error { return o.m.pub.Flush(ctx) }

// stream returns the merged state of the stream key, made on first use.
func (m *merger) stream(key string) *mergeStream {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ms := m.streams[key]; ms != nil {
		return ms
	}
	if len(m.streams) >= m.limit {
		clear(m.streams)
		m.forgot = true
	}
	ms := &mergeStream{order: OrderNone, gapNext: m.forgot}
	if s, err := m.d.ParseStream(strings.TrimPrefix(key, m.prefix)); err == nil {
		ms.order = s.Order()
	}
	if ms.order == OrderSame {
		ms.ring = new(sameRing)
	}
	m.streams[key] = ms
	return ms
}

// publish takes one event (or failure) of lane k: it publishes it, holds
// it, or drops it as already published. msg.Data is valid only during the
// call.
func (m *merger) publish(ctx context.Context, k int, msg hub.Message) error {
	ms := m.stream(msg.Stream)
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if msg.Err != "" {
		ms.inLine, ms.held = [MaxRedundancy]bool{}, nil
		ms.gapNext = true
		ms.seq++
		msg.Seq = ms.seq
		return m.pub.Publish(ctx, msg)
	}
	if msg.Gap {
		ms.inLine[k] = false // it may have missed events: not trusted until seen in line
		if ms.heldLane == k {
			ms.held = nil
		}
	}
	if ms.order == OrderNone {
		return ms.offerNone(ctx, m, k, msg)
	}
	var h uint64
	if ms.order == OrderSame {
		h = maphash.Bytes(sameSeed, msg.Data)
	}
	if ms.seen(msg, h) {
		m.dups.Add(1)
		ms.joinLocked(k)
		return nil
	}
	if !ms.inLine[k] && ms.othersInLine(k) {
		if !ms.continues(msg) {
			return ms.holdLocked(ctx, m, k, msg, h)
		}
		ms.joinLocked(k) // continues the last published event
	}
	gap := false
	if !ms.inLine[k] {
		// The first lane to deliver after every lane lost its way.
		gap = msg.Gap && !ms.continues(msg)
		ms.inLine[k] = true
	}
	err := ms.publishLocked(ctx, m, msg, h, gap)
	if len(ms.held) > 0 {
		if cerr := ms.catchUpLocked(ctx, m, h); err == nil {
			err = cerr
		}
	}
	return err
}

// seen reports whether an event like msg was published already.
func (ms *mergeStream) seen(msg hub.Message, h uint64) bool {
	if ms.order == OrderSame {
		return ms.ring.published(h)
	}
	return ms.hasLast && !msg.ID.IsZero() && !msg.ID.After(ms.last)
}

// continues reports whether msg is the event right after the last one
// published; only a stream of consecutive ids ([OrderConsecutive]) can
// tell.
func (ms *mergeStream) continues(msg hub.Message) bool {
	return ms.order == OrderConsecutive && ms.hasLast && msg.ID.Prev == ms.last.Hi && msg.ID.Hi > ms.last.Hi
}

// othersInLine reports whether a lane other than k is in line.
func (ms *mergeStream) othersInLine(k int) bool {
	for j, ok := range ms.inLine {
		if ok && j != k {
			return true
		}
	}
	return false
}

// joinLocked puts lane k in line: it delivered an event already published
// or the next one, so what it held came before and was published too.
func (ms *mergeStream) joinLocked(k int) {
	ms.inLine[k] = true
	if ms.heldLane == k && len(ms.held) > 0 {
		ms.held = nil
	}
}

// holdLocked holds an event of the joining lane k until it is seen in
// line (catchUpLocked). With the buffer full, or the lanes in line quiet
// for quietSwitch, lane k is taken without proof. One lane holds at a
// time: the events of another joining lane are dropped meanwhile, since
// a lane in line delivers them.
func (ms *mergeStream) holdLocked(ctx context.Context, m *merger, k int, msg hub.Message, h uint64) error {
	now := time.Now()
	if len(ms.held) > 0 && ms.heldLane != k {
		if now.Sub(ms.heldAt) < quietSwitch {
			return nil
		}
		ms.held = nil // that lane stopped short of getting in line
	}
	if len(ms.held) == 0 {
		ms.heldLane, ms.heldAt = k, now
	}
	msg.Data = append([]byte(nil), msg.Data...)
	ms.held = append(ms.held, heldMsg{msg: msg, hash: h})
	quiet := now.Sub(ms.heldAt) >= quietSwitch && now.Sub(ms.lastAt) >= quietSwitch
	if len(ms.held) < m.hold && !quiet {
		return nil
	}
	// The lanes in line are gone (or far behind): this one carries on.
	m.forced.Add(1)
	ms.inLine = [MaxRedundancy]bool{}
	ms.inLine[k] = true
	held := ms.held
	ms.held = nil
	var err error
	for i, e := range held {
		if ms.seen(e.msg, e.hash) {
			continue
		}
		gap := i == 0 && !ms.continues(e.msg)
		if perr := ms.publishLocked(ctx, m, e.msg, e.hash, gap); perr != nil {
			err = perr
		}
	}
	return err
}

// catchUpLocked runs after a lane in line published the event of hash h:
// the held events it covered are dropped, and if it covered any, or the
// held ones continue it, the holding lane is in line and the rest of
// them go out.
func (ms *mergeStream) catchUpLocked(ctx context.Context, m *merger, h uint64) error {
	i := 0
	if ms.order == OrderSame {
		for i < len(ms.held) && ms.held[i].hash != h {
			i++
		}
		if i == len(ms.held) {
			return nil // not reached yet
		}
		i++
	} else {
		for i < len(ms.held) && !ms.held[i].msg.ID.After(ms.last) {
			i++
		}
		if i == 0 && !ms.continues(ms.held[0].msg) {
			return nil
		}
	}
	m.dups.Add(int64(i))
	rest := ms.held[i:]
	ms.inLine[ms.heldLane] = true
	ms.held = nil
	var err error
	for _, e := range rest {
		if ms.seen(e.msg, e.hash) {
			continue
		}
		if perr := ms.publishLocked(ctx, m, e.msg, e.hash, false); err == nil {
			err = perr
		}
	}
	return err
}

// offerNone takes an event of a stream without identity: new when its
// event time is after the last published one's; without event times,
// only from the lane taken.
func (ms *mergeStream) offerNone(ctx context.Context, m *merger, k int, msg hub.Message) error {
	now := time.Now()
	if msg.EventTime != 0 {
		if msg.EventTime <= ms.lastTime {
			m.dups.Add(1)
			ms.inLine[k] = true
			return nil
		}
	} else if ms.seq > 0 && k != ms.primary && now.Sub(ms.lastAt) < quietSwitch {
		m.dups.Add(1)
		return nil
	}
	gap := msg.Gap && !ms.othersInLine(k)
	if k != ms.primary && ms.seq > 0 && msg.EventTime == 0 {
		gap = true // another lane's events: some may be missing or repeated
	}
	ms.primary, ms.inLine[k] = k, true
	return ms.publishLocked(ctx, m, msg, 0, gap)
}

// publishLocked publishes msg with the stream's next Seq.
func (ms *mergeStream) publishLocked(ctx context.Context, m *merger, msg hub.Message, h uint64, gap bool) error {
	ms.seq++
	msg.Seq = ms.seq
	msg.Gap = gap || ms.gapNext
	ms.gapNext = false
	if !msg.ID.IsZero() {
		ms.last, ms.hasLast = msg.ID, true
	}
	ms.lastTime = max(ms.lastTime, msg.EventTime)
	if ms.order == OrderSame {
		ms.ring.remember(h)
	}
	ms.lastAt = time.Now()
	m.merged.Add(1)
	return m.pub.Publish(ctx, msg)
}

// RedundancyStats are what a feed's merger counted.
type RedundancyStats struct {
	// Merged counts events published after de-duplication.
	Merged int64 `json:"merged"`
	// Duplicates counts events dropped because another lane's copy was
	// published.
	Duplicates int64 `json:"duplicates"`
	// Forced counts joining lanes taken without proof that they follow
	// what was published (their first event carries Gap unless
	// continuity shows), because the lanes in line fell quiet.
	Forced int64 `json:"forced"`
}

func (m *merger) stats() RedundancyStats {
	return RedundancyStats{Merged: m.merged.Load(), Duplicates: m.dups.Load(), Forced: m.forced.Load()}
}
