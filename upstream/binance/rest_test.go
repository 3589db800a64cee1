package binance

import (
	"net/url"
	"testing"
	"time"

	"github.com/marketgate/marketgate/market"
)

func TestRESTWeight(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rules REST
		path  string
		query string
		want  int
	}{
		{"spot depth default", SpotREST, "/api/v3/depth", "symbol=BTCUSDT", 5},
		{"spot depth 100", SpotREST, "/api/v3/depth", "limit=100", 5},
		{"spot depth 500", SpotREST, "/api/v3/depth", "limit=500", 25},
		{"spot depth 1000", SpotREST, "/api/v3/depth", "limit=1000", 50},
		{"spot depth 5000", SpotREST, "/api/v3/depth", "limit=5000", 250},
		{"spot klines", SpotREST, "/api/v3/klines", "limit=1000", 2},
		{"spot trades", SpotREST, "/api/v3/trades", "", 25},
		{"spot ticker one", SpotREST, "/api/v3/ticker/24hr", "symbol=BTCUSDT", 2},
		{"spot ticker 21", SpotREST, "/api/v3/ticker/24hr", "symbols=" + url.QueryEscape(`["A","B","C","D","E","F","G","H","I","J","K","L","M","N","O","P","Q","R","S","T","U"]`), 40},
		{"spot ticker all", SpotREST, "/api/v3/ticker/24hr", "", 80},
		{"spot exchangeInfo", SpotREST, "/api/v3/exchangeInfo", "", 20},
		{"spot unknown", SpotREST, "/api/v3/avgPrice", "", unknownWeight},
		{"futures depth default", FuturesREST, "/fapi/v1/depth", "", 10},
		{"futures depth 20", FuturesREST, "/fapi/v1/depth", "limit=20", 2},
		{"futures depth 100", FuturesREST, "/fapi/v1/depth", "limit=100", 5},
		{"futures depth 1000", FuturesREST, "/fapi/v1/depth", "limit=1000", 20},
		{"futures klines default", FuturesREST, "/fapi/v1/klines", "", 5},
		{"futures klines 99", FuturesREST, "/fapi/v1/klines", "limit=99", 1},
		{"futures klines 1500", FuturesREST, "/fapi/v1/klines", "limit=1500", 10},
		{"futures trades", FuturesREST, "/fapi/v1/trades", "", 5},
		{"futures ticker one", FuturesREST, "/fapi/v1/ticker/24hr", "symbol=BTCUSDT", 1},
		{"futures ticker all", FuturesREST, "/fapi/v1/ticker/24hr", "", 40},
		{"futures exchangeInfo", FuturesREST, "/fapi/v1/exchangeInfo", "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, _ := url.ParseQuery(tc.query)
			if got := tc.rules.Weight(tc.path, q); got != tc.want {
				t.Errorf("Weight(%s?%s) = %d; want %d", tc.path, tc.query, got, tc.want)
			}
		})
	}
}

func TestRESTValidate(t *testing.T) {
	listed := func(s string) bool { return s == "BTCUSDT" }
	for _, tc := range []struct {
		name  string
		rules REST
		e     market.Endpoint
		query string
		want  string
	}{
		{"depth no symbol", SpotREST, market.EndpointDepth, "limit=5", `{"code":-1102,"msg":"Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."}`},
		{"depth listed", SpotREST, market.EndpointDepth, "symbol=BTCUSDT", ""},
		{"depth unlisted", SpotREST, market.EndpointDepth, "symbol=NOPE", `{"code":-1121,"msg":"Invalid symbol."}`},
		{"depth unlisted, bad limit left to Binance", SpotREST, market.EndpointDepth, "symbol=NOPE&limit=x", ""},
		{"futures depth unlisted, bad limit left to Binance", FuturesREST, market.EndpointDepth, "symbol=NOPE&limit=7", ""},
		{"klines no interval", SpotREST, market.EndpointKlines, "symbol=BTCUSDT", `{"code":-1102,"msg":"Mandatory parameter 'interval' was not sent, was empty/null, or malformed."}`},
		{"klines unknown interval left to Binance", SpotREST, market.EndpointKlines, "symbol=NOPE&interval=7m", ""},
		{"futures klines 1s left to Binance", FuturesREST, market.EndpointKlines, "symbol=NOPE&interval=1s", ""},
		{"klines unlisted", FuturesREST, market.EndpointKlines, "symbol=NOPE&interval=1m", `{"code":-1121,"msg":"Invalid symbol."}`},
		{"trades unlisted", SpotREST, market.EndpointTrades, "symbol=NOPE&limit=10", `{"code":-1121,"msg":"Invalid symbol."}`},
		{"ticker all", SpotREST, market.EndpointTicker24h, "", ""},
		{"ticker unlisted", SpotREST, market.EndpointTicker24h, "symbol=NOPE", `{"code":-1121,"msg":"Invalid symbol."}`},
		{"time", SpotREST, market.EndpointTime, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, _ := url.ParseQuery(tc.query)
			if got := string(tc.rules.Validate(tc.e, q, listed)); got != tc.want {
				t.Errorf("Validate(%s, %s) = %s; want %s", tc.e, tc.query, got, tc.want)
			}
		})
	}
}

func TestRESTEndpoint(t *testing.T) {
	for _, tc := range []struct {
		rules REST
		path  string
		want  market.Endpoint
		ok    bool
	}{
		{SpotREST, "/api/v3/ticker/24hr", market.EndpointTicker24h, true},
		{SpotREST, "/api/v3/depth", market.EndpointDepth, true},
		{SpotREST, "/fapi/v1/depth", "", false},
		{SpotREST, "/api/v3/order", "other", false},
		{FuturesREST, "/fapi/v1/klines", market.EndpointKlines, true},
	} {
		got, ok := tc.rules.Endpoint(tc.path)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("%s.Endpoint(%s) = %q, %v; want %q, %v", tc.rules.Name(), tc.path, got, ok, tc.want, tc.ok)
		}
		if ok && tc.rules.Path(got) != tc.path {
			t.Errorf("Path(%s) = %s; want %s", got, tc.rules.Path(got), tc.path)
		}
	}
}

func TestRESTParseSymbols(t *testing.T) {
	body := `{"symbols":[{"symbol":"BTCUSDT","status":"TRADING","baseAsset":"BTC","quoteAsset":"USDT","filters":[{"filterType":"PRICE_FILTER","minPrice":"0.01","tickSize":"0.01"},{"filterType":"LOT_SIZE","stepSize":"0.00001"}]},{"symbol":"OLDBTC","status":"BREAK","baseAsset":"OLD","quoteAsset":"BTC","filters":[]}]}`
	got, err := SpotREST.ParseSymbols([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	want := []market.Symbol{
		{Symbol: "BTCUSDT", Base: "BTC", Quote: "USDT", Status: "TRADING", TickSize: "0.01", StepSize: "0.00001"},
		{Symbol: "OLDBTC", Base: "OLD", Quote: "BTC", Status: "BREAK"},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("ParseSymbols = %+v; want %+v", got, want)
	}
	if _, err := SpotREST.ParseSymbols([]byte(`<html>`)); err == nil {
		t.Errorf("ParseSymbols(<html>) = nil error; want one")
	}
}

func TestRESTBanUntil(t *testing.T) {
	got, ok := SpotREST.BanUntil([]byte(`{"code":-1003,"msg":"Way too much request weight used; IP banned until 1635504416554. Please use the websocket for live updates to avoid bans."}`))
	if want := time.UnixMilli(1635504416554); !ok || !got.Equal(want) {
		t.Errorf("BanUntil = %v, %v; want %v", got, ok, want)
	}
	if _, ok := SpotREST.BanUntil([]byte(`{"code":-1003,"msg":"Too many requests"}`)); ok {
		t.Errorf("BanUntil of a 429 body = ok; want none")
	}
}
