package binance

import (
	"github.com/marketgate/marketgate/internal/jsonscan"
	"github.com/marketgate/marketgate/upstream"
)

// Identity reads an event's identity: trade t, aggTrade a, diff depth U/u
// (and futures pu), bookTicker u, partial depth lastUpdateId (futures: u),
// kline k.t then E, blockTrade t. Keys are case-sensitive ("t" is not
// "T"). It does not allocate.
func (d Dialect) Identity(s *upstream.Stream, data []byte) (upstream.EventID, bool) {
	single := func(key string) (upstream.EventID, bool) {
		v, ok := jsonscan.Int(data, key)
		return upstream.EventID{Lo: v, Hi: v}, ok
	}
	switch kindOf(s) {
	case KindTrade, KindBlockTrade:
		return single("t")
	case KindAggTrade:
		return single("a")
	case KindBookTicker:
		return single("u")
	case KindPartialDepth:
		return single(d.p.partialID)
	case KindDiffDepth:
		lo, ok1 := jsonscan.Int(data, "U")
		hi, ok2 := jsonscan.Int(data, "u")
		id := upstream.EventID{Lo: lo, Hi: hi}
		if d.p.deltaPrev {
			id.Prev, id.HasPrev = jsonscan.Int(data, "pu")
		}
		return id, ok1 && ok2 && lo <= hi
	case KindKline, KindContinuousKline:
		kl, ok := jsonscan.Field(data, "k")
		if !ok {
			return upstream.EventID{}, false
		}
		open, ok1 := jsonscan.Int(kl, "t")
		at, ok2 := jsonscan.Int(data, "E")
		return upstream.EventID{Lo: open, Hi: open, Sub: at}, ok1 && ok2
	}
	return upstream.EventID{}, false
}

// EventTime returns the event time of an event in Unix microseconds, read
// from its "E" field, or 0 when it has none (spot's bookTicker and
// partial depth, the all-market arrays). The unit is told by magnitude
// rather than by whether microseconds were asked for, so a time in
// milliseconds is never taken for microseconds whatever an endpoint does
// with timeUnit: below 1e14 it is milliseconds (1e14 ms is the year 5138,
// 1e14 µs is 1973). It does not allocate.
func (Dialect) EventTime(data []byte) int64 {
	e, ok := jsonscan.Int(data, "E")
	switch {
	case !ok || e <= 0:
		return 0
	case e < 1e14:
		return e * 1000
	}
	return e
}

// Final reports whether a kline or continuous kline event closes its
// candle ("k":{…,"x":true}): later events are of the next candle, so this
// one must reach even a slow consumer. Events of every other kind are
// never final. It does not allocate.
func (Dialect) Final(s *upstream.Stream, data []byte) bool {
	switch kindOf(s) {
	case KindKline, KindContinuousKline:
		kl, ok := jsonscan.Field(data, "k")
		if !ok {
			return false
		}
		x, ok := jsonscan.Field(kl, "x")
		return ok && string(x) == "true"
	}
	return false
}
