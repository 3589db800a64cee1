package hub

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

var _ History = (*Redis)(nil)

// ErrNotSubscribed is returned by [Redis.Recover] for a stream that has no
// local receiver: only a subscription in place before the read makes the
// history and the live messages meet without a hole.
var ErrNotSubscribed = errors.New("hub: stream has no local receiver")

// The Redis keys of a stream, next to its channel (see [Redis.channel]):
//
//	<prefix>[{g<N>}]pos:<stream>   hash: the stream's numbering (see publishScript)
//	<prefix>[{g<N>}]hist:<stream>  stream: the last HistorySize frames published, entry id "<seq>-1", field "f"
//
// In cluster mode both carry the hash tag of the stream's channel, so the
// keys and the channel of a stream are in one slot and one script can
// touch them all; standalone, there is no tag.
const (
	posKeyPart  = "pos:"
	histKeyPart = "hist:"
	// stateKeyPart names a stream's state hash (Message.State):
	// <prefix>[{g<N>}]state:<stream>, fields seq, epoch and f (the
	// state's frame).
	stateKeyPart = "state:"
)

// posKey returns the key of stream's position hash.
func (r *Redis) posKey(stream string) string { return r.chanPrefix(stream) + posKeyPart + stream }

// histKey returns the key of stream's history.
func (r *Redis) histKey(stream string) string { return r.chanPrefix(stream) + histKeyPart + stream }

// stateKey returns the key of stream's state.
func (r *Redis) stateKey(stream string) string { return r.chanPrefix(stream) + stateKeyPart + stream }

// stateScript keeps a stream's state (Message.State) at the stream's
// position, in the state hash KEYS[2], when it comes from the origin of
// the newest message numbered (position hash KEYS[1]); empty body: the
// state is deleted. ARGV: 1 Message.Origin; 2 the frame's flags byte; 3
// the frame's body; 4 the history TTL in ms. It returns 1 when it kept
// (or deleted) the state, 0 when it dropped it. It runs in the publish
// pipeline, so it follows the messages published before it.
var stateScript = redis.NewScript(`
local st = redis.call('HMGET', KEYS[1], 'epoch', 'seq', 'origin')
if not st[1] or st[3] ~= ARGV[1] then return 0 end
if ARGV[3] == '' then
  redis.call('DEL', KEYS[2])
  return 1
end
redis.call('HSET', KEYS[2], 'seq', st[2], 'epoch', st[1], 'f', string.char(3, tonumber(ARGV[2])) .. st[2] .. ':' .. st[1] .. ':' .. ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
`)

// noticeScript publishes an unnumbered message (a stream's failure
// notice) on channel ARGV[1]: frame ARGV[2], with SPUBLISH when ARGV[3] is
// "1" (cluster mode). KEYS[1], the stream's position hash, only routes it
// to the stream's slot. It is a script, not a bare PUBLISH, so that a
// server that lost the scripts (NOSCRIPT) refuses it along with the
// numbered messages around it, and the batch's resend keeps their order.
var noticeScript = redis.NewScript(`
if ARGV[3] == '1' then
  redis.call('SPUBLISH', ARGV[1], ARGV[2])
else
  redis.call('PUBLISH', ARGV[1], ARGV[2])
end
return 1
`)

// publishScript numbers one message, keeps it in the stream's history and
// publishes it, atomically: it is [sequence.number] in Lua, with the
// state in the position hash KEYS[1] and the history in the stream
// KEYS[2]. It returns 1 when it published the message, 0 when it dropped
// it (an older origin's, or an event already numbered).
//
// ARGV: 1 a fresh epoch, used when the position hash does not exist
// (never published, expired after positionTTL, or Redis lost its data);
// 2 Message.Origin; 3 Message.Seq; 4 Message.Seq-1 ("" when Seq is 0);
// 5, 6, 7 ID.Hi, ID.Sub, ID.Prev ("" for Hi when the message has no ID);
// 8 the frame's flags byte; 9 the frame's body; 10 the channel; 11 the
// history size (0: keep none); 12 the history TTL and 13 the position
// TTL, in milliseconds; 14 "1" to SPUBLISH (cluster mode).
//
// Hash fields: epoch, seq (the position of the last message numbered),
// origin, src (its publisher's Seq), hi and sub (the last ID, absent
// while no message had one), next and nextsrc (a newer origin seen only
// repeating numbered events, "0" for none, and its last Seq).
//
// Numbers: origins, publisher Seqs and IDs are compared exactly, as
// decimal strings without leading zeros (less), so their whole uint64
// range works; IDs are unsigned there, as in the frame. The position
// itself is a Lua number (a double), exact below 2^53: a stream would
// need 2^53 events, 285 years at a million a second, to lose it.
var publishScript = redis.NewScript(`
local function less(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end
local pos, hist, postl = KEYS[1], KEYS[2], ARGV[13]
local st = redis.call('HMGET', pos, 'epoch', 'seq', 'origin', 'src', 'hi', 'sub', 'next', 'nextsrc')
local epoch, seq, origin, src, hi, sub, nxt, nxtsrc = st[1], tonumber(st[2]), st[3], st[4], st[5], st[6], st[7], st[8]
if not epoch then
  epoch, seq, origin, src, hi, sub, nxt, nxtsrc = ARGV[1], 0, '0', '0', false, false, '0', '0'
  redis.call('DEL', hist)
end
local morigin, mseq, mprev, mhi, msub, mprevid = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
if less(morigin, origin) then return 0 end
local rep = mhi ~= '' and hi and not (less(hi, mhi) or (mhi == hi and less(sub, msub)))
local gap = false
if less(origin, morigin) and rep then
  redis.call('HSET', pos, 'next', morigin, 'nextsrc', mseq)
  redis.call('PEXPIRE', pos, postl)
  return 0
elseif less(origin, morigin) then
  local proven = (nxt == morigin and nxtsrc == mprev) or (mprevid ~= '0' and hi and mprevid == hi)
  gap = seq > 0 and not proven
  origin, nxt = morigin, '0'
elseif rep then
  redis.call('HSET', pos, 'src', mseq)
  redis.call('PEXPIRE', pos, postl)
  return 0
else
  gap = seq > 0 and src ~= mprev
end
src = mseq
if mhi ~= '' then hi, sub = mhi, msub end
seq = seq + 1
local s = string.format('%.0f', seq)
local flags = tonumber(ARGV[8])
if gap then flags = bit.bor(flags, 1) end
local frame = string.char(3, flags) .. s .. ':' .. epoch .. ':' .. ARGV[9]
local size = tonumber(ARGV[11])
if size > 0 then
  redis.call('XADD', hist, 'MAXLEN', '~', size, s .. '-1', 'f', frame)
  redis.call('PEXPIRE', hist, ARGV[12])
end
if hi then
  redis.call('HSET', pos, 'epoch', epoch, 'seq', s, 'origin', origin, 'src', src, 'next', nxt, 'nextsrc', nxtsrc, 'hi', hi, 'sub', sub)
else
  redis.call('HSET', pos, 'epoch', epoch, 'seq', s, 'origin', origin, 'src', src, 'next', nxt, 'nextsrc', nxtsrc)
end
redis.call('PEXPIRE', pos, postl)
if ARGV[14] == '1' then
  redis.call('SPUBLISH', ARGV[10], frame)
else
  redis.call('PUBLISH', ARGV[10], frame)
end
return 1
`)

// recoverScript reads a stream's position, history and state
// atomically. KEYS: the position hash, the history stream and the state
// hash. ARGV: 1 "L" for the latest message, "S" for the messages after a
// position; 2, 3 that position's epoch and seq; 4 the history size; 5 an
// epoch candidate; 6 the position's TTL in ms. A stream without a
// position gets one, at seq 0 of a new epoch (the only write): a client
// that subscribes before the first message still holds a position to
// recover from. It returns {epoch, seq, entries, mode, state}: with mode
// "R" the entries (XRANGE's shape) are every message after the position
// asked for; with "T" the state's frame is state and the entries are
// every message after it; with "L" entries hold the newest message, if
// any; with "" nothing could be read. Positions are Lua numbers: see
// publishScript.
var recoverScript = redis.NewScript(`
local st = redis.call('HMGET', KEYS[1], 'epoch', 'seq')
if not st[1] then
  redis.call('HSET', KEYS[1], 'epoch', ARGV[5], 'seq', 0, 'origin', '0', 'src', '0', 'next', '0', 'nextsrc', '0')
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
  redis.call('DEL', KEYS[2], KEYS[3])
  st = {ARGV[5], '0'}
end
local seq, size = tonumber(st[2]), tonumber(ARGV[4])
local function after(epoch, since)
  if epoch ~= st[1] or since > seq or seq - since > size then return nil end
  if since == seq then return {} end
  local e = redis.call('XRANGE', KEYS[2], string.format('%.0f', since + 1) .. '-1', '+', 'COUNT', seq - since)
  if #e ~= seq - since then return nil end
  return e
end
if ARGV[1] == 'S' then
  local e = after(ARGV[2], tonumber(ARGV[3]))
  if e then return {st[1], st[2], e, 'R', ''} end
end
local ss = redis.call('HMGET', KEYS[3], 'seq', 'epoch', 'f')
if ss[3] then
  local e = after(ss[2], tonumber(ss[1]))
  if e then return {st[1], st[2], e, 'T', ss[3]} end
end
if ARGV[1] == 'L' then
  return {st[1], st[2], redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1), 'L', ''}
end
return {st[1], st[2], {}, '', ''}
`)

// historySize returns how many messages per stream the hub keeps; 0 for
// none.
func (r *Redis) historySize() int {
	switch {
	case r.cfg.HistorySize < 0:
		return 0
	case r.cfg.HistorySize == 0:
		return DefaultHistorySize
	}
	return r.cfg.HistorySize
}

// spublishArg is the scripts' argument that says whether to SPUBLISH.
func spublishArg(cluster bool) string {
	if cluster {
		return "1"
	}
	return "0"
}

// publishArgs returns the ARGV of publishScript for p, whose frame body
// is body.
func (r *Redis) publishArgs(p *pendingPub, body []byte) []any {
	prev := ""
	if p.seq > 0 {
		prev = strconv.FormatUint(p.seq-1, 10)
	}
	hi := ""
	if !p.id.IsZero() {
		hi = strconv.FormatUint(uint64(p.id.Hi), 10)
	}
	return []any{
		newEpoch(),
		strconv.FormatUint(p.origin, 10),
		strconv.FormatUint(p.seq, 10),
		prev,
		hi,
		strconv.FormatUint(uint64(p.id.Sub), 10),
		strconv.FormatUint(uint64(p.id.Prev), 10),
		int(p.flags),
		body,
		p.channel,
		r.historySize(),
		r.cfg.HistoryTTL.Milliseconds(),
		positionTTL.Milliseconds(),
		spublishArg(r.cluster),
	}
}

// Recover implements [History]. It first waits, bounded by ctx, until
// this node's subscription to stream is in place in Redis (the caller
// subscribed a receiver before; without a local receiver it fails with
// [ErrNotSubscribed]) and a PING on the subscriber connection came back
// (the connection is alive and subscribed now), so that every message
// after the Position it returns reaches the receivers live: one round
// trip more per call. Then it reads the stream's position
// and history in one script, atomically with the publishes.
//
// Since is recovered when it is of the current epoch, not past the
// current position, and at most HistorySize behind it, and when the
// history still holds every message after it (it may have expired:
// HistoryTTL). A stream without a position (never published, idle for a
// day, or Redis lost its data) starts a new epoch at seq 0. With history turned
// off it still returns the position, and recovers only a since that
// missed nothing.
//
// While a subscriber connection is down its streams count as not
// subscribed, so Recover waits until it is back and resubscribed.
func (r *Redis) Recover(ctx context.Context, stream string, since *Position) (Recovery, error) {
	size := r.historySize()
	if err := r.subscribedNow(ctx, stream); err != nil {
		return Recovery{}, fmt.Errorf("hub: recover %q: %w", stream, err)
	}
	args := []any{"L", "", "0", size, newEpoch(), positionTTL.Milliseconds()}
	if since != nil {
		args = []any{"S", since.Epoch, strconv.FormatUint(since.Seq, 10), size, newEpoch(), positionTTL.Milliseconds()}
	}
	v, err := recoverScript.Run(ctx, r.client, []string{r.posKey(stream), r.histKey(stream), r.stateKey(stream)}, args...).Slice()
	if err != nil {
		return Recovery{}, fmt.Errorf("hub: recover %q: read history: %w", stream, err)
	}
	rec, err := parseRecovery(stream, since, v)
	if err != nil {
		return Recovery{}, fmt.Errorf("hub: recover %q: %w", stream, err)
	}
	return rec, nil
}

// parseRecovery turns recoverScript's reply into a Recovery.
func parseRecovery(stream string, since *Position, v []any) (Recovery, error) {
	var rec Recovery
	if len(v) != 5 {
		return rec, fmt.Errorf("reply of %d items", len(v))
	}
	epoch, _ := v[0].(string)
	seqText, _ := v[1].(string)
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if err != nil {
		return rec, fmt.Errorf("position seq %q: %w", seqText, err)
	}
	rec.Position = Position{Epoch: epoch, Seq: seq}
	entries, _ := v[2].([]any)
	mode, _ := v[3].(string)
	msgs := make([]Message, 0, len(entries))
	for _, e := range entries {
		m, err := parseEntry(stream, e)
		if err != nil {
			return Recovery{}, err
		}
		msgs = append(msgs, m)
	}
	// from is the position the entries follow, for modes R and T: they
	// must be from+1, from+2, ... up to the position, with no hole.
	var from uint64
	switch mode {
	case "L":
		if len(msgs) > 0 { // as Memory: nil when nothing is kept
			rec.Messages = msgs
		}
		return rec, nil
	case "R":
		if since == nil {
			return rec, fmt.Errorf("recovered a position not asked for")
		}
		from = since.Seq
	case "T":
		frame, _ := v[4].(string)
		st, err := decodeFrame(frame)
		if err != nil {
			return Recovery{}, fmt.Errorf("state: %w", err)
		}
		if st.Stream != stream {
			return Recovery{}, fmt.Errorf("state of stream %q", st.Stream)
		}
		st.Stream, st.Epoch, st.Data, st.State = stream, string([]byte(st.Epoch)), []byte(string(st.Data)), true
		rec.State, from = &st, st.Seq
	default:
		return rec, nil
	}
	if uint64(len(msgs)) != seq-from {
		return Recovery{Position: rec.Position}, nil
	}
	for i, m := range msgs {
		if m.Seq != from+1+uint64(i) || m.Epoch != epoch {
			return Recovery{Position: rec.Position}, nil
		}
	}
	rec.Messages = msgs
	rec.Recovered = mode == "R"
	return rec, nil
}

// parseEntry decodes one history entry, [id, [field, frame]], into a
// Message that owns its Data.
func parseEntry(stream string, e any) (Message, error) {
	kv, _ := e.([]any)
	if len(kv) != 2 {
		return Message{}, fmt.Errorf("history entry %v", e)
	}
	fields, _ := kv[1].([]any)
	if len(fields) != 2 {
		return Message{}, fmt.Errorf("history entry %v: fields %v", kv[0], kv[1])
	}
	frame, _ := fields[1].(string)
	m, err := decodeFrame(frame)
	if err != nil {
		return Message{}, fmt.Errorf("history entry %v: %w", kv[0], err)
	}
	if m.Stream != stream {
		return Message{}, fmt.Errorf("history entry %v: frame of stream %q", kv[0], m.Stream)
	}
	// decodeFrame's strings point into the reply: own them.
	m.Stream = stream
	m.Epoch = string([]byte(m.Epoch))
	m.Data = []byte(string(m.Data))
	return m, nil
}

// waitSubscribed waits until stream's subscription is confirmed in Redis
// (see [Redis.confirm]) or ctx ends.
func (r *Redis) waitSubscribed(ctx context.Context, stream string) error {
	for {
		r.mu.RLock()
		e := r.subs[stream]
		var ready chan struct{}
		confirmed := false
		if e != nil {
			ready, confirmed = e.ready, e.confirmed
		}
		r.mu.RUnlock()
		switch {
		case e == nil:
			return ErrNotSubscribed
		case confirmed:
			return nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return fmt.Errorf("wait for the subscription: %w", ctx.Err())
		}
	}
}

// confirm marks the streams that have local receivers as subscribed in
// Redis, waking the Recover calls that wait for them. Only the
// subscription manager calls it, once Redis has answered a PING sent
// after the streams' SUBSCRIBE on the same connection.
func (r *Redis) confirm(streams []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range streams {
		if e := r.subs[s]; e != nil && !e.confirmed {
			e.confirmed = true
			close(e.ready)
		}
	}
}

// unconfirm marks the streams of c as not subscribed (c's connection
// broke; go-redis resubscribes them when it reconnects, and the manager
// confirms them again then).
func (r *Redis) unconfirm(c *subConn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for s, e := range r.subs {
		if e.confirmed && r.chanPrefix(s) == c.prefix {
			e.confirmed = false
			e.ready = make(chan struct{})
		}
	}
}

// streamsOf returns the streams with local receivers on c's connection.
func (r *Redis) streamsOf(c *subConn) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []string
	for s := range r.subs {
		if r.chanPrefix(s) == c.prefix {
			out = append(out, s)
		}
	}
	return out
}

// syncConn makes a [subConn.roundTrip] on c, bounded by
// subscribeTimeout: every (S)SUBSCRIBE sent on c before has then been
// applied.
func (m *subManager) syncConn(ctx context.Context, c *subConn) error {
	cctx, cancel := context.WithTimeout(ctx, subscribeTimeout)
	defer cancel()
	return c.roundTrip(cctx, m.r.pingPayload())
}

// pingPayload returns a PING payload no other PING of the hub has.
func (r *Redis) pingPayload() string {
	return r.token + "-" + strconv.FormatUint(r.pings.Add(1), 36)
}

// roundTrip sends a PING with payload on c and waits until its reply
// comes back through c's receive loop, or ctx ends. Redis answers a
// connection's commands in order, and go-redis resubscribes a new
// connection's channels before it writes anything else on it, so once
// the reply is back every channel of c is subscribed on the connection
// c reads.
func (c *subConn) roundTrip(ctx context.Context, payload string) error {
	w := make(chan struct{})
	c.pongMu.Lock()
	c.pongWaiters[payload] = w
	c.pongMu.Unlock()
	defer func() {
		c.pongMu.Lock()
		delete(c.pongWaiters, payload)
		c.pongMu.Unlock()
	}()
	if err := c.ps.Ping(ctx, payload); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	select {
	case <-w:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("ping not answered: %w", ctx.Err())
	}
}

// connOf returns the subscriber connection of stream's group, or nil
// while it is not open.
func (r *Redis) connOf(stream string) *subConn {
	p := r.chanPrefix(stream)
	r.connsMu.Lock()
	defer r.connsMu.Unlock()
	for _, c := range r.conns {
		if c.prefix == p {
			return c
		}
	}
	return nil
}

// recoverPing bounds each round trip of [Redis.subscribedNow]; a
// connection that broke unnoticed loses the PING, and the next try goes
// on the new connection.
const recoverPing = time.Second

// subscribedNow waits until stream's subscription is confirmed and a
// round trip on its connection proves the connection alive and the
// subscription on it, or ctx ends: the receive loop notices a broken
// connection only when its read fails, so the confirmation alone could
// be stale by then.
func (r *Redis) subscribedNow(ctx context.Context, stream string) error {
	for {
		if err := r.waitSubscribed(ctx, stream); err != nil {
			return err
		}
		c := r.connOf(stream)
		if c == nil { // confirmed on a connection not listed yet: cannot be
			return errors.New("no subscriber connection")
		}
		pctx, cancel := context.WithTimeout(ctx, recoverPing)
		err := c.roundTrip(pctx, r.pingPayload())
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("wait for the subscription: %w", ctx.Err())
		}
	}
}
