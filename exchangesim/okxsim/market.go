package okxsim

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

// instType returns "SPOT" or "SWAP" for a valid instId, else "".
func instType(id string) string {
	parts := strings.Split(id, "-")
	for _, p := range parts {
		if p == "" || strings.ContainsFunc(p, func(r rune) bool { return !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') }) {
			return ""
		}
	}
	switch {
	case len(parts) == 2:
		return "SPOT"
	case len(parts) == 3 && parts[2] == "SWAP":
		return "SWAP"
	}
	return ""
}

// barDurations are the candle bars and their lengths (months counted as
// 30 days: the simulator's bars are plausible, not calendar-exact).
var barDurations = map[string]time.Duration{
	"1s": time.Second, "1m": time.Minute, "3m": 3 * time.Minute, "5m": 5 * time.Minute,
	"15m": 15 * time.Minute, "30m": 30 * time.Minute, "1H": time.Hour, "2H": 2 * time.Hour,
	"4H": 4 * time.Hour, "6H": 6 * time.Hour, "12H": 12 * time.Hour, "1D": 24 * time.Hour,
	"2D": 48 * time.Hour, "3D": 72 * time.Hour, "5D": 120 * time.Hour, "1W": 168 * time.Hour,
	"1M": 720 * time.Hour, "3M": 2160 * time.Hour,
}

// channelKind says which endpoint serves a channel: 0 unknown, 1
// public, 2 business. bar is the candle bar of a candle channel.
func channelKind(ch string) (endpoint int, bar string) {
	switch ch {
	case "trades", "tickers", "books5", "books", "bbo-tbt":
		return endpointPublic, ""
	}
	b, ok := strings.CutPrefix(ch, "candle")
	if !ok {
		return 0, ""
	}
	if _, ok := barDurations[strings.TrimSuffix(b, "utc")]; !ok {
		return 0, ""
	}
	if base := strings.TrimSuffix(b, "utc"); base != b && barDurations[base] < 6*time.Hour {
		return 0, "" // "…utc" variants exist from 6H up
	}
	return endpointBusiness, b
}

// The endpoints.
const (
	endpointPublic   = 1
	endpointBusiness = 2
)

// candle is one bar's current candle.
type candle struct {
	open                  int64 // ms
	o, h, l, c, vol, volQ int64 // price ticks; volume in lots
	dur                   time.Duration
	utc8                  bool
	pushed                time.Time // the last push of the live candle
}

// instrument is one instrument's market: a book of price ticks (0.1)
// and sizes (lots of 0.001), trades and candles.
type instrument struct {
	id, typ    string
	mid        int64
	bids, asks map[int64]int64
	seq        int64
	tradeID    int64
	lastPx     int64
	lastSz     int64
	vol24      int64
	open24     int64
	candles    map[string]*candle // by bar
	// changed levels of the last step: [price, size], size 0 deletes.
	dBids, dAsks [][2]int64
	trades       [][]byte // trade items of the last step
	ts           int64    // ms of the last step
}

func newInstrument(id string, levels int, r *rand.Rand) *instrument {
	mid := int64(100_000 + r.IntN(500_000))
	in := &instrument{id: id, typ: instType(id), mid: mid, bids: map[int64]int64{}, asks: map[int64]int64{},
		seq: int64(1_000 + r.IntN(100_000)), tradeID: int64(1_000_000 + r.IntN(1_000_000)), lastPx: mid, open24: mid,
		candles: map[string]*candle{}}
	for i := int64(1); i <= int64(levels); i++ {
		in.bids[mid-i] = 1 + int64(r.IntN(5000))
		in.asks[mid+i] = 1 + int64(r.IntN(5000))
	}
	return in
}

// step moves the market by one tick at time now.
func (in *instrument) step(r *rand.Rand, levels int, now time.Time) {
	in.ts = now.UnixMilli()
	in.dBids, in.dAsks, in.trades = in.dBids[:0], in.dAsks[:0], in.trades[:0]
	L := int64(levels)
	switch d := r.IntN(3) - 1; d {
	case 1: // up: the lowest bid and best ask go, a bid at mid and an ask beyond
		in.set(in.bids, &in.dBids, in.mid-L, 0)
		in.set(in.bids, &in.dBids, in.mid, 1+int64(r.IntN(5000)))
		in.set(in.asks, &in.dAsks, in.mid+1, 0)
		in.set(in.asks, &in.dAsks, in.mid+L+1, 1+int64(r.IntN(5000)))
		in.mid++
	case -1:
		in.set(in.asks, &in.dAsks, in.mid+L, 0)
		in.set(in.asks, &in.dAsks, in.mid, 1+int64(r.IntN(5000)))
		in.set(in.bids, &in.dBids, in.mid-1, 0)
		in.set(in.bids, &in.dBids, in.mid-L-1, 1+int64(r.IntN(5000)))
		in.mid--
	}
	for range 3 {
		off := 1 + int64(r.IntN(10))
		if r.IntN(2) == 0 {
			in.set(in.bids, &in.dBids, in.mid-off, 1+int64(r.IntN(5000)))
		} else {
			in.set(in.asks, &in.dAsks, in.mid+off, 1+int64(r.IntN(5000)))
		}
	}
	in.seq += 1 + int64(r.IntN(10)) // seqIds increase with gaps
	if r.IntN(2) == 0 {
		n := 1 + int64(r.IntN(3)) // fills aggregated into one push; tradeId names the last
		in.tradeID += n
		side, px := "buy", in.bestAsk()
		if r.IntN(2) == 0 {
			side, px = "sell", in.bestBid()
		}
		sz := 1 + int64(r.IntN(500))
		in.lastPx, in.lastSz, in.vol24 = px, sz, in.vol24+sz
		b := []byte(`{"instId":"` + in.id + `","tradeId":"`)
		b = strconv.AppendInt(b, in.tradeID, 10)
		b = append(b, `","px":"`...)
		b = appendPx(b, px)
		b = append(b, `","sz":"`...)
		b = appendSz(b, sz)
		b = append(b, `","side":"`+side+`","ts":"`...)
		b = strconv.AppendInt(b, in.ts, 10)
		b = append(b, `","count":"`...)
		b = strconv.AppendInt(b, n, 10)
		b = append(b, `","source":"0","seqId":`...)
		b = strconv.AppendInt(b, in.seq, 10)
		in.trades = append(in.trades, append(b, '}'))
	}
	sz := int64(0)
	if len(in.trades) > 0 {
		sz = in.lastSz
	}
	for _, c := range in.candles {
		c.add(in.lastPx, sz)
	}
}

// set changes a level and records the change.
func (in *instrument) set(side map[int64]int64, d *[][2]int64, px, sz int64) {
	if sz == 0 {
		if _, ok := side[px]; !ok {
			return
		}
		delete(side, px)
	} else {
		side[px] = sz
	}
	for i := range *d {
		if (*d)[i][0] == px {
			(*d)[i][1] = sz
			return
		}
	}
	*d = append(*d, [2]int64{px, sz})
}

func (in *instrument) bestBid() int64 {
	for p := in.mid; ; p-- {
		if _, ok := in.bids[p]; ok {
			return p
		}
	}
}

func (in *instrument) bestAsk() int64 {
	for p := in.mid; ; p++ {
		if _, ok := in.asks[p]; ok {
			return p
		}
	}
}

// sorted returns the levels of a side, best first, at most n.
func sorted(side map[int64]int64, bids bool, n int) [][2]int64 {
	out := make([][2]int64, 0, len(side))
	for p, s := range side {
		out = append(out, [2]int64{p, s})
	}
	slices.SortFunc(out, func(a, b [2]int64) int {
		if bids {
			return int(b[0] - a[0])
		}
		return int(a[0] - b[0])
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

func appendPx(b []byte, px int64) []byte {
	b = strconv.AppendInt(b, px/10, 10)
	b = append(b, '.')
	return strconv.AppendInt(b, px%10, 10)
}

func appendSz(b []byte, sz int64) []byte {
	b = strconv.AppendInt(b, sz/1000, 10)
	b = append(b, '.')
	f := sz % 1000
	if f < 100 {
		b = append(b, '0')
	}
	if f < 10 {
		b = append(b, '0')
	}
	return strconv.AppendInt(b, f, 10)
}

func appendLevels(b []byte, levels [][2]int64) []byte {
	b = append(b, '[')
	for i, l := range levels {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[', '"')
		b = appendPx(b, l[0])
		b = append(b, `","`...)
		b = appendSz(b, l[1])
		if l[1] == 0 {
			b = append(b, `","0","0"]`...)
		} else {
			b = append(b, `","0","1"]`...)
		}
	}
	return append(b, ']')
}

func argPrefix(ch, id string) []byte {
	return []byte(`{"arg":{"channel":"` + ch + `","instId":"` + id + `"},`)
}

// bookFrame is a books message: the whole book (snapshot, prevSeqId -1)
// or the last step's changes.
func (in *instrument) bookFrame(snapshot bool, levels int, prevSeq int64) []byte {
	b := argPrefix("books", in.id)
	var bids, asks [][2]int64
	if snapshot {
		b = append(b, `"action":"snapshot","data":[{"asks":`...)
		bids, asks, prevSeq = sorted(in.bids, true, levels), sorted(in.asks, false, levels), -1
	} else {
		b = append(b, `"action":"update","data":[{"asks":`...)
		bids, asks = in.dBids, in.dAsks
	}
	b = appendLevels(b, asks)
	b = append(b, `,"bids":`...)
	b = appendLevels(b, bids)
	b = append(b, `,"ts":"`...)
	b = strconv.AppendInt(b, in.ts, 10)
	b = append(b, `","checksum":0,"prevSeqId":`...)
	b = strconv.AppendInt(b, prevSeq, 10)
	b = append(b, `,"seqId":`...)
	b = strconv.AppendInt(b, in.seq, 10)
	return append(b, `}]}`...)
}

// topFrame is a books5 or bbo-tbt message.
func (in *instrument) topFrame(ch string, n int) []byte {
	b := argPrefix(ch, in.id)
	b = append(b, `"data":[{"asks":`...)
	b = appendLevels(b, sorted(in.asks, false, n))
	b = append(b, `,"bids":`...)
	b = appendLevels(b, sorted(in.bids, true, n))
	b = append(b, `,"instId":"`+in.id+`","ts":"`...)
	b = strconv.AppendInt(b, in.ts, 10)
	b = append(b, `","seqId":`...)
	b = strconv.AppendInt(b, in.seq, 10)
	return append(b, `}]}`...)
}

// tradesFrame is the last step's trades, or nil.
func (in *instrument) tradesFrame() []byte {
	if len(in.trades) == 0 {
		return nil
	}
	b := argPrefix("trades", in.id)
	b = append(b, `"data":[`...)
	for i, t := range in.trades {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, t...)
	}
	return append(b, `]}`...)
}

// tickerFrame is a tickers message.
func (in *instrument) tickerFrame() []byte {
	b := argPrefix("tickers", in.id)
	b = append(b, `"data":[{"instType":"`+in.typ+`","instId":"`+in.id+`","last":"`...)
	b = appendPx(b, in.lastPx)
	b = append(b, `","lastSz":"`...)
	b = appendSz(b, in.lastSz)
	b = append(b, `","askPx":"`...)
	ask, bid := in.bestAsk(), in.bestBid()
	b = appendPx(b, ask)
	b = append(b, `","askSz":"`...)
	b = appendSz(b, in.asks[ask])
	b = append(b, `","bidPx":"`...)
	b = appendPx(b, bid)
	b = append(b, `","bidSz":"`...)
	b = appendSz(b, in.bids[bid])
	b = append(b, `","open24h":"`...)
	b = appendPx(b, in.open24)
	b = append(b, `","vol24h":"`...)
	b = appendSz(b, in.vol24)
	b = append(b, `","ts":"`...)
	b = strconv.AppendInt(b, in.ts, 10)
	return append(b, `"}]}`...)
}

// candleFrames returns the messages of a candle channel at this step:
// the bar's candle, preceded by the previous one confirmed if its bar
// ended. The candle starts on first use.
func (in *instrument) candleFrames(ch, bar string, now time.Time, every time.Duration) [][]byte {
	c := in.candles[bar]
	var out [][]byte
	if c == nil {
		base := strings.TrimSuffix(bar, "utc")
		c = &candle{dur: barDurations[base], utc8: base == bar && barDurations[base] >= 6*time.Hour}
		c.start(now, in.lastPx)
		in.candles[bar] = c
	} else if now.UnixMilli() >= c.open+c.dur.Milliseconds() {
		out = append(out, c.frame(ch, in.id, true))
		c.start(now, in.lastPx)
	} else if now.Sub(c.pushed) < every {
		return nil
	}
	c.pushed = now
	return append(out, c.frame(ch, in.id, false))
}

func (c *candle) start(now time.Time, px int64) {
	off := time.Duration(0)
	if c.utc8 {
		off = 8 * time.Hour
	}
	c.open = now.Add(off).Truncate(c.dur).Add(-off).UnixMilli()
	c.o, c.h, c.l, c.c, c.vol, c.volQ = px, px, px, px, 0, 0
}

func (c *candle) add(px, sz int64) {
	c.h, c.l, c.c = max(c.h, px), min(c.l, px), px
	c.vol += sz
}

func (c *candle) frame(ch, id string, confirm bool) []byte {
	b := argPrefix(ch, id)
	b = append(b, `"data":[["`...)
	b = strconv.AppendInt(b, c.open, 10)
	for _, px := range []int64{c.o, c.h, c.l, c.c} {
		b = append(b, `","`...)
		b = appendPx(b, px)
	}
	b = append(b, `","`...)
	b = appendSz(b, c.vol)
	b = append(b, `","`...)
	b = appendSz(b, c.vol)
	b = append(b, `","`...)
	b = appendSz(b, c.vol)
	if confirm {
		return append(b, `","1"]]}`...)
	}
	return append(b, `","0"]]}`...)
}
