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
	"strings"
	"sync"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/marketgate/marketgate/gateway"
	"github.com/marketgate/marketgate/internal/memlimit"
	"github.com/marketgate/marketgate/internal/version"
	"github.com/marketgate/marketgate/upstream"
)

func main() {
	os.Exit(run(os.Args[1:], environ(), os.Stdout, os.Stderr))
}

// environ returns the process's environment by name.
func environ() map[string]string {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}

// run starts the gateway and returns its exit code: 0 after a signal-driven
// stop, 1 when a component fails, 2 for an invalid configuration. The
// commands "version" and "check" (see runCheck) print to stdout and
// return at once.
func run(args []string, env map[string]string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "version":
			if len(args) > 1 {
				fmt.Fprintf(stderr, "marketgate: version takes no arguments\n")
				return 2
			}
			fmt.Fprintln(stdout, version.Get())
			return 0
		case "check":
			return runCheck(args[1:], env, stdout, stderr)
		}
	}
	// Caught from the start, so that a SIGHUP that comes while the node
	// starts does not end it (the default action); it is handled once the
	// gateway runs.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	cfg, code, ok := loadConfig(args, env, stdout, stderr, 2)
	if !ok {
		return code
	}
	cfg.cmdline = append([]string{os.Args[0]}, redactArgs(args)...)
	level := new(slog.LevelVar)
	level.Set(cfg.logLevel)
	log := cfg.loggerAt(stderr, level)
	info := version.Get()
	log.Info("marketgate", "version", info.Version, "revision", info.Revision, "go", info.GoVersion)
	log.LogAttrs(context.Background(), slog.LevelInfo, "configuration", cfg.effective...)
	warnUnknownEnv(log, cfg.unknownEnv)
	memlimit.Apply(memlimit.Config{Ratio: cfg.memLimitRatio, Logger: log})
	ctx, stop := drainOnSignal()
	defer stop()
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		fmt.Fprintf(stderr, "marketgate: --listen: %v\n", err)
		return 1
	}
	r := &reloader{args: args, environ: environ, cur: cfg, level: level, log: log}
	if err := serveReloading(ctx, cfg, ln, log, hup, r); err != nil {
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
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-sigs:
			cancel()
		case <-done:
			return
		}
		select {
		case sig := <-sigs:
			signal.Reset(syscall.SIGINT, syscall.SIGTERM)
			if s, ok := sig.(syscall.Signal); ok {
				_ = syscall.Kill(os.Getpid(), s)
			}
		case <-done:
		}
	})
	return ctx, sync.OnceFunc(func() {
		signal.Stop(sigs)
		cancel()
		close(done)
		wg.Wait()
	})
}

// loadConfig parses the configuration. When there is nothing to run
// (--help, --version, or an error, reported on stderr with exit code
// bad) it returns ok false and the exit code.
func loadConfig(args []string, env map[string]string, stdout, stderr io.Writer, bad int) (config, int, bool) {
	cfg, err := parseConfig(args, env, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return cfg, 0, false
	case errors.Is(err, errVersion):
		fmt.Fprintln(stdout, version.Get())
		return cfg, 0, false
	case err != nil:
		fmt.Fprintf(stderr, "marketgate: %v\n", err)
		return cfg, bad, false
	}
	return cfg, 0, true
}

// runCheck is "marketgate check [flags]": it parses the configuration as
// a start would (flags, environment, --config file) and reports, without
// opening a listener or a connection. It returns 0 when the
// configuration is valid and 1 when not, with the reason on stderr.
func runCheck(args []string, env map[string]string, stdout, stderr io.Writer) int {
	cfg, code, ok := loadConfig(args, env, stdout, stderr, 1)
	if !ok {
		return code
	}
	for _, name := range cfg.unknownEnv {
		fmt.Fprintf(stderr, "marketgate: warning: %s is not a setting's variable and is ignored\n", name)
	}
	from := "flags and environment"
	if cfg.configFile != "" {
		from = cfg.configFile + ", " + from
	}
	fmt.Fprintf(stdout, "marketgate: configuration OK (%s)\n", from)
	return 0
}

// warnUnknownEnv logs the MARKETGATE_* variables no setting reads: a
// typo (MARKETGATE_MAX_CONN) would otherwise be ignored without a word.
func warnUnknownEnv(log *slog.Logger, names []string) {
	if len(names) > 0 {
		log.Warn("environment variables that are no setting's are ignored (marketgate --help lists the settings)", "vars", strings.Join(names, ","))
	}
}

// serve runs the gateway until ctx ends, and it has drained, or until one
// of its parts fails. The public listener is ln (run opens it from
// --listen, so a busy port fails at once).
func serve(ctx context.Context, cfg config, ln net.Listener, log *slog.Logger) error {
	return serveReloading(ctx, cfg, ln, log, nil, nil)
}

// serveReloading is serve that also reloads the configuration with r at
// each signal from hup (nil: never), while the gateway runs.
func serveReloading(ctx context.Context, cfg config, ln net.Listener, log *slog.Logger, hup <-chan os.Signal, r *reloader) error {
	g, err := newGateway(cfg, ln, log)
	if err != nil {
		return err
	}
	if hup == nil || r == nil {
		return g.Run(ctx)
	}
	// The reloader lives as long as the gateway, drain included, so
	// that a SIGHUP never meets the signal's default action.
	r.g = g
	rctx, stopReload := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { r.run(rctx, hup) })
	err = g.Run(ctx)
	stopReload()
	wg.Wait()
	return err
}

// newGateway builds the gateway of cfg, with ln as its public listener;
// it opens the other listeners cfg names. On an error it closes them all.
func newGateway(cfg config, ln net.Listener, log *slog.Logger) (*gateway.Gateway, error) {
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
			return nil, err
		}
		gcfg.Redis, gcfg.RedisCluster = opts, copts
	}
	if cfg.adminListen != "" {
		aln, err := net.Listen("tcp", cfg.adminListen)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("--admin-listen: %w", err)
		}
		gcfg.AdminListener = aln
	}
	if cfg.metricsListen != "" {
		mln, err := net.Listen("tcp", cfg.metricsListen)
		if err != nil {
			ln.Close()
			if gcfg.AdminListener != nil {
				gcfg.AdminListener.Close()
			}
			return nil, fmt.Errorf("--metrics-listen: %w", err)
		}
		gcfg.MetricsListener = mln
	}
	return gateway.New(gcfg)
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
