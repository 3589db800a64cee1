package binancesim

import "strconv"

// USD-M futures events. Field order follows spec §2 where it gives a
// sample or a field list, and the USD-M doc pages otherwise (aggTrade
// without "M", the 24hrTicker without x/b/B/a/A).

// emitFuturesSymbol generates the events of one symbol's subscribed
// futures stream for this tick; now is in µs.
func (m *market) emitFuturesSymbol(sy *symbolState, sub *streamSubs, now int64) {
	sp := sub.spec
	send := func(body func([]byte, bool) []byte) {
		dispatch(sub, &event{stream: sp.name, body: body})
	}
	switch sp.kind {
	case kindAggTrade:
		for _, ag := range sy.aggs {
			send(func(b []byte, micro bool) []byte { return appendFuturesAggTrade(b, sy, ag, now, micro) })
		}
	case kindBookTicker:
		if sy.topChanged {
			send(func(b []byte, micro bool) []byte { return appendFuturesBookTicker(b, sy, now, micro) })
		}
	case kindDiffDepth, kindPartialDepth:
		if !m.due(sp.period) {
			return
		}
		d, levels := sy.depthWindow(sp.period), 0
		if sp.kind == kindPartialDepth {
			levels = sp.levels
		}
		if d.first != 0 {
			send(func(b []byte, micro bool) []byte { return appendFuturesDepth(b, sy, d, levels, now, micro) })
		}
	case kindMarkPrice:
		if m.due(sp.period) {
			send(func(b []byte, micro bool) []byte { return appendMarkPrice(b, sy, now, micro) })
		}
	case kindForceOrder:
		if l := sy.perp.liq; l != nil && m.due(periodForceOrder) {
			send(func(b []byte, micro bool) []byte { return appendForceOrder(b, sy, l, now, micro) })
		}
	case kindKline:
		if m.due(periodKline) {
			emitKline(sy, sp, now, send)
		}
	case kindMiniTicker:
		if m.due(periodTicker) {
			send(func(b []byte, micro bool) []byte { return appendMiniTicker(b, sy, now, micro) })
		}
	case kindTicker:
		if m.due(periodTicker) {
			send(func(b []byte, micro bool) []byte { return appendFuturesTicker(b, sy, now, micro) })
		}
	}
}

// emitFuturesMarketWide generates the futures ! streams. !bookTicker and
// !forceOrder@arr push one single-symbol event per symbol, as on Binance;
// the @arr streams of markPrice, miniTicker and ticker push arrays.
func (m *market) emitFuturesMarketWide(sub *streamSubs, now int64) {
	sp := sub.spec
	one := func(body func([]byte, bool) []byte) {
		dispatch(sub, &event{stream: sp.name, body: body})
	}
	switch sp.kind {
	case kindAllBookTickers:
		for _, sy := range m.syms {
			if sy.topChanged {
				one(func(b []byte, micro bool) []byte { return appendFuturesBookTicker(b, sy, now, micro) })
			}
		}
	case kindAllForceOrders:
		if !m.due(periodForceOrder) {
			return
		}
		for _, sy := range m.syms {
			if l := sy.perp.liq; l != nil {
				one(func(b []byte, micro bool) []byte { return appendForceOrder(b, sy, l, now, micro) })
			}
		}
	case kindAllMarkPrices:
		if m.due(sp.period) {
			m.emitArray(sub, m.syms, func(b []byte, sy *symbolState, micro bool) []byte { return appendMarkPrice(b, sy, now, micro) })
		}
	case kindAllMiniTickers:
		if m.due(periodArr) {
			m.emitArray(sub, m.tradedSymbols(), func(b []byte, sy *symbolState, micro bool) []byte { return appendMiniTicker(b, sy, now, micro) })
		}
	case kindAllTickers:
		if m.due(periodArr) {
			m.emitArray(sub, m.tradedSymbols(), func(b []byte, sy *symbolState, micro bool) []byte { return appendFuturesTicker(b, sy, now, micro) })
		}
	}
}

// tradedSymbols lists the symbols that traded in the current "1000ms"
// window.
func (m *market) tradedSymbols() []*symbolState {
	var out []*symbolState
	for _, sy := range m.syms {
		if sy.tradedWindow {
			out = append(out, sy)
		}
	}
	return out
}

// emitArray pushes one JSON array event with one element per symbol;
// nothing when syms is empty.
func (m *market) emitArray(sub *streamSubs, syms []*symbolState, elem func([]byte, *symbolState, bool) []byte) {
	if len(syms) == 0 {
		return
	}
	dispatch(sub, &event{stream: sub.spec.name, body: func(b []byte, micro bool) []byte {
		b = append(b, '[')
		for k, sy := range syms {
			if k > 0 {
				b = append(b, ',')
			}
			b = elem(b, sy, micro)
		}
		return append(b, ']')
	}})
}

// appendFuturesAggTrade: {"e","E","s","a","p","q","f","l","T","m"}.
func appendFuturesAggTrade(b []byte, sy *symbolState, ag aggTrade, now int64, micro bool) []byte {
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
	b = appendBool(b, ag.buyerMaker)
	return append(b, '}')
}

// appendFuturesBookTicker: {"e","u","E","T","s","b","B","a","A"}.
func appendFuturesBookTicker(b []byte, sy *symbolState, now int64, micro bool) []byte {
	bid, ask := sy.top()
	b = append(b, `{"e":"bookTicker","u":`...)
	b = appendInt(b, sy.updateID)
	b = append(b, `,"E":`...)
	b = appendTime(b, now, micro)
	b = append(b, `,"T":`...)
	b = appendTime(b, sy.bookTime, micro)
	b = append(b, `,"s":`...)
	b = appendJSONString(b, sy.name)
	b = appendPriceField(b, "b", sy.pxE8(bid.px))
	b = appendPriceField(b, "B", bid.qty)
	b = appendPriceField(b, "a", sy.pxE8(ask.px))
	b = appendPriceField(b, "A", ask.qty)
	return append(b, '}')
}

// appendFuturesDepth: {"e":"depthUpdate","E","T","s","U","u","pu","b","a"}.
// With levels 0 it is a diff (the levels changed in d); otherwise partial
// depth: the top levels of each side, with d's update-id range.
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
	b = append(b, `,"b":`...)
	b = appendLevels(b, sy, bids)
	b = append(b, `,"a":`...)
	b = appendLevels(b, sy, asks)
	return append(b, '}')
}

// appendMarkPrice: {"e":"markPriceUpdate","E","s","p","i","P","r","T"}.
// P (estimated settle price) equals the index; T is the next funding time.
func appendMarkPrice(b []byte, sy *symbolState, now int64, micro bool) []byte {
	p := &sy.perp
	b = appendHead(b, "markPriceUpdate", sy, now, micro)
	b = appendPriceField(b, "p", p.mark())
	b = appendPriceField(b, "i", p.index)
	b = appendPriceField(b, "P", p.index)
	b = appendFloatField(b, "r", p.fundingRate())
	b = append(b, `,"T":`...)
	b = appendTime(b, nextFunding(now), micro)
	return append(b, '}')
}

// appendForceOrder: {"e":"forceOrder","E",
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

// appendFuturesTicker: the USD-M 24hrTicker,
// {"e","E","s","p","P","w","c","Q","o","h","l","v","q","O","C","F","L","n"}.
func appendFuturesTicker(b []byte, sy *symbolState, now int64, micro bool) []byte {
	st := &sy.stats
	change, pct, wavg := st.derived()
	b = appendHead(b, "24hrTicker", sy, now, micro)
	b = appendPriceField(b, "p", change)
	b = append(b, `,"P":"`...)
	b = strconv.AppendFloat(b, pct, 'f', 3, 64)
	b = append(b, '"')
	b = appendFloatField(b, "w", wavg)
	b = appendPriceField(b, "c", st.last)
	b = appendPriceField(b, "Q", st.lastQty)
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
