package upstream

import (
	"strings"
	"time"
	"unicode/utf8"
)

// Defaults of Binance USD-M futures, the [Config] defaults of
// [NewBinanceFutures] (binance-streams.md §2).
const (
	DefaultFuturesURL             = "wss://fstream.binance.com"
	DefaultFuturesRESTURL         = "https://fapi.binance.com"
	DefaultFuturesRequestInterval = 200 * time.Millisecond // ≤ 5 frames in any second; the limit is 10
	DefaultFuturesMaxStreams      = 200                    // older docs and libraries; the current page says 1024
	DefaultFuturesIdleTimeout     = 10 * time.Minute       // ping every 3 min, pong due within 10 min
)

// Indexes of futuresEndpoints.
const (
	futuresMarket = 0 // /market: aggTrade, markPrice, kline, tickers, forceOrder, …
	futuresPublic = 1 // /public: depth and bookTicker
)

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

// futuresKlineIntervals are USD-M's kline intervals: spot's without 1s.
var futuresKlineIntervals = map[string]bool{
	"1m": true, "3m": true, "5m": true, "15m": true, "30m": true,
	"1h": true, "2h": true, "4h": true, "6h": true, "8h": true, "12h": true,
	"1d": true, "3d": true, "1w": true, "1M": true,
}

// contractTypes are the continuous-kline contract types.
var contractTypes = map[string]bool{"perpetual": true, "current_quarter": true, "next_quarter": true}

// ParseFuturesStream parses a Binance USD-M futures stream name (spec §2):
//
//	<symbol>@aggTrade | @markPrice[@1s] | @kline_<i> | @miniTicker | @ticker
//	       | @bookTicker | @forceOrder | @depth<5|10|20>[@100ms|@500ms]
//	       | @depth[@100ms|@500ms]
//	<pair>_<perpetual|current_quarter|next_quarter>@continuousKline_<i>
//	!markPrice@arr[@1s] | !miniTicker@arr | !ticker@arr | !bookTicker
//	       | !forceOrder@arr
//
// Symbols are lowercase and may contain '_' (delivery contracts such as
// "btcusdt_260626"); intervals are spot's without 1s. Like [ParseStream]
// it checks syntax only, and its error is a [*ValidationError] wrapping
// [ErrInvalidStream]. Spot-only names (trade, avgPrice, kline_1s,
// @+08:00, ticker_<w>) are invalid here.
func ParseFuturesStream(name string) (Stream, error) {
	if len(name) == 0 || len(name) > maxStreamName || !utf8.ValidString(name) {
		return Stream{}, invalidStream(name)
	}
	if rest, ok := strings.CutPrefix(name, "!"); ok {
		s := Stream{Name: name}
		switch rest {
		case "markPrice@arr":
			s.Kind, s.Speed = KindMarkPriceArr, 3*time.Second
		case "markPrice@arr@1s":
			s.Kind, s.Speed = KindMarkPriceArr, time.Second
		case "miniTicker@arr":
			s.Kind = KindMiniTickerArr
		case "ticker@arr":
			s.Kind = KindTickerArr
		case "bookTicker":
			s.Kind = KindBookTickerArr
		case "forceOrder@arr":
			s.Kind = KindForceOrderArr
		default:
			return Stream{}, invalidStream(name)
		}
		return s, nil
	}
	sym, rest, ok := strings.Cut(name, "@")
	if !ok || !validFuturesSymbol(sym) {
		return Stream{}, invalidStream(name)
	}
	s := Stream{Name: name, Symbol: sym}
	if iv, ok := strings.CutPrefix(rest, "continuousKline_"); ok {
		pair, ct, found := strings.Cut(sym, "_")
		if !found || !validSymbol(pair) || !contractTypes[ct] || !futuresKlineIntervals[iv] {
			return Stream{}, invalidStream(name)
		}
		s.Symbol, s.Kind, s.Interval, s.ContractType = pair, KindContinuousKline, iv, ct
		return s, nil
	}
	switch rest {
	case "aggTrade":
		s.Kind = KindAggTrade
	case "markPrice":
		s.Kind, s.Speed = KindMarkPrice, 3*time.Second
	case "markPrice@1s":
		s.Kind, s.Speed = KindMarkPrice, time.Second
	case "miniTicker":
		s.Kind = KindMiniTicker
	case "ticker":
		s.Kind = KindTicker
	case "bookTicker":
		s.Kind = KindBookTicker
	case "forceOrder":
		s.Kind = KindForceOrder
	default:
		if !parseFuturesParam(&s, rest) {
			return Stream{}, invalidStream(name)
		}
	}
	return s, nil
}

// parseFuturesParam parses klines and depth.
func parseFuturesParam(s *Stream, rest string) bool {
	if iv, ok := strings.CutPrefix(rest, "kline_"); ok {
		if !futuresKlineIntervals[iv] {
			return false
		}
		s.Kind, s.Interval = KindKline, iv
		return true
	}
	d, ok := strings.CutPrefix(rest, "depth")
	if !ok {
		return false
	}
	levels, speed, hasSpeed := strings.Cut(d, "@")
	switch {
	case !hasSpeed:
		s.Speed = 250 * time.Millisecond
	case speed == "100ms":
		s.Speed = 100 * time.Millisecond
	case speed == "500ms":
		s.Speed = 500 * time.Millisecond
	default:
		return false
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
