package binancesim

import (
	"cmp"

	"github.com/gobwas/ws"
)

// event is one payload of one stream, encoded at most once per variant
// (raw or combined, milliseconds or microseconds) and then shared, read
// only, by every connection subscribed to the stream.
type event struct {
	stream string
	body   payload
	raw    [2][]byte // payload by micro
	frames [4][]byte // compiled text frame by combined<<1 | micro
}

// payload appends an event's JSON payload, with times in microseconds if
// micro.
type payload func(b []byte, micro bool) []byte

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
// hold it silently.
func dispatch(sub *streamSubs, e *event) {
	for c := range sub.conns {
		if c.route != sub.spec.route {
			continue
		}
		c.send(e.frame(c.combined.Load(), c.micro))
	}
}

// emit pushes the events of one subscribed stream that are due on this
// tick, by the product's rule for its kind: the events of symbol sy, or of
// the whole market when sy is nil. A kind without a rule stays silent. now
// is in µs.
func (m *market) emit(sy *symbolState, sub *streamSubs, now int64) {
	sp := sub.spec
	rule, ok := m.events[sp.kind]
	if !ok || !m.due(cmp.Or(sp.period, rule.period)) {
		return
	}
	rule.emit(m, sy, sp, now, func(body payload) {
		dispatch(sub, &event{stream: sp.name, body: body})
	})
}

// An emitter pushes, through send, the events of stream sp that are due
// on this tick: those of symbol sy, or of the market for a market-wide
// stream (sy nil). The rule's period has been checked.
type emitter func(m *market, sy *symbolState, sp streamSpec, now int64, send func(payload))

// symbolPayload appends one event about a symbol at time now (µs).
type symbolPayload func(b []byte, sy *symbolState, now int64, micro bool) []byte

// depthPayload appends one depth event of a symbol: the book changes in d,
// or with levels > 0 the top levels of the book.
type depthPayload func(b []byte, sy *symbolState, d *bookDiff, levels int, now int64, micro bool) []byte

// every pushes one event each period.
func every(enc symbolPayload) emitter {
	return func(_ *market, sy *symbolState, _ streamSpec, now int64, send func(payload)) {
		send(func(b []byte, micro bool) []byte { return enc(b, sy, now, micro) })
	}
}

// onTopChange pushes one event when the top of the book changed this
// tick.
func onTopChange(enc symbolPayload) emitter {
	return func(_ *market, sy *symbolState, _ streamSpec, now int64, send func(payload)) {
		if sy.topChanged {
			send(func(b []byte, micro bool) []byte { return enc(b, sy, now, micro) })
		}
	}
}

// onBookChange pushes one event when the book changed within the stream's
// period.
func onBookChange(enc depthPayload) emitter {
	return func(_ *market, sy *symbolState, sp streamSpec, now int64, send func(payload)) {
		if d := sy.depthWindow(sp.period); d.first != 0 && !d.skip {
			send(func(b []byte, micro bool) []byte { return enc(b, sy, d, sp.levels, now, micro) })
		}
	}
}

// snapshots pushes the top levels of the book each period, changed or not
// (Spot's partial depth).
func snapshots(_ *market, sy *symbolState, sp streamSpec, _ int64, send func(payload)) {
	send(func(b []byte, _ bool) []byte { return appendPartialDepth(b, sy, sp.levels) })
}

// eachTrade pushes one event per trade of this tick.
func eachTrade(_ *market, sy *symbolState, _ streamSpec, now int64, send func(payload)) {
	for _, tr := range sy.trades {
		send(func(b []byte, micro bool) []byte { return appendTrade(b, sy, tr, now, micro) })
	}
}

// eachAggTrade pushes one event per aggregate trade of this tick.
func eachAggTrade(enc func(b []byte, sy *symbolState, ag aggTrade, now int64, micro bool) []byte) emitter {
	return func(_ *market, sy *symbolState, _ streamSpec, now int64, send func(payload)) {
		for _, ag := range sy.aggs {
			send(func(b []byte, micro bool) []byte { return enc(b, sy, ag, now, micro) })
		}
	}
}

// onLiquidation pushes the symbol's latest liquidation of the period, if
// any.
func onLiquidation(_ *market, sy *symbolState, _ streamSpec, now int64, send func(payload)) {
	if l := sy.perp.liq; l != nil {
		send(func(b []byte, micro bool) []byte { return appendForceOrder(b, sy, l, now, micro) })
	}
}

// emitKline sends the kline stream's update: first the final (x=true)
// update of a bar that ended, then the current bar.
func emitKline(m *market, sy *symbolState, sp streamSpec, now int64, send func(payload)) {
	c := sy.candleFor(sp, now, m.seed)
	c.roll(now)
	if done := c.closed; done != nil {
		c.closed = nil
		send(func(b []byte, micro bool) []byte { return appendKline(b, sy, sp.interval, done, true, now, micro) })
	}
	send(func(b []byte, micro bool) []byte { return appendKline(b, sy, sp.interval, &c.cur, false, now, micro) })
}

// perSymbol runs a symbol's emitter for every symbol of a market-wide
// stream: one single-symbol event each, as !bookTicker and
// !forceOrder@arr push them.
func perSymbol(e emitter) emitter {
	return func(m *market, _ *symbolState, sp streamSpec, now int64, send func(payload)) {
		for _, sy := range m.syms {
			e(m, sy, sp, now, send)
		}
	}
}

// arrayOf pushes one JSON array event with an element per symbol that
// syms selects; nothing when it selects none.
func arrayOf(syms func(*market) []*symbolState, elem symbolPayload) emitter {
	return func(m *market, _ *symbolState, _ streamSpec, now int64, send func(payload)) {
		sel := syms(m)
		if len(sel) == 0 {
			return
		}
		send(func(b []byte, micro bool) []byte {
			b = append(b, '[')
			for k, sy := range sel {
				if k > 0 {
					b = append(b, ',')
				}
				b = elem(b, sy, now, micro)
			}
			return append(b, ']')
		})
	}
}

// allSymbols selects every symbol.
func allSymbols(m *market) []*symbolState { return m.syms }

// tradedSymbols selects the symbols that traded in the current "1000ms"
// window.
func tradedSymbols(m *market) []*symbolState {
	var out []*symbolState
	for _, sy := range m.syms {
		if sy.tradedWindow {
			out = append(out, sy)
		}
	}
	return out
}
