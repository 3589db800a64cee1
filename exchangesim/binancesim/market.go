package binancesim

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
)

// Market model. Every symbol has one order book, one trade-id sequence, one
// aggTrade-id sequence and one book update-id sequence. They advance on
// every tick whether or not anybody is subscribed, so every connection sees
// the same ids. Prices and quantities are int64 fixed point with 8 decimals
// ("e8"); book prices are kept in ticks of the symbol's tick size.

const (
	e8            = 100_000_000
	bookDepth     = 100 // price levels kept per side
	nominalTickMs = 100 // what one tick stands for; update periods are counted in it
	maxAggLevels  = 3   // price levels one taker order may walk
	microsPerDay  = 86_400_000_000
	microsPer5Min = 300_000_000
)

// quoteAssets are recognised quote suffixes, longest first so FDUSD wins
// over USD-like shorter ones.
var quoteAssets = []string{"FDUSD", "USDT", "BUSD", "USDC", "BTC", "ETH", "BNB", "EUR"}

// splitSymbol derives base and quote assets from a symbol by its quote
// suffix.
func splitSymbol(sym string) (base, quote string, ok bool) {
	for _, q := range quoteAssets {
		if b, found := strings.CutSuffix(sym, q); found && b != "" {
			return b, q, true
		}
	}
	return "", "", false
}

// basePrices seeds well-known symbols near real prices; others get a price
// derived from the random source.
var basePrices = map[string]float64{
	"BTCUSDT": 65000, "ETHUSDT": 3200, "BNBUSDT": 600, "SOLUSDT": 150, "XRPUSDT": 0.6,
	"ETHBTC": 0.05, "BNBBTC": 0.009, "BNBETH": 0.18, "DOGEUSDT": 0.15, "ADAUSDT": 0.45,
	"BTCFDUSD": 65000, "BTCUSDC": 65000, "BTCEUR": 60000, "ETHUSDC": 3200,
}

// level is one price level: px in ticks, qty in e8.
type level struct{ px, qty int64 }

// trade is one generated trade.
type trade struct {
	id, px, qty, time int64 // px in e8
	buyerMaker        bool
}

// aggTrade groups the trades of one taker order at one price.
type aggTrade struct {
	id, px, qty, first, last, time int64
	buyerMaker                     bool
}

// bookDiff collects the levels changed within a period and the update-id
// range that covers them.
type bookDiff struct {
	first, last int64           // update ids; first == 0 means empty
	prev        int64           // last of the previous non-empty period (USD-M's pu)
	skip        bool            // this period's event is withheld (InjectGap)
	bids, asks  map[int64]int64 // px ticks -> qty e8
}

func newBookDiff() bookDiff {
	return bookDiff{bids: map[int64]int64{}, asks: map[int64]int64{}}
}

func (d *bookDiff) add(bid bool, px, qty, id int64) {
	if d.first == 0 {
		d.first = id
	}
	d.last = id
	if bid {
		d.bids[px] = qty
	} else {
		d.asks[px] = qty
	}
}

func (d *bookDiff) reset() {
	if d.first != 0 {
		d.prev = d.last
	}
	d.first, d.last, d.skip = 0, 0, false
	clear(d.bids)
	clear(d.asks)
}

// stats24 is the rolling 24h ticker state. The simulator does not keep 24
// hours of history: it starts from synthetic values and accumulates.
type stats24 struct {
	open, high, low, last, lastQty int64 // e8
	volume, quoteVolume            float64
	firstID, count                 int64
}

// symbolState is the market of one symbol. It is guarded by market.mu.
type symbolState struct {
	index                    int // in market.syms
	name, lower, base, quote string
	tickE8, lotE8            int64 // price tick and quantity step, e8
	ref                      int64 // bids are <= ref, asks >= ref+1 (ticks)
	bids, asks               []level
	updateID                 int64 // last book update id
	nextTrade, nextAgg       int64

	// Produced by the current tick.
	trades     []trade
	aggs       []aggTrade
	tick       bookDiff
	topChanged bool
	// gap holds, per depth window (the tick's first, then windows'),
	// whether InjectGap asked to withhold its next event.
	gap []bool

	// The book changes of the current period of each of the product's
	// depth windows, and whether the symbol traded in the current
	// "1000ms" window.
	windows      []periodDiff
	tradedWindow bool

	now      int64      // time of the current step, µs
	bookTime int64      // time of the last book change, µs (USD-M's T)
	perp     *perpState // a perpetual contract's state (perpetual.go); nil on Spot

	stats     stats24
	avg       float64 // 5-minute average price, e8
	lastTime  int64   // last trade time, µs
	candles   map[string]*candle
	recent    []trade  // the last trades, oldest first, at most 2*maxRecentTrades
	candleKey []string // sorted keys of candles, for a stable order
}

// periodDiff is the book changes of the current period of a depth
// window.
type periodDiff struct {
	period int64 // ms
	diff   bookDiff
}

// market holds every symbol and the random source; mu guards all of it.
type market struct {
	mu    sync.Mutex
	rng   *rand.Rand
	syms  []*symbolState
	bySym map[string]*symbolState // by lower-case symbol
	ticks int64
	seed  int64   // for the synthetic kline history
	alpha float64 // per-tick weight of the 5-minute average

	// From the product: the event rules, the depth windows and whether
	// symbols are perpetual contracts.
	events    map[streamKind]eventRule
	windows   []int64
	perpetual bool
}

func newMarket(symbols []string, seed int64, tickMicros int64, nowMicros int64, prod *product) *market {
	m := &market{
		rng:       rand.New(rand.NewPCG(uint64(seed), uint64(seed)^0x9e3779b97f4a7c15)),
		bySym:     make(map[string]*symbolState, len(symbols)),
		alpha:     math.Min(1, float64(tickMicros)/microsPer5Min),
		events:    prod.events,
		windows:   prod.depthWindows,
		perpetual: prod.perpetual,
		seed:      seed,
	}
	for _, name := range symbols {
		sy := m.newSymbol(name, nowMicros)
		sy.index = len(m.syms)
		m.syms = append(m.syms, sy)
		m.bySym[sy.lower] = sy
	}
	return m
}

func pow10(n int) int64 {
	v := int64(1)
	for range n {
		v *= 10
	}
	return v
}

func (m *market) newSymbol(name string, now int64) *symbolState {
	r := m.rng
	base, quote, _ := splitSymbol(name)
	price, ok := basePrices[name]
	if !ok {
		price = math.Pow(10, r.Float64()*5-2) // 0.01 .. 1000
	}
	mag := int(math.Floor(math.Log10(price)))
	// Five significant digits of price; at least 1e-8.
	tickE8 := pow10(max(0, mag-4+8))
	lotE8 := pow10(min(8, max(0, mag-1)))
	sy := &symbolState{
		name: name, lower: strings.ToLower(name), base: base, quote: quote,
		tickE8: tickE8, lotE8: lotE8,
		ref:       max(int64(price*e8)/tickE8, 4*bookDepth),
		updateID:  1_000_000_000 + r.Int64N(9_000_000_000),
		nextTrade: 100_000_000 + r.Int64N(900_000_000),
		nextAgg:   10_000_000 + r.Int64N(90_000_000),
		tick:      newBookDiff(),
		candles:   map[string]*candle{},
		lastTime:  now,
	}
	for off := range int64(bookDepth) {
		if off == 0 || r.Float64() < 0.8 {
			sy.bids = append(sy.bids, level{sy.ref - off, sy.randomQty(r)})
		}
		if off == 0 || r.Float64() < 0.8 {
			sy.asks = append(sy.asks, level{sy.ref + 1 + off, sy.randomQty(r)})
		}
	}
	last := sy.ref * tickE8
	open := int64(float64(last) * (1 + r.NormFloat64()*0.02))
	vol := float64(20_000+r.IntN(200_000)) * 10_000 / price // base units
	count := 50_000 + r.Int64N(500_000)
	sy.stats = stats24{
		open: open, last: last, lastQty: sy.lotE8,
		high:   int64(float64(max(open, last)) * (1 + r.Float64()*0.01)),
		low:    int64(float64(min(open, last)) * (1 - r.Float64()*0.01)),
		volume: vol, quoteVolume: vol * float64(open+last) / 2 / e8,
		firstID: sy.nextTrade - count, count: count,
	}
	sy.avg = float64(last)
	sy.tick.prev = sy.updateID
	for _, period := range m.windows {
		w := periodDiff{period: period, diff: newBookDiff()}
		w.diff.prev = sy.updateID
		sy.windows = append(sy.windows, w)
	}
	sy.bookTime = now
	if m.perpetual {
		sy.perp = newPerpState(sy, r)
	}
	return sy
}

// randomQty is a log-uniform notional between 500 and 100k quote units,
// in e8 base units rounded to the lot.
func (sy *symbolState) randomQty(r *rand.Rand) int64 {
	notional := 500 * math.Pow(200, r.Float64())
	return sy.toLots(notional)
}

// toLots converts a quote notional to a base quantity in whole lots, e8.
func (sy *symbolState) toLots(notional float64) int64 {
	price := float64(sy.ref*sy.tickE8) / e8
	q := int64(notional / price * e8)
	return max(sy.lotE8, q/sy.lotE8*sy.lotE8)
}

// pxE8 converts a book price in ticks to e8.
func (sy *symbolState) pxE8(px int64) int64 { return px * sy.tickE8 }

// side returns the book side and its ordering.
func (sy *symbolState) side(bid bool) *[]level {
	if bid {
		return &sy.bids
	}
	return &sy.asks
}

// setLevel sets one level (qty 0 removes it) and records the change under
// a new update id.
func (sy *symbolState) setLevel(bid bool, px, qty int64) {
	lv := sy.side(bid)
	i, found := slices.BinarySearchFunc(*lv, px, func(l level, px int64) int {
		if bid {
			return cmpInt(px, l.px) // descending
		}
		return cmpInt(l.px, px)
	})
	switch {
	case qty == 0 && !found:
		return
	case qty == 0:
		*lv = slices.Delete(*lv, i, i+1)
	case found:
		(*lv)[i].qty = qty
	default:
		*lv = slices.Insert(*lv, i, level{px, qty})
	}
	sy.updateID++
	sy.bookTime = sy.now
	sy.tick.add(bid, px, qty, sy.updateID)
	for i := range sy.windows {
		sy.windows[i].diff.add(bid, px, qty, sy.updateID)
	}
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// top returns the best bid and ask levels (zero when a side is empty).
func (sy *symbolState) top() (bid, ask level) {
	if len(sy.bids) > 0 {
		bid = sy.bids[0]
	}
	if len(sy.asks) > 0 {
		ask = sy.asks[0]
	}
	return bid, ask
}

// step advances the symbol by one tick: the reference price walks, the
// book is uncrossed, trimmed and updated, and taker orders trade.
func (sy *symbolState) step(r *rand.Rand, now int64, alpha float64) {
	sy.now = now
	sy.trades, sy.aggs = sy.trades[:0], sy.aggs[:0]
	sy.tick.reset()
	oldBid, oldAsk := sy.top()

	if r.Float64() < 0.5 {
		d := int64(1)
		if r.Float64() < 0.2 {
			d += r.Int64N(3)
		}
		if r.Float64() < 0.5 {
			d = -d
		}
		sy.ref = max(sy.ref+d, 2*bookDepth)
	}
	for len(sy.bids) > 0 && sy.bids[0].px > sy.ref {
		sy.setLevel(true, sy.bids[0].px, 0)
	}
	for len(sy.asks) > 0 && sy.asks[0].px <= sy.ref {
		sy.setLevel(false, sy.asks[0].px, 0)
	}
	for len(sy.bids) > 0 && sy.bids[len(sy.bids)-1].px <= sy.ref-bookDepth {
		sy.setLevel(true, sy.bids[len(sy.bids)-1].px, 0)
	}
	for len(sy.asks) > 0 && sy.asks[len(sy.asks)-1].px > sy.ref+bookDepth {
		sy.setLevel(false, sy.asks[len(sy.asks)-1].px, 0)
	}
	// Passive updates, biased to the top of the book; at least one per tick
	// so every tick has a diff.
	for n := 1 + r.IntN(4); n > 0; n-- {
		bid := r.IntN(2) == 0
		off := min(int64(r.ExpFloat64()*4), bookDepth-1)
		px := sy.ref - off
		if !bid {
			px = sy.ref + 1 + off
		}
		qty := sy.randomQty(r)
		if off > 0 && r.Float64() < 0.15 {
			qty = 0
		}
		sy.setLevel(bid, px, qty)
	}
	sy.ensureTop(r)
	sy.trade(r, now)
	sy.ensureTop(r)

	newBid, newAsk := sy.top()
	sy.topChanged = newBid != oldBid || newAsk != oldAsk
	if len(sy.trades) > 0 {
		sy.tradedWindow = true
	}
	sy.avg += (float64(sy.stats.last) - sy.avg) * alpha
	if sy.perp != nil {
		sy.perp.step(sy, r, now)
	}
}

// ensureTop keeps both sides within a few ticks of the reference price.
func (sy *symbolState) ensureTop(r *rand.Rand) {
	if len(sy.bids) == 0 || sy.bids[0].px < sy.ref-3 {
		sy.setLevel(true, sy.ref, sy.randomQty(r))
	}
	if len(sy.asks) == 0 || sy.asks[0].px > sy.ref+4 {
		sy.setLevel(false, sy.ref+1, sy.randomQty(r))
	}
}

// trade runs a bursty number of taker orders against the book. Each order
// walks up to maxAggLevels levels; each level it touches is one aggTrade of
// one to three trades (one per resting maker order).
func (sy *symbolState) trade(r *rand.Rand, now int64) {
	orders := 0
	switch x := r.Float64(); {
	case x < 0.45:
	case x < 0.85:
		orders = 1
	case x < 0.97:
		orders = 2 + r.IntN(2)
	default:
		orders = 4 + r.IntN(9) // a burst
	}
	for range orders {
		buy := r.IntN(2) == 0
		remaining := sy.toLots(50 * math.Pow(400, r.Float64()))
		book := sy.side(!buy) // a buyer takes asks
		for walked := 0; remaining > 0 && walked < maxAggLevels && len(*book) > 0; walked++ {
			lv := (*book)[0]
			fill := min(remaining, lv.qty)
			remaining -= fill
			sy.fill(r, lv.px, fill, !buy, now)
			sy.setLevel(!buy, lv.px, lv.qty-fill)
		}
	}
}

// fill records the trades of one aggTrade: fill at px (ticks) split across
// one to three makers.
func (sy *symbolState) fill(r *rand.Rand, px, fill int64, buyerMaker bool, now int64) {
	pxE8 := sy.pxE8(px)
	makers := 1 + r.IntN(3)
	lots := fill / sy.lotE8
	if int64(makers) > lots {
		makers = int(max(1, lots))
	}
	agg := aggTrade{id: sy.nextAgg, px: pxE8, qty: fill, first: sy.nextTrade, time: now, buyerMaker: buyerMaker}
	sy.nextAgg++
	left := fill
	for k := range makers {
		q := left
		if k < makers-1 {
			q = max(sy.lotE8, (left/int64(makers-k))/sy.lotE8*sy.lotE8)
		}
		left -= q
		tr := trade{id: sy.nextTrade, px: pxE8, qty: q, time: now, buyerMaker: buyerMaker}
		sy.nextTrade++
		sy.trades = append(sy.trades, tr)
		sy.record(tr)
	}
	agg.last = sy.nextTrade - 1
	sy.aggs = append(sy.aggs, agg)
}

// record folds one trade into the ticker and kline state.
func (sy *symbolState) record(tr trade) {
	st := &sy.stats
	st.last, st.lastQty = tr.px, tr.qty
	st.high, st.low = max(st.high, tr.px), min(st.low, tr.px)
	base := float64(tr.qty) / e8
	st.volume += base
	st.quoteVolume += base * float64(tr.px) / e8
	st.count++
	sy.lastTime = tr.time
	if len(sy.recent) >= 2*maxRecentTrades {
		sy.recent = append(sy.recent[:0], sy.recent[len(sy.recent)-maxRecentTrades+1:]...)
	}
	sy.recent = append(sy.recent, tr)
	for _, k := range sy.candleKey {
		sy.candles[k].add(tr)
	}
}

// depthWindow returns the book changes collected over the current period
// of a depth stream: this tick's, or a depth window's.
func (sy *symbolState) depthWindow(periodMs int64) *bookDiff {
	for i := range sy.windows {
		if sy.windows[i].period == periodMs {
			return &sy.windows[i].diff
		}
	}
	return &sy.tick
}

// due reports whether a stream with the given update period (ms) is
// pushed on this tick. Ticks stand for nominalTickMs each, so a 1000ms
// stream is pushed every 10th tick and a 250ms stream on ticks 3, 5, 8,
// 10, … (200 and 300ms apart).
func (m *market) due(periodMs int64) bool {
	return m.ticks*nominalTickMs/periodMs != (m.ticks-1)*nominalTickMs/periodMs
}

// endPeriods closes the periods that ended on this tick, after their
// events were pushed: the depth windows', and the "1000ms" window of
// traded symbols and liquidations.
func (m *market) endPeriods() {
	second := m.due(periodSecond)
	for _, sy := range m.syms {
		for i := range sy.windows {
			if w := &sy.windows[i]; m.due(w.period) {
				w.diff.reset()
			}
		}
		if second {
			sy.tradedWindow = false
			if sy.perp != nil {
				sy.perp.liq = nil
			}
		}
	}
}

// snapshot returns the top n levels of each side.
func (sy *symbolState) snapshot(n int) (bids, asks []level) {
	return sy.bids[:min(n, len(sy.bids))], sy.asks[:min(n, len(sy.asks))]
}

// derived returns the ticker fields computed from the 24 h statistics: the
// price change (in 1e-8 units), the change in percent and the weighted
// average price.
func (st *stats24) derived() (change int64, pct, wavg float64) {
	change = st.last - st.open
	if st.open != 0 {
		pct = float64(change) / float64(st.open) * 100
	}
	if st.volume > 0 {
		wavg = st.quoteVolume / st.volume
	}
	return change, pct, wavg
}
