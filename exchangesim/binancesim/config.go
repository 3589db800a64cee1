package binancesim

import (
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// Mode selects the Binance product a [Server] imitates.
type Mode string

const (
	// ModeSpot imitates Binance Spot (wss://stream.binance.com): /ws and
	// /stream, the /api/v3 REST calls and Spot's payloads and limits.
	ModeSpot Mode = "spot"
	// ModeFutures imitates Binance USD-M futures (wss://fstream.binance.com):
	// the routed /public and /market paths, the /fapi/v1 REST calls and the
	// futures payloads and limits. See the package doc.
	ModeFutures Mode = "futures"
)

// String returns the mode's name.
func (m Mode) String() string { return string(m) }

// Config configures a [Server]. A zero field takes the default given in its
// comment; several defaults depend on [Config.Mode]. Config is copied by
// [New]; changing it afterwards has no effect.
type Config struct {
	// Mode is the product imitated: [ModeSpot] (the default) or
	// [ModeFutures]. Any other value is an error.
	Mode Mode
	// Symbols are the listed symbols, upper case, e.g. "BTCUSDT". Each must
	// end in a known quote asset (USDT, BUSD, BTC, ETH, BNB, USDC, FDUSD,
	// EUR). Default: BTCUSDT, ETHUSDT, BNBUSDT, SOLUSDT, XRPUSDT.
	Symbols []string
	// MaxMessagesPerSecond is the number of incoming messages (text,
	// binary, ping and pong; close frames excluded) a connection may send
	// within any rolling one-second window. The next one closes the
	// connection with 1008 "Too many requests". Default 5 (spot) or 10
	// (futures).
	MaxMessagesPerSecond int
	// MaxStreams is the number of streams one connection may hold. A
	// SUBSCRIBE that would exceed it is refused as a whole with
	// {"error":{"code":4,"msg":"Too many subscriptions"},"id":N} and the
	// connection stays open; a URL naming more is refused with HTTP 400.
	// Default 1024 in both modes. For futures the current Binance page says
	// 1024 while older pages and many libraries say 200, so a
	// gateway may well plan for 200; set 200 here to hold it to that.
	MaxStreams int
	// PingInterval is how often the server pings each connection. The
	// payload is the current Unix time in milliseconds, as decimal text.
	// Default 20s (spot) or 3m (futures).
	PingInterval time.Duration
	// PongTimeout is how long a ping may stay without a pong echoing its
	// payload before the connection is closed with 1008 "Pong timeout".
	// In futures mode any pong counts, echoing or not (USD-M: unsolicited
	// pongs maintain the connection). Default 1m (spot) or 10m (futures).
	PongTimeout time.Duration
	// MaxLifetime is how long a connection may live, counted from the
	// moment its handshake is accepted (before the 101 response is
	// written). It is closed with 1001 "Connection lifetime expired" no
	// earlier than that, and late only by timer and scheduling delay
	// (normally well under 10ms), so a client that rotates its
	// connections a little sooner is never cut. Default 24h.
	MaxLifetime time.Duration
	// StrictMethod is a test mode: a frame that is not a JSON object with a
	// method (invalid JSON included) gets its error reply and then the
	// connection is closed with 1008 and Binance's pre-2019 reason
	// {"code":-1,"msg":"Illegal format ws or stream"}. Binance itself only
	// replies.
	StrictMethod bool
	// TickInterval is the market tick: each tick generates trades and book
	// updates and pushes the real-time and @100ms streams; every 10th tick
	// pushes the "1000ms" streams. A tick stands for 100ms of Binance
	// time, and the futures update periods (250ms, 500ms, 2s, 3s) are
	// counted in ticks on that scale. Default 100ms.
	TickInterval time.Duration
	// Stagger spreads the symbols over the tick: with n symbols, symbol i
	// moves and pushes its events at i/n of the tick (at most one phase
	// per millisecond), as a real exchange's streams of different symbols
	// are not in step. Off, every symbol pushes at the start of the tick:
	// a burst of all of them at once.
	Stagger bool
	// Seed seeds the market's random source; 0 picks one from the clock.
	Seed int64
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock for event times and ping payloads; nil means
	// time.Now. Limits and timers always use the real clock.
	Now func() time.Time

	// SendQueue is the number of frames queued for one connection before
	// it counts as a slow consumer and is closed with 1008 "Slow consumer".
	// Default 4096.
	SendQueue int
	// WriteTimeout bounds one write to a connection; a connection that does
	// not take its data within it is a slow consumer too. Default 10s.
	WriteTimeout time.Duration
	// MaxConnectionAttempts is the number of WebSocket handshakes one IP
	// may attempt within a rolling 5 minutes; more are refused with HTTP
	// 429. Default 300, Binance's limit; -1 disables the limit.
	MaxConnectionAttempts int

	// RESTWeightLimit is the REST request weight one IP may use per
	// wall-clock minute (a fixed window, as X-MBX-USED-WEIGHT-1M counts
	// it). Past it a call gets HTTP 429 with Retry-After; a call before
	// that Retry-After passes gets HTTP 418, an IP ban. Default 6000
	// (spot) or 2400 (futures); -1 disables the limit.
	RESTWeightLimit int
	// BanDuration is the length of an IP's first 418 ban; each later ban
	// of the same IP lasts twice the previous one, up to 3 days. Default
	// 2m.
	BanDuration time.Duration
	// StrictBook is a test mode for the REST procedure: the violations
	// counted in [RESTStats] (a depth snapshot from an IP holding no
	// diff-depth subscription of the symbol, a call during a Retry-After
	// or a ban, more than 10 snapshots of one symbol per minute) are
	// logged at warn level and added to [Server.Violations]. Without it
	// they are still counted and logged at debug level. Answers never
	// change.
	StrictBook bool
	// DropEvery is a test mode for redundant upstreams: every DropEvery
	// the server drops one open connection, picked at random, as
	// [Server.DropOne] does. Zero (the default) drops none. Every other
	// rule stays as strict as without it.
	DropEvery time.Duration
}

// defaultSymbols are the symbols of a zero Config.
var defaultSymbols = []string{"BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT"}

// withDefaults validates cfg and fills its zero fields.
func (cfg Config) withDefaults() (Config, error) {
	bad := func(field string, v any) (Config, error) {
		return cfg, fmt.Errorf("%w: %s %v", ErrInvalidConfig, field, v)
	}
	prod, ok := productFor(cfg.Mode)
	if !ok {
		return bad("Mode", fmt.Sprintf("%q (want %q or %q)", cfg.Mode, ModeSpot, ModeFutures))
	}
	if cfg.Mode == "" {
		cfg.Mode = ModeSpot
	}
	if len(cfg.Symbols) == 0 {
		cfg.Symbols = defaultSymbols
	}
	cfg.Symbols = slices.Clone(cfg.Symbols)
	seen := map[string]bool{}
	for _, s := range cfg.Symbols {
		if !validConfigSymbol(s) || seen[s] {
			return bad("Symbols: bad or repeated symbol", fmt.Sprintf("%q", s))
		}
		if _, _, ok := splitSymbol(s); !ok {
			return bad("Symbols: no known quote asset in", fmt.Sprintf("%q", s))
		}
		seen[s] = true
	}
	ints := []struct {
		name string
		v    *int
		def  int
	}{
		{"MaxMessagesPerSecond", &cfg.MaxMessagesPerSecond, prod.maxMessages},
		{"MaxStreams", &cfg.MaxStreams, 1024},
		{"SendQueue", &cfg.SendQueue, 4096},
	}
	for _, f := range ints {
		switch {
		case *f.v < 0:
			return bad(f.name, *f.v)
		case *f.v == 0:
			*f.v = f.def
		}
	}
	switch {
	case cfg.MaxConnectionAttempts < -1:
		return bad("MaxConnectionAttempts", cfg.MaxConnectionAttempts)
	case cfg.MaxConnectionAttempts == 0:
		cfg.MaxConnectionAttempts = 300
	}
	switch {
	case cfg.RESTWeightLimit < -1:
		return bad("RESTWeightLimit", cfg.RESTWeightLimit)
	case cfg.RESTWeightLimit == 0:
		cfg.RESTWeightLimit = prod.weightLimit
	}
	durs := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"PingInterval", &cfg.PingInterval, prod.pingInterval},
		{"PongTimeout", &cfg.PongTimeout, prod.pongTimeout},
		{"MaxLifetime", &cfg.MaxLifetime, 24 * time.Hour},
		{"TickInterval", &cfg.TickInterval, 100 * time.Millisecond},
		{"WriteTimeout", &cfg.WriteTimeout, 10 * time.Second},
		{"BanDuration", &cfg.BanDuration, 2 * time.Minute},
		{"DropEvery", &cfg.DropEvery, 0},
	}
	for _, f := range durs {
		switch {
		case *f.v < 0:
			return bad(f.name, *f.v)
		case *f.v == 0:
			*f.v = f.def
		}
	}
	if cfg.TickInterval < time.Millisecond {
		return bad("TickInterval below 1ms:", cfg.TickInterval)
	}
	if cfg.Seed == 0 {
		cfg.Seed = time.Now().UnixNano()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return cfg, nil
}
