package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/marketgate/marketgate/admin"
	"github.com/marketgate/marketgate/book"
	"github.com/marketgate/marketgate/downstream"
	"github.com/marketgate/marketgate/gateway"
	"github.com/marketgate/marketgate/hub"
	"github.com/marketgate/marketgate/internal/envflag"
	"github.com/marketgate/marketgate/internal/nodeid"
	"github.com/marketgate/marketgate/market"
	"github.com/marketgate/marketgate/upstream"
)

// config is the gateway's effective configuration: flags, each also read
// from MARKETGATE_<FLAG>; a flag given on the command line wins.
type config struct {
	listen      string
	adminListen string
	adminToken  string
	demo        bool
	// upstreams are the exchanges' settings (URLs and limits), by the
	// exchange's name in the table (gateway.Exchanges). An exchange with no
	// entry, or an optional one turned off (--binance-futures-url ""), with
	// no URL, is not carried.
	upstreams map[string]*upstream.Config
	// options are the exchanges' own options (--binance-microsecond-times),
	// by exchange and option name; they end up in upstreams' Dialect.
	options        map[string]map[string]*bool
	redis          string
	redisTLSCA     string // --redis-tls-ca: PEM roots for rediss://
	redisTLSCert   string // --redis-tls-cert, with redisTLSKey: client certificate
	redisTLSKey    string
	nodeID         string
	metricsPublic  bool
	effective      []slog.Attr // every setting after parsing, secrets masked
	redisCluster   bool
	drainTimeout   time.Duration
	historySize    int             // --history-size: messages kept per stream; 0: none
	bookDepth      int             // --book-depth: levels a side of the kept order books
	restShare      float64         // --rest-weight-share: share of the exchanges' REST weight spent at most
	restLimits     map[string]*int // --<exchange>-rest-weight-limit
	historyTTL     time.Duration   // --history-ttl
	allowedOrigins []string
	logLevel       slog.Level
	logFormat      string
	browsers       downstream.Config // limits of browser connections (Hub, Source and Logger unset)
	handshake      time.Duration
	cmdline        []string // the command line, secrets masked, for /debug/pprof/cmdline
	// auth is browser authentication: the flags (authFlags), and what
	// they make (nil: off).
	authFlags authSettings
	auth      *gateway.AuthConfig

	configFile    string  // --config: the YAML file read, "" for none
	metricsListen string  // --metrics-listen: a listener serving /metrics alone
	memLimitRatio float64 // --memory-limit-ratio: GOMEMLIMIT as this share of the cgroup's limit
	// sources says where each setting that is not its default came from:
	// "flag", "env" or the configuration file's name.
	sources map[string]string
	// values are every flag's effective value, unmasked: what a reload
	// compares. Never logged.
	values map[string]string
	// unknownEnv are the MARKETGATE_* variables no flag reads (D10),
	// warned about at start.
	unknownEnv []string
}

// maxHistorySize bounds --history-size: each stream's history is kept
// whole, in memory or in Redis.
const maxHistorySize = 1_000_000

// envPrefix starts the environment variable of every flag.
const envPrefix = "MARKETGATE_"

// envName returns the environment variable that mirrors a flag.
func envName(flagName string) string { return envflag.Name(envPrefix, flagName) }

// errVersion is parseConfig's answer to --version: print the version
// and exit.
var errVersion = errors.New("version asked")

// parseConfig parses args, the environment env (variables by name) and
// the configuration file --config names, in that order of precedence
// (then the defaults). Its error names the setting, the value and what is
// wrong, in one line; for a setting from the file, the file and line.
func parseConfig(args []string, env map[string]string, usage io.Writer) (config, error) {
	c := config{upstreams: map[string]*upstream.Config{}, options: map[string]map[string]*bool{}, sources: map[string]string{}, values: map[string]string{}}
	var origins, level, proxies string
	var showVersion bool
	fs := flag.NewFlagSet("marketgate", flag.ContinueOnError)
	fs.StringVar(&c.configFile, "config", "", "YAML configuration file: keys are these settings' names (listen: \":8080\"), a prefix may nest (binance: {url: …}); "+
		"a flag wins over its environment variable, which wins over the file")
	fs.BoolVar(&showVersion, "version", false, "print the version, revision and Go version, and exit")
	fs.StringVar(&c.metricsListen, "metrics-listen", "", "a listener serving only /metrics, without the admin token (for Prometheus); empty: none")
	fs.Float64Var(&c.memLimitRatio, "memory-limit-ratio", 0.9, "unless GOMEMLIMIT is set, the Go runtime's soft memory limit as this share of the container's (cgroup) memory limit; 0: not set")
	fs.SetOutput(io.Discard) // errors are reported in one line below; --help prints through fs.Usage
	fs.StringVar(&c.listen, "listen", ":8080", "public listener: web UI, browser WebSockets, /healthz, /readyz")
	fs.StringVar(&c.adminListen, "admin-listen", "127.0.0.1:9090", "control listener: /api/v1/…, /metrics, pprof; beyond loopback it needs --admin-token")
	fs.StringVar(&c.adminToken, "admin-token", "", fmt.Sprintf("bearer token for the control listener, at least %d bytes (e.g. openssl rand -hex 32); empty: loopback clients only. "+
		"A secret: set MARKETGATE_ADMIN_TOKEN rather than the flag, which other users of the host can read", admin.MinTokenLen))
	fs.BoolVar(&c.metricsPublic, "metrics-public", false, "serve /metrics on the control listener without the token (or to non-loopback clients)")
	fs.BoolVar(&c.demo, "demo", false, "run each carried exchange's simulator in-process and connect to it instead of the exchange; carries every exchange unless --exchanges is given")
	var exchanges string
	fs.StringVar(&exchanges, "exchanges", defaultExchanges, "comma-separated exchanges to carry ("+exchangeNames()+"), or all; an optional exchange is also turned off by an empty --<exchange>-url")
	for _, x := range gateway.Exchanges() {
		c.upstreams[x.Name] = new(upstream.Config)
		c.options[x.Name] = map[string]*bool{}
		exchangeFlags(fs, c.upstreams[x.Name], c.options[x.Name], x)
		if x.REST != nil {
			if c.restLimits == nil {
				c.restLimits = make(map[string]*int)
			}
			c.restLimits[x.Name] = new(int)
			fs.IntVar(c.restLimits[x.Name], x.Name+"-rest-weight-limit", x.REST.WeightLimit(), x.Title+": the exchange's REST request weight limit per minute per IP (the gateway spends --rest-weight-share of it at most)")
		}
	}
	fs.StringVar(&c.redis, "redis", "", "Redis URL (redis://[user:password@]host:port/db, rediss:// for TLS); empty: the in-process hub (one node). Give a password through the environment variable, not the command line, which other local users can read")
	fs.BoolVar(&c.redisCluster, "redis-cluster", false, "--redis names a Redis Cluster: redis://[user:password@]host:port?addr=host:port&addr=… lists seed nodes; pub/sub is sharded")
	fs.StringVar(&c.redisTLSCA, "redis-tls-ca", "", "PEM file of the CA certificates that Redis's server certificate must chain to (rediss:// only); empty: the system's roots")
	fs.StringVar(&c.redisTLSCert, "redis-tls-cert", "", "PEM file of the client certificate presented to Redis (rediss:// only, with --redis-tls-key)")
	fs.StringVar(&c.redisTLSKey, "redis-tls-key", "", "PEM file of the key of --redis-tls-cert")
	fs.DurationVar(&c.drainTimeout, "drain-timeout", 10*time.Second, "on SIGTERM, how long the node may take to hand its upstreams over before it closes its clients")
	fs.StringVar(&c.nodeID, "node-id", nodeid.Default(), "this node's name in the cluster")
	fs.Float64Var(&c.restShare, "rest-weight-share", market.DefaultWeightShare, "share of each exchange's REST weight limit the node spends at most (market-data REST and book snapshots), leaving the rest to other processes on the IP; in (0,1]")
	fs.IntVar(&c.bookDepth, "book-depth", book.DefaultDepth, "levels a side of the order books the gateway keeps (<symbol>@book streams, REST depth): the snapshot limit asked of the exchange; one of 5, 10, 20, 50, 100, 500, 1000 (Binance spot also 5000, at weight 250 per snapshot)")
	fs.IntVar(&c.historySize, "history-size", hub.DefaultHistorySize, "messages kept per stream for clients that reconnect and recover what they missed (in memory on one node, in Redis with --redis); 0: none (positions only)")
	fs.DurationVar(&c.historyTTL, "history-ttl", hub.DefaultHistoryTTL, "how long a stream's history outlives its last message")
	fs.StringVar(&origins, "allowed-origins", "", "comma-separated browser origins allowed to open WebSockets; empty: any")
	fs.IntVar(&c.browsers.MaxConns, "max-conns", 10000, "browser connections this node holds at most; beyond, handshakes get HTTP 503 (each costs one descriptor)")
	fs.IntVar(&c.browsers.MaxConnsPerIP, "max-conns-per-ip", 1000, "browser connections per remote address; beyond, HTTP 429 (behind a proxy all clients share its address)")
	fs.IntVar(&c.browsers.MaxStreamsPerConn, "max-streams-per-conn", 1024, "streams one browser connection may subscribe")
	fs.IntVar(&c.browsers.MaxStreamsPerIP, "max-streams-per-ip", 2048, "distinct streams the browser connections from one address (IPv6: one /64) may hold together; beyond, error stream_limit")
	fs.IntVar(&c.browsers.MaxStreams, "max-streams-per-node", 8192, "distinct streams this node's browsers may hold together, below the exchanges' capacity; beyond, error stream_limit")
	fs.StringVar(&proxies, "trusted-proxies", "", "comma-separated CIDR prefixes of load balancers whose X-Forwarded-For / X-Real-IP is the client's address (per-address limits, logs); empty: the TCP peer is the client")
	fs.IntVar(&c.browsers.MaxCommandsPerSecond, "max-commands-per-second", 10, "messages (commands, pings) a browser may send per second; beyond, close 1008")
	fs.IntVar(&c.browsers.WriteQueueBytes, "write-queue-bytes", 1<<20, "unsent bytes queued per browser connection; beyond, the slow-consumer policy applies")
	fs.DurationVar(&c.browsers.WriteDelay, "write-delay", defaultWriteDelay, "how long a browser connection's frames may wait for more so that they go out in one write (fewer system calls, up to this much latency); 0: write each burst at once; at most 100ms")
	fs.DurationVar(&c.browsers.PingInterval, "ping-interval", 30*time.Second, "ping a browser connection that has been silent this long")
	fs.DurationVar(&c.browsers.PongTimeout, "pong-timeout", 30*time.Second, "drop a pinged browser connection still silent after this long")
	fs.BoolVar(&c.browsers.DisableCompression, "disable-compression", false, "never negotiate permessage-deflate with browsers")
	fs.DurationVar(&c.handshake, "handshake-timeout", 5*time.Second, "time a client has to send its HTTP request headers (slowloris bound)")
	authFlags(fs, &c.authFlags)
	fs.StringVar(&level, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.Usage = func() {} // the flag package calls it on every error too; --help is handled below
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(usage, fs)
			return c, err
		}
		if m := badFlag.FindStringSubmatch(err.Error()); m != nil {
			return c, expected(fs, "--"+m[2], m[2], m[1])
		}
		if name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -"); ok {
			return c, fmt.Errorf("--%s: no such setting (marketgate --help lists them)", strings.TrimLeft(name, "-"))
		}
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q: marketgate takes flags only", fs.Arg(0))
	}
	if showVersion {
		return c, errVersion
	}
	if err := c.fill(fs, env); err != nil {
		return c, err
	}
	if err := c.level(level); err != nil {
		return c, err
	}
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name != "version" {
			c.effective = append(c.effective, slog.String(f.Name, maskSecret(f.Name, f.Value.String())))
			c.values[f.Name] = f.Value.String()
		}
	})
	for _, o := range strings.Split(origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
				return c, fmt.Errorf("--allowed-origins: %q is not an origin like https://app.example.com", o)
			}
			c.allowedOrigins = append(c.allowedOrigins, o)
		}
	}
	for name, v := range map[string]string{"listen": c.listen, "admin-listen": c.adminListen} {
		if err := checkHostPort(name, v); err != nil {
			return c, err
		}
	}
	if err := checkAdmin(c.adminListen, c.adminToken); err != nil {
		return c, err
	}
	if c.demo && c.sources["exchanges"] == "" {
		exchanges = "all"
	}
	if err := carry(exchanges, c.upstreams); err != nil {
		return c, err
	}
	for _, x := range gateway.Exchanges() {
		xc := c.upstreams[x.Name]
		if x.Optional && xc.URL == "" {
			continue // turned off
		}
		for _, u := range []struct {
			name, v string
			schemes [2]string
		}{
			{x.Name + "-url", xc.URL, [2]string{"ws", "wss"}},
			{x.Name + "-rest-url", xc.RESTURL, [2]string{"http", "https"}},
		} {
			if p, err := url.Parse(u.v); err != nil || p.Host == "" || (p.Scheme != u.schemes[0] && p.Scheme != u.schemes[1]) {
				return c, fmt.Errorf("--%s: %q is not a %s:// or %s:// URL", u.name, u.v, u.schemes[0], u.schemes[1])
			}
		}
	}
	for _, x := range gateway.Exchanges() {
		xc := c.upstreams[x.Name]
		xc.Dialect = x.Dialect
		for _, o := range x.Options {
			if *c.options[x.Name][o.Name] {
				xc.Dialect = o.Apply(xc.Dialect)
			}
		}
		if err := checkLimits(fs, x, xc); err != nil {
			return c, err
		}
	}
	for name, n := range map[string]int{"max-conns": c.browsers.MaxConns, "max-conns-per-ip": c.browsers.MaxConnsPerIP,
		"max-streams-per-conn": c.browsers.MaxStreamsPerConn, "max-commands-per-second": c.browsers.MaxCommandsPerSecond,
		"write-queue-bytes": c.browsers.WriteQueueBytes, "max-streams-per-ip": c.browsers.MaxStreamsPerIP,
		"max-streams-per-node": c.browsers.MaxStreams} {
		if n <= 0 {
			return c, fmt.Errorf("--%s: %d is not a positive number", name, n)
		}
	}
	if d := c.browsers.WriteDelay; d < 0 || d > 100*time.Millisecond {
		return c, fmt.Errorf("--write-delay: %v is not between 0 and 100ms", d)
	}
	if c.restShare <= 0 || c.restShare > 1 {
		return c, fmt.Errorf("--rest-weight-share: %v is not in (0,1]", c.restShare)
	}
	for name, n := range c.restLimits {
		if *n <= 0 {
			return c, fmt.Errorf("--%s-rest-weight-limit: %d is not positive", name, *n)
		}
	}
	if !slices.Contains(book.Views, c.bookDepth) && c.bookDepth != 5000 {
		return c, fmt.Errorf("--book-depth: %d is not one of %v or 5000", c.bookDepth, book.Views)
	}
	if c.historySize < 0 || c.historySize > maxHistorySize {
		return c, fmt.Errorf("--history-size: %d is not between 0 (no history) and %d", c.historySize, maxHistorySize)
	}
	if c.sources["max-conns"] == "" {
		// Not chosen: the server's default, which shrinks to fit the
		// descriptor limit. A chosen value above it refuses to start.
		c.browsers.MaxConns = 0
	}
	trusted, err := downstream.ParseTrustedProxies(proxies)
	if err != nil {
		return c, fmt.Errorf("--trusted-proxies: %q is not a comma-separated list of CIDR prefixes such as 10.0.0.0/8: %v", proxies, err)
	}
	c.browsers.TrustedProxies = trusted
	for name, d := range map[string]time.Duration{"ping-interval": c.browsers.PingInterval, "pong-timeout": c.browsers.PongTimeout, "handshake-timeout": c.handshake, "drain-timeout": c.drainTimeout, "history-ttl": c.historyTTL} {
		if d <= 0 {
			return c, fmt.Errorf("--%s: %v is not a positive duration", name, d)
		}
	}
	if c.metricsListen != "" {
		if err := checkHostPort("metrics-listen", c.metricsListen); err != nil {
			return c, err
		}
	}
	if c.memLimitRatio < 0 || c.memLimitRatio > 1 {
		return c, fmt.Errorf("--memory-limit-ratio: %v is not in [0,1] (0: leave GOMEMLIMIT unset)", c.memLimitRatio)
	}
	if c.logFormat != "text" && c.logFormat != "json" {
		return c, fmt.Errorf("--log-format: %q is not text or json", c.logFormat)
	}
	if c.auth, err = c.authFlags.config(); err != nil {
		return c, err
	}
	if c.redis != "" {
		if _, _, err := redisOptions(c); err != nil {
			return c, err
		}
	} else if c.redisCluster || c.redisTLSCA != "" || c.redisTLSCert != "" || c.redisTLSKey != "" {
		return c, errors.New("--redis-cluster, --redis-tls-…: need --redis")
	}
	return c, nil
}

// checkHostPort refuses a listener address v of the flag name that is not
// host:port with a valid port.
func checkHostPort(name, v string) error {
	if _, port, err := net.SplitHostPort(v); err != nil {
		return fmt.Errorf("--%s: %q is not host:port: %v", name, v, err)
	} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("--%s: %q has no valid port", name, v)
	}
	return nil
}

// fill sets the flags the command line did not set from the environment
// env, then those still unset from the configuration file (--config,
// which may itself come from MARKETGATE_CONFIG), recording each one's
// source; and it lists the MARKETGATE_* variables no flag reads.
func (c *config) fill(fs *flag.FlagSet, env map[string]string) error {
	fs.Visit(func(f *flag.Flag) { c.sources[f.Name] = "flag" })
	filled, err := envflag.Fill(fs, envPrefix, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, "version")
	for _, name := range filled {
		c.sources[name] = "env"
	}
	if err != nil {
		if e, ok := errors.AsType[*envflag.Error](err); ok {
			return expected(fs, e.Var, e.Flag, e.Value)
		}
		return err
	}
	names := make([]string, 0, len(env))
	for k := range env {
		names = append(names, k)
	}
	c.unknownEnv = envflag.Unknown(fs, envPrefix, names, "version")
	if c.configFile == "" {
		return nil
	}
	settings, err := readConfigFile(c.configFile, fs)
	if err != nil {
		return err
	}
	// In the file's order, so that the first bad value is reported.
	order := make([]string, 0, len(settings))
	for name := range settings {
		order = append(order, name)
	}
	slices.SortFunc(order, func(a, b string) int { return settings[a].line - settings[b].line })
	for _, name := range order {
		if c.sources[name] != "" {
			continue // the command line or the environment wins
		}
		s := settings[name]
		if err := fs.Set(name, s.value); err != nil {
			return expected(fs, s.where(c.configFile), name, s.value)
		}
		c.sources[name] = c.configFile
	}
	return nil
}

// defaultExchanges are the exchanges carried unless --exchanges (or
// --demo) says otherwise: the ones an upgrade from a Binance-only gateway
// carried already. Others connect to more venues only when asked, so a
// deployment in a region one of them refuses stays ready.
const defaultExchanges = "binance,binance-futures"

// exchangeNames lists the exchange table's names, for help texts.
func exchangeNames() string {
	var names []string
	for _, x := range gateway.Exchanges() {
		names = append(names, x.Name)
	}
	return strings.Join(names, ", ")
}

// carry turns off (empties the URL of) every exchange that list, the
// value of --exchanges, leaves out. It refuses unknown names, repeats and
// leaving out an exchange that is not optional.
func carry(list string, upstreams map[string]*upstream.Config) error {
	want := map[string]bool{}
	if strings.TrimSpace(list) == "all" {
		for _, x := range gateway.Exchanges() {
			want[x.Name] = true
		}
	} else {
		for _, name := range strings.Split(list, ",") {
			name = strings.TrimSpace(name)
			if _, ok := upstreams[name]; !ok {
				return fmt.Errorf("--exchanges: %q is not an exchange; want a comma-separated list of %s, or all", name, exchangeNames())
			}
			if want[name] {
				return fmt.Errorf("--exchanges: %q is listed twice", name)
			}
			want[name] = true
		}
	}
	for _, x := range gateway.Exchanges() {
		switch {
		case want[x.Name]:
		case !x.Optional:
			return fmt.Errorf("--exchanges: %s cannot be left out", x.Name)
		default:
			upstreams[x.Name].URL = ""
		}
	}
	return nil
}

// checkAdmin refuses a token too short to be secret, and a control
// listener reachable beyond loopback with no token, whose only guard,
// the client's address, would then let in anyone who can reach it.
func checkAdmin(listen, token string) error {
	if token != "" && len(token) < admin.MinTokenLen {
		return fmt.Errorf("--admin-token: %d bytes is too short; use at least %d random bytes, e.g. $(openssl rand -hex 32)", len(token), admin.MinTokenLen)
	}
	host, _, _ := net.SplitHostPort(listen)
	if ip, err := netip.ParseAddr(host); token == "" && host != "localhost" && (err != nil || !ip.IsLoopback()) {
		return fmt.Errorf("--admin-listen: %q is reachable beyond loopback: set --admin-token (MARKETGATE_ADMIN_TOKEN), or listen on 127.0.0.1", listen)
	}
	return nil
}

// secretFlags are the flags whose values are secret, or may hold one.
var secretFlags = []string{"admin-token", "redis", "auth-hmac-secret"}

// redactArgs returns a copy of the command-line arguments args with the
// values of secretFlags masked as in the start-up log, for
// /debug/pprof/cmdline. A Redis URL that does not parse is masked whole.
func redactArgs(args []string) []string {
	out := slices.Clone(args)
	for i := 0; i < len(out); i++ {
		a := out[i]
		if a == "--" {
			break // the flag package stops here too
		}
		name, value, inline := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || !slices.Contains(secretFlags, name) {
			continue // a flag, or the value of one
		}
		vi := i + 1
		if inline {
			out[i], vi = a[:len(a)-len(value)], -1
		} else if vi < len(out) {
			value = out[vi]
			i++
		} else {
			break
		}
		masked := maskSecret(name, value)
		if name == "redis" && masked == value && strings.Contains(value, "@") {
			masked = "***" // not a URL maskSecret could take apart
		}
		if vi < 0 {
			out[i] += masked
		} else {
			out[vi] = masked
		}
	}
	return out
}

// exchangeFlags registers the settings of the exchange x under
// --<name>-…: its URLs, every limit the upstream keeps to, and the options
// only x has, with x's values (its dialect's limits) as defaults.
func exchangeFlags(fs *flag.FlagSet, c *upstream.Config, opts map[string]*bool, x gateway.Exchange) {
	f := func(name string) string { return x.Name + "-" + name }
	title, def := x.Title, x.Dialect.Limits()
	fs.StringVar(&c.URL, f("url"), def.URL, title+": market-stream base URL; the gateway connects to "+x.StreamPath)
	fs.StringVar(&c.RESTURL, f("rest-url"), def.RESTURL, title+": REST base URL of "+strings.Join(x.Dialect.SymbolsPaths(), " and ")+", the lists of valid symbols")
	fs.DurationVar(&c.RequestInterval, f("request-interval"), def.RequestInterval, title+": minimum spacing of any two frames sent on one connection (requests, pongs)")
	fs.IntVar(&c.MaxRequests, f("max-requests"), def.MaxRequests, title+": subscribe and unsubscribe requests one connection may send in any rolling --"+f("request-window")+" (a burst of a quarter at once, the rest spread over the window); exchanges without such a limit have none")
	fs.DurationVar(&c.RequestWindow, f("request-window"), def.RequestWindow, title+": the rolling window of --"+f("max-requests"))
	fs.IntVar(&c.MaxParams, f("max-params"), cmp.Or(def.MaxParams, upstream.DefaultMaxParams), title+": streams per SUBSCRIBE or UNSUBSCRIBE request")
	fs.IntVar(&c.MaxStreams, f("max-streams"), def.MaxStreams, title+": streams per connection; beyond, another connection (shard) is opened")
	fs.IntVar(&c.MaxShards, f("max-shards"), upstream.DefaultMaxShards, title+": connections per endpoint")
	fs.DurationVar(&c.ReplyTimeout, f("reply-timeout"), upstream.DefaultReplyTimeout, title+": wait for a request's reply; retried once, then the connection is replaced")
	fs.DurationVar(&c.Linger, f("linger"), upstream.DefaultLinger, title+": keep a stream subscribed this long after its last client leaves")
	fs.DurationVar(&c.IdleTimeout, f("idle-timeout"), def.IdleTimeout, title+": replace a connection on which nothing arrived for this long")
	fs.DurationVar(&c.MaxLifetime, f("max-lifetime"), def.MaxLifetime, title+": how long the exchange lets a connection live")
	fs.DurationVar(&c.RotateAfter, f("rotate-after"), 0, title+": replace a connection at this age, without losing or repeating an event; 0: max-lifetime − 10m (or half of it, if that is later)")
	fs.DurationVar(&c.HandoverTimeout, f("handover-timeout"), upstream.DefaultHandoverTimeout, title+": a rotation switches every stream by then (with a gap notice where continuity is not proven)")
	fs.IntVar(&c.HandoverBuffer, f("handover-buffer"), upstream.DefaultHandoverBuffer, title+": events buffered per stream from the new connection during a rotation")
	fs.DurationVar(&c.BackoffMin, f("backoff-min"), upstream.DefaultBackoffMin, title+": shortest reconnect delay (after an abrupt drop of a working connection the first retry is immediate)")
	fs.DurationVar(&c.BackoffMax, f("backoff-max"), upstream.DefaultBackoffMax, title+": longest reconnect delay, also used after a 1008 close")
	fs.DurationVar(&c.DialTimeout, f("dial-timeout"), upstream.DefaultDialTimeout, title+": bound on connecting, TLS and the WebSocket handshake")
	fs.IntVar(&c.MaxURLBytes, f("max-url-bytes"), upstream.DefaultMaxURLBytes, title+": a new connection carries its streams in its URL up to this length, then subscribes the rest")
	fs.Int64Var(&c.MaxMessageSize, f("max-message-size"), upstream.DefaultMaxMessageSize, title+": largest message accepted from the exchange, in bytes")
	fs.DurationVar(&c.SymbolRefresh, f("symbol-refresh"), upstream.DefaultSymbolRefresh, title+": period of symbol list refreshes")
	fs.DurationVar(&c.SymbolMissRefresh, f("symbol-miss-refresh"), upstream.DefaultSymbolMissRefresh, title+": least time between refreshes caused by an unknown symbol")
	fs.IntVar(&c.MaxConnAttempts, f("max-conn-attempts"), def.MaxConnAttempts, title+": connection attempts allowed per --"+f("conn-attempt-window"))
	fs.DurationVar(&c.ConnAttemptWindow, f("conn-attempt-window"), def.ConnAttemptWindow, title+": the sliding window of --"+f("max-conn-attempts"))
	fs.IntVar(&c.Redundancy, f("redundancy"), 1, fmt.Sprintf("%s: connections carrying each stream at once (1 to %d), opened apart; events are de-duplicated by their identity, so with 2 an abrupt drop of one loses nothing. They share --%s and --%s: N lanes carry 1/N as many streams, at N times the inbound bandwidth and parse work", title, upstream.MaxRedundancy, f("max-shards"), f("max-conn-attempts")))
	for _, o := range x.Options {
		opts[o.Name] = new(bool)
		fs.BoolVar(opts[o.Name], f(o.Name), false, title+": "+o.Help)
	}
}

// zeroAllowed are the exchange flags whose zero means something
// (derived, the default, or none); every other numeric exchange flag must
// be positive, since upstream.Config would silently take its zero for
// the default.
var zeroAllowed = map[string]bool{"rotate-after": true, "linger": true, "max-url-bytes": true, "max-requests": true, "request-window": true}

// checkLimits rejects limits that cannot work, naming the flag: a zero
// where the flag needs a positive value, a negative linger, and whatever
// upstream.CheckConfig refuses, its *upstream.ConfigError mapped from
// the Config field to the flag.
func checkLimits(fs *flag.FlagSet, x gateway.Exchange, c *upstream.Config) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		suffix, ok := strings.CutPrefix(f.Name, x.Name+"-")
		if err != nil || !ok || zeroAllowed[suffix] || ownedByLonger(f.Name, x.Name) {
			return
		}
		switch v := f.Value.(flag.Getter).Get().(type) {
		case time.Duration:
			if v <= 0 {
				err = fmt.Errorf("--%s: %v is not a positive duration", f.Name, v)
			}
		case int:
			if v <= 0 {
				err = fmt.Errorf("--%s: %d is not a positive number", f.Name, v)
			}
		case int64:
			if v <= 0 {
				err = fmt.Errorf("--%s: %d is not a positive number", f.Name, v)
			}
		}
	})
	if err != nil {
		return err
	}
	if c.Linger < 0 {
		return fmt.Errorf("--%s-linger: %v is negative", x.Name, c.Linger)
	}
	check := *c
	check.Dialect, check.Publisher = x.Dialect, hub.NewMemory()
	if err := upstream.CheckConfig(check); err != nil {
		if ce, ok := errors.AsType[*upstream.ConfigError](err); ok {
			return fmt.Errorf("--%s-%s: %w", x.Name, flagOfField(ce.Field), ce.Err)
		}
		return fmt.Errorf("--%s-…: %w", x.Name, err)
	}
	return nil
}

// ownedByLonger reports whether the flag belongs to an exchange whose name
// extends name ("binance-futures-url" is not one of "binance"'s flags).
func ownedByLonger(flagName, name string) bool {
	for _, x := range gateway.Exchanges() {
		if len(x.Name) > len(name) && strings.HasPrefix(flagName, x.Name+"-") {
			return true
		}
	}
	return false
}

// flagOfField returns the flag suffix of an upstream.Config field:
// "RotateAfter" is "rotate-after", "MaxURLBytes" is "max-url-bytes".
func flagOfField(field string) string {
	switch field {
	case "URL":
		return "url"
	case "RESTURL":
		return "rest-url"
	case "MaxURLBytes":
		return "max-url-bytes"
	}
	var b strings.Builder
	for i, r := range field {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('-')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (c *config) level(s string) error {
	if err := c.logLevel.UnmarshalText([]byte(s)); err != nil {
		return fmt.Errorf("--log-level: %q is not debug, info, warn or error", s)
	}
	return nil
}

func (c *config) logger(w io.Writer) *slog.Logger {
	return c.loggerAt(w, c.logLevel)
}

// loggerAt is logger at level, which may be a *slog.LevelVar that a
// reload changes.
func (c *config) loggerAt(w io.Writer, level slog.Leveler) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if c.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// flagGroup is a group of flags in --help.
type flagGroup struct {
	title string
	has   func(name string) bool
}

// flagGroups orders --help: each flag goes to the first group whose test
// accepts its name.
var flagGroups = usageGroups(gateway.Exchanges())

// defaultWriteDelay is --write-delay's default, chosen from bench/run.sh
// (see bench/README.md, issue 17).
const defaultWriteDelay = 0

// usageGroups returns the groups of --help: the fixed ones, then one per
// exchange of table, titled with its title, then logging and the rest.
// The exchanges with longer names come first, so that one whose name
// extends another's (binance-futures, binance) claims its flags first.
func usageGroups(table []gateway.Exchange) []flagGroup {
	groups := []flagGroup{
		{"Configuration", oneOf("config", "version")},
		{"Listeners and access", oneOf("listen", "admin-listen", "admin-token", "metrics-public", "metrics-listen", "allowed-origins", "handshake-timeout")},
		{"Cluster", oneOf("redis", "redis-cluster", "redis-tls-ca", "redis-tls-cert", "redis-tls-key", "node-id", "drain-timeout")},
		{"Browser authentication", oneOf(authFlagNames...)},
		{"History and recovery", oneOf("history-size", "history-ttl")},
		{"Order books and market REST", oneOf("book-depth", "rest-weight-share")},
		{"Browsers", oneOf("max-conns", "max-conns-per-ip", "max-streams-per-conn", "max-streams-per-ip", "max-streams-per-node", "trusted-proxies",
			"max-commands-per-second", "write-queue-bytes", "write-delay", "ping-interval", "pong-timeout", "disable-compression")},
	}
	table = slices.Clone(table)
	slices.SortStableFunc(table, func(a, b gateway.Exchange) int { return len(b.Name) - len(a.Name) })
	for _, x := range table {
		prefix := x.Name + "-"
		groups = append(groups, flagGroup{x.Title, func(n string) bool { return strings.HasPrefix(n, prefix) }})
	}
	return append(groups,
		flagGroup{"Logging", oneOf("log-level", "log-format")},
		flagGroup{"Other", func(string) bool { return true }})
}

func oneOf(names ...string) func(string) bool {
	return func(n string) bool { return slices.Contains(names, n) }
}

// printUsage writes --help: the flags by group, each with its environment
// variable and default.
func printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: marketgate [flags]\n       marketgate check [flags]   validate the configuration and exit (0: valid, 1: not)\n       marketgate version         print the version and exit\n\n"+
		"Every flag can also be set with its environment variable, or in the YAML file --config names (key: the flag's name).\n"+
		"A flag given on the command line wins over the environment, which wins over the file, which wins over the default.\n"+
		"SIGHUP reloads what can change live (log level, origins, tokens and keys) from the same sources.\n"+
		"Give secrets (--admin-token, a --redis URL with a password) through the environment, not as flags: a process's\n"+
		"command line is visible to every user of the host (ps, /proc/<pid>/cmdline).\n")
	groups := make([][]*flag.Flag, len(flagGroups))
	fs.VisitAll(func(f *flag.Flag) {
		for i, g := range flagGroups {
			if g.has(f.Name) {
				groups[i] = append(groups[i], f)
				return
			}
		}
	})
	for i, flags := range groups {
		if len(flags) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s:\n", flagGroups[i].title)
		for _, f := range flags {
			env := envName(f.Name)
			if f.Name == "version" {
				env = "flag only"
			}
			fmt.Fprintf(w, "  --%s (%s)\n    \t%s (default %q)\n", f.Name, env, f.Usage, f.DefValue)
		}
	}
}

// maskSecret hides the secrets of a flag's value for the start-up log: the
// admin token, and a password in a Redis URL.
func maskSecret(name, value string) string {
	if m, ok := maskAuth(name, value); ok && value != "" {
		return m
	}
	switch {
	case value == "":
		return value
	case name == "admin-token":
		return "***"
	case name == "redis":
		return redactURL(value)
	}
	return value
}

// badFlag matches the flag package's error for a value that does not
// parse, capturing the value and the flag's name.
var badFlag = regexp.MustCompile(`^invalid (?:boolean )?value "(.*)" for (?:flag )?-([a-z0-9-]+): `)

// expected is the one-line error for value of the flag name, given as
// setting (--name or its environment variable): what it got and what the
// flag's type expects.
func expected(fs *flag.FlagSet, setting, name, value string) error {
	want := "a valid value"
	if f := fs.Lookup(name); f != nil {
		if g, ok := f.Value.(flag.Getter); ok {
			switch g.Get().(type) {
			case bool:
				want = "true or false"
			case int, int64, uint, uint64:
				want = "a whole number"
			case time.Duration:
				want = "a duration such as 500ms, 30s or 5m"
			case float64:
				want = "a number"
			}
		}
	}
	return fmt.Errorf("%s: %q is not %s", setting, value, want)
}
