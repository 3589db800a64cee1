package bybitsim

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Sides of a book.
const (
	bid = 0
	ask = 1
)

// level is one price level, in ticks and lots.
type level struct{ px, sz int64 }

// depthState is what the subscribers of one orderbook.<depth>.<symbol>
// topic were last sent.
type depthState struct {
	u        int64
	view     [2][]level
	lastSent time.Time
}

// candle is the current candle of one interval.
type candle struct {
	start, next            time.Time
	open, high, low, close int64
	volume, turnover       float64
}

// symbolState is one instrument's market. A book is a grid: bids at
// mid-1, mid-2, … ticks, asks at mid+1, …; a level's size is set
// explicitly (0: no level) or derived from its price, so a book of any
// depth exists without storing it.
type symbolState struct {
	name     string
	dec      int // price decimals
	lotDec   int // size decimals
	mid      int64
	sizes    [2]map[int64]int64
	seq      int64 // cross sequence: every change
	tradeSeq int64 // trade ids
	last     int64 // last trade price
	open24   int64
	high24   int64
	low24    int64
	vol24    float64
	turn24   float64
	depth    map[int]*depthState
	candles  map[string]*candle
	// ticker is the linear ticker's last values, for deltas.
	ticker []string
}

// market is every instrument's state and who subscribes to what. The
// Server's market lock guards it.
type market struct {
	prod    Product
	rng     *rand.Rand
	syms    map[string]*symbolState
	order   []string
	tradeID int64
}

func newMarket(prod Product, symbols []string, seed int64, now time.Time) *market {
	m := &market{prod: prod, rng: rand.New(rand.NewPCG(uint64(seed), 0x6279626974)), syms: map[string]*symbolState{}}
	for _, name := range symbols {
		dec, lot, base := 4, 1, 1.0
		switch {
		case strings.HasPrefix(name, "BTC"):
			dec, lot, base = 1, 6, 60000
		case strings.HasPrefix(name, "ETH"):
			dec, lot, base = 2, 5, 3000
		case strings.HasPrefix(name, "SOL"):
			dec, lot, base = 2, 3, 150
		case strings.HasPrefix(name, "XRP"):
			dec, lot, base = 4, 1, 0.5
		}
		mid := int64(base * pow10(dec))
		sy := &symbolState{
			name: name, dec: dec, lotDec: lot, mid: mid,
			sizes: [2]map[int64]int64{{}, {}},
			last:  mid, open24: mid, high24: mid + mid/50, low24: mid - mid/50,
			vol24: 12345.678, turn24: 12345.678 * base,
			seq: 1_000_000 + int64(hash(name)%1000), depth: map[int]*depthState{}, candles: map[string]*candle{},
		}
		m.syms[name] = sy
		m.order = append(m.order, name)
	}
	_ = now
	return m
}

func pow10(n int) float64 {
	f := 1.0
	for range n {
		f *= 10
	}
	return f
}

func hash(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// size returns the size of the level at px on side, 0 for none.
func (sy *symbolState) size(side int, px int64) int64 {
	if side == bid && px >= sy.mid || side == ask && px <= sy.mid || px <= 0 {
		return 0
	}
	if v, ok := sy.sizes[side][px]; ok {
		return v
	}
	h := uint64(px)*0x9E3779B97F4A7C15 + uint64(side+1)*0xBF58476D1CE4E5B9
	h ^= h >> 31
	return 1 + int64(h%5000)*int64(pow10(sy.lotDec-1)+0.5)/10 + int64(h%7)
}

// view returns the book's present levels within depth of the mid, best
// first.
func (sy *symbolState) view(depth int) [2][]level {
	var v [2][]level
	for k := int64(1); k <= int64(depth); k++ {
		if px := sy.mid - k; px > 0 {
			if z := sy.size(bid, px); z > 0 {
				v[bid] = append(v[bid], level{px, z})
			}
		}
		if z := sy.size(ask, sy.mid+k); z > 0 {
			v[ask] = append(v[ask], level{sy.mid + k, z})
		}
	}
	return v
}

// diff returns the levels of b that are new or changed from a, and those
// of a that b lacks with size 0.
func diff(a, b []level, side int) []level {
	var out []level
	am := make(map[int64]int64, len(a))
	for _, l := range a {
		am[l.px] = l.sz
	}
	bm := make(map[int64]bool, len(b))
	for _, l := range b {
		bm[l.px] = true
		if am[l.px] != l.sz {
			out = append(out, l)
		}
	}
	for _, l := range a {
		if !bm[l.px] {
			out = append(out, level{l.px, 0})
		}
	}
	slices.SortFunc(out, func(x, y level) int {
		if side == bid {
			return int(y.px - x.px)
		}
		return int(x.px - y.px)
	})
	return out
}

// trade is one generated trade.
type trade struct {
	at       int64 // ms
	px, sz   int64
	buy      bool
	id       string
	seq      int64
	tickDir  string
	blockTrd bool
}

// step moves sy's market one tick and returns its trades.
func (m *market) step(sy *symbolState, now time.Time) []trade {
	r := m.rng
	sy.seq += 1 + int64(r.IntN(3))
	for range 4 {
		side, k := r.IntN(2), int64(1+r.IntN(30))
		px := sy.mid - k
		if side == ask {
			px = sy.mid + k
		}
		z := int64(0)
		if k == 1 || r.IntN(10) > 0 {
			z = 1 + int64(r.IntN(5000))*int64(pow10(sy.lotDec-1)+0.5)/10 + int64(r.IntN(9))
		}
		sy.sizes[side][px] = z
	}
	if r.IntN(20) == 0 {
		if r.IntN(2) == 0 {
			sy.mid++
		} else if sy.mid > 10 {
			sy.mid--
		}
	}
	for side, px := range [2]int64{sy.mid - 1, sy.mid + 1} {
		if sy.size(side, px) == 0 {
			sy.sizes[side][px] = 1 + int64(r.IntN(1000))
		}
	}
	var out []trade
	if r.IntN(10) < 6 {
		for range 1 + r.IntN(3) {
			buy := r.IntN(2) == 0
			px := sy.mid - 1
			if buy {
				px = sy.mid + 1
			}
			sz := 1 + int64(r.IntN(int(pow10(sy.lotDec))))
			dir := "ZeroPlusTick"
			switch {
			case px > sy.last:
				dir = "PlusTick"
			case px < sy.last:
				dir = "MinusTick"
			}
			m.tradeID++
			t := trade{at: now.UnixMilli(), px: px, sz: sz, buy: buy, seq: sy.seq, tickDir: dir}
			if m.prod == ProductSpot {
				t.id = strconv.FormatInt(2290000000000000000+m.tradeID, 10)
			} else {
				h := hash(sy.name)
				t.id = fmt.Sprintf("%08x-%04x-5%03x-9%03x-%012x", uint32(h), uint16(h>>32), m.tradeID>>48&0xfff, uint16(h>>48)&0xfff, m.tradeID&0xffffffffffff)
			}
			out = append(out, t)
			sy.last = px
			sy.high24, sy.low24 = max(sy.high24, px), min(sy.low24, px)
			amount := float64(sz) / pow10(sy.lotDec)
			sy.vol24 += amount
			sy.turn24 += amount * float64(px) / pow10(sy.dec)
			for _, c := range sy.candles {
				c.close = px
				c.high, c.low = max(c.high, px), min(c.low, px)
				c.volume += amount
				c.turnover += amount * float64(px) / pow10(sy.dec)
			}
		}
	}
	return out
}

// px formats a price.
func (sy *symbolState) px(v int64) string { return fixed(v, sy.dec) }

// sz formats a size.
func (sy *symbolState) sz(v int64) string { return fixed(v, sy.lotDec) }

func fixed(v int64, dec int) string {
	s := strconv.FormatInt(v, 10)
	if dec == 0 {
		return s
	}
	neg := v < 0
	if neg {
		s = s[1:]
	}
	for len(s) <= dec {
		s = "0" + s
	}
	s = s[:len(s)-dec] + "." + s[len(s)-dec:]
	if neg {
		s = "-" + s
	}
	return s
}

// --- messages ---

func appendLevels(b []byte, sy *symbolState, ls []level) []byte {
	b = append(b, '[')
	for i, l := range ls {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `["`...)
		b = append(b, sy.px(l.px)...)
		b = append(b, `","`...)
		if l.sz == 0 {
			b = append(b, '0') // a deleted level, as Bybit writes it
		} else {
			b = append(b, sy.sz(l.sz)...)
		}
		b = append(b, `"]`...)
	}
	return append(b, ']')
}

// bookMessage is an orderbook event. Spot and depth 1 put ts before
// type, the rest after, as Bybit does.
func (m *market) bookMessage(sy *symbolState, depth int, typ string, lv [2][]level, u int64, now time.Time) []byte {
	ts := now.UnixMilli()
	b := []byte(`{"topic":"orderbook.` + strconv.Itoa(depth) + "." + sy.name + `",`)
	if m.prod == ProductSpot || depth == 1 {
		b = fmt.Appendf(b, `"ts":%d,"type":"%s",`, ts, typ)
	} else {
		b = fmt.Appendf(b, `"type":"%s","ts":%d,`, typ, ts)
	}
	b = append(b, `"data":{"s":"`+sy.name+`","b":`...)
	b = appendLevels(b, sy, lv[bid])
	b = append(b, `,"a":`...)
	b = appendLevels(b, sy, lv[ask])
	return fmt.Appendf(b, `,"u":%d,"seq":%d},"cts":%d}`, u, sy.seq, ts-1)
}

func (m *market) tradeMessage(sy *symbolState, ts []trade, now time.Time) []byte {
	b := fmt.Appendf(nil, `{"topic":"publicTrade.%s","ts":%d,"type":"snapshot","data":[`, sy.name, now.UnixMilli())
	for i, t := range ts {
		if i > 0 {
			b = append(b, ',')
		}
		side := "Sell"
		if t.buy {
			side = "Buy"
		}
		b = fmt.Appendf(b, `{"i":"%s","T":%d,"p":"%s","v":"%s","S":"%s","s":"%s","BT":false,"RPI":false,"seq":%d`,
			t.id, t.at, sy.px(t.px), sy.sz(t.sz), side, sy.name, t.seq)
		if m.prod == ProductLinear {
			b = fmt.Appendf(b, `,"L":"%s"`, t.tickDir)
		}
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// spotTicker is a spot tickers event: always a whole snapshot.
func (m *market) spotTicker(sy *symbolState, now time.Time) []byte {
	pct := float64(sy.last-sy.open24) / float64(sy.open24)
	return fmt.Appendf(nil, `{"topic":"tickers.%s","ts":%d,"type":"snapshot","cs":%d,"data":{"symbol":"%s","lastPrice":"%s","highPrice24h":"%s","lowPrice24h":"%s","prevPrice24h":"%s","volume24h":"%.4f","turnover24h":"%.4f","price24hPcnt":"%.4f","usdIndexPrice":"%s"}}`,
		sy.name, now.UnixMilli(), sy.seq, sy.name, sy.px(sy.last), sy.px(sy.high24), sy.px(sy.low24), sy.px(sy.open24),
		sy.vol24, sy.turn24, pct, sy.px(sy.mid))
}

var linearTickerFields = []string{
	"tickDirection", "price24hPcnt", "lastPrice", "prevPrice24h", "highPrice24h", "lowPrice24h",
	"markPrice", "indexPrice", "openInterest", "turnover24h", "volume24h", "fundingRate",
	"nextFundingTime", "bid1Price", "bid1Size", "ask1Price", "ask1Size",
}

// linearValues returns the linear ticker's fields now.
func (sy *symbolState) linearValues(now time.Time) []string {
	next := now.UTC().Truncate(8 * time.Hour).Add(8 * time.Hour)
	dir := "ZeroPlusTick"
	if sy.last > sy.open24 {
		dir = "PlusTick"
	} else if sy.last < sy.open24 {
		dir = "MinusTick"
	}
	return []string{
		dir, fmt.Sprintf("%.6f", float64(sy.last-sy.open24)/float64(sy.open24)), sy.px(sy.last), sy.px(sy.open24),
		sy.px(sy.high24), sy.px(sy.low24), sy.px(sy.mid), sy.px(sy.mid), "123456.789",
		fmt.Sprintf("%.4f", sy.turn24), fmt.Sprintf("%.4f", sy.vol24), "0.0001",
		strconv.FormatInt(next.UnixMilli(), 10), sy.px(sy.mid - 1), sy.sz(sy.size(bid, sy.mid-1)),
		sy.px(sy.mid + 1), sy.sz(sy.size(ask, sy.mid+1)),
	}
}

// linearTicker is a linear tickers event: the fields of vals that differ
// from prev (all of them when prev is nil, a snapshot), or nil.
func (m *market) linearTicker(sy *symbolState, prev, vals []string, now time.Time) []byte {
	typ := "snapshot"
	if prev != nil {
		typ = "delta"
	}
	b := fmt.Appendf(nil, `{"topic":"tickers.%s","type":"%s","data":{"symbol":"%s"`, sy.name, typ, sy.name)
	n := 0
	for i, f := range linearTickerFields {
		if prev != nil && prev[i] == vals[i] {
			continue
		}
		n++
		b = fmt.Appendf(b, `,"%s":"%s"`, f, vals[i])
	}
	if n == 0 {
		return nil
	}
	return fmt.Appendf(b, `},"cs":%d,"ts":%d}`, sy.seq, now.UnixMilli())
}

func (m *market) klineMessage(sy *symbolState, iv string, cs []*candle, confirm []bool, now time.Time) []byte {
	b := fmt.Appendf(nil, `{"topic":"kline.%s.%s","data":[`, iv, sy.name)
	for i, c := range cs {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, `{"start":%d,"end":%d,"interval":"%s","open":"%s","close":"%s","high":"%s","low":"%s","volume":"%.6f","turnover":"%.4f","confirm":%t,"timestamp":%d}`,
			c.start.UnixMilli(), c.next.UnixMilli()-1, iv, sy.px(c.open), sy.px(c.close), sy.px(c.high), sy.px(c.low),
			c.volume, c.turnover, confirm[i], now.UnixMilli())
	}
	return fmt.Appendf(b, `],"ts":%d,"type":"snapshot"}`, now.UnixMilli())
}

// newCandle starts the candle of iv holding now at the last price.
func (sy *symbolState) newCandle(iv string, now time.Time) *candle {
	start, next := candleStart(iv, now)
	return &candle{start: start, next: next, open: sy.last, high: sy.last, low: sy.last, close: sy.last}
}
