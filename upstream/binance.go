package upstream

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// Defaults of Binance spot, the [Config] defaults of [NewBinance]
// (binance-streams.md §1.4).
const (
	DefaultBinanceURL             = "wss://stream.binance.com:9443"
	DefaultBinanceRESTURL         = "https://api.binance.com"
	DefaultBinanceRequestInterval = 300 * time.Millisecond // ≤ 4 frames in any second; the limit is 5
	DefaultBinanceMaxStreams      = 1024
	DefaultBinanceIdleTimeout     = 5 * time.Minute // pings every 20 s documented, every 3 min seen
)

// Defaults shared by both Binance products.
const (
	DefaultMaxLifetime       = 24 * time.Hour
	DefaultMaxConnAttempts   = 300
	DefaultConnAttemptWindow = 5 * time.Minute
)

// BinanceSpot is the dialect of Binance spot market streams, exchange name
// "binance": one endpoint, /stream (combined events), the grammar of
// [ParseStream], symbols from /api/v3/exchangeInfo, 5 incoming messages
// per second and 1024 streams per connection.
var BinanceSpot Dialect = binanceDialect{}

// BinanceFutures is the dialect of Binance USD-M futures market streams,
// exchange name "binance-futures": two routed endpoints, /public/stream
// (depth and bookTicker) and /market/stream (everything else), the grammar
// of [ParseFuturesStream], symbols from /fapi/v1/exchangeInfo, 10 incoming
// messages per second and (as planned for by the spec) 200 streams per
// connection.
var BinanceFutures Dialect = binanceDialect{futures: true}

// BinanceConfig is the [Config] of [NewBinance] and [NewBinanceFutures],
// which set its Dialect.
type BinanceConfig = Config

// NewBinance returns an idle [Feed] of Binance spot: [New] with
// Dialect [BinanceSpot].
func NewBinance(cfg BinanceConfig) (*Feed, error) {
	cfg.Dialect = BinanceSpot
	return New(cfg)
}

// NewBinanceFutures returns an idle [Feed] of Binance USD-M futures: [New]
// with Dialect [BinanceFutures].
func NewBinanceFutures(cfg BinanceConfig) (*Feed, error) {
	cfg.Dialect = BinanceFutures
	return New(cfg)
}

// binanceDialect is Binance spot, or USD-M futures when futures is set.
// Both speak the same requests and combined-stream envelope.
type binanceDialect struct{ futures bool }

// Name returns "binance" or "binance-futures".
func (d binanceDialect) Name() string {
	if d.futures {
		return "binance-futures"
	}
	return "binance"
}

func (d binanceDialect) parseStream(name string) (Stream, error) {
	if d.futures {
		return ParseFuturesStream(name)
	}
	return ParseStream(name)
}

var (
	spotEndpoints    = []string{"/stream"}
	futuresEndpoints = []string{"/market/stream", "/public/stream"}
)

func (d binanceDialect) endpoints() []string {
	if d.futures {
		return futuresEndpoints
	}
	return spotEndpoints
}

func (d binanceDialect) endpointOf(s Stream) int {
	if d.futures {
		return futuresEndpoint(s.Kind)
	}
	return 0
}

// streamsURL returns base+path, with ?streams=a/b/c when names are given.
// Names are percent-encoded where a URL needs it ('+' of "@+08:00",
// Unicode symbols).
func (binanceDialect) streamsURL(base, path string, names []string) string {
	if len(names) == 0 {
		return base + path
	}
	var b strings.Builder
	b.Grow(len(base) + len(path) + 9 + urlStreamsLen(names))
	b.WriteString(base)
	b.WriteString(path)
	b.WriteString("?streams=")
	for i, n := range names {
		if i > 0 {
			b.WriteByte('/')
		}
		for j := 0; j < len(n); j++ {
			if c := n[j]; urlSafe(c) {
				b.WriteByte(c)
			} else {
				fmt.Fprintf(&b, "%%%02X", c)
			}
		}
	}
	return b.String()
}

// urlStreamsLen is the length of names joined by '/' and percent-encoded.
func urlStreamsLen(names []string) int {
	n := 0
	for i, name := range names {
		if i > 0 {
			n++
		}
		n += urlNameLen(name)
	}
	return n
}

func urlNameLen(name string) int {
	n := 0
	for j := 0; j < len(name); j++ {
		if urlSafe(name[j]) {
			n++
		} else {
			n += 3
		}
	}
	return n
}

func urlSafe(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '@' || c == '_' || c == '.' || c == '-' || c == '!' || c == ':'
}

func (d binanceDialect) symbolsPath() string {
	if d.futures {
		return "/fapi/v1/exchangeInfo"
	}
	return "/api/v3/exchangeInfo"
}

// exchangeInfo is the part of the exchangeInfo response the gateway needs;
// spot and USD-M futures share it.
type exchangeInfo struct {
	Symbols []struct {
		Symbol string `json:"symbol"`
		Status string `json:"status"`
	} `json:"symbols"`
}

// parseSymbols returns the lowercase symbols with status TRADING.
func (d binanceDialect) parseSymbols(r io.Reader) (map[string]struct{}, error) {
	var info exchangeInfo
	if err := json.NewDecoder(r).Decode(&info); err != nil {
		return nil, err
	}
	m := make(map[string]struct{}, len(info.Symbols))
	for _, sym := range info.Symbols {
		if sym.Status != "TRADING" {
			continue
		}
		if lower := strings.ToLower(sym.Symbol); d.validSymbol(lower) {
			m[lower] = struct{}{}
		}
	}
	return m, nil
}

func (d binanceDialect) validSymbol(sym string) bool {
	if d.futures {
		return validFuturesSymbol(sym)
	}
	return validSymbol(sym)
}

func (d binanceDialect) limits() limits {
	l := limits{
		url:             DefaultBinanceURL,
		restURL:         DefaultBinanceRESTURL,
		requestInterval: DefaultBinanceRequestInterval,
		maxStreams:      DefaultBinanceMaxStreams,
		idleTimeout:     DefaultBinanceIdleTimeout,
		maxLifetime:     DefaultMaxLifetime,
		maxConnAttempts: DefaultMaxConnAttempts,
		attemptWindow:   DefaultConnAttemptWindow,
	}
	if d.futures {
		l.url = DefaultFuturesURL
		l.restURL = DefaultFuturesRESTURL
		l.requestInterval = DefaultFuturesRequestInterval
		l.maxStreams = DefaultFuturesMaxStreams
		l.idleTimeout = DefaultFuturesIdleTimeout
	}
	return l
}

func (binanceDialect) encodeRequest(r *request) ([]byte, error) { return encodeBinanceRequest(r) }

func (binanceDialect) parseInbound(p []byte) (inbound, error) { return parseBinanceInbound(p) }

func (binanceDialect) isShutdown(stream []byte) bool { return string(stream) == "!serverShutdown" }

// tooManyStreams: {"error":{"code":4,"msg":"Too many subscriptions"}} was
// seen when a connection was over its stream limit (spec §1.4).
func (binanceDialect) tooManyStreams(e *replyError) bool { return e != nil && e.Code == 4 }

func (d binanceDialect) idKind(k Kind) idKind {
	switch k {
	case KindTrade, KindAggTrade, KindDiffDepth:
		return idConsecutive
	case KindBookTicker, KindPartialDepth, KindKline, KindContinuousKline, KindBlockTrade:
		return idMonotonic
	}
	return idNone
}

// identity reads an event's identity: trade t, aggTrade a, diff depth U/u
// (and futures pu), bookTicker u, partial depth lastUpdateId (futures: u),
// kline k.t then E, blockTrade t.
func (d binanceDialect) identity(k Kind, data []byte) (evID, bool) {
	single := func(key string) (evID, bool) {
		v, ok := jsonInt(data, key)
		return evID{lo: v, hi: v}, ok
	}
	switch k {
	case KindTrade, KindBlockTrade:
		return single("t")
	case KindAggTrade:
		return single("a")
	case KindBookTicker:
		return single("u")
	case KindPartialDepth:
		if d.futures {
			return single("u")
		}
		return single("lastUpdateId")
	case KindDiffDepth:
		lo, ok1 := jsonInt(data, "U")
		hi, ok2 := jsonInt(data, "u")
		id := evID{lo: lo, hi: hi}
		if d.futures {
			id.prev, id.hasPrev = jsonInt(data, "pu")
		}
		return id, ok1 && ok2 && lo <= hi
	case KindKline, KindContinuousKline:
		kl, ok := jsonField(data, "k")
		if !ok {
			return evID{}, false
		}
		open, ok1 := jsonInt(kl, "t")
		at, ok2 := jsonInt(data, "E")
		return evID{lo: open, hi: open, sub: at}, ok1 && ok2
	}
	return evID{}, false
}
