// Package bybitsim simulates Bybit v5 public market data for tests and
// --demo: one product per [Server] (spot on /v5/public/spot, linear on
// /v5/public/linear), its instrument list over REST
// (GET /v5/market/instruments-info?category=…), and plausible,
// consistent data for publicTrade, tickers, orderbook.<1|50|200|1000>
// (snapshot, then deltas with u consecutive per topic and seq across
// topics) and kline topics.
//
// It enforces Bybit's rules strictly and counts, per connection, every
// request that breaks one ([ClientStats.Violations]): a request that is
// not a JSON object with a string op, an unknown op, a req_id that is not
// a string, args that are not a non-empty array of strings, more args
// than a spot request may carry (10: "args size >10"), a topic that is
// malformed or of an unlisted instrument ("error:handler not
// found,topic:…"), a topic already subscribed ("error:already
// subscribed,topic:…"), more topic characters than a connection may hold
// (21,000), requests faster than [Config.MaxRequestsPerSecond], binary
// frames, and a missing heartbeat: a connection that has not sent
// {"op":"ping"} for [Config.PingTimeout] is cut, as Bybit cuts idle
// connections. A refused request changes nothing. Connection attempts
// beyond [Config.MaxConnAttempts] per [Config.ConnAttemptWindow] and IP
// are refused with HTTP 429 and counted at the server.
//
// Knobs: [Server.SendShutdown] (a notice {"op":"shutdown"} before a
// planned close; Bybit documents none, the gateway's dialect takes it),
// [Server.DropAll] (abrupt TCP close), [Server.Subscriptions].
package bybitsim

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Product is the Bybit product a Server simulates.
type Product string

// The products.
const (
	ProductSpot   Product = "spot"
	ProductLinear Product = "linear"
)

// Path returns the product's WebSocket path.
func (p Product) Path() string { return "/v5/public/" + string(p) }

// Config configures a Server. Zero fields take the documented defaults.
type Config struct {
	// Product is spot (the default) or linear.
	Product Product
	// Symbols are the listed instruments, upper case (default BTCUSDT,
	// ETHUSDT, SOLUSDT, XRPUSDT). The instrument list also shows
	// DELISTEDUSDT with status Closed, whose topics are refused.
	Symbols []string
	// MaxPageSize is the most instruments of one page of the linear
	// instrument list, which is paged as Bybit's is: limit (default 500,
	// at most 1000) per page and a nextPageCursor to the next. Default
	// 1000; a test sets it low to page a short list.
	MaxPageSize int
	// TickInterval is how often the market moves (default 100 ms).
	TickInterval time.Duration
	// Seed seeds the market generator (default 1).
	Seed int64
	// PingTimeout is how long a connection may go without sending
	// {"op":"ping"} before it is cut (default 40 s: Bybit asks for one
	// every 20 s).
	PingTimeout time.Duration
	// MaxArgsPerRequest is the most args of one request (default: 10 on
	// spot, unlimited on linear; negative: unlimited).
	MaxArgsPerRequest int
	// MaxArgsChars is the most characters of topics one connection may
	// hold (default 21,000).
	MaxArgsChars int
	// MaxRequestsPerSecond is the most subscribe and unsubscribe requests
	// of one connection within any second (default 10; Bybit documents
	// none, a gateway should never come near).
	MaxRequestsPerSecond int
	// MaxConnAttempts is the most WebSocket handshakes per IP within
	// ConnAttemptWindow (default 500 in 5 minutes).
	MaxConnAttempts   int
	ConnAttemptWindow time.Duration
	// Logger logs; nil discards.
	Logger *slog.Logger
	// Now is the clock of event times (default time.Now).
	Now func() time.Time
}

// Defaults of Config.
const (
	DefaultTickInterval         = 100 * time.Millisecond
	DefaultMaxPageSize          = 1000
	DefaultPingTimeout          = 40 * time.Second
	DefaultSpotMaxArgs          = 10
	DefaultMaxArgsChars         = 21000
	DefaultMaxRequestsPerSecond = 10
	DefaultMaxConnAttempts      = 500
	DefaultConnAttemptWindow    = 5 * time.Minute
)

// DefaultSymbols are the default listed instruments.
var DefaultSymbols = []string{"BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"}

// ErrNilListener is Run's error for a nil listener.
var ErrNilListener = errors.New("bybitsim: nil listener")

// ErrAlreadyRun is Run's error for a second run.
var ErrAlreadyRun = errors.New("bybitsim: Run called twice")

func (cfg Config) withDefaults() (Config, error) {
	switch cfg.Product {
	case "":
		cfg.Product = ProductSpot
	case ProductSpot, ProductLinear:
	default:
		return cfg, fmt.Errorf("bybitsim: unknown product %q (want spot or linear)", cfg.Product)
	}
	if cfg.MaxPageSize <= 0 {
		cfg.MaxPageSize = DefaultMaxPageSize
	}
	if len(cfg.Symbols) == 0 {
		cfg.Symbols = DefaultSymbols
	}
	for _, s := range cfg.Symbols {
		if !validSymbol(s) {
			return cfg, fmt.Errorf("bybitsim: invalid symbol %q (upper-case letters and digits)", s)
		}
	}
	if cfg.TickInterval <= 0 {
		cfg.TickInterval = DefaultTickInterval
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	if cfg.PingTimeout <= 0 {
		cfg.PingTimeout = DefaultPingTimeout
	}
	if cfg.MaxArgsPerRequest == 0 && cfg.Product == ProductSpot {
		cfg.MaxArgsPerRequest = DefaultSpotMaxArgs
	}
	if cfg.MaxArgsChars <= 0 {
		cfg.MaxArgsChars = DefaultMaxArgsChars
	}
	if cfg.MaxRequestsPerSecond <= 0 {
		cfg.MaxRequestsPerSecond = DefaultMaxRequestsPerSecond
	}
	if cfg.MaxConnAttempts <= 0 {
		cfg.MaxConnAttempts = DefaultMaxConnAttempts
	}
	if cfg.ConnAttemptWindow <= 0 {
		cfg.ConnAttemptWindow = DefaultConnAttemptWindow
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return cfg, nil
}

func validSymbol(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
