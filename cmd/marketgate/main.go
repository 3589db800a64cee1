// Command marketgate is the market-data fan-out gateway: one shared upstream
// connection per exchange endpoint, fanned out to many browsers.
//
// It parses the flags (and their MARKETGATE_* variables), builds the
// gateway with gateway.New and runs it until a signal; see the README for
// what it does.
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
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/marketgate/marketgate/gateway"
	"github.com/marketgate/marketgate/upstream"
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
	ctx, stop := drainOnSignal()
	defer stop()
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

// drainOnSignal returns a context that ends at the first SIGINT or
// SIGTERM. The second one ends the process at once with that signal's
// default action: the relay that received the first keeps listening, so a
// second signal arriving at any moment of the drain cannot be swallowed.
func drainOnSignal() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		n := 0
		for {
			select {
			case sig := <-sigs:
				n++
				if n == 1 {
					cancel()
					continue
				}
				signal.Reset(syscall.SIGINT, syscall.SIGTERM)
				if s, ok := sig.(syscall.Signal); ok {
					_ = syscall.Kill(os.Getpid(), s)
				}
				return
			case <-done:
				return
			}
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		cancel()
		select {
		case <-done:
		default:
			close(done)
		}
	}
}

// serve runs the gateway until ctx ends, and it has drained, or until one
// of its parts fails. The public listener is ln (run opens it from
// --listen, so a busy port fails at once).
func serve(ctx context.Context, cfg config, ln net.Listener, log *slog.Logger) error {
	browsers := cfg.browsers
	browsers.AllowedOrigins = cfg.allowedOrigins
	gcfg := gateway.Config{
		Listener:         ln,
		AdminToken:       cfg.adminToken,
		MetricsPublic:    cfg.metricsPublic,
		Cmdline:          cfg.cmdline,
		NodeID:           cfg.nodeID,
		Exchanges:        map[string]upstream.Config{},
		Demo:             cfg.demo,
		Browsers:         browsers,
		HandshakeTimeout: cfg.handshake,
		Auth:             cfg.auth,
		DrainTimeout:     cfg.drainTimeout,
		HistorySize:      historySize(cfg.historySize),
		BookDepth:        cfg.bookDepth,
		AllowedOrigins:   cfg.allowedOrigins,
		RESTWeightShare:  cfg.restShare,
		RESTWeightLimits: map[string]int{},
		HistoryTTL:       cfg.historyTTL,
		Logger:           log,
	}
	for name, n := range cfg.restLimits {
		gcfg.RESTWeightLimits[name] = *n
	}
	for name, c := range cfg.upstreams {
		if c.URL != "" { // not turned off
			gcfg.Exchanges[name] = *c
		}
	}
	if cfg.redis != "" {
		// go-redis logs (dial failures while Redis is down) through one
		// process-wide logger: send it to ours.
		redis.SetLogger(redisLog{log.With("component", "redis")})
		// One set of options, credentials and TLS included, for both the
		// hub and the cluster coordination.
		opts, copts, err := redisOptions(cfg)
		if err != nil {
			ln.Close()
			return err
		}
		gcfg.Redis, gcfg.RedisCluster = opts, copts
	}
	if cfg.adminListen != "" {
		aln, err := net.Listen("tcp", cfg.adminListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("--admin-listen: %w", err)
		}
		gcfg.AdminListener = aln
	}
	g, err := gateway.New(gcfg)
	if err != nil {
		return err
	}
	return g.Run(ctx)
}

// redisLog is go-redis's logger as a slog.Logger at warning level.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, fmt.Sprintf(format, v...))
}

// historySize maps --history-size to the hub's setting: 0 keeps none.
func historySize(n int) int {
	if n == 0 {
		return -1
	}
	return n
}
