package binancesim

import (
	"cmp"
	"slices"
	"strconv"
)

// Payload encoders. Field order follows Binance's samples: Spot's stream
// pages, and the USD-M doc pages for futures (aggTrade without "M", the
// 24hrTicker without x/b/B/a/A, depth and bookTicker with T and pu).
// Prices and quantities are strings with 8 decimals; ids and times are
// numbers.

func appendInt(b []byte, v int64) []byte { return strconv.AppendInt(b, v, 10) }

func appendBool(b []byte, v bool) []byte { return strconv.AppendBool(b, v) }

// appendTime appends a µs timestamp in the connection's unit.
func appendTime(b []byte, us int64, micro bool) []byte {
	if micro {
		return appendInt(b, us)
	}
	return appendInt(b, us/1000)
}

// appendCloseTime appends the last instant before the exclusive end.
func appendCloseTime(b []byte, end int64, micro bool) []byte {
	if micro {
		return appendInt(b, end-1)
	}
	return appendInt(b, end/1000-1)
}

// appendE8 appends v/1e8 with exactly 8 decimals.
func appendE8(b []byte, v int64) []byte {
	if v < 0 {
		b = append(b, '-')
		v = -v
	}
	b = appendInt(b, v/e8)
	frac := v % e8
	b = append(b, '.')
	for d := int64(e8 / 10); d > 0; d /= 10 {
		b = append(b, byte('0'+frac/d%10))
	}
	return b
}

// appendPriceField appends ,"k":"<e8>".
func appendPriceField(b []byte, key string, v int64) []byte {
	b = append(b, `,"`...)
	b = append(b, key...)
	b = append(b, `":"`...)
	b = appendE8(b, v)
	return append(b, '"')
}

// appendFloatField appends ,"k":"<v with 8 decimals>".
func appendFloatField(b []byte, key string, v float64) []byte {
	b = append(b, `,"`...)
	b = append(b, key...)
	b = append(b, `":"`...)
	b = strconv.AppendFloat(b, v, 'f', 8, 64)
	return append(b, '"')
}

// appendHead appends {"e":<typ>,"E":<now>,"s":<symbol>.
func appendHead(b []byte, typ string, sy *symbolState, now int64, micro bool) []byte {
	b = append(b, `{"e":"`...)
	b = append(b, typ...)
	b = append(b, `","E":`...)
	b = appendTime(b, now, micro)
	b = append(b, `,"s":`...)
	return appendJSONString(b, sy.name)
}

// appendTrade: Spot's {"e","E","s","t","p","q","T","m","M"}.
func appendTrade(b []byte, sy *symbolState, tr trade, now int64, micro bool) []byte {
	b = appendHead(b, "trade", sy, now, micro)
	b = append(b, `,"t":`...)
	b = appendInt(b, tr.id)
	b = appendPriceField(b, "p", tr.px)
	b = appendPriceField(b, "q", tr.qty)
	b = append(b, `,"T":`...)
	b = appendTime(b, tr.time, micro)
	b = append(b, `,"m":`...)
	b = appendBool(b, tr.buyerMaker)
	return append(b, `,"M":true}`...)
}

// appendAggTrade: Spot's {"e","E","s","a","p","q","f","l","T","m","M"}.
func appendAggTrade(b []byte, sy *symbolState, ag aggTrade, now int64, micro bool) []byte {
	return append(appendAggTradeFields(b, sy, ag, now, micro), `,"M":true}`...)
}

// appendFuturesAggTrade: USD-M's {"e","E","s","a","p","q","f","l","T","m"}.
func appendFuturesAggTrade(b []byte, sy *symbolState, ag aggTrade, now int64, micro bool) []byte {
	return append(appendAggTradeFields(b, sy, ag, now, micro), '}')
}

// appendAggTradeFields appends an aggTrade's fields up to "m", without the
// closing brace.
func appendAggTradeFields(b []byte, sy *symbolState, ag aggTrade, now int64, micro bool) []byte {
	b = appendHead(b, "aggTrade", sy, now, micro)
	b = append(b, `,"a":`...)
	b = appendInt(b, ag.id)
	b = appendPriceField(b, "p", ag.px)
	b = appendPriceField(b, "q", ag.qty)
	b = append(b, `,"f":`...)
	b = appendInt(b, ag.first)
	b = append(b, `,"l":`...)
	b = appendInt(b, ag.last)
	b = append(b, `,"T":`...)
	b = appendTime(b, ag.time, micro)
	b = append(b, `,"m":`...)
	return appendBool(b, ag.buyerMaker)
}

// appendBookTicker: Spot's {"u","s","b","B","a","A"}, without e and E.
func appendBookTicker(b []byte, sy *symbolState, _ int64, _ bool) []byte {
	b = append(b, `{"u":`...)
	b = appendInt(b, sy.updateID)
	b = append(b, `,"s":`...)
	b = appendJSONString(b, sy.name)
	return appendTopFields(b, sy)
}

// appendFuturesBookTicker: USD-M's {"e","u","E","T","s","b","B","a","A"}.
func appendFuturesBookTicker(b []byte, sy *symbolState, now int64, micro bool) []byte {
	b = append(b, `{"e":"bookTicker","u":`...)
	b = appendInt(b, sy.updateID)
	b = append(b, `,"E":`...)
	b = appendTime(b, now, micro)
	b = append(b, `,"T":`...)
	b = appendTime(b, sy.bookTime, micro)
	b = append(b, `,"s":`...)
	b = appendJSONString(b, sy.name)
	return appendTopFields(b, sy)
}

// appendTopFields appends the best bid and ask, "b","B","a","A", and the
// closing brace.
func appendTopFields(b []byte, sy *symbolState) []byte {
	bid, ask := sy.top()
	b = appendPriceField(b, "b", sy.pxE8(bid.px))
	b = appendPriceField(b, "B", bid.qty)
	b = appendPriceField(b, "a", sy.pxE8(ask.px))
	b = appendPriceField(b, "A", ask.qty)
	return append(b, '}')
}

// appendLevels appends [["px","qty"],...].
func appendLevels(b []byte, sy *symbolState, lv []level) []byte {
	b = append(b, '[')
	for k, l := range lv {
		if k > 0 {
			b = append(b, ',')
		}
		b = append(b, `["`...)
		b = appendE8(b, sy.pxE8(l.px))
		b = append(b, `","`...)
		b = appendE8(b, l.qty)
		b = append(b, `"]`...)
	}
	return append(b, ']')
}

// appendBook appends ,"<bidKey>":[…],"<askKey>":[…]} : the two sides and
// the closing brace.
func appendBook(b []byte, sy *symbolState, bidKey, askKey string, bids, asks []level) []byte {
	b = append(b, `,"`...)
	b = append(b, bidKey...)
	b = append(b, `":`...)
	b = appendLevels(b, sy, bids)
	b = append(b, `,"`...)
	b = append(b, askKey...)
	b = append(b, `":`...)
	b = appendLevels(b, sy, asks)
	return append(b, '}')
}

// appendPartialDepth: Spot's partial depth and /api/v3/depth,
// {"lastUpdateId","bids","asks"} with the top n levels of each side.
func appendPartialDepth(b []byte, sy *symbolState, n int) []byte {
	bids, asks := sy.snapshot(n)
	b = append(b, `{"lastUpdateId":`...)
	b = appendInt(b, sy.updateID)
	return appendBook(b, sy, "bids", "asks", bids, asks)
}

// appendFuturesDepthSnapshot: /fapi/v1/depth,
// {"lastUpdateId","E","T","bids","asks"}; E is always in milliseconds.
func appendFuturesDepthSnapshot(b []byte, sy *symbolState, limit int, now int64) []byte {
	bids, asks := sy.snapshot(limit)
	b = append(b, `{"lastUpdateId":`...)
	b = appendInt(b, sy.updateID)
	b = append(b, `,"E":`...)
	b = appendTime(b, now, false)
	b = append(b, `,"T":`...)
	b = appendTime(b, sy.bookTime, false)
	return appendBook(b, sy, "bids", "asks", bids, asks)
}

// sortedLevels turns a diff side into levels, best price first.
func sortedLevels(m map[int64]int64, bid bool) []level {
	lv := make([]level, 0, len(m))
	for px, q := range m {
		lv = append(lv, level{px, q})
	}
	slices.SortFunc(lv, func(x, y level) int {
		if bid {
			return cmp.Compare(y.px, x.px)
		}
		return cmp.Compare(x.px, y.px)
	})
	return lv
}

// appendDiffDepth: Spot's {"e":"depthUpdate","E","s","U","u","b","a"}
// with the levels changed in d. Spot's partial depth is
// [appendPartialDepth], so levels is always 0 here.
func appendDiffDepth(b []byte, sy *symbolState, d *bookDiff, _ int, now int64, micro bool) []byte {
	b = appendHead(b, "depthUpdate", sy, now, micro)
	b = append(b, `,"U":`...)
	b = appendInt(b, d.first)
	b = append(b, `,"u":`...)
	b = appendInt(b, d.last)
	return appendBook(b, sy, "b", "a", sortedLevels(d.bids, true), sortedLevels(d.asks, false))
}

// appendFuturesDepth: USD-M's {"e":"depthUpdate","E","T","s","U","u","pu",
// "b","a"}. With levels 0 it is a diff (the levels changed in d);
// otherwise partial depth: the top levels of each side, with d's
// update-id range.
func appendFuturesDepth(b []byte, sy *symbolState, d *bookDiff, levels int, now int64, micro bool) []byte {
	b = append(b, `{"e":"depthUpdate","E":`...)
	b = appendTime(b, now, micro)
	b = append(b, `,"T":`...)
	b = appendTime(b, sy.bookTime, micro)
	b = append(b, `,"s":`...)
	b = appendJSONString(b, sy.name)
	b = append(b, `,"U":`...)
	b = appendInt(b, d.first)
	b = append(b, `,"u":`...)
	b = appendInt(b, d.last)
	b = append(b, `,"pu":`...)
	b = appendInt(b, d.prev)
	var bids, asks []level
	if levels > 0 {
		bids, asks = sy.snapshot(levels)
	} else {
		bids, asks = sortedLevels(d.bids, true), sortedLevels(d.asks, false)
	}
	return appendBook(b, sy, "b", "a", bids, asks)
}

// appendMiniTicker: {"e":"24hrMiniTicker","E","s","c","o","h","l","v","q"},
// the same on both products.
func appendMiniTicker(b []byte, sy *symbolState, now int64, micro bool) []byte {
	st := &sy.stats
	b = appendHead(b, "24hrMiniTicker", sy, now, micro)
	b = appendPriceField(b, "c", st.last)
	b = appendPriceField(b, "o", st.open)
	b = appendPriceField(b, "h", st.high)
	b = appendPriceField(b, "l", st.low)
	b = appendFloatField(b, "v", st.volume)
	b = appendFloatField(b, "q", st.quoteVolume)
	return append(b, '}')
}

// appendTicker: Spot's 24hrTicker, {"e","E","s","p","P","w","x","c","Q",
// "b","B","a","A","o","h","l","v","q","O","C","F","L","n"}.
func appendTicker(b []byte, sy *symbolState, now int64, micro bool) []byte {
	st := &sy.stats
	bid, ask := sy.top()
	b = appendTickerChange(b, sy, now, micro)
	b = appendPriceField(b, "x", st.open)
	b = appendPriceField(b, "c", st.last)
	b = appendPriceField(b, "Q", st.lastQty)
	b = appendPriceField(b, "b", sy.pxE8(bid.px))
	b = appendPriceField(b, "B", bid.qty)
	b = appendPriceField(b, "a", sy.pxE8(ask.px))
	b = appendPriceField(b, "A", ask.qty)
	return appendTickerTail(b, sy, now, micro)
}

// appendFuturesTicker: USD-M's 24hrTicker, {"e","E","s","p","P","w","c",
// "Q","o","h","l","v","q","O","C","F","L","n"}: no x, b, B, a or A.
func appendFuturesTicker(b []byte, sy *symbolState, now int64, micro bool) []byte {
	st := &sy.stats
	b = appendTickerChange(b, sy, now, micro)
	b = appendPriceField(b, "c", st.last)
	b = appendPriceField(b, "Q", st.lastQty)
	return appendTickerTail(b, sy, now, micro)
}

// appendTickerChange appends a 24hrTicker's head and "p","P","w".
func appendTickerChange(b []byte, sy *symbolState, now int64, micro bool) []byte {
	change, pct, wavg := sy.stats.derived()
	b = appendHead(b, "24hrTicker", sy, now, micro)
	b = appendPriceField(b, "p", change)
	b = append(b, `,"P":"`...)
	b = strconv.AppendFloat(b, pct, 'f', 3, 64)
	b = append(b, '"')
	return appendFloatField(b, "w", wavg)
}

// appendTickerTail appends a 24hrTicker's "o","h","l","v","q","O","C",
// "F","L","n" and the closing brace.
func appendTickerTail(b []byte, sy *symbolState, now int64, micro bool) []byte {
	st := &sy.stats
	b = appendPriceField(b, "o", st.open)
	b = appendPriceField(b, "h", st.high)
	b = appendPriceField(b, "l", st.low)
	b = appendFloatField(b, "v", st.volume)
	b = appendFloatField(b, "q", st.quoteVolume)
	b = append(b, `,"O":`...)
	b = appendTime(b, now-microsPerDay, micro)
	b = append(b, `,"C":`...)
	b = appendTime(b, now, micro)
	b = append(b, `,"F":`...)
	b = appendInt(b, st.firstID)
	b = append(b, `,"L":`...)
	b = appendInt(b, sy.nextTrade-1)
	b = append(b, `,"n":`...)
	b = appendInt(b, st.count)
	return append(b, '}')
}

// appendAvgPrice: Spot's {"e":"avgPrice","E","s","i","w","T"}.
func appendAvgPrice(b []byte, sy *symbolState, now int64, micro bool) []byte {
	b = appendHead(b, "avgPrice", sy, now, micro)
	b = append(b, `,"i":"5m"`...)
	b = appendPriceField(b, "w", int64(sy.avg))
	b = append(b, `,"T":`...)
	b = appendTime(b, sy.lastTime, micro)
	return append(b, '}')
}

// appendMarkPrice: USD-M's {"e":"markPriceUpdate","E","s","p","i","P","r",
// "T"}. P (estimated settle price) equals the index; T is the next
// funding time.
func appendMarkPrice(b []byte, sy *symbolState, now int64, micro bool) []byte {
	p := sy.perp
	b = appendHead(b, "markPriceUpdate", sy, now, micro)
	b = appendPriceField(b, "p", p.mark())
	b = appendPriceField(b, "i", p.index)
	b = appendPriceField(b, "P", p.index)
	b = appendFloatField(b, "r", p.fundingRate())
	b = append(b, `,"T":`...)
	b = appendTime(b, nextFunding(now), micro)
	return append(b, '}')
}

// appendForceOrder: USD-M's {"e":"forceOrder","E",
// "o":{"s","S","o","f","q","p","ap","X","l","z","T"}}.
func appendForceOrder(b []byte, sy *symbolState, l *liquidation, now int64, micro bool) []byte {
	b = append(b, `{"e":"forceOrder","E":`...)
	b = appendTime(b, now, micro)
	b = append(b, `,"o":{"s":`...)
	b = appendJSONString(b, sy.name)
	if l.sell {
		b = append(b, `,"S":"SELL"`...)
	} else {
		b = append(b, `,"S":"BUY"`...)
	}
	b = append(b, `,"o":"LIMIT","f":"IOC"`...)
	b = appendPriceField(b, "q", l.qty)
	b = appendPriceField(b, "p", l.px)
	b = appendPriceField(b, "ap", l.avg)
	b = append(b, `,"X":"FILLED"`...)
	b = appendPriceField(b, "l", l.qty)
	b = appendPriceField(b, "z", l.qty)
	b = append(b, `,"T":`...)
	b = appendTime(b, l.time, micro)
	return append(b, `}}`...)
}

// appendServerShutdown appends the serverShutdown event.
func appendServerShutdown(b []byte, now int64, micro bool) []byte {
	b = append(b, `{"e":"serverShutdown","E":`...)
	b = appendTime(b, now, micro)
	return append(b, '}')
}
