package binancesim

import (
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// candle is the kline state of one symbol for one interval (and time
// zone). Candles are created when a kline stream for them is first
// served, so the first candle only holds the trades seen since then.
type candle struct {
	interval string
	utc8     bool
	cur      candleBar
	closed   *candleBar  // a finished bar whose final (x=true) update is owed
	past     []candleBar // finished bars, oldest first, at most maxKlineHistory
}

// candleBar is one kline bar. Times in µs; start inclusive, end exclusive.
type candleBar struct {
	start, end             int64
	open, high, low, close int64 // e8
	volume, quoteVolume    float64
	takerBase, takerQuote  float64
	first, last, count     int64 // trade ids; -1 when the bar has no trade
}

const utc8Offset = int64(8 * time.Hour / time.Microsecond)

// intervalMicros is the length of the fixed-length intervals.
var intervalMicros = map[string]int64{
	"1s": 1e6, "1m": 60e6, "3m": 180e6, "5m": 300e6, "15m": 900e6, "30m": 1800e6,
	"1h": 3600e6, "2h": 7200e6, "4h": 14400e6, "6h": 21600e6, "8h": 28800e6, "12h": 43200e6,
	"1d": microsPerDay, "3d": 3 * microsPerDay,
}

// barBounds returns the bar containing t (µs). Days, and multiples of
// days, are counted from the epoch; weeks start on Monday; months are
// calendar months. With utc8 the boundaries are those of UTC+8.
func barBounds(interval string, utc8 bool, t int64) (start, end int64) {
	off := int64(0)
	if utc8 {
		off = utc8Offset
	}
	local := t + off
	switch interval {
	case "1w":
		const week, monday = 7 * microsPerDay, 4 * microsPerDay // 1970-01-05 was a Monday
		start = floorDiv(local-monday, week)*week + monday
		end = start + week
	case "1M":
		tm := time.UnixMicro(local).UTC()
		first := time.Date(tm.Year(), tm.Month(), 1, 0, 0, 0, 0, time.UTC)
		start, end = first.UnixMicro(), first.AddDate(0, 1, 0).UnixMicro()
	default:
		d := intervalMicros[interval]
		start = floorDiv(local, d) * d
		end = start + d
	}
	return start - off, end - off
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// newBar opens an empty bar at price last (e8).
func newBar(interval string, utc8 bool, t, last int64) candleBar {
	s, e := barBounds(interval, utc8, t)
	return candleBar{start: s, end: e, open: last, high: last, low: last, close: last, first: -1, last: -1}
}

// roll finishes the current bar if t is past it.
func (c *candle) roll(t int64) {
	if t < c.cur.end {
		return
	}
	done := c.cur
	c.closed = &done
	c.keep(done)
	c.cur = newBar(c.interval, c.utc8, t, done.close)
}

// keep appends a finished bar to the history, within its bound.
func (c *candle) keep(b candleBar) {
	if len(c.past) >= maxKlineHistory {
		c.past = append(c.past[:0], c.past[len(c.past)-maxKlineHistory+1:]...)
	}
	c.past = append(c.past, b)
}

// add folds one trade into the candle.
func (c *candle) add(tr trade) {
	c.roll(tr.time)
	b := &c.cur
	if b.count == 0 {
		b.open, b.high, b.low, b.first = tr.px, tr.px, tr.px, tr.id
	}
	b.high, b.low, b.close, b.last = max(b.high, tr.px), min(b.low, tr.px), tr.px, tr.id
	b.count++
	base := float64(tr.qty) / e8
	quote := base * float64(tr.px) / e8
	b.volume += base
	b.quoteVolume += quote
	if !tr.buyerMaker { // the taker bought
		b.takerBase += base
		b.takerQuote += quote
	}
}

// candleFor returns the symbol's candle for a kline stream, creating it.
func (sy *symbolState) candleFor(sp streamSpec, now, seed int64) *candle {
	key := sp.interval
	if sp.utc8 {
		key += "+8"
	}
	if c, ok := sy.candles[key]; ok {
		return c
	}
	c := &candle{interval: sp.interval, utc8: sp.utc8, cur: newBar(sp.interval, sp.utc8, now, sy.stats.last)}
	c.past = sy.syntheticPast(c, rand.New(rand.NewPCG(uint64(seed), uint64(len(key))<<32|uint64(sy.index))))
	sy.candles[key] = c
	i, _ := slices.BinarySearch(sy.candleKey, key)
	sy.candleKey = slices.Insert(sy.candleKey, i, key)
	return c
}

// appendKline appends a kline event for bar b.
func appendKline(b []byte, sy *symbolState, interval string, bar *candleBar, closed bool, now int64, micro bool) []byte {
	b = append(b, `{"e":"kline","E":`...)
	b = appendTime(b, now, micro)
	b = append(b, `,"s":`...)
	b = appendJSONString(b, sy.name)
	b = append(b, `,"k":{"t":`...)
	b = appendTime(b, bar.start, micro)
	b = append(b, `,"T":`...)
	b = appendCloseTime(b, bar.end, micro)
	b = append(b, `,"s":`...)
	b = appendJSONString(b, sy.name)
	b = append(b, `,"i":"`...)
	b = append(b, interval...)
	b = append(b, `","f":`...)
	b = appendInt(b, bar.first)
	b = append(b, `,"L":`...)
	b = appendInt(b, bar.last)
	b = appendPriceField(b, "o", bar.open)
	b = appendPriceField(b, "c", bar.close)
	b = appendPriceField(b, "h", bar.high)
	b = appendPriceField(b, "l", bar.low)
	b = appendFloatField(b, "v", bar.volume)
	b = append(b, `,"n":`...)
	b = appendInt(b, bar.count)
	b = append(b, `,"x":`...)
	b = appendBool(b, closed)
	b = appendFloatField(b, "q", bar.quoteVolume)
	b = appendFloatField(b, "V", bar.takerBase)
	b = appendFloatField(b, "Q", bar.takerQuote)
	return append(b, `,"B":"0"}}`...)
}

const (
	// maxKlineHistory bounds the finished bars kept per candle, enough
	// for USD-M's largest klines limit.
	maxKlineHistory = 1500
	// syntheticBars is the number of past bars made up when a candle
	// starts, so a chart has history.
	syntheticBars = 1000
	// binanceLaunch (2017-07-14, µs) bounds the synthetic past.
	binanceLaunch = 1_500_000_000_000_000
)

// syntheticPast makes up to syntheticBars plausible finished bars before
// c's current bar: a random walk backwards from its open, in ticks.
func (sy *symbolState) syntheticPast(c *candle, r *rand.Rand) []candleBar {
	start := c.cur.start
	sigma := 0.002 * math.Sqrt(float64(c.cur.end-c.cur.start)/60e6)
	tick := float64(sy.tickE8)
	round := func(v float64) int64 { return max(sy.tickE8, int64(math.Round(v/tick))*sy.tickE8) }
	closePx := float64(c.cur.open)
	var bars []candleBar
	for range syntheticBars {
		if start <= binanceLaunch {
			break
		}
		s, e := barBounds(c.interval, c.utc8, start-1)
		open := closePx * math.Exp(r.NormFloat64()*sigma)
		hi := math.Max(open, closePx) * (1 + math.Abs(r.NormFloat64())*sigma/2)
		lo := math.Min(open, closePx) * (1 - math.Abs(r.NormFloat64())*sigma/2)
		vol := float64(1+r.IntN(1000)) * float64(e-s) / 60e6 * 10_000 / (closePx / e8)
		b := candleBar{start: s, end: e, open: round(open), high: round(hi), low: round(lo), close: round(closePx),
			volume: vol, quoteVolume: vol * closePx / e8, count: 1 + r.Int64N(int64(1+vol)), first: -1, last: -1}
		b.takerBase, b.takerQuote = b.volume/2, b.quoteVolume/2
		b.high, b.low = max(b.high, b.open, b.close), min(b.low, b.open, b.close)
		bars = append(bars, b)
		closePx, start = open, s
	}
	slices.Reverse(bars)
	return bars
}
