package web_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/marketgate/marketgate/gateway"
	"github.com/marketgate/marketgate/internal/browsertest"
	"github.com/marketgate/marketgate/upstream"
)

// updateScreenshots makes TestBrowserMarketDemo write the market page's
// screenshots, dark and light, to docs/screenshots:
//
//	go test ./web -run TestBrowserMarketDemo -update-screenshots
var updateScreenshots = flag.Bool("update-screenshots", false, "write the market page's screenshots to docs/screenshots")

// screenshotDir is where the README's screenshots are kept, from this
// package's directory.
const screenshotDir = "../docs/screenshots"

// startDemo runs a gateway with --demo's in-process Binance spot
// simulator until the test ends, and returns its public address once it
// is ready.
func startDemo(t *testing.T) string {
	t.Helper()
	return startDemoOf(t, "binance")
}

// startDemoOf is startDemo with the simulators of the exchanges named.
func startDemoOf(t *testing.T, exchanges ...string) string {
	t.Helper()
	cfgs := make(map[string]upstream.Config, len(exchanges))
	for _, x := range exchanges {
		cfgs[x] = upstream.Config{}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(gateway.Config{
		Listener:  ln,
		NodeID:    "web-test",
		Demo:      true,
		Exchanges: cfgs,
		Logger:    slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("gateway Run = %v; want nil", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("gateway did not stop within 15 s")
		}
	})
	addr := ln.Addr().String()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway at %s not ready: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// getJSON decodes the JSON answer of GET url into v; it fails the test
// unless the answer is 200.
func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v (%.200s)", url, err, body)
	}
}

// depthBody is a Binance REST depth answer.
type depthBody struct {
	LastUpdateID int64       `json:"lastUpdateId"`
	Bids         [][2]string `json:"bids"`
	Asks         [][2]string `json:"asks"`
}

// bookRing keeps, in the page, the top 20 levels a side of the market
// page's book at each of its last 600 update ids, for the test to compare
// with the gateway's own depth answer at the same id.
const bookRing = `(() => {
	const ring = window.bookRing = new Map();
	const keep = (b) => {
		if (b.state !== 'live' || b.lastUpdateId === null) return;
		ring.set(b.lastUpdateId, JSON.stringify({ lastUpdateId: b.lastUpdateId, bids: b.levels('bids', 20), asks: b.levels('asks', 20) }));
		if (ring.size > 600) ring.delete(ring.keys().next().value);
	};
	keep(window.mgBook);
	window.mgBook.on('change', keep);
})()`

// TestBrowserMarketDemo drives the market page in headless Chromium
// against a gateway in demo mode (its Binance simulator in-process): the
// symbol picker lists /symbols, the chart draws the /klines history and
// then live candles, the interval switch reloads it, the book shows rows
// with depth bars and best bid below best ask, and the page's orderBook
// is, at the same update id, the gateway's own depth answer. Screenshots
// of the page, dark and light, go to the test's artifacts and, with
// -update-screenshots, to docs/screenshots.
func TestBrowserMarketDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser and a gateway")
	}
	addr := startDemo(t)
	base := "http://" + addr

	// rest says whether the gateway serves market REST; without it the
	// page keeps its fixed symbol list and draws live candles only, and
	// the checks of /symbols, /klines and /depth are skipped (reported at
	// the end).
	rest := marketREST(t, base)
	trading := 0
	if rest {
		var syms struct {
			Symbols []struct {
				Symbol string `json:"symbol"`
				Status string `json:"status"`
			} `json:"symbols"`
		}
		getJSON(t, base+"/api/v1/market/binance/symbols", &syms)
		for _, s := range syms.Symbols {
			if s.Status == "TRADING" {
				trading++
			}
		}
		if trading == 0 {
			t.Fatalf("/symbols lists no trading symbol: %+v", syms)
		}
	}
	// klines says whether /klines answers (the exchange, or the
	// simulator, may not serve klines); history is true in the page once
	// the candle history is in, or at once without it.
	klines := rest && answers(t, base+"/api/v1/market/binance/klines?symbol=BTCUSDT&interval=1m&limit=500")
	history := `window.marketPage.history > 0`
	if !klines {
		history = `window.marketPage.history === 0`
	}

	br := browsertest.Start(t, 3*time.Minute)
	const state = `JSON.stringify({page: window.marketPage, book: window.mgBook && {state: window.mgBook.state, id: window.mgBook.lastUpdateId, stats: window.mgBook.stats}, status: document.getElementById('status')?.textContent})`
	poll := func(what, expr string) { t.Helper(); br.Poll(15*time.Second, what, expr, state) }
	br.Do("open the market page", chromedp.EmulateViewport(1440, 1000),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}},
			})
			return err
		}),
		chromedp.Navigate(base+"/"))
	poll("the page module", `window.marketReady === true`)
	poll("the open state", `document.getElementById('state').textContent === 'open'`)

	// The symbol picker lists the exchange's trading symbols.
	if rest {
		poll("the symbol list", fmt.Sprintf(`window.marketPage.symbols === %d && document.querySelectorAll('#symbol option').length === %d`, trading, trading))
		if v := browsertest.Eval[string](br, `document.getElementById('symbol').value`); v != "BTC/USDT" {
			t.Errorf("symbol picked after the list loaded: %q; want BTC/USDT", v)
		}
	}

	// Candles: the history first, then live updates of the newest.
	poll("the candle history", history+` && window.marketPage.candles >= window.marketPage.history`)
	if klines {
		var klines [][]any
		getJSON(t, base+"/api/v1/market/binance/klines?symbol=BTCUSDT&interval=1m&limit=500", &klines)
		if len(klines) == 0 {
			t.Fatal("/klines answered no candle for BTCUSDT 1m")
		}
		if h := browsertest.Eval[int](br, `window.marketPage.history`); h < len(klines)-1 || h > len(klines)+1 {
			t.Errorf("page loaded %d candles of history; /klines has %d", h, len(klines))
		}
	}
	if n := browsertest.Eval[int](br, `document.querySelectorAll('#chart canvas').length`); n == 0 {
		t.Error("the chart drew no canvas")
	}
	k0 := browsertest.Eval[int](br, `window.marketPage.klines`)
	poll("live kline updates", fmt.Sprintf(`window.marketPage.klines >= %d && window.marketPage.lastBar !== null`, k0+2))

	// The book: rows with depth bars, best bid below best ask.
	poll("book rows", `document.querySelectorAll('#bids .lvl:not([hidden])').length >= 20 && document.querySelectorAll('#asks .lvl:not([hidden])').length >= 20`)
	poll("book updates", `window.mgBook.stats.updates >= 3`)
	var top struct {
		Bid, Ask string
		Stale    bool
	}
	if err := json.Unmarshal([]byte(browsertest.Eval[string](br, `JSON.stringify({
		Bid: document.querySelector('#bids .lvl span').textContent, Ask: document.querySelector('#asks .lvl span').textContent,
		Stale: !document.getElementById('bookstale').hidden })`)), &top); err != nil {
		t.Fatal(err)
	}
	var bid, ask float64
	fmt.Sscan(top.Bid, &bid)
	fmt.Sscan(top.Ask, &ask)
	if !(bid > 0 && bid < ask) {
		t.Errorf("best bid %q, best ask %q; want 0 < bid < ask", top.Bid, top.Ask)
	}
	// Depth bars are cumulative: they widen from the best level outwards,
	// and the deepest row of the deeper side spans the row.
	var widths struct{ Bids, Asks []float64 }
	if err := json.Unmarshal([]byte(browsertest.Eval[string](br, `JSON.stringify(Object.fromEntries(['Bids', 'Asks'].map((s) =>
		[s, [...document.querySelectorAll('#' + s.toLowerCase() + ' .lvl:not([hidden])')].map((r) => parseFloat(r.style.getPropertyValue('--w')) || 0)])))`)), &widths); err != nil {
		t.Fatal(err)
	}
	widest := 0.0
	for _, side := range [][]float64{widths.Bids, widths.Asks} {
		if !slices.IsSorted(side) {
			t.Errorf("depth bars %v; want them widening from the best level", side)
		}
		if len(side) > 0 {
			widest = max(widest, side[len(side)-1])
		}
	}
	if widest != 100 {
		t.Errorf("widest depth bar %.1f%%; want 100%% (bids %v, asks %v)", widest, widths.Bids, widths.Asks)
	}
	if top.Stale {
		t.Error("a live book is marked stale")
	}

	// orderBook equals the gateway's own depth answer at the same update id.
	br.Do("keep the book's states", chromedp.Evaluate[chromedp.Void](bookRing))
	matched := 0
	for try := 0; rest && try < 20 && matched < 3; try++ {
		var d depthBody
		getJSON(t, base+"/api/v1/market/binance/depth?symbol=BTCUSDT&limit=20", &d)
		poll("the page's book to reach the depth answer", fmt.Sprintf(`window.mgBook.lastUpdateId >= %d`, d.LastUpdateID))
		raw := browsertest.Eval[string](br, fmt.Sprintf(`window.bookRing.get(%d) ?? ''`, d.LastUpdateID))
		if raw == "" {
			t.Logf("depth answer at update %d: the page's book had no state at that id", d.LastUpdateID)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		var got depthBody
		if err := json.Unmarshal([]byte(raw), &got); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got.Bids) != fmt.Sprint(d.Bids) || fmt.Sprint(got.Asks) != fmt.Sprint(d.Asks) {
			t.Errorf("at update %d the page's book differs from the gateway's depth answer:\npage bids %v\n     asks %v\ngateway bids %v\n        asks %v",
				d.LastUpdateID, got.Bids, got.Asks, d.Bids, d.Asks)
			break
		}
		matched++
		time.Sleep(150 * time.Millisecond)
	}
	if rest && matched < 3 {
		t.Errorf("the page's book matched the gateway's depth answer %d times; want 3", matched)
	}

	// Screenshots, dark then light.
	save(t, br, "market-dark.png")
	br.Do("light theme", chromedp.Click("#theme"))
	poll("the light theme", `document.documentElement.dataset.theme === 'light'`)
	save(t, br, "market-light.png")

	// The interval switch reloads the history and moves the live stream.
	loads := browsertest.Eval[int](br, `window.marketPage.historyLoads`)
	br.Do("switch to 5m", chromedp.Click(`#intervals button[data-interval="5m"]`))
	poll("the 5m history", fmt.Sprintf(`window.marketPage.interval === '5m' && window.marketPage.historyLoads === %d && `+history, loads+1))
	poll("the 5m stream alone", `window.mgClient.streams.includes('binance:btcusdt@kline_5m') && !window.mgClient.streams.includes('binance:btcusdt@kline_1m')`)
	if p := browsertest.Eval[string](br, `document.querySelector('#intervals button[aria-pressed="true"]').dataset.interval`); p != "5m" {
		t.Errorf("pressed interval button %q; want 5m", p)
	}
	k5 := browsertest.Eval[int](br, `window.marketPage.klines`)
	poll("live 5m candles", fmt.Sprintf(`window.marketPage.klines >= %d`, k5+1))

	// The filter box narrows the list; picking a symbol moves every view.
	if rest {
		br.Do("filter", chromedp.SendKeys("#symfilter", "eth"))
		poll("the filtered list", `[...document.querySelectorAll('#symbol option')].some((o) => o.value === 'ETH/USDT') && ![...document.querySelectorAll('#symbol option')].some((o) => o.value === 'SOL/USDT')`)
	}
	br.Do("pick ETHUSDT", chromedp.SetValue("#symbol", "ETH/USDT"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('symbol').dispatchEvent(new Event('change'))`))
	poll("the ETHUSDT book and candles", `window.marketPage.sym === 'ETH/USDT' && window.mgBook.key === 'binance:ethusdt@book' && window.mgBook.state === 'live' && `+history)
	poll("no BTCUSDT streams left", `!window.mgClient.streams.some((s) => s.startsWith('binance:btcusdt@'))`)

	br.NoErrors()
	switch {
	case !rest:
		t.Error("the gateway serves no market REST (/api/v1/market/binance/symbols is not 200): the page was checked without /symbols, /klines and /depth")
	case !klines:
		t.Error("/api/v1/market/binance/klines does not answer 200: the page was checked without candle history")
	}
}

// answers reports whether GET url answers 200.
func answers(t *testing.T, url string) bool {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// marketREST reports whether the gateway at base serves market REST.
func marketREST(t *testing.T, base string) bool {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/market/binance/symbols")
	if err != nil {
		t.Fatalf("GET /symbols: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode != http.StatusNotFound
}
