package web

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/marketgate/marketgate/hub"
	"github.com/marketgate/marketgate/internal/browsertest"
)

// clientPage starts a gateway and a browser on its test page, and returns
// them with run, which evaluates JavaScript in the page, and get, which
// decodes the JSON of a page expression into v.
func clientPage(t *testing.T) (g *testGateway, br *browsertest.Browser, run func(js string), get func(expr string, v any)) {
	t.Helper()
	g, addr := startGateway(t, "127.0.0.1:0")
	br = browsertest.Start(t, 90*time.Second)
	br.Do("navigate", chromedp.Navigate("http://"+addr+"/test.html"))
	br.Poll(10*time.Second, "the module to load", `window.mgLoaded === true`, `'not loaded'`)
	run = func(js string) {
		t.Helper()
		br.Do(js, chromedp.Evaluate[chromedp.Void](js))
	}
	get = func(expr string, v any) {
		t.Helper()
		raw := browsertest.Eval[string](br, `JSON.stringify(`+expr+`)`)
		if err := json.Unmarshal([]byte(raw), v); err != nil {
			t.Fatalf("evaluate %s: %v (%s)", expr, err, raw)
		}
	}
	return g, br, run, get
}

// connID is the id of the one connection that holds stream key on g.
func (g *testGateway) connID(t *testing.T, key string) uint64 {
	t.Helper()
	page, _ := g.ds.Clients(0, 0)
	var ids []uint64
	for _, c := range page {
		if slices.Contains(c.Streams, key) {
			ids = append(ids, c.ID)
		}
	}
	if len(ids) != 1 {
		t.Fatalf("connections holding %s: %v; want one", key, ids)
	}
	return ids[0]
}

// TestBrowserSubscriptions checks the subscription handles of
// web/client/marketgate.js against a real gateway node: a handle's unsubscribe()
// removes its own handler only, the gateway keeps the stream until the
// last handler goes, a handle may let go before the reply, and
// client.unsubscribe(streams) still drops every handler of the streams.
func TestBrowserSubscriptions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	g, br, run, get := clientPage(t)
	const (
		eth = "binance:ethusdt@trade"
		sol = "binance:solusdt@trade"
		xrp = "binance:xrpusdt@trade"
	)
	state := `JSON.stringify(window.made)`
	poll := func(what, expr string) {
		t.Helper()
		br.Poll(10*time.Second, what, expr, state)
	}
	msgs := func(id string) []int {
		t.Helper()
		var v []int
		get(`window.made.h.msgs.`+id, &v)
		return v
	}
	streams := func() []string {
		t.Helper()
		var v []string
		get(`window.made.h.client.streams`, &v)
		slices.Sort(v)
		return v
	}

	run(`window.mk('h'); window.sub('h', 'a', ['` + eth + `']); window.sub('h', 'b', ['` + eth + `'])`)
	poll("both subscriptions", `window.made.h.results.a === 'ok `+eth+`' && window.made.h.results.b === 'ok `+eth+`'`)
	waitUntil(t, 5*time.Second, "the connection on "+eth, func() bool { return g.subscribers(eth) == 1 })

	g.publish(t, eth, []uint64{1}, false, 1)
	poll("trade 1 to both", `window.made.h.msgs.a.length === 1 && window.made.h.msgs.b.length === 1`)

	// One handler goes: the other still receives, the gateway still sends.
	run(`window.unsub('h', 'a')`)
	poll("a's unsubscribe", `window.made.h.results['a-unsub'] !== undefined`)
	var res string
	get(`window.made.h.results['a-unsub']`, &res)
	if res != "ok "+eth {
		t.Errorf("a.unsubscribe() = %q; want ok %s", res, eth)
	}
	if n := g.subscribers(eth); n != 1 {
		t.Errorf("after one of two handlers left, the gateway sends %s to %d connections; want 1", eth, n)
	}
	g.publish(t, eth, []uint64{2}, false, 2)
	poll("trade 2 to b", `window.made.h.msgs.b.length === 2`)
	if a, b := msgs("a"), msgs("b"); fmt.Sprint(a) != "[1]" || fmt.Sprint(b) != "[1 2]" {
		t.Errorf("messages a %v, b %v; want a [1] (it left), b [1 2]", a, b)
	}
	if got := streams(); fmt.Sprint(got) != fmt.Sprint([]string{eth}) {
		t.Errorf("client streams = %v; want [%s]", got, eth)
	}

	// A second unsubscribe of the same handle does nothing.
	run(`window.made.h.results['a-unsub'] = undefined; window.unsub('h', 'a')`)
	poll("a's second unsubscribe", `window.made.h.results['a-unsub'] !== undefined`)
	get(`window.made.h.results['a-unsub']`, &res)
	if res != "ok " {
		t.Errorf("second a.unsubscribe() = %q; want ok with no streams", res)
	}

	// The last handler goes: the stream is released at the gateway.
	run(`window.unsub('h', 'b')`)
	poll("b's unsubscribe", `window.made.h.results['b-unsub'] === 'ok `+eth+`'`)
	waitUntil(t, 5*time.Second, "the gateway to release "+eth, func() bool { return g.subscribers(eth) == 0 })
	if got := streams(); len(got) != 0 {
		t.Errorf("client streams after the last handler left = %v; want none", got)
	}

	// Letting go before the reply: the promise has unsubscribe() too; the
	// call still resolves and the gateway ends without the stream. A
	// command after both shows the gateway has handled them.
	run(`window.sub('h', 'c', ['` + sol + `']); window.unsub('h', 'c'); window.sub('h', 'd', ['` + xrp + `'])`)
	poll("c and d settled", `window.made.h.results.c !== undefined && window.made.h.results['c-unsub'] !== undefined && window.made.h.results.d !== undefined`)
	var results map[string]string
	get(`window.made.h.results`, &results)
	if results["c"] != "ok " || results["c-unsub"] != "ok "+sol || results["d"] != "ok "+xrp {
		t.Errorf("results %v; want c ok (with no streams left), c-unsub ok %s, d ok %s", results, sol, xrp)
	}
	if n := g.subscribers(sol); n != 0 {
		t.Errorf("a subscription let go before its reply left %s on %d connections; want 0", sol, n)
	}
	if got := streams(); fmt.Sprint(got) != fmt.Sprint([]string{xrp}) {
		t.Errorf("client streams = %v; want [%s]", got, xrp)
	}

	// client.unsubscribe(streams) keeps its old meaning: every handler of
	// the streams goes.
	run(`window.sub('h', 'e', ['` + xrp + `'])`)
	poll("e subscribed", `window.made.h.results.e === 'ok `+xrp+`'`)
	run(`window.made.h.client.unsubscribe(['` + xrp + `']).then(() => { window.made.h.results.all = 'ok'; })`)
	poll("client.unsubscribe", `window.made.h.results.all === 'ok'`)
	waitUntil(t, 5*time.Second, "the gateway to release "+xrp, func() bool { return g.subscribers(xrp) == 0 })
	g.publish(t, xrp, []uint64{1}, false, 10)
	g.publish(t, eth, []uint64{3}, false, 3)
	br.Do("wait", chromedp.Sleep(200*time.Millisecond))
	if d, e := msgs("d"), msgs("e"); len(d)+len(e) != 0 {
		t.Errorf("after client.unsubscribe, d got %v and e got %v; want nothing", d, e)
	}
	if got := streams(); len(got) != 0 {
		t.Errorf("client streams = %v; want none", got)
	}
	var errs []any
	get(`window.made.h.errors`, &errs)
	if len(errs) != 0 {
		t.Errorf("error events: %v", errs)
	}
	br.NoErrors()
}

// TestBrowserCloses closes the connection of a web/client/marketgate.js client
// from the gateway: a kick (1008) is reported and not retried, and
// reconnect() brings back the subscriptions still held; a slow consumer
// (4008) is reconnected, but only after a backoff.
func TestBrowserCloses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	g, br, run, get := clientPage(t)
	state := `JSON.stringify(window.made)`

	// overflow publishes more than the connection's write queue (1 MiB)
	// holds between two flushes, in padding that compression cannot
	// shrink much: the gateway closes the connection with 4008.
	overflow := func(key string) {
		pad := make([]byte, 4096)
		for i := range 600 {
			for j := range pad {
				pad[j] = 'a' + byte(rand.IntN(26))
			}
			data := fmt.Sprintf(`{"e":"trade","s":"BTCUSDT","t":%d,"pad":%q}`, i, pad)
			if err := g.hub.Publish(t.Context(), hub.Message{Stream: key, Seq: uint64(i + 1), Data: []byte(data)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := g.hub.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
	}

	type closeEvent struct {
		Code      int      `json:"code"`
		Reason    string   `json:"reason"`
		Reconnect bool     `json:"reconnect"`
		Delay     *float64 `json:"delay"`
		T         float64  `json:"t"`
	}
	type stateEvent struct {
		S string  `json:"s"`
		T float64 `json:"t"`
	}
	for _, tc := range []struct {
		name      string
		close     func(key string)
		code      int
		reason    string
		reconnect bool
		// With backoff {min: 50, max: 2000}, a first 4008 waits between
		// half and all of max(50, 2000/8) = 250 ms; any other first drop
		// waits at most 50 ms.
		minDelay float64
	}{
		{
			name:   "kick",
			close:  func(key string) { g.ds.Disconnect(g.connID(t, key), "test kick") },
			code:   1008,
			reason: "test kick",
		},
		{
			name:      "slow consumer",
			close:     overflow,
			code:      4008,
			reason:    "slow consumer",
			reconnect: true,
			minDelay:  125,
		},
	} {
		t.Logf("case %s", tc.name)
		name := strings.ReplaceAll(tc.name, " ", "")
		key := "binance:" + name + "usdt@trade"
		r := `window.made.` + name
		run(fmt.Sprintf(`window.mk(%q, { backoff: { min: 50, max: 2000 } }); window.sub(%q, 'a', [%q]); window.sub(%q, 'b', [%q])`, name, name, key, name, key))
		br.Poll(10*time.Second, "subscribed", r+`.results.a === 'ok `+key+`' && `+r+`.results.b === 'ok `+key+`'`, state)
		waitUntil(t, 5*time.Second, "the subscription at the gateway", func() bool { return g.subscribers(key) == 1 })
		// b goes: after a reconnect, only a's stream is resubscribed.
		run(fmt.Sprintf(`window.unsub(%q, 'b')`, name))
		br.Poll(10*time.Second, "b's unsubscribe", r+`.results['b-unsub'] === 'ok `+key+`'`, state)

		tc.close(key)
		br.Poll(10*time.Second, "the close event", r+`.closes.length === 1`, state)
		var closes []closeEvent
		get(r+`.closes`, &closes)
		c := closes[0]
		if c.Code != tc.code || c.Reason != tc.reason || c.Reconnect != tc.reconnect {
			t.Errorf("close event %+v; want code %d, reason %q, reconnect %v", c, tc.code, tc.reason, tc.reconnect)
		}
		if tc.reconnect {
			if c.Delay == nil || *c.Delay < tc.minDelay {
				t.Errorf("close event delay %v; want at least %v ms", c.Delay, tc.minDelay)
			}
			br.Poll(10*time.Second, "the reconnect", r+`.client.state === 'open'`, state)
		} else {
			if c.Delay != nil {
				t.Errorf("close event without reconnect has delay %v", *c.Delay)
			}
			// Longer than any backoff step of this client: it stays down.
			br.Do("wait", chromedp.Sleep(2500*time.Millisecond))
		}
		var states []stateEvent
		get(r+`.states`, &states)
		var names []string
		for _, s := range states {
			names = append(names, s.S)
		}
		want := "connecting,open,disconnected"
		if tc.reconnect {
			want = "connecting,open,reconnecting,open"
		}
		if got := strings.Join(names, ","); got != want {
			t.Fatalf("states %s; want %s", got, want)
		}
		if tc.reconnect && c.Delay != nil {
			// Not at once: the new connection opened no sooner than the
			// announced delay (less a timer's slack).
			if waited := states[3].T - c.T; waited < *c.Delay-5 || waited < tc.minDelay-5 {
				t.Errorf("reopened %.0f ms after the close; want at least the delay, %.0f ms", waited, *c.Delay)
			}
		} else {
			if n := g.subscribers(key); n != 0 {
				t.Errorf("after the kick %d connections hold %s; want 0 (no reconnect)", n, key)
			}
			run(r + `.client.reconnect()`)
			br.Poll(10*time.Second, "reconnect()", r+`.client.state === 'open'`, state)
		}

		// The subscription still held is resubscribed; the one let go is not.
		waitUntil(t, 5*time.Second, "the resubscription", func() bool { return g.subscribers(key) == 1 })
		run(r + `.msgs.a = []`)
		g.publish(t, key, []uint64{1000}, false, 7)
		// Trade 7 is the last message (a client kicked by hand recovers
		// from its position; a slow consumer starts afresh).
		br.Poll(10*time.Second, "a message after the reconnect", r+`.msgs.a.at(-1) === 7`, state)
		var b []int
		get(r+`.msgs.b`, &b)
		if len(b) != 0 {
			t.Errorf("a subscription let go before the close received %v", b)
		}
		run(r + `.client.close()`)
	}
	br.NoErrors()
}

// TestBrowserCloseCodes checks, without a gateway, whether the client
// reconnects after each close code, and how long it waits.
func TestBrowserCloseCodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	_, br, run, get := clientPage(t)
	// backoff {min: 50, max: 2000}: a first drop waits up to 50 ms; a first
	// 4008 between 125 and 250 ms.
	for _, tc := range []struct {
		code               int
		reconnect          bool
		minDelay, maxDelay float64
	}{
		{1008, false, 0, 0},
		{1003, false, 0, 0},
		{1009, false, 0, 0},
		{4001, false, 0, 0},
		{4002, false, 0, 0},
		{4003, false, 0, 0},
		{4029, false, 0, 0},
		{4008, true, 125, 250},
		{1001, true, 0, 50},
		{1006, true, 0, 50},
		{1011, true, 0, 50},
	} {
		run(fmt.Sprintf(`window.closeCase(%d)`, tc.code))
		r := fmt.Sprintf(`window.closeRuns[%d]`, tc.code)
		want := r + `.states.at(-1) === 'disconnected'`
		if tc.reconnect {
			want = r + `.sockets === 2 && ` + r + `.states.at(-1) === 'open'`
		}
		br.Poll(10*time.Second, fmt.Sprintf("the client after close %d", tc.code), r+`.closes.length === 1 && `+want, `JSON.stringify(window.closeRuns)`)
		var got struct {
			Sockets int      `json:"sockets"`
			States  []string `json:"states"`
			Closes  []struct {
				Code      int      `json:"code"`
				Reason    string   `json:"reason"`
				Reconnect bool     `json:"reconnect"`
				Delay     *float64 `json:"delay"`
			} `json:"closes"`
		}
		if tc.reconnect {
			get(r, &got)
		} else {
			// Wait longer than any backoff step: it stays down.
			br.Do("wait", chromedp.Sleep(300*time.Millisecond))
			get(r, &got)
			if got.Sockets != 1 {
				t.Errorf("close %d: %d connections; want 1 (no reconnect)", tc.code, got.Sockets)
			}
		}
		c := got.Closes[0]
		if c.Code != tc.code || c.Reason != fmt.Sprintf("reason %d", tc.code) || c.Reconnect != tc.reconnect {
			t.Errorf("close %d: event %+v; want code %d, its reason, reconnect %v", tc.code, c, tc.code, tc.reconnect)
		}
		switch {
		case !tc.reconnect && c.Delay != nil:
			t.Errorf("close %d: delay %v without a reconnect", tc.code, *c.Delay)
		case tc.reconnect && (c.Delay == nil || *c.Delay < tc.minDelay || *c.Delay > tc.maxDelay):
			t.Errorf("close %d: delay %v; want %v to %v ms", tc.code, c.Delay, tc.minDelay, tc.maxDelay)
		}
		run(r + `.client.close()`)
	}
	br.NoErrors()
}
