//go:build unix

package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/marketgate/marketgate/exchangesim/binancesim"
	"github.com/marketgate/marketgate/internal/browsertest"
	"github.com/marketgate/marketgate/internal/waitfor"
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
