package downstream

import (
	"context"
	"encoding/json"
	"time"

	"github.com/marketgate/marketgate/hub"
)

// Catching up. A client that subscribes to a stream this node has not
// delivered yet, or that asks to recover what it missed (native "since"),
// needs what the hub's history holds ([hub.History]): the stream's
// position, its latest value, the messages after its position. Reading it
// may take a network round trip (Redis), which no pool worker may wait
// for, so the subscribe joins its streams at once and a catch-up task,
// run by the server's catch-up goroutines, reads the history and then
// queues, in order: the reply (native: with positions and what was
// recovered), the history messages, and the live messages of the streams
// that arrived meanwhile, which each stream's recovering entry held aside.
// Seq tells history and live apart: a live message at or before what the
// history gave is dropped, so the client gets each message once.
//
// The first live message after a catch-up that could not give the client
// everything it asked for (history gone, another epoch, an error) carries
// "gap":true: a client is never left with a silent hole.

const (
	// catchupWorkers is how many catch-ups run at once; each waits for
	// at most one history read.
	catchupWorkers = 16
	// catchupQueue bounds the catch-ups waiting for a worker; a subscribe
	// that finds it full is refused with CodeBusy.
	catchupQueue = 4096
	// maxCatchups bounds a connection's catch-ups queued or running.
	maxCatchups = 4
	// catchupTimeout bounds one catch-up's history reads.
	catchupTimeout = 5 * time.Second
)

// recovering is a stream a client is catching up on. Until the catch-up
// is done, live messages of the stream are held in held; after it, live
// messages at or before after are dropped, and the first one past it
// goes out (marked as a gap if gapNext or if it does not follow after),
// which ends the entry.
type recovering struct {
	cu       *catchup // the catch-up the entry waits for
	done     bool
	held     []heldFrame
	heldSize int
	overflow bool // held outgrew the queue's limit and was dropped
	after    hub.Position
	hasAfter bool
	gapNext  bool
}

// heldFrame is a live frame held aside during a catch-up.
type heldFrame struct {
	frame    []byte
	pos      hub.Position
	conflate *topic // as frameSet.conflatable
	final    bool
}

// catchup is one subscribe's catch-up: its streams, in command order, and
// how to reply.
type catchup struct {
	c     *conn
	items []catchupItem
	// reply builds the native reply from the positions read and what was
	// recovered; nil when the reply went out already (the Binance
	// dialect) or there is none (streams named in the URL).
	reply func(positions map[string]hub.Position, recovered map[string]bool) []byte
}

type catchupItem struct {
	t     *topic
	since *hub.Position // the client's position, for a recovery
	// read by the task:
	rec hub.Recovery
	err error
}

// watchLocked takes a live frame of a stream c is catching up on: it
// returns the frame to queue (fs's, or a gap-marked copy) and true, or
// false when the frame is held or dropped. c.mu is held.
func (c *conn) watchLocked(fs *frameSet, frame []byte) ([]byte, bool) {
	r := c.recov[fs.t.key]
	if r == nil {
		return frame, true
	}
	m := &fs.msg
	pos := hub.Position{Epoch: m.Epoch, Seq: m.Seq}
	if !r.done {
		if r.overflow {
			return nil, false
		}
		if r.heldSize+len(frame) > c.srv.cfg.WriteQueueBytes {
			r.held, r.heldSize, r.overflow = nil, 0, true
			return nil, false
		}
		r.held = append(r.held, heldFrame{frame, pos, fs.conflatable(), m.Final})
		r.heldSize += len(frame)
		return nil, false
	}
	if r.hasAfter && pos.Epoch == r.after.Epoch && pos.Seq <= r.after.Seq {
		return nil, false // the catch-up gave it already
	}
	if !m.Gap && (r.gapNext || r.hasAfter && (pos.Epoch != r.after.Epoch || pos.Seq != r.after.Seq+1)) {
		frame = fs.gapFrame(c)
	}
	delete(c.recov, fs.t.key)
	return frame, true
}

// startCatchupLocked holds the live messages of cu's streams aside and
// queues cu; c.mu is held, and cu's streams were joined in the same
// critical section. A connection's catch-ups run one at a time, in the
// order of its commands, so its replies keep that order. It reports
// false, changing nothing, when cu cannot be queued (c has maxCatchups
// already, or the node is busy).
func (c *conn) startCatchupLocked(cu *catchup) bool {
	if len(c.cuQueue) >= maxCatchups {
		return false
	}
	// Registered before cu is handed over: the catch-up writes its items.
	if c.recov == nil {
		c.recov = make(map[string]*recovering, len(cu.items))
	}
	for _, it := range cu.items {
		c.recov[it.t.key] = &recovering{cu: cu}
	}
	if len(c.cuQueue) == 0 {
		select {
		case c.srv.catchups <- cu:
		default:
			for _, it := range cu.items { // the node is busy
				delete(c.recov, it.t.key)
			}
			return false
		}
	}
	c.cuQueue = append(c.cuQueue, cu)
	return true
}

// recoveringLocked returns t's recovering entry that waits for cu, or nil
// when t was unsubscribed (and maybe subscribed again) meanwhile. c.mu is
// held.
func (c *conn) recoveringLocked(cu *catchup, t *topic) *recovering {
	if r := c.recov[t.key]; r != nil && r.cu == cu {
		return r
	}
	return nil
}

// dropRecovering forgets the catch-ups of keys (unsubscribed, failed).
func (c *conn) dropRecovering(keys []string) {
	c.mu.Lock()
	for _, k := range keys {
		delete(c.recov, k)
	}
	c.mu.Unlock()
}

// runCatchups runs catch-ups until ctx ends.
func (s *Server) runCatchups(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case cu := <-s.catchups:
			for cu != nil {
				// The connection's next catch-up, run here when the
				// queue has no room for it.
				cu = s.catchup(ctx, cu)
			}
		}
	}
}

// catchup reads the history of cu's streams and queues what it owes the
// client. It returns the connection's next catch-up when it could not
// queue it.
func (s *Server) catchup(ctx context.Context, cu *catchup) *catchup {
	h, _ := s.cfg.Hub.(hub.History)
	ctx, cancel := context.WithTimeout(ctx, catchupTimeout)
	defer cancel()
	for i := range cu.items {
		it := &cu.items[i]
		if h == nil {
			it.err = hub.ErrNoHistory
			continue
		}
		it.rec, it.err = h.Recover(ctx, it.t.key, it.since)
		if it.err != nil {
			s.metrics.catchupErrors.Add(1)
			s.log.Debug("history read", "stream", it.t.key, "err", it.err)
		}
	}
	next := cu.c.finishCatchup(cu)
	if next == nil {
		return nil
	}
	select {
	case s.catchups <- next:
		return nil
	default:
		return next
	}
}

// finishCatchup queues, in order, cu's reply, each stream's history
// messages (or latest value) and the live messages held aside meanwhile,
// and returns the connection's next catch-up, if any, to run.
func (c *conn) finishCatchup(cu *catchup) (next *catchup) {
	c.mu.Lock()
	c.cuQueue[0] = nil
	c.cuQueue = c.cuQueue[1:]
	if len(c.cuQueue) > 0 {
		next = c.cuQueue[0]
	} else {
		c.cuQueue = nil
	}
	if c.state.Load() != stateOpen {
		c.mu.Unlock()
		return next
	}
	// A stream that asked for no recovery starts at its first live message
	// held, when that came before the position read: the client gets
	// every message after its join, and the position says so.
	for i := range cu.items {
		it := &cu.items[i]
		r := c.recoveringLocked(cu, it.t)
		if it.since != nil || it.err != nil || r == nil || len(r.held) == 0 || it.rec.State != nil {
			continue
		}
		if h := r.held[0].pos; h.Epoch == it.rec.Position.Epoch && h.Seq > 0 && h.Seq <= it.rec.Position.Seq {
			it.rec.Position.Seq = h.Seq - 1
		}
	}
	var positions map[string]hub.Position
	var recovered map[string]bool
	for _, it := range cu.items {
		if it.err == nil && it.rec.Position.Epoch != "" {
			if positions == nil {
				positions = make(map[string]hub.Position, len(cu.items))
			}
			positions[it.t.key] = it.rec.Position
		}
		if it.since != nil {
			if recovered == nil {
				recovered = make(map[string]bool, len(cu.items))
			}
			r := c.recoveringLocked(cu, it.t)
			recovered[it.t.key] = it.err == nil && it.rec.Recovered && r != nil && !r.overflow
		}
	}
	if cu.reply != nil {
		reply := cu.reply(positions, recovered)
		if !c.roomLocked(len(reply)) {
			c.mu.Unlock()
			c.closeWith(StatusSlowConsumer, "slow consumer")
			return next
		}
		c.enqueueLocked(qframe{frame: reply, t: replyTag}, true)
	}
	ok := true
	for _, it := range cu.items {
		if ok = c.catchUpLocked(cu, it, recovered[it.t.key]); !ok {
			break
		}
	}
	c.mu.Unlock()
	if !ok {
		c.closeWith(StatusSlowConsumer, "slow consumer")
	}
	return next
}

// catchUpLocked queues one stream's history messages (when recovered) or
// latest value, then its held live messages, and leaves its recovering
// entry done. It reports false when the queue has no room. c.mu is held.
func (c *conn) catchUpLocked(cu *catchup, it catchupItem, recovered bool) bool {
	r := c.recoveringLocked(cu, it.t)
	if r == nil {
		return true // unsubscribed meanwhile
	}
	held := r.held
	r.done, r.held, r.heldSize = true, nil, 0
	if it.err == nil && it.rec.Position.Epoch != "" {
		r.after, r.hasAfter = it.rec.Position, true
	}
	r.gapNext = it.since != nil && !recovered
	queue := func(m hub.Message, latest bool) bool {
		fs := frameSet{t: it.t, msg: m, latest: latest}
		return c.queueLocked(fs.frame(c), fs.conflatable(), m.Final, true)
	}
	switch {
	case !recovered && it.err == nil && it.rec.State != nil:
		// The stream's state, then every message after it: the client
		// starts (again) from a whole state, so nothing is missing.
		r.gapNext = false
		if !queue(*it.rec.State, true) {
			return false
		}
		for _, m := range it.rec.Messages {
			if !queue(m, false) {
				return false
			}
		}
	case recovered:
		for _, m := range it.rec.Messages {
			if !queue(m, false) {
				return false
			}
		}
	case it.since == nil && it.err == nil && len(it.rec.Messages) == 1:
		m := it.rec.Messages[0]
		// The latest value, unless it or a newer message came live
		// meanwhile (then the position was moved back to the first held).
		if m.Conflate && it.rec.Position.Seq == m.Seq {
			if !queue(m, true) {
				return false
			}
		}
	}
	for i, h := range held {
		if r.hasAfter && h.pos.Epoch == r.after.Epoch && h.pos.Seq <= r.after.Seq {
			continue // the history gave it
		}
		if r.gapNext || r.hasAfter && (h.pos.Epoch != r.after.Epoch || h.pos.Seq != r.after.Seq+1) {
			// The client must see a gap, and a held frame cannot be
			// marked: drop the rest, and the next live message carries
			// the mark.
			r.gapNext = true
			c.srv.metrics.dropped("catchup", len(held)-i)
			return true
		}
		if !c.queueLocked(h.frame, h.conflate, h.final, true) {
			return false
		}
		r.after, r.hasAfter = h.pos, true
	}
	if r.overflow {
		r.gapNext = true
	}
	return true
}

// subscribeResult is the native subscribe reply's result.
type subscribeResult struct {
	Streams   []string                `json:"streams"`
	Positions map[string]hub.Position `json:"positions,omitempty"`
	Recovered map[string]bool         `json:"recovered,omitempty"`
}

// subscribeNative joins a native subscribe command's streams and answers
// it: at once when every stream's position is known here and nothing is
// to be recovered, else after a catch-up. since holds the client's
// positions, by stream key, for the streams it wants to recover. It
// reports whether the streams were joined.
func (c *conn) subscribeNative(id json.RawMessage, streams []string, since map[string]hub.Position) bool {
	c.mu.Lock()
	if c.state.Load() != stateOpen {
		c.mu.Unlock()
		return false
	}
	if len(c.cuQueue) >= maxCatchups {
		c.mu.Unlock()
		replyNative(c, id, nil, &nativeError{Code: CodeBusy, Msg: "too many subscribes waiting for history on this connection; wait for their replies"})
		return false
	}
	js, e := c.srv.subscribe(c, streams)
	if e != nil {
		c.mu.Unlock()
		replyNative(c, id, nil, e)
		return false
	}
	res := subscribeResult{Streams: streams}
	now := true
	for _, j := range js {
		p, asked := since[j.t.key]
		switch {
		case !j.known:
			now = false
		case asked && p != j.pos:
			now = false
		case asked:
			if res.Recovered == nil {
				res.Recovered = make(map[string]bool)
			}
			res.Recovered[j.t.key] = true // missed nothing
		case c.srv.stateful(j.t.key):
			now = false // the client needs the state first
		}
		if j.known {
			if res.Positions == nil {
				res.Positions = make(map[string]hub.Position, len(js))
			}
			res.Positions[j.t.key] = j.pos
		}
	}
	if !now {
		cu := &catchup{c: c, items: make([]catchupItem, len(js))}
		for i, j := range js {
			cu.items[i].t = j.t
			if p, ok := since[j.t.key]; ok {
				cu.items[i].since = &p
			}
		}
		cu.reply = func(pos map[string]hub.Position, rec map[string]bool) []byte {
			return nativeReplyFrame(c, id, subscribeResult{streams, pos, rec}, nil)
		}
		if c.startCatchupLocked(cu) {
			c.mu.Unlock()
			return true
		}
		// The node is busy: undo, and let the client retry.
		c.mu.Unlock()
		c.srv.unsubscribe(c, keysOf(js))
		replyNative(c, id, nil, &nativeError{Code: CodeBusy, Msg: "this node is busy reading stream history; try again later"})
		return false
	}
	reply := nativeReplyFrame(c, id, res, nil)
	if reply == nil || !c.roomLocked(len(reply)) {
		c.mu.Unlock()
		c.closeWith(StatusSlowConsumer, "slow consumer")
		return false
	}
	c.enqueueLocked(qframe{frame: reply, t: replyTag}, true)
	c.enqueueLatestLocked(js)
	c.mu.Unlock()
	return true
}

// subscribeQuiet joins streams for a Binance dialect client, queueing
// reply (if any) first: the latest values of streams known here follow
// at once, those of other streams after a catch-up. It reports whether
// the streams were joined; refused frames the error reply when the node
// refuses them.
func (c *conn) subscribeQuiet(reply []byte, keys []string, refused func(*nativeError) []byte) bool {
	c.mu.Lock()
	if c.state.Load() != stateOpen {
		c.mu.Unlock()
		return false
	}
	if reply != nil && !c.roomLocked(len(reply)) {
		c.mu.Unlock()
		c.closeWith(StatusSlowConsumer, "slow consumer")
		return false
	}
	js, e := c.srv.subscribe(c, keys)
	if e != nil {
		c.mu.Unlock()
		if f := refused(e); f != nil {
			c.enqueueReply(f)
		}
		return false
	}
	if reply != nil {
		c.enqueueLocked(qframe{frame: reply, t: replyTag}, true)
	}
	c.enqueueLatestLocked(js)
	var unknown []catchupItem
	for _, j := range js {
		if !j.known || c.srv.stateful(j.t.key) {
			unknown = append(unknown, catchupItem{t: j.t})
		}
	}
	if len(unknown) > 0 {
		// Without a catch-up the client just waits for the next message.
		c.startCatchupLocked(&catchup{c: c, items: unknown})
	}
	c.mu.Unlock()
	return true
}

// stateful reports whether key's subscribers start from its state
// (Config.Stateful).
func (s *Server) stateful(key string) bool {
	return s.cfg.Stateful != nil && s.cfg.Stateful(key)
}

// enqueueLatestLocked queues the latest values of the streams c just
// joined, right behind the reply, as frames of their streams (a newer
// message of one replaces its latest value while it waits). A client
// whose queue has no room even after conflation gets the stream's next
// message live.
func (c *conn) enqueueLatestLocked(js []joined) {
	for _, j := range js {
		if j.latest == nil {
			continue
		}
		if !c.roomLocked(len(j.latest)) {
			return
		}
		c.enqueueLocked(qframe{frame: j.latest, t: j.t}, true)
	}
}

func keysOf(js []joined) []string {
	out := make([]string, len(js))
	for i, j := range js {
		out[i] = j.t.key
	}
	return out
}
