package web

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/marketgate/marketgate/hub"
	"github.com/marketgate/marketgate/internal/browsertest"
)

// marketSource accepts binance:<symbol>@trade, @ticker, @book and
// @kline_<interval> keys; the test publishes into the hub.
type marketSource struct{}

func (marketSource) Validate(key string) error {
	name, ok := strings.CutPrefix(key, "binance:")
	if !ok {
		return fmt.Errorf("invalid stream key %q", key)
	}
	for _, suffix := range []string{"@trade", "@ticker", "@book", "@kline_1m", "@kline_5m", "@kline_15m", "@kline_1h", "@kline_4h", "@kline_1d"} {
		if sym, ok := strings.CutSuffix(name, suffix); ok && sym != "" && !strings.ContainsAny(sym, "@:/") {
			return nil
		}
	}
	return fmt.Errorf("invalid stream name %q", name)
}
func (marketSource) Want([]string)   {}
func (marketSource) Unwant([]string) {}

// marketFeed publishes realistic trade, 24 h ticker, 1m kline and book
// events: a book snapshot of 30 levels a side every bookEvery ticks
// (as a subscriber's first message would be), updates continuing it in
// between.
type marketFeed struct {
	seq   map[string]uint64
	trade int
	// updateID is each book's last update id, by symbol.
	updateID map[string]int64
}

// bookEvery is how often, in ticks, the feed publishes a book snapshot.
const bookEvery = 10

// tradePrice is the price of trade i of a symbol with base price base.
func tradePrice(base float64, i int) string {
	return fmt.Sprintf("%.2f", base+float64(i%40)*0.5)
}

func (f *marketFeed) publish(ctx context.Context, h *hub.Memory, sym string, base float64) error {
	now := time.Now().UnixMilli()
	up := strings.ToUpper(sym)
	f.trade++
	var book string
	id := f.updateID[sym]
	if f.trade%bookEvery == 1 {
		var bids, asks []string
		for i := range 30 {
			bids = append(bids, fmt.Sprintf(`["%.2f","%.5f"]`, base-float64(i+1)*0.5, 0.1+float64(i%7)*0.37))
			asks = append(asks, fmt.Sprintf(`["%.2f","%.5f"]`, base+float64(i+1)*0.5, 0.2+float64(i%5)*0.41))
		}
		id += 100
		book = fmt.Sprintf(`{"type":"snapshot","lastUpdateId":%d,"bids":[%s],"asks":[%s]}`, id, strings.Join(bids, ","), strings.Join(asks, ","))
	} else {
		// Change one bid and one ask quantity within the top 30.
		i := f.trade % 30
		book = fmt.Sprintf(`{"type":"update","U":%d,"u":%d,"b":[["%.2f","%.5f"]],"a":[["%.2f","%.5f"]]}`,
			id+1, id+3, base-float64(i+1)*0.5, 0.5+float64(f.trade%11)*0.1, base+float64(i+1)*0.5, 0.7+float64(f.trade%13)*0.1)
		id += 3
	}
	f.updateID[sym] = id
	minute := now / 60000 * 60000
	events := map[string]string{
		"@trade": fmt.Sprintf(`{"e":"trade","E":%d,"s":"%s","t":%d,"p":"%s","q":"0.01200000","T":%d,"m":%t,"M":true}`,
			now, up, f.trade, tradePrice(base, f.trade), now, f.trade%3 == 0),
		"@ticker": fmt.Sprintf(`{"e":"24hrTicker","E":%d,"s":"%s","c":"%s","b":"%.2f","a":"%.2f","o":"%.2f","h":"%.2f","l":"%.2f","v":"12345.67800000","q":"456789012.34000000"}`,
			now, up, tradePrice(base, f.trade), base-0.5, base+0.5, base-100, base+250, base-300),
		"@book": book,
		"@kline_1m": fmt.Sprintf(`{"e":"kline","E":%d,"s":"%s","k":{"t":%d,"T":%d,"s":"%s","i":"1m","o":"%.2f","c":"%s","h":"%.2f","l":"%.2f","v":"%d.5","x":false}}`,
			now, up, minute, minute+59999, up, base, tradePrice(base, f.trade), base+20, base-1, 10+f.trade%50),
	}
	for suffix, data := range events {
		key := "binance:" + sym + suffix
		f.seq[key]++
		if err := h.Publish(ctx, hub.Message{Stream: key, Seq: f.seq[key], Data: []byte(data)}); err != nil {
			return err
		}
	}
	return h.Flush(ctx)
}

// TestMarketPage drives the page at / in headless Chromium, fed by a real
// gateway node, at desktop and phone sizes.
func TestMarketPage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	g, addr := startGatewaySource(t, "127.0.0.1:0", marketSource{})

	// Publish BTCUSDT and ETHUSDT events every 50 ms until the test ends.
	pctx, stopFeed := context.WithCancel(context.Background())
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		f := &marketFeed{seq: map[string]uint64{}, updateID: map[string]int64{}}
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		deadline := time.After(2 * time.Minute)
		for {
			select {
			case <-pctx.Done():
				return
			case <-deadline:
				return
			case <-tick.C:
			}
			for _, s := range []struct {
				sym  string
				base float64
			}{{"btcusdt", 37000}, {"ethusdt", 2000}} {
				if err := f.publish(pctx, g.hub, s.sym, s.base); err != nil && pctx.Err() == nil {
					t.Errorf("publish %s: %v", s.sym, err)
					return
				}
			}
		}
	}()
	t.Cleanup(func() { stopFeed(); <-fed }) // runs before the gateway stops

	br := browsertest.Start(t, 90*time.Second)
	ctx := br.Ctx
	dir := t.ArtifactDir()

	const pageState = `JSON.stringify({page: window.marketPage, status: document.getElementById('status')?.textContent})`
	poll := func(what, expr string) { t.Helper(); br.Poll(10*time.Second, what, expr, pageState) }
	text := br.Text
	// btcPrices are the prices the feed publishes for BTCUSDT, as the page shows them.
	btcPrices := map[string]bool{}
	for i := range 40 {
		btcPrices[strings.TrimSuffix(strings.TrimSuffix(tradePrice(37000, i), "0"), ".0")] = true
		btcPrices[strings.TrimSuffix(tradePrice(37000, i), ".00")] = true
	}

	sizes := []struct {
		name          string
		width, height int64
	}{{"desktop", 1280, 900}, {"mobile", 375, 800}}
	for i, size := range sizes {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(size.width, size.height)); err != nil {
			t.Fatalf("viewport %s: %v", size.name, err)
		}
		if i == 0 {
			if err := chromedp.Do(ctx, chromedp.Navigate("http://"+addr+"/")); err != nil {
				t.Fatalf("navigate: %v", err)
			}
			poll("the page module to load", `window.marketReady === true`)
		}
		poll("the open state", `document.getElementById('state').textContent === 'open'`)
		poll("trade rows", `document.querySelectorAll('#tape tr').length >= 5`)
		poll("a full book", `document.querySelectorAll('#bids .lvl:not([hidden])').length === 30 && document.querySelectorAll('#asks .lvl:not([hidden])').length === 30`)
		poll("book updates", `window.mgBook.stats.updates > 3 && window.marketPage.bookGaps.length === 0`)
		poll("a live candle", `window.marketPage.candles >= 1 && window.marketPage.history === 0`)
		poll("the ticker's last price", `document.getElementById('last').textContent !== '–'`)
		poll("the message rate", `Number(document.getElementById('rate').textContent) > 0`)

		if p := text("#tape tr td:nth-child(2)"); !btcPrices[p] {
			t.Errorf("%s: newest trade price %q is not a published BTCUSDT price", size.name, p)
		}
		if last := text("#last"); !btcPrices[last] {
			t.Errorf("%s: ticker last price %q is not a published BTCUSDT price", size.name, last)
		}
		if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#tape tr').length`)); err != nil || n > 50 {
			t.Errorf("%s: tape has %d rows (%v); want at most 50", size.name, n, err)
		}
		if lat := text("#latency"); !strings.HasSuffix(lat, " ms") {
			t.Errorf("%s: latency %q; want a value in ms", size.name, lat)
		}
		if size.name == "mobile" {
			// One column, no horizontal scrolling.
			w, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
			if err != nil || w > int(size.width) {
				t.Errorf("mobile: page is %d px wide (%v); want at most %d", w, err, size.width)
			}
			cols, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector('main')).gridTemplateColumns`))
			if err != nil || strings.Contains(strings.TrimSpace(cols), " ") {
				t.Errorf("mobile: grid columns %q (%v); want one", cols, err)
			}
		}
		br.Screenshot(filepath.Join(dir, "market-"+size.name+".png")) // after the chart has drawn
	}

	// Switching the symbol moves the subscriptions to ETHUSDT.
	if err := chromedp.Do(ctx, chromedp.SetValue("#symbol", "ETH/USDT"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('symbol').dispatchEvent(new Event('change'))`)); err != nil {
		t.Fatalf("switch symbol: %v", err)
	}
	for _, key := range []string{"binance:ethusdt@trade", "binance:ethusdt@ticker", "binance:ethusdt@book", "binance:ethusdt@kline_1m"} {
		waitUntil(t, 5*time.Second, "a subscriber of "+key, func() bool { return g.subscribers(key) == 1 })
	}
	waitUntil(t, 5*time.Second, "BTCUSDT unsubscribed", func() bool { return g.subscribers("binance:btcusdt@trade") == 0 })
	poll("ETHUSDT trades", `(() => { const td = document.querySelector('#tape tr td:nth-child(2)'); return !!td && Number(td.textContent) < 3000; })()`)
	poll("the ETHUSDT ticker", `Number(document.getElementById('last').textContent) < 3000`)

	// The theme toggle switches between dark and light.
	before, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.body).backgroundColor`))
	if err := chromedp.Do(ctx, chromedp.Click("#theme")); err != nil {
		t.Fatalf("theme toggle: %v", err)
	}
	after, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.body).backgroundColor`))
	if before == after {
		t.Errorf("theme toggle left the background at %s", before)
	}

	if err := chromedp.Do(ctx, chromedp.Sleep(200*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	br.NoErrors()
}
