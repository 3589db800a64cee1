package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/marketgate/marketgate/internal/browsertest"
	"github.com/marketgate/marketgate/web"
)

// keyCase is one call of the client's streamKey: the key it must return,
// or the code of the StreamKeyError it must throw.
type keyCase struct {
	Exchange string         `json:"exchange"`
	Class    string         `json:"class"`
	Symbol   string         `json:"symbol"`
	Options  map[string]any `json:"options,omitempty"`
	Want     string         `json:"-"`
	WantCode string         `json:"-"`
}

var keyCases = []keyCase{
	// Each class on each exchange.
	{Exchange: "binance", Class: "trade", Symbol: "BTC/USDT", Want: "binance:btcusdt@trade"},
	{Exchange: "binance", Class: "ticker", Symbol: "BTC/USDT", Want: "binance:btcusdt@ticker"},
	{Exchange: "binance", Class: "candle", Symbol: "ETH/USDT", Options: map[string]any{"interval": "1h"}, Want: "binance:ethusdt@kline_1h"},
	{Exchange: "binance", Class: "candle", Symbol: "ETH/USDT", Want: "binance:ethusdt@kline_1m"},
	{Exchange: "binance", Class: "candle", Symbol: "ETH/USDT", Options: map[string]any{"interval": "1M"}, Want: "binance:ethusdt@kline_1M"},
	{Exchange: "binance", Class: "book", Symbol: "BTC/USDT", Want: "binance:btcusdt@book"},
	{Exchange: "binance", Class: "book", Symbol: "BTC/USDT", Options: map[string]any{"depth": 20}, Want: "binance:btcusdt@book@20"},
	{Exchange: "binance", Class: "trade", Symbol: "btc/usdt", Want: "binance:btcusdt@trade"},
	{Exchange: "binance-futures", Class: "trade", Symbol: "BTC/USDT:USDT", Want: "binance-futures:btcusdt@aggTrade"},
	{Exchange: "binance-futures", Class: "ticker", Symbol: "BTC/USDT:USDT", Want: "binance-futures:btcusdt@ticker"},
	{Exchange: "binance-futures", Class: "candle", Symbol: "BTC/USDT:USDT", Options: map[string]any{"interval": "4h"}, Want: "binance-futures:btcusdt@kline_4h"},
	{Exchange: "binance-futures", Class: "book", Symbol: "ETH/USDC:USDC", Options: map[string]any{"depth": 5}, Want: "binance-futures:ethusdc@book@5"},
	{Exchange: "okx", Class: "trade", Symbol: "BTC/USDT", Want: "okx:trades:BTC-USDT"},
	{Exchange: "okx", Class: "ticker", Symbol: "BTC/USDT", Want: "okx:tickers:BTC-USDT"},
	{Exchange: "okx", Class: "candle", Symbol: "BTC/USDT", Want: "okx:candle1m:BTC-USDT"},
	{Exchange: "okx", Class: "candle", Symbol: "BTC/USDT", Options: map[string]any{"interval": "1h"}, Want: "okx:candle1H:BTC-USDT"},
	{Exchange: "okx", Class: "candle", Symbol: "BTC/USDT", Options: map[string]any{"interval": "1d"}, Want: "okx:candle1D:BTC-USDT"},
	{Exchange: "okx", Class: "book", Symbol: "BTC/USDT", Want: "okx:book:BTC-USDT"},
	{Exchange: "okx", Class: "book", Symbol: "BTC/USDT", Options: map[string]any{"depth": 10}, Want: "okx:book10:BTC-USDT"},
	{Exchange: "okx", Class: "trade", Symbol: "BTC/USDT:USDT", Want: "okx:trades:BTC-USDT-SWAP"},
	{Exchange: "okx", Class: "book", Symbol: "ETH/USDT:USDT", Want: "okx:book:ETH-USDT-SWAP"},
	{Exchange: "okx", Class: "trade", Symbol: "BTC/USD:BTC", Want: "okx:trades:BTC-USD-SWAP"}, // inverse: settled in the base
	{Exchange: "bybit", Class: "trade", Symbol: "BTC/USDT", Want: "bybit:publicTrade.BTCUSDT"},
	{Exchange: "bybit", Class: "ticker", Symbol: "BTC/USDT", Want: "bybit:tickers.BTCUSDT"},
	{Exchange: "bybit", Class: "candle", Symbol: "BTC/USDT", Want: "bybit:kline.1.BTCUSDT"},
	{Exchange: "bybit", Class: "candle", Symbol: "BTC/USDT", Options: map[string]any{"interval": "4h"}, Want: "bybit:kline.240.BTCUSDT"},
	{Exchange: "bybit", Class: "candle", Symbol: "BTC/USDT", Options: map[string]any{"interval": "1d"}, Want: "bybit:kline.D.BTCUSDT"},
	{Exchange: "bybit", Class: "book", Symbol: "BTC/USDT", Want: "bybit:book.BTCUSDT"},
	{Exchange: "bybit", Class: "book", Symbol: "BTC/USDT", Options: map[string]any{"depth": 50}, Want: "bybit:book.50.BTCUSDT"},
	{Exchange: "bybit-linear", Class: "book", Symbol: "BTC/USDT:USDT", Want: "bybit-linear:book.BTCUSDT"},
	{Exchange: "bybit-linear", Class: "trade", Symbol: "ETH/USDT:USDT", Want: "bybit-linear:publicTrade.ETHUSDT"},
	{Exchange: "bybit-linear", Class: "ticker", Symbol: "BTC/USDC:USDC", Want: "bybit-linear:tickers.BTCPERP"},
	{Exchange: "bybit-linear", Class: "candle", Symbol: "SOL/USDT:USDT", Options: map[string]any{"interval": "15m"}, Want: "bybit-linear:kline.15.SOLUSDT"},

	// What has no key, with the error's code.
	{Exchange: "kraken", Class: "trade", Symbol: "BTC/USDT", WantCode: "unknown_exchange"},
	{Exchange: "__proto__", Class: "trade", Symbol: "BTC/USDT", WantCode: "unknown_exchange"},
	{Exchange: "binance", Class: "depth", Symbol: "BTC/USDT", WantCode: "unknown_class"},
	{Exchange: "binance", Class: "trade", Symbol: "BTCUSDT", WantCode: "bad_symbol"},
	{Exchange: "binance", Class: "trade", Symbol: "BTC/USDT:USDT", WantCode: "bad_symbol"},    // a perpetual on spot
	{Exchange: "bybit", Class: "trade", Symbol: "BTC/USDT:USDT", WantCode: "bad_symbol"},      // a perpetual on spot
	{Exchange: "binance-futures", Class: "trade", Symbol: "BTC/USDT", WantCode: "bad_symbol"}, // spot on a perpetuals venue
	{Exchange: "bybit-linear", Class: "trade", Symbol: "BTC/USDT", WantCode: "bad_symbol"},
	{Exchange: "binance-futures", Class: "trade", Symbol: "BTC/USD:BTC", WantCode: "bad_symbol"}, // inverse: COIN-M, not carried
	{Exchange: "bybit-linear", Class: "trade", Symbol: "BTC/EUR:EUR", WantCode: "bad_symbol"},
	{Exchange: "okx", Class: "trade", Symbol: "BTC/USD:USDT", WantCode: "bad_symbol"},
	{Exchange: "binance-futures", Class: "trade", Symbol: "BTC/USDT:USDT-250328", WantCode: "bad_symbol"}, // dated
	{Exchange: "binance", Class: "trade", Symbol: "BTC/USDT/X", WantCode: "bad_symbol"},
	{Exchange: "binance", Class: "trade", Symbol: "", WantCode: "bad_symbol"},
	{Exchange: "bybit", Class: "candle", Symbol: "BTC/USDT", Options: map[string]any{"interval": "1s"}, WantCode: "bad_interval"},
	{Exchange: "binance-futures", Class: "candle", Symbol: "BTC/USDT:USDT", Options: map[string]any{"interval": "1s"}, WantCode: "bad_interval"},
	{Exchange: "okx", Class: "candle", Symbol: "BTC/USDT", Options: map[string]any{"interval": "1H"}, WantCode: "bad_interval"}, // unified names only
	{Exchange: "binance", Class: "book", Symbol: "BTC/USDT", Options: map[string]any{"depth": 7}, WantCode: "bad_depth"},
	{Exchange: "okx", Class: "book", Symbol: "BTC/USDT", Options: map[string]any{"depth": "20"}, WantCode: "bad_depth"},
}

// startStatic serves the web routes alone (no WebSockets) on loopback
// until the test ends, for tests that only load the client.
func startStatic(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := web.New(web.Config{Listener: ln, WebSockets: http.NotFoundHandler()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("web Run = %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// TestStreamKey runs the client's streamKey in Chromium over keyCases:
// the key for each exchange and class, and a StreamKeyError with the
// right code (and a message) for what has no key. It also checks that
// orderBook takes every book key streamKey makes and no other key, the
// frozen exchanges list, and candleIntervals.
func TestStreamKey(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	base := startStatic(t)
	br := browsertest.Start(t, time.Minute)
	cases, err := json.Marshal(keyCases)
	if err != nil {
		t.Fatal(err)
	}
	br.Do("load the client", chromedp.Navigate(base+"/healthz"),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`import('/marketgate.js').then((m) => {
			window.keys = %s.map((c) => {
				try { return { key: m.streamKey(c.exchange, c.class, c.symbol, c.options) }; }
				catch (e) { return { name: e.name, code: e.code, msg: e.message }; }
			});
			// orderBook takes every book key streamKey makes, and no other key.
			const ws = class { send() {} close() {} };
			const c = m.connect('ws://test.invalid/ws', { WebSocket: ws, pingInterval: 0 });
			const takes = (k) => { try { c.orderBook(k).close(); return true; } catch { return false; } };
			window.books = window.keys.filter((r) => r.key && /book/.test(r.key)).map((r) => [r.key, takes(r.key)])
				.concat(['okx:trades:BTC-USDT', 'okx:books:BTC-USDT', 'okx:books5:BTC-USDT', 'bybit:orderbook.50.BTCUSDT',
					'binance:btcusdt@bookTicker', 'binance:btcusdt@depth', 'btcusdt@book', 'bybit:book.'].map((k) => [k, takes(k)]));
			window.exchanges = m.exchanges;
			window.frozen = Object.isFrozen(m.exchanges) && m.exchanges.every(Object.isFrozen);
			window.intervals = m.candleIntervals('bybit');
		}, (e) => { window.keys = String(e); })`, cases)))
	br.Poll(10*time.Second, "streamKey's answers", `Array.isArray(window.keys)`, `String(window.keys)`)

	var got []struct{ Key, Name, Code, Msg string }
	if err := json.Unmarshal([]byte(browsertest.Eval[string](br, `JSON.stringify(window.keys)`)), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(keyCases) {
		t.Fatalf("%d answers for %d cases", len(got), len(keyCases))
	}
	for i, c := range keyCases {
		g := got[i]
		call := fmt.Sprintf("streamKey(%q, %q, %q, %v)", c.Exchange, c.Class, c.Symbol, c.Options)
		switch {
		case c.Want != "" && g.Key != c.Want:
			t.Errorf("%s = %q (error %s: %s); want %q", call, g.Key, g.Code, g.Msg, c.Want)
		case c.WantCode != "" && (g.Code != c.WantCode || g.Name != "StreamKeyError" || g.Msg == ""):
			t.Errorf("%s: key %q, error %s %q: %q; want a StreamKeyError %q", call, g.Key, g.Name, g.Code, g.Msg, c.WantCode)
		}
	}

	var books [][2]any
	if err := json.Unmarshal([]byte(browsertest.Eval[string](br, `JSON.stringify(window.books)`)), &books); err != nil {
		t.Fatal(err)
	}
	made := 0
	for _, b := range books {
		key, took := b[0].(string), b[1].(bool)
		want := false
		for _, c := range keyCases {
			if c.Want == key && c.Class == "book" {
				want = true
				made++
			}
		}
		if took != want {
			t.Errorf("orderBook(%q) taken: %v; want %v", key, took, want)
		}
	}
	if made < 8 {
		t.Errorf("orderBook was tried on %d book keys streamKey made; want every one (%v)", made, books)
	}

	var xs []struct{ Name, Title, Market string }
	if err := json.Unmarshal([]byte(browsertest.Eval[string](br, `JSON.stringify(window.exchanges)`)), &xs); err != nil {
		t.Fatal(err)
	}
	want := []string{"binance:spot", "binance-futures:perpetual", "okx:both", "bybit:spot", "bybit-linear:perpetual"}
	if len(xs) != len(want) {
		t.Fatalf("exchanges %+v; want %v", xs, want)
	}
	for i, x := range xs {
		if x.Name+":"+x.Market != want[i] || x.Title == "" {
			t.Errorf("exchanges[%d] = %+v; want %s with a title", i, x, want[i])
		}
	}
	if !browsertest.Eval[bool](br, `window.frozen`) {
		t.Error("the exchanges list can be changed by a page")
	}
	if iv := browsertest.Eval[string](br, `window.intervals.join(' ')`); iv != "1m 3m 5m 15m 30m 1h 2h 4h 6h 12h 1d 1w 1M" {
		t.Errorf("candleIntervals('bybit') = %s", iv)
	}
	br.NoErrors()
}
