// Command exchangesim runs an exchange simulator (a package below
// exchangesim/) on plain ws:// and http://. --exchange picks the exchange:
// binance (Binance Spot, the default), binance-futures (Binance USD-M
// futures: routed /public and /market paths, /fapi/v1 REST), okx (OKX v5
// public: /ws/v5/public, /ws/v5/business, the instrument list), bybit
// (Bybit v5 spot: /v5/public/spot) or bybit-linear (/v5/public/linear). --mode
// spot|futures is the older spelling of the same choice and still works.
//
// Every flag can also come from the environment as EXCHANGESIM_<FLAG>,
// upper case with dashes as underscores (--max-streams is
// EXCHANGESIM_MAX_STREAMS); a flag on the command line wins. An invalid
// value exits with status 2 and one line naming the setting.
//
// The limits whose values differ between exchanges
// (--max-messages-per-second, --ping-interval, --pong-timeout) default to
// the selected exchange's values when not given.
//
//	exchangesim --listen 127.0.0.1:9443 --symbols BTCUSDT,ETHUSDT --tick-interval 50ms
//	EXCHANGESIM_EXCHANGE=binance-futures exchangesim --max-streams 200
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/marketgate/marketgate/exchangesim/binancesim"
	"github.com/marketgate/marketgate/exchangesim/bybitsim"
	"github.com/marketgate/marketgate/exchangesim/okxsim"
	"github.com/marketgate/marketgate/internal/envflag"
	"github.com/marketgate/marketgate/upstream/okx"
)

const envPrefix = "EXCHANGESIM_"

func main() {
	st, err := parseSettings(os.Args[1:], os.LookupEnv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "exchangesim: "+err.Error())
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: st.logLevel}))
	st.cfg.Logger = logger
	ex := exchanges[st.exchange]
	s, err := ex.build(st.cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "exchangesim: "+err.Error())
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", st.listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "exchangesim: --listen %s: %v\n", st.listen, err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger.Info("exchangesim listening", ex.endpoints(ln.Addr().String())...)
	if err := s.Run(ctx, ln); err != nil {
		fmt.Fprintln(os.Stderr, "exchangesim: "+err.Error())
		os.Exit(1)
	}
}

// simulator is a built exchange simulator, ready to serve.
type simulator interface {
	// Run serves ln until ctx ends.
	Run(ctx context.Context, ln net.Listener) error
	// Handler serves the simulator's endpoints without running its market.
	Handler() http.Handler
}

// exchange is one entry of the exchanges table.
type exchange struct {
	// mode is the entry's name in --mode, the older spelling; "" if it has
	// none.
	mode string
	// build makes the simulator from the command's settings.
	build func(cfg binancesim.Config) (simulator, error)
	// endpoints returns the log fields that show where the simulator
	// listening on addr serves.
	endpoints func(addr string) []any
}

// exchanges are the simulators --exchange picks from, by name. A new
// simulator is one more entry.
var exchanges = map[string]exchange{
	"binance": {
		mode:  string(binancesim.ModeSpot),
		build: binance(binancesim.ModeSpot),
		endpoints: func(addr string) []any {
			return []any{"mode", binancesim.ModeSpot,
				"ws", "ws://" + addr + "/stream?streams=btcusdt@trade",
				"rest", "http://" + addr + "/api/v3/exchangeInfo"}
		},
	},
	"binance-futures": {
		mode:  string(binancesim.ModeFutures),
		build: binance(binancesim.ModeFutures),
		endpoints: func(addr string) []any {
			return []any{"mode", binancesim.ModeFutures,
				"public", "ws://" + addr + "/public/stream?streams=btcusdt@depth",
				"market", "ws://" + addr + "/market/stream?streams=btcusdt@aggTrade",
				"rest", "http://" + addr + "/fapi/v1/exchangeInfo"}
		},
	},
	// okx takes only --tick-interval, --seed, --send-queue and the log
	// level of the shared flags; the rest are Binance's. Its own limits
	// (480 requests an hour, 3 handshakes a second, 30 s of silence) are
	// okxsim's defaults.
	"okx": {
		build: func(cfg binancesim.Config) (simulator, error) {
			return okxsim.New(okxsim.Config{TickInterval: cfg.TickInterval, Seed: cfg.Seed, SendQueue: cfg.SendQueue, Logger: cfg.Logger})
		},
		endpoints: func(addr string) []any {
			return []any{"mode", "",
				"public", "ws://" + addr + okx.PublicPath,
				"business", "ws://" + addr + okx.BusinessPath,
				"rest", "http://" + addr + okx.InstrumentsPath + "?instType=SPOT"}
		},
	},
	"bybit":        bybitEntry(bybitsim.ProductSpot),
	"bybit-linear": bybitEntry(bybitsim.ProductLinear),
}

// bybitEntry is the entry of a Bybit product: the settings it shares with
// Binance's simulator are the symbols, the tick, the seed and the
// connection attempts; Bybit's own limits keep their defaults.
func bybitEntry(p bybitsim.Product) exchange {
	return exchange{
		build: func(cfg binancesim.Config) (simulator, error) {
			bc := bybitsim.Config{Product: p, Symbols: cfg.Symbols, TickInterval: cfg.TickInterval, Seed: cfg.Seed, Logger: cfg.Logger}
			if cfg.MaxConnectionAttempts > 0 {
				bc.MaxConnAttempts = cfg.MaxConnectionAttempts
			}
			return bybitsim.New(bc)
		},
		endpoints: func(addr string) []any {
			return []any{"product", string(p),
				"ws", "ws://" + addr + p.Path(),
				"rest", "http://" + addr + "/v5/market/instruments-info?category=" + string(p)}
		},
	}
}

// binance builds a Binance simulator of the given product.
func binance(mode binancesim.Mode) func(binancesim.Config) (simulator, error) {
	return func(cfg binancesim.Config) (simulator, error) {
		cfg.Mode = mode
		return binancesim.New(cfg)
	}
}

// settings is the parsed command line.
type settings struct {
	listen   string
	logLevel slog.Level
	exchange string // a key of exchanges
	// cfg holds the simulator's settings; its Mode is left to the
	// exchange's build.
	cfg binancesim.Config
}

// parseSettings reads flags, falling back to EXCHANGESIM_* variables
// (through lookup) for flags not given. Usage goes to usage on -h.
func parseSettings(args []string, lookup func(string) (string, bool), usage io.Writer) (settings, error) {
	var st settings
	fs := flag.NewFlagSet("exchangesim", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&st.listen, "listen", "127.0.0.1:9443", "`address` to serve ws:// and http:// on")
	st.exchange = "binance"
	fs.Var(exchangeValue{&st.exchange}, "exchange", "`name` of the exchange to imitate: "+strings.Join(exchangeNames(), " or ")+" (Binance USD-M)")
	fs.Var(modeValue{&st.exchange}, "mode", "older spelling of --exchange, by Binance `product`: spot (binance) or futures (binance-futures)")
	symbols := fs.String("symbols", "BTCUSDT,ETHUSDT,BNBUSDT,SOLUSDT,XRPUSDT", "comma-separated upper-case `symbols`")
	fs.Var(positiveInt{&st.cfg.MaxMessagesPerSecond}, "max-messages-per-second", "incoming messages allowed per rolling second per connection (default 5 spot, 10 futures)")
	st.cfg.MaxStreams = 1024
	fs.Var(positiveInt{&st.cfg.MaxStreams}, "max-streams", "streams allowed per connection")
	fs.Var(positiveDuration{&st.cfg.PingInterval}, "ping-interval", "server ping interval (default 20s spot, 3m futures)")
	fs.Var(positiveDuration{&st.cfg.PongTimeout}, "pong-timeout", "close a connection whose ping is not answered within this (default 1m spot, 10m futures)")
	st.cfg.MaxLifetime = 24 * time.Hour
	fs.Var(positiveDuration{&st.cfg.MaxLifetime}, "max-lifetime", "connection lifetime, counted from the accept")
	fs.BoolVar(&st.cfg.StrictMethod, "strict-method", false, "test mode: close connections that send a frame without a method")
	st.cfg.TickInterval = 100 * time.Millisecond
	fs.BoolVar(&st.cfg.Stagger, "stagger", false, "spread the symbols' events over the tick instead of pushing all of them at its start")
	fs.Var(positiveDuration{&st.cfg.TickInterval}, "tick-interval", "market tick; one tick stands for 100ms of Binance time (real-time and 100ms streams every tick, 1000ms streams every 10)")
	fs.Int64Var(&st.cfg.Seed, "seed", 0, "random seed; 0 picks one from the clock")
	st.cfg.SendQueue = 4096
	fs.Var(positiveInt{&st.cfg.SendQueue}, "send-queue", "frames queued per connection before it is closed as a slow consumer")
	st.cfg.WriteTimeout = 10 * time.Second
	fs.Var(positiveDuration{&st.cfg.WriteTimeout}, "write-timeout", "a connection whose write stalls this long is closed as a slow consumer")
	fs.IntVar(&st.cfg.MaxConnectionAttempts, "max-connection-attempts", 300, "WebSocket handshakes per IP per 5 minutes; -1 for no limit")
	fs.IntVar(&st.cfg.RESTWeightLimit, "rest-weight-limit", 0, "REST request weight per IP per minute before HTTP 429 (0: the exchange's, 6000 spot, 2400 futures; -1 no limit)")
	fs.DurationVar(&st.cfg.BanDuration, "ban-duration", 2*time.Minute, "first HTTP 418 ban of an IP that calls during a Retry-After; doubles with each ban")
	fs.BoolVar(&st.cfg.StrictBook, "strict-book", false, "test mode: log REST procedure violations (snapshots without a diff-depth subscription, calls during a Retry-After, snapshot storms) at warn level")
	fs.TextVar(&st.logLevel, "log-level", slog.LevelInfo, "log `level`: debug, info, warn or error")

	if err := envflag.Parse(fs, args, envPrefix, lookup, usage, "Usage: exchangesim [flags]; every flag also reads EXCHANGESIM_<FLAG>."); err != nil {
		return st, err
	}
	if st.cfg.MaxConnectionAttempts < -1 || st.cfg.MaxConnectionAttempts == 0 {
		return st, fmt.Errorf("invalid value %d for flag -max-connection-attempts: want a positive number or -1", st.cfg.MaxConnectionAttempts)
	}
	if st.cfg.RESTWeightLimit < -1 {
		return st, fmt.Errorf("invalid value %d for flag -rest-weight-limit: want 0, a positive number or -1", st.cfg.RESTWeightLimit)
	}
	if st.cfg.BanDuration <= 0 {
		return st, fmt.Errorf("invalid value %v for flag -ban-duration: must be positive", st.cfg.BanDuration)
	}
	for s := range strings.SplitSeq(*symbols, ",") {
		if s = strings.TrimSpace(s); s != "" {
			st.cfg.Symbols = append(st.cfg.Symbols, s)
		}
	}
	if len(st.cfg.Symbols) == 0 {
		return st, errors.New("invalid value for flag -symbols: no symbols")
	}
	return st, nil
}

// exchangeNames lists the keys of exchanges, sorted.
func exchangeNames() []string {
	return slices.Sorted(maps.Keys(exchanges))
}

// exchangeValue is the flag.Value of --exchange: a key of exchanges.
type exchangeValue struct{ v *string }

func (e exchangeValue) String() string {
	if e.v == nil {
		return ""
	}
	return *e.v
}

func (e exchangeValue) Set(s string) error {
	if _, ok := exchanges[s]; !ok {
		return fmt.Errorf("want %s", strings.Join(exchangeNames(), " or "))
	}
	*e.v = s
	return nil
}

// modeValue is the flag.Value of --mode, the older spelling of --exchange
// by an exchange's mode (spot, futures). It sets the same setting.
type modeValue struct{ v *string }

func (m modeValue) String() string {
	if m.v == nil {
		return ""
	}
	return exchanges[*m.v].mode
}

func (m modeValue) Set(s string) error {
	for _, name := range exchangeNames() {
		if ex := exchanges[name]; ex.mode != "" && ex.mode == s {
			*m.v = name
			return nil
		}
	}
	return fmt.Errorf("want %s or %s", binancesim.ModeSpot, binancesim.ModeFutures)
}

// positiveInt is a flag.Value for an int > 0. Zero, shown as no default,
// means "the mode's default".
type positiveInt struct{ v *int }

func (p positiveInt) String() string {
	if p.v == nil || *p.v == 0 {
		return ""
	}
	return strconv.Itoa(*p.v)
}

func (p positiveInt) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("not an integer")
	}
	if n <= 0 {
		return errors.New("must be positive")
	}
	*p.v = n
	return nil
}

// positiveDuration is a flag.Value for a time.Duration > 0. Zero, shown as
// no default, means "the mode's default".
type positiveDuration struct{ v *time.Duration }

func (p positiveDuration) String() string {
	if p.v == nil || *p.v == 0 {
		return ""
	}
	return p.v.String()
}

func (p positiveDuration) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("not a duration such as 20s or 1m")
	}
	if d <= 0 {
		return errors.New("must be positive")
	}
	*p.v = d
	return nil
}
