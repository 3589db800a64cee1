package upstream

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Kind is the type of a market stream. The zero Kind is invalid; no parser
// returns it.
type Kind uint8

// The stream kinds of Binance spot (binance-streams.md §1.7) and USD-M
// futures (§2). Names shared by both products have one Kind.
const (
	KindInvalid         Kind = iota
	KindTrade                // <symbol>@trade
	KindAggTrade             // <symbol>@aggTrade
	KindBlockTrade           // <symbol>@blockTrade
	KindReferencePrice       // <symbol>@referencePrice
	KindAvgPrice             // <symbol>@avgPrice
	KindKline                // <symbol>@kline_<interval>[@+08:00]
	KindMiniTicker           // <symbol>@miniTicker
	KindTicker               // <symbol>@ticker (24 h rolling window)
	KindWindowTicker         // <symbol>@ticker_<1h|4h|1d>
	KindBookTicker           // <symbol>@bookTicker
	KindPartialDepth         // <symbol>@depth<5|10|20>[@100ms]
	KindDiffDepth            // <symbol>@depth[@100ms]
	KindMiniTickerArr        // !miniTicker@arr
	KindWindowTickerArr      // !ticker_<1h|4h|1d>@arr
	KindMarkPrice            // futures <symbol>@markPrice[@1s]
	KindMarkPriceArr         // futures !markPrice@arr[@1s]
	KindTickerArr            // futures !ticker@arr
	KindBookTickerArr        // futures !bookTicker (one symbol per event)
	KindForceOrder           // futures <symbol>@forceOrder
	KindForceOrderArr        // futures !forceOrder@arr (one liquidation per event)
	KindContinuousKline      // futures <pair>_<contract type>@continuousKline_<interval>
)

var kindNames = [...]string{
	KindInvalid:         "invalid",
	KindTrade:           "trade",
	KindAggTrade:        "aggTrade",
	KindBlockTrade:      "blockTrade",
	KindReferencePrice:  "referencePrice",
	KindAvgPrice:        "avgPrice",
	KindKline:           "kline",
	KindMiniTicker:      "miniTicker",
	KindTicker:          "ticker",
	KindWindowTicker:    "windowTicker",
	KindBookTicker:      "bookTicker",
	KindPartialDepth:    "partialDepth",
	KindDiffDepth:       "diffDepth",
	KindMiniTickerArr:   "miniTickerArr",
	KindWindowTickerArr: "windowTickerArr",
	KindMarkPrice:       "markPrice",
	KindMarkPriceArr:    "markPriceArr",
	KindTickerArr:       "tickerArr",
	KindBookTickerArr:   "bookTickerArr",
	KindForceOrder:      "forceOrder",
	KindForceOrderArr:   "forceOrderArr",
	KindContinuousKline: "continuousKline",
}

// String returns a short name of k, for logs and metrics labels.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "invalid"
}

// Conflatable reports whether each event of a stream of this kind supersedes
// all earlier ones, so that a slow consumer may be sent only the newest
// event: tickers, bookTicker, partial depth, avgPrice, referencePrice,
// markPrice and klines. Trades, aggregated trades, block trades,
// liquidations and diff depth are not: losing one corrupts what the
// consumer builds.
//
// The all-market streams (!miniTicker@arr, !ticker_<w>@arr, !ticker@arr,
// !markPrice@arr, !bookTicker, !forceOrder@arr) are NOT conflatable: an
// event carries only some symbols (those that changed, or a single one),
// so dropping it loses those symbols' updates.
//
// Kline events are conflatable only between candle closes: the final event
// of a candle ("x":true) is followed by the first event of the next candle,
// so a consumer that conflates klines may want to keep closed candles.
func (k Kind) Conflatable() bool {
	switch k {
	case KindMiniTicker, KindTicker, KindWindowTicker, KindBookTicker,
		KindPartialDepth, KindAvgPrice, KindReferencePrice, KindKline,
		KindMarkPrice, KindContinuousKline:
		return true
	}
	return false
}

// PerSymbol reports whether streams of this kind belong to one symbol
// (everything except the all-market streams).
func (k Kind) PerSymbol() bool {
	switch k {
	case KindInvalid, KindMiniTickerArr, KindWindowTickerArr, KindMarkPriceArr,
		KindTickerArr, KindBookTickerArr, KindForceOrderArr:
		return false
	}
	return true
}

// Stream is a parsed, syntactically valid stream name. Only the parsers
// ([ParseStream] for Binance spot, [ParseFuturesStream] for USD-M futures)
// make valid values.
type Stream struct {
	// Name is the stream name exactly as given, e.g. "btcusdt@kline_1m".
	Name string
	// Symbol is the lowercase symbol, e.g. "btcusdt" (the pair of a
	// continuous kline); empty for the all-market streams.
	Symbol string
	// Kind is the stream type.
	Kind Kind
	// Interval is the kline interval ("1s" … "1M") for [KindKline] and
	// [KindContinuousKline], or the window ("1h", "4h", "1d") for
	// [KindWindowTicker] and [KindWindowTickerArr]; empty otherwise.
	Interval string
	// ContractType is "perpetual", "current_quarter" or "next_quarter" for
	// [KindContinuousKline], else empty.
	ContractType string
	// TimeZone is "+08:00" for klines with UTC+8 candle boundaries, else empty.
	TimeZone string
	// Levels is 5, 10 or 20 for [KindPartialDepth], else 0.
	Levels int
	// Speed is the update speed of depth streams (spot: 100ms, or 1000ms
	// without the "@100ms" suffix; futures: 100ms, 500ms, or 250ms without
	// a suffix) and of mark price streams (1s, or 3s without "@1s"); 0 for
	// other kinds.
	Speed time.Duration
}

// maxStreamName bounds a stream name in bytes; the longest valid suffix is
// "@kline_12h@+08:00", so this leaves room for long (Unicode) symbols.
const (
	maxStreamName = 128
	maxSymbolLen  = 64
)

// klineIntervals are the kline intervals of Binance spot. They are
// case-sensitive: "1m" is a minute, "1M" a month.
var klineIntervals = map[string]bool{
	"1s": true, "1m": true, "3m": true, "5m": true, "15m": true, "30m": true,
	"1h": true, "2h": true, "4h": true, "6h": true, "8h": true, "12h": true,
	"1d": true, "3d": true, "1w": true, "1M": true,
}

// depthLevels are the partial book depths.
var depthLevels = map[string]int{"5": 5, "10": 10, "20": 20}

// tickerWindows are the rolling-window ticker sizes.
var tickerWindows = map[string]bool{"1h": true, "4h": true, "1d": true}

// ParseStream parses a Binance spot stream name per the grammar of
// binance-streams.md §1.7. Names are case-sensitive: symbols are lowercase
// ("BTCUSDT@trade" is invalid) and kline intervals distinguish "1m" from
// "1M". It checks syntax only; whether the symbol trades is for
// [Binance.Validate]. The error is a [*ValidationError] wrapping
// [ErrInvalidStream], with a message fit for clients. Streams the exchange
// has retired (!ticker@arr, !bookTicker) and the server-pushed
// !serverShutdown are invalid.
func ParseStream(name string) (Stream, error) {
	if len(name) == 0 || len(name) > maxStreamName || !utf8.ValidString(name) {
		return Stream{}, invalidStream(name)
	}
	if rest, ok := strings.CutPrefix(name, "!"); ok {
		return parseArrStream(name, rest)
	}
	sym, rest, ok := strings.Cut(name, "@")
	if !ok || !validSymbol(sym) {
		return Stream{}, invalidStream(name)
	}
	s := Stream{Name: name, Symbol: sym}
	switch rest {
	case "trade":
		s.Kind = KindTrade
	case "aggTrade":
		s.Kind = KindAggTrade
	case "blockTrade":
		s.Kind = KindBlockTrade
	case "referencePrice":
		s.Kind = KindReferencePrice
	case "avgPrice":
		s.Kind = KindAvgPrice
	case "miniTicker":
		s.Kind = KindMiniTicker
	case "ticker":
		s.Kind = KindTicker
	case "bookTicker":
		s.Kind = KindBookTicker
	default:
		if !parseParamStream(&s, rest) {
			return Stream{}, invalidStream(name)
		}
	}
	return s, nil
}

// parseParamStream parses the suffixes that carry parameters: ticker
// windows, klines and depth.
func parseParamStream(s *Stream, rest string) bool {
	if w, ok := strings.CutPrefix(rest, "ticker_"); ok {
		if !tickerWindows[w] {
			return false
		}
		s.Kind, s.Interval = KindWindowTicker, w
		return true
	}
	if iv, ok := strings.CutPrefix(rest, "kline_"); ok {
		iv, tz, hasTZ := strings.Cut(iv, "@")
		if !klineIntervals[iv] || (hasTZ && tz != "+08:00") {
			return false
		}
		s.Kind, s.Interval, s.TimeZone = KindKline, iv, tz
		return true
	}
	if d, ok := strings.CutPrefix(rest, "depth"); ok {
		levels, speed, hasSpeed := strings.Cut(d, "@")
		if hasSpeed && speed != "100ms" {
			return false
		}
		s.Speed = time.Second
		if hasSpeed {
			s.Speed = 100 * time.Millisecond
		}
		switch levels {
		case "":
			s.Kind = KindDiffDepth
		case "5", "10", "20":
			s.Kind = KindPartialDepth
			s.Levels = depthLevels[levels]
		default:
			return false
		}
		return true
	}
	return false
}

// parseArrStream parses the all-market streams (name without the leading "!").
func parseArrStream(name, rest string) (Stream, error) {
	if rest == "miniTicker@arr" {
		return Stream{Name: name, Kind: KindMiniTickerArr}, nil
	}
	if w, ok := strings.CutPrefix(rest, "ticker_"); ok {
		if w, ok := strings.CutSuffix(w, "@arr"); ok && tickerWindows[w] {
			return Stream{Name: name, Kind: KindWindowTickerArr, Interval: w}, nil
		}
	}
	return Stream{}, invalidStream(name)
}

// validSymbol reports whether sym can be a lowercase Binance symbol: ASCII
// lowercase letters and digits, or (since 2025-12) Unicode letters that have
// no upper case form or are lowercase.
func validSymbol(sym string) bool {
	if sym == "" || len(sym) > maxSymbolLen {
		return false
	}
	for _, r := range sym {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		case r < utf8.RuneSelf:
			return false
		case unicode.IsLetter(r) && !unicode.IsUpper(r) && !unicode.IsTitle(r):
		case unicode.IsDigit(r):
		default:
			return false
		}
	}
	return true
}
