package normalize

import (
	"strconv"
	"strings"

	"github.com/marketgate/marketgate/book"
	"github.com/marketgate/marketgate/internal/jsonscan"
)

// OKX and Bybit send several events in one message (data is an array):
// their normalized form is then a JSON array of normalized objects, one
// per event; a message of one event is one object, as Binance's.

// items calls fn with each element of the JSON array arr, in order; it
// reports false when arr is not an array or fn refuses an element.
func items(arr []byte, fn func(item []byte) bool) bool {
	i := jsonscan.SkipSpace(arr, 0)
	if i >= len(arr) || arr[i] != '[' {
		return false
	}
	i = jsonscan.SkipSpace(arr, i+1)
	if i < len(arr) && arr[i] == ']' {
		return true
	}
	for i < len(arr) {
		e := jsonscan.SkipValue(arr, i)
		if e < 0 || !fn(arr[i:e]) {
			return false
		}
		i = jsonscan.SkipSpace(arr, e)
		if i >= len(arr) {
			return false
		}
		if arr[i] == ']' {
			return true
		}
		if arr[i] != ',' {
			return false
		}
		i = jsonscan.SkipSpace(arr, i+1)
	}
	return false
}

// many appends the normalized objects of the array arr (one per element,
// by one), as one object or an array of them.
func many(dst []byte, arr []byte, one func(dst, item []byte) ([]byte, bool)) ([]byte, bool) {
	start, n := len(dst), 0
	dst = append(dst, '[')
	ok := items(arr, func(item []byte) bool {
		if n > 0 {
			dst = append(dst, ',')
		}
		var good bool
		dst, good = one(dst, item)
		n++
		return good
	})
	if !ok || n == 0 {
		return dst[:start], false
	}
	if n == 1 { // one event: the object itself
		obj := append([]byte(nil), dst[start+1:]...)
		return append(dst[:start], obj...), true
	}
	return append(dst, ']'), true
}

// strs reads the string fields keys of obj; ok false if one is missing.
func strs(obj []byte, keys ...string) ([]string, bool) {
	out := make([]string, len(keys))
	for i, k := range keys {
		v, ok := str(obj, k)
		if !ok {
			return nil, false
		}
		out[i] = v
	}
	return out, true
}

// intStr reads a field that is a number or a string of digits.
func intStr(obj []byte, key string) (int64, bool) {
	if v, ok := jsonscan.Int(obj, key); ok {
		return v, true
	}
	s, ok := str(obj, key)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil
}

// OKX normalizes OKX v5 public channels: trades, tickers, candle<bar>,
// books5 (a 5-level snapshot), and the gateway's books (book:<instId>).
// Unified symbols come from the instId itself: BTC-USDT is BTC/USDT,
// BTC-USDT-SWAP BTC/USDT:USDT, BTC-USD-SWAP BTC/USD:BTC, a delivery
// contract BTC-USD-250328 BTC/USD:BTC-250328.
type OKX struct {
	// Exchange is the exchange's name in the events, e.g. "okx".
	Exchange string
}

var _ Exchange = OKX{}

// okxUnified returns the unified symbol of an instId.
func okxUnified(inst string) (string, bool) {
	p := strings.Split(inst, "-")
	switch {
	case len(p) == 2:
		return p[0] + "/" + p[1], true
	case len(p) == 3:
		settle := p[0] // inverse: settled in the base
		if p[1] == "USDT" || p[1] == "USDC" {
			settle = p[1]
		}
		u := p[0] + "/" + p[1] + ":" + settle
		if p[2] != "SWAP" {
			u += "-" + p[2]
		}
		return u, true
	}
	return "", false
}

// Normalizable implements Exchange.
func (OKX) Normalizable(name string) bool {
	if _, _, ok, err := (book.OKX{}).ParseBook(name); ok {
		return err == nil
	}
	ch, _, _ := strings.Cut(name, ":")
	return ch == "trades" || ch == "tickers" || ch == "books5" || strings.HasPrefix(ch, "candle") && !strings.HasSuffix(ch, "utc")
}

// Append implements Exchange.
func (x OKX) Append(dst []byte, name string, data []byte) ([]byte, bool) {
	ch, inst, _ := strings.Cut(name, ":")
	unified, ok := okxUnified(inst)
	if !ok {
		return dst, false
	}
	if _, _, isBook, _ := (book.OKX{}).ParseBook(name); isBook {
		return appendBook(dst, x.Exchange, unified, data)
	}
	arr, ok := jsonscan.Field(data, "data")
	if !ok {
		return dst, false
	}
	switch {
	case ch == "trades":
		return many(dst, arr, func(b, it []byte) ([]byte, bool) {
			v, ok1 := strs(it, "tradeId", "px", "sz", "side")
			ts, ok2 := intStr(it, "ts")
			if !ok1 || !ok2 || v[3] != "buy" && v[3] != "sell" {
				return b, false
			}
			return appendTrade(b, x.Exchange, unified, trade{v[0], v[1], v[2], v[3], ts}), true
		})
	case ch == "tickers":
		return many(dst, arr, func(b, it []byte) ([]byte, bool) {
			v, ok1 := strs(it, "bidPx", "askPx", "last", "vol24h")
			ts, ok2 := intStr(it, "ts")
			if !ok1 || !ok2 {
				return b, false
			}
			return appendTicker(b, x.Exchange, unified, [4]string(v), ts), true
		})
	case ch == "books5":
		return many(dst, arr, func(b, it []byte) ([]byte, bool) {
			bids, ok1 := okxLevels(it, "bids")
			asks, ok2 := okxLevels(it, "asks")
			if !ok1 || !ok2 {
				return b, false
			}
			return appendLevelsEvent(b, "book_snapshot", x.Exchange, unified, bids, asks, 0), true
		})
	case strings.HasPrefix(ch, "candle"):
		interval := strings.TrimPrefix(ch, "candle")
		return many(dst, arr, func(b, it []byte) ([]byte, bool) {
			var f []string // ts,o,h,l,c,vol,volCcy,volCcyQuote,confirm
			if !items(it, func(v []byte) bool {
				if len(v) < 2 || v[0] != '"' {
					return false
				}
				f = append(f, string(v[1:len(v)-1]))
				return true
			}) || len(f) < 9 {
				return b, false
			}
			start, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return b, false
			}
			return appendCandle(b, x.Exchange, unified, candle{interval, start, f[1], f[2], f[3], f[4], f[5], strconv.FormatBool(f[8] == "1"), 0}), true
		})
	}
	return dst, false
}

// okxLevels reads OKX levels [px, sz, "0", orders] of key in obj.
func okxLevels(obj []byte, key string) ([][2]string, bool) {
	arr, ok := jsonscan.Field(obj, key)
	if !ok {
		return nil, false
	}
	var out [][2]string
	ok = items(arr, func(l []byte) bool {
		var f []string
		if !items(l, func(v []byte) bool {
			if len(v) < 2 || v[0] != '"' {
				return false
			}
			f = append(f, string(v[1:len(v)-1]))
			return true
		}) || len(f) < 2 {
			return false
		}
		out = append(out, [2]string{f[0], f[1]})
		return true
	})
	return out, ok
}

// Bybit normalizes Bybit v5 public topics: publicTrade, tickers,
// kline.<interval>, orderbook.<depth> and the gateway's books
// (book.<symbol>). Unified symbols come from Symbols when it knows the
// symbol, else from a known quote suffix (BTCUSDT: BTC/USDT); Linear
// adds the settle asset (BTC/USDT:USDT).
type Bybit struct {
	// Exchange is the exchange's name in the events: "bybit" or
	// "bybit-linear".
	Exchange string
	// Linear marks USDT/USDC perpetuals.
	Linear bool
	// Symbols, when set, maps symbols to unified ones.
	Symbols *Symbols
}

var _ Exchange = Bybit{}

// bybitQuotes are the quote assets recognised in a symbol's suffix,
// longest first.
var bybitQuotes = []string{"USDT", "USDC", "USDE", "EUR", "BTC", "ETH"}

func (x Bybit) unified(symbol string) (string, bool) {
	if x.Symbols != nil {
		if u, ok := x.Symbols.Unified(symbol); ok {
			return u, true
		}
	}
	for _, q := range bybitQuotes {
		if base, ok := strings.CutSuffix(symbol, q); ok && base != "" {
			if x.Linear {
				return base + "/" + q + ":" + q, true
			}
			return base + "/" + q, true
		}
	}
	if base, ok := strings.CutSuffix(symbol, "PERP"); ok && x.Linear && base != "" { // USDC perpetuals
		return base + "/USDC:USDC", true
	}
	return "", false
}

// bybitSymbol returns the symbol a topic ends with.
func bybitSymbol(topic string) string {
	return topic[strings.LastIndexByte(topic, '.')+1:]
}

// Normalizable implements Exchange.
func (Bybit) Normalizable(name string) bool {
	if _, _, ok, err := (book.Bybit{}).ParseBook(name); ok {
		return err == nil
	}
	t, _, _ := strings.Cut(name, ".")
	return t == "publicTrade" || t == "tickers" || t == "kline" || t == "orderbook"
}

// Append implements Exchange.
func (x Bybit) Append(dst []byte, name string, data []byte) ([]byte, bool) {
	unified, ok := x.unified(bybitSymbol(name))
	if !ok {
		return dst, false
	}
	if _, _, isBook, _ := (book.Bybit{}).ParseBook(name); isBook {
		return appendBook(dst, x.Exchange, unified, data)
	}
	d, ok := jsonscan.Field(data, "data")
	if !ok {
		return dst, false
	}
	t, _, _ := strings.Cut(name, ".")
	switch t {
	case "publicTrade":
		return many(dst, d, func(b, it []byte) ([]byte, bool) {
			v, ok1 := strs(it, "i", "p", "v", "S")
			ts, ok2 := intStr(it, "T")
			if !ok1 || !ok2 || v[3] != "Buy" && v[3] != "Sell" {
				return b, false
			}
			return appendTrade(b, x.Exchange, unified, trade{v[0], v[1], v[2], strings.ToLower(v[3]), ts}), true
		})
	case "tickers":
		// Spot tickers have no best bid and ask, and linear deltas only
		// what changed: the fields sent are given.
		ts, ok := intStr(data, "ts")
		if !ok {
			return dst, false
		}
		var v [4]string
		for i, k := range [4]string{"bid1Price", "ask1Price", "lastPrice", "volume24h"} {
			v[i], _ = str(d, k)
		}
		return appendTicker(dst, x.Exchange, unified, v, ts), true
	case "kline":
		return many(dst, d, func(b, it []byte) ([]byte, bool) {
			v, ok1 := strs(it, "interval", "open", "high", "low", "close", "volume")
			start, ok2 := intStr(it, "start")
			ts, ok3 := intStr(it, "timestamp")
			closed, ok4 := jsonscan.Field(it, "confirm")
			if !ok1 || !ok2 || !ok3 || !ok4 || string(closed) != "true" && string(closed) != "false" {
				return b, false
			}
			return appendCandle(b, x.Exchange, unified, candle{v[0], start, v[1], v[2], v[3], v[4], v[5], string(closed), ts}), true
		})
	case "orderbook":
		typ, ok1 := str(data, "type")
		ts, ok2 := intStr(data, "ts")
		bids, ok3 := okxLevels(d, "b")
		asks, ok4 := okxLevels(d, "a")
		if !ok1 || !ok2 || !ok3 || !ok4 {
			return dst, false
		}
		kind := "book_update"
		if typ == "snapshot" {
			kind = "book_snapshot"
		}
		return appendLevelsEvent(dst, kind, x.Exchange, unified, bids, asks, ts), true
	}
	return dst, false
}
