package gateway

import (
	"context"
	"log/slog"
	"net"

	"github.com/marketgate/marketgate/exchangesim/binancesim"
	"github.com/marketgate/marketgate/upstream"
)

// Exchange is one entry of the exchange table: everything the gateway and
// cmd/marketgate need to know about an exchange. Adding an exchange is one
// entry in [Exchanges], plus its upstream package and its simulator.
type Exchange struct {
	// Name names the exchange in stream keys ("binance:btcusdt@trade"),
	// flags (--binance-url), metrics and the cluster's leases.
	Name string
	// Title is the human name, which starts the help text of its flags
	// and titles their group in --help, e.g. "Binance spot".
	Title string
	// New builds the exchange's feed from its settings.
	New func(upstream.Config) (*upstream.Feed, error)
	// Defaults holds the exchange's own defaults of the settings that
	// differ between exchanges: URL, RESTURL, RequestInterval, MaxStreams
	// and IdleTimeout. The other settings default to upstream's.
	Defaults upstream.Config
	// StreamPath says, for the help of --<name>-url, where below the base
	// URL the gateway connects, e.g. "<base>/stream".
	StreamPath string
	// SymbolsPath says, for the help of --<name>-rest-url, what the
	// gateway reads the list of valid symbols from, e.g.
	// "/api/v3/exchangeInfo".
	SymbolsPath string
	// Optional exchanges may be turned off with an empty URL
	// (--<name>-url "").
	Optional bool
	// Options are the settings only this exchange has.
	Options []Option
	// Simulate builds the in-process simulator that --demo connects the
	// exchange to, logging to log.
	Simulate func(log *slog.Logger) (Simulator, error)
	// SimulatorMode names the simulator in the --demo log line.
	SimulatorMode string
}

// Option is a setting that only some exchanges have; cmd/marketgate offers
// it as the flag --<exchange>-<Name>.
type Option struct {
	// Name is the flag's name after the exchange's, e.g.
	// "microsecond-times".
	Name string
	// Help is the flag's help text after the exchange's title.
	Help string
	// Bool returns the field of c that the (boolean) flag sets.
	Bool func(c *upstream.Config) *bool
}

// Simulator is an exchange simulator: it serves the exchange's market
// streams and REST symbol list on ln until ctx ends.
type Simulator interface {
	Run(ctx context.Context, ln net.Listener) error
}

// microsecondTimes is Binance's option of event times in microseconds.
var microsecondTimes = Option{
	Name: "microsecond-times",
	Help: "ask for event times in microseconds (timeUnit=MICROSECOND); clients then get them too",
	Bool: func(c *upstream.Config) *bool { return &c.MicrosecondTimes },
}

// Exchanges returns the exchange table: every exchange the gateway can
// carry, in the order the gateway lists them. Each call returns a new
// slice.
func Exchanges() []Exchange {
	return []Exchange{
		{
			Name:  "binance",
			Title: "Binance spot",
			New:   upstream.NewBinance,
			Defaults: upstream.Config{
				URL:             upstream.DefaultBinanceURL,
				RESTURL:         upstream.DefaultBinanceRESTURL,
				RequestInterval: upstream.DefaultBinanceRequestInterval,
				MaxStreams:      upstream.DefaultBinanceMaxStreams,
				IdleTimeout:     upstream.DefaultBinanceIdleTimeout,
			},
			StreamPath:  "<base>/stream",
			SymbolsPath: "/api/v3/exchangeInfo",
			Options:     []Option{microsecondTimes},
			Simulate: func(log *slog.Logger) (Simulator, error) {
				return binancesim.New(binancesim.Config{Mode: binancesim.ModeSpot, Logger: log})
			},
			SimulatorMode: string(binancesim.ModeSpot),
		},
		{
			Name:  "binance-futures",
			Title: "Binance USD-M futures",
			New:   upstream.NewBinanceFutures,
			Defaults: upstream.Config{
				URL:             upstream.DefaultFuturesURL,
				RESTURL:         upstream.DefaultFuturesRESTURL,
				RequestInterval: upstream.DefaultFuturesRequestInterval,
				MaxStreams:      upstream.DefaultFuturesMaxStreams,
				IdleTimeout:     upstream.DefaultFuturesIdleTimeout,
			},
			StreamPath:  "<base>/public/stream and <base>/market/stream",
			SymbolsPath: "/fapi/v1/exchangeInfo",
			Optional:    true,
			Options:     []Option{microsecondTimes},
			Simulate: func(log *slog.Logger) (Simulator, error) {
				return binancesim.New(binancesim.Config{Mode: binancesim.ModeFutures, Logger: log})
			},
			SimulatorMode: string(binancesim.ModeFutures),
		},
	}
}

// lookup returns the table's entry for name.
func lookup(name string) (Exchange, bool) {
	for _, x := range Exchanges() {
		if x.Name == name {
			return x, true
		}
	}
	return Exchange{}, false
}
