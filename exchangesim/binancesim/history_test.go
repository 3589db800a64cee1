package binancesim

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestMarketHistoryREST(t *testing.T) {
	t.Parallel()
	spot := startServer(t, Config{TickInterval: 5 * time.Millisecond})
	fut := startFutures(t, Config{TickInterval: 5 * time.Millisecond})
	time.Sleep(100 * time.Millisecond) // some trades
	cases := []struct {
		ts     *testServer
		path   string
		status int
		body   string // prefix of the body
		weight int    // this call's weight
	}{
		{spot, "/api/v3/klines?symbol=BTCUSDT&interval=1m", 200, "[[", 2},
		{spot, "/api/v3/klines?symbol=BTCUSDT&interval=1s&limit=3", 200, "[[", 2},
		{spot, "/api/v3/klines?symbol=BTCUSDT", 400, `{"code":-1102,"msg":"Mandatory parameter 'interval' was not sent, was empty/null, or malformed."}`, 2},
		{spot, "/api/v3/klines?symbol=BTCUSDT&interval=2m", 400, `{"code":-1120,"msg":"Invalid interval."}`, 2},
		{spot, "/api/v3/klines?symbol=NOPE&interval=1m", 400, `{"code":-1121,"msg":"Invalid symbol."}`, 2},
		{spot, "/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=1001", 400, `{"code":-1100,"msg":"Illegal characters found in parameter 'limit'; legal range is '1-1000'."}`, 2},
		{spot, "/api/v3/klines?symbol=BTCUSDT&interval=1m&startTime=2&endTime=1", 400, `{"code":-1023,"msg":"Start time is greater than end time."}`, 2},
		{spot, "/api/v3/trades?symbol=BTCUSDT&limit=5", 200, `[{"id":`, 25},
		{spot, "/api/v3/trades", 400, `{"code":-1102,"msg":"Mandatory parameter 'symbol'`, 25},
		{spot, "/api/v3/ticker/24hr?symbol=BTCUSDT", 200, `{"symbol":"BTCUSDT","priceChange":`, 2},
		{spot, "/api/v3/ticker/24hr", 200, `[{"symbol":"BTCUSDT"`, 80},
		{fut, "/fapi/v1/klines?symbol=BTCUSDT&interval=1s", 400, `{"code":-1120,"msg":"Invalid interval."}`, 5},
		{fut, "/fapi/v1/klines?symbol=BTCUSDT&interval=1h&limit=1500", 200, "[[", 10},
		{fut, "/fapi/v1/klines?symbol=BTCUSDT&interval=1h&limit=1501", 400, `{"code":-1130,"msg":"Data sent for parameter 'limit' is not valid."}`, 10},
		{fut, "/fapi/v1/trades?symbol=BTCUSDT", 200, `[{"id":`, 5},
		{fut, "/fapi/v1/ticker/24hr?symbol=BTCUSDT", 200, `{"symbol":"BTCUSDT","priceChange":`, 1},
		{fut, "/fapi/v1/ticker/24hr", 200, `[{"symbol":`, 40},
	}
	// The used weight is cumulative within a minute, so each call's weight
	// is the difference from the previous call; a minute that rolls over
	// between two calls starts the count again from this call's weight.
	used := map[*testServer]int{}
	for _, c := range cases {
		r := restGet(t, c.ts.httpURL(c.path))
		n, err := strconv.Atoi(r.used)
		if err != nil {
			t.Fatalf("%s: used weight %q: %v", c.path, r.used, err)
		}
		w := n - used[c.ts]
		if n < used[c.ts] {
			w = n
		}
		used[c.ts] = n
		if r.status != c.status || !strings.HasPrefix(r.body, c.body) || w != c.weight {
			t.Errorf("%s: %d %q weight %d; want %d %q… weight %d", c.path, r.status, r.body, w, c.status, c.body, c.weight)
		}
	}
	var rows [][]any
	if err := json.Unmarshal([]byte(restGet(t, spot.httpURL("/api/v3/klines?symbol=BTCUSDT&interval=1h&limit=1000")).body), &rows); err != nil || len(rows) != 1000 || len(rows[0]) != 12 {
		t.Fatalf("klines: %v, %d rows", err, len(rows))
	}
	for i := 1; i < len(rows); i++ {
		if rows[i][0].(float64) != rows[i-1][6].(float64)+1 {
			t.Fatalf("kline %d opens at %v, previous closes at %v", i, rows[i][0], rows[i-1][6])
		}
	}
	var trades []map[string]any
	if err := json.Unmarshal([]byte(restGet(t, fut.httpURL("/fapi/v1/trades?symbol=BTCUSDT&limit=1000")).body), &trades); err != nil || len(trades) == 0 {
		t.Fatalf("trades: %v, %d", err, len(trades))
	}
	for i := 1; i < len(trades); i++ {
		if trades[i]["id"].(float64) != trades[i-1]["id"].(float64)+1 {
			t.Fatalf("trade ids not consecutive at %d", i)
		}
	}
	if _, ok := trades[0]["isBestMatch"]; ok {
		t.Errorf("futures trade has isBestMatch")
	}
}
