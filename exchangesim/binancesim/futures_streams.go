package binancesim

import (
	"strconv"
	"strings"
)

// route is the USD-M futures path a connection came through, and the one a
// stream is served on (spec §2, "Endpoints and routing"). Spot has a single
// route, routeSpot, shared by every connection and stream.
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

// Futures update periods in milliseconds. Depth and markPrice speeds are
// from spec §2; the others are the USD-M doc pages' (kline 250ms,
// miniTicker and ticker 2s, the all-market arrays and forceOrder 1s).
const (
	periodDepthDefault = 250
	periodDepthSlow    = 500
	periodDepthFast    = 100
	periodMarkDefault  = 3000
	periodMarkFast     = 1000
	periodKline        = 250
	periodTicker       = 2000
	periodArr          = 1000
	periodForceOrder   = 1000
)

// futuresKlineIntervals are USD-M's kline intervals: Spot's without 1s.
var futuresKlineIntervals = map[string]bool{
	"1m": true, "3m": true, "5m": true, "15m": true, "30m": true,
	"1h": true, "2h": true, "4h": true, "6h": true, "8h": true, "12h": true,
	"1d": true, "3d": true, "1w": true, "1M": true,
}

// contractTypes are the continuous-kline contract types, as they appear
// (lower case) in stream names.
var contractTypes = map[string]bool{"perpetual": true, "current_quarter": true, "next_quarter": true}

// parseFuturesStream parses a USD-M stream name (spec §2) and sets the
// route that serves it. Spot-only names (trade, avgPrice, kline_1s,
// @+08:00, ticker_<w>, …) are malformed here, as futures names are in
// spot mode. Like [parseStream] it does not check that the symbol exists.
func parseFuturesStream(name string) (streamSpec, bool) {
	sp := streamSpec{name: name, route: routeMarket}
	if strings.HasPrefix(name, "!") {
		sp.symbol = marketWide
		switch name {
		case "!bookTicker":
			sp.kind, sp.route = kindAllBookTickers, routePublic
		case "!markPrice@arr":
			sp.kind, sp.period = kindAllMarkPrices, periodMarkDefault
		case "!markPrice@arr@1s":
			sp.kind, sp.period = kindAllMarkPrices, periodMarkFast
		case "!miniTicker@arr":
			sp.kind = kindAllMiniTickers
		case "!ticker@arr":
			sp.kind = kindAllTickers
		case "!forceOrder@arr":
			sp.kind = kindAllForceOrders
		case "!contractInfo":
			sp.kind = kindContractInfo
		case "!assetIndex@arr":
			sp.kind = kindAllAssetIndexes
		default:
			return sp, false
		}
		return sp, true
	}
	sym, rest, ok := strings.Cut(name, "@")
	if !ok || !validFuturesSymbol(sym) {
		return sp, false
	}
	if iv, isKline := strings.CutPrefix(rest, "continuousKline_"); isKline {
		pair, ct, found := strings.Cut(sym, "_")
		if !found || !contractTypes[ct] || !futuresKlineIntervals[iv] {
			return sp, false
		}
		sp.symbol, sp.kind, sp.interval = pair, kindContinuousKline, iv
		return sp, true
	}
	sp.symbol = sym
	switch rest {
	case "aggTrade":
		sp.kind = kindAggTrade
	case "markPrice":
		sp.kind, sp.period = kindMarkPrice, periodMarkDefault
	case "markPrice@1s":
		sp.kind, sp.period = kindMarkPrice, periodMarkFast
	case "miniTicker":
		sp.kind = kindMiniTicker
	case "ticker":
		sp.kind = kindTicker
	case "forceOrder":
		sp.kind = kindForceOrder
	case "compositeIndex":
		sp.kind = kindCompositeIndex
	case "assetIndex":
		// Asset index symbols (e.g. "adausd") are not trading symbols.
		sp.kind, sp.symbol = kindAssetIndex, marketWide
	case "bookTicker":
		sp.kind, sp.route = kindBookTicker, routePublic
	default:
		return parseFuturesStreamRest(sp, rest)
	}
	return sp, true
}

// parseFuturesStreamRest handles klines and depth.
func parseFuturesStreamRest(sp streamSpec, rest string) (streamSpec, bool) {
	if iv, ok := strings.CutPrefix(rest, "kline_"); ok {
		if !futuresKlineIntervals[iv] {
			return sp, false
		}
		sp.kind, sp.interval = kindKline, iv
		return sp, true
	}
	lv, ok := strings.CutPrefix(rest, "depth")
	if !ok {
		return sp, false
	}
	sp.route, sp.period = routePublic, periodDepthDefault
	if s, ok := strings.CutSuffix(lv, "@100ms"); ok {
		lv, sp.period = s, periodDepthFast
	} else if s, ok := strings.CutSuffix(lv, "@500ms"); ok {
		lv, sp.period = s, periodDepthSlow
	}
	switch lv {
	case "":
		sp.kind = kindDiffDepth
	case "5", "10", "20":
		sp.kind = kindPartialDepth
		sp.levels, _ = strconv.Atoi(lv)
	default:
		return sp, false
	}
	return sp, true
}

// validFuturesSymbol is [validStreamSymbol] plus '_' between parts, as in
// delivery contracts ("btcusdt_260626"). Config.Symbols lists perpetuals
// only, so such streams are well-formed but of an unlisted symbol.
func validFuturesSymbol(sym string) bool {
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

// splitRoute splits a futures request path into its route and the rest:
// "/public/ws/a" is (routePublic, "/ws/a"). An unrouted (legacy) path is
// served like /public (spec §2: such connections "only receive data from
// the Public endpoint"). private reports a /private path.
func splitRoute(p string) (rt route, rest string, private bool) {
	for _, r := range []struct {
		prefix string
		rt     route
	}{{"/public", routePublic}, {"/market", routeMarket}, {"/private", routeSpot}} {
		if p == r.prefix || strings.HasPrefix(p, r.prefix+"/") {
			return r.rt, p[len(r.prefix):], r.prefix == "/private"
		}
	}
	return routePublic, p, false
}
