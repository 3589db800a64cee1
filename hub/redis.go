package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/marketgate/marketgate/internal/backoff"
	"github.com/marketgate/marketgate/internal/nodeid"
	"github.com/redis/go-redis/v9"
)

var _ Hub = (*Redis)(nil)

// Defaults of [RedisConfig], as its field docs state them.
const (
	defaultRedisPrefix        = "marketgate:"
	defaultRedisGroups        = 16
	defaultRedisProbeInterval = time.Second
	defaultRedisProbeTimeout  = 3 * time.Second
	defaultRedisMaxStreams    = 100_000
	defaultRedisBatchSize     = 500
	defaultRedisMaxBatchBytes = 1 << 20
)

const (
	// maxGroups is the number of Redis Cluster hash slots: more groups
	// than slots would spread nothing further.
	maxGroups = 16384
	// subscribeTimeout bounds one SUBSCRIBE or UNSUBSCRIBE call, dial included.
	subscribeTimeout = 5 * time.Second
	// minBackoff and maxBackoff bound the waits of the receive loops and the
	// subscription manager after a failure (see [newBackoff]). maxBackoff
	// also bounds how long data stays off after Redis is back.
	minBackoff = 50 * time.Millisecond
	maxBackoff = 2 * time.Second
	// maxKeptBatch is the largest publish buffer kept for the next batch.
	maxKeptBatch = 4 << 20
	// deliverQueue is how many received messages a subscriber connection's
	// reader may be ahead of its delivery.
	deliverQueue = 1024
	// probeStream starts the stream keys whose channels would be the probe
	// channels; the exchange name "probe" is reserved.
	probeStream = "probe:"
)

// RedisConfig configures a [Redis] hub. Zero fields take the documented
// defaults.
type RedisConfig struct {
	// URL is the Redis server, "redis://[user:password@]host:port/db" (or
	// rediss:// for TLS), parsed by go-redis's ParseURL. Exactly one of
	// URL, Options, ClusterAddrs and ClusterOptions is set.
	URL string
	// Options configure the client of a standalone server in full:
	// address, credentials, TLS (a CA, a client certificate). The hub
	// uses a copy, with MaxRetries -1; every connection it opens,
	// subscriber connections included, uses them.
	Options *redis.Options
	// ClusterAddrs are seed addresses ("host:port") of a Redis Cluster
	// that needs no credentials and no TLS. The hub then uses sharded
	// pub/sub (SPUBLISH/SSUBSCRIBE), so each message travels only within
	// the shard that owns its channel.
	ClusterAddrs []string
	// ClusterOptions are ClusterAddrs with the rest of the cluster
	// client's configuration: credentials and TLS, as go-redis's
	// ParseClusterURL makes them. The hub uses a copy, with MaxRetries -1.
	ClusterOptions *redis.ClusterOptions
	// NodeID names this node; it keeps the node's health probes apart from
	// other nodes'. Default: "<host name>-<pid>" ([nodeid.Default]).
	NodeID string
	// Logger receives state changes (disconnects, reconnects, dropped
	// frames); nil discards them.
	Logger *slog.Logger
	// Prefix starts every channel name. Default: "marketgate:". In cluster
	// mode it must not contain '{' or '}', which would change the hash slot.
	Prefix string
	// Groups is, in cluster mode, how many hash-slot groups the streams are
	// spread over; each group is one hash tag, one shard and one subscribe
	// connection at most. Default: 16. Every node of a cluster must use the
	// same value. Unused in standalone mode.
	Groups int
	// ProbeInterval is how often the hub sends itself a probe through
	// Redis. Default: 1s.
	ProbeInterval time.Duration
	// ProbeTimeout is how long the hub stays ready without receiving a
	// probe back. It must exceed ProbeInterval. Default: 3s.
	ProbeTimeout time.Duration
	// MaxStreams bounds the distinct streams with local receivers, and so
	// the receiver map and the set of pending subscription changes (which
	// holds at most the streams with receivers plus those still
	// subscribed in Redis). Default: 100000.
	MaxStreams int
	// BatchSize is the most channels named in one SUBSCRIBE or UNSUBSCRIBE
	// command. Default: 500.
	BatchSize int
	// MaxBatchBytes bounds the encoded messages Publish holds until the
	// next Flush; a Publish that reaches it sends the batch itself.
	// Default: 1 MiB.
	MaxBatchBytes int
	// HistorySize is how many messages per stream the hub keeps in Redis
	// for [Redis.Recover]: 0 means [DefaultHistorySize], a negative value
	// none (messages are still numbered; Recover gives positions only).
	// Redis trims approximately (XADD MAXLEN ~), so a stream may hold a
	// few dozen more; Recover never recovers more than HistorySize.
	// Every node of a cluster should use the same value.
	HistorySize int
	// HistoryTTL is how long a stream's history outlives its last
	// message: 0 means [DefaultHistoryTTL]. The stream's position (epoch
	// and seq) is kept for a day, so a client that missed nothing of a
	// quiet stream still recovers after its history expired.
	HistoryTTL time.Duration
}

// Redis is the [Hub] that fans messages out across nodes through Redis
// pub/sub, a standalone server or a cluster with sharded pub/sub. It is
// safe for concurrent use.
//
// Every message takes one path: Publish sends it to Redis once, and every
// node, the publishing one included, gets it back on its subscriber
// connection and hands it to its local receivers. On its way in, one Lua
// script per message numbers it (see [Position]: the rules of the
// single-node hub, with the stream's numbering in a Redis hash), appends
// it to the stream's history (a Redis stream, trimmed to about
// RedisConfig.HistorySize and expiring RedisConfig.HistoryTTL after the
// stream's last message) and publishes it with its position, all
// atomically, so the position, the history and the order of delivery
// agree on every node. [Redis.Recover] reads that history. Local receivers are not
// called directly, so all of them see one order per stream, the order in
// which Redis received the messages, and a message reaches the local
// receivers only if Redis could carry it to the other nodes too. The cost
// is a round trip through Redis for local subscribers.
//
// Publish only encodes into a batch; [Redis.Flush], which the publisher
// calls at the end of each burst, sends the batch as one pipeline of
// EVALSHA commands (PUBLISH for messages with Err, which are neither
// numbered nor kept), one round trip per burst instead of per message.
// Each subscriber connection has a reader goroutine and a delivery
// goroutine: delivery calls Receive for each message, and Flush on the
// receivers it gave messages whenever it has caught up with the reader.
// In cluster mode the connections deliver concurrently, so a receiver's
// Receive and Flush may be called from several goroutines at once (for
// different streams).
//
// Subscribe and Unsubscribe only update the local receiver map and never
// touch the network, so they may be called while holding locks and while
// Redis is down. When a stream gains its first receiver or loses its last,
// the stream is marked as changed; a goroutine of Run brings the Redis
// subscriptions in line with the map, batching many streams into one
// command. The set of changed streams is bounded by the number of
// distinct streams. Until the command has reached Redis, messages of a
// new stream are not delivered; [Redis.Recover] waits for the
// subscription to be in place, then replays what history holds, so a
// receiver that subscribes and then recovers misses nothing.
//
// One subscriber connection serves standalone mode. In cluster mode the
// streams are spread over RedisConfig.Groups hash tags ("{g<N>}"), each
// group's channels sharing one hash slot, and each group gets its own
// subscriber connection to the shard that owns it, opened the first time
// a stream of the group is subscribed and kept until Run ends.
//
// Connection loss: go-redis redials and resubscribes every channel of a
// connection by itself; the receive loops back off between attempts. The
// hub invents no Gap for messages lost meanwhile: downstream sees the
// break in Seq, and may recover what it missed from history. Health is checked end to end: every ProbeInterval the hub
// publishes a probe to its own per-node channel on each subscriber
// connection, and [Redis.Ready] fails while a probe is overdue or Redis
// reports an error. A connection that dies silently (no RST) is found by
// the TCP keepalives of go-redis's dialer, within about a minute; until
// then Ready reports the overdue probe.
//
// Locks: sendMu is taken before pubMu; otherwise none of mu, connsMu,
// sendMu and pubMu is held with another, and a subscriber connection's own
// mu and pongMu are taken last, never together. No lock is held while a
// receiver is called, nor while Recover waits.
//
// TODO(maintainers): on a cluster resharding Redis drops the sharded subscriptions of
// the moved slots (a "sunsubscribe" push); the hub does not resubscribe
// them yet. Restart the nodes after resharding.
type Redis struct {
	cfg     RedisConfig
	log     *slog.Logger
	client  redis.UniversalClient
	cluster bool
	// groupPrefix[g] is prefix+"{g<g>}" in cluster mode; unused otherwise.
	groupPrefix []string
	// token marks this hub's probes, so that a second hub with the same
	// NodeID (a misconfiguration) cannot answer them.
	token string
	// wake tells the subscription manager that dirty has entries.
	wake chan struct{}

	state atomic.Int32 // hubNew, hubRunning or hubStopped

	published, publishErrors, received, decodeErrors, subscribeErrors atomic.Uint64
	panics                                                            atomic.Uint64 // recovered in receivers
	// pings numbers the PINGs of [subConn.roundTrip], so that each has
	// a payload of its own.
	pings atomic.Uint64
	// dropped counts the messages the publish script dropped (an older
	// origin's, or events already numbered). TODO(maintainers): export it
	// as Stats.Dropped once hub.Stats has the field.
	dropped atomic.Uint64

	// mu guards the following fields.
	mu sync.RWMutex
	// subs maps each stream with local receivers to them.
	subs map[string]*streamReceivers
	// dirty holds the streams that gained their first or lost their last
	// receiver since the subscription manager last looked.
	dirty map[string]struct{}

	// connsMu guards the following fields.
	connsMu sync.Mutex
	// conns are the open subscriber connections, the probe's home first.
	conns []*subConn

	// sendMu serializes the sending of publish batches, so that batches
	// reach Redis in the order they were taken, and guards the following
	// fields.
	sendMu sync.Mutex
	// spare is the batch emptied by the last send, ready for reuse.
	spare *pubBatch
	// sendFailed is whether the last send had an error.
	sendFailed bool

	// pubMu guards the following fields.
	pubMu sync.Mutex
	// pending collects what Publish encoded since the last send.
	pending *pubBatch
}

// pubBatch is the encoded messages waiting for a send, all frames in one
// buffer.
type pubBatch struct {
	buf  []byte
	msgs []pendingPub
}

// pendingPub is one message of a [pubBatch].
type pendingPub struct {
	channel    string
	start, end int // the frame, or with numbered its body, is buf[start:end]
	// numbered is whether the message goes through publishScript (it has
	// no Err), else through noticeScript; the fields below are then its
	// script's input (posKey alone for a notice).
	numbered bool
	// state is whether the message is a stream's state (Message.State),
	// which goes through stateScript.
	state           bool
	flags           byte
	origin, seq     uint64
	id              EventID
	posKey, histKey string
}

const (
	hubNew int32 = iota
	hubRunning
	hubStopped
)

// streamReceivers are the local receivers of one stream.
type streamReceivers struct {
	// key is the stream key, owned by the map rather than by a received
	// payload, so that delivered messages do not pin payloads in memory.
	key string
	// rs is replaced, never modified in place, so dispatch can range over
	// it without the lock.
	rs []Receiver
	// confirmed is whether the stream's subscription is known to be in
	// place in Redis; ready is closed when it becomes so (and replaced
	// when the connection breaks). See [Redis.Recover].
	confirmed bool
	ready     chan struct{}
}

// subConn is one subscriber connection and its health.
type subConn struct {
	group int // -1 in standalone mode
	// prefix starts every channel on this connection.
	prefix  string
	probeCh string
	home    bool
	ps      *redis.PubSub
	// pongMu guards pongWaiters: who waits for the reply to a PING of
	// [subConn.roundTrip], by its payload.
	pongMu      sync.Mutex
	pongWaiters map[string]chan struct{}
	// resync asks the subscription manager to subscribe and confirm the
	// connection's streams again: it broke and is back.
	resync atomic.Bool

	// mu guards the following fields.
	mu       sync.Mutex
	opened   time.Time
	acked    bool
	lastAck  time.Time
	recvErr  error
	probeErr error
}

// NewRedis returns a hub using the Redis server or cluster of cfg. It
// checks cfg and prepares the client but connects nothing: connections
// are made on first use, and subscriptions and health probes need
// [Redis.Run].
func NewRedis(cfg RedisConfig) (*Redis, error) {
	set := 0
	for _, b := range []bool{cfg.URL != "", cfg.Options != nil, len(cfg.ClusterAddrs) > 0, cfg.ClusterOptions != nil} {
		if b {
			set++
		}
	}
	if set != 1 {
		return nil, errors.New("hub: redis: set exactly one of URL, Options, ClusterAddrs and ClusterOptions")
	}
	cluster := len(cfg.ClusterAddrs) > 0 || cfg.ClusterOptions != nil
	if cfg.NodeID == "" {
		cfg.NodeID = nodeid.Default()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = defaultRedisPrefix
	}
	if cfg.Groups == 0 {
		cfg.Groups = defaultRedisGroups
	}
	if cfg.ProbeInterval == 0 {
		cfg.ProbeInterval = defaultRedisProbeInterval
	}
	if cfg.ProbeTimeout == 0 {
		cfg.ProbeTimeout = defaultRedisProbeTimeout
	}
	if cfg.MaxStreams == 0 {
		cfg.MaxStreams = defaultRedisMaxStreams
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = defaultRedisBatchSize
	}
	if cfg.MaxBatchBytes == 0 {
		cfg.MaxBatchBytes = defaultRedisMaxBatchBytes
	}
	if cfg.HistoryTTL == 0 {
		cfg.HistoryTTL = DefaultHistoryTTL
	}
	switch {
	case cfg.Groups < 1 || cfg.Groups > maxGroups:
		return nil, fmt.Errorf("hub: redis: Groups %d is not in [1, %d]", cfg.Groups, maxGroups)
	case cfg.ProbeInterval < 0:
		return nil, fmt.Errorf("hub: redis: ProbeInterval %v is negative", cfg.ProbeInterval)
	case cfg.ProbeTimeout <= cfg.ProbeInterval:
		return nil, fmt.Errorf("hub: redis: ProbeTimeout %v must exceed ProbeInterval %v", cfg.ProbeTimeout, cfg.ProbeInterval)
	case cfg.MaxStreams < 1:
		return nil, fmt.Errorf("hub: redis: MaxStreams %d is not positive", cfg.MaxStreams)
	case cfg.BatchSize < 1:
		return nil, fmt.Errorf("hub: redis: BatchSize %d is not positive", cfg.BatchSize)
	case cfg.HistoryTTL < time.Millisecond:
		return nil, fmt.Errorf("hub: redis: HistoryTTL %v is under a millisecond", cfg.HistoryTTL)
	case cfg.MaxBatchBytes < 1:
		return nil, fmt.Errorf("hub: redis: MaxBatchBytes %d is not positive", cfg.MaxBatchBytes)
	case cfg.ClusterOptions != nil && len(cfg.ClusterOptions.Addrs) == 0:
		return nil, errors.New("hub: redis: ClusterOptions has no Addrs")
	case cluster && strings.ContainsAny(cfg.Prefix, "{}"):
		return nil, fmt.Errorf("hub: redis: Prefix %q contains a brace, which breaks cluster hash tags", cfg.Prefix)
	}

	r := &Redis{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "hub"),
		token:   strconv.FormatUint(rand.Uint64(), 36),
		wake:    make(chan struct{}, 1),
		subs:    make(map[string]*streamReceivers),
		dirty:   make(map[string]struct{}),
		pending: &pubBatch{},
		spare:   &pubBatch{},
	}
	if !cluster {
		var opt redis.Options
		if cfg.Options != nil {
			opt = *cfg.Options
		} else {
			o, err := redis.ParseURL(cfg.URL)
			if err != nil {
				return nil, fmt.Errorf("hub: redis: parse URL: %w", urlErr(err))
			}
			opt = *o
		}
		// No command is retried: a retried PUBLISH pipeline could reach
		// Redis twice, and a duplicate breaks the Seq contract where a
		// loss only shows as a break in Seq.
		opt.MaxRetries = -1
		r.client = redis.NewClient(&opt)
	} else {
		opt := redis.ClusterOptions{Addrs: cfg.ClusterAddrs}
		if cfg.ClusterOptions != nil {
			opt = *cfg.ClusterOptions
		}
		opt.Addrs = slices.Clone(opt.Addrs)
		opt.MaxRetries = -1 // as above, though see Flush
		r.cluster = true
		r.client = redis.NewClusterClient(&opt)
		r.groupPrefix = make([]string, cfg.Groups)
		for g := range r.groupPrefix {
			r.groupPrefix[g] = cfg.Prefix + "{g" + strconv.Itoa(g) + "}"
		}
	}
	return r, nil
}

// urlErr returns err without the URL that url.Parse's errors quote, which
// may hold a password.
func urlErr(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err
	}
	return err
}

// Publish encodes msg into the batch that the next [Redis.Flush] sends,
// so msg.Data is not referenced once Publish returns. Each message is
// numbered, kept and published once, to the channel of msg.Stream
// (SPUBLISH in cluster mode), by the publish script, and every subscribed
// node, this one included, delivers it from there; a message of an older
// publisher, or one already numbered, is dropped there. A message with
// Err is published as it is, with Seq 0 and no Epoch.
// When the batch reaches RedisConfig.MaxBatchBytes, Publish sends it
// itself and returns the send's error, as Flush does; otherwise it touches
// no network and returns nil.
func (r *Redis) Publish(ctx context.Context, msg Message) error {
	p := pendingPub{channel: r.channel(msg.Stream), numbered: msg.Err == ""}
	if msg.State {
		if msg.Err != "" {
			return nil
		}
		p.state, p.posKey, p.histKey = true, r.posKey(msg.Stream), r.stateKey(msg.Stream)
		p.flags, p.origin = frameFlagsOf(msg), msg.Origin
	} else if p.numbered {
		p.flags, p.origin, p.seq, p.id = frameFlagsOf(msg), msg.Origin, msg.Seq, msg.ID
		p.posKey, p.histKey = r.posKey(msg.Stream), r.histKey(msg.Stream)
	} else {
		msg.Seq, msg.Epoch = 0, "" // not numbered
		p.posKey = r.posKey(msg.Stream)
	}
	r.pubMu.Lock()
	b := r.pending
	p.start = len(b.buf)
	switch {
	case p.state && len(msg.Data) == 0:
	case p.numbered:
		b.buf = appendFrameBody(b.buf, msg)
	default:
		b.buf = appendFrame(b.buf, msg)
	}
	p.end = len(b.buf)
	b.msgs = append(b.msgs, p)
	full := len(b.buf) >= r.cfg.MaxBatchBytes
	r.pubMu.Unlock()
	if full {
		return r.Flush(ctx)
	}
	return nil
}

// Flush sends the messages published since the last send, from every
// publisher, to Redis in one pipeline, and waits until Redis has accepted
// them (not until any receiver has them). Batches are sent one at a time,
// in order, so the messages of a stream reach Redis in the order they
// were published. It returns the first error; the messages that failed
// are lost, and the stream's next message is numbered with Gap (the
// publisher's Seq broke). Standalone, nothing is retried, since a retry
// after a network error could publish a message twice; in cluster mode
// go-redis's cluster pipeline does resend a node's part of the batch
// after a network error, and the publish script drops what it already
// numbered when the message has an ID (a message without one may then
// be numbered twice). A server that answers NOSCRIPT (restarted, or its
// scripts flushed) ran nothing: those messages are sent again with the
// script in full.
//
// With nothing to send, Flush returns nil, or [ErrNotSent] while the last
// send failed: only a send tells whether Redis takes messages again.
func (r *Redis) Flush(ctx context.Context) error {
	r.sendMu.Lock()
	defer r.sendMu.Unlock()
	r.pubMu.Lock()
	b := r.pending
	if len(b.msgs) == 0 {
		r.pubMu.Unlock()
		if r.sendFailed {
			return ErrNotSent
		}
		return nil
	}
	r.pending, r.spare = r.spare, nil
	r.pubMu.Unlock()

	cmds := r.send(ctx, b, false, nil)
	// A server that does not know the scripts (it restarted, or SCRIPT
	// FLUSH) ran none of those commands: send them again in full, which
	// also loads the scripts. Nothing ran, so nothing can repeat; every
	// message goes through a script, so none went ahead of them.
	var again []int
	for i, c := range cmds {
		if redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		for i, c := range r.send(ctx, b, true, again) {
			cmds[again[i]] = c
		}
	}
	var firstErr error
	var failed, dropped uint64
	for _, c := range cmds {
		err := c.Err()
		if err != nil {
			failed++
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if sc, ok := c.(*redis.Cmd); ok {
			if n, err := sc.Int64(); err == nil && n == 0 {
				dropped++
			}
		}
	}
	r.published.Add(uint64(len(cmds)) - failed - dropped)
	r.publishErrors.Add(failed)
	r.dropped.Add(dropped)

	// go-redis has written the frames out: the buffer can be reused.
	clear(b.msgs)
	b.msgs = b.msgs[:0]
	if cap(b.buf) > maxKeptBatch {
		b.buf = nil
	}
	b.buf = b.buf[:0]
	r.spare = b
	r.sendFailed = firstErr != nil
	if firstErr != nil {
		return fmt.Errorf("hub: publish %d of %d messages: %w", failed, len(cmds), firstErr)
	}
	return nil
}

// send sends the messages of b (only those at the indexes of only, when
// not nil) in one pipeline and returns their commands, whose errors are
// per command; eval sends the publish script in full rather than by its
// digest.
func (r *Redis) send(ctx context.Context, b *pubBatch, eval bool, only []int) []redis.Cmder {
	pipe := r.client.Pipeline()
	n := len(b.msgs)
	if only != nil {
		n = len(only)
	}
	cmds := make([]redis.Cmder, n)
	for k := range n {
		i := k
		if only != nil {
			i = only[k]
		}
		p := &b.msgs[i]
		frame := b.buf[p.start:p.end]
		switch {
		case p.state:
			// histKey holds the state key (Publish).
			keys := []string{p.posKey, p.histKey}
			args := []any{strconv.FormatUint(p.origin, 10), int(p.flags), frame, r.cfg.HistoryTTL.Milliseconds()}
			if eval {
				cmds[k] = stateScript.Eval(ctx, pipe, keys, args...)
			} else {
				cmds[k] = stateScript.EvalSha(ctx, pipe, keys, args...)
			}
		case p.numbered:
			keys, args := []string{p.posKey, p.histKey}, r.publishArgs(p, frame)
			if eval {
				cmds[k] = publishScript.Eval(ctx, pipe, keys, args...)
			} else {
				cmds[k] = publishScript.EvalSha(ctx, pipe, keys, args...)
			}
		default:
			keys, args := []string{p.posKey}, []any{p.channel, frame, spublishArg(r.cluster)}
			if eval {
				cmds[k] = noticeScript.Eval(ctx, pipe, keys, args...)
			} else {
				cmds[k] = noticeScript.EvalSha(ctx, pipe, keys, args...)
			}
		}
	}
	_, _ = pipe.Exec(ctx) // errors are per command
	return cmds
}

// Subscribe makes rc receive the messages of stream that reach Redis once
// this node's subscription is in place; it does not wait for that, nor
// touch the network ([Redis.Recover] waits for it). It fails with [ErrTooManyStreams] when stream would
// be one stream more than RedisConfig.MaxStreams, and for the stream keys
// of the exchange "probe", whose channels carry the health probes.
func (r *Redis) Subscribe(_ context.Context, stream string, rc Receiver) error {
	if strings.HasPrefix(stream, probeStream) {
		return fmt.Errorf("hub: subscribe %q: the exchange name %q is reserved for health probes", stream, strings.TrimSuffix(probeStream, ":"))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.subs[stream]
	if e == nil {
		if len(r.subs) >= r.cfg.MaxStreams {
			return fmt.Errorf("hub: subscribe %q: %w (%d)", stream, ErrTooManyStreams, r.cfg.MaxStreams)
		}
		e = &streamReceivers{key: stream, ready: make(chan struct{})}
		r.subs[stream] = e
		r.markDirtyLocked(stream)
	}
	if !slices.Contains(e.rs, rc) {
		e.rs = append(slices.Clip(e.rs), rc)
	}
	return nil
}

// Unsubscribe stops delivering stream to rc at once; the Redis
// subscription is dropped in the background when rc was the last
// receiver. It does not touch the network.
func (r *Redis) Unsubscribe(_ context.Context, stream string, rc Receiver) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.subs[stream]
	if e == nil {
		return nil
	}
	i := slices.Index(e.rs, rc)
	if i < 0 {
		return nil
	}
	if len(e.rs) == 1 {
		delete(r.subs, stream)
		r.markDirtyLocked(stream)
		return nil
	}
	e.rs = slices.Delete(slices.Clone(e.rs), i, i+1)
	return nil
}

// markDirtyLocked queues stream for the subscription manager.
func (r *Redis) markDirtyLocked(stream string) {
	r.dirty[stream] = struct{}{}
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Stats returns the hub's counters.
func (r *Redis) Stats() Stats {
	return Stats{
		Published:       r.published.Load(),
		PublishErrors:   r.publishErrors.Load(),
		Received:        r.received.Load(),
		DecodeErrors:    r.decodeErrors.Load(),
		SubscribeErrors: r.subscribeErrors.Load(),
		InternalErrors:  r.panics.Load(),
		Dropped:         r.dropped.Load(),
	}
}

// Run keeps the Redis subscriptions in line with the local receivers,
// receives and delivers messages and probes Redis, until ctx ends. It then
// closes the connections (Flush fails from then on) and returns nil. It
// returns an error at once if called more than once.
func (r *Redis) Run(ctx context.Context) error {
	if !r.state.CompareAndSwap(hubNew, hubRunning) {
		return errors.New("hub: redis: Run called more than once")
	}
	defer func() {
		r.state.Store(hubStopped)
		if err := r.client.Close(); err != nil {
			r.log.Debug("close redis client", "err", err)
		}
	}()
	var wg sync.WaitGroup
	m := &subManager{
		r:       r,
		wg:      &wg,
		conns:   make(map[int]*subConn),
		inRedis: make(map[string]bool),
		retry:   make(map[string]struct{}),
		bo:      newBackoff(),
	}
	wg.Go(func() { m.run(ctx) })
	wg.Go(func() { r.probeLoop(ctx) })
	wg.Wait()
	return nil
}

// channel returns the Redis channel of stream.
func (r *Redis) channel(stream string) string {
	return r.chanPrefix(stream) + stream
}

// chanPrefix returns what precedes stream in its channel name.
func (r *Redis) chanPrefix(stream string) string {
	if !r.cluster {
		return r.cfg.Prefix
	}
	return r.groupPrefix[groupOf(stream, r.cfg.Groups)]
}

// groupOf maps stream to one of n groups with 32-bit FNV-1a; it must never
// change, since all nodes of a cluster have to agree on it.
func groupOf(stream string, n int) int {
	h := uint32(2166136261)
	for i := 0; i < len(stream); i++ {
		h ^= uint32(stream[i])
		h *= 16777619
	}
	return int(h % uint32(n))
}

// homeGroup is the group of this node's first subscriber connection, which
// carries the probe even when no stream is subscribed; hashing the node ID
// spreads the probes of many nodes over the shards.
func (r *Redis) homeGroup() int {
	if !r.cluster {
		return -1
	}
	return groupOf(r.cfg.NodeID, r.cfg.Groups)
}

// newBackoff returns the retry rule of the receive loops and the
// subscription manager: exponential from minBackoff, capped at
// maxBackoff, with the jitter of [backoff.Backoff] so that nodes do not
// retry in step.
func newBackoff() backoff.Backoff {
	return backoff.Backoff{Min: minBackoff, Max: maxBackoff}
}
