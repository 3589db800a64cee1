// Command wsbench is the load generator of marketgate: it opens many
// WebSocket connections to a server that speaks the native protocol (/ws),
// subscribes each to a few streams, and measures what arrives: messages per
// second, the latency of each event (now − its "E" time) and errors, and,
// given the server's pid, the server's memory per connection, threads and
// CPU per delivered message.
//
//	wsbench --url ws://127.0.0.1:8080/ws --conns 10000 --procs 2 \
//	    --streams binance:btcusdt@trade,binance:ethusdt@trade --per-conn 1 \
//	    --sources 127.0.0.2-127.0.0.50 --rate 2000 --duration 30s --pid 1234
//	wsbench --url ws://127.0.0.1:8080/ws --conns 15000 --procs 2 --idle --pid 1234
//
// A run opens the connections at --rate (the ramp), waits --warmup, then
// measures for --duration (the window): rates, latency and server CPU cover
// the window only; errors cover the whole run. A progress line goes to
// stderr every second, the report to stdout at the end (JSON with --json).
//
// Each process may hold only so many descriptors, so --procs P spreads the
// connections over P child processes (copies of wsbench with --child i);
// the parent asks them for cumulative snapshots over pipes and merges them.
// --sources spreads the connections over local addresses so that no single
// source address runs out of ephemeral ports.
//
// Every flag can also come from the environment as WSBENCH_<FLAG>, upper
// case with dashes as underscores (--per-conn is WSBENCH_PER_CONN); a flag
// on the command line wins.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/marketgate/marketgate/internal/envflag"
)

const envPrefix = "WSBENCH_"

// config is the parsed command line. It is never changed after parsing.
type config struct {
	url           string
	conns         int
	streams       []string
	perConn       int
	sources       []netip.Addr
	procs         int
	rate          float64
	warmup        time.Duration
	duration      time.Duration
	dialTimeout   time.Duration
	idle          bool
	pid           int
	goroutinesURL string
	setupPIDs     []int
	json          bool
	logLevel      slog.Level
	// sampleConns is how many connections parse every message (0: all);
	// the others run as others says (othersCount or othersMute).
	sampleConns int
	others      string
	// cpus is the CPU set to pin to (ncpus > 0), and cpuList as given.
	cpus       unix.CPUSet
	ncpus      int
	cpuList    string
	metricsURL string
	// child is this process's worker index, or -1 in the parent.
	child int
}

// rampBound is the longest the ramp may take: opening at --rate, plus a
// dial and a subscribe reply timeout for the last connection.
func (c config) rampBound() time.Duration {
	return time.Duration(float64(c.conns)/c.rate*float64(time.Second)) + 2*c.dialTimeout + 5*time.Second
}

// timeBound bounds a whole run; a child stops by then even if its parent
// never tells it to.
func (c config) timeBound() time.Duration {
	return c.rampBound() + c.warmup + c.duration + time.Minute
}

// parseConfig reads flags, falling back to WSBENCH_* variables (through
// lookup) for flags not given. Usage goes to usage on -h.
func parseConfig(args []string, lookup func(string) (string, bool), usage io.Writer) (config, error) {
	c := config{child: -1}
	fs := flag.NewFlagSet("wsbench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.url, "url", "ws://127.0.0.1:8080/ws", "native-protocol WebSocket `URL` of the server")
	fs.IntVar(&c.conns, "conns", 1000, "connections to open")
	streams := fs.String("streams", "binance:btcusdt@trade", "comma-separated stream `keys`")
	fs.IntVar(&c.perConn, "per-conn", 1, "streams each connection subscribes, round robin over --streams")
	sources := fs.String("sources", "", "local source `addresses` to dial from, round robin: a,b-c,… (empty: the system's choice)")
	fs.IntVar(&c.procs, "procs", 1, "processes to spread the connections over (each holds conns/procs descriptors)")
	fs.Float64Var(&c.rate, "rate", 1000, "connections opened per second")
	fs.DurationVar(&c.warmup, "warmup", 3*time.Second, "wait after the ramp before measuring")
	fs.DurationVar(&c.duration, "duration", 30*time.Second, "length of the measured window")
	fs.DurationVar(&c.dialTimeout, "dial-timeout", 10*time.Second, "bound on a connect and handshake, and on the wait for a subscribe reply")
	fs.BoolVar(&c.idle, "idle", false, "open connections and subscribe nothing (idle-memory measurement)")
	fs.IntVar(&c.pid, "pid", 0, "`pid` of the server, to report its RSS, threads and CPU from /proc (0: none)")
	fs.StringVar(&c.goroutinesURL, "goroutines-url", "", "`URL` answering the server's goroutine count, as a number or Prometheus text (go_goroutines)")
	setup := fs.String("setup-pids", "", "comma-separated `pids` of the rest of the setup (the exchange, other servers), whose CPU the report shows apart from other processes")
	fs.IntVar(&c.sampleConns, "sample-conns", 0, "connections that parse every message for latency and seq checks, spread over the connection order; the others run as --others says (0: all parse)")
	fs.StringVar(&c.others, "others", othersCount, "what the connections beyond --sample-conns do once subscribed: count (count frames and bytes, parse nothing) or mute (read nothing; the server drops them when their socket buffers fill)")
	fs.StringVar(&c.cpuList, "cpus", "", "CPU `list` to pin wsbench and its children to, as taskset -c takes it (1, 0,2, 2-3); empty: no pinning")
	fs.StringVar(&c.metricsURL, "metrics-url", "", "the gateway's Prometheus `URL` (/metrics): report its fan-out duration (marketgate_fanout_duration_seconds) and frames per write over the window")
	fs.BoolVar(&c.json, "json", false, "print the final report as JSON")
	fs.TextVar(&c.logLevel, "log-level", slog.LevelInfo, "log `level`: debug, info, warn or error")
	fs.IntVar(&c.child, "child", -1, "internal: run as worker process `i` of --procs")

	if err := envflag.Parse(fs, args, envPrefix, lookup, usage, "Usage: wsbench [flags]; every flag also reads WSBENCH_<FLAG>.", "child"); err != nil {
		return c, err
	}
	c.streams = parseStreams(*streams)
	if c.cpuList != "" {
		var err error
		if c.cpus, c.ncpus, err = parseCPUs(c.cpuList); err != nil {
			return c, fmt.Errorf("invalid value for flag -cpus: %w", err)
		}
	}
	for _, p := range parseStreams(*setup) {
		pid, err := strconv.Atoi(p)
		if err != nil || pid <= 0 {
			return c, fmt.Errorf("invalid value %q for flag -setup-pids: want pids", *setup)
		}
		c.setupPIDs = append(c.setupPIDs, pid)
	}
	var err error
	if c.sources, err = parseSources(*sources); err != nil {
		return c, fmt.Errorf("invalid value for flag -sources: %w", err)
	}
	return c, c.validate()
}

// validate checks the values that flag parsing cannot.
func (c config) validate() error {
	switch {
	case !strings.HasPrefix(c.url, "ws://"):
		return fmt.Errorf("invalid value %q for flag -url: want ws://host:port/path", c.url)
	case c.conns < 1:
		return fmt.Errorf("invalid value %d for flag -conns: want at least 1", c.conns)
	case c.procs < 1 || c.procs > 256:
		return fmt.Errorf("invalid value %d for flag -procs: want 1 to 256", c.procs)
	case !(c.rate > 0):
		return fmt.Errorf("invalid value %v for flag -rate: want more than 0", c.rate)
	case c.duration <= 0 || c.warmup < 0 || c.dialTimeout <= 0:
		return errors.New("invalid durations: -duration and -dial-timeout must be positive, -warmup not negative")
	case c.others != othersCount && c.others != othersMute:
		return fmt.Errorf("invalid value %q for flag -others: want count or mute", c.others)
	case c.sampleConns < 0:
		return fmt.Errorf("invalid value %d for flag -sample-conns: want 0 (all) or more", c.sampleConns)
	case c.metricsURL != "" && !strings.HasPrefix(c.metricsURL, "http://") && !strings.HasPrefix(c.metricsURL, "https://"):
		return fmt.Errorf("invalid value %q for flag -metrics-url: want an http:// URL", c.metricsURL)
	case c.child >= c.procs:
		return fmt.Errorf("invalid value %d for flag -child: want below -procs %d", c.child, c.procs)
	}
	if !c.idle && (len(c.streams) == 0 || c.perConn < 1 || c.perConn > len(c.streams)) {
		return fmt.Errorf("invalid value %d for flag -per-conn: want 1 to the %d streams of -streams", c.perConn, len(c.streams))
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
		if need := uint64((c.conns+c.procs-1)/c.procs + 32); need > lim.Cur {
			return fmt.Errorf("invalid value %d for flag -procs: %d connections need %d descriptors per process, the limit is %d; raise -procs",
				c.procs, c.conns, need, lim.Cur)
		}
	}
	return nil
}

func main() {
	cfg, err := parseConfig(os.Args[1:], os.LookupEnv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "wsbench: "+err.Error())
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.logLevel}))
	if cfg.ncpus > 0 {
		if err := pinCPUs(cfg.cpus, cfg.ncpus); err != nil {
			fmt.Fprintln(os.Stderr, "wsbench: "+err.Error())
			os.Exit(1)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.child >= 0 {
		if err := runChild(ctx, cfg, log, os.Stdin, os.Stdout); err != nil {
			log.Error("child", "proc", cfg.child, "err", err)
			os.Exit(1)
		}
		return
	}
	rep, err := runParent(ctx, cfg, log, os.Stderr)
	if err != nil {
		log.Error("run", "err", err)
		os.Exit(1)
	}
	if cfg.json {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			log.Error("write report", "err", err)
			os.Exit(1)
		}
		return
	}
	rep.writeText(os.Stdout)
}

// Phases of a run.
const (
	phaseRamp = iota
	phaseWarmup
	phaseWindow
)

var phaseNames = [...]string{"ramp", "warmup", "window"}

// runParent starts the workers, prints progress every second, and returns
// the report of the window. It stops every worker before it returns.
func runParent(ctx context.Context, cfg config, log *slog.Logger, progress io.Writer) (Report, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.timeBound())
	defer cancel()
	var base procSample
	if cfg.pid > 0 {
		var err error
		if base, err = readProc(cfg.pid); err != nil {
			return Report{}, fmt.Errorf("--pid %d: %w", cfg.pid, err)
		}
	}
	var hs []handle
	stopAll := func() error {
		deadline := time.Now().Add(15 * time.Second)
		var errs []error
		for _, h := range hs {
			errs = append(errs, h.stop(deadline))
		}
		return errors.Join(errs...)
	}
	defer func() { _ = stopAll() }()
	if cfg.procs == 1 {
		hs = append(hs, startLocal(ctx, cfg, log))
	} else {
		for i := range cfg.procs {
			h, err := startChild(i)
			if err != nil {
				return Report{}, err
			}
			hs = append(hs, h)
		}
	}
	log.Info("started", "url", cfg.url, "conns", cfg.conns, "procs", cfg.procs, "idle", cfg.idle,
		"streams", len(cfg.streams), "per_conn", cfg.perConn, "sources", len(cfg.sources))

	var (
		start        = time.Now()
		phase        = phaseRamp
		ramp         time.Duration
		warmEnd      time.Time
		winStart     time.Time
		first        Snapshot
		firstSrv     procSample
		firstHost    float64
		firstCPU     map[int]float64
		firstMetrics serverMetrics
		metricsErr   error
		firstP50     = -1.0 // the sampled clients' p50 in the window's first and last second, ms
		lastP50      = -1.0
		prev         Snapshot
		prevT        = start
		prevHost     float64
		tick         = time.NewTicker(time.Second)
		rampDeadline = start.Add(cfg.rampBound())
	)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return Report{}, fmt.Errorf("run stopped in the %s phase: %w", phaseNames[phase], context.Cause(ctx))
		case <-tick.C:
		}
		cur, err := snapshotAll(hs)
		now := time.Now()
		if err != nil {
			return Report{}, err
		}
		var srv procSample
		if cfg.pid > 0 {
			if srv, err = readProc(cfg.pid); err != nil {
				return Report{}, fmt.Errorf("--pid %d: %w", cfg.pid, err)
			}
		}
		host, err := readHostCPU()
		if err != nil {
			return Report{}, err
		}
		printProgress(progress, now.Sub(start), phaseNames[phase], cfg, cur, prev, now.Sub(prevT), srv, host-prevHost)
		if d := cur.Sub(prev); phase == phaseWindow && d.Latency.Total() > 0 {
			lastP50 = float64(d.Latency.Quantile(0.5)) / 1000
			if firstP50 < 0 {
				firstP50 = lastP50
			}
		}
		prev, prevT, prevHost = cur, now, host

		if phase == phaseRamp && (cur.Ready || now.After(rampDeadline)) {
			if !cur.Ready {
				log.Warn("ramp did not finish in time; measuring anyway", "open", cur.Open(), "target", cfg.conns)
			}
			ramp, phase, warmEnd = now.Sub(start), phaseWarmup, now.Add(cfg.warmup)
		}
		if phase == phaseWarmup && !now.Before(warmEnd) {
			phase, winStart, first, firstSrv, firstHost = phaseWindow, now, cur, srv, host
			firstCPU, _ = cpuByProcess()
			if cfg.metricsURL != "" {
				firstMetrics, metricsErr = fetchServerMetrics(ctx, cfg.metricsURL)
			}
			log.Info("measuring", "open", cur.Open(), "duration", cfg.duration)
			continue
		}
		// Half a tick of slack: the window ends on the tick nearest to
		// --duration, and the report uses the measured length.
		if phase == phaseWindow && now.Sub(winStart)+time.Second/2 >= cfg.duration {
			rep := buildReport(cfg, ramp, now.Sub(winStart), first, cur)
			secs := now.Sub(winStart).Seconds()
			rep.HostCPU = (host - firstHost) / secs
			ours, setup := map[int]bool{os.Getpid(): true, cfg.pid: true}, map[int]bool{}
			for _, h := range hs {
				ours[h.pid()] = true
			}
			for _, p := range cfg.setupPIDs {
				setup[p] = true
			}
			lastCPU, kernel := cpuByProcess()
			rep.Machine = splitCPU(firstCPU, lastCPU, kernel, ours, setup, secs)
			if rep.Machine.Other > 0.1 {
				log.Warn("other processes used the machine during the window; the figures are doubtful", "cores", rep.Machine.Other)
			}
			if cfg.metricsURL != "" {
				var last serverMetrics
				if metricsErr == nil {
					last, metricsErr = fetchServerMetrics(ctx, cfg.metricsURL)
				}
				if metricsErr != nil {
					log.Warn("server metrics", "err", metricsErr)
				} else {
					f := fanOutBetween(firstMetrics, last)
					rep.FanOut = &f
				}
			}
			rep.Warnings = bottlenecks(rep, cfg, firstP50, lastP50)
			for _, w := range rep.Warnings {
				log.Warn(w)
			}
			if cfg.pid > 0 {
				g := -1
				if cfg.goroutinesURL != "" {
					if g, err = fetchGoroutines(ctx, cfg.goroutinesURL); err != nil {
						log.Warn("goroutine count", "err", err)
						g = -1
					}
				}
				rep.addServer(cfg.pid, base, firstSrv, srv, g)
			}
			if err := stopAll(); err != nil {
				log.Warn("stop workers", "err", err)
			}
			return rep, nil
		}
	}
}

// printProgress writes one line: connections, message rate and latency
// over the last interval, errors so far, the server's RSS and how busy the
// machine was.
func printProgress(w io.Writer, elapsed time.Duration, phase string, cfg config, cur, prev Snapshot, dt time.Duration, srv procSample, hostCPU float64) {
	d := cur.Sub(prev)
	rate, busy := 0.0, 0.0
	if dt > 0 {
		rate, busy = float64(d.Msgs)/dt.Seconds(), hostCPU/dt.Seconds()
	}
	ms := func(q float64) float64 { return float64(d.Latency.Quantile(q)) / 1000 }
	line := fmt.Sprintf("%4.0fs %-6s conns %d/%d msgs/s %.0f lat ms p50 %.1f p99 %.1f p999 %.1f errs %d gaps %d",
		elapsed.Seconds(), phase, cur.Open(), cfg.conns, rate, ms(0.5), ms(0.99), ms(0.999), cur.Errors(), cur.SeqGaps)
	if cfg.pid > 0 {
		line += fmt.Sprintf(" server rss %.1fMiB threads %d", float64(srv.RSS)/(1<<20), srv.Threads)
	}
	line += fmt.Sprintf(" host busy %.2f cores", busy)
	fmt.Fprintln(w, line)
}
