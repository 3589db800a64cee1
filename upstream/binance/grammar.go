package binance

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/marketgate/marketgate/upstream"
)

// Kind is the type of a Binance market stream. The zero Kind is invalid;
// no parser returns it.
type Kind uint8

// The stream kinds of Binance spot and USD-M futures. Names shared by both
// products have one Kind.
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

// Class returns the neutral class of k, which decides conflation and how
// events are told apart. The all-market streams (!miniTicker@arr,
// !ticker_<w>@arr, !ticker@arr, !markPrice@arr, !bookTicker,
// !forceOrder@arr) are [upstream.ClassOther]: an event carries only some
// symbols (those that changed, or a single one), so none supersedes
// another.
func (k Kind) Class() upstream.Class {
	switch k {
	case KindTrade, KindAggTrade, KindBlockTrade:
		return upstream.ClassTrade
	case KindDiffDepth:
		return upstream.ClassBookDelta
	case KindPartialDepth:
		return upstream.ClassBookSnapshot
	case KindBookTicker:
		return upstream.ClassBookTop
	case KindMiniTicker, KindTicker, KindWindowTicker, KindAvgPrice, KindReferencePrice, KindMarkPrice:
		return upstream.ClassTicker
	case KindKline, KindContinuousKline:
		return upstream.ClassCandle
	case KindInvalid:
		return 0
	}
	return upstream.ClassOther
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

// Stream is a parsed, syntactically valid Binance stream name with its
// parameters. Only [ParseStream] and [ParseFuturesStream] make valid
// values; [Stream.Neutral] is what the upstream core sees of it.
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

// Neutral returns the stream as the upstream core sees it: its class,
// and its kind as an index into the dialect's Kinds. Block trade ids
// increase but skip, so they are ordered as monotonic, not consecutive.
func (s Stream) Neutral() upstream.Stream {
	n := upstream.Stream{Name: s.Name, Symbol: s.Symbol, Class: s.Kind.Class(), Kind: int(s.Kind) - 1}
	if s.Kind == KindBlockTrade {
		n.IDs = upstream.OrderMonotonic
	}
	return n
}

// kindOf returns the Binance kind of a stream the dialect parsed.
func kindOf(s *upstream.Stream) Kind { return Kind(s.Kind + 1) }

// maxStreamName bounds a stream name in bytes; the longest valid suffix is
// "@kline_12h@+08:00", so this leaves room for long (Unicode) symbols.
const (
	maxStreamName = 128
	maxSymbolLen  = 64
)

// grammar is one product's stream names. Spot and USD-M futures share the
// shape <symbol>@<type>[@<parameter>] and the all-market "!…" names; what
// differs is in the tables.
type grammar struct {
	arr         map[string]Stream        // all-market names without the '!', as parsed
	plain       map[string]Stream        // suffixes without parameters: Kind (and Speed)
	intervals   map[string]bool          // kline intervals; case-sensitive: "1m" is a minute, "1M" a month
	utc8        bool                     // kline_<i>@+08:00
	windows     bool                     // ticker_<1h|4h|1d>
	continuous  bool                     // <pair>_<contract type>@continuousKline_<i>
	depthSpeeds map[string]time.Duration // depth suffixes ("": none) and their speeds
	validSymbol func(string) bool
}

// depthLevels are the partial book depths.
var depthLevels = map[string]int{"5": 5, "10": 10, "20": 20}

// tickerWindows are the rolling-window ticker sizes.
var tickerWindows = map[string]bool{"1h": true, "4h": true, "1d": true}

// contractTypes are the continuous-kline contract types.
var contractTypes = map[string]bool{"perpetual": true, "current_quarter": true, "next_quarter": true}

// spotGrammar: spot's names. Streams the exchange has retired
// (!ticker@arr, !bookTicker) and the server-pushed !serverShutdown are
// invalid.
var spotGrammar = grammar{
	arr: map[string]Stream{
		"miniTicker@arr": {Kind: KindMiniTickerArr},
		"ticker_1h@arr":  {Kind: KindWindowTickerArr, Interval: "1h"},
		"ticker_4h@arr":  {Kind: KindWindowTickerArr, Interval: "4h"},
		"ticker_1d@arr":  {Kind: KindWindowTickerArr, Interval: "1d"},
	},
	plain: map[string]Stream{
		"trade": {Kind: KindTrade}, "aggTrade": {Kind: KindAggTrade}, "blockTrade": {Kind: KindBlockTrade},
		"referencePrice": {Kind: KindReferencePrice}, "avgPrice": {Kind: KindAvgPrice},
		"miniTicker": {Kind: KindMiniTicker}, "ticker": {Kind: KindTicker}, "bookTicker": {Kind: KindBookTicker},
	},
	intervals: map[string]bool{
		"1s": true, "1m": true, "3m": true, "5m": true, "15m": true, "30m": true,
		"1h": true, "2h": true, "4h": true, "6h": true, "8h": true, "12h": true,
		"1d": true, "3d": true, "1w": true, "1M": true,
	},
	utc8:        true,
	windows:     true,
	depthSpeeds: map[string]time.Duration{"": time.Second, "100ms": 100 * time.Millisecond},
	validSymbol: validSymbol,
}

// futuresGrammar: USD-M's names. Symbols may contain '_' (delivery
// contracts such as "btcusdt_260626"); intervals are spot's without 1s;
// spot-only names (trade, avgPrice, kline_1s, @+08:00, ticker_<w>) are
// invalid.
var futuresGrammar = grammar{
	arr: map[string]Stream{
		"markPrice@arr":    {Kind: KindMarkPriceArr, Speed: 3 * time.Second},
		"markPrice@arr@1s": {Kind: KindMarkPriceArr, Speed: time.Second},
		"miniTicker@arr":   {Kind: KindMiniTickerArr},
		"ticker@arr":       {Kind: KindTickerArr},
		"bookTicker":       {Kind: KindBookTickerArr},
		"forceOrder@arr":   {Kind: KindForceOrderArr},
	},
	plain: map[string]Stream{
		"aggTrade": {Kind: KindAggTrade}, "markPrice": {Kind: KindMarkPrice, Speed: 3 * time.Second},
		"markPrice@1s": {Kind: KindMarkPrice, Speed: time.Second}, "miniTicker": {Kind: KindMiniTicker},
		"ticker": {Kind: KindTicker}, "bookTicker": {Kind: KindBookTicker}, "forceOrder": {Kind: KindForceOrder},
	},
	intervals: map[string]bool{
		"1m": true, "3m": true, "5m": true, "15m": true, "30m": true,
		"1h": true, "2h": true, "4h": true, "6h": true, "8h": true, "12h": true,
		"1d": true, "3d": true, "1w": true, "1M": true,
	},
	continuous: true,
	depthSpeeds: map[string]time.Duration{
		"": 250 * time.Millisecond, "100ms": 100 * time.Millisecond, "500ms": 500 * time.Millisecond,
	},
	validSymbol: validFuturesSymbol,
}

// ParseStream parses a Binance spot stream name:
//
//	<symbol>@trade | @aggTrade | @blockTrade | @referencePrice | @avgPrice
//	       | @miniTicker | @ticker | @ticker_<1h|4h|1d> | @bookTicker
//	       | @kline_<interval>[@+08:00] | @depth[5|10|20][@100ms]
//	!miniTicker@arr | !ticker_<1h|4h|1d>@arr
//
// Names are case-sensitive: symbols are lowercase ("BTCUSDT@trade" is
// invalid) and kline intervals distinguish "1m" from "1M". It checks
// syntax only; whether the symbol trades is for [upstream.Feed.Validate].
// The error is a [*upstream.ValidationError] wrapping
// [upstream.ErrInvalidStream], with a message fit for clients.
func ParseStream(name string) (Stream, error) { return spotGrammar.parse(name) }

// ParseFuturesStream parses a Binance USD-M futures stream name:
//
//	<symbol>@aggTrade | @markPrice[@1s] | @kline_<i> | @miniTicker | @ticker
//	       | @bookTicker | @forceOrder | @depth<5|10|20>[@100ms|@500ms]
//	       | @depth[@100ms|@500ms]
//	<pair>_<perpetual|current_quarter|next_quarter>@continuousKline_<i>
//	!markPrice@arr[@1s] | !miniTicker@arr | !ticker@arr | !bookTicker
//	       | !forceOrder@arr
//
// Like [ParseStream] it checks syntax only, with the same error.
func ParseFuturesStream(name string) (Stream, error) { return futuresGrammar.parse(name) }

func (g *grammar) parse(name string) (Stream, error) {
	if len(name) == 0 || len(name) > maxStreamName || !utf8.ValidString(name) {
		return Stream{}, invalidStream(name)
	}
	if rest, ok := strings.CutPrefix(name, "!"); ok {
		s, ok := g.arr[rest]
		if !ok {
			return Stream{}, invalidStream(name)
		}
		s.Name = name
		return s, nil
	}
	sym, rest, ok := strings.Cut(name, "@")
	if !ok || !g.validSymbol(sym) {
		return Stream{}, invalidStream(name)
	}
	s := Stream{Name: name, Symbol: sym}
	if iv, ok := strings.CutPrefix(rest, "continuousKline_"); ok && g.continuous {
		pair, ct, found := strings.Cut(sym, "_")
		if !found || !validSymbol(pair) || !contractTypes[ct] || !g.intervals[iv] {
			return Stream{}, invalidStream(name)
		}
		s.Symbol, s.Kind, s.Interval, s.ContractType = pair, KindContinuousKline, iv, ct
		return s, nil
	}
	if p, ok := g.plain[rest]; ok {
		s.Kind, s.Speed = p.Kind, p.Speed
		return s, nil
	}
	if !g.parseParam(&s, rest) {
		return Stream{}, invalidStream(name)
	}
	return s, nil
}

// parseParam parses the suffixes that carry parameters: ticker windows,
// klines and depth.
func (g *grammar) parseParam(s *Stream, rest string) bool {
	if w, ok := strings.CutPrefix(rest, "ticker_"); ok && g.windows {
		if !tickerWindows[w] {
			return false
		}
		s.Kind, s.Interval = KindWindowTicker, w
		return true
	}
	if iv, ok := strings.CutPrefix(rest, "kline_"); ok {
		iv, tz, hasTZ := strings.Cut(iv, "@")
		if !g.intervals[iv] || (hasTZ && (!g.utc8 || tz != "+08:00")) {
			return false
		}
		s.Kind, s.Interval, s.TimeZone = KindKline, iv, tz
		return true
	}
	d, ok := strings.CutPrefix(rest, "depth")
	if !ok {
		return false
	}
	levels, speed, hasSpeed := strings.Cut(d, "@")
	if hasSpeed && speed == "" {
		return false
	}
	sp, ok := g.depthSpeeds[speed]
	if !ok {
		return false
	}
	s.Speed = sp
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

// validFuturesSymbol is [validSymbol] plus '_' between parts, as in
// delivery contracts ("btcusdt_260626").
func validFuturesSymbol(sym string) bool {
	if sym == "" || len(sym) > maxSymbolLen {
		return false
	}
	for part := range strings.SplitSeq(sym, "_") {
		if !validSymbol(part) {
			return false
		}
	}
	return true
}

func invalidStream(name string) error {
	return &upstream.ValidationError{Err: upstream.ErrInvalidStream, Value: name}
}
