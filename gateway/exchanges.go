package gateway

import (
	"context"
	"log/slog"
	"net"

	"github.com/marketgate/marketgate/book"
	"github.com/marketgate/marketgate/exchangesim/binancesim"
	"github.com/marketgate/marketgate/exchangesim/bybitsim"
	"github.com/marketgate/marketgate/exchangesim/okxsim"
	"github.com/marketgate/marketgate/market"
	"github.com/marketgate/marketgate/normalize"
	"github.com/marketgate/marketgate/upstream"
	"github.com/marketgate/marketgate/upstream/binance"
	"github.com/marketgate/marketgate/upstream/bybit"
	"github.com/marketgate/marketgate/upstream/okx"
)

// Exchange is one entry of the exchange table: everything the gateway and
// cmd/marketgate need to know about an exchange. Adding an exchange is one
// entry in [Exchanges], plus its upstream package (its [upstream.Dialect])
// and its simulator.
type Exchange struct {
	// Name names the exchange in stream keys ("binance:btcusdt@trade"),
	// flags (--binance-url), metrics and the cluster's leases; it is the
	// dialect's Name.
	Name string
	// Title is the human name, which starts the help text of its flags
	// and titles their group in --help, e.g. "Binance spot".
	Title string
	// Dialect is what the exchange speaks. Its Limits are the defaults of
	// the exchange's flags, its SymbolsPath is named in their help.
	Dialect upstream.Dialect
	// StreamPath says, for the help of --<name>-url, where below the base
	// URL the gateway connects, e.g. "<base>/stream".
	StreamPath string
	// Optional exchanges may be turned off with an empty URL
	// (--<name>-url "").
	Optional bool
	// REST is the exchange's REST rules, for the market-data REST the
	// gateway serves (native and drop-in) and the snapshots its books
	// fetch; nil: none.
	REST market.Rules
	// Book is how the gateway keeps the exchange's order books
	// ("<symbol>@book" streams); nil: it keeps none.
	Book book.Procedure
	// Normalize makes the exchange's normalizer ("format":"normalized"),
	// given the map of its symbols to unified ones that the gateway keeps
	// filled from its symbol list; nil: the exchange has no normalized
	// form.
	Normalize func(name string, symbols *normalize.Symbols) normalize.Exchange
	// Perpetual says the exchange lists perpetual contracts settled in
	// their quote asset: unified symbols are BASE/QUOTE:QUOTE.
	Perpetual bool
	// Options are the settings only this exchange has.
	Options []Option
	// Simulate builds the in-process simulator that --demo connects the
	// exchange to, logging to log.
	Simulate func(log *slog.Logger) (Simulator, error)
	// SimulatorMode names the simulator in the --demo log line.
	SimulatorMode string
}

// Option is a setting that only some exchanges have; cmd/marketgate offers
// it as the boolean flag --<exchange>-<Name>.
type Option struct {
	// Name is the flag's name after the exchange's, e.g.
	// "microsecond-times".
	Name string
	// Help is the flag's help text after the exchange's title.
	Help string
	// Apply returns the dialect with the option on.
	Apply func(upstream.Dialect) upstream.Dialect
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
	Apply: func(d upstream.Dialect) upstream.Dialect {
		if b, ok := d.(binance.Dialect); ok {
			return b.WithMicrosecondTimes()
		}
		return d
	},
}

// binanceNormalizer is the normalizer of Binance spot and USD-M.
func binanceNormalizer(name string, symbols *normalize.Symbols) normalize.Exchange {
	return normalize.Binance{Exchange: name, Symbols: symbols}
}

// Exchanges returns the exchange table: every exchange the gateway can
// carry, in the order the gateway lists them. Each call returns a new
// slice.
func Exchanges() []Exchange {
	return []Exchange{
		{
			Name:       "binance",
			Title:      "Binance spot",
			Dialect:    binance.Spot,
			StreamPath: "<base>/stream",
			Book:       book.Binance{},
			REST:       binance.SpotREST,
			Normalize:  binanceNormalizer,
			Options:    []Option{microsecondTimes},
			Simulate: func(log *slog.Logger) (Simulator, error) {
				return binancesim.New(binancesim.Config{Mode: binancesim.ModeSpot, Logger: log})
			},
			SimulatorMode: string(binancesim.ModeSpot),
		},
		{
			Name:       "binance-futures",
			Title:      "Binance USD-M futures",
			Dialect:    binance.Futures,
			StreamPath: "<base>/public/stream and <base>/market/stream",
			Optional:   true,
			Book:       book.Binance{Futures: true},
			REST:       binance.FuturesREST,
			Normalize:  binanceNormalizer,
			Perpetual:  true,
			Options:    []Option{microsecondTimes},
			Simulate: func(log *slog.Logger) (Simulator, error) {
				return binancesim.New(binancesim.Config{Mode: binancesim.ModeFutures, Logger: log})
			},
			SimulatorMode: string(binancesim.ModeFutures),
		},
		{
			Name:       "okx",
			Title:      "OKX v5 public",
			Dialect:    okx.V5,
			StreamPath: "<base>" + okx.PublicPath + " and <base>" + okx.BusinessPath + " (candles)",
			Optional:   true,
			Book:       book.OKX{},
			Normalize: func(name string, _ *normalize.Symbols) normalize.Exchange {
				return normalize.OKX{Exchange: name} // unified symbols come from the instId
			},
			Simulate: func(log *slog.Logger) (Simulator, error) {
				return okxsim.New(okxsim.Config{Logger: log})
			},
			SimulatorMode: "okx",
		},
		bybitEntry(bybit.Spot, "Bybit spot", bybitsim.ProductSpot),
		bybitEntry(bybit.Linear, "Bybit linear (USDT/USDC perpetuals and futures)", bybitsim.ProductLinear),
	}
}

// bybitEntry is a Bybit v5 product: spot and linear share a dialect type,
// a simulator and a host, and differ in their endpoint (and spot's 10
// topics per request, in its Limits).
func bybitEntry(d bybit.Dialect, title string, p bybitsim.Product) Exchange {
	return Exchange{
		Name:       d.Name(),
		Title:      title,
		Dialect:    d,
		StreamPath: "<base>" + d.Endpoints()[0],
		Optional:   true,
		Book:       book.Bybit{},
		Normalize: func(name string, syms *normalize.Symbols) normalize.Exchange {
			return normalize.Bybit{Exchange: name, Linear: !d.Spot(), Symbols: syms}
		},
		Perpetual: !d.Spot(),
		Simulate: func(log *slog.Logger) (Simulator, error) {
			return bybitsim.New(bybitsim.Config{Product: p, Logger: log})
		},
		SimulatorMode: "bybit-" + string(p),
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
