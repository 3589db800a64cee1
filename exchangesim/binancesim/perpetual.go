package binancesim

import (
	"math"
	"math/rand/v2"
)

// Perpetual-contract state of a USD-M futures symbol. It draws from the
// market's random source only when the product has it, so spot runs with
// a given seed are unchanged.

const (
	// liquidationChance is the probability per tick and symbol of a
	// liquidation; at most the latest one per symbol and second is pushed
	// (forceOrder).
	liquidationChance = 0.02
	// baseFunding is the funding rate with no premium (0.01% per 8h).
	baseFunding = 0.0001
	// maxPremium bounds the mark price's premium over the index.
	maxPremium = 0.002
	// fundingMicros is the funding interval: funding at 00, 08 and 16 UTC.
	fundingMicros = 8 * 3600 * 1_000_000
)

// perpState is the mark price model and liquidations of one symbol.
type perpState struct {
	index   int64   // index price, e8
	premium float64 // mark / index - 1
	liq     *liquidation
}

// liquidation is one forced order (a forceOrder event).
type liquidation struct {
	sell         bool
	px, avg, qty int64 // bankruptcy price, average fill price, quantity; e8
	time         int64 // µs
}

// newPerpState starts a new symbol's perpetual state.
func newPerpState(sy *symbolState, r *rand.Rand) *perpState {
	return &perpState{index: sy.mid(), premium: r.NormFloat64() * maxPremium / 4}
}

// mid returns the mid price in e8.
func (sy *symbolState) mid() int64 {
	bid, ask := sy.top()
	return (sy.pxE8(bid.px) + sy.pxE8(ask.px)) / 2
}

// step advances the index, the premium and the liquidations of sy.
func (p *perpState) step(sy *symbolState, r *rand.Rand, now int64) {
	p.index = int64(float64(sy.mid()) * (1 + r.NormFloat64()*0.0001))
	p.premium = math.Max(-maxPremium, math.Min(maxPremium, p.premium*0.98+r.NormFloat64()*maxPremium/20))
	if r.Float64() >= liquidationChance {
		return
	}
	bid, ask := sy.top()
	l := &liquidation{sell: r.IntN(2) == 0, qty: sy.randomQty(r), time: now}
	if l.sell { // a long is closed into the bids, bankrupt a little lower
		l.avg = sy.pxE8(bid.px)
		l.px = l.avg * 998 / 1000 / sy.tickE8 * sy.tickE8
	} else {
		l.avg = sy.pxE8(ask.px)
		l.px = (l.avg*1002/1000 + sy.tickE8 - 1) / sy.tickE8 * sy.tickE8
	}
	p.liq = l
}

// mark returns the mark price, e8.
func (p *perpState) mark() int64 { return int64(float64(p.index) * (1 + p.premium)) }

// fundingRate returns the current funding rate estimate.
func (p *perpState) fundingRate() float64 { return baseFunding + p.premium/10 }

// nextFunding returns the next funding time after now, µs.
func nextFunding(now int64) int64 { return (floorDiv(now, fundingMicros) + 1) * fundingMicros }
