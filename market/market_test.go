package market_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/marketgate/marketgate/exchangesim/binancesim"
	"github.com/marketgate/marketgate/market"
	"github.com/marketgate/marketgate/upstream/binance"
)

// TestCoalescing: 200 browsers asking for one depth at once cost one
// request to the exchange, natively and through the drop-in.
func TestCoalescing(t *testing.T) {
	for _, tc := range []struct {
		name, path, upstream string
		mode                 binancesim.Mode
	}{
		{"native spot", "/api/v1/market/binance/depth?symbol=BTCUSDT&limit=100", "/api/v3/depth", binancesim.ModeSpot},
		{"drop-in spot", "/binance/api/v3/depth?symbol=ETHUSDT&limit=50", "/api/v3/depth", binancesim.ModeSpot},
		{"drop-in futures", "/binance-futures/fapi/v1/depth?symbol=BTCUSDT&limit=100", "/fapi/v1/depth", binancesim.ModeFutures},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim, base := startSim(t, tc.mode)
			spot, fut := base, ""
			if tc.mode == binancesim.ModeFutures {
				spot, fut = "", base
			}
			// A depth long fresh, so that late starters hit the cache
			// rather than a second call.
			g := startMarket(t, market.Config{TTL: map[market.Endpoint]time.Duration{market.EndpointDepth: time.Minute}}, spot, fut)
			const browsers = 200
			answers := make([]answer, browsers)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range browsers {
				wg.Go(func() {
					<-start
					answers[i] = get(t, g.url+tc.path)
				})
			}
			close(start)
			wg.Wait()
			for i, a := range answers {
				if a.status != http.StatusOK || a.body != answers[0].body {
					t.Fatalf("answer %d: %d %q; want 200 and answer 0's body %q", i, a.status, a.body, answers[0].body)
				}
			}
			up := sim.RESTStats().Requests
			if got := up[tc.upstream]; got != 1 {
				t.Errorf("%d browsers cost %d upstream %s requests; want 1", browsers, got, tc.upstream)
			}
			st := g.Stats().Exchanges[0]
			t.Logf("%d browsers: upstream %v; coalesced %d, cache hits %d, misses %d", browsers, up, st.Coalesced, st.CacheHits, st.CacheMisses)
			if st.CacheHits+st.CacheMisses != browsers || st.Coalesced > st.CacheMisses {
				t.Errorf("hits %d + misses %d != %d, or coalesced %d > misses", st.CacheHits, st.CacheMisses, browsers, st.Coalesced)
			}
		})
	}
}

// TestDropInEqualsSimulator: the drop-in answers exactly what the
// exchange answers, errors included, and time and ping in its shape. The
// simulators have traded for a while, then pause so that their answers
// (the open candle, the ticker, the recent trades) hold still.
func TestDropInEqualsSimulator(t *testing.T) {
	spotSim, spotBase := runSim(t, binancesim.ModeSpot)
	futSim, futBase := runSim(t, binancesim.ModeFutures)
	g := startMarket(t, market.Config{}, spotBase, futBase)
	for _, tc := range []struct {
		name, prefix, path string
		sim                *binancesim.Server
	}{
		{"spot exchangeInfo", "/binance", "/api/v3/exchangeInfo", spotSim},
		{"spot exchangeInfo symbol", "/binance", "/api/v3/exchangeInfo?symbol=BTCUSDT", spotSim},
		{"spot exchangeInfo bad symbol", "/binance", "/api/v3/exchangeInfo?symbol=NOPE", spotSim},
		{"spot depth", "/binance", "/api/v3/depth?symbol=BTCUSDT", spotSim},
		{"spot depth limit", "/binance", "/api/v3/depth?symbol=BTCUSDT&limit=5", spotSim},
		{"spot depth bad limit", "/binance", "/api/v3/depth?symbol=BTCUSDT&limit=0", spotSim},
		{"spot depth unknown symbol", "/binance", "/api/v3/depth?symbol=NOPEUSDT", spotSim},
		{"spot depth lowercase symbol", "/binance", "/api/v3/depth?symbol=btcusdt", spotSim},
		{"spot depth no symbol", "/binance", "/api/v3/depth", spotSim},
		{"spot ping", "/binance", "/api/v3/ping", spotSim},
		{"spot klines", "/binance", "/api/v3/klines?symbol=BTCUSDT&interval=1m", spotSim},
		{"spot klines limit", "/binance", "/api/v3/klines?symbol=ETHUSDT&interval=1h&limit=3", spotSim},
		{"spot klines range", "/binance", "/api/v3/klines?symbol=BTCUSDT&interval=5m&startTime=1796468430000&endTime=1796471430000", spotSim},
		{"spot klines bad interval", "/binance", "/api/v3/klines?symbol=BTCUSDT&interval=7m", spotSim},
		{"spot klines no interval", "/binance", "/api/v3/klines?symbol=BTCUSDT", spotSim},
		{"spot klines bad limit", "/binance", "/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=1001", spotSim},
		{"spot klines unknown symbol", "/binance", "/api/v3/klines?symbol=NOPEUSDT&interval=1m", spotSim},
		{"spot trades", "/binance", "/api/v3/trades?symbol=BTCUSDT", spotSim},
		{"spot trades limit", "/binance", "/api/v3/trades?symbol=ETHUSDT&limit=5", spotSim},
		{"spot trades bad limit", "/binance", "/api/v3/trades?symbol=BTCUSDT&limit=0", spotSim},
		{"spot trades unknown symbol", "/binance", "/api/v3/trades?symbol=NOPEUSDT", spotSim},
		{"spot ticker symbol", "/binance", "/api/v3/ticker/24hr?symbol=BTCUSDT", spotSim},
		{"spot ticker symbols", "/binance", `/api/v3/ticker/24hr?symbols=["BTCUSDT","ETHUSDT"]`, spotSim},
		{"spot ticker all", "/binance", "/api/v3/ticker/24hr", spotSim},
		{"spot ticker unknown symbol", "/binance", "/api/v3/ticker/24hr?symbol=NOPEUSDT", spotSim},
		{"futures exchangeInfo", "/binance-futures", "/fapi/v1/exchangeInfo", futSim},
		{"futures depth", "/binance-futures", "/fapi/v1/depth?symbol=ETHUSDT", futSim},
		{"futures depth limit", "/binance-futures", "/fapi/v1/depth?symbol=ETHUSDT&limit=20", futSim},
		{"futures depth bad limit", "/binance-futures", "/fapi/v1/depth?symbol=ETHUSDT&limit=7", futSim},
		{"futures depth unknown symbol", "/binance-futures", "/fapi/v1/depth?symbol=NOPEUSDT", futSim},
		{"futures ping", "/binance-futures", "/fapi/v1/ping", futSim},
		{"futures klines", "/binance-futures", "/fapi/v1/klines?symbol=BTCUSDT&interval=1m", futSim},
		{"futures klines limit", "/binance-futures", "/fapi/v1/klines?symbol=ETHUSDT&interval=4h&limit=3", futSim},
		{"futures klines range", "/binance-futures", "/fapi/v1/klines?symbol=BTCUSDT&interval=15m&startTime=1796436030000&endTime=1796468430000", futSim},
		{"futures klines bad interval", "/binance-futures", "/fapi/v1/klines?symbol=BTCUSDT&interval=2m", futSim},
		{"futures klines bad limit", "/binance-futures", "/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=1501", futSim},
		{"futures klines unknown symbol", "/binance-futures", "/fapi/v1/klines?symbol=NOPEUSDT&interval=1m", futSim},
		{"futures trades", "/binance-futures", "/fapi/v1/trades?symbol=BTCUSDT", futSim},
		{"futures trades limit", "/binance-futures", "/fapi/v1/trades?symbol=ETHUSDT&limit=5", futSim},
		{"futures trades unknown symbol", "/binance-futures", "/fapi/v1/trades?symbol=NOPEUSDT", futSim},
		{"futures ticker symbol", "/binance-futures", "/fapi/v1/ticker/24hr?symbol=BTCUSDT", futSim},
		{"futures ticker all", "/binance-futures", "/fapi/v1/ticker/24hr", futSim},
		{"futures ticker unknown symbol", "/binance-futures", "/fapi/v1/ticker/24hr?symbol=NOPEUSDT", futSim},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := fromSim(t, tc.sim, tc.path)
			if want.body == "[]" {
				t.Fatalf("the simulator answers %s with an empty list: the case compares nothing", tc.path)
			}
			got := get(t, g.url+tc.prefix+tc.path)
			if got.status != want.status || got.body != want.body {
				t.Errorf("GET %s%s = %d %.300s; want %d %.300s", tc.prefix, tc.path, got.status, got.body, want.status, want.body)
			}
			if ct := got.header.Get("Content-Type"); ct != want.header.Get("Content-Type") {
				t.Errorf("Content-Type = %q; want %q", ct, want.header.Get("Content-Type"))
			}
		})
	}
	for _, p := range []string{"/binance/api/v3/time", "/binance-futures/fapi/v1/time"} {
		got := get(t, g.url+p)
		var v struct{ ServerTime int64 }
		if err := json.Unmarshal([]byte(got.body), &v); got.status != 200 || err != nil || time.Since(time.UnixMilli(v.ServerTime)).Abs() > time.Minute {
			t.Errorf("GET %s = %d %s; want 200 {\"serverTime\":<now ms>}", p, got.status, got.body)
		}
	}
}

// TestNative: the native calls answer the exchange's bodies, the symbol
// list in the gateway's shape, and clear errors for bad input; calls a
// local check refuses cost no exchange request.
func TestNative(t *testing.T) {
	sim, base := startSim(t, binancesim.ModeSpot)
	g := startMarket(t, market.Config{MaxQueryBytes: 100}, base, "")

	syms := get(t, g.url+"/api/v1/market/binance/symbols")
	var list struct {
		Exchange string
		Symbols  []market.Symbol
	}
	if err := json.Unmarshal([]byte(syms.body), &list); err != nil || syms.status != 200 || list.Exchange != "binance" {
		t.Fatalf("symbols = %d %s (%v)", syms.status, syms.body, err)
	}
	want := market.Symbol{Symbol: "BTCUSDT", Base: "BTC", Quote: "USDT", Status: "TRADING", TickSize: "0.01000000", StepSize: "0.00001000"}
	found := false
	for _, s := range list.Symbols {
		if s.Symbol == "BTCUSDT" {
			found = true
			if s.Base != want.Base || s.Quote != want.Quote || s.Status != want.Status || s.TickSize == "" || s.StepSize == "" {
				t.Errorf("BTCUSDT = %+v; want like %+v", s, want)
			}
		}
	}
	if !found || len(list.Symbols) != 5 {
		t.Errorf("symbols = %+v; want the simulator's 5 with BTCUSDT", list.Symbols)
	}

	if got, want := get(t, g.url+"/api/v1/market/binance/depth?symbol=BTCUSDT&limit=10&junk=1"), fromSim(t, sim, "/api/v3/depth?symbol=BTCUSDT&limit=10"); got.body != want.body {
		t.Errorf("native depth = %s; want %s", got.body, want.body)
	}
	before := requests(sim)
	for _, tc := range []struct {
		name, path string
		status     int
		body       string
	}{
		{"unknown exchange", "/api/v1/market/kraken/depth?symbol=BTCUSDT", 404, `"code":"not_found"`},
		{"unknown call", "/api/v1/market/binance/orders", 404, `"code":"not_found"`},
		{"no symbol", "/api/v1/market/binance/depth", 400, `{"code":-1102,"msg":"Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."}`},
		{"unknown symbol", "/api/v1/market/binance/trades?symbol=NOPEUSDT", 400, `{"code":-1121,"msg":"Invalid symbol."}`},
		{"klines without interval", "/api/v1/market/binance/klines?symbol=BTCUSDT", 400, `{"code":-1102,"msg":"Mandatory parameter 'interval' was not sent, was empty/null, or malformed."}`},
		{"klines of unknown symbol", "/api/v1/market/binance/klines?symbol=NOPEUSDT&interval=1m", 400, `{"code":-1121,"msg":"Invalid symbol."}`},
		{"oversized query", "/api/v1/market/binance/depth?symbol=" + strings.Repeat("A", 200), 414, `"code":"bad_request"`},
		{"drop-in unknown exchange", "/kraken/api/v3/depth?symbol=BTCUSDT", 404, "404 Not found"},
		{"drop-in unknown path", "/binance/api/v3/order?symbol=BTCUSDT", 404, "404 Not found"},
		{"drop-in other product's path", "/binance/fapi/v1/depth?symbol=BTCUSDT", 404, "404 Not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := get(t, g.url+tc.path)
			if got.status != tc.status || !strings.Contains(got.body, tc.body) {
				t.Errorf("GET %s = %d %s; want %d with %s", tc.path, got.status, got.body, tc.status, tc.body)
			}
		})
	}
	if after := requests(sim); after != before {
		t.Errorf("refused calls cost %d exchange requests; want 0", after-before)
	}
	if a := do(t, http.MethodPost, g.url+"/binance/api/v3/depth?symbol=BTCUSDT"); a.status != http.StatusMethodNotAllowed {
		t.Errorf("POST = %d; want 405", a.status)
	}
	if a := do(t, http.MethodHead, g.url+"/binance/api/v3/depth?symbol=BTCUSDT"); a.status != 200 || a.body != "" {
		t.Errorf("HEAD = %d %q; want 200 and no body", a.status, a.body)
	}
}

// TestCORS: the allowed origins (any when none is configured), the
// preflight, and no CORS headers for another origin.
func TestCORS(t *testing.T) {
	_, base := startSim(t, binancesim.ModeSpot)
	anyOrigin := startMarket(t, market.Config{}, base, "")
	listed := startMarket(t, market.Config{AllowedOrigins: []string{"https://app.example"}}, base, "")
	const path = "/binance/api/v3/ping"
	for _, tc := range []struct {
		name, url, method, origin, want string
		status                          int
	}{
		{"any origin", anyOrigin.url, http.MethodGet, "https://x.example", "*", 200},
		{"listed origin", listed.url, http.MethodGet, "https://app.example", "https://app.example", 200},
		{"unlisted origin", listed.url, http.MethodGet, "https://evil.example", "", 200},
		{"preflight", listed.url, http.MethodOptions, "https://app.example", "https://app.example", 204},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := do(t, tc.method, tc.url+path, "Origin", tc.origin, "Access-Control-Request-Method", "GET")
			if a.status != tc.status || a.header.Get("Access-Control-Allow-Origin") != tc.want {
				t.Errorf("%s from %s = %d, Allow-Origin %q; want %d, %q", tc.method, tc.origin, a.status, a.header.Get("Access-Control-Allow-Origin"), tc.status, tc.want)
			}
			if tc.method == http.MethodOptions && !strings.Contains(a.header.Get("Access-Control-Allow-Methods"), "GET") {
				t.Errorf("preflight Allow-Methods = %q; want GET", a.header.Get("Access-Control-Allow-Methods"))
			}
		})
	}
}

// TestBudget: the client never spends more than its share of the limit
// in a minute: Get waits (bounded by ctx), a browser call fails fast with
// 503; the budget follows the simulator's X-MBX-USED-WEIGHT-1M when
// another client spends weight of the same IP.
func TestBudget(t *testing.T) {
	newClient := func(base string) (*market.Market, *market.Client) {
		m, err := market.New(market.Config{Logger: testLogger(t), Exchanges: []market.Exchange{{Rules: binance.SpotREST, BaseURL: base, WeightLimit: 100, WeightShare: 0.5}}})
		if err != nil {
			t.Fatal(err)
		}
		return m, m.Client("binance")
	}
	q := url.Values{"symbol": {"BTCUSDT"}, "limit": {"100"}} // weight 5
	roomInMinute(t, 3*time.Second)

	sim, base := startSim(t, binancesim.ModeSpot)
	_, c := newClient(base)
	for i := range 10 {
		if _, err := c.Get(t.Context(), "/api/v3/depth", q); err != nil {
			t.Fatalf("call %d within the budget of 50: %v", i, err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.Get(ctx, "/api/v3/depth", q); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("call past the budget = %v; want it to wait until ctx ends", err)
	}
	if got := sim.RESTStats().Requests["/api/v3/depth"]; got != 10 {
		t.Errorf("simulator saw %d depth calls; want 10", got)
	}
	if st := c.Stats(); st.UsedWeight != 50 || st.Budget != 50 || st.LastUsedWeightHeader != 50 {
		t.Errorf("used %d of %d, header %d; want 50 of 50, 50", st.UsedWeight, st.Budget, st.LastUsedWeightHeader)
	}

	// Another process on the IP spends 40 (two exchangeInfo of 20): the
	// client learns it from the next answer's header, 5 + 40 + 5, and
	// only one more call of 5 fits.
	sim2, base2 := startSim(t, binancesim.ModeSpot)
	m2, c2 := newClient(base2)
	if _, err := c2.Get(t.Context(), "/api/v3/depth", q); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if a := get(t, base2+"/api/v3/exchangeInfo"); a.status != 200 {
			t.Fatalf("the other client's exchangeInfo = %d %.200s", a.status, a.body)
		}
	}
	if st := c2.Stats(); st.UsedWeight != 5 {
		t.Errorf("before the next answer: used %d; want 5", st.UsedWeight)
	}
	if _, err := c2.Get(t.Context(), "/api/v3/depth", q); err != nil {
		t.Fatal(err)
	}
	if st := c2.Stats(); st.UsedWeight != 50 || st.LastUsedWeightHeader != 50 {
		t.Errorf("after a header of 50: used %d, header %d; want 50, 50", st.UsedWeight, st.LastUsedWeightHeader)
	}
	if w := sim2.RESTStats().Weight; w != 50 {
		t.Errorf("simulator charged %d; want 50", w)
	}
	// A browser's call now fails fast: 503 with Retry-After until the
	// minute ends, and the simulator sees nothing.
	g2 := httptestServer(t, m2.Handler())
	before := requests(sim2)
	left := time.Until(time.Now().Truncate(time.Minute).Add(time.Minute)).Seconds()
	a := get(t, g2+"/api/v1/market/binance/depth?symbol=BTCUSDT")
	if ra, _ := strconv.Atoi(a.header.Get("Retry-After")); a.status != http.StatusServiceUnavailable || float64(ra) < left-1 || float64(ra) > left+1 {
		t.Errorf("browser call past the budget = %d Retry-After %q %s; want 503, about %.0f", a.status, a.header.Get("Retry-After"), a.body, left)
	}
	// The symbol check's exchangeInfo (weight 20) does not fit either.
	if got := requests(sim2); got != before {
		t.Errorf("a call past the budget reached the simulator (%d requests)", got-before)
	}
	if st := c2.Stats(); st.Rejected == 0 || st.Unavailable != 1 {
		t.Errorf("rejected %d, unavailable %d; want >0, 1", st.Rejected, st.Unavailable)
	}
}

// TestStop: a 429 or 418 stops every call to the exchange for its
// Retry-After: no request is sent meanwhile (the simulator counts none,
// and no call during a Retry-After), browsers get the cached answer (Age,
// X-Cache: stale) or 503 with Retry-After, Get fails with a BannedError;
// after it calls go again.
func TestStop(t *testing.T) {
	for _, tc := range []struct {
		name   string
		limit  int                      // the simulator's RESTWeightLimit
		stop   func(*binancesim.Server) // stops the next calls; nil: the weight limit does
		status int
		// waitOut: the stop ends within the test (Throttle and Ban);
		// the over-the-limit 429 lasts until the wall-clock minute ends.
		waitOut bool
	}{
		{"429 throttle", 0, func(s *binancesim.Server) { s.Throttle(2 * time.Second) }, http.StatusTooManyRequests, true},
		{"418 ban", 0, func(s *binancesim.Server) { s.Ban(2 * time.Second) }, http.StatusTeapot, true},
		// Priming spends exchangeInfo 20 + depth 5 = 25; the next depth
		// goes over.
		{"429 over the limit", 25, nil, http.StatusTooManyRequests, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			roomInMinute(t, 3*time.Second)
			sim, base := startSimWith(t, binancesim.Config{RESTWeightLimit: tc.limit})
			m, err := market.New(market.Config{
				Logger: testLogger(t), TTL: map[market.Endpoint]time.Duration{market.EndpointDepth: time.Millisecond},
				Exchanges: []market.Exchange{{Rules: binance.SpotREST, BaseURL: base}},
			})
			if err != nil {
				t.Fatal(err)
			}
			g := httptestServer(t, m.Handler())
			cached := g + "/binance/api/v3/depth?symbol=BTCUSDT"
			if a := get(t, cached); a.status != 200 || a.header.Get("X-Cache") != "miss" {
				t.Fatalf("priming = %d %v", a.status, a.header)
			}
			time.Sleep(5 * time.Millisecond) // past the depth TTL
			if tc.stop != nil {
				tc.stop(sim)
			}
			a := get(t, cached)
			if a.status != 200 || a.header.Get("X-Cache") != "stale" || a.header.Get("Age") == "" {
				t.Errorf("during the stop, a cached call = %d X-Cache %q Age %q; want 200 stale with Age", a.status, a.header.Get("X-Cache"), a.header.Get("Age"))
			}
			st := sim.RESTStats()
			if got := st.Status429 + st.Status418; got != 1 || (tc.status == http.StatusTeapot) != (st.Status418 == 1) {
				t.Fatalf("simulator answered %d 429s and %d 418s; want one %d", st.Status429, st.Status418, tc.status)
			}
			stoppedAt := time.Now()
			want := m.Stats().Exchanges[0]
			if !want.Stopped {
				t.Fatalf("client not stopped after a %d: %+v", tc.status, want)
			}
			// The stop lasts as the simulator said: 2 s, or until its
			// minute ends (Retry-After is whole seconds, rounded up, so
			// the client's stop may end up to a second later).
			end := stoppedAt.Add(2 * time.Second)
			if !tc.waitOut {
				end = stoppedAt.Truncate(time.Minute).Add(time.Minute)
			}
			calls := requests(sim)
			a = get(t, g+"/binance/api/v3/depth?symbol=ETHUSDT")
			if ra, _ := strconv.Atoi(a.header.Get("Retry-After")); a.status != 503 || float64(ra) < time.Until(end).Seconds()-1 || float64(ra) > time.Until(end).Seconds()+2 {
				t.Errorf("during the stop, an uncached call = %d Retry-After %q; want 503, about %.1f", a.status, a.header.Get("Retry-After"), time.Until(end).Seconds())
			}
			_, err = m.Client("binance").Get(t.Context(), "/api/v3/depth", url.Values{"symbol": {"ETHUSDT"}})
			var be *market.BannedError
			if !errors.As(err, &be) || !errors.Is(err, market.ErrBanned) || be.Status != tc.status || be.Until.Before(end.Add(-time.Second)) {
				t.Errorf("Get during the stop = %v; want a BannedError of %d until about %v", err, tc.status, end)
			}
			hammer := 1900 * time.Millisecond
			if !tc.waitOut {
				hammer = 500 * time.Millisecond
			}
			for time.Since(stoppedAt) < hammer {
				get(t, cached)
				get(t, g+"/api/v1/market/binance/depth?symbol=ETHUSDT&limit=5")
				time.Sleep(50 * time.Millisecond)
			}
			if got := requests(sim); got != calls {
				t.Errorf("%d requests reached the simulator during the stop; want 0", got-calls)
			}
			if st := sim.RESTStats(); st.DuringBackoff != 0 || st.Status418 != 0 && tc.status != http.StatusTeapot {
				t.Errorf("simulator: %d calls during a Retry-After, %d 418s; want 0, 0", st.DuringBackoff, st.Status418)
			}
			if tc.waitOut {
				time.Sleep(time.Until(stoppedAt.Add(2100 * time.Millisecond)))
				if a := get(t, g+"/binance/api/v3/depth?symbol=ETHUSDT"); a.status != 200 || a.header.Get("X-Cache") != "miss" {
					t.Errorf("after the stop = %d X-Cache %q %.200s; want 200 miss", a.status, a.header.Get("X-Cache"), a.body)
				}
				if got := requests(sim); got != calls+1 {
					t.Errorf("after the stop, %d requests reached the simulator; want 1", got-calls)
				}
			}
			if st := sim.RESTStats(); st.DuringBackoff != 0 {
				t.Errorf("simulator counted %d calls during a Retry-After; want 0", st.DuringBackoff)
			}
			st2 := m.Stats().Exchanges[0]
			if st2.Stops429+st2.Stops418 != 1 || st2.CacheStale == 0 {
				t.Errorf("stats %+v; want one stop and stale answers", st2)
			}
		})
	}
}

// books is a test [market.Books] holding one book.
type books struct{ calls int }

func (b *books) Depth(_ context.Context, exchange, symbol string, limit int) ([]byte, bool, error) {
	b.calls++
	if exchange != "binance" || symbol != "BTCUSDT" {
		return nil, false, nil
	}
	return []byte(`{"lastUpdateId":7,"bids":[["1.00","1.00"]],"asks":[["2.00","1.00"]]}`), true, nil
}

// TestBooks: depth of a kept book costs no exchange request; of another
// symbol it goes to the exchange.
func TestBooks(t *testing.T) {
	sim, base := startSim(t, binancesim.ModeSpot)
	depths := func() int { return sim.RESTStats().Requests["/api/v3/depth"] }
	bk := &books{}
	g := startMarket(t, market.Config{Books: bk}, base, "")
	a := get(t, g.url+"/api/v1/market/binance/depth?symbol=BTCUSDT&limit=20")
	if a.status != 200 || !strings.Contains(a.body, `"lastUpdateId":7`) || depths() != 0 {
		t.Errorf("kept book's depth = %d %s, %d exchange calls; want the book's, 0", a.status, a.body, depths())
	}
	a = get(t, g.url+"/binance/api/v3/depth?symbol=ETHUSDT")
	if a.status != 200 || depths() != 1 {
		t.Errorf("unkept book's depth = %d, %d exchange calls; want 200, 1", a.status, depths())
	}
}

// TestBackoff: after a failed exchange call (here the simulator's port
// refusing connections, the failure a real simulator can give) the
// client pauses briefly: a browser call gets the cached answer or 503 at
// once without a request, Get waits and then goes.
func TestBackoff(t *testing.T) {
	sim, err := binancesim.New(binancesim.Config{Seed: 1, TickInterval: time.Hour, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(sim.Handler())
	addr := ts.Listener.Addr().String()
	m, err := market.New(market.Config{Logger: testLogger(t), TTL: map[market.Endpoint]time.Duration{market.EndpointDepth: time.Millisecond}, Exchanges: []market.Exchange{{Rules: binance.SpotREST, BaseURL: ts.URL}}})
	if err != nil {
		t.Fatal(err)
	}
	g := httptestServer(t, m.Handler())
	get(t, g+"/binance/api/v3/exchangeInfo")
	get(t, g+"/binance/api/v3/depth?symbol=BTCUSDT")
	ts.Close() // the exchange goes away
	time.Sleep(5 * time.Millisecond)
	if a := get(t, g+"/binance/api/v3/depth?symbol=BTCUSDT"); a.status != 200 || a.header.Get("X-Cache") != "stale" {
		t.Errorf("a failed call with a cached answer = %d X-Cache %q; want 200 stale", a.status, a.header.Get("X-Cache"))
	}

	// The exchange is back on the same address; the backoff still runs.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	ts2 := &httptest.Server{Listener: ln, Config: &http.Server{Handler: sim.Handler()}}
	ts2.Start()
	t.Cleanup(ts2.Close)
	calls := requests(sim)
	if a := get(t, g+"/binance/api/v3/depth?symbol=ETHUSDT"); a.status != 503 || a.header.Get("Retry-After") != "1" {
		t.Errorf("during the backoff = %d Retry-After %q; want 503, 1", a.status, a.header.Get("Retry-After"))
	}
	if requests(sim) != calls {
		t.Errorf("a call was sent during the backoff")
	}
	start := time.Now()
	if _, err := m.Client("binance").Get(t.Context(), "/api/v3/depth", url.Values{"symbol": {"ETHUSDT"}}); err != nil {
		t.Fatalf("Get after the backoff: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Get waited %v; want about 250ms", d)
	}
	if got := requests(sim); got != calls+1 {
		t.Errorf("Get after the backoff made %d requests; want 1", got-calls)
	}
}

// TestSetAllowedOrigins: a reload's origins replace the configured ones,
// and an empty list allows any origin again.
func TestSetAllowedOrigins(t *testing.T) {
	_, base := startSim(t, binancesim.ModeSpot)
	g := startMarket(t, market.Config{AllowedOrigins: []string{"https://a.example"}}, base, "")
	allow := func(origin string) string {
		return do(t, http.MethodGet, g.url+"/binance/api/v3/ping", "Origin", origin).header.Get("Access-Control-Allow-Origin")
	}
	g.SetAllowedOrigins([]string{"https://b.example/"})
	if got := allow("https://a.example"); got != "" {
		t.Errorf("a after the change: Allow-Origin %q; want none", got)
	}
	if got := allow("https://b.example"); got != "https://b.example" {
		t.Errorf("b after the change: Allow-Origin %q; want it", got)
	}
	g.SetAllowedOrigins(nil)
	if got := allow("https://c.example"); got != "*" {
		t.Errorf("any after clearing: Allow-Origin %q; want *", got)
	}
}
