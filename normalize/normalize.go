// Package normalize turns exchanges' market-data events into one schema
// per class, the same for every exchange (the subscribe option
// "format":"normalized"), after the models of tardis, cryptofeed and
// ccxt:
//
//	{"type":"trade","exchange":"binance","symbol":"BTC/USDT","id":"…","price":"…","amount":"…","side":"buy","timestamp":1700000000000}
//	{"type":"ticker","exchange":…,"symbol":…,"bid":"…","ask":"…","last":"…","volume":"…","timestamp":…}
//	{"type":"candle","exchange":…,"symbol":…,"interval":"1m","start":…,"open":"…","high":"…","low":"…","close":"…","volume":"…","closed":false,"timestamp":…}
//	{"type":"book_snapshot"|"book_update","exchange":…,"symbol":…,"bids":[["price","amount"],…],"asks":[…],"timestamp":…}
//
// Prices and amounts stay the exchange's decimal strings; side is the
// taker's; timestamps are the exchange's, in Unix milliseconds; symbols
// are unified as ccxt spells them: BASE/QUOTE, and BASE/QUOTE:SETTLE for
// perpetual contracts. Each exchange implements [Exchange]; a [Set]
// serves several.
package normalize

import (
	"strconv"
	"strings"
	"sync"
)

// Exchange normalizes the events of one exchange's streams.
type Exchange interface {
	// Normalizable reports whether the events of stream name (without
	// the exchange prefix) have a normalized form.
	Normalizable(name string) bool
	// Append appends the normalized form of one event of stream name to
	// dst. ok is false for an event that has none (a message the
	// gateway adds, one it cannot read, a symbol not known yet): it is
	// then delivered as it is.
	Append(dst []byte, name string, data []byte) (out []byte, ok bool)
}

// Set is the normalizers of several exchanges, by exchange name.
type Set map[string]Exchange

// Normalizable reports whether stream key ("<exchange>:<name>") has a
// normalized form.
func (s Set) Normalizable(key string) bool {
	ex, name, ok := strings.Cut(key, ":")
	x := s[ex]
	return ok && x != nil && x.Normalizable(name)
}

// Normalize appends the normalized form of one event of stream key to
// dst; see [Exchange.Append].
func (s Set) Normalize(dst []byte, key string, data []byte) ([]byte, bool) {
	ex, name, ok := strings.Cut(key, ":")
	x := s[ex]
	if !ok || x == nil {
		return dst, false
	}
	return x.Append(dst, name, data)
}

// Symbols maps an exchange's symbols to unified ones ("BTCUSDT" →
// "BTC/USDT"). It is filled from the exchange's symbol list and read on
// every event; safe for concurrent use.
type Symbols struct {
	mu sync.RWMutex
	m  map[string]string
}

// Set replaces the mapping.
func (s *Symbols) Set(m map[string]string) {
	s.mu.Lock()
	s.m = m
	s.mu.Unlock()
}

// Unified returns the unified name of symbol.
func (s *Symbols) Unified(symbol string) (string, bool) {
	s.mu.RLock()
	u, ok := s.m[symbol]
	s.mu.RUnlock()
	return u, ok
}

// Len returns the number of symbols known.
func (s *Symbols) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.m)
}

// quote appends s as a JSON string: '"', '\\' and control characters
// escaped, every other byte as it is (strconv.Quote's \x escapes are not
// JSON).
func quote(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// head appends the start of a normalized event: {"type":…,"exchange":…,
// "symbol":….
func head(b []byte, typ, exchange, symbol string) []byte {
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, `","exchange":"`...)
	b = append(b, exchange...)
	b = append(b, `","symbol":`...)
	return quote(b, symbol)
}

// field appends ,"name":"value" with value quoted.
func field(b []byte, name, value string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, `":`...)
	return quote(b, value)
}

// intField appends ,"name":value.
func intField(b []byte, name string, v int64) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, `":`...)
	return strconv.AppendInt(b, v, 10)
}

// levels appends ,"name":[["p","a"],…].
func levels(b []byte, name string, ls [][2]string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, `":[`...)
	for i, l := range ls {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = quote(b, l[0])
		b = append(b, ',')
		b = quote(b, l[1])
		b = append(b, ']')
	}
	return append(b, ']')
}

// trade is one trade, as the normalized form says it.
type trade struct {
	id, price, amount, side string
	ts                      int64
}

// appendTrade appends a normalized trade.
func appendTrade(b []byte, exchange, symbol string, t trade) []byte {
	b = head(b, "trade", exchange, symbol)
	b = field(b, "id", t.id)
	b = field(b, "price", t.price)
	b = field(b, "amount", t.amount)
	b = field(b, "side", t.side)
	return append(intField(b, "timestamp", t.ts), '}')
}

// candle is one candle; closed is "true" or "false", ts 0 when the
// exchange gives no event time.
type candle struct {
	interval                               string
	start                                  int64
	open, high, low, close, volume, closed string
	ts                                     int64
}

// appendCandle appends a normalized candle.
func appendCandle(b []byte, exchange, symbol string, c candle) []byte {
	b = head(b, "candle", exchange, symbol)
	b = field(b, "interval", c.interval)
	b = intField(b, "start", c.start)
	b = field(b, "open", c.open)
	b = field(b, "high", c.high)
	b = field(b, "low", c.low)
	b = field(b, "close", c.close)
	b = field(b, "volume", c.volume)
	b = append(b, `,"closed":`...)
	b = append(b, c.closed...)
	if c.ts != 0 {
		b = intField(b, "timestamp", c.ts)
	}
	return append(b, '}')
}

// tickerFields are the normalized ticker's fields, in order.
var tickerFields = [4]string{"bid", "ask", "last", "volume"}

// appendTicker appends a normalized ticker of the values given (an empty
// one, which the exchange did not send, is left out).
func appendTicker(b []byte, exchange, symbol string, values [4]string, ts int64) []byte {
	b = head(b, "ticker", exchange, symbol)
	for i, v := range values {
		if v != "" {
			b = field(b, tickerFields[i], v)
		}
	}
	return append(intField(b, "timestamp", ts), '}')
}

// appendLevelsEvent appends a normalized book_snapshot or book_update;
// ts 0 when unknown.
func appendLevelsEvent(b []byte, typ, exchange, symbol string, bids, asks [][2]string, ts int64) []byte {
	b = head(b, typ, exchange, symbol)
	b = levels(b, "bids", bids)
	b = levels(b, "asks", asks)
	if ts != 0 {
		b = intField(b, "timestamp", ts)
	}
	return append(b, '}')
}
