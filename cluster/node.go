package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/marketgate/marketgate/internal/demand"
	"github.com/marketgate/marketgate/internal/nodeid"
)

// Defaults of [Config], as its field docs state them.
const (
	defaultPrefix            = "marketgate:"
	defaultLeaseTTL          = 2 * time.Second
	defaultPollInterval      = 250 * time.Millisecond
	defaultHeartbeatInterval = 500 * time.Millisecond
	defaultHandoverOverlap   = time.Second
	defaultMaxStreams        = 100_000
)

const (
	// liveBeats is how many heartbeat intervals a node and its demand
	// outlive its last heartbeat.
	liveBeats = 3
	// minWriteGap is the shortest time between two demand writes that a
	// change triggers.
	minWriteGap = 50 * time.Millisecond
	// minHandoverWait is the least time [Node.Handover] waits for a
	// successor to claim an exchange before it just releases it.
	minHandoverWait = 3 * time.Second
	// minOpTimeout is the least time one Redis call may take.
	minOpTimeout = time.Second
)

// Local is the node's own upstream, which subscribes streams at the
// exchanges and publishes them into the hub. [upstream.Router] satisfies
// it. A [Node] calls Want, Unwant and UnwantNow from its own goroutines,
// one call at a time, with keys of one exchange per call; they must not
// block.
type Local interface {
	// Validate returns nil for a stream key the gateway can carry, or an
	// error whose text tells the client what is wrong.
	Validate(key string) error
	// Want subscribes validated keys upstream.
	Want(keys []string)
	// Unwant unsubscribes keys that no node wants any more; they may
	// linger upstream for a quick come-back.
	Unwant(keys []string)
	// UnwantNow unsubscribes keys at once, without any linger: this node's
	// claim on their exchange ended, and another node carries them.
	UnwantNow(keys []string)
}

// Config configures a [Node]. Zero fields take the documented defaults.
// Every node of a cluster must use the same Prefix, LeaseTTL and
// HeartbeatInterval.
type Config struct {
	// Client is the Redis server or cluster that coordinates the nodes, a
	// *redis.Client or a *redis.ClusterClient; required. The node does not
	// close it. It may be the client of the hub.
	Client redis.UniversalClient
	// NodeID names this node; it must be unique in the cluster and must not
	// contain '|'. Default: "<host name>-<pid>" ([nodeid.Default]).
	NodeID string
	// Prefix starts every coordination key. Default: "marketgate:". It
	// must not contain '{' or '}': the keys carry the hash tag "{cluster}"
	// after it, e.g. "marketgate:{cluster}:lease:binance", so that they all
	// live in one Redis Cluster slot.
	Prefix string
	// Exchanges are the exchanges this node can carry, e.g. "binance" and
	// "binance-futures": it contends for their leases only. Empty: the
	// node only registers demand.
	Exchanges []string
	// Local carries the streams of the exchanges this node owns; required.
	Local Local
	// Tokens receives the fencing token of each exchange while this node
	// carries it; it must have every exchange of Exchanges. Give the
	// value whose tokens the node's publisher stamps on its messages.
	// Nil: the node keeps its own, which only [Node.Token] reads.
	Tokens *Tokens
	// LeaseTTL is how long an exchange's lease lasts without renewal, and
	// so how long an exchange may stay uncarried after its owner died.
	// Default: 2s.
	LeaseTTL time.Duration
	// RenewInterval is how often an owner renews its leases; it must be
	// less than LeaseTTL. Default: LeaseTTL/4.
	RenewInterval time.Duration
	// PollInterval is how often an owner reads the cluster's demand and a
	// non-owner tries to take a free lease (plus up to 20% jitter).
	// Default: 250ms.
	PollInterval time.Duration
	// HeartbeatInterval is how often the node rewrites its demand and its
	// heartbeat; a node and its demand expire 3 heartbeats after its last.
	// Default: 500ms.
	HeartbeatInterval time.Duration
	// HandoverOverlap is how long, during [Node.Handover], the old owner
	// keeps carrying after its successor started. Default: 1s.
	HandoverOverlap time.Duration
	// MaxStreams bounds this node's demand (wanted and pinned streams);
	// keys beyond it are dropped and logged. Default: 100000.
	MaxStreams int
	// Logger receives ownership changes and Redis failures; nil discards
	// them.
	Logger *slog.Logger
	// Now returns the wall-clock time of [Lease.Since]; default time.Now.
	// Nothing else depends on the node's wall clock: heartbeats and
	// liveness use Redis's clock, fencing tokens too, and lease deadlines
	// the monotonic clock.
	Now func() time.Time
}

// Lease is an exchange's upstream ownership held by a node.
type Lease struct {
	// Exchange is the exchange, e.g. "binance".
	Exchange string `json:"exchange"`
	// Token is the lease's fencing token; the tokens of successive owners
	// of an exchange strictly increase.
	Token int64 `json:"token"`
	// Since is when this node took the lease.
	Since time.Time `json:"since"`
}

// NodeInfo describes a live node of the cluster, as [Node.Nodes] reads it
// from Redis.
type NodeInfo struct {
	// ID is the node's Config.NodeID.
	ID string `json:"id"`
	// Heartbeat is the node's last heartbeat, by Redis's clock.
	Heartbeat time.Time `json:"heartbeat"`
	// Demand is the number of streams the node wants carried.
	Demand int64 `json:"demand"`
	// Owns lists the exchanges whose lease the node holds, among those
	// of the reading node's Config.Exchanges.
	Owns []string `json:"owns"`
}

// Node is one gateway node's part in the cluster: it registers what the
// node's clients want in Redis, contends for the lease of each exchange,
// and, for the exchanges it owns, makes its [Local] carry what any node
// wants. It satisfies downstream.Source. Its methods are safe for
// concurrent use; Want, Unwant, Pin, Unpin, Validate, Ready and Owned never
// touch the network and never block on it.
type Node struct {
	cfg       Config
	log       *slog.Logger
	keys      keyspace
	known     map[string]bool // the exchanges of cfg
	opTimeout time.Duration
	carrier   *carrier
	exchanges []*exchange
	// dirty tells the heartbeat loop that the demand changed.
	dirty chan struct{}
	// kick tells the demand reader to read now.
	kick chan struct{}
	// runDone is closed when Run returns.
	runDone chan struct{}

	state    atomic.Int32 // stateNew, stateRunning or stateStopped
	draining atomic.Bool
	// crash is a test hook: when set, Run returns without releasing or
	// unregistering anything and without calling Local, like a kill -9.
	crash   atomic.Bool
	health  atomic.Pointer[health]
	dropped atomic.Uint64
	// panics counts the panics recovered in the node's loops.
	panics atomic.Uint64
	tokens *Tokens
	// demand merges what this node's clients want with the pins, and
	// forwards their union to registered.
	demand     *demand.Set
	registered *union
}

// union is this node's demand as the heartbeat writes it to Redis: the
// union of wants and pins that the node's [demand.Set] forwards.
type union struct {
	changed func()

	// mu guards the following fields.
	mu   sync.Mutex
	keys map[string]struct{}
	// version counts the changes of keys.
	version uint64
}

// Want implements demand.Sink.
func (u *union) Want(keys []string) {
	u.mu.Lock()
	for _, k := range keys {
		u.keys[k] = struct{}{}
	}
	u.version++
	u.mu.Unlock()
	u.changed()
}

// Unwant implements demand.Sink.
func (u *union) Unwant(keys []string) {
	u.mu.Lock()
	for _, k := range keys {
		delete(u.keys, k)
	}
	u.version++
	u.mu.Unlock()
	u.changed()
}

// health is the outcome of the last heartbeat.
type health struct {
	err error     // nil after a success
	ok  time.Time // last success
}

const (
	stateNew int32 = iota
	stateRunning
	stateStopped
)

var errStarting = errors.New("cluster: starting")

// New returns a node for cfg. It checks cfg and fills in defaults but
// starts nothing: coordination needs [Node.Run].
func New(cfg Config) (*Node, error) {
	if cfg.Client == nil {
		return nil, errors.New("cluster: config: Client is required")
	}
	if cfg.Local == nil {
		return nil, errors.New("cluster: config: Local is required")
	}
	if cfg.NodeID == "" {
		cfg.NodeID = nodeid.Default()
	}
	if strings.Contains(cfg.NodeID, "|") {
		return nil, fmt.Errorf("cluster: config: NodeID %q contains '|'", cfg.NodeID)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = defaultPrefix
	}
	if strings.ContainsAny(cfg.Prefix, "{}") {
		return nil, fmt.Errorf("cluster: config: Prefix %q contains '{' or '}'", cfg.Prefix)
	}
	known := make(map[string]bool, len(cfg.Exchanges))
	for _, x := range cfg.Exchanges {
		if x == "" || strings.Contains(x, ":") {
			return nil, fmt.Errorf("cluster: config: invalid exchange name %q", x)
		}
		if known[x] {
			return nil, fmt.Errorf("cluster: config: duplicate exchange %q", x)
		}
		known[x] = true
	}
	cfg.Exchanges = slices.Clone(cfg.Exchanges)
	if cfg.Tokens == nil {
		cfg.Tokens = NewTokens(cfg.Exchanges)
	} else if err := cfg.Tokens.covers(cfg.Exchanges); err != nil {
		return nil, fmt.Errorf("cluster: config: %w", err)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.LeaseTTL, defaultLeaseTTL)
	def(&cfg.RenewInterval, cfg.LeaseTTL/4)
	def(&cfg.PollInterval, defaultPollInterval)
	def(&cfg.HeartbeatInterval, defaultHeartbeatInterval)
	def(&cfg.HandoverOverlap, defaultHandoverOverlap)
	for name, d := range map[string]time.Duration{
		"LeaseTTL": cfg.LeaseTTL, "RenewInterval": cfg.RenewInterval, "PollInterval": cfg.PollInterval,
		"HeartbeatInterval": cfg.HeartbeatInterval, "HandoverOverlap": cfg.HandoverOverlap,
	} {
		if d < time.Millisecond {
			return nil, fmt.Errorf("cluster: config: %s %v is less than 1ms", name, d)
		}
	}
	if cfg.RenewInterval >= cfg.LeaseTTL {
		return nil, fmt.Errorf("cluster: config: RenewInterval %v must be less than LeaseTTL %v", cfg.RenewInterval, cfg.LeaseTTL)
	}
	if cfg.MaxStreams == 0 {
		cfg.MaxStreams = defaultMaxStreams
	}
	if cfg.MaxStreams < 0 {
		return nil, fmt.Errorf("cluster: config: negative MaxStreams %d", cfg.MaxStreams)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	n := &Node{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "cluster"),
		keys:      newKeyspace(cfg.Prefix),
		known:     known,
		opTimeout: max(cfg.LeaseTTL, minOpTimeout),
		carrier:   newCarrier(cfg.Local, cfg.Exchanges),
		dirty:     make(chan struct{}, 1),
		kick:      make(chan struct{}, 1),
		runDone:   make(chan struct{}),
		tokens:    cfg.Tokens,
	}
	n.registered = &union{changed: n.markDirty, keys: make(map[string]struct{})}
	n.demand = demand.New(n.registered, cfg.MaxStreams, n.logDropped)
	for _, x := range cfg.Exchanges {
		n.exchanges = append(n.exchanges, newExchange(n, x))
	}
	return n, nil
}

// Validate delegates to Config.Local.
func (n *Node) Validate(key string) error { return n.cfg.Local.Validate(key) }

// Want adds validated keys to this node's demand, which the owner of each
// key's exchange carries within about a PollInterval. It only records the
// keys and wakes the heartbeat loop: it never blocks and never calls Local,
// so the downstream server may call it holding its locks. Keys beyond
// Config.MaxStreams are dropped and logged.
func (n *Node) Want(keys []string) { n.demand.Want(keys) }

// Unwant removes keys from this node's demand (pinned keys stay). Like
// [Node.Want] it only records.
func (n *Node) Unwant(keys []string) { n.demand.Unwant(keys) }

// Pin adds key to this node's demand until [Node.Unpin], whether or not
// clients want it. Pins and wants are separate sets: Unwant does not undo a
// Pin, nor Unpin a Want. Like [Node.Want] it only records.
func (n *Node) Pin(key string) { n.demand.Pin(key) }

// Unpin removes a pin set by [Node.Pin].
func (n *Node) Unpin(key string) { n.demand.Unpin(key) }

// logDropped counts keys dropped for Config.MaxStreams, and logs the 1st,
// 2nd, 4th, 8th... so a flood cannot flood the log.
func (n *Node) logDropped(dropped int) {
	total := n.dropped.Add(uint64(dropped))
	if prev := total - uint64(dropped); bitsLen(prev) != bitsLen(total) {
		n.log.Warn("demand full: dropped streams", "max_streams", n.cfg.MaxStreams, "dropped", dropped, "total_dropped", total)
	}
}

// bitsLen is the number of bits needed to write v.
func bitsLen(v uint64) int {
	l := 0
	for ; v > 0; v >>= 1 {
		l++
	}
	return l
}

// markDirty wakes the heartbeat loop without blocking.
func (n *Node) markDirty() {
	select {
	case n.dirty <- struct{}{}:
	default:
	}
}

// kickReader wakes the demand reader without blocking.
func (n *Node) kickReader() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// demandSnapshot returns this node's demand as SADD arguments, reusing
// prev when the demand has not changed since version prevVersion.
func (n *Node) demandSnapshot(prev []any, prevVersion uint64) ([]any, uint64) {
	u := n.registered
	u.mu.Lock()
	defer u.mu.Unlock()
	if prev != nil && prevVersion == u.version {
		return prev, prevVersion
	}
	s := make([]any, 0, len(u.keys))
	for k := range u.keys {
		s = append(s, k)
	}
	return s, u.version
}

// Panics returns how many panics the node's loops recovered from; each
// ended one iteration of its loop, which then started again.
func (n *Node) Panics() uint64 { return n.panics.Load() }

// Ready returns nil while this node's heartbeats reach Redis, and
// otherwise why not: "cluster: starting" until the first heartbeat,
// "cluster: redis: heartbeat: <error>" after a failed one, "cluster:
// redis: no heartbeat for 2s" when they are overdue, "cluster: stopped"
// once Run has returned. It does no I/O.
func (n *Node) Ready() error {
	switch n.state.Load() {
	case stateNew:
		return errStarting
	case stateStopped:
		return errors.New("cluster: stopped")
	}
	h := n.health.Load()
	if h == nil {
		return errStarting
	}
	if h.err != nil {
		return h.err
	}
	if d := time.Since(h.ok); d > liveBeats*n.cfg.HeartbeatInterval {
		return fmt.Errorf("cluster: redis: no heartbeat for %v", d.Round(10*time.Millisecond))
	}
	return nil
}

// Owned returns the leases this node holds now, by exchange. A lease whose
// renewal is overdue past its TTL is not listed, even before the node
// notices.
func (n *Node) Owned() []Lease {
	var out []Lease
	now := time.Now()
	for _, e := range n.exchanges {
		if o := e.owned.Load(); o != nil && now.Before(o.until) {
			out = append(out, o.lease)
		}
	}
	return out
}

// Token returns the fencing token under which this node carries exchange
// (as its owner, or as the successor of a handover in progress), or 0 when
// it does not carry it. It is cheap enough to call per message: the
// upstream stamps it on what it publishes as [hub.Message.Origin], so that
// receivers prefer the newest owner (see downstream's topic.admit).
func (n *Node) Token(exchange string) uint64 { return n.tokens.Token(exchange) }

// Nodes reads the live nodes from Redis: each one's heartbeat, demand size
// and owned exchanges, sorted by ID. Nodes whose heartbeat is overdue are
// removed from the registry on the way.
func (n *Node) Nodes(ctx context.Context) ([]NodeInfo, error) {
	ids, err := n.liveNodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("cluster: nodes: %w", err)
	}
	pipe := n.cfg.Client.Pipeline()
	cards := make([]*redis.IntCmd, len(ids))
	for i, b := range ids {
		cards[i] = pipe.SCard(ctx, n.keys.demand(b.id))
	}
	leases := make([]*redis.StringCmd, len(n.cfg.Exchanges))
	for i, x := range n.cfg.Exchanges {
		leases[i] = pipe.Get(ctx, n.keys.exchange(x).lease)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("cluster: nodes: read demand and leases: %w", err)
	}
	owners := make(map[string][]string)
	for i, x := range n.cfg.Exchanges {
		if node, _, ok := parseLeaseValue(leases[i].Val()); ok {
			owners[node] = append(owners[node], x)
		}
	}
	out := make([]NodeInfo, len(ids))
	for i, b := range ids {
		owns := owners[b.id]
		slices.Sort(owns)
		out[i] = NodeInfo{
			ID:        b.id,
			Heartbeat: b.at,
			Demand:    cards[i].Val(),
			Owns:      owns,
		}
	}
	slices.SortFunc(out, func(a, b NodeInfo) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// beat is a live node and its last heartbeat, by Redis's clock.
type beat struct {
	id string
	at time.Time
}

// liveNodes removes the nodes whose last heartbeat is older than
// liveBeats heartbeats from the registry, on Redis's clock, and returns
// the others.
func (n *Node) liveNodes(ctx context.Context) ([]beat, error) {
	res, err := liveScript.Run(ctx, n.cfg.Client, []string{n.keys.nodes()}, n.liveTTL().Milliseconds()).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", n.keys.nodes(), err)
	}
	if len(res)%2 != 0 {
		return nil, fmt.Errorf("read %s: odd reply %v", n.keys.nodes(), res)
	}
	out := make([]beat, 0, len(res)/2)
	for i := 0; i < len(res); i += 2 {
		ms, err := strconv.ParseFloat(res[i+1], 64)
		if err != nil {
			return nil, fmt.Errorf("read %s: score of %s: %w", n.keys.nodes(), res[i], err)
		}
		out = append(out, beat{id: res[i], at: time.UnixMilli(int64(ms))})
	}
	return out, nil
}

// Run registers this node's demand, contends for the leases and carries
// the exchanges it owns until ctx ends. Then it stops carrying, releases
// its leases (handing an exchange to a successor that already claimed
// it), unregisters its demand and returns nil. It returns an error at
// once if called more than once.
func (n *Node) Run(ctx context.Context) error {
	if !n.state.CompareAndSwap(stateNew, stateRunning) {
		return errors.New("cluster: Run called more than once")
	}
	defer close(n.runDone)
	defer n.state.Store(stateStopped)
	var wg sync.WaitGroup
	wg.Go(func() {
		<-ctx.Done()
		if n.crash.Load() {
			n.carrier.freeze()
		}
	})
	wg.Go(func() { n.supervise(ctx, "heartbeat", n.heartbeatLoop) })
	wg.Go(func() { n.supervise(ctx, "demand reader", n.readLoop) })
	wg.Go(func() { n.supervise(ctx, "watchdog", n.carrier.watch) })
	var leases sync.WaitGroup
	for _, e := range n.exchanges {
		leases.Go(func() { n.supervise(ctx, "lease "+e.name, e.run) })
	}
	leases.Wait() // each has stopped carrying and released its lease
	wg.Wait()
	if !n.crash.Load() {
		n.protect("stop", n.carrier.stopAll)
	}
	return nil
}

// Handover gives every exchange this node owns to another node, make
// before break, and makes the node drain: from the call on it never takes
// a lease again, though it keeps its demand registered until Run ends.
//
// For each owned exchange it announces the handover in Redis; a live node
// that sees it claims the exchange as successor and starts carrying at
// once. Once this node sees the successor (within a PollInterval of its
// claim) it keeps carrying for Config.HandoverOverlap more, then stops and
// passes the lease to the successor. Without a successor within a few
// seconds (3s, or less when ctx has an earlier deadline) it stops and
// releases the lease. A successor claim this node held is given up.
//
// It returns nil when nothing is owned any more, or an error if ctx ended
// first (the node then stops carrying and releases at once, in the
// background of Run) or Redis could not be told (the lease then expires by
// itself and a successor that claimed it takes it). It returns nil at once
// if Run is not running.
func (n *Node) Handover(ctx context.Context) error {
	n.draining.Store(true)
	if n.state.Load() != stateRunning {
		return nil
	}
	reqs := make([]*handoverReq, 0, len(n.exchanges))
	for _, e := range n.exchanges {
		req := &handoverReq{ctx: ctx, done: make(chan error, 1)}
		select {
		case e.req <- req:
			reqs = append(reqs, req)
		case <-n.runDone:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("cluster: handover: %w", ctx.Err())
		}
	}
	var errs []error
	for _, req := range reqs {
		select {
		case err := <-req.done:
			errs = append(errs, err)
		case <-n.runDone:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("cluster: handover: %w", ctx.Err())
		}
	}
	return errors.Join(errs...)
}
