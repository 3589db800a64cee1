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
		return appendTrade(dst, x.Exchange, unified, trade{strconv.FormatInt(id, 10), v[0], v[1], side, ts}), true
	case kind == "ticker":
		// USD-M's 24 h ticker has no best bid and ask (spot's has): the
		// fields sent are given, as for Bybit.
		ts, ok1 := jsonscan.Int(data, "E")
		v, ok2 := all("c", "v")
		if !ok1 || !ok2 {
			return dst, false
		}
		bid, _ := str(data, "b")
		ask, _ := str(data, "a")
		return appendTicker(dst, x.Exchange, unified, [4]string{bid, ask, v[0], v[1]}, ts), true
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
		return appendCandle(dst, x.Exchange, unified, candle{v[0], start, v[1], v[2], v[3], v[4], v[5], string(closed), ts}), true
	}
	return dst, false
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
		return appendLevelsEvent(dst, "book_snapshot", exchange, unified, m.Bids, m.Asks, 0), true
	case "update":
		return appendLevelsEvent(dst, "book_update", exchange, unified, m.B, m.A, 0), true
	}
	return dst, false
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
