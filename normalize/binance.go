package normalize

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/marketgate/marketgate/book"
	"github.com/marketgate/marketgate/internal/jsonscan"
)

// Binance normalizes Binance spot and USD-M futures streams: trade,
// aggTrade, ticker, kline_<interval> and the gateway's book streams
// (<symbol>@book[@<N>]).
type Binance struct {
	// Exchange is the exchange's name in the events, e.g. "binance".
	Exchange string
	// Symbols maps upper-case symbols to unified ones.
	Symbols *Symbols
}

var _ Exchange = Binance{}

// kindOf returns the kind of a Binance stream name: what follows the
// symbol's "@", without a speed suffix.
func kindOf(name string) (symbol, kind string) {
	symbol, kind, _ = strings.Cut(name, "@")
	return symbol, kind
}

// Normalizable implements Exchange.
func (Binance) Normalizable(name string) bool {
	if _, _, ok, err := (book.Binance{}).ParseBook(name); ok {
		return err == nil
	}
	_, kind := kindOf(name)
	switch {
	case kind == "trade", kind == "aggTrade", kind == "ticker":
		return true
	case strings.HasPrefix(kind, "kline_"):
		return !strings.Contains(kind, "@") // not the UTC+8 variant
	}
	return false
}

// str returns the string value of key in obj, as JSON spells it (the
// exchange's decimals need no unescaping); ok false when absent or not a
// plain string.
func str(obj []byte, key string) (string, bool) {
	v, ok := jsonscan.Field(obj, key)
	if !ok || len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' || bytes.IndexByte(v, '\\') >= 0 {
		return "", false
	}
	return string(v[1 : len(v)-1]), true
}

// Append implements Exchange. Fields are read by exact key (jsonscan):
// Binance's events have keys that differ only by case ("m" and "M", "l"
// and "L"), which encoding/json would confuse.
func (x Binance) Append(dst []byte, name string, data []byte) ([]byte, bool) {
	symbol, kind := kindOf(name)
	unified, ok := x.Symbols.Unified(strings.ToUpper(symbol))
	if !ok {
		return dst, false
	}
	if _, _, isBook, _ := (book.Binance{}).ParseBook(name); isBook {
		return appendBook(dst, x.Exchange, unified, data)
	}
	all := func(keys ...string) ([]string, bool) {
		out := make([]string, len(keys))
		for i, k := range keys {
			v, ok := str(data, k)
			if !ok {
				return nil, false
			}
			out[i] = v
		}
		return out, true
	}
	switch {
	case kind == "trade" || kind == "aggTrade":
		idKey := "t"
		if kind == "aggTrade" {
			idKey = "a"
		}
		id, ok1 := jsonscan.Int(data, idKey)
		ts, ok2 := jsonscan.Int(data, "T")
		m, ok3 := jsonscan.Field(data, "m")
		v, ok4 := all("p", "q")
		if !ok1 || !ok2 || !ok3 || !ok4 {
			return dst, false
		}
		side := "buy"
		if string(m) == "true" { // the buyer made the book: the taker sold
			side = "sell"
		}
		dst = head(dst, "trade", x.Exchange, unified)
		dst = field(dst, "id", strconv.FormatInt(id, 10))
		dst = field(dst, "price", v[0])
		dst = field(dst, "amount", v[1])
		dst = field(dst, "side", side)
		dst = intField(dst, "timestamp", ts)
	case kind == "ticker":
		ts, ok1 := jsonscan.Int(data, "E")
		v, ok2 := all("b", "a", "c", "v")
		if !ok1 || !ok2 {
			return dst, false
		}
		dst = head(dst, "ticker", x.Exchange, unified)
		dst = field(dst, "bid", v[0])
		dst = field(dst, "ask", v[1])
		dst = field(dst, "last", v[2])
		dst = field(dst, "volume", v[3])
		dst = intField(dst, "timestamp", ts)
	case strings.HasPrefix(kind, "kline_"):
		ts, ok1 := jsonscan.Int(data, "E")
		k, ok2 := jsonscan.Field(data, "k")
		if !ok1 || !ok2 {
			return dst, false
		}
		data = k
		start, ok3 := jsonscan.Int(k, "t")
		closed, ok4 := jsonscan.Field(k, "x")
		v, ok5 := all("i", "o", "h", "l", "c", "v")
		closed = bytes.TrimSpace(closed)
		if !ok3 || !ok4 || !ok5 || string(closed) != "true" && string(closed) != "false" {
			return dst, false
		}
		dst = head(dst, "candle", x.Exchange, unified)
		dst = field(dst, "interval", v[0])
		dst = intField(dst, "start", start)
		dst = field(dst, "open", v[1])
		dst = field(dst, "high", v[2])
		dst = field(dst, "low", v[3])
		dst = field(dst, "close", v[4])
		dst = field(dst, "volume", v[5])
		dst = append(dst, `,"closed":`...)
		dst = append(dst, closed...)
		dst = intField(dst, "timestamp", ts)
	default:
		return dst, false
	}
	return append(dst, '}'), true
}

// appendBook normalizes the gateway's book messages (package book): a
// snapshot to book_snapshot, an update to book_update; anything else
// (stale notices) has no normalized form.
func appendBook(dst []byte, exchange, unified string, data []byte) ([]byte, bool) {
	var m struct {
		Type string      `json:"type"`
		Bids [][2]string `json:"bids"`
		Asks [][2]string `json:"asks"`
		B    [][2]string `json:"b"`
		A    [][2]string `json:"a"`
	}
	if json.Unmarshal(data, &m) != nil {
		return dst, false
	}
	switch m.Type {
	case "snapshot":
		dst = head(dst, "book_snapshot", exchange, unified)
		dst = levels(dst, "bids", m.Bids)
		dst = levels(dst, "asks", m.Asks)
	case "update":
		dst = head(dst, "book_update", exchange, unified)
		dst = levels(dst, "bids", m.B)
		dst = levels(dst, "asks", m.A)
	default:
		return dst, false
	}
	return append(dst, '}'), true
}

// UnifiedSymbol returns ccxt's unified name of a symbol from its base and
// quote assets: BASE/QUOTE, or BASE/QUOTE:SETTLE for a perpetual
// contract (settle non-empty), with -YYMMDD for a delivery contract whose
// exchange symbol ends in _YYMMDD (Binance's BTCUSDT_250328).
func UnifiedSymbol(symbol, base, quote, settle string) string {
	u := base + "/" + quote
	if settle == "" {
		return u
	}
	u += ":" + settle
	if _, date, ok := strings.Cut(symbol, "_"); ok && date != "" {
		u += "-" + date
	}
	return u
}
