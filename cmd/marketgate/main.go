// Command marketgate is the market-data fan-out gateway: one shared upstream
// connection per exchange endpoint, fanned out to many browsers.
//
// It only wires the packages together; see the README for what it does.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sync/errgroup"

	"github.com/marketgate/marketgate/admin"
	"github.com/marketgate/marketgate/cluster"
	"github.com/marketgate/marketgate/downstream"
	"github.com/marketgate/marketgate/exchangesim/binancesim"
	"github.com/marketgate/marketgate/hub"
	"github.com/marketgate/marketgate/telemetry"
	"github.com/marketgate/marketgate/upstream"
	"github.com/marketgate/marketgate/web"
	"github.com/redis/go-redis/v9"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stderr))
}

// run starts the gateway and returns its exit code: 0 after a signal-driven
// stop, 1 when a component fails, 2 for an invalid configuration.
func run(args []string, getenv func(string) string, stderr io.Writer) int {
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "marketgate: %v\n", err)
		return 2
	}
	cfg.cmdline = append([]string{os.Args[0]}, redactArgs(args)...)
	log := cfg.logger(stderr)
	log.LogAttrs(context.Background(), slog.LevelInfo, "configuration", cfg.effective...)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// The first signal drains; stopping the relay then gives a second one
	// its default action, which ends the process at once.
	context.AfterFunc(ctx, stop)
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		fmt.Fprintf(stderr, "marketgate: --listen: %v\n", err)
		return 1
	}
	if err := serve(ctx, cfg, ln, log); err != nil {
		log.Error("marketgate stopped", "err", err)
		return 1
	}
	log.Info("marketgate stopped")
	return 0
}

// serve runs every component until ctx ends or one of them fails. The public
// listener is ln (main opens it from --listen, so a busy port fails at once).
func serve(ctx context.Context, cfg config, ln net.Listener, log *slog.Logger) error {
	// Everything is built first and started last, so a construction error
	// returns before any goroutine exists.
	var runs []func(context.Context) error
	if cfg.demo {
		// Simulators of both exchanges, in-process on loopback ports.
		modes := []struct {
			mode binancesim.Mode
			cfg  *upstream.Config
		}{{binancesim.ModeSpot, &cfg.binance}, {binancesim.ModeFutures, &cfg.futures}}
		for _, m := range modes {
			if m.cfg == &cfg.futures && cfg.noFutures {
				continue
			}
			sim, err := binancesim.New(binancesim.Config{Mode: m.mode, Logger: log})
			if err != nil {
				return fmt.Errorf("demo simulator: %w", err)
			}
			simLn, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return fmt.Errorf("demo simulator: %w", err)
			}
			runs = append(runs, func(ctx context.Context) error { return sim.Run(ctx, simLn) })
			m.cfg.URL = "ws://" + simLn.Addr().String()
			m.cfg.RESTURL = "http://" + simLn.Addr().String()
			log.Info("demo: built-in exchange simulator", "mode", string(m.mode), "addr", simLn.Addr().String())
		}
	}

	var draining atomic.Bool // set once the signal came
	mem := hub.NewMemory()
	mem.Logger = log.With("component", "hub")
	var h hub.Hub = mem
	hubStats := mem.Stats
	var rdb redis.UniversalClient // cluster coordination, with --redis
	var node *cluster.Node
	if cfg.redis != "" {
		// go-redis logs (dial failures while Redis is down) through one
		// process-wide logger: send it to ours.
		redis.SetLogger(redisLog{log.With("component", "redis")})
		// One set of options, credentials and TLS included, for both
		// clients; the hub copies its own.
		opts, copts, err := redisOptions(cfg)
		if err != nil {
			return err
		}
		rh, err := hub.NewRedis(hub.RedisConfig{Options: opts, ClusterOptions: copts, NodeID: cfg.nodeID, Logger: log})
		if err != nil {
			return fmt.Errorf("--redis: %w", err)
		}
		if copts != nil {
			rdb = redis.NewClusterClient(copts)
		} else {
			rdb = redis.NewClient(opts)
		}
		defer rdb.Close()
		h, hubStats = rh, rh.Stats
	}
	var feeds []*upstream.Feed
	newFeed := func(c upstream.Config, build func(upstream.Config) (*upstream.Feed, error), name string) error {
		c.Publisher, c.Logger = h, log
		if rdb != nil {
			// Stamped with the lease's fencing token: receivers prefer
			// the newest owner's messages (hub.Message.Origin).
			c.Publisher = &originPublisher{Publisher: h, node: &node, exchange: name}
			c.Lazy = true // connected only while this node owns the exchange
		}
		f, err := build(c)
		if err != nil {
			return err
		}
		if f.Name() != name {
			return fmt.Errorf("feed %q built for exchange %q", f.Name(), name)
		}
		feeds = append(feeds, f)
		return nil
	}
	if err := newFeed(cfg.binance, upstream.NewBinance, "binance"); err != nil {
		return err
	}
	if !cfg.noFutures {
		if err := newFeed(cfg.futures, upstream.NewBinanceFutures, "binance-futures"); err != nil {
			return err
		}
	}
	exchanges := make([]upstream.Exchange, len(feeds))
	for i, f := range feeds {
		exchanges[i] = f
	}
	router := upstream.NewRouter(exchanges...)
	local := newLocalDemand(router)
	var source downstream.Source = local
	var pinTo demand = local
	if rdb != nil {
		names := make([]string, len(feeds))
		for i, f := range feeds {
			names[i] = f.Name()
		}
		n, err := cluster.New(cluster.Config{Client: rdb, NodeID: cfg.nodeID, Exchanges: names, Local: router, Logger: log})
		if err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
		node, source, pinTo = n, n, clusterDemand{n}
		runs = append(runs, n.Run)
	}
	pinned := newPins(router.Validate, pinTo)
	dcfg := cfg.browsers
	dcfg.Hub, dcfg.Source, dcfg.Logger, dcfg.AllowedOrigins = h, source, log, cfg.allowedOrigins
	ds, err := downstream.New(dcfg)
	if err != nil {
		return err
	}
	ready := &readiness{draining: &draining, hub: h, node: node, feeds: feeds}
	ws, err := web.New(web.Config{
		Listener:         ln,
		WebSockets:       ds,
		HandshakeTimeout: cfg.handshake,
		// Public: categories only; GET /api/v1/ready on the control
		// listener has the detail.
		Ready:  ready.Public,
		Logger: log,
	})
	if err != nil {
		return err
	}
	// POST /api/v1/drain on the control listener drains as a signal does.
	drainReq := make(chan struct{})
	requestDrain := sync.OnceFunc(func() { close(drainReq) })
	if cfg.adminListen != "" {
		aln, err := net.Listen("tcp", cfg.adminListen)
		if err != nil {
			return fmt.Errorf("--admin-listen: %w", err)
		}
		as, err := admin.New(admin.Config{
			Listener: aln, Token: cfg.adminToken, Drain: requestDrain,
			Backend: &backend{ds: ds, feeds: feeds, pins: pinned, node: node, nodeID: cfg.nodeID},
			Metrics: telemetry.Handler(telemetry.NewRegistry(telemetry.Sources{
				Downstream: ds, Feeds: telemetry.Feeds(feeds), Hub: telemetry.HubFunc(hubStats), Cluster: telemetry.Cluster(node),
			})),
			MetricsPublic: cfg.metricsPublic,
			Cmdline:       cfg.cmdline,
			Ready:         ready.Detail,
			Page:          web.OpsPage(),
			NodeID:        cfg.nodeID,
			Logger:        log.With("component", "admin"),
		})
		if err != nil {
			aln.Close()
			return err
		}
		runs = append(runs, as.Run)
	}
	hubKind := "memory"
	if rdb != nil {
		hubKind = "redis"
	}
	log.Info("starting", "node", cfg.nodeID, "listen", ln.Addr().String(), "exchanges", len(feeds), "hub", hubKind)
	runs = append(runs, h.Run, ds.Run, ws.Run)
	for _, f := range feeds {
		runs = append(runs, f.Run)
	}
	// The parts run until the drain that follows the signal (ctx) is done,
	// or until one of them fails.
	runCtx, stopRuns := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRuns()
	g, gctx := errgroup.WithContext(runCtx)
	for _, run := range runs {
		g.Go(func() error { return run(gctx) })
	}
	g.Go(func() error {
		select {
		case <-gctx.Done():
			return nil
		case <-ctx.Done():
		case <-drainReq:
		}
		// Drain: take no more clients (and say so on /readyz), then stop
		// everything; the downstream closes its clients with 1001 so they
		// reconnect through the load balancer.
		log.Info("draining; a second SIGINT or SIGTERM ends the process at once")
		draining.Store(true)
		ds.Drain()
		if node != nil {
			// Make-before-break: a successor carries this node's
			// upstreams before it stops carrying them.
			hctx, cancel := context.WithTimeout(gctx, cfg.drainTimeout)
			err := node.Handover(hctx)
			cancel()
			if err != nil {
				log.Warn("handover incomplete", "err", err)
			}
		}
		stopRuns()
		return nil
	})
	return g.Wait()
}

// originPublisher stamps each message with the fencing token under which
// this node carries the exchange (see cluster.Node.Token), so receivers on
// every node prefer the newest owner's messages when two publish at once.
// Without a token (the lease is lost or given up) it drops the message:
// what the feed still reads until its unsubscribes take effect belongs to
// the new owner.
type originPublisher struct {
	hub.Publisher
	node     **cluster.Node // set before any feed runs
	exchange string
}

func (p *originPublisher) Publish(ctx context.Context, msg hub.Message) error {
	if msg.Origin = (*p.node).Token(p.exchange); msg.Origin == 0 {
		return nil
	}
	return p.Publisher.Publish(ctx, msg)
}

// redisLog is go-redis's logger as a slog.Logger at warning level.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, fmt.Sprintf(format, v...))
}
