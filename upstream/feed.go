package upstream

import (
	"github.com/marketgate/marketgate/internal/backoff"

	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/marketgate/marketgate/hub"
	"github.com/marketgate/marketgate/internal/latency"
)

// maxTombstones bounds the states kept for streams that left the desired
// set (kept so that their Seq continues if they come back). Past it they
// are all dropped, and every stream that starts afterwards begins with
// Gap set.
const maxTombstones = 4096

// Feed keeps one exchange's market streams subscribed upstream, each
// exactly once, and publishes every event to the [hub.Publisher] as a
// [hub.Message] with Stream "<exchange>:<name>".
//
// Each endpoint of the exchange (its Dialect's Endpoints) has connections ("shards") of at most
// MaxStreams streams each; new streams go to the first shard with room,
// and a shard left without streams closes after Linger (the first one of
// each endpoint stays). Callers maintain reference counts: Subscribe and
// Unsubscribe have set semantics and never block. One writer goroutine
// per connection turns changes of its shard's streams into batched
// SUBSCRIBE/UNSUBSCRIBE requests spaced at least RequestInterval apart,
// together with pongs; nothing received from anywhere is ever written
// upstream. Connections are replaced before MaxLifetime (or when the
// exchange announces a shutdown) without losing or repeating an event,
// and re-established after a drop, within a budget of connection attempts.
//
// Seq belongs to the stream, not to a connection: it goes on across
// rotations and reconnects; after a reconnect, and after anything else that
// may have lost events, the next message carries Gap.
//
// All methods are safe for concurrent use. Run owns every goroutine.
type Feed struct {
	cfg     Config
	d       Dialect
	name    string
	m       *feedMetrics // what the feed counts for its metrics
	log     *slog.Logger
	symbols *symbolSet
	limiter *attemptLimiter
	kick    chan struct{} // capacity 1: shards to start or failures to publish
	running atomic.Bool
	nextID  atomic.Int64  // request ids, unique across connections
	connID  atomic.Uint64 // connection ids for logs

	// Redundancy (redundancy.go): lane 0 (the feed the caller holds)
	// keeps the other lanes; every lane shares merge, which publishes.
	lanes     []*Feed
	lane      int // this feed's lane: 0 for the caller's
	merge     *merger
	laneDelay time.Duration // before the first dial of each of its shards

	overflows     atomic.Int64 // handover buffers that overflowed
	publishFailed atomic.Int64 // consecutive Publish failures

	// mu guards the following fields.
	mu         sync.Mutex
	streams    map[string]*streamState // desired, lingering, leaving, tombstones
	lingering  map[*streamState]struct{}
	tombstones int  // streams neither wanted nor on a shard
	forgot     bool // tombstones were dropped: Seq continuity is unknown
	endpoints  []*endpoint
	failq      []*streamState // failed streams whose Err is still to publish
	state      State
	rejected   int
	reconnects int
	rotations  int
	closes     map[int]int
	lastErr    error
	lastErrAt  time.Time
}

// endpoint is one WebSocket endpoint of the exchange and its shards.
type endpoint struct {
	idx  int
	path string
	// Guarded by Feed.mu.
	maxStreams int // MaxStreams, or less once the exchange said so
	shards     []*shard
	nextShard  int
}

// streamState is one stream of the feed. It outlives connections: it owns
// the stream's Seq and the identity of its last published event, which is
// what lets a stream move between connections without a repeat or a hole.
type streamState struct {
	name   string
	key    string // "<exchange>:<name>", built once
	stream Stream
	ep     *endpoint
	order  Order // how its events are told apart

	// Guarded by Feed.mu.
	wanted   bool      // in the desired set
	removeAt time.Time // non-zero: Unsubscribe'd, wanted until then
	failed   string    // non-empty: refused, not subscribed, and why
	shard    *shard    // the shard carrying it; nil when on none
	resub    bool      // Resubscribe'd: unsubscribe and subscribe it again on its connection

	// pmu guards the following fields. It is held while publishing, so
	// that events of one stream are published one at a time, in order.
	pmu       sync.Mutex
	seq       uint64
	gapNext   bool      // the next message carries Gap
	last      EventID   // identity of the last event published
	hasLast   bool      // last is known
	src       *session  // the connection whose events are published
	ho        *handover // non-nil: moving to another connection
	verify    bool      // check the next event against last (after a forced switch)
	verifyGap bool      // and mark it Gap unless continuity is proven
	// recent are the hashes of the last events published during the
	// latest handover, for the switch of an [OrderSame] stream; nil for
	// other orders.
	recent *sameRing
}

var _ Exchange = (*Feed)(nil)

// New validates cfg and returns an idle Feed; Run starts it.
func New(cfg Config) (*Feed, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	n := cfg.Redundancy
	if n == 1 {
		return newFeed(cfg, 0, nil), nil
	}
	m := newMerger(cfg)
	lane := func(k int) Config {
		c := cfg
		c.Publisher = laneOut{m: m, k: k}
		c.MaxShards = cfg.MaxShards / n
		c.RotateAfter = cfg.RotateAfter - time.Duration(k)*cfg.RotateAfter/time.Duration(2*n)
		return c
	}
	f := newFeed(lane(0), 0, nil)
	f.merge = m
	for k := 1; k < n; k++ {
		f.lanes = append(f.lanes, newFeed(lane(k), k, f))
	}
	return f, nil
}

// newFeed returns lane k of a feed of cfg, which has its defaults. Lane
// 0 passes a nil lead; a later lane shares lead's (lane 0's) merger,
// connection-attempt budget and symbol list.
func newFeed(cfg Config, k int, lead *Feed) *Feed {
	name := cfg.Dialect.Name()
	log := cfg.Logger.With("component", "upstream", "exchange", name)
	f := &Feed{
		cfg:       cfg,
		d:         cfg.Dialect,
		name:      name,
		m:         &feedMetrics{in: newInCounts(cfg.Dialect.Kinds()), reqLatency: latency.New(latency.Request...)},
		log:       log,
		kick:      make(chan struct{}, 1),
		streams:   make(map[string]*streamState),
		lingering: make(map[*streamState]struct{}),
		closes:    make(map[int]int),
		state:     StateIdle,
		lane:      k,
		laneDelay: time.Duration(k) * laneStagger,
	}
	if lead != nil {
		f.log = log.With("lane", k)
		f.merge, f.limiter, f.symbols = lead.merge, lead.limiter, lead.symbols
	} else {
		f.limiter = newAttemptLimiter(cfg.MaxConnAttempts, cfg.ConnAttemptWindow, log)
		f.symbols = &symbolSet{
			base:        cfg.RESTURL,
			paths:       f.d.SymbolsPaths(),
			parse:       f.d.ParseSymbols,
			client:      cfg.HTTPClient,
			refresh:     cfg.SymbolRefresh,
			missRefresh: cfg.SymbolMissRefresh,
			maxBytes:    cfg.MaxSymbolsBytes,
			maxDrop:     cfg.SymbolMaxDrop,
			now:         cfg.Now,
			log:         log,
			bo:          backoff.Backoff{Min: cfg.BackoffMin, Max: cfg.BackoffMax},
			miss:        make(chan struct{}, 1),
			loaded:      make(chan struct{}),
		}
	}
	for i, path := range f.d.Endpoints() {
		ep := &endpoint{idx: i, path: path, maxStreams: cfg.MaxStreams}
		f.endpoints = append(f.endpoints, ep)
		if !cfg.Lazy {
			f.newShardLocked(ep).persistent = true // stays connected: readiness, and the first subscribe costs no dial
		}
	}
	return f
}

// Name returns the exchange name, the prefix of its stream keys, e.g.
// "binance".
func (f *Feed) Name() string { return f.name }

// Validate checks an exchange stream name (without the "<exchange>:"
// prefix): its grammar, that its symbol currently trades, and that the
// feed has room for one more stream. An unknown symbol triggers an early
// refresh of the symbol list (at most once per SymbolMissRefresh) but
// Validate never waits for it. Failures are [*ValidationError]s whose
// message suits clients; before the symbol list is first loaded it
// returns an error wrapping [ErrNotReady].
func (f *Feed) Validate(name string) error {
	s, err := f.d.ParseStream(name)
	if err != nil {
		return err
	}
	if s.Symbol != "" {
		known, loaded := f.symbols.has(s.Symbol)
		if !loaded {
			return fmt.Errorf("%w: %s symbol list not loaded yet", ErrNotReady, f.name)
		}
		if !known {
			f.symbols.noteMiss()
			return &ValidationError{Err: ErrUnknownSymbol, Value: s.Symbol}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if st := f.streams[name]; st != nil && st.shard != nil {
		return nil
	}
	if !f.roomLocked(f.endpoints[f.d.EndpointOf(s)]) {
		return &ValidationError{Err: ErrStreamLimit, Value: name}
	}
	return nil
}

// Subscribe adds names to the desired set; names already in it stay, a
// name waiting out its linger is kept, and a failed one is tried again.
// It never blocks: the writers subscribe them upstream in batches. Names
// that fail the grammar are dropped and logged (Validate first); names
// beyond MaxShards × MaxStreams, and names whose symbol does not trade,
// fail with an Err message and show up in [Status.Failed].
func (f *Feed) Subscribe(names []string) {
	defer f.forLanes(func(l *Feed) { l.Subscribe(names) }) // after f.mu is released
	now := f.cfg.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pruneLocked(now)
	for _, name := range names {
		st := f.streams[name]
		if st == nil {
			s, err := f.d.ParseStream(name)
			if err != nil {
				f.rejected++
				f.log.Warn("subscribe: dropped invalid stream", "err", err)
				continue
			}
			st = f.newStreamLocked(name, s)
		}
		if st.wanted && st.removeAt.IsZero() && st.failed == "" && st.shard != nil {
			continue
		}
		if !st.removeAt.IsZero() {
			st.removeAt = time.Time{}
			delete(f.lingering, st)
		}
		tomb := !st.wanted && st.shard == nil
		if tomb {
			f.tombstones--
		}
		st.wanted = true
		if st.shard == nil && !f.assignLocked(st) {
			// Its subscribers hear of it: in a cluster they are on other
			// nodes, whose own Validate saw room.
			f.rejected++
			f.log.Warn("subscribe: stream over the limit", "stream", name,
				"limit", f.cfg.MaxShards*st.ep.maxStreams)
			f.failLocked(st, fmt.Sprintf("stream limit reached, cannot add %q", name))
			continue
		}
		// A stream that was leaving its shard simply stays on it.
		st.failed = ""
		st.shard.pokeLocked()
	}
}

// Unsubscribe removes names from the desired set. Each stays subscribed
// upstream for Linger and is then unsubscribed unless Subscribe brought it
// back meanwhile. Unknown names are ignored. It never blocks.
func (f *Feed) Unsubscribe(names []string) {
	defer f.forLanes(func(l *Feed) { l.Unsubscribe(names) }) // after f.mu is released
	now := f.cfg.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, name := range names {
		st := f.streams[name]
		if st == nil || !st.wanted || !st.removeAt.IsZero() {
			continue
		}
		if f.cfg.Linger < 0 {
			f.unwantLocked(st)
		} else {
			st.removeAt = now.Add(f.cfg.Linger)
			f.lingering[st] = struct{}{}
		}
		if st.shard != nil {
			st.shard.pokeLocked()
		}
	}
}

// Resubscribe unsubscribes names upstream and subscribes them again on
// the same connection, so that an exchange that sends a stream's snapshot
// when it is subscribed (OKX's and Bybit's books) sends a fresh one. Both
// requests are sent, in that order, whatever else the connection is
// waiting to send: unlike Unsubscribe followed by Subscribe, they cannot
// cancel out. A name subscribed afresh anyway (not on the connection yet,
// or its subscribe awaits a reply) is left as it is; a name not wanted is
// ignored. The first event after it carries Gap, as events were missed
// between the two requests. It never blocks.
func (f *Feed) Resubscribe(names []string) {
	defer f.forLanes(func(l *Feed) { l.Resubscribe(names) }) // after f.mu is released
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, name := range names {
		st := f.streams[name]
		if st == nil || !st.wanted || st.failed != "" || st.shard == nil {
			continue
		}
		st.resub = true
		st.shard.pokeLocked()
	}
}

// UnsubscribeNow removes names from the desired set like Unsubscribe,
// but without Linger: they are unsubscribed upstream at once, those
// already lingering included. For a cluster node whose lease ended: it
// must stop carrying them, not keep them for a re-subscribe.
func (f *Feed) UnsubscribeNow(names []string) {
	defer f.forLanes(func(l *Feed) { l.UnsubscribeNow(names) }) // after f.mu is released
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, name := range names {
		st := f.streams[name]
		if st == nil || !st.wanted {
			continue
		}
		f.unwantLocked(st)
		if st.shard != nil {
			st.shard.pokeLocked()
		}
	}
}

// newStreamLocked adds the state of a stream not in the feed.
func (f *Feed) newStreamLocked(name string, s Stream) *streamState {
	st := &streamState{
		name:    name,
		key:     f.name + ":" + name,
		stream:  s,
		ep:      f.endpoints[f.d.EndpointOf(s)],
		order:   s.Order(),
		gapNext: f.forgot,
	}
	if st.order == OrderSame {
		st.recent = new(sameRing)
	}
	f.streams[name] = st
	f.tombstones++ // neither wanted nor on a shard until the caller says so
	return st
}

// unwantLocked takes st out of the desired set; its shard's writer
// unsubscribes it.
func (f *Feed) unwantLocked(st *streamState) {
	st.wanted, st.removeAt = false, time.Time{}
	delete(f.lingering, st)
	if st.shard == nil {
		f.tombstoneLocked()
	}
}

// pruneLocked ends the linger of streams whose time has come.
func (f *Feed) pruneLocked(now time.Time) {
	for st := range f.lingering {
		if !now.Before(st.removeAt) {
			f.unwantLocked(st)
			if st.shard != nil {
				st.shard.pokeLocked()
			}
		}
	}
}

// tombstoneLocked counts one more stream that is neither wanted nor on a
// shard, and drops them all past maxTombstones.
func (f *Feed) tombstoneLocked() {
	if f.tombstones++; f.tombstones <= maxTombstones {
		return
	}
	for name, st := range f.streams {
		if !st.wanted && st.shard == nil {
			delete(f.streams, name)
		}
	}
	f.tombstones, f.forgot = 0, true
}

// roomLocked reports whether ep can take one more stream.
func (f *Feed) roomLocked(ep *endpoint) bool {
	if len(ep.shards) < f.cfg.MaxShards {
		return true
	}
	for _, sh := range ep.shards {
		if len(sh.streams) < sh.limit {
			return true
		}
	}
	return false
}

// assignLocked puts st on the first shard of its endpoint with room,
// opening a new shard when none has, and reports false when the endpoint
// is full.
func (f *Feed) assignLocked(st *streamState) bool {
	ep := st.ep
	for _, sh := range ep.shards {
		if len(sh.streams) < sh.limit {
			sh.addLocked(st)
			return true
		}
	}
	if len(ep.shards) >= f.cfg.MaxShards {
		return false
	}
	f.newShardLocked(ep).addLocked(st)
	return true
}

// releaseLocked takes st off its shard. A stream still wanted moves to
// another shard (or fails when there is no room).
func (f *Feed) releaseLocked(st *streamState) {
	sh := st.shard
	if sh == nil {
		return
	}
	delete(sh.streams, st.name)
	st.shard = nil
	switch {
	case !st.wanted:
		f.tombstoneLocked()
	case st.failed != "":
	case !f.assignLocked(st):
		f.failLocked(st, fmt.Sprintf("stream limit reached, cannot add %q", st.name))
	default:
		st.shard.pokeLocked()
	}
}

// failLocked marks st failed for reason (meant for clients) and queues
// its Err message, which the supervisor publishes: never under f.mu.
func (f *Feed) failLocked(st *streamState, reason string) {
	st.failed = reason
	f.failq = append(f.failq, st)
	f.kickLocked()
}

func (f *Feed) kickLocked() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// forLanes calls fn with each other lane of a redundant feed.
func (f *Feed) forLanes(fn func(*Feed)) {
	for _, l := range f.lanes {
		fn(l)
	}
}

// Ready returns nil once the symbol list is loaded and the first
// connection of every endpoint is up, else an error wrapping
// [ErrNotReady] that says why. A redundant feed is ready when any of its
// lanes is.
func (f *Feed) Ready() error {
	err := f.laneReady()
	if err == nil {
		return nil
	}
	for _, l := range f.lanes {
		if l.laneReady() == nil {
			return nil
		}
	}
	return err
}

// laneReady is Ready of one lane.
func (f *Feed) laneReady() error {
	if _, loaded := f.symbols.has(""); !loaded {
		return fmt.Errorf("%w: %s symbol list not loaded", ErrNotReady, f.name)
	}
	if f.cfg.Lazy {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ep := range f.endpoints {
		if len(ep.shards) == 0 || ep.shards[0].cur == nil {
			if f.lastErr != nil {
				return fmt.Errorf("%w: %s%s not connected: %w", ErrNotReady, f.name, ep.path, f.lastErr)
			}
			return fmt.Errorf("%w: %s%s not connected", ErrNotReady, f.name, ep.path)
		}
	}
	return nil
}

// Run loads the symbol list, connects every endpoint, keeps the desired
// set subscribed, rotates connections before their lifetime ends and
// reconnects with backoff and jitter whenever one ends. It blocks until
// ctx ends and then returns nil, after every goroutine it started has
// ended. A second concurrent Run returns [ErrAlreadyRunning].
func (f *Feed) Run(ctx context.Context) error {
	if !f.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer f.running.Store(false)
	f.setState(StateLoading)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return f.symbols.run(gctx) })
	g.Go(func() error { return f.supervise(gctx) })
	for _, l := range f.lanes {
		g.Go(func() error {
			defer l.setState(StateStopped)
			return l.supervise(gctx)
		})
	}
	err := g.Wait()
	f.setState(StateStopped)
	return err
}

func (f *Feed) setState(s State) {
	f.mu.Lock()
	f.state = s
	f.mu.Unlock()
}

// supervise starts a goroutine per shard, as shards appear, and publishes
// the Err messages of failed streams, until ctx ends; then it waits for
// every shard.
func (f *Feed) supervise(ctx context.Context) error {
	select {
	case <-f.symbols.loaded:
	case <-ctx.Done():
		return nil
	}
	f.setState(StateConnecting)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		f.mu.Lock()
		var start []*shard
		for _, ep := range f.endpoints {
			for _, sh := range ep.shards {
				if !sh.started {
					sh.started = true
					start = append(start, sh)
				}
			}
		}
		fails := f.failq
		f.failq = nil
		f.mu.Unlock()
		for _, sh := range start {
			wg.Go(func() { sh.run(ctx) })
		}
		for _, st := range fails {
			f.publishFailure(ctx, st)
		}
		if len(fails) > 0 {
			f.flush(ctx)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-f.kick:
		}
	}
}

// publishFailure publishes st's Err message, unless a Subscribe cleared
// the failure meanwhile. No data of st follows until it is subscribed
// again, and then with Gap.
func (f *Feed) publishFailure(ctx context.Context, st *streamState) {
	st.pmu.Lock()
	defer st.pmu.Unlock()
	f.mu.Lock()
	reason := st.failed
	f.mu.Unlock()
	if reason == "" {
		return
	}
	st.src, st.ho = nil, nil
	st.seq++
	st.gapNext = true
	f.log.Warn("stream failed", "stream", st.name, "reason", reason)
	f.notePublish(ctx, f.cfg.Publisher.Publish(ctx, hub.Message{Stream: st.key, Seq: st.seq, Err: reason}))
}

// flush ends a burst of Publish calls (see [hub.Publisher]); every path
// that publishes calls it before it waits for anything. It logs the
// recovery after a run of failures: only a Flush that returns nil has
// sent something, or had nothing to send with no failure pending
// ([hub.ErrNotSent] otherwise).
func (f *Feed) flush(ctx context.Context) {
	err := f.cfg.Publisher.Flush(ctx)
	if err == nil && f.publishFailed.Load() > 0 {
		if n := f.publishFailed.Swap(0); n > 0 {
			f.log.Info("publish recovered", "failed", n)
		}
		return
	}
	f.notePublish(ctx, err)
}

// notePublish logs the first of a run of Publish failures. A Publish that
// returns nil may only have batched its message, so it proves no
// recovery, and hub.ErrNotSent is no failure.
func (f *Feed) notePublish(ctx context.Context, err error) {
	if err != nil && ctx.Err() == nil && !errors.Is(err, hub.ErrNotSent) {
		if f.publishFailed.Add(1) == 1 {
			f.log.Warn("publish failing", "err", err)
		}
	}
}

// noteEndLocked records why a connection ended, for Status and Ready.
func (f *Feed) noteEndLocked(err error) {
	f.lastErr, f.lastErrAt = err, f.cfg.Now()
}

// sortedNames returns the names of sts, sorted.
func sortedNames(sts []*streamState) []string {
	names := make([]string, len(sts))
	for i, st := range sts {
		names[i] = st.name
	}
	slices.Sort(names)
	return names
}
