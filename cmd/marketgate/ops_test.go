//go:build unix

package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/marketgate/marketgate/downstream/downstreamtest"
	"github.com/marketgate/marketgate/exchangesim/binancesim"
	"github.com/marketgate/marketgate/exchangesim/bybitsim"
	bybitsimtest "github.com/marketgate/marketgate/exchangesim/bybitsim/simtest"
	"github.com/marketgate/marketgate/exchangesim/okxsim"
	okxsimtest "github.com/marketgate/marketgate/exchangesim/okxsim/simtest"
	"github.com/marketgate/marketgate/internal/browsertest"
	"github.com/marketgate/marketgate/internal/waitfor"
	"github.com/marketgate/marketgate/upstream"
)

// TestOpsPageWithoutToken opens the ops page of a node that has no admin
// token, from the node's own host, in headless Chromium: it shows the
// dashboard at once, and its pin and drain buttons work, since the page
// sends the X-Marketgate-Admin header and its own Origin, which the
// control listener wants then. No page logs an error.
func TestOpsPageWithoutToken(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser and a gateway process")
	}
	sim, simAddr := startSim(t, binancesim.Config{})
	bin := buildGateway(t)
	addr, adm := freeAddr(t), freeAddr(t)
	g := runNode(t, bin, "node-b", addr, adm, simAddr, []string{"--log-level", "warn"})
	waitReady(t, addr)

	ops := browsertest.Start(t, 2*time.Minute)
	const opsState = `JSON.stringify({ops: window.opsPage, status: document.getElementById('status')?.textContent, notice: document.getElementById('notice')?.textContent})`
	ops.Do("ops page", chromedp.EmulateViewport(1280, 900), chromedp.Navigate("http://"+adm+"/ops/?refresh=0.5"))
	ops.Poll(10*time.Second, "the dashboard", `window.opsReady === true && window.opsPage.signedIn && window.opsPage.polls >= 1`, opsState)
	if self := ops.Text("#self"); self != "node-b" {
		t.Errorf("ops page names node %q; want node-b", self)
	}

	const pinKey = "binance:solusdt@trade"
	ops.Do("pin", chromedp.SetValue("#pinkey", pinKey), chromedp.Click(`#pinform button[type=submit]`))
	ops.Poll(10*time.Second, "the pinned row", fmt.Sprintf(
		`window.opsPage.streams.some((s) => s.stream === %q && s.pinned)`, pinKey), opsState)
	waitfor.Cond(t, 10*time.Second, func() error {
		if n := sim.Subscriptions()["solusdt@trade"]; n != 1 {
			return fmt.Errorf("simulator carries solusdt@trade on %d connections; want 1", n)
		}
		return nil
	})

	ops.Do("arm drain", chromedp.Click("#drain"))
	ops.Do("drain", chromedp.Click("#drain"))
	select {
	case err := <-g.exited:
		if err != nil {
			t.Errorf("drained gateway exited with %v; want 0", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the gateway did not exit within 20 s of the drain")
	}
	ops.NoErrors()
}

// TestOpsPageOKXBybit opens the ops page of a node carrying OKX and Bybit
// spot in headless Chromium: their feeds appear in the upstreams table,
// their streams in the streams table, and the pin form pins an OKX stream,
// which the exchange then carries. No page logs an error.
func TestOpsPageOKXBybit(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	okx, okxAddr := okxsimtest.Start(t, okxsim.Config{})
	_, spotAddr := bybitsimtest.Start(t, bybitsim.Config{})
	adm := freeAddr(t)
	gw := startGatewayWith(t, "", func(c *config) {
		delete(c.upstreams, "binance")
		c.adminListen = adm
		c.nodeID = "node-x"
		for name, addr := range map[string]string{"okx": okxAddr, "bybit": spotAddr} {
			c.upstreams[name] = &upstream.Config{URL: "ws://" + addr, RESTURL: "http://" + addr}
		}
	})
	c := downstreamtest.Dial(t, "ws://"+gw+"/ws")
	c.Send(`{"op":"subscribe","id":1,"streams":["okx:trades:BTC-USDT","bybit:publicTrade.BTCUSDT"]}`)

	ops := browsertest.Start(t, 2*time.Minute)
	const opsState = `JSON.stringify({ops: window.opsPage, upstreams: document.querySelector('#upstreams tbody')?.textContent})`
	ops.Do("ops page", chromedp.EmulateViewport(1280, 900), chromedp.Navigate("http://"+adm+"/ops/?refresh=0.5"))
	ops.Poll(20*time.Second, "the OKX and Bybit feeds and streams", `window.opsReady === true && window.opsPage.signedIn &&
		[...document.querySelectorAll('#upstreams tbody tr')].map((r) => r.cells[0].textContent).sort().join(' ') === 'bybit okx' &&
		['okx:trades:BTC-USDT', 'bybit:publicTrade.BTCUSDT'].every((k) => window.opsPage.streams.some((s) => s.stream === k && s.subscribers === 1))`, opsState)

	const pinKey = "okx:tickers:SOL-USDT"
	ops.Do("pin", chromedp.SetValue("#pinkey", pinKey), chromedp.Click(`#pinform button[type=submit]`))
	ops.Poll(10*time.Second, "the pinned row", fmt.Sprintf(
		`window.opsPage.streams.some((s) => s.stream === %q && s.pinned)`, pinKey), opsState)
	waitfor.Cond(t, 30*time.Second, func() error { // OKX paces requests 8 s apart
		if n := okx.Subscriptions()["tickers:SOL-USDT"]; n != 1 {
			return fmt.Errorf("OKX carries tickers:SOL-USDT on %d connections; want 1", n)
		}
		return nil
	})
	ops.NoErrors()
}
