package normalize

import (
	"encoding/json"
	"testing"
)

func TestVenues(t *testing.T) {
	set := Set{
		"okx":          OKX{Exchange: "okx"},
		"bybit":        Bybit{Exchange: "bybit"},
		"bybit-linear": Bybit{Exchange: "bybit-linear", Linear: true},
	}
	tests := []struct {
		name, key, data, want string
	}{
		{"okx trades, two in one message", "okx:trades:BTC-USDT",
			`{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"130639474","px":"42219.9","sz":"0.12","side":"buy","ts":"1630048897897","count":"3","source":"0","seqId":1234},{"instId":"BTC-USDT","tradeId":"130639475","px":"42220","sz":"1","side":"sell","ts":"1630048897898","count":"1","source":"0","seqId":1235}]}`,
			`[{"type":"trade","exchange":"okx","symbol":"BTC/USDT","id":"130639474","price":"42219.9","amount":"0.12","side":"buy","timestamp":1630048897897},{"type":"trade","exchange":"okx","symbol":"BTC/USDT","id":"130639475","price":"42220","amount":"1","side":"sell","timestamp":1630048897898}]`},
		{"okx swap ticker", "okx:tickers:BTC-USDT-SWAP",
			`{"arg":{"channel":"tickers","instId":"BTC-USDT-SWAP"},"data":[{"instType":"SWAP","instId":"BTC-USDT-SWAP","last":"9999.99","lastSz":"1","askPx":"10000","askSz":"5","bidPx":"9999.9","bidSz":"2","open24h":"9000","high24h":"10000","low24h":"8888","volCcy24h":"2222","vol24h":"2222","sodUtc0":"1","sodUtc8":"1","ts":"1597026383085"}]}`,
			`{"type":"ticker","exchange":"okx","symbol":"BTC/USDT:USDT","bid":"9999.9","ask":"10000","last":"9999.99","volume":"2222","timestamp":1597026383085}`},
		{"okx inverse delivery candle", "okx:candle1m:BTC-USD-250328",
			`{"arg":{"channel":"candle1m","instId":"BTC-USD-250328"},"data":[["1597026383085","8533.02","8553.74","8527.17","8548.26","45247","529.5858061","5.29","1"]]}`,
			`{"type":"candle","exchange":"okx","symbol":"BTC/USD:BTC-250328","interval":"1m","start":1597026383085,"open":"8533.02","high":"8553.74","low":"8527.17","close":"8548.26","volume":"45247","closed":true}`},
		{"okx books5", "okx:books5:BTC-USDT",
			`{"arg":{"channel":"books5","instId":"BTC-USDT"},"data":[{"asks":[["8446","95","0","3"]],"bids":[["8445","1","0","1"]],"instId":"BTC-USDT","ts":"1","seqId":5}]}`,
			`{"type":"book_snapshot","exchange":"okx","symbol":"BTC/USDT","bids":[["8445","1"]],"asks":[["8446","95"]]}`},
		{"okx kept book", "okx:book:BTC-USDT", `{"type":"update","U":2,"u":3,"b":[["1","0"]],"a":[]}`,
			`{"type":"book_update","exchange":"okx","symbol":"BTC/USDT","bids":[["1","0"]],"asks":[]}`},
		{"bybit trade (s and S, t and T differ)", "bybit:publicTrade.BTCUSDT",
			`{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1672304486868,"data":[{"T":1672304486865,"s":"BTCUSDT","S":"Buy","v":"0.001","p":"16578.50","L":"PlusTick","i":"20f43950-d8dd-5b31-9112-a178eb6023af","BT":false}]}`,
			`{"type":"trade","exchange":"bybit","symbol":"BTC/USDT","id":"20f43950-d8dd-5b31-9112-a178eb6023af","price":"16578.50","amount":"0.001","side":"buy","timestamp":1672304486865}`},
		{"bybit linear ticker delta: the fields sent", "bybit-linear:tickers.BTCUSDT",
			`{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTCUSDT","bid1Price":"17215.50","ask1Price":"17215.60"},"cs":1,"ts":1673853746003}`,
			`{"type":"ticker","exchange":"bybit-linear","symbol":"BTC/USDT:USDT","bid":"17215.50","ask":"17215.60","timestamp":1673853746003}`},
		{"bybit kline", "bybit:kline.5.BTCUSDT",
			`{"topic":"kline.5.BTCUSDT","data":[{"start":1672324800000,"end":1672325099999,"interval":"5","open":"16649.5","close":"16677","high":"16677","low":"16608","volume":"2.081","turnover":"34666.4005","confirm":false,"timestamp":1672324988882}],"ts":1672324988882,"type":"snapshot"}`,
			`{"type":"candle","exchange":"bybit","symbol":"BTC/USDT","interval":"5","start":1672324800000,"open":"16649.5","high":"16677","low":"16608","close":"16677","volume":"2.081","closed":false,"timestamp":1672324988882}`},
		{"bybit orderbook delta", "bybit-linear:orderbook.50.BTCUSDT",
			`{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1687940967466,"data":{"s":"BTCUSDT","b":[["30247.20","30.028"]],"a":[["30248.70","0"]],"u":177400507,"seq":66544703342},"cts":1687940967464}`,
			`{"type":"book_update","exchange":"bybit-linear","symbol":"BTC/USDT:USDT","bids":[["30247.20","30.028"]],"asks":[["30248.70","0"]],"timestamp":1687940967466}`},
		{"bybit trade with a bad side", "bybit:publicTrade.BTCUSDT", `{"data":[{"T":1,"S":"Up","v":"1","p":"1","i":"x"}]}`, ""},
		{"okx unknown instId shape", "okx:trades:BTC", `{"data":[]}`, ""},
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
				t.Fatalf("got  %s (%v)\nwant %s", got, ok, tc.want)
			}
			if !json.Valid(got) {
				t.Fatalf("not JSON: %s", got)
			}
		})
	}
}
