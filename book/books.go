package book

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/marketgate/marketgate/hub"
	"github.com/marketgate/marketgate/upstream"
)

// Views are the top-N depths a book stream may ask for:
// "<symbol>@book@<N>". "<symbol>@book" is the whole book the gateway
// keeps (Config.Depth levels a side).
var Views = []int{5, 10, 20, 50, 100, 500, 1000}

// DefaultDepth is the snapshot depth of a zero Config: 1000 levels a
// side, weight 50 on Binance spot and 20 on USD-M.
const DefaultDepth = 1000

// Fetch gets a REST answer's body from the exchange: path and query, a
// 2xx body or an error (one that has a RetryAt() time.Time method says
// when to try again).
type Fetch func(ctx context.Context, path string, q url.Values) ([]byte, error)

// Config configures [Books].
type Config struct {
	// Name is the exchange's name, the prefix of its stream keys;
	// required.
	Name string
	// Procedure is how the exchange's books are built; required.
	Procedure Procedure
	// Fetch gets snapshots; required.
	Fetch Fetch
	// Publisher is where the exchange's messages and the books' go (the
	// hub); required.
	Publisher hub.Publisher
	// Depth is the snapshot's limit and the depth of "<symbol>@book";
	// one of Procedure.DepthLimits. Default DefaultDepth.
	Depth int
	// MaxLevels bounds the levels a side the kept book holds (levels
	// beyond the snapshot come from diffs); default 2×Depth.
	MaxLevels int
	// MaxBooks bounds the books kept at once; a book stream past it is
	// refused. Default 1000.
	MaxBooks int
	// StateEvery is 1 to keep a view's state in the hub after every
	// message (for hubs that keep no history); otherwise it is kept once
	// a second while the view changes.
	StateEvery int
	// Logger receives the logs; nil discards them.
	Logger *slog.Logger
}

// Books is an [upstream.Exchange] that adds kept order books to an
// exchange's streams: "<symbol>@book" and "<symbol>@book@<N>" are served
// from a book kept from the exchange's snapshot and diff stream (one per
// symbol, however many views); every other name goes to the exchange.
// It is also the [hub.Publisher] the exchange's feed publishes to: it
// takes the diffs its books need and passes the rest on, and the diffs
// too when a client wants them as they are. Safe for concurrent use.
type Books struct {
	cfg  Config
	name string
	ex   upstream.Exchange // the exchange's own streams (Carry)
	log  *slog.Logger

	ctx     context.Context // the keepers'; ends with Run
	stop    context.CancelFunc
	wg      sync.WaitGroup
	metrics metrics

	mu      sync.RWMutex
	keepers map[string]*keeper // by symbol
	byDiff  map[string]*keeper // by diff stream key
	raw     map[string]bool    // exchange names subscribed as they are
}

// metrics counts what the books did.
type metrics struct {
	snapshots, syncs, resyncs, applied, crossed, badDiffs atomic.Uint64
}

// Stats are the books' counters.
type Stats struct {
	// Books is the number of books kept.
	Books int
	// Snapshots counts snapshot requests, Syncs books made from them,
	// Resyncs books discarded (gap, reconnect, crossed book, unreadable
	// diff), Applied diffs applied, Crossed crossed books seen.
	Snapshots, Syncs, Resyncs, Applied, Crossed, BadDiffs uint64
}

var (
	_ upstream.Exchange = (*Books)(nil)
	_ hub.Publisher     = (*Books)(nil)
)

// New returns Books for cfg; Run runs its keepers.
func New(cfg Config) (*Books, error) {
	if cfg.Name == "" || cfg.Procedure == nil || cfg.Fetch == nil || cfg.Publisher == nil {
		return nil, fmt.Errorf("book: config: Name, Procedure, Fetch and Publisher are required")
	}
	if cfg.Depth == 0 {
		cfg.Depth = DefaultDepth
	}
	if !slices.Contains(cfg.Procedure.DepthLimits(), cfg.Depth) {
		return nil, fmt.Errorf("book: depth %d: want one of %v", cfg.Depth, cfg.Procedure.DepthLimits())
	}
	if cfg.MaxLevels == 0 {
		cfg.MaxLevels = 2 * cfg.Depth
	}
	if cfg.MaxBooks == 0 {
		cfg.MaxBooks = 1000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	b := &Books{
		cfg: cfg, name: cfg.Name, log: cfg.Logger.With("component", "book", "exchange", cfg.Name),
		keepers: make(map[string]*keeper), byDiff: make(map[string]*keeper), raw: make(map[string]bool),
	}
	b.ctx, b.stop = context.WithCancel(context.Background())
	return b, nil
}

// Carry makes ex, the exchange's feed (which publishes to b), carry the
// exchange's streams; it must be called once, before b is used.
func (b *Books) Carry(ex upstream.Exchange) { b.ex = ex }

// Name implements upstream.Exchange.
func (b *Books) Name() string { return b.name }

// ParseName splits a Binance book stream name (see [Binance.ParseBook]).
func ParseName(name string) (symbol string, n int, ok bool, err error) {
	return Binance{}.ParseBook(name)
}

// Stateful returns whether a stream key names a book stream of one of
// the exchanges of procedures (by name): a subscriber starts from its
// state (downstream.Config.Stateful).
func Stateful(procedures map[string]Procedure) func(key string) bool {
	return func(key string) bool {
		ex, name, ok := strings.Cut(key, ":")
		p := procedures[ex]
		if !ok || p == nil {
			return false
		}
		_, _, isBook, err := p.ParseBook(name)
		return isBook && err == nil
	}
}

// Validate implements upstream.Exchange.
func (b *Books) Validate(name string) error {
	symbol, n, isBook, err := b.cfg.Procedure.ParseBook(name)
	if !isBook {
		return b.ex.Validate(name)
	}
	if err != nil {
		return err
	}
	if n > b.cfg.Depth {
		return fmt.Errorf("%w: this gateway keeps books %d levels deep", &upstream.ValidationError{Err: upstream.ErrInvalidStream, Value: name}, b.cfg.Depth)
	}
	// The symbol is the diff stream's business.
	return b.ex.Validate(b.cfg.Procedure.DiffStream(symbol))
}

// Subscribe implements upstream.Exchange.
func (b *Books) Subscribe(names []string) {
	var pass []string
	b.mu.Lock()
	for _, name := range names {
		symbol, n, isBook, err := b.cfg.Procedure.ParseBook(name)
		if !isBook {
			if !b.raw[name] {
				b.raw[name] = true
				if b.byDiff[b.name+":"+name] == nil {
					pass = append(pass, name)
				}
			}
			continue
		}
		if err != nil {
			continue
		}
		if n == 0 {
			n = b.cfg.Depth
		}
		k := b.keepers[symbol]
		if k == nil {
			if len(b.keepers) >= b.cfg.MaxBooks {
				b.log.Warn("book refused: MaxBooks reached", "stream", name, "max", b.cfg.MaxBooks)
				continue
			}
			k = newKeeper(b, symbol)
			b.keepers[symbol], b.byDiff[k.diff] = k, k
			diffName := b.cfg.Procedure.DiffStream(symbol)
			if !b.raw[diffName] {
				pass = append(pass, diffName)
			}
			ctx, cancel := context.WithCancel(b.ctx)
			k.cancel = cancel
			b.wg.Go(func() { k.run(ctx) })
		}
		k.addView(b.ctx, b.name+":"+name, n)
	}
	b.mu.Unlock()
	if len(pass) > 0 {
		b.ex.Subscribe(pass)
	}
}

// Unsubscribe implements upstream.Exchange.
func (b *Books) Unsubscribe(names []string) {
	var pass []string
	b.mu.Lock()
	for _, name := range names {
		symbol, _, isBook, err := b.cfg.Procedure.ParseBook(name)
		if !isBook {
			if b.raw[name] {
				delete(b.raw, name)
				if b.byDiff[b.name+":"+name] == nil {
					pass = append(pass, name)
				}
			}
			continue
		}
		k := b.keepers[symbol]
		if err != nil || k == nil {
			continue
		}
		if k.removeView(b.ctx, b.name+":"+name) {
			continue
		}
		k.cancel()
		delete(b.keepers, symbol)
		delete(b.byDiff, k.diff)
		if diffName := b.cfg.Procedure.DiffStream(symbol); !b.raw[diffName] {
			pass = append(pass, diffName)
		}
	}
	b.mu.Unlock()
	if len(pass) > 0 {
		b.ex.Unsubscribe(pass)
	}
}

// Publish implements hub.Publisher for the exchange's feed: a diff a
// book needs goes to its keeper, and on to the hub only when a client
// subscribed the diff stream itself.
func (b *Books) Publish(ctx context.Context, msg hub.Message) error {
	b.mu.RLock()
	k := b.byDiff[msg.Stream]
	raw := k == nil || b.raw[msg.Stream[len(b.name)+1:]]
	b.mu.RUnlock()
	if k != nil {
		k.onDiff(ctx, msg)
	}
	if !raw {
		return nil
	}
	return b.cfg.Publisher.Publish(ctx, msg)
}

// Flush implements hub.Publisher.
func (b *Books) Flush(ctx context.Context) error { return b.cfg.Publisher.Flush(ctx) }

// resubscribe subscribes symbol's diff stream again, so that an exchange
// that sends its book snapshots in the stream sends a fresh one. The
// exchange's Resubscribe (a [upstream.Feed] has it) sends the unsubscribe
// and the subscribe on the connection whatever else waits there.
func (b *Books) resubscribe(symbol string) {
	name := b.cfg.Procedure.DiffStream(symbol)
	ex, ok := b.ex.(interface{ Resubscribe(names []string) })
	if !ok {
		b.log.Warn("book: the exchange cannot subscribe a stream again; no snapshot until the next reconnect", "stream", name)
		return
	}
	b.log.Info("book: subscribing the diff stream again for a snapshot", "stream", name)
	ex.Resubscribe([]string{name})
}

// Stats returns the books' counters.
func (b *Books) Stats() Stats {
	b.mu.RLock()
	n := len(b.keepers)
	b.mu.RUnlock()
	m := &b.metrics
	return Stats{Books: n, Snapshots: m.snapshots.Load(), Syncs: m.syncs.Load(), Resyncs: m.resyncs.Load(),
		Applied: m.applied.Load(), Crossed: m.crossed.Load(), BadDiffs: m.badDiffs.Load()}
}

// Run runs until ctx ends, then stops every keeper.
func (b *Books) Run(ctx context.Context) error {
	<-ctx.Done()
	b.stop()
	b.wg.Wait()
	return nil
}
