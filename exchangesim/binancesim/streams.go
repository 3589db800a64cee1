package binancesim

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// streamKind is the event family a stream name selects.
type streamKind int

const (
	kindTrade streamKind = iota + 1
	kindAggTrade
	kindBlockTrade
	kindReferencePrice
	kindAvgPrice
	kindKline
	kindMiniTicker
	kindTicker
	kindWindowTicker
	kindBookTicker
	kindPartialDepth
	kindDiffDepth
	kindAllMiniTickers
	kindAllWindowTickers

	// USD-M futures only.
	kindMarkPrice
	kindForceOrder
	kindContinuousKline
	kindCompositeIndex
	kindAssetIndex
	kindAllBookTickers
	kindAllMarkPrices
	kindAllTickers
	kindAllForceOrders
	kindContractInfo
	kindAllAssetIndexes
)

// marketWide is the registry key for streams that name no symbol
// (!miniTicker@arr, !ticker_<w>@arr, the futures ! streams) or whose
// symbol is not a listed one by nature (futures <asset>@assetIndex).
const marketWide = "!"

// streamSpec is a parsed stream name.
type streamSpec struct {
	name     string     // the name exactly as the client sent it
	symbol   string     // lower-case symbol, or marketWide
	kind     streamKind //
	interval string     // kline interval or rolling-ticker window
	levels   int        // partial depth levels: 5, 10 or 20
	utc8     bool       // kline with @+08:00 boundaries
	period   int64      // update period in ms chosen by the name (depth speeds, markPrice@1s, kline_1s); 0: the kind's
	route    route      // the futures route serving it; routeSpot in spot mode
}

// route is the USD-M futures path a connection came through, and the one a
// stream is served on. Spot has a single route, routeSpot, shared by every
// connection and stream.
type route uint8

const (
	routeSpot   route = iota // spot mode: every stream on every connection
	routePublic              // /public: depth and bookTicker
	routeMarket              // /market: everything else
)

func (r route) String() string {
	switch r {
	case routePublic:
		return "public"
	case routeMarket:
		return "market"
	}
	return "spot"
}

// grammar is the stream-name catalogue of one product. A name is either
// market-wide ("!" and a name of marketWide, or !ticker_<w>@arr) or
// <symbol>@<rest>, where rest is one of fixed, kline_<interval>,
// ticker_<window>, <pair>_<contractType>@continuousKline_<interval> or
// depth[<levels>][<speed>].
type grammar struct {
	// route serves every stream whose entry names no route of its own.
	route route
	// validSymbol reports whether a string can be a stream name's symbol.
	validSymbol func(string) bool
	// marketWide and fixed are the names (after "<symbol>@" for fixed)
	// that stand for one spec; an entry's empty symbol takes the name's.
	marketWide map[string]streamSpec
	fixed      map[string]streamSpec
	// klines are the kline intervals, each with its update period when it
	// differs from the kind's (Spot's 1s klines: every second).
	klines map[string]int64
	// klineUTC8 accepts kline_<interval>@+08:00 (UTC+8 bar boundaries).
	klineUTC8 bool
	// windows are the rolling-ticker windows of ticker_<w> and
	// !ticker_<w>@arr; nil where there are none.
	windows map[string]bool
	// contractTypes are those of continuous klines; nil where there are
	// none.
	contractTypes map[string]bool
	// depthRoute serves the depth streams; depthPeriod is their default
	// update period and depthSpeeds the name suffixes choosing another.
	depthRoute  route
	depthPeriod int64
	depthSpeeds []depthSpeed
}

// depthSpeed is a depth stream name's speed suffix and the update period
// in ms it selects.
type depthSpeed struct {
	suffix string
	period int64
}

// maxSymbolLen bounds the symbol part of a stream name. Binance symbols are
// at most 20 bytes today; the bound only rejects absurd input.
const maxSymbolLen = 64

// parse parses a stream name against the grammar. It reports false for a
// malformed name. It does not check that the symbol exists; a well-formed
// name for an unknown symbol parses fine.
func (g *grammar) parse(name string) (streamSpec, bool) {
	if strings.HasPrefix(name, "!") {
		if sp, ok := g.marketWide[name]; ok {
			return g.spec(sp, name, marketWide), true
		}
		if w, ok := strings.CutPrefix(name, "!ticker_"); ok {
			if w, ok = strings.CutSuffix(w, "@arr"); ok && g.windows[w] {
				return g.spec(streamSpec{kind: kindAllWindowTickers, interval: w}, name, marketWide), true
			}
		}
		return streamSpec{}, false
	}
	sym, rest, ok := strings.Cut(name, "@")
	if !ok || !g.validSymbol(sym) {
		return streamSpec{}, false
	}
	if sp, ok := g.fixed[rest]; ok {
		return g.spec(sp, name, sym), true
	}
	if iv, ok := strings.CutPrefix(rest, "continuousKline_"); ok {
		pair, ct, found := strings.Cut(sym, "_")
		if _, known := g.klines[iv]; !found || !g.contractTypes[ct] || !known {
			return streamSpec{}, false
		}
		return g.spec(streamSpec{kind: kindContinuousKline, interval: iv}, name, pair), true
	}
	if iv, ok := strings.CutPrefix(rest, "kline_"); ok {
		sp := streamSpec{kind: kindKline}
		if s, ok := strings.CutSuffix(iv, "@+08:00"); ok && g.klineUTC8 {
			iv, sp.utc8 = s, true
		}
		period, known := g.klines[iv]
		if !known {
			return streamSpec{}, false
		}
		sp.interval, sp.period = iv, period
		return g.spec(sp, name, sym), true
	}
	if w, ok := strings.CutPrefix(rest, "ticker_"); ok {
		if !g.windows[w] {
			return streamSpec{}, false
		}
		return g.spec(streamSpec{kind: kindWindowTicker, interval: w}, name, sym), true
	}
	if lv, ok := strings.CutPrefix(rest, "depth"); ok {
		return g.depth(name, sym, lv)
	}
	return streamSpec{}, false
}

// depth parses the part of a depth stream's name after "depth": an
// optional number of levels (partial depth), then an optional speed.
func (g *grammar) depth(name, sym, lv string) (streamSpec, bool) {
	sp := streamSpec{kind: kindDiffDepth, route: g.depthRoute, period: g.depthPeriod}
	for _, sd := range g.depthSpeeds {
		if s, ok := strings.CutSuffix(lv, sd.suffix); ok {
			lv, sp.period = s, sd.period
			break
		}
	}
	switch lv {
	case "":
	case "5", "10", "20":
		sp.kind = kindPartialDepth
		sp.levels, _ = strconv.Atoi(lv)
	default:
		return streamSpec{}, false
	}
	return g.spec(sp, name, sym), true
}

// spec completes a spec of the grammar: the name, the symbol unless the
// entry set one, and the grammar's route unless the entry set one.
func (g *grammar) spec(sp streamSpec, name, symbol string) streamSpec {
	sp.name = name
	if sp.symbol == "" {
		sp.symbol = symbol
	}
	if sp.route == routeSpot {
		sp.route = g.route
	}
	return sp
}

// validStreamSymbol reports whether s can be the symbol part of a stream
// name: non-empty, lower case, letters and digits only. Non-ASCII letters
// are allowed because Binance lists Unicode symbols since 2025-12-02;
// upper-case letters are not, because stream names are lower case.
func validStreamSymbol(s string) bool {
	return validSymbol(s, unicode.IsUpper, 'a', 'z')
}

// validDeliverySymbol is [validStreamSymbol] plus '_' between parts, as in
// USD-M delivery contracts ("btcusdt_260626"). Config.Symbols lists
// perpetuals only, so such streams are well-formed but of an unlisted
// symbol.
func validDeliverySymbol(sym string) bool {
	if len(sym) > maxSymbolLen {
		return false
	}
	for part := range strings.SplitSeq(sym, "_") {
		if !validStreamSymbol(part) {
			return false
		}
	}
	return true
}

// validConfigSymbol reports whether s is acceptable in Config.Symbols:
// upper-case letters and digits, non-ASCII letters allowed.
func validConfigSymbol(s string) bool {
	return validSymbol(s, unicode.IsLower, 'A', 'Z')
}

// validSymbol reports whether s is non-empty, at most maxSymbolLen bytes
// of valid UTF-8, and made of ASCII letters lo..hi, digits and non-ASCII
// letters and digits that are not wrongCase.
func validSymbol(s string, wrongCase func(rune) bool, lo, hi rune) bool {
	if s == "" || len(s) > maxSymbolLen || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		switch {
		case r >= lo && r <= hi, r >= '0' && r <= '9':
		case r < utf8.RuneSelf:
			return false
		case wrongCase(r):
			return false
		case unicode.IsLetter(r), unicode.IsDigit(r):
		default:
			return false
		}
	}
	return true
}
