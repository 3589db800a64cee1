package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"

	"github.com/marketgate/marketgate/downstream/downstreamtest"
	"github.com/marketgate/marketgate/exchangesim/binancesim"
	"github.com/marketgate/marketgate/internal/browsertest"
	"github.com/marketgate/marketgate/internal/waitfor"
)

// updateScreenshots makes TestBrowserPages write the README's screenshots:
//
//	go test ./cmd/marketgate -run TestBrowserPages -update-screenshots
var updateScreenshots = flag.Bool("update-screenshots", false, "write the README's screenshots to docs/screenshots")

// screenshotDir is where the README's screenshots are kept, from this
// package's directory.
const screenshotDir = "../../docs/screenshots"

// hostileOrigin is a client's Origin header written to run script if the
// ops page ever put it into the page as HTML.
const hostileOrigin = `http://x.invalid/"><img src=x onerror="window.pwned=1">`

// TestBrowserPages runs the gateway binary against the simulator and drives
// both pages in headless Chromium: the market page shows live trades,
// reconnects and resumes by itself when the gateway is killed and
// restarted; the ops page asks for the token, lists the market page's
// connection, and its buttons pin a stream, kick a client and drain the
// node. Neither page logs an error. Screenshots of both are saved in the
// test's artifact directory (go test -artifacts) and, with
// -update-screenshots, in docs/screenshots for the README.
func TestBrowserPages(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser and gateway processes")
	}
	const token = "ops-t0ken-0123456789"
	const authSecret = "browser-test-hmac-secret-0123456789"
	sim, simAddr := startSim(t, binancesim.Config{})
	bin := buildGateway(t)
	addr, admin := freeAddr(t), freeAddr(t)
	start := func() *gatewayNode {
		t.Helper()
		g := runNode(t, bin, "node-a", addr, admin, simAddr, []string{"--admin-token", token, "--log-level", "warn", "--auth-hmac-secret", authSecret})
		waitReady(t, addr)
		return g
	}
	g := start()
	shots := t.ArtifactDir()
	screenshot := func(b *browsertest.Browser, name string) {
		t.Helper()
		b.Screenshot(filepath.Join(shots, name))
		if *updateScreenshots {
			b.Screenshot(filepath.Join(screenshotDir, name))
		}
	}

	// The market page: live trades within seconds.
	market := browsertest.Start(t, 3*time.Minute)
	const marketState = `JSON.stringify({page: window.marketPage, status: document.getElementById('status')?.textContent})`
	// The market page in the dark theme, the ops page in the light one.
	market.Do("market page", chromedp.EmulateViewport(1280, 900),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}},
			})
			return err
		}),
		chromedp.Navigate("http://"+addr+"/"))
	market.Poll(10*time.Second, "the market page to load", `window.marketReady === true`, marketState)
	market.Poll(10*time.Second, "live trades", `window.marketPage.trades >= 3 && document.querySelectorAll('#tape tr').length >= 3`, marketState)
	market.Poll(10*time.Second, "the book and ticker", `document.querySelectorAll('#bids .lvl:not([hidden])').length >= 10 && document.getElementById('last').textContent !== '–'`, marketState)
	if s := market.Text("#state"); s != "open" {
		t.Errorf("market page state %q; want open", s)
	}
	screenshot(market, "market.png")

	// Kill the gateway and start it again on the same ports: the page
	// notices, reconnects, resubscribes and shows new trades by itself.
	if err := g.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-g.exited
	market.Poll(10*time.Second, "the page to notice the gateway is gone", `document.getElementById('state').textContent.startsWith('reconnecting')`, marketState)
	before := browsertest.Eval[int](market, `window.marketPage.trades`)
	restarted := time.Now()
	g = start()
	market.Poll(20*time.Second, "the page to reconnect", `document.getElementById('state').textContent === 'open'`, marketState)
	market.Poll(10*time.Second, "trades after the restart", fmt.Sprintf(`window.marketPage.trades >= %d`, before+3), marketState)
	t.Logf("market page open and showing trades again %v after the restart", time.Since(restarted).Round(time.Millisecond))

	// A client whose Origin is markup, for the ops page to show as text.
	hdr := http.Header{"Origin": {hostileOrigin}}
	hostile, err := downstreamtest.TryDial("ws://"+addr+"/ws", hdr)
	if err != nil {
		t.Fatalf("hostile client: %v", err)
	}
	hostile.T = t
	defer hostile.Close()
	// A client with a token: the ops page shows its user and can kick
	// every connection of that user.
	carol, err := downstreamtest.TryDial("ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatalf("carol's client: %v", err)
	}
	carol.T = t
	defer carol.Close()
	carolToken, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "carol", "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(authSecret))
	if err != nil {
		t.Fatal(err)
	}
	carol.Send(fmt.Sprintf(`{"op":"auth","id":1,"token":%q}`, carolToken))
	if b := carol.Next(); !strings.Contains(string(b), `"user":"carol"`) {
		t.Fatalf("carol's auth reply %s", b)
	}

	// The ops page, in a second tab while the market page stays open.
	ops := market.Tab()
	const opsState = `JSON.stringify({ops: window.opsPage, status: document.getElementById('status')?.textContent, notice: document.getElementById('notice')?.textContent, login: document.getElementById('loginerr')?.textContent})`
	ops.Do("ops page", chromedp.EmulateViewport(1280, 900), chromedp.Navigate("http://"+admin+"/?refresh=0.5"))
	shown := func(id string) string {
		return fmt.Sprintf(`getComputedStyle(document.getElementById(%q)).display !== 'none'`, id)
	}
	ops.Poll(10*time.Second, "the token form alone", `window.opsReady === true && `+shown("login")+` && !(`+shown("dash")+`)`, opsState)
	if u := browsertest.Eval[string](ops, `location.pathname`); u != "/ops/" {
		t.Errorf("the control listener's / led to %s; want /ops/", u)
	}
	signIn := func(tok string) {
		t.Helper()
		ops.Do("sign in", chromedp.SetValue("#token", tok), chromedp.Click(`#login button[type=submit]`))
	}
	signIn("wrong")
	ops.Poll(10*time.Second, "the refusal", `document.getElementById('loginerr').textContent === 'The token was refused.'`, opsState)
	signIn(token)
	ops.Poll(10*time.Second, "the dashboard alone", `window.opsPage.signedIn && `+shown("dash")+` && !(`+shown("login")+`)`, opsState)
	if got := browsertest.Eval[string](ops, `sessionStorage.getItem('marketgate.adminToken')`); got != token {
		t.Errorf("session storage holds %q; want the token", got)
	}
	if self := ops.Text("#self"); self != "node-a" {
		t.Errorf("ops page names node %q; want node-a", self)
	}

	// It lists the market page's connection, and the hostile one as text.
	marketOrigin := "http://" + addr
	ops.Poll(10*time.Second, "the market page's connection", fmt.Sprintf(
		`window.opsPage.clients.some((c) => c.origin === %q && c.streams.includes('binance:btcusdt@trade')) &&
		 [...document.querySelectorAll('#clients td')].some((td) => td.textContent === %q)`, marketOrigin, marketOrigin), opsState)
	ops.Poll(10*time.Second, "the hostile client's row", fmt.Sprintf(
		`[...document.querySelectorAll('#clients td')].some((td) => td.textContent === %q)`, hostileOrigin), opsState)
	if n := browsertest.Eval[int](ops, `document.querySelectorAll('#clients img').length + (window.pwned ? 1000 : 0)`); n != 0 {
		t.Errorf("the hostile origin became markup in the ops page (%d)", n)
	}
	ops.Poll(10*time.Second, "the upstream connected", `[...document.querySelectorAll('#upstreams .pill')].some((p) => p.textContent === 'connected')`, opsState)
	ops.Poll(10*time.Second, "chart history", `window.opsPage.polls >= 4`, opsState)

	// Pin a stream no client wants: the exchange carries it, the table
	// marks it.
	const pinKey = "binance:solusdt@trade"
	ops.Do("pin", chromedp.SetValue("#pinkey", pinKey), chromedp.Click(`#pinform button[type=submit]`))
	ops.Poll(10*time.Second, "the pinned row", fmt.Sprintf(
		`window.opsPage.streams.some((s) => s.stream === %q && s.pinned) && !!document.querySelector('#streams button[data-key="unpin:%s"]')`, pinKey, pinKey), opsState)
	waitfor.Cond(t, 10*time.Second, func() error {
		if n := sim.Subscriptions()["solusdt@trade"]; n != 1 {
			return fmt.Errorf("simulator carries solusdt@trade on %d connections; want 1", n)
		}
		return nil
	})

	// Kick the hostile client: the first click arms the button, the second
	// kicks; the client gets close 1008 and leaves the table.
	id := browsertest.Eval[int](ops, fmt.Sprintf(`window.opsPage.clients.find((c) => c.origin === %q)?.id ?? 0`, hostileOrigin))
	if id == 0 {
		t.Fatal("no id for the hostile client")
	}
	kick := fmt.Sprintf(`#clients button[data-key="kick:%d"]`, id)
	ops.Do("arm kick", chromedp.Click(kick))
	if s := ops.Text(kick); s != "Confirm kick" {
		t.Errorf("kick button after one click says %q; want Confirm kick", s)
	}
	ops.Do("kick", chromedp.Click(kick))
	if code := hostile.ExpectClose(); code != ws.StatusPolicyViolation {
		t.Errorf("kicked client closed with %d; want 1008", code)
	}
	ops.Poll(10*time.Second, "the kicked client gone", fmt.Sprintf(`!window.opsPage.clients.some((c) => c.id === %d)`, id), opsState)
	if want := fmt.Sprintf("Kick client %d: done", id); ops.Text("#notice") != want {
		t.Errorf("notice after the kick: %q; want %q", ops.Text("#notice"), want)
	}
	// Kick a user: the row shows carol, two clicks end her connection.
	const kickUser = `#clients button[data-key="kickuser:carol"]`
	ops.Poll(10*time.Second, "carol's row", `window.opsPage.clients.some((c) => c.user === 'carol') && !!document.querySelector('#clients button[data-key="kickuser:carol"]')`, opsState)
	ops.Do("arm kick user", chromedp.Click(kickUser))
	ops.Do("kick user", chromedp.Click(kickUser))
	if code := carol.ExpectClose(); code != ws.StatusPolicyViolation {
		t.Errorf("carol's client closed with %d; want 1008", code)
	}
	ops.Poll(10*time.Second, "the kick user notice", `document.getElementById('notice').textContent === 'Kick user carol: done'`, opsState)
	// Rates are over whole 10 s windows, so the first shows some seconds
	// after the restart.
	ops.Poll(20*time.Second, "a message rate", `window.opsPage.streams.some((s) => s.stream === 'binance:btcusdt@trade' && s.messages_per_second > 0) && Number(document.getElementById('c-rate').textContent) > 0`, opsState)
	screenshot(ops, "ops.png")

	// A stream the exchange does not list: the page shows the API's 400.
	ops.Do("pin an invalid stream", chromedp.SetValue("#pinkey", "binance:nosuchusdt@trade"), chromedp.Click(`#pinform button[type=submit]`))
	ops.Poll(10*time.Second, "the refusal notice", `document.getElementById('notice').textContent.startsWith('Pin binance:nosuchusdt@trade: failed: ')`, opsState)
	t.Logf("invalid pin: %s", ops.Text("#notice"))

	// Drain the node from the page: it exits cleanly, and the market page
	// goes back to reconnecting.
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
	market.Poll(10*time.Second, "the market page to notice the drain", `document.getElementById('state').textContent.startsWith('reconnecting')`, marketState)
	ops.Poll(10*time.Second, "the ops page to notice", `window.opsPage.failures > 0`, opsState)

	market.NoErrors()
	ops.NoErrors()
}
