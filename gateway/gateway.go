package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/marketgate/marketgate/admin"
	"github.com/marketgate/marketgate/auth"
	"github.com/marketgate/marketgate/book"
	"github.com/marketgate/marketgate/cluster"
	"github.com/marketgate/marketgate/downstream"
	"github.com/marketgate/marketgate/hub"
	"github.com/marketgate/marketgate/internal/demand"
	"github.com/marketgate/marketgate/internal/nodeid"
	"github.com/marketgate/marketgate/market"
	"github.com/marketgate/marketgate/normalize"
	"github.com/marketgate/marketgate/telemetry"
	"github.com/marketgate/marketgate/upstream"
	"github.com/marketgate/marketgate/web"
)

// Config configures a [Gateway]. Listener and at least one exchange are
// required; other zero fields take the defaults of the packages they
// configure.
type Config struct {
	// Listener is the public listener: web UI, browser WebSockets,
	// /healthz and /readyz; required. The gateway closes it.
	Listener net.Listener
	// AdminListener is the control listener: /api/v1/…, /metrics, pprof.
	// Nil: none. The gateway closes it.
	AdminListener net.Listener
	// AdminToken is the control listener's bearer token; empty: loopback
	// clients only (see admin.Config.Token).
	AdminToken string
	// MetricsPublic serves /metrics on the control listener without the
	// token.
	MetricsPublic bool
	// MetricsListener, when not nil, serves /metrics alone, to anyone
	// who can reach it (for Prometheus, without the control listener's
	// token). The gateway closes it.
	MetricsListener net.Listener
	// Cmdline is the command line, secrets masked, for
	// /debug/pprof/cmdline.
	Cmdline []string
	// NodeID is this node's name, in the cluster and in the control API.
	// Default: [nodeid.Default].
	NodeID string
	// Exchanges are the exchanges of the table ([Exchanges]) this node
	// carries, by name, with their settings. Publisher, Logger and Lazy
	// are the gateway's to set.
	Exchanges map[string]upstream.Config
	// Demo runs each exchange's simulator in-process on a loopback port
	// and connects the exchange to it instead of its URLs.
	Demo bool
	// Redis, or RedisCluster for a Redis Cluster, is the Redis that
	// carries the hub and coordinates the cluster's nodes, credentials and
	// TLS included; the gateway makes its own clients from it. Both nil:
	// the in-process hub, one node.
	Redis        *redis.Options
	RedisCluster *redis.ClusterOptions
	// Browsers limits browser connections; its Hub, Source and Logger are
	// the gateway's to set.
	Browsers downstream.Config
	// Auth turns browser authentication on; nil: off (every client may
	// subscribe every stream). Its Required clients must authenticate
	// within HandshakeTimeout.
	Auth *AuthConfig
	// HandshakeTimeout is the time a client has to send its HTTP request
	// headers (web.Config.HandshakeTimeout).
	HandshakeTimeout time.Duration
	// DrainTimeout bounds how long, when draining, a cluster node may take
	// to hand its upstreams over before it closes its clients.
	DrainTimeout time.Duration
	// HistorySize is how many messages per stream the hub keeps for
	// recovery (0: hub.DefaultHistorySize; negative: none) and HistoryTTL
	// how long a stream's history outlives its last message (0:
	// hub.DefaultHistoryTTL).
	HistorySize int
	HistoryTTL  time.Duration
	// AllowedOrigins are the browser origins allowed to read the
	// market-data REST answers (CORS); empty: any.
	AllowedOrigins []string
	// RESTWeightShare is the share of each exchange's REST weight limit
	// the node spends at most; 0: market.DefaultWeightShare.
	RESTWeightShare float64
	// RESTWeightLimits are the exchanges' REST weight limits per minute,
	// by exchange name; absent: the exchange's documented limit.
	RESTWeightLimits map[string]int
	// BookDepth is the snapshot depth of the kept order books and of
	// their "<symbol>@book" streams; 0: book.DefaultDepth.
	BookDepth int
	// Logger receives the gateway's logs; nil discards them.
	Logger *slog.Logger
}

// Gateway is one node of the market-data gateway: the exchange feeds, the
// router, the hub, the demand, in a cluster the node's membership, the
// browser-facing server, and the web and control listeners. [New] builds
// it, [Gateway.Run] runs it. It answers the control API as an
// [admin.Backend]; those methods are safe for concurrent use.
type Gateway struct {
	cfg    Config
	log    *slog.Logger
	nodeID string

	hub hub.Hub
	rdb redis.UniversalClient // cluster coordination, nil on a single node
	// decoupled are the feeds' publish queues in front of the Redis hub.
	decoupled []*hub.Decoupled
	feeds     []*upstream.Feed
	books     []*book.Books
	// depths answers REST depth requests from the kept books.
	depths *book.Depths
	// market serves the market-data REST and governs the REST calls to
	// the exchanges; nil when no exchange has REST rules.
	market *market.Market
	node   *cluster.Node // nil on a single node
	pins   *pins
	ds     *downstream.Server
	// verifier checks browsers' tokens; nil without Config.Auth keys.
	verifier *auth.Verifier
	// admin is the control listener; nil without Config.AdminListener.
	admin *admin.Server
	// kicks ends a user's connections on every node; nil on a single
	// node.
	kicks *auth.Kicks
	ready *readiness
	// runs are every component's Run, in the order they are started.
	runs []func(context.Context) error

	draining     atomic.Bool // set once draining started
	drainReq     chan struct{}
	requestDrain func()
	ran          atomic.Bool
}

var _ admin.Backend = (*Gateway)(nil)

// New builds every part of the gateway from cfg. It starts nothing (the
// only network activity is listening on the --demo simulators' loopback
// ports); on an error it releases what it made, cfg's listeners included.
func New(cfg Config) (g *Gateway, err error) {
	if cfg.Listener == nil {
		return nil, errors.New("gateway: config: Listener is required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g = &Gateway{cfg: cfg, log: log, nodeID: cfg.NodeID, drainReq: make(chan struct{})}
	if g.nodeID == "" {
		g.nodeID = nodeid.Default()
	}
	g.requestDrain = sync.OnceFunc(func() { close(g.drainReq) })
	var closers []func() error
	defer func() {
		if err != nil {
			for _, c := range closers {
				c()
			}
		}
	}()
	closers = append(closers, cfg.Listener.Close)
	if cfg.AdminListener != nil {
		closers = append(closers, cfg.AdminListener.Close)
	}
	if cfg.MetricsListener != nil {
		closers = append(closers, cfg.MetricsListener.Close)
	}

	// The exchanges to carry, in the table's order.
	var table []Exchange
	settings := make(map[string]upstream.Config, len(cfg.Exchanges))
	for _, x := range Exchanges() {
		if c, ok := cfg.Exchanges[x.Name]; ok {
			table = append(table, x)
			settings[x.Name] = c
		}
	}
	for name := range cfg.Exchanges {
		if _, ok := lookup(name); !ok {
			return nil, fmt.Errorf("gateway: config: no exchange %q in the table", name)
		}
	}
	if cfg.Demo {
		// Each exchange's simulator, in-process on a loopback port.
		for _, x := range table {
			sim, err := x.Simulate(log)
			if err != nil {
				return nil, fmt.Errorf("demo simulator: %w", err)
			}
			simLn, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return nil, fmt.Errorf("demo simulator: %w", err)
			}
			closers = append(closers, simLn.Close)
			g.runs = append(g.runs, func(ctx context.Context) error { return sim.Run(ctx, simLn) })
			c := settings[x.Name]
			c.URL = "ws://" + simLn.Addr().String()
			c.RESTURL = "http://" + simLn.Addr().String()
			settings[x.Name] = c
			log.Info("demo: built-in exchange simulator", "mode", x.SimulatorMode, "addr", simLn.Addr().String())
		}
	}

	mem := hub.NewMemory()
	mem.Logger = log.With("component", "hub")
	mem.HistorySize, mem.HistoryTTL = cfg.HistorySize, cfg.HistoryTTL
	g.hub = mem
	hubStats := mem.Stats
	if cfg.Redis != nil || cfg.RedisCluster != nil {
		rh, err := hub.NewRedis(hub.RedisConfig{Options: cfg.Redis, ClusterOptions: cfg.RedisCluster, NodeID: g.nodeID, Logger: log,
			HistorySize: cfg.HistorySize, HistoryTTL: cfg.HistoryTTL})
		if err != nil {
			// Named as the flag: the options come from --redis alone.
			return nil, fmt.Errorf("--redis: %w", err)
		}
		if cfg.RedisCluster != nil {
			g.rdb = redis.NewClusterClient(cfg.RedisCluster)
		} else {
			g.rdb = redis.NewClient(cfg.Redis)
		}
		closers = append(closers, g.rdb.Close)
		g.hub = rh
		hubStats = func() hub.Stats {
			// Messages the publish queues dropped (Redis too slow) are
			// lost like those Redis refused.
			st := rh.Stats()
			for _, d := range g.decoupled {
				st.PublishErrors += d.Dropped()
			}
			return st
		}
	}

	names := make([]string, len(table))
	for i, x := range table {
		names[i] = x.Name
	}
	// The fencing tokens exist before the feeds, which stamp them, and
	// before the node, which sets them.
	tokens := cluster.NewTokens(names)
	procedures := make(map[string]book.Procedure)
	// The market-data REST, one governed client per exchange; its depth
	// answers come from the kept books (depths, made below).
	books := &depthsRef{}
	var rests []market.Exchange
	for _, x := range table {
		if x.REST != nil {
			c := settings[x.Name]
			rests = append(rests, market.Exchange{Rules: x.REST, BaseURL: cmp.Or(c.RESTURL, x.Dialect.Limits().RESTURL),
				WeightLimit: cfg.RESTWeightLimits[x.Name], WeightShare: cfg.RESTWeightShare})
		}
	}
	if len(rests) > 0 {
		g.market, err = market.New(market.Config{Exchanges: rests, AllowedOrigins: cfg.AllowedOrigins, Books: books,
			Logger: log})
		if err != nil {
			return nil, fmt.Errorf("market: %w", err)
		}
	}
	for _, x := range table {
		c := settings[x.Name]
		c.Publisher, c.Logger = g.hub, log
		if g.rdb != nil {
			// Stamped with the lease's fencing token: receivers prefer
			// the newest owner's messages (hub.Message.Origin).
			c.Publisher = &originPublisher{Publisher: g.hub, tokens: tokens, exchange: x.Name}
			c.Lazy = true // connected only while this node owns the exchange
			// A slow Redis must not stall reading the exchange: the
			// feed's messages wait in a bounded queue of their own.
			// A handover's successor holds what it publishes back a
			// little, so that the old owner's copies are numbered first
			// and the hub proves the switch from the repeats.
			name := x.Name
			hold := func() time.Duration {
				if tokens.Successor(name) {
					return successorHold
				}
				return 0
			}
			dec, err := hub.NewDecoupled(hub.DecoupledConfig{Next: c.Publisher, Hold: hold, Logger: log.With("component", "hub", "exchange", x.Name)})
			if err != nil {
				return nil, err
			}
			c.Publisher = dec
			g.decoupled = append(g.decoupled, dec)
			g.runs = append(g.runs, dec.Run)
		}
		if c.Dialect == nil {
			c.Dialect = x.Dialect
		}
		var kept *book.Books
		if x.Book != nil {
			// The books sit between the feed and the hub: they take the
			// diffs they keep books from, and add the book streams.
			stateEvery := 0
			if cfg.HistorySize < 0 {
				stateEvery = 1 // no history to replay from a state
			}
			kept, err = book.New(book.Config{
				Name: x.Name, Procedure: x.Book, Publisher: c.Publisher, Depth: bookDepth(x.Book, cfg.BookDepth), StateEvery: stateEvery,
				Fetch: snapshotFetch(g.market, x.Name), Logger: log,
			})
			if err != nil {
				return nil, fmt.Errorf("%s: %w", x.Name, err)
			}
			c.Publisher = kept
		}
		f, err := upstream.New(c)
		if err != nil {
			return nil, err
		}
		if f.Name() != x.Name {
			return nil, fmt.Errorf("feed %q built for exchange %q", f.Name(), x.Name)
		}
		g.feeds = append(g.feeds, f)
		if kept != nil {
			kept.Carry(f)
			g.books = append(g.books, kept)
			procedures[x.Name] = x.Book
		}
	}
	exchanges := make([]upstream.Exchange, len(g.feeds))
	for i, f := range g.feeds {
		exchanges[i] = f
		for _, b := range g.books {
			if b.Name() == f.Name() {
				exchanges[i] = b
			}
		}
	}
	router := upstream.NewRouter(exchanges...)
	var source downstream.Source
	var pinTo pinner
	if g.rdb != nil {
		n, err := cluster.New(cluster.Config{Client: g.rdb, NodeID: g.nodeID, Exchanges: names, Local: router, Tokens: tokens, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
		g.node, source, pinTo = n, n, n
		g.runs = append(g.runs, n.Run)
	} else {
		local := localSource{Set: demand.New(router, 0, nil), router: router}
		source, pinTo = local, local
	}
	g.pins = newPins(router.Validate, pinTo)
	// Browsers and REST depth answers both want book streams: counted,
	// so that one's unwant does not end the other's want.
	source = countedSource{Source: source, counted: demand.NewCounted(source)}
	if len(procedures) > 0 {
		g.depths, err = book.NewDepths(book.DepthConfig{Hub: g.hub, Source: source, Procedures: procedures, Logger: log})
		if err != nil {
			return nil, err
		}
		g.runs = append(g.runs, g.depths.Run)
		books.d = g.depths
	}

	// The normalized form, for the exchanges that have one; their
	// unified symbols come from the symbol lists (symbolsLoop).
	norms := normalize.Set{}
	for _, x := range table {
		if x.Normalize == nil {
			continue
		}
		syms := &normalize.Symbols{}
		norms[x.Name] = x.Normalize(x.Name, syms)
		if g.market != nil && g.market.Client(x.Name) != nil {
			g.runs = append(g.runs, symbolsLoop(g.market, x, syms, log))
		}
	}

	dcfg := cfg.Browsers
	dcfg.Hub, dcfg.Source, dcfg.Logger, dcfg.Stateful = g.hub, source, log, book.Stateful(procedures)
	if len(norms) > 0 {
		dcfg.Normalizer = norms
	}
	ac, verifier, limiter, err := newAuth(cfg.Auth, g.nodeID, g.rdb, log)
	if err != nil {
		return nil, err
	}
	if ac != nil {
		ac.Timeout = cfg.HandshakeTimeout
		dcfg.Auth, g.verifier = ac, verifier
	}
	if limiter != nil {
		g.runs = append(g.runs, limiter.Run)
	}
	if g.rdb != nil {
		g.kicks, err = auth.NewKicks(auth.KicksConfig{
			Client: g.rdb, NodeID: g.nodeID, Logger: log.With("component", "auth"),
			Apply: func(user string) int { return g.ds.DisconnectUser(user, "") },
		})
		if err != nil {
			return nil, err
		}
		g.runs = append(g.runs, g.kicks.Run)
	}
	g.ds, err = downstream.New(dcfg)
	if err != nil {
		return nil, err
	}
	g.ready = &readiness{draining: &g.draining, hub: g.hub, node: g.node, feeds: g.feeds}
	var marketHandler http.Handler
	if g.market != nil {
		marketHandler = g.market.Handler()
	}
	ws, err := web.New(web.Config{
		Listener:         cfg.Listener,
		WebSockets:       g.ds,
		Market:           marketHandler,
		HandshakeTimeout: cfg.HandshakeTimeout,
		// Public: categories only; GET /api/v1/ready on the control
		// listener has the detail.
		Ready:  g.ready.Public,
		Logger: log,
	})
	if err != nil {
		return nil, err
	}
	var metrics http.Handler
	if cfg.AdminListener != nil || cfg.MetricsListener != nil {
		metrics = g.metrics(hubStats)
	}
	if cfg.MetricsListener != nil {
		g.runs = append(g.runs, metricsServer(cfg.MetricsListener, metrics).Run)
	}
	if cfg.AdminListener != nil {
		// POST /api/v1/drain on the control listener drains as a signal
		// does.
		as, err := admin.New(admin.Config{
			Listener: cfg.AdminListener, Token: cfg.AdminToken, Drain: g.requestDrain,
			Backend:       g,
			Metrics:       metrics,
			MetricsPublic: cfg.MetricsPublic,
			Cmdline:       cfg.Cmdline,
			Ready:         g.ready.Detail,
			Page:          web.OpsPage(),
			NodeID:        g.nodeID,
			Logger:        log.With("component", "admin"),
		})
		if err != nil {
			return nil, err
		}
		g.admin = as
		g.runs = append(g.runs, as.Run)
	}
	g.runs = append(g.runs, g.hub.Run, g.ds.Run, ws.Run)
	for _, f := range g.feeds {
		g.runs = append(g.runs, f.Run)
	}
	for _, b := range g.books {
		g.runs = append(g.runs, b.Run)
	}
	return g, nil
}

// metrics is the handler of /metrics: the gateway's metrics, read from its
// parts at each scrape.
func (g *Gateway) metrics(hubStats func() hub.Stats) http.Handler {
	books := make([]telemetry.BookSource, len(g.books))
	for i, b := range g.books {
		books[i] = b
	}
	return telemetry.Handler(telemetry.NewRegistry(telemetry.Sources{
		Downstream: g.ds, Feeds: telemetry.Feeds(g.feeds), Hub: telemetry.HubFunc(hubStats), Cluster: telemetry.Cluster(g.node),
		Books: books, Market: marketSource(g.market),
	}))
}

// Run runs every part of the gateway until ctx ends, then drains, or until
// one of them fails. Draining also starts on POST /api/v1/drain: the
// gateway takes no more clients (and /readyz says so), a cluster node
// hands its upstreams over (make before break, within
// Config.DrainTimeout), the browsers are closed with 1001 so that they
// reconnect through the load balancer, and everything stops. Run returns
// nil after a drain and the first part's error otherwise. It may be called
// once.
func (g *Gateway) Run(ctx context.Context) error {
	if !g.ran.CompareAndSwap(false, true) {
		return errors.New("gateway: Run called more than once")
	}
	if g.rdb != nil {
		defer g.rdb.Close()
	}
	hubKind := "memory"
	if g.rdb != nil {
		hubKind = "redis"
	}
	g.log.Info("starting", "node", g.nodeID, "listen", g.cfg.Listener.Addr().String(), "exchanges", len(g.feeds), "hub", hubKind)
	// The parts run until the drain that follows ctx is done, or until
	// one of them fails.
	runCtx, stopRuns := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRuns()
	eg, gctx := errgroup.WithContext(runCtx)
	for _, run := range g.runs {
		eg.Go(func() error { return run(gctx) })
	}
	eg.Go(func() error {
		select {
		case <-gctx.Done():
			return nil
		case <-ctx.Done():
		case <-g.drainReq:
		}
		g.drain(gctx)
		stopRuns()
		return nil
	})
	return eg.Wait()
}

// drain takes no more clients (and says so on /readyz), closes the
// browsers with 1001 and, in a cluster, hands this node's upstreams over.
func (g *Gateway) drain(ctx context.Context) {
	g.log.Info("draining; a second SIGINT or SIGTERM ends the process at once")
	g.draining.Store(true)
	g.ds.Drain()
	if g.node != nil {
		// Make-before-break: a successor carries this node's upstreams
		// before it stops carrying them.
		hctx, cancel := context.WithTimeout(ctx, g.cfg.DrainTimeout)
		err := g.node.Handover(hctx)
		cancel()
		if err != nil {
			g.log.Warn("handover incomplete", "err", err)
		}
	}
}

// localSource is the downstream's Source on a single node: the router
// validates, and the demand set merges the clients' wants with the pins,
// so that the router subscribes a stream while clients want it or it is
// pinned. (In a cluster, cluster.Node merges them the same way.)
type localSource struct {
	*demand.Set
	router downstream.Source // the router; the Set forwards to it too
}

// Validate implements downstream.Source.
func (s localSource) Validate(key string) error { return s.router.Validate(key) }

// marketSource returns m as the metrics' source, nil when there is none.
func marketSource(m *market.Market) telemetry.MarketSource {
	if m == nil {
		return nil
	}
	return m
}

// symbolsLoop keeps syms, x's unified symbols, filled from its symbol
// list: at start (retried every 10 s until it works), then every 10
// minutes.
func symbolsLoop(m *market.Market, x Exchange, syms *normalize.Symbols, log *slog.Logger) func(context.Context) error {
	return func(ctx context.Context) error {
		wait := time.Duration(0)
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
			list, err := m.Symbols(ctx, x.Name)
			if err != nil {
				log.Warn("symbols for the normalized form", "exchange", x.Name, "err", err)
				wait = 10 * time.Second
				continue
			}
			u := make(map[string]string, len(list))
			for _, s := range list {
				settle := ""
				if x.Perpetual {
					settle = s.Quote
				}
				u[s.Symbol] = normalize.UnifiedSymbol(s.Symbol, s.Base, s.Quote, settle)
			}
			syms.Set(u)
			wait = 10 * time.Minute
		}
	}
}

// depthsRef lets the market-data REST, made before the books, ask them
// for depth once they exist.
type depthsRef struct{ d *book.Depths }

// Depth implements market.Books.
func (r *depthsRef) Depth(ctx context.Context, exchange, symbol string, limit int) ([]byte, bool, error) {
	if r.d == nil {
		return nil, false, nil
	}
	return r.d.Depth(ctx, exchange, symbol, limit)
}

// retryAt is a snapshot error that says when to try again.
type retryAt struct {
	error
	at time.Time
}

// RetryAt tells the book keeper when to try again.
func (e retryAt) RetryAt() time.Time { return e.at }

// snapshotFetch returns how exchange's books fetch REST snapshots: through
// its governed client, or, for an exchange without REST rules (whose
// streams send their own snapshots), never.
func snapshotFetch(m *market.Market, exchange string) book.Fetch {
	if m != nil && m.Client(exchange) != nil {
		return marketFetch(m.Client(exchange))
	}
	return func(context.Context, string, url.Values) ([]byte, error) {
		return nil, fmt.Errorf("%s: no REST rules for book snapshots", exchange)
	}
}

// marketFetch fetches book snapshots through the exchange's governed
// REST client: within its weight budget, never during a 429 or 418
// stop.
func marketFetch(c *market.Client) book.Fetch {
	return func(ctx context.Context, path string, q url.Values) ([]byte, error) {
		resp, err := c.Get(ctx, path, q)
		var banned *market.BannedError
		var busy *market.BusyError
		switch {
		case errors.As(err, &banned):
			return nil, retryAt{err, banned.Until}
		case errors.As(err, &busy):
			return nil, retryAt{err, busy.Until}
		case err != nil:
			return nil, err
		case resp.Status/100 != 2:
			return nil, fmt.Errorf("HTTP %d: %.200s", resp.Status, resp.Body)
		}
		return resp.Body, nil
	}
}

// bookDepth returns the deepest of p's snapshot limits up to depth (0:
// book.DefaultDepth): USD-M serves 1,000 levels where spot serves 5,000.
func bookDepth(p book.Procedure, depth int) int {
	if depth == 0 {
		depth = book.DefaultDepth
	}
	lims := p.DepthLimits()
	best := lims[0]
	for _, l := range lims {
		if l <= depth {
			best = l
		}
	}
	return best
}

// countedSource is a Source whose wants are counted (demand.Counted).
type countedSource struct {
	downstream.Source
	counted *demand.Counted
}

// Want implements downstream.Source.
func (s countedSource) Want(keys []string) { s.counted.Want(keys) }

// Unwant implements downstream.Source.
func (s countedSource) Unwant(keys []string) { s.counted.Unwant(keys) }

// Validate implements downstream.Source. A key the node cannot check yet
// (its exchange's symbol list is still loading after a start) wraps
// downstream.ErrUnavailable, so that clients retry instead of taking
// the stream for invalid.
func (s countedSource) Validate(key string) error {
	err := s.Source.Validate(key)
	if errors.Is(err, upstream.ErrNotReady) {
		return fmt.Errorf("%w: %w", downstream.ErrUnavailable, err)
	}
	return err
}
