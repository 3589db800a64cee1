package bybit

import (
	"strings"

	"github.com/marketgate/marketgate/upstream"
)

// Kind is the type of a Bybit topic, an index into [Dialect.Kinds].
type Kind int

// The topic kinds.
const (
	KindTrade   Kind = iota // publicTrade.<SYMBOL>
	KindTicker              // tickers.<SYMBOL>
	KindBook                // orderbook.<50|200|1000>.<SYMBOL>: snapshot, then deltas
	KindBookTop             // orderbook.1.<SYMBOL>: snapshots only
	KindKline               // kline.<interval>.<SYMBOL>
	numKinds
)

var kinds = []string{
	KindTrade:   "publicTrade",
	KindTicker:  "tickers",
	KindBook:    "orderbook",
	KindBookTop: "orderbookTop",
	KindKline:   "kline",
}

// String returns the kind's metrics label.
func (k Kind) String() string {
	if k >= 0 && k < numKinds {
		return kinds[k]
	}
	return "invalid"
}

// Kinds returns the metrics labels of the topic kinds, both products'.
func (Dialect) Kinds() []string { return kinds }

// Depths are the orderbook depths of spot and linear.
var Depths = []string{"1", "50", "200", "1000"}

// Intervals are the kline intervals.
var Intervals = []string{"1", "3", "5", "15", "30", "60", "120", "240", "360", "720", "D", "W", "M"}

// MaxSymbolLen bounds a symbol's length.
const MaxSymbolLen = 32

// ParseStream parses a topic. The classes differ by product: spot
// tickers are whole snapshots (conflatable), linear tickers are a
// snapshot then deltas of the fields that changed (never conflated);
// spot trade ids are numbers that increase, linear trade ids are UUIDs
// (no order: a handover matches the pushes' bytes, upstream.OrderSame).
func (d Dialect) ParseStream(name string) (upstream.Stream, error) {
	s, ok := d.parse(name)
	if !ok {
		return upstream.Stream{}, &upstream.ValidationError{Err: upstream.ErrInvalidStream, Value: name}
	}
	return s, nil
}

func (d Dialect) parse(name string) (upstream.Stream, bool) {
	head, rest, ok := strings.Cut(name, ".")
	if !ok {
		return upstream.Stream{}, false
	}
	s := upstream.Stream{Name: name}
	var k Kind
	switch head {
	case "publicTrade":
		k, s.Class = KindTrade, upstream.ClassTrade
		s.IDs = upstream.OrderMonotonic
		if !d.p.spot {
			// UUIDs: no order, but a push is the same bytes on every
			// connection, which is where a handover switches.
			s.IDs = upstream.OrderSame
		}
	case "tickers":
		k, s.Class = KindTicker, upstream.ClassTicker
		if !d.p.spot {
			s.Class = upstream.ClassOther
		}
	case "orderbook", "kline":
		param, sym, ok := strings.Cut(rest, ".")
		if !ok {
			return upstream.Stream{}, false
		}
		rest = sym
		switch {
		case head == "kline" && contains(Intervals, param):
			k, s.Class = KindKline, upstream.ClassCandle
		case head == "orderbook" && param == "1":
			k, s.Class = KindBookTop, upstream.ClassBookTop
		case head == "orderbook" && contains(Depths, param):
			k, s.Class = KindBook, upstream.ClassBookDelta
		default:
			return upstream.Stream{}, false
		}
	default:
		return upstream.Stream{}, false
	}
	if !validSymbol(rest) {
		return upstream.Stream{}, false
	}
	s.Symbol, s.Kind = rest, int(k)
	return s, true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// validSymbol: upper-case letters and digits, with inner dashes (dated
// futures such as BTCUSDT-26DEC25), at most MaxSymbolLen bytes.
func validSymbol(sym string) bool {
	if sym == "" || len(sym) > MaxSymbolLen || sym[0] == '-' || sym[len(sym)-1] == '-' {
		return false
	}
	for i := 0; i < len(sym); i++ {
		c := sym[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// kindOf returns the kind of a stream this dialect parsed.
func kindOf(s *upstream.Stream) Kind { return Kind(s.Kind) }
