package binancesim

import (
	"cmp"
	"slices"
	"strconv"

	"github.com/gobwas/ws"
)

// event is one payload of one stream, encoded at most once per variant
// (raw or combined, milliseconds or microseconds) and then shared, read
// only, by every connection subscribed to the stream.
type event struct {
	stream string
	body   func(b []byte, micro bool) []byte
	raw    [2][]byte // payload by micro
	frames [4][]byte // compiled text frame by combined<<1 | micro
}

func b2i(v bool) int {
	if v {
		return 1
	}
	return 0
}

// frame returns the compiled WebSocket frame for a connection's combined
// property and time unit. It must be called while the market lock is held,
// because body reads market state.
func (e *event) frame(combined, micro bool) []byte {
	i := b2i(combined)<<1 | b2i(micro)
	if f := e.frames[i]; f != nil {
		return f
	}
	m := b2i(micro)
	if e.raw[m] == nil {
		e.raw[m] = e.body(nil, micro)
	}
	p := e.raw[m]
	if combined {
		p = wrapCombined(e.stream, p)
	}
	e.frames[i] = compileText(p)
	return e.frames[i]
}

// wrapCombined returns {"stream":<name>,"data":<payload>}.
func wrapCombined(stream string, payload []byte) []byte {
	b := make([]byte, 0, len(payload)+len(stream)+24)
	b = append(b, `{"stream":`...)
	b = appendJSONString(b, stream)
	b = append(b, `,"data":`...)
	b = append(b, payload...)
	return append(b, '}')
}

// compileText builds an unmasked, final text frame in one slice, so it is
// written with a single Write.
func compileText(p []byte) []byte {
	return ws.MustCompileFrame(ws.NewTextFrame(p))
}

// dispatch sends e to every connection subscribed to sub, except those
// that subscribed on a futures route that does not serve the stream: they
// hold it silently (spec §2).
func dispatch(sub *streamSubs, e *event) {
	for c := range sub.conns {
		if c.route != sub.spec.route {
			continue
		}
		c.send(e.frame(c.combined.Load(), c.micro))
	}
}

// emitSymbol generates the events of one symbol's subscribed stream for
// this tick. slow is true on "1000ms" ticks; now is in µs.
func (m *market) emitSymbol(sy *symbolState, sub *streamSubs, now int64) {
	if m.futures {
		m.emitFuturesSymbol(sy, sub, now)
		return
	}
	sp := sub.spec
	slow := m.ticks%slowEvery == 0
	send := func(body func([]byte, bool) []byte) {
		dispatch(sub, &event{stream: sp.name, body: body})
	}
	switch sp.kind {
	case kindTrade:
		for _, tr := range sy.trades {
			send(func(b []byte, micro bool) []byte { return appendTrade(b, sy, tr, now, micro) })
		}
	case kindAggTrade:
		for _, ag := range sy.aggs {
			send(func(b []byte, micro bool) []byte { return appendAggTrade(b, sy, ag, now, micro) })
		}
	case kindBookTicker:
		if sy.topChanged {
			send(func(b []byte, _ bool) []byte { return appendBookTicker(b, sy) })
		}
	case kindPartialDepth:
		if sp.fast || slow {
			send(func(b []byte, _ bool) []byte { return appendPartialDepth(b, sy, sp.levels) })
		}
	case kindDiffDepth:
		d := &sy.tick
		if !sp.fast {
			if !slow {
				return
			}
			d = &sy.window
		}
		if d.first != 0 {
			send(func(b []byte, micro bool) []byte { return appendDiffDepth(b, sy, d, now, micro) })
		}
	case kindMiniTicker:
		if slow {
			send(func(b []byte, micro bool) []byte { return appendMiniTicker(b, sy, now, micro) })
		}
	case kindTicker:
		if slow {
			send(func(b []byte, micro bool) []byte { return appendTicker(b, sy, now, micro) })
		}
	case kindAvgPrice:
		if slow {
			send(func(b []byte, micro bool) []byte { return appendAvgPrice(b, sy, now, micro) })
		}
	case kindKline:
		every := int64(klineSlow)
		if sp.interval == "1s" {
			every = slowEvery
		}
		if m.ticks%every != 0 {
			return
		}
		emitKline(sy, sp, now, send)
	}
}

// emitKline sends the kline stream's update: first the final (x=true)
// update of a bar that ended, then the current bar.
func emitKline(sy *symbolState, sp streamSpec, now int64, send func(func([]byte, bool) []byte)) {
	c := sy.candleFor(sp, now)
	c.roll(now)
	if done := c.closed; done != nil {
		c.closed = nil
		send(func(b []byte, micro bool) []byte { return appendKline(b, sy, sp.interval, done, true, now, micro) })
	}
	send(func(b []byte, micro bool) []byte { return appendKline(b, sy, sp.interval, &c.cur, false, now, micro) })
}

// emitMarketWide generates !miniTicker@arr: the symbols that traded in the
// last "1000ms" window.
func (m *market) emitMarketWide(sub *streamSubs, now int64) {
	if m.futures {
		m.emitFuturesMarketWide(sub, now)
		return
	}
	if sub.spec.kind != kindAllMiniTickers || m.ticks%slowEvery != 0 {
		return
	}
	var changed []*symbolState
	for _, sy := range m.syms {
		if sy.tradedWindow {
			changed = append(changed, sy)
		}
	}
	if len(changed) == 0 {
		return
	}
	dispatch(sub, &event{stream: sub.spec.name, body: func(b []byte, micro bool) []byte {
		b = append(b, '[')
		for k, sy := range changed {
			if k > 0 {
				b = append(b, ',')
			}
			b = appendMiniTicker(b, sy, now, micro)
		}
		return append(b, ']')
	}})
}

// Encoding helpers. Field order follows the samples of spec §1.8.

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

func appendHead(b []byte, typ string, sy *symbolState, now int64, micro bool) []byte {
	b = append(b, `{"e":"`...)
	b = append(b, typ...)
	b = append(b, `","E":`...)
	b = appendTime(b, now, micro)
	b = append(b, `,"s":`...)
	return appendJSONString(b, sy.name)
}

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

func appendAggTrade(b []byte, sy *symbolState, ag aggTrade, now int64, micro bool) []byte {
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
	return append(b, `,"M":true}`...)
}

func appendBookTicker(b []byte, sy *symbolState) []byte {
	bid, ask := sy.top()
	b = append(b, `{"u":`...)
	b = appendInt(b, sy.updateID)
	b = append(b, `,"s":`...)
	b = appendJSONString(b, sy.name)
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

func appendPartialDepth(b []byte, sy *symbolState, n int) []byte {
	bids, asks := sy.snapshot(n)
	b = append(b, `{"lastUpdateId":`...)
	b = appendInt(b, sy.updateID)
	b = append(b, `,"bids":`...)
	b = appendLevels(b, sy, bids)
	b = append(b, `,"asks":`...)
	b = appendLevels(b, sy, asks)
	return append(b, '}')
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

func appendDiffDepth(b []byte, sy *symbolState, d *bookDiff, now int64, micro bool) []byte {
	b = appendHead(b, "depthUpdate", sy, now, micro)
	b = append(b, `,"U":`...)
	b = appendInt(b, d.first)
	b = append(b, `,"u":`...)
	b = appendInt(b, d.last)
	b = append(b, `,"b":`...)
	b = appendLevels(b, sy, sortedLevels(d.bids, true))
	b = append(b, `,"a":`...)
	b = appendLevels(b, sy, sortedLevels(d.asks, false))
	return append(b, '}')
}

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

func appendTicker(b []byte, sy *symbolState, now int64, micro bool) []byte {
	st := &sy.stats
	bid, ask := sy.top()
	change, pct, wavg := st.derived()
	b = appendHead(b, "24hrTicker", sy, now, micro)
	b = appendPriceField(b, "p", change)
	b = append(b, `,"P":"`...)
	b = strconv.AppendFloat(b, pct, 'f', 3, 64)
	b = append(b, '"')
	b = appendFloatField(b, "w", wavg)
	b = appendPriceField(b, "x", st.open)
	b = appendPriceField(b, "c", st.last)
	b = appendPriceField(b, "Q", st.lastQty)
	b = appendPriceField(b, "b", sy.pxE8(bid.px))
	b = appendPriceField(b, "B", bid.qty)
	b = appendPriceField(b, "a", sy.pxE8(ask.px))
	b = appendPriceField(b, "A", ask.qty)
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

func appendAvgPrice(b []byte, sy *symbolState, now int64, micro bool) []byte {
	b = appendHead(b, "avgPrice", sy, now, micro)
	b = append(b, `,"i":"5m"`...)
	b = appendPriceField(b, "w", int64(sy.avg))
	b = append(b, `,"T":`...)
	b = appendTime(b, sy.lastTime, micro)
	return append(b, '}')
}

// appendServerShutdown appends the serverShutdown event (spec §1.3).
func appendServerShutdown(b []byte, now int64, micro bool) []byte {
	b = append(b, `{"e":"serverShutdown","E":`...)
	b = appendTime(b, now, micro)
	return append(b, '}')
}
