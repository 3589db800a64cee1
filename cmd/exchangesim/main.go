// Command exchangesim runs the Binance-compatible market-stream simulator
// (package exchangesim/binancesim) on plain ws:// and http://, imitating
// Binance Spot (--mode spot, the default) or Binance USD-M futures
// (--mode futures: routed /public and /market paths, /fapi/v1 REST).
//
// Every flag can also come from the environment as EXCHANGESIM_<FLAG>,
// upper case with dashes as underscores (--max-streams is
// EXCHANGESIM_MAX_STREAMS); a flag on the command line wins. An invalid
// value exits with status 2 and one line naming the setting.
//
// The limits whose Binance values differ between the products
// (--max-messages-per-second, --ping-interval, --pong-timeout) default to
// the selected mode's values when not given.
//
//	exchangesim --listen 127.0.0.1:9443 --symbols BTCUSDT,ETHUSDT --tick-interval 50ms
//	EXCHANGESIM_MODE=futures exchangesim --max-streams 200
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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/marketgate/marketgate/exchangesim/binancesim"
	"github.com/marketgate/marketgate/internal/envflag"
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
	s, err := binancesim.New(st.cfg)
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
	addr := ln.Addr().String()
	if st.cfg.Mode == binancesim.ModeFutures {
		logger.Info("exchangesim listening", "mode", st.cfg.Mode,
			"public", "ws://"+addr+"/public/stream?streams=btcusdt@depth",
			"market", "ws://"+addr+"/market/stream?streams=btcusdt@aggTrade",
			"rest", "http://"+addr+"/fapi/v1/exchangeInfo")
	} else {
		logger.Info("exchangesim listening", "mode", st.cfg.Mode,
			"ws", "ws://"+addr+"/stream?streams=btcusdt@trade",
			"rest", "http://"+addr+"/api/v3/exchangeInfo")
	}
	if err := s.Run(ctx, ln); err != nil {
		fmt.Fprintln(os.Stderr, "exchangesim: "+err.Error())
		os.Exit(1)
	}
}

// settings is the parsed command line.
type settings struct {
	listen   string
	logLevel slog.Level
	cfg      binancesim.Config
}

// parseSettings reads flags, falling back to EXCHANGESIM_* variables
// (through lookup) for flags not given. Usage goes to usage on -h.
func parseSettings(args []string, lookup func(string) (string, bool), usage io.Writer) (settings, error) {
	var st settings
	fs := flag.NewFlagSet("exchangesim", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&st.listen, "listen", "127.0.0.1:9443", "`address` to serve ws:// and http:// on")
	st.cfg.Mode = binancesim.ModeSpot
	fs.Var(modeValue{&st.cfg.Mode}, "mode", "Binance `product` to imitate: spot or futures (USD-M)")
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
	fs.TextVar(&st.logLevel, "log-level", slog.LevelInfo, "log `level`: debug, info, warn or error")

	if err := envflag.Parse(fs, args, envPrefix, lookup, usage, "Usage: exchangesim [flags]; every flag also reads EXCHANGESIM_<FLAG>."); err != nil {
		return st, err
	}
	if st.cfg.MaxConnectionAttempts < -1 || st.cfg.MaxConnectionAttempts == 0 {
		return st, fmt.Errorf("invalid value %d for flag -max-connection-attempts: want a positive number or -1", st.cfg.MaxConnectionAttempts)
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

// modeValue is a flag.Value for a binancesim.Mode.
type modeValue struct{ v *binancesim.Mode }

func (m modeValue) String() string {
	if m.v == nil {
		return ""
	}
	return string(*m.v)
}

func (m modeValue) Set(s string) error {
	switch mode := binancesim.Mode(s); mode {
	case binancesim.ModeSpot, binancesim.ModeFutures:
		*m.v = mode
		return nil
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
