package upstream

// Class is what a stream's events are, whatever the exchange: it decides
// how a slow consumer is treated (conflation) and how events are told
// apart across connections (order). The zero Class is invalid.
type Class uint8

// The stream classes.
const (
	// ClassTrade: trades, each its own event (never conflated; ids leave
	// no holes).
	ClassTrade Class = iota + 1
	// ClassBookDelta: incremental order book updates (never conflated;
	// update ids leave no holes).
	ClassBookDelta
	// ClassBookSnapshot: whole snapshots of the top of a book (conflated;
	// update ids increase).
	ClassBookSnapshot
	// ClassBookTop: best bid and ask (conflated; update ids increase).
	ClassBookTop
	// ClassTicker: tickers, prices, statistics (conflated; no identity).
	ClassTicker
	// ClassCandle: candles of one interval (conflated; ordered by open
	// time, then by event time).
	ClassCandle
	// ClassOther: anything else, e.g. all-market arrays whose events
	// each carry only some symbols (never conflated; no identity).
	ClassOther
)

var classNames = [...]string{"invalid", "trade", "bookDelta", "bookSnapshot", "bookTop", "ticker", "candle", "other"}

// String returns the class name.
func (c Class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return "invalid"
}

// Conflatable reports whether each event of a stream of this class
// supersedes all earlier ones, so that a slow consumer may be sent only
// the newest. Losing a trade or a book delta corrupts what the consumer
// builds; losing a ticker does not. A conflatable stream's final events
// (a closed candle, [Dialect.Final]) are never dropped for a slow
// consumer: the next candle's events do not replace them.
func (c Class) Conflatable() bool {
	switch c {
	case ClassBookSnapshot, ClassBookTop, ClassTicker, ClassCandle:
		return true
	}
	return false
}

// Order says how a stream's events can be told apart, which decides where
// a stream may switch from one connection to another (rotate.go).
type Order uint8

// The orders. The zero Order means the class's.
const (
	orderOfClass Order = iota
	// OrderNone: no identity: a stream switches at the first event of the
	// new connection.
	OrderNone
	// OrderMonotonic: ids increase but may skip: a stream switches where
	// both connections are seen to deliver the same event.
	OrderMonotonic
	// OrderConsecutive: ids leave no holes: continuity between two events
	// can be checked.
	OrderConsecutive
	// OrderSame: no identity, but the exchange sends each event byte for
	// byte alike on every connection (a broadcast push): a stream switches
	// where both connections are seen to deliver the same bytes. For
	// streams where a lost or repeated event matters and ids have no
	// order, such as Bybit linear trades (UUIDs).
	OrderSame
)

// Order returns the order of a class's events: consecutive for trades
// and book deltas, monotonic for snapshots, book tops and candles, none
// for the rest.
func (c Class) Order() Order {
	switch c {
	case ClassTrade, ClassBookDelta:
		return OrderConsecutive
	case ClassBookSnapshot, ClassBookTop, ClassCandle:
		return OrderMonotonic
	}
	return OrderNone
}

// Stream is a parsed, syntactically valid stream name. Only a dialect's
// ParseStream makes valid values.
type Stream struct {
	// Name is the stream name exactly as given, e.g. "btcusdt@kline_1m".
	Name string
	// Symbol is the instrument the stream is of, as the exchange spells it
	// in stream names (and in [Dialect.ParseSymbols]); empty for streams of
	// the whole market.
	Symbol string
	// Class is what the stream's events are.
	Class Class
	// IDs overrides the class's [Order] when the exchange's ids are
	// weaker than the class's usual ones (e.g. block trade ids skip); zero
	// means Class.Order().
	IDs Order
	// Kind is the stream type, an index into the dialect's Kinds (for
	// metrics and for the dialect's own use).
	Kind int
}

// Order returns how the stream's events are told apart.
func (s *Stream) Order() Order {
	if s.IDs != orderOfClass {
		return s.IDs
	}
	return s.Class.Order()
}

// EventID is the identity of one event, as a dialect reads it.
type EventID struct {
	// Lo and Hi are the update ids the event covers; Lo == Hi for single
	// ids (a trade id).
	Lo, Hi int64
	// Sub is a secondary key ordered after Hi (a candle's event time).
	Sub int64
	// Prev is the previous event's Hi, when the exchange says it
	// (HasPrev): Binance futures' pu, OKX's prevSeqId.
	Prev    int64
	HasPrev bool
}

// after reports whether e is newer than l.
func (e EventID) after(l EventID) bool {
	return e.Hi > l.Hi || (e.Hi == l.Hi && e.Sub > l.Sub)
}

// continues reports whether e is the event right after l in a
// consecutive sequence: its Prev is l's Hi, or l.Hi+1 falls in
// [e.Lo, e.Hi] (a delta may cover ids the previous one did too).
func (e EventID) continues(l EventID) bool {
	if e.HasPrev {
		return e.Prev == l.Hi
	}
	return e.Lo <= l.Hi+1 && l.Hi+1 <= e.Hi
}
