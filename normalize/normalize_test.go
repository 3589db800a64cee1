package normalize

import (
	"encoding/json"
	"testing"
)

func TestBinance(t *testing.T) {
	syms := &Symbols{}
	syms.Set(map[string]string{"BTCUSDT": "BTC/USDT"})
	set := Set{"binance": Binance{Exchange: "binance", Symbols: syms}}
	tests := []struct {
		name, key, data, want string
	}{
		{"trade, taker sold", "binance:btcusdt@trade",
			`{"e":"trade","E":1700000000001,"s":"BTCUSDT","t":42,"p":"37000.10","q":"0.010","T":1700000000000,"m":true,"M":true}`,
			`{"type":"trade","exchange":"binance","symbol":"BTC/USDT","id":"42","price":"37000.10","amount":"0.010","side":"sell","timestamp":1700000000000}`},
		{"trade, taker bought (M differs from m)", "binance:btcusdt@trade",
			`{"e":"trade","E":1,"s":"BTCUSDT","t":43,"p":"1","q":"2","T":5,"m":false,"M":true}`,
			`{"type":"trade","exchange":"binance","symbol":"BTC/USDT","id":"43","price":"1","amount":"2","side":"buy","timestamp":5}`},
		{"aggTrade", "binance:btcusdt@aggTrade",
			`{"e":"aggTrade","E":1,"s":"BTCUSDT","a":7,"p":"1.5","q":"3","f":100,"l":105,"T":9,"m":false,"M":true}`,
			`{"type":"trade","exchange":"binance","symbol":"BTC/USDT","id":"7","price":"1.5","amount":"3","side":"buy","timestamp":9}`},
		{"ticker (A and B are sizes)", "binance:btcusdt@ticker",
			`{"e":"24hrTicker","E":11,"s":"BTCUSDT","p":"1","P":"2","c":"100.5","Q":"3","b":"100.4","B":"9","a":"100.6","A":"8","o":"99","h":"101","l":"98","v":"1234.5","q":"5"}`,
			`{"type":"ticker","exchange":"binance","symbol":"BTC/USDT","bid":"100.4","ask":"100.6","last":"100.5","volume":"1234.5","timestamp":11}`},
		{"USD-M ticker: no best bid and ask", "binance:btcusdt@ticker",
			`{"e":"24hrTicker","E":11,"s":"BTCUSDT","p":"1","P":"2","w":"100","c":"100.5","Q":"3","o":"99","h":"101","l":"98","v":"1234.5","q":"5","O":1,"C":11,"F":1,"L":9,"n":9}`,
			`{"type":"ticker","exchange":"binance","symbol":"BTC/USDT","last":"100.5","volume":"1234.5","timestamp":11}`},
		{"ticker without a last price", "binance:btcusdt@ticker", `{"e":"24hrTicker","E":11,"s":"BTCUSDT","b":"1","a":"2","v":"3"}`, ""},
		{"kline (L is an id, V a volume)", "binance:btcusdt@kline_1m",
			`{"e":"kline","E":12,"s":"BTCUSDT","k":{"t":60000,"T":119999,"s":"BTCUSDT","i":"1m","f":1,"L":9,"o":"1","c":"2","h":"3","l":"0.5","v":"10","n":9,"x":false,"q":"20","V":"4","Q":"8","B":"0"}}`,
			`{"type":"candle","exchange":"binance","symbol":"BTC/USDT","interval":"1m","start":60000,"open":"1","high":"3","low":"0.5","close":"2","volume":"10","closed":false,"timestamp":12}`},
		{"book snapshot", "binance:btcusdt@book@5",
			`{"type":"snapshot","lastUpdateId":7,"bids":[["1.0","2"]],"asks":[],"gap":true}`,
			`{"type":"book_snapshot","exchange":"binance","symbol":"BTC/USDT","bids":[["1.0","2"]],"asks":[]}`},
		{"book update", "binance:btcusdt@book",
			`{"type":"update","U":8,"u":9,"b":[],"a":[["3","0"]]}`,
			`{"type":"book_update","exchange":"binance","symbol":"BTC/USDT","bids":[],"asks":[["3","0"]]}`},
		{"book stale notice: as it is", "binance:btcusdt@book", `{"type":"stale","reason":"x"}`, ""},
		{"symbol not known yet", "binance:ethusdt@trade", `{"t":1,"p":"1","q":"1","T":1,"m":true}`, ""},
		{"unreadable event", "binance:btcusdt@trade", `{"t":"x"}`, ""},
		{"kline with a non-boolean x", "binance:btcusdt@kline_1m", `{"E":1,"k":{"t":1,"i":"1m","o":"1","h":"1","l":"1","c":"1","v":"1","x":"no"}}`, ""},
		{"another exchange", "okx:trades:BTC-USDT", `{}`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := set.Normalize(nil, tc.key, []byte(tc.data))
			if tc.want == "" {
				if ok {
					t.Fatalf("normalized to %s; want no normalized form", got)
				}
				return
			}
			if !ok || string(got) != tc.want {
				t.Fatalf("got %s (%v)\nwant %s", got, ok, tc.want)
			}
			if !json.Valid(got) {
				t.Fatalf("not JSON: %s", got)
			}
		})
	}
	for key, want := range map[string]bool{
		"binance:btcusdt@trade": true, "binance:btcusdt@kline_1h": true, "binance:btcusdt@book@20": true,
		"binance:btcusdt@depth": false, "binance:btcusdt@bookTicker": false, "binance:btcusdt@kline_1h@+08:00": false, "kraken:x": false,
	} {
		if got := set.Normalizable(key); got != want {
			t.Errorf("Normalizable(%q) = %v; want %v", key, got, want)
		}
	}
}

func TestUnifiedSymbol(t *testing.T) {
	tests := []struct{ symbol, base, quote, settle, want string }{
		{"BTCUSDT", "BTC", "USDT", "", "BTC/USDT"},
		{"BTCUSDT", "BTC", "USDT", "USDT", "BTC/USDT:USDT"},
		{"BTCUSDT_250328", "BTC", "USDT", "USDT", "BTC/USDT:USDT-250328"},
	}
	for _, tc := range tests {
		if got := UnifiedSymbol(tc.symbol, tc.base, tc.quote, tc.settle); got != tc.want {
			t.Errorf("UnifiedSymbol(%q) = %q; want %q", tc.symbol, got, tc.want)
		}
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"plain":          `"plain"`,
		"a\"b\\c":        `"a\"b\\c"`,
		"\x01\n":         `"\u0001\u000a"`,
		"\x7f\xff é":     "\"\x7f\xff é\"",
		"37000.10000000": `"37000.10000000"`,
	} {
		got := string(quote(nil, in))
		if got != want {
			t.Errorf("quote(%q) = %s; want %s", in, got, want)
		}
	}
}
