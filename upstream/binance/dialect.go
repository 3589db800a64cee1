package binance

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/marketgate/marketgate/upstream"
)

// Defaults of Binance spot, the [upstream.Config] defaults of [Spot].
const (
	DefaultSpotURL             = "wss://stream.binance.com:9443"
	DefaultSpotRESTURL         = "https://api.binance.com"
	DefaultSpotRequestInterval = 300 * time.Millisecond // ≤ 4 frames in any second; the limit is 5
	DefaultSpotMaxStreams      = 1024
	DefaultSpotIdleTimeout     = 5 * time.Minute // pings every 20 s documented, every 3 min seen
)

// Defaults of Binance USD-M futures, the [upstream.Config] defaults of
// [Futures].
const (
	DefaultFuturesURL             = "wss://fstream.binance.com"
	DefaultFuturesRESTURL         = "https://fapi.binance.com"
	DefaultFuturesRequestInterval = 200 * time.Millisecond // ≤ 5 frames in any second; the limit is 10
	DefaultFuturesMaxStreams      = 200                    // older docs and libraries; the current page says 1024
	DefaultFuturesIdleTimeout     = 10 * time.Minute       // ping every 3 min, pong due within 10 min
)

// Defaults shared by both products.
const (
	DefaultMaxLifetime       = 24 * time.Hour
	DefaultMaxConnAttempts   = 300 // per IP
	DefaultConnAttemptWindow = 5 * time.Minute
)

// Dialect is a Binance product as an [upstream.Dialect]: [Spot] or
// [Futures], optionally asking for microsecond times. Both products speak
// the same requests ({"method":"SUBSCRIBE","params":[…],"id":n}) and the
// same combined-stream envelope ({"stream":…,"data":…}); what differs is
// in their product tables.
type Dialect struct {
	p     *product
	micro bool
}

var _ upstream.Dialect = Dialect{}

// Spot is Binance spot market streams, exchange name "binance": one
// endpoint, /stream (combined events), the grammar of [ParseStream],
// symbols from /api/v3/exchangeInfo, 5 incoming messages per second and
// 1024 streams per connection.
var Spot = Dialect{p: &spotProduct}

// Futures is Binance USD-M futures market streams, exchange name
// "binance-futures": two routed endpoints, /public/stream (depth and
// bookTicker) and /market/stream (everything else), the grammar of
// [ParseFuturesStream], symbols from /fapi/v1/exchangeInfo, 10 incoming
// messages per second and (as planned for) 200 streams per connection.
var Futures = Dialect{p: &futuresProduct}

// WithMicrosecondTimes returns d asking the exchange for every time
// field in microseconds (timeUnit=MICROSECOND in the connection URL)
// instead of milliseconds. Clients get the events as the exchange sent
// them, so they see microseconds too. It is for measuring latency to the
// microsecond.
func (d Dialect) WithMicrosecondTimes() Dialect {
	d.micro = true
	return d
}

// product is what differs between spot and USD-M futures.
type product struct {
	name        string
	grammar     *grammar
	endpoints   []string
	endpointOf  func(Kind) int
	symbolsPath string
	limits      upstream.Limits
	// partialID is the key of a partial depth snapshot's update id.
	partialID string
	// deltaPrev: diff depth events carry "pu", the previous event's u.
	deltaPrev bool
}

var spotProduct = product{
	name:        "binance",
	grammar:     &spotGrammar,
	endpoints:   []string{"/stream"},
	endpointOf:  func(Kind) int { return 0 },
	symbolsPath: "/api/v3/exchangeInfo",
	limits: upstream.Limits{
		URL: DefaultSpotURL, RESTURL: DefaultSpotRESTURL,
		RequestInterval: DefaultSpotRequestInterval, MaxStreams: DefaultSpotMaxStreams,
		IdleTimeout: DefaultSpotIdleTimeout, MaxLifetime: DefaultMaxLifetime,
		MaxConnAttempts: DefaultMaxConnAttempts, ConnAttemptWindow: DefaultConnAttemptWindow,
	},
	partialID: "lastUpdateId",
}

// Indexes of the futures endpoints.
const (
	futuresMarket = 0 // /market: aggTrade, markPrice, kline, tickers, forceOrder, …
	futuresPublic = 1 // /public: depth and bookTicker
)

var futuresProduct = product{
	name:        "binance-futures",
	grammar:     &futuresGrammar,
	endpoints:   []string{"/market/stream", "/public/stream"},
	endpointOf:  futuresEndpoint,
	symbolsPath: "/fapi/v1/exchangeInfo",
	limits: upstream.Limits{
		URL: DefaultFuturesURL, RESTURL: DefaultFuturesRESTURL,
		RequestInterval: DefaultFuturesRequestInterval, MaxStreams: DefaultFuturesMaxStreams,
		IdleTimeout: DefaultFuturesIdleTimeout, MaxLifetime: DefaultMaxLifetime,
		MaxConnAttempts: DefaultMaxConnAttempts, ConnAttemptWindow: DefaultConnAttemptWindow,
	},
	partialID: "u",
	deltaPrev: true,
}

// futuresEndpoint returns the routed endpoint serving streams of kind k:
// since 2026-04-23 depth and bookTicker live on /public, the rest on
// /market, and a stream asked on the wrong one stays silent.
func futuresEndpoint(k Kind) int {
	switch k {
	case KindDiffDepth, KindPartialDepth, KindBookTicker, KindBookTickerArr:
		return futuresPublic
	}
	return futuresMarket
}

// Name returns "binance" or "binance-futures".
func (d Dialect) Name() string { return d.p.name }

// ParseStream parses name by the product's grammar.
func (d Dialect) ParseStream(name string) (upstream.Stream, error) {
	s, err := d.p.grammar.parse(name)
	if err != nil {
		return upstream.Stream{}, err
	}
	return s.Neutral(), nil
}

// kinds are the metrics labels, indexed by Kind-1.
var kinds = kindNames[1:]

// Kinds returns the names of the stream kinds ([Kind.String]), both
// products' in one list.
func (Dialect) Kinds() []string { return kinds }

// Endpoints returns the product's endpoint paths.
func (d Dialect) Endpoints() []string { return d.p.endpoints }

// EndpointOf returns the endpoint serving s.
func (d Dialect) EndpointOf(s upstream.Stream) int { return d.p.endpointOf(kindOf(&s)) }

// URLRefused: Binance refuses a URL over its stream limit with 400.
func (Dialect) URLRefused(status int) bool { return status == http.StatusBadRequest }

// SymbolsPaths returns the product's exchangeInfo path: one list, not
// paged.
func (d Dialect) SymbolsPaths() []string { return []string{d.p.symbolsPath} }

// exchangeInfo is the part of the exchangeInfo response the gateway needs;
// spot and USD-M futures share it.
type exchangeInfo struct {
	Symbols []struct {
		Symbol string `json:"symbol"`
		Status string `json:"status"`
	} `json:"symbols"`
}

// ParseSymbols returns the lowercase symbols with status TRADING.
func (d Dialect) ParseSymbols(_ string, r io.Reader) (map[string]struct{}, string, error) {
	var info exchangeInfo
	if err := json.NewDecoder(r).Decode(&info); err != nil {
		return nil, "", err
	}
	m := make(map[string]struct{}, len(info.Symbols))
	for _, sym := range info.Symbols {
		if sym.Status != "TRADING" {
			continue
		}
		if lower := strings.ToLower(sym.Symbol); d.p.grammar.validSymbol(lower) {
			m[lower] = struct{}{}
		}
	}
	return m, "", nil
}

// Limits returns the product's documented limits.
func (d Dialect) Limits() upstream.Limits { return d.p.limits }

// Heartbeat: none. Binance pings; the core answers with pongs.
func (Dialect) Heartbeat() upstream.Heartbeat { return upstream.Heartbeat{} }
