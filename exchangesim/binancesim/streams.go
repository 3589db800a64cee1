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

	// Futures only (futures_streams.go).
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

// streamSpec is a parsed stream name (spec §1.7).
type streamSpec struct {
	name     string     // the name exactly as the client sent it
	symbol   string     // lower-case symbol, or marketWide
	kind     streamKind //
	interval string     // kline interval or rolling-ticker window
	levels   int        // partial depth levels: 5, 10 or 20
	fast     bool       // the @100ms update speed (spot)
	utc8     bool       // kline with @+08:00 boundaries
	period   int64      // update period in ms (futures depth and markPrice)
	route    route      // the futures route serving it; routeSpot in spot mode
}

// klineIntervals are Binance's kline intervals; names are case-sensitive
// (1m is a minute, 1M a month).
var klineIntervals = map[string]bool{
	"1s": true, "1m": true, "3m": true, "5m": true, "15m": true, "30m": true,
	"1h": true, "2h": true, "4h": true, "6h": true, "8h": true, "12h": true,
	"1d": true, "3d": true, "1w": true, "1M": true,
}

// tickerWindows are the rolling-window ticker sizes.
var tickerWindows = map[string]bool{"1h": true, "4h": true, "1d": true}

// maxSymbolLen bounds the symbol part of a stream name. Binance symbols are
// at most 20 bytes today; the bound only rejects absurd input.
const maxSymbolLen = 64

// parseStream parses a stream name against the grammar of spec §1.7. It
// reports false for a malformed name. It does not check that the symbol
// exists; a well-formed name for an unknown symbol parses fine.
func parseStream(name string) (streamSpec, bool) {
	sp := streamSpec{name: name}
	if strings.HasPrefix(name, "!") {
		sp.symbol = marketWide
		switch {
		case name == "!miniTicker@arr":
			sp.kind = kindAllMiniTickers
			return sp, true
		case strings.HasPrefix(name, "!ticker_") && strings.HasSuffix(name, "@arr"):
			w := strings.TrimSuffix(strings.TrimPrefix(name, "!ticker_"), "@arr")
			if !tickerWindows[w] {
				return sp, false
			}
			sp.kind, sp.interval = kindAllWindowTickers, w
			return sp, true
		}
		return sp, false
	}
	sym, rest, ok := strings.Cut(name, "@")
	if !ok || !validStreamSymbol(sym) {
		return sp, false
	}
	sp.symbol = sym
	switch rest {
	case "trade":
		sp.kind = kindTrade
	case "aggTrade":
		sp.kind = kindAggTrade
	case "blockTrade":
		sp.kind = kindBlockTrade
	case "referencePrice":
		sp.kind = kindReferencePrice
	case "avgPrice":
		sp.kind = kindAvgPrice
	case "miniTicker":
		sp.kind = kindMiniTicker
	case "ticker":
		sp.kind = kindTicker
	case "bookTicker":
		sp.kind = kindBookTicker
	case "depth":
		sp.kind = kindDiffDepth
	case "depth@100ms":
		sp.kind, sp.fast = kindDiffDepth, true
	default:
		return parseStreamRest(sp, rest)
	}
	return sp, true
}

// parseStreamRest handles the parameterised stream types.
func parseStreamRest(sp streamSpec, rest string) (streamSpec, bool) {
	switch {
	case strings.HasPrefix(rest, "kline_"):
		iv := strings.TrimPrefix(rest, "kline_")
		if s, ok := strings.CutSuffix(iv, "@+08:00"); ok {
			iv, sp.utc8 = s, true
		}
		if !klineIntervals[iv] {
			return sp, false
		}
		sp.kind, sp.interval = kindKline, iv
		return sp, true
	case strings.HasPrefix(rest, "ticker_"):
		w := strings.TrimPrefix(rest, "ticker_")
		if !tickerWindows[w] {
			return sp, false
		}
		sp.kind, sp.interval = kindWindowTicker, w
		return sp, true
	case strings.HasPrefix(rest, "depth"):
		lv := strings.TrimPrefix(rest, "depth")
		if s, ok := strings.CutSuffix(lv, "@100ms"); ok {
			lv, sp.fast = s, true
		}
		switch lv {
		case "5", "10", "20":
			sp.levels, _ = strconv.Atoi(lv)
			sp.kind = kindPartialDepth
			return sp, true
		}
	}
	return sp, false
}

// validStreamSymbol reports whether s can be the symbol part of a stream
// name: non-empty, lower case, letters and digits only. Non-ASCII letters
// are allowed because Binance lists Unicode symbols since 2025-12-02;
// upper-case letters are not, because stream names are lower case (§1.2).
func validStreamSymbol(s string) bool {
	if s == "" || len(s) > maxSymbolLen || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		case r < utf8.RuneSelf:
			return false
		case unicode.IsUpper(r):
			return false
		case unicode.IsLetter(r), unicode.IsDigit(r):
		default:
			return false
		}
	}
	return true
}

// validConfigSymbol reports whether s is acceptable in Config.Symbols:
// upper-case letters and digits, non-ASCII letters allowed.
func validConfigSymbol(s string) bool {
	if s == "" || len(s) > maxSymbolLen || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case r < utf8.RuneSelf:
			return false
		case unicode.IsLower(r):
			return false
		case unicode.IsLetter(r), unicode.IsDigit(r):
		default:
			return false
		}
	}
	return true
}

// generated reports whether the simulator produces events for streams of
// this spec. The others are accepted and stay silent (see the package doc).
func (sp streamSpec) generated() bool {
	switch sp.kind {
	case kindBlockTrade, kindReferencePrice, kindWindowTicker, kindAllWindowTickers,
		kindContinuousKline, kindCompositeIndex, kindAssetIndex, kindContractInfo, kindAllAssetIndexes:
		return false
	}
	return true
}
