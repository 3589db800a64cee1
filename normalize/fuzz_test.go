package normalize

import (
	"encoding/json"
	"testing"
)

// FuzzNormalize: whatever an exchange sends, normalizing it never panics
// and, when it succeeds, yields valid JSON.
func FuzzNormalize(f *testing.F) {
	syms := &Symbols{}
	syms.Set(map[string]string{"BTCUSDT": "BTC/USDT"})
	set := Set{"binance": Binance{Exchange: "binance", Symbols: syms}, "okx": OKX{Exchange: "okx"}, "bybit": Bybit{Exchange: "bybit"}}
	keys := []string{"binance:btcusdt@trade", "binance:btcusdt@aggTrade", "binance:btcusdt@ticker", "binance:btcusdt@kline_1m", "binance:btcusdt@book",
		"okx:trades:BTC-USDT", "okx:tickers:BTC-USDT-SWAP", "okx:candle1m:BTC-USDT", "okx:books5:BTC-USDT", "okx:book:BTC-USDT",
		"bybit:publicTrade.BTCUSDT", "bybit:tickers.BTCUSDT", "bybit:kline.1.BTCUSDT", "bybit:orderbook.50.BTCUSDT", "bybit:book.BTCUSDT"}
	f.Add(uint8(0), []byte(`{"t":1,"p":"1","q":"2","T":3,"m":true}`))
	f.Add(uint8(5), []byte(`{"data":[{"tradeId":"1","px":"1","sz":"1","side":"buy","ts":"1"}]}`))
	f.Add(uint8(7), []byte(`{"data":[["1","2","3","4","5","6","7","8","1"]]}`))
	f.Add(uint8(10), []byte(`{"data":[{"T":1,"S":"Buy","v":"1","p":"1","i":"a\"b"}]}`))
	f.Add(uint8(4), []byte(`{"type":"snapshot","bids":[["1","2"]],"asks":[]}`))
	f.Fuzz(func(t *testing.T, k uint8, data []byte) {
		key := keys[int(k)%len(keys)]
		out, ok := set.Normalize(nil, key, data)
		if ok && !json.Valid(out) {
			t.Fatalf("%s: %q normalized to invalid JSON %q", key, data, out)
		}
	})
}
