package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/marketgate/marketgate/internal/browsertest"
)

// allExchanges are the exchanges the gateway carries, each with its
// simulator in demo mode.
var allExchanges = []string{"binance", "binance-futures", "okx", "bybit", "bybit-linear"}

// darkMode makes the tab prefer the dark theme.
var darkMode = chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
	_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}},
	})
	return err
})

// venueWait bounds each wait for a venue's data: OKX takes one subscribe
// request per 8 s (its hourly limit), so a subscribe may wait that long
// before the first message, more on a loaded machine.
const venueWait = 60 * time.Second

// TestBrowserMarketVenues drives the market page in Chromium against a
// demo gateway carrying every exchange: picking each exchange fills the
// ticker (last, bid, ask), the trade tape, the book and the candles, all
// of that venue and symbol (the normalized events name them; the tape's
// prices sit at the book's); candle history where the gateway serves it.
// An unknown exchange in the address and a symbol a venue does not list
// each give a visible notice, not a dead panel.
func TestBrowserMarketVenues(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser and a gateway")
	}
	base := "http://" + startDemoOf(t, allExchanges...)
	br := browsertest.Start(t, 5*time.Minute)
	const state = `JSON.stringify({page: window.marketPage, book: window.mgBook && {key: window.mgBook.key, state: window.mgBook.state}, streams: window.mgClient && window.mgClient.streams, notice: document.getElementById('notice')?.textContent, status: document.getElementById('status')?.textContent})`
	poll := func(what, expr string) { t.Helper(); br.Poll(venueWait, what, expr, state) }
	br.Do("open the market page", chromedp.EmulateViewport(1440, 1000), darkMode, chromedp.Navigate(base+"/"))
	poll("the page module", `window.marketReady === true`)

	// Each venue in turn; the symbol follows (a perpetual venue adds the
	// settle asset, a spot one drops it, OKX lists both and keeps it).
	views := []struct{ x, pick, sym string }{
		{"binance", "", "BTC/USDT"},
		{"binance-futures", "", "BTC/USDT:USDT"},
		{"okx", "", "BTC/USDT:USDT"},
		{"okx", "BTC/USDT", "BTC/USDT"},
		{"bybit", "", "BTC/USDT"},
		{"bybit-linear", "", "BTC/USDT:USDT"},
	}
	for _, vw := range views {
		x, sym := vw.x, vw.sym
		if vw.pick == "" {
			br.Do("pick "+x, chromedp.SetValue("#exchange", x),
				chromedp.Evaluate[chromedp.Void](`document.getElementById('exchange').dispatchEvent(new Event('change'))`))
		} else {
			br.Do("pick "+vw.pick, chromedp.SetValue("#symbol", vw.pick),
				chromedp.Evaluate[chromedp.Void](`document.getElementById('symbol').dispatchEvent(new Event('change'))`))
		}
		view := fmt.Sprintf(`window.marketPage.exchange === %q && window.marketPage.sym === %q`, x, sym)
		poll(x+": the view", view)
		t0 := browsertest.Eval[int](br, `window.marketPage.trades`)
		k0 := browsertest.Eval[int](br, `window.marketPage.klines`)
		poll(x+": trades on the tape", fmt.Sprintf(`window.marketPage.trades >= %d && document.querySelectorAll('#tape tr').length >= 3`, t0+3))
		poll(x+": the ticker", `document.getElementById('last').textContent !== '–' && document.getElementById('volume').textContent !== '–' && document.getElementById('bid').textContent !== '–' && document.getElementById('ask').textContent !== '–'`)
		poll(x+": the book", `window.mgBook.state === 'live' && document.querySelectorAll('#bids .lvl:not([hidden])').length >= 5 && document.querySelectorAll('#asks .lvl:not([hidden])').length >= 5`)
		// Live candles: on top of the history where there is one (Binance
		// pushes every 2 s), else the chart's first bar is a live one (the
		// gateway sends the latest candle on subscribe; OKX's then come
		// only as each bar closes, see the README).
		rest := x == "binance" || x == "binance-futures"
		if rest {
			poll(x+": live candles", fmt.Sprintf(`window.marketPage.klines >= %d && window.marketPage.candles >= 1 && window.marketPage.history > 0`, k0+1))
		} else {
			poll(x+": live candles", `window.marketPage.candles >= 1 && window.marketPage.history === 0`)
		}

		var v struct {
			Book, TapePrice, Bid, Ask, Last, Notice, Chart string
			Streams                                        []string
			History                                        int
			Symbols                                        int
			Options                                        []string
		}
		if err := json.Unmarshal([]byte(browsertest.Eval[string](br, `JSON.stringify({
			Book: window.mgBook.key, TapePrice: document.querySelector('#tape tr td:nth-child(2)').textContent,
			Bid: document.querySelector('#bids .lvl span').textContent, Ask: document.querySelector('#asks .lvl span').textContent,
			Last: document.getElementById('last').textContent, Notice: document.getElementById('notice').hidden ? '' : document.getElementById('notice').textContent,
			Chart: document.getElementById('chartinfo').textContent, Streams: window.mgClient.streams, History: window.marketPage.history,
			Symbols: window.marketPage.symbols, Options: [...document.querySelectorAll('#symbol option')].map((o) => o.value) })`)), &v); err != nil {
			t.Fatal(err)
		}
		// The normalized events name the venue and the unified symbol.
		poll(x+": normalized events of the view", fmt.Sprintf(`['trade', 'ticker', 'candle'].every((c) => window.marketPage.seen[c] === %q)`, x+" "+sym))
		wantKeys := venueKeys[x+" "+sym]
		if v.Book != wantKeys[2] {
			t.Errorf("%s: book key %q; want %q", x, v.Book, wantKeys[2])
		}
		for _, k := range wantKeys[:2] {
			if !contains(v.Streams, k) {
				t.Errorf("%s: the normalized client holds %v; want %s among them", x, v.Streams, k)
			}
		}
		for _, s := range v.Streams {
			if !strings.HasPrefix(s, x+":") {
				t.Errorf("%s: the client still holds %s of another venue", x, s)
			}
		}
		if v.Notice != "" {
			t.Errorf("%s: notice %q on a listed symbol", x, v.Notice)
		}
		bid, ask, tape, last := num(v.Bid), num(v.Ask), num(v.TapePrice), num(v.Last)
		if !(bid > 0 && bid < ask) {
			t.Errorf("%s: best bid %s, best ask %s; want 0 < bid < ask", x, v.Bid, v.Ask)
		}
		// The tape and the ticker are of the book's market: within 2 %.
		mid := (bid + ask) / 2
		for what, p := range map[string]float64{"newest trade": tape, "last price": last} {
			if math.Abs(p-mid)/mid > 0.02 {
				t.Errorf("%s: %s %v is far from the book's mid %v: another venue's or symbol's data?", x, what, p, mid)
			}
		}
		// History where the gateway serves it (Binance spot and USD-M),
		// said to be missing elsewhere.
		if rest && v.History == 0 {
			t.Errorf("%s: no candle history (%s)", x, v.Chart)
		}
		if !rest && (v.History != 0 || !strings.Contains(v.Chart, "no history")) {
			t.Errorf("%s: history %d, chart info %q; want none, said", x, v.History, v.Chart)
		}
		if rest && v.Symbols < 5 || !contains(v.Options, sym) {
			t.Errorf("%s: %d symbols from /symbols, picker %v; want the list, %s in it", x, v.Symbols, v.Options, sym)
		}
		if n := browsertest.Eval[int](br, `document.querySelectorAll('#chart canvas').length`); n == 0 {
			t.Errorf("%s: the chart drew no canvas", x)
		}
		if x == "okx" && sym == "BTC/USDT" {
			save(t, br, "market-okx.png")
			// A candle interval with another spelling on OKX (1H).
			k := browsertest.Eval[int](br, `window.marketPage.klines`)
			br.Do("okx: 1h candles", chromedp.Click(`#intervals button[data-interval="1h"]`))
			poll("okx: live 1h candles", fmt.Sprintf(`window.mgClient.streams.includes('okx:candle1H:BTC-USDT') && window.marketPage.klines > %d`, k))
			br.Do("okx: back to 1m", chromedp.Click(`#intervals button[data-interval="1m"]`))
		}
	}
	// The perpetual the last venue showed goes back to spot on Binance.
	br.Do("pick binance", chromedp.SetValue("#exchange", "binance"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('exchange').dispatchEvent(new Event('change'))`))
	poll("binance BTC/USDT again", `window.marketPage.exchange === 'binance' && window.marketPage.sym === 'BTC/USDT' && window.mgBook.state === 'live'`)

	// A symbol Bybit does not list (BNB/USDT is on Binance only): a
	// notice names it and the venue's answer; the book says so too.
	br.Do("pick BNB/USDT", chromedp.SetValue("#symbol", "BNB/USDT"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('symbol').dispatchEvent(new Event('change'))`))
	poll("BNB/USDT on binance", `window.marketPage.sym === 'BNB/USDT' && window.mgBook.state === 'live' && window.marketPage.trades > 0`)
	br.Do("pick bybit", chromedp.SetValue("#exchange", "bybit"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('exchange').dispatchEvent(new Event('change'))`))
	poll("the notice of an unlisted symbol", `!document.getElementById('notice').hidden &&
		document.getElementById('notice').textContent.includes('BNB/USDT is not available on Bybit spot') &&
		document.getElementById('notice').textContent.includes('unknown symbol') &&
		document.getElementById('spread').textContent === 'no book for BNB/USDT on Bybit spot' &&
		document.getElementById('bookstale').textContent === 'unavailable'`)
	if got := br.Text("#symbol option:checked"); got != "BNB/USDT" {
		t.Errorf("picker shows %q; want the unlisted BNB/USDT still picked", got)
	}
	// Picking a listed symbol clears it.
	br.Do("pick ETH/USDT", chromedp.SetValue("#symbol", "ETH/USDT"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('symbol').dispatchEvent(new Event('change'))`))
	poll("ETH/USDT on bybit, no notice", `window.marketPage.sym === 'ETH/USDT' && document.getElementById('notice').hidden && window.mgBook.state === 'live' && document.querySelectorAll('#tape tr').length > 0`)

	// The address: an unknown exchange is said and Binance shown.
	br.Do("an unknown exchange", chromedp.Navigate(base+"/?exchange=kraken&symbol=ETH/USDT"))
	poll("the unknown exchange's notice", `window.marketReady === true && !document.getElementById('notice').hidden &&
		document.getElementById('notice').textContent.includes('Unknown exchange "kraken"') &&
		window.marketPage.exchange === 'binance' && window.marketPage.sym === 'ETH/USDT' && document.getElementById('exchange').value === 'binance'`)
	poll("Binance ETH/USDT in its place", `window.marketPage.trades >= 3 && window.mgBook.state === 'live'`)
	// And a symbol absent on the venue named in the address.
	br.Do("an unlisted symbol", chromedp.Navigate(base+"/?exchange=okx&symbol=BNB/USDT"))
	poll("the unlisted symbol's notice", `window.marketReady === true && window.marketPage.exchange === 'okx' &&
		document.getElementById('notice').textContent.includes('BNB/USDT is not available on OKX') && window.marketPage.unlisted !== null`)
	// A perpetual named for a spot venue is moved to its spot pair.
	br.Do("a perpetual on spot", chromedp.Navigate(base+"/?exchange=bybit&symbol=SOL/USDT:USDT&interval=5m"))
	poll("SOL/USDT on bybit at 5m", `window.marketReady === true && window.marketPage.sym === 'SOL/USDT' && window.marketPage.interval === '5m' &&
		window.mgClient.streams.includes('bybit:kline.5.SOLUSDT') && window.mgBook.state === 'live' && document.getElementById('notice').hidden`)
	br.NoErrors()
}

// venueKeys are the trade, ticker and book keys of BTC/USDT and its
// perpetual on each exchange, as the gateway's grammars spell them.
var venueKeys = map[string][3]string{
	"binance BTC/USDT":              {"binance:btcusdt@trade", "binance:btcusdt@ticker", "binance:btcusdt@book"},
	"binance-futures BTC/USDT:USDT": {"binance-futures:btcusdt@aggTrade", "binance-futures:btcusdt@ticker", "binance-futures:btcusdt@book"},
	"okx BTC/USDT":                  {"okx:trades:BTC-USDT", "okx:tickers:BTC-USDT", "okx:book:BTC-USDT"},
	"okx BTC/USDT:USDT":             {"okx:trades:BTC-USDT-SWAP", "okx:tickers:BTC-USDT-SWAP", "okx:book:BTC-USDT-SWAP"},
	"bybit BTC/USDT":                {"bybit:publicTrade.BTCUSDT", "bybit:tickers.BTCUSDT", "bybit:book.BTCUSDT"},
	"bybit-linear BTC/USDT:USDT":    {"bybit-linear:publicTrade.BTCUSDT", "bybit-linear:tickers.BTCUSDT", "bybit-linear:book.BTCUSDT"},
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// num reads a price as the page shows it; NaN when it is not one.
func num(s string) float64 {
	var f float64
	if _, err := fmt.Sscan(s, &f); err != nil {
		return math.NaN()
	}
	return f
}

// save writes a screenshot of br to the test's artifacts and, with
// -update-screenshots, to docs/screenshots.
func save(t *testing.T, br *browsertest.Browser, name string) {
	t.Helper()
	br.Screenshot(filepath.Join(t.ArtifactDir(), name))
	if *updateScreenshots {
		br.Screenshot(filepath.Join(screenshotDir, name))
	}
}

// TestBrowserCompare drives the side-by-side page against a demo gateway
// carrying every exchange: BTC/USDT on Binance, OKX and Bybit at once,
// each with a last price, best bid and ask, book rows and trades, live;
// the summary marks the best bid and ask across venues and says how far
// the last prices are apart. The perpetual switch moves to USD-M, OKX
// swaps and Bybit linear. A symbol two venues do not list says so in
// their columns while the third stays live; a bad symbol or market in the
// address gets a notice.
func TestBrowserCompare(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser and a gateway")
	}
	base := "http://" + startDemoOf(t, allExchanges...)
	br := browsertest.Start(t, 5*time.Minute)
	const state = `JSON.stringify({page: window.comparePage, notice: document.getElementById('notice')?.textContent, status: document.getElementById('status')?.textContent})`
	poll := func(what, expr string) { t.Helper(); br.Poll(venueWait, what, expr, state) }
	br.Do("open the compare page", chromedp.EmulateViewport(1440, 1100), darkMode, chromedp.Navigate(base+"/compare?symbol=BTC/USDT"))
	poll("the page module", `window.compareReady === true`)
	if p := browsertest.Eval[string](br, `document.querySelector('#market button[aria-pressed="true"]').dataset.market`); p != "spot" {
		t.Errorf("market pressed %q; want spot", p)
	}

	// live is true once every venue of the view has trades, a ticker, a
	// live book and prices, and the tape and summary show them.
	live := func(venues ...string) string {
		var conds []string
		for _, x := range venues {
			v := fmt.Sprintf(`window.comparePage.venues[%q]`, x)
			conds = append(conds, fmt.Sprintf(`%s && %s.trades >= 3 && %s.tickers >= 1 && %s.book === 'live' && %s.last > 0 && %s.bid > 0 && %s.ask > %s.bid && !%s.error`, v, v, v, v, v, v, v, v, v),
				fmt.Sprintf(`document.querySelectorAll('.venue[data-exchange=%q] .vtape tr').length >= 3`, x),
				fmt.Sprintf(`document.querySelectorAll('.venue[data-exchange=%q] .vbids .lvl:not([hidden])').length >= 5`, x),
				fmt.Sprintf(`document.querySelector('#sumrows tr[data-exchange=%q] td').textContent !== '–'`, x))
		}
		return strings.Join(conds, " && ")
	}
	poll("three spot venues live", live("binance", "okx", "bybit"))
	if n := browsertest.Eval[int](br, `document.querySelectorAll('.venue').length`); n != 3 {
		t.Errorf("%d venue columns; want 3", n)
	}
	checkSummary(t, br, []string{"binance", "okx", "bybit"})
	// Prices keep moving: the view is live, not a first snapshot.
	r := browsertest.Eval[int](br, `window.comparePage.venues.okx.trades + window.comparePage.venues.bybit.trades + window.comparePage.venues.binance.trades`)
	poll("more trades", fmt.Sprintf(`window.comparePage.venues.okx.trades + window.comparePage.venues.bybit.trades + window.comparePage.venues.binance.trades > %d + 6`, r))
	save(t, br, "compare-dark.png")
	br.Do("light theme", chromedp.Click("#theme"))
	poll("the light theme", `document.documentElement.dataset.theme === 'light'`)
	save(t, br, "compare-light.png")
	br.Do("dark theme", chromedp.Click("#theme"))

	// Perpetuals: USD-M, OKX's swap, Bybit linear.
	br.Do("perpetuals", chromedp.Click(`#market button[data-market="perpetual"]`))
	poll("three perpetual venues live", `window.comparePage.market === 'perpetual' && `+live("binance-futures", "okx", "bybit-linear"))
	if s := browsertest.Eval[string](br, `window.comparePage.venues.okx.symbol + ' ' + location.search`); s != "BTC/USDT:USDT ?symbol=BTC%2FUSDT%3AUSDT" {
		t.Errorf("okx symbol and address %q; want the swap, in the address", s)
	}
	checkSummary(t, br, []string{"binance-futures", "okx", "bybit-linear"})

	// A symbol OKX and Bybit do not list: their columns say so, Binance's
	// stays live.
	br.Do("spot", chromedp.Click(`#market button[data-market="spot"]`))
	br.Do("BNB/USDT", chromedp.SetValue("#csymbol", "BNB/USDT"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('csymbol').dispatchEvent(new Event('change'))`))
	poll("BNB/USDT: two venues say it is not listed", `window.comparePage.pair === 'BNB/USDT' && `+live("binance")+` &&
		['okx', 'bybit'].every((x) => window.comparePage.venues[x].error.includes('unknown symbol') &&
			!document.querySelector('.venue[data-exchange="' + x + '"] .verror').hidden &&
			document.querySelector('.venue[data-exchange="' + x + '"] .verror').textContent.includes('BNB/USDT') &&
			document.querySelector('#sumrows tr[data-exchange="' + x + '"] td:last-child').textContent === 'unavailable')`)

	// Bad input in the address.
	br.Do("a bad symbol", chromedp.Navigate(base+"/compare?symbol=BTCUSDT"))
	poll("the bad symbol's notice", `window.compareReady === true && !document.getElementById('notice').hidden &&
		document.getElementById('notice').textContent.includes('"BTCUSDT" is not a unified symbol') && window.comparePage.pair === 'BTC/USDT'`)
	poll("BTC/USDT in its place", live("binance", "okx", "bybit"))
	br.Do("a bad market", chromedp.Navigate(base+"/compare?symbol=ETH/USDT&market=options"))
	poll("the bad market's notice", `window.compareReady === true && document.getElementById('notice').textContent.includes('Unknown market "options"') && window.comparePage.market === 'spot'`)
	br.Do("a perpetual symbol", chromedp.Navigate(base+"/compare?symbol=ETH/USDT:USDT"))
	poll("the perpetual view from the symbol", `window.compareReady === true && window.comparePage.market === 'perpetual' && document.getElementById('notice').hidden && `+live("binance-futures", "okx", "bybit-linear"))
	br.NoErrors()
}

// checkSummary checks the summary table against the venues' columns: a
// row per venue, the best bid the highest of the venues' bids and the
// best ask the lowest, and the sentence on how far the last prices are
// apart.
func checkSummary(t *testing.T, br *browsertest.Browser, venues []string) {
	t.Helper()
	var s struct {
		Rows     []string
		BestBid  []string
		BestAsk  []string
		Cross    string
		Bids     map[string]float64
		Asks     map[string]float64
		Bid, Ask string
	}
	if err := json.Unmarshal([]byte(browsertest.Eval[string](br, `(() => {
		const p = window.comparePage;
		return JSON.stringify({
			Rows: [...document.querySelectorAll('#sumrows tr')].map((r) => r.dataset.exchange),
			BestBid: [...document.querySelectorAll('#sumrows td.best')].filter((td) => td.cellIndex === 3).map((td) => td.parentElement.dataset.exchange),
			BestAsk: [...document.querySelectorAll('#sumrows td.best')].filter((td) => td.cellIndex === 4).map((td) => td.parentElement.dataset.exchange),
			Cross: document.getElementById('cross').textContent,
			Bids: Object.fromEntries(Object.entries(p.venues).map(([x, v]) => [x, v.bid])),
			Asks: Object.fromEntries(Object.entries(p.venues).map(([x, v]) => [x, v.ask])),
			Bid: p.summary.bestBid, Ask: p.summary.bestAsk });
	})()`)), &s); err != nil {
		t.Fatal(err)
	}
	if strings.Join(s.Rows, " ") != strings.Join(venues, " ") {
		t.Errorf("summary rows %v; want %v", s.Rows, venues)
	}
	hi, lo := venues[0], venues[0]
	for _, x := range venues {
		if s.Bids[x] > s.Bids[hi] {
			hi = x
		}
		if s.Asks[x] < s.Asks[lo] {
			lo = x
		}
	}
	if s.Bid != hi || len(s.BestBid) != 1 || s.BestBid[0] != hi {
		t.Errorf("best bid marked on %v (summary %s); bids %v: want %s", s.BestBid, s.Bid, s.Bids, hi)
	}
	if s.Ask != lo || len(s.BestAsk) != 1 || s.BestAsk[0] != lo {
		t.Errorf("best ask marked on %v (summary %s); asks %v: want %s", s.BestAsk, s.Ask, s.Asks, lo)
	}
	if !strings.HasPrefix(s.Cross, "Last prices differ by ") {
		t.Errorf("cross-venue line %q; want how far the last prices are apart", s.Cross)
	}
}
