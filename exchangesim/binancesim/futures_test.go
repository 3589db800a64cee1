package binancesim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// Futures payloads are checked with ordered key scans (jsonKeys) and
// map[string]json.RawMessage, never by decoding into structs: Binance keys
// differ only in case ("e"/"E", "t"/"T") and encoding/json matches struct
// fields case-insensitively.

// startFutures runs a futures-mode Server for the test.
func startFutures(t *testing.T, cfg Config) *testServer {
	t.Helper()
	cfg.Mode = ModeFutures
	return startServer(t, cfg)
}

// fields decodes a JSON object into its raw members; keys are exact.
func fields(t *testing.T, p []byte) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(p, &m); err != nil {
		t.Fatalf("not an object: %v: %s", err, p)
	}
	return m
}

// intField returns the JSON number member k of p.
func intField(t *testing.T, p []byte, k string) int64 {
	t.Helper()
	raw, ok := fields(t, p)[k]
	if !ok {
		t.Fatalf("no %q in %s", k, p)
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		t.Fatalf("%q = %s is not an integer in %s", k, raw, p)
	}
	return n
}

func TestFuturesConfigDefaults(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want Config // the fields checked
	}{
		{"spot zero value", Config{}, Config{Mode: ModeSpot, MaxMessagesPerSecond: 5, MaxStreams: 1024, PingInterval: 20 * time.Second, PongTimeout: time.Minute, MaxLifetime: 24 * time.Hour}},
		{"futures zero value", Config{Mode: ModeFutures}, Config{Mode: ModeFutures, MaxMessagesPerSecond: 10, MaxStreams: 1024, PingInterval: 3 * time.Minute, PongTimeout: 10 * time.Minute, MaxLifetime: 24 * time.Hour}},
		{"futures with overrides", Config{Mode: ModeFutures, MaxStreams: 200, MaxMessagesPerSecond: 3, MaxLifetime: 12 * time.Second},
			Config{Mode: ModeFutures, MaxMessagesPerSecond: 3, MaxStreams: 200, PingInterval: 3 * time.Minute, PongTimeout: 10 * time.Minute, MaxLifetime: 12 * time.Second}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.cfg)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			c, w := s.cfg, tc.want
			if c.Mode != w.Mode || c.MaxMessagesPerSecond != w.MaxMessagesPerSecond || c.MaxStreams != w.MaxStreams ||
				c.PingInterval != w.PingInterval || c.PongTimeout != w.PongTimeout || c.MaxLifetime != w.MaxLifetime {
				t.Errorf("config = mode %s msgs %d streams %d ping %v pong %v life %v; want %s %d %d %v %v %v",
					c.Mode, c.MaxMessagesPerSecond, c.MaxStreams, c.PingInterval, c.PongTimeout, c.MaxLifetime,
					w.Mode, w.MaxMessagesPerSecond, w.MaxStreams, w.PingInterval, w.PongTimeout, w.MaxLifetime)
			}
		})
	}
	for _, m := range []Mode{"Futures", "coin-m", " "} {
		if _, err := New(Config{Mode: m}); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("New(Mode %q) = %v; want ErrInvalidConfig", m, err)
		}
	}
}

func TestParseFuturesStream(t *testing.T) {
	tests := []struct {
		name   string
		ok     bool
		kind   streamKind
		route  route
		period int64
		levels int
	}{
		{"btcusdt@depth", true, kindDiffDepth, routePublic, 250, 0},
		{"btcusdt@depth@100ms", true, kindDiffDepth, routePublic, 100, 0},
		{"btcusdt@depth@500ms", true, kindDiffDepth, routePublic, 500, 0},
		{"btcusdt@depth5", true, kindPartialDepth, routePublic, 250, 5},
		{"btcusdt@depth10@100ms", true, kindPartialDepth, routePublic, 100, 10},
		{"btcusdt@depth20@500ms", true, kindPartialDepth, routePublic, 500, 20},
		{"btcusdt@bookTicker", true, kindBookTicker, routePublic, 0, 0},
		{"!bookTicker", true, kindAllBookTickers, routePublic, 0, 0},
		{"btcusdt@aggTrade", true, kindAggTrade, routeMarket, 0, 0},
		{"btcusdt@markPrice", true, kindMarkPrice, routeMarket, 3000, 0},
		{"btcusdt@markPrice@1s", true, kindMarkPrice, routeMarket, 1000, 0},
		{"!markPrice@arr", true, kindAllMarkPrices, routeMarket, 3000, 0},
		{"!markPrice@arr@1s", true, kindAllMarkPrices, routeMarket, 1000, 0},
		{"btcusdt@kline_1m", true, kindKline, routeMarket, 0, 0},
		{"btcusdt@kline_1M", true, kindKline, routeMarket, 0, 0},
		{"btcusdt@miniTicker", true, kindMiniTicker, routeMarket, 0, 0},
		{"!miniTicker@arr", true, kindAllMiniTickers, routeMarket, 0, 0},
		{"btcusdt@ticker", true, kindTicker, routeMarket, 0, 0},
		{"!ticker@arr", true, kindAllTickers, routeMarket, 0, 0},
		{"btcusdt@forceOrder", true, kindForceOrder, routeMarket, 0, 0},
		{"!forceOrder@arr", true, kindAllForceOrders, routeMarket, 0, 0},
		{"btcusdt_perpetual@continuousKline_1m", true, kindContinuousKline, routeMarket, 0, 0},
		{"btcusdt_next_quarter@continuousKline_1h", true, kindContinuousKline, routeMarket, 0, 0},
		{"btcusdt@compositeIndex", true, kindCompositeIndex, routeMarket, 0, 0},
		{"!contractInfo", true, kindContractInfo, routeMarket, 0, 0},
		{"adausd@assetIndex", true, kindAssetIndex, routeMarket, 0, 0},
		{"!assetIndex@arr", true, kindAllAssetIndexes, routeMarket, 0, 0},
		// Spot-only names and typos are malformed in futures mode.
		{"btcusdt@trade", false, 0, 0, 0, 0},
		{"btcusdt@avgPrice", false, 0, 0, 0, 0},
		{"btcusdt@kline_1s", false, 0, 0, 0, 0},
		{"btcusdt@kline_1h@+08:00", false, 0, 0, 0, 0},
		{"btcusdt@ticker_1h", false, 0, 0, 0, 0},
		{"btcusdt@depth@250ms", false, 0, 0, 0, 0},
		{"btcusdt@depth15", false, 0, 0, 0, 0},
		{"btcusdt@markPrice@3s", false, 0, 0, 0, 0},
		{"btcusdt_weekly@continuousKline_1m", false, 0, 0, 0, 0},
		{"btcusdt@continuousKline_1m", false, 0, 0, 0, 0},
		{"btcusdt_perpetual_x@continuousKline_1m", false, 0, 0, 0, 0},
		{"btcusdt_260626@depth", true, kindDiffDepth, routePublic, 250, 0}, // a delivery contract
		{"btcusdt_260626@aggTrade", true, kindAggTrade, routeMarket, 0, 0},
		{"btcusdt__260626@aggTrade", false, 0, 0, 0, 0},
		{"_btcusdt@aggTrade", false, 0, 0, 0, 0},
		{"BTCUSDT@depth", false, 0, 0, 0, 0},
		{"!ticker_1h@arr", false, 0, 0, 0, 0},
		{"!bookTicker@arr", false, 0, 0, 0, 0},
		{"", false, 0, 0, 0, 0},
	}
	for _, tc := range tests {
		sp, ok := futuresProduct.grammar.parse(tc.name)
		if ok != tc.ok {
			t.Errorf("futuresProduct.grammar.parse(%q) ok = %v; want %v", tc.name, ok, tc.ok)
			continue
		}
		if ok && (sp.kind != tc.kind || sp.route != tc.route || sp.period != tc.period || sp.levels != tc.levels) {
			t.Errorf("futuresProduct.grammar.parse(%q) = kind %d %v period %d levels %d; want kind %d %v period %d levels %d",
				tc.name, sp.kind, sp.route, sp.period, sp.levels, tc.kind, tc.route, tc.period, tc.levels)
		}
	}
	// And the other way round: futures-only names are malformed in spot.
	for _, name := range []string{"btcusdt@markPrice", "btcusdt@forceOrder", "btcusdt@depth@500ms", "!bookTicker", "!ticker@arr"} {
		if _, ok := spotProduct.grammar.parse(name); ok {
			t.Errorf("spotProduct.grammar.parse(%q) ok in spot mode; want malformed", name)
		}
	}
}

func TestFuturesHandshakeRoutes(t *testing.T) {
	ts := startFutures(t, Config{TickInterval: quiet})
	tests := []struct {
		path     string
		status   int    // 0: upgraded
		list     string // LIST_SUBSCRIPTIONS result when upgraded
		combined bool
	}{
		{"/public/ws", 0, `[]`, false},
		{"/public/ws/btcusdt@depth/ethusdt@depth@100ms", 0, `["btcusdt@depth","ethusdt@depth@100ms"]`, false},
		{"/public/stream?streams=btcusdt@bookTicker/btcusdt@depth5", 0, `["btcusdt@bookTicker","btcusdt@depth5"]`, true},
		{"/public/stream", 0, `[]`, true},
		{"/market/ws", 0, `[]`, false},
		{"/market/ws/bnbusdt@aggTrade/btcusdt@markPrice", 0, `["bnbusdt@aggTrade","btcusdt@markPrice"]`, false},
		{"/market/stream?streams=bnbusdt@aggTrade/btcusdt@markPrice", 0, `["bnbusdt@aggTrade","btcusdt@markPrice"]`, true},
		{"/ws", 0, `[]`, false}, // legacy: served like /public
		{"/stream?streams=btcusdt@depth", 0, `["btcusdt@depth"]`, true},                             // legacy
		{"/market/stream?streams=btcusdt@aggTrade&timeUnit=bogus", 0, `["btcusdt@aggTrade"]`, true}, // timeUnit ignored
		{"/private/ws?listenKey=abc", http.StatusNotFound, "", false},
		{"/private/stream?streams=abc", http.StatusNotFound, "", false},
		{"/private", http.StatusNotFound, "", false},
		{"/public", http.StatusNotFound, "", false},
		{"/public/stream/nonsense", http.StatusNotFound, "", false},
		{"/publicws", http.StatusNotFound, "", false},
		{"/futures/ws", http.StatusNotFound, "", false},
	}
	rejected := 0
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			c, err := tryDial(t, ts.wsURL(tc.path))
			if tc.status != 0 {
				rejected++
				var se ws.StatusError
				if !errorsAs(err, &se) || int(se) != tc.status {
					t.Fatalf("dial = %v; want HTTP %d", err, tc.status)
				}
				return
			}
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			if got, want := c.call(`{"method":"LIST_SUBSCRIPTIONS","id":1}`), `{"result":`+tc.list+`,"id":1}`; got != want {
				t.Errorf("LIST = %s; want %s", got, want)
			}
			want := fmt.Sprintf(`{"result":%v,"id":2}`, tc.combined)
			if got := c.call(`{"method":"GET_PROPERTY","params":["combined"],"id":2}`); got != want {
				t.Errorf("GET_PROPERTY = %s; want %s", got, want)
			}
		})
	}
	if got := ts.Rejections(); got != rejected {
		t.Errorf("Rejections() = %d; want %d", got, rejected)
	}
	// Every upgraded connection above subscribed on its right route.
	for _, st := range ts.Clients() {
		if st.WrongRoute != 0 {
			t.Errorf("client %s: WrongRoute = %d; want 0", st.Path, st.WrongRoute)
		}
	}
}

// TestFuturesRouteServing checks that each route serves its own streams
// and holds the others silently, counting them in WrongRoute.
func TestFuturesRouteServing(t *testing.T) {
	t.Parallel()
	ts := startFutures(t, Config{TickInterval: fast, MaxMessagesPerSecond: 100})
	tests := []struct {
		name   string
		path   string
		sub    []string // subscribed live after connecting
		served []string // must arrive
		silent []string // must not arrive
	}{
		{"public", "/public/stream?streams=btcusdt@depth@100ms/btcusdt@aggTrade", []string{"ethusdt@markPrice@1s", "!bookTicker"},
			[]string{"btcusdt@depth@100ms", "!bookTicker"}, []string{"btcusdt@aggTrade", "ethusdt@markPrice@1s"}},
		{"market", "/market/stream?streams=btcusdt@aggTrade/btcusdt@bookTicker", []string{"btcusdt@depth5@100ms", "!markPrice@arr@1s"},
			[]string{"btcusdt@aggTrade", "!markPrice@arr@1s"}, []string{"btcusdt@bookTicker", "btcusdt@depth5@100ms"}},
		{"legacy unrouted", "/stream?streams=btcusdt@bookTicker/btcusdt@markPrice@1s", []string{"btcusdt@aggTrade"},
			[]string{"btcusdt@bookTicker"}, []string{"btcusdt@markPrice@1s", "btcusdt@aggTrade"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dial(t, ts.wsURL(tc.path))
			params, _ := json.Marshal(tc.sub)
			if got := c.call(`{"method":"SUBSCRIBE","params":` + string(params) + `,"id":1}`); got != `{"result":null,"id":1}` {
				t.Fatalf("SUBSCRIBE = %s", got)
			}
			id := lastClientByPath(t, ts.Server, tc.path).ID
			got := c.collect(1500*time.Millisecond, 1<<30)
			for _, s := range tc.served {
				if len(got[s]) == 0 {
					t.Errorf("no %s event on %s", s, tc.path)
				}
			}
			for _, s := range tc.silent {
				if n := len(got[s]); n != 0 {
					t.Errorf("%d %s events on %s; want none (wrong route)", n, s, tc.path)
				}
			}
			st := clientStats(t, ts.Server, id)
			streams := len(tc.served) + len(tc.silent)
			if st.WrongRoute != len(tc.silent) || st.Violations() != len(tc.silent) || st.Streams != streams {
				t.Errorf("WrongRoute %d, Violations %d, Streams %d; want %d, %d, %d", st.WrongRoute, st.Violations(), st.Streams, len(tc.silent), len(tc.silent), streams)
			}
		})
	}
	t.Run("raw path with several streams", func(t *testing.T) {
		t.Parallel()
		c := dial(t, ts.wsURL("/market/ws/btcusdt@aggTrade/ethusdt@aggTrade"))
		seen := map[string]bool{}
		deadline := time.Now().Add(3 * time.Second)
		for len(seen) < 2 && time.Now().Before(deadline) {
			p := c.data(time.Until(deadline))
			if keys := strings.Join(jsonKeys(t, p), " "); !strings.HasPrefix(keys, "e E s a") {
				t.Fatalf("raw payload %s", p)
			}
			var sym string
			json.Unmarshal(fields(t, p)["s"], &sym)
			seen[sym] = true
		}
		if !seen["BTCUSDT"] || !seen["ETHUSDT"] {
			t.Errorf("symbols seen %v; want BTCUSDT and ETHUSDT", seen)
		}
	})
}

// lastClientByPath returns the stats of the latest connection made to path.
func lastClientByPath(t *testing.T, s *Server, path string) ClientStats {
	t.Helper()
	all := s.Clients()
	for k := len(all) - 1; k >= 0; k-- {
		if all[k].Path == path {
			return all[k]
		}
	}
	t.Fatalf("no client for %s", path)
	return ClientStats{}
}

func TestFuturesRateLimit(t *testing.T) {
	tests := []struct {
		name   string
		n      int
		closed bool
	}{
		{"ten requests in a burst", 10, false},
		{"eleven requests in a burst", 11, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := startFutures(t, Config{TickInterval: quiet}) // default 10 msg/s
			c := dial(t, ts.wsURL("/market/ws"))
			for range tc.n {
				c.send(listReq)
			}
			replies := 0
			for replies < tc.n {
				f, err := c.next(2 * time.Second)
				if err != nil {
					t.Fatalf("read after %d replies: %v", replies, err)
				}
				switch f.op {
				case ws.OpText:
					replies++
				case ws.OpClose:
					code, reason := ws.ParseCloseFrameData(f.payload)
					if !tc.closed {
						t.Fatalf("closed %d %q after %d replies; want open", code, reason, replies)
					}
					if code != ws.StatusPolicyViolation || reason != closeRateReason || replies != 10 {
						t.Errorf("close %d %q after %d replies; want 1008 %q after 10", code, reason, replies, closeRateReason)
					}
					if st := waitClosed(t, ts.Server); st.RateLimitClosed != 1 || st.Messages != 11 {
						t.Errorf("stats = %+v", st)
					}
					return
				}
			}
			if tc.closed {
				t.Fatalf("%d replies and no close; want 1008 after 10", replies)
			}
			if st := lastClient(t, ts.Server); st.Violations() != 0 {
				t.Errorf("violations = %d", st.Violations())
			}
		})
	}
}

// TestFuturesPong checks the USD-M heartbeat rule: any pong, solicited or
// not, keeps the connection; no pong at all times it out.
func TestFuturesPong(t *testing.T) {
	tests := []struct {
		name      string
		pong      []byte // sent every 50ms regardless of pings; nil: none
		wantClose bool
	}{
		{"unsolicited empty pongs keep it open", []byte{}, false},
		{"pongs with any payload keep it open", []byte("keepalive"), false},
		{"silent client times out", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := startFutures(t, Config{TickInterval: quiet, MaxMessagesPerSecond: 1000, PingInterval: 50 * time.Millisecond, PongTimeout: 250 * time.Millisecond})
			c := dial(t, ts.wsURL("/public/ws"))
			deadline := time.Now().Add(800 * time.Millisecond)
			next := time.Now()
			for time.Now().Before(deadline) {
				if tc.pong != nil && !time.Now().Before(next) {
					c.write(ws.OpPong, tc.pong)
					next = time.Now().Add(50 * time.Millisecond)
				}
				f, err := c.next(20 * time.Millisecond)
				if err != nil {
					continue // read timeout: loop to send the next pong
				}
				if f.op == ws.OpClose {
					code, reason := ws.ParseCloseFrameData(f.payload)
					if !tc.wantClose || code != 1008 || reason != closePongReason {
						t.Fatalf("close %d %q; wantClose %v", code, reason, tc.wantClose)
					}
					if st := waitClosed(t, ts.Server); st.PongTimeouts != 1 {
						t.Errorf("stats = %+v", st)
					}
					return
				}
			}
			if tc.wantClose {
				t.Fatal("not closed; want 1008 Pong timeout")
			}
			if st := lastClient(t, ts.Server); st.Closed || st.Violations() != 0 || st.BadPongs != 0 || st.UnsolicitedPongs == 0 {
				t.Errorf("stats = %+v; want open, no violations, unsolicited pongs counted", st)
			}
		})
	}
}

func TestFuturesMethods(t *testing.T) {
	ts := startFutures(t, Config{TickInterval: quiet})
	c := dial(t, ts.wsURL("/market/ws"))
	steps := []struct{ send, want string }{
		{`{"method":"SUBSCRIBE","params":["btcusdt@aggTrade","nosuchusdt@markPrice"],"id":1}`, `{"result":null,"id":1}`},
		{`{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":2}`, `{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":2}`},
		{`{"method":"LIST_SUBSCRIPTIONS","id":3}`, `{"result":["btcusdt@aggTrade","nosuchusdt@markPrice"],"id":3}`},
		{`{"method":"SET_PROPERTY","params":["combined",true],"id":4}`, `{"result":null,"id":4}`},
		{`{"method":"GET_PROPERTY","params":["combined"],"id":5}`, `{"result":true,"id":5}`},
		{`{"method":"UNSUBSCRIBE","params":["btcusdt@aggTrade"],"id":6}`, `{"result":null,"id":6}`},
		{`{"method":"PING","id":7}`, "{\"error\":{\"code\":2,\"msg\":\"Invalid request: unknown variant `PING`, expected one of `SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY` at line 1 column 16\"},\"id\":7}"},
		{`{"e":"depthUpdate"}`, "{\"error\":{\"code\":2,\"msg\":\"Invalid request: missing field `method` at line 1 column 19\"}}"},
	}
	for _, st := range steps {
		if got := c.call(st.send); got != st.want {
			t.Errorf("send %s\n got  %s\n want %s", st.send, got, st.want)
		}
	}
	st := lastClient(t, ts.Server)
	if st.InvalidStreams != 2 || st.UnknownMethod != 1 || st.MissingMethod != 1 || st.WrongRoute != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestFuturesREST(t *testing.T) {
	fut := startFutures(t, Config{TickInterval: quiet, Symbols: []string{"BTCUSDT", "ETHUSDT", "SOLUSDC"}})
	spot := startServer(t, Config{TickInterval: quiet})
	get := func(t *testing.T, url string) (int, []byte) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	t.Run("exchangeInfo", func(t *testing.T) {
		status, body := get(t, fut.httpURL("/fapi/v1/exchangeInfo"))
		if status != 200 {
			t.Fatalf("status %d: %s", status, body)
		}
		var info struct {
			Symbols []map[string]json.RawMessage `json:"symbols"`
		}
		if err := json.Unmarshal(body, &info); err != nil {
			t.Fatal(err)
		}
		want := [][3]string{{"BTCUSDT", "BTC", "USDT"}, {"ETHUSDT", "ETH", "USDT"}, {"SOLUSDC", "SOL", "USDC"}}
		if len(info.Symbols) != len(want) {
			t.Fatalf("%d symbols; want %d", len(info.Symbols), len(want))
		}
		for k, w := range want {
			s := info.Symbols[k]
			for key, v := range map[string]string{"symbol": w[0], "pair": w[0], "baseAsset": w[1], "quoteAsset": w[2], "status": "TRADING", "contractType": "PERPETUAL"} {
				if got := string(s[key]); got != `"`+v+`"` {
					t.Errorf("symbol %d %s = %s; want %q", k, key, got, v)
				}
			}
		}
	})
	t.Run("depth", func(t *testing.T) {
		tests := []struct {
			query  string
			status int
			levels int // exact; 0 for "all the book has": 50 to 100
		}{
			{"symbol=BTCUSDT", 200, 0}, // default 500; the book holds up to 100
			{"symbol=BTCUSDT&limit=5", 200, 5},
			{"symbol=ETHUSDT&limit=20", 200, 20},
			{"symbol=ETHUSDT&limit=1000", 200, 0},
			{"symbol=BTCUSDT&limit=7", 400, 0},
			{"symbol=BTCUSDT&limit=5000", 400, 0},
			{"symbol=btcusdt", 400, 0},
			{"symbol=XYZUSDT", 400, 0},
			{"limit=5", 400, 0},
		}
		for _, tc := range tests {
			status, body := get(t, fut.httpURL("/fapi/v1/depth?"+tc.query))
			if status != tc.status {
				t.Errorf("depth?%s = %d %s; want %d", tc.query, status, body, tc.status)
				continue
			}
			if status != 200 {
				continue
			}
			var snap snapshot
			json.Unmarshal(body, &snap)
			ok := func(n int) bool { return n == tc.levels || tc.levels == 0 && n >= 50 && n <= 100 }
			if !ok(len(snap.Bids)) || !ok(len(snap.Asks)) || snap.LastUpdateID == 0 {
				t.Errorf("depth?%s: %d bids %d asks id %d; want %d levels", tc.query, len(snap.Bids), len(snap.Asks), snap.LastUpdateID, tc.levels)
			}
		}
	})
	t.Run("404 across modes", func(t *testing.T) {
		tests := []struct {
			srv    *testServer
			path   string
			status int
		}{
			{fut, "/fapi/v1/time", 200},
			{fut, "/fapi/v1/ping", 200},
			{fut, "/api/v3/exchangeInfo", 404},
			{fut, "/api/v3/depth?symbol=BTCUSDT", 404},
			{fut, "/api/v3/ping", 404},
			{fut, "/fapi/v2/exchangeInfo", 404},
			{spot, "/fapi/v1/exchangeInfo", 404},
			{spot, "/fapi/v1/depth?symbol=BTCUSDT", 404},
			{spot, "/api/v3/exchangeInfo", 200},
		}
		for _, tc := range tests {
			if status, _ := get(t, tc.srv.httpURL(tc.path)); status != tc.status {
				t.Errorf("%s GET %s = %d; want %d", tc.srv.cfg.Mode, tc.path, status, tc.status)
			}
		}
		// Routed WebSocket paths do not exist in spot mode.
		for _, p := range []string{"/public/ws", "/market/stream?streams=btcusdt@aggTrade"} {
			if _, err := tryDial(t, spot.wsURL(p)); err == nil || !strings.Contains(err.Error(), "404") {
				t.Errorf("spot dial %s = %v; want HTTP 404", p, err)
			}
		}
	})
}

// TestFuturesTimeUnitIgnored checks that futures times stay in
// milliseconds whatever timeUnit says.
func TestFuturesTimeUnitIgnored(t *testing.T) {
	t.Parallel()
	ts := startFutures(t, Config{TickInterval: fast})
	c := dial(t, ts.wsURL("/public/stream?streams=btcusdt@bookTicker&timeUnit=MICROSECOND"))
	got := c.collectAll(3*time.Second, "btcusdt@bookTicker")
	if e := intField(t, got["btcusdt@bookTicker"][0], "E"); len(strconv.FormatInt(e, 10)) != 13 {
		t.Errorf("E = %d; want milliseconds (13 digits)", e)
	}
	if !slices.Contains(strings.Split(lastClient(t, ts.Server).Path, "&"), "timeUnit=MICROSECOND") {
		t.Errorf("path %q", lastClient(t, ts.Server).Path)
	}
}

// TestFuturesRunShutdown checks that Run's end closes futures connections
// with 1001 and no serverShutdown event, which USD-M does not document.
func TestFuturesRunShutdown(t *testing.T) {
	t.Parallel()
	s, err := New(Config{Mode: ModeFutures, TickInterval: fast, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ln := listen(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, ln) }()
	c := dial(t, "ws://"+ln.Addr().String()+"/market/stream?streams=btcusdt@aggTrade")
	c.data(2 * time.Second) // data flows
	cancel()
	for {
		f, err := c.next(2 * time.Second)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if f.op == ws.OpText && strings.Contains(string(f.payload), "serverShutdown") {
			t.Fatalf("got %s; want no serverShutdown in futures mode", f.payload)
		}
		if f.op == ws.OpClose {
			if code, reason := ws.ParseCloseFrameData(f.payload); code != ws.StatusGoingAway || reason != closeShutdownReason {
				t.Errorf("close = %d %q; want 1001 %q", code, reason, closeShutdownReason)
			}
			break
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v; want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
}

func TestFuturesSchedule(t *testing.T) {
	tests := []struct {
		period int64
		due    []int64 // ticks 1..20 on which it is due
	}{
		{100, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}},
		{250, []int64{3, 5, 8, 10, 13, 15, 18, 20}},
		{500, []int64{5, 10, 15, 20}},
		{1000, []int64{10, 20}},
		{2000, []int64{20}},
		{3000, nil},
	}
	for _, tc := range tests {
		m := &market{}
		var got []int64
		for m.ticks = 1; m.ticks <= 20; m.ticks++ {
			if m.due(tc.period) {
				got = append(got, m.ticks)
			}
		}
		if !slices.Equal(got, tc.due) {
			t.Errorf("due(%d) on ticks %v; want %v", tc.period, got, tc.due)
		}
	}
}

// TestStagger checks that with Stagger each symbol pushes at its own phase
// of the tick: two symbols' depth updates are half a tick apart, where
// without it they share the tick's start.
func TestStagger(t *testing.T) {
	const tick = 100 * time.Millisecond
	for _, tc := range []struct {
		stagger bool
		want    time.Duration // apart, modulo the tick
	}{{false, 0}, {true, tick / 2}} {
		ts := startServer(t, Config{Symbols: []string{"BTCUSDT", "ETHUSDT"}, TickInterval: tick, Stagger: tc.stagger})
		c := dial(t, ts.wsURL("/stream?streams=btcusdt@depth@100ms/ethusdt@depth@100ms&timeUnit=MICROSECOND"))
		last := map[string]int64{}
		for range 12 {
			var m struct {
				Stream string
				Data   json.RawMessage
			}
			if err := json.Unmarshal(c.data(time.Second), &m); err != nil {
				t.Fatal(err)
			}
			last[m.Stream] = intField(t, m.Data, "E")
		}
		d := time.Duration(last["ethusdt@depth@100ms"]-last["btcusdt@depth@100ms"]) * time.Microsecond
		d = ((d % tick) + tick) % tick
		off := ((d-tc.want)%tick + tick) % tick // how far from want, around the tick
		if off = min(off, tick-off); off > 15*time.Millisecond {
			t.Errorf("stagger %v: ethusdt %v after btcusdt (mod tick); want about %v", tc.stagger, d, tc.want)
		}
	}
}
