package web

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/marketgate/marketgate/hub"
	"github.com/marketgate/marketgate/internal/browsertest"
)

// TestBrowserRecover restarts the gateway node under a web/marketgate.js
// client reading trades, on the same hub, while trades go on: the client
// resubscribes with "since". When the hub's history still holds what it
// missed, the tape goes on with every trade once, in order, recovered and
// without a gap event; when the history is too short, the client is told:
// recovered false, and a gap of reason 'unrecovered' on the next trade.
func TestBrowserRecover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	// Not btcusdt: the test page's own client holds that one.
	const key = "binance:ethusdt@trade"
	br := browsertest.Start(t, 90*time.Second)
	type meta struct {
		Seq       uint64 `json:"seq"`
		Gap       bool   `json:"gap"`
		Latest    bool   `json:"latest"`
		Recovered *bool  `json:"recovered"`
	}
	type gapEvent struct {
		Stream string `json:"stream"`
		Seq    uint64 `json:"seq"`
		Reason string `json:"reason"`
	}
	type recoveredEvent struct {
		Stream    string `json:"stream"`
		Recovered bool   `json:"recovered"`
	}
	type position struct {
		Epoch string `json:"epoch"`
		Seq   uint64 `json:"seq"`
	}
	for _, tc := range []struct {
		name        string
		historySize int
		recovered   bool
		tape        []int // trade ids the page sees, in order
		gaps        []gapEvent
	}{
		{
			name:      "history covers the outage",
			recovered: true,
			tape:      []int{4, 5, 6, 7, 8, 9, 10, 11, 12, 13},
		},
		{
			name:        "history too short",
			historySize: 3, // holds trades 9..11 of the 7..11 missed
			tape:        []int{4, 5, 6, 12, 13},
			gaps:        []gapEvent{{key, 12, "unrecovered"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &hub.Memory{HistorySize: tc.historySize}
			g1, addr := startGatewayHub(t, "127.0.0.1:0", tradeSource{}, h)
			state := `JSON.stringify(window.made && window.made.r)`
			poll := func(what, expr string) {
				t.Helper()
				br.Poll(10*time.Second, what, expr, state)
			}
			get := func(expr string, v any) {
				t.Helper()
				raw := browsertest.Eval[string](br, `JSON.stringify(`+expr+`)`)
				if err := json.Unmarshal([]byte(raw), v); err != nil {
					t.Fatalf("evaluate %s: %v (%s)", expr, err, raw)
				}
			}
			// The stream flows before the page comes (trades 1..3): the
			// reply to its subscribe gives the position.
			g1.publish(t, key, []uint64{1, 2, 3}, false, 1)

			br.Do("navigate", chromedp.Navigate("http://"+addr+"/test.html"))
			poll("the module to load", `window.mgLoaded === true`)
			br.Do("subscribe", chromedp.Evaluate[chromedp.Void](`window.mk('r'); window.sub('r', 'a', ['`+key+`'])`))
			poll("the subscription", `window.made.r.results.a === 'ok `+key+`'`)
			waitUntil(t, 5*time.Second, "the subscription at the gateway", func() bool { return g1.subscribers(key) == 1 })
			var before position
			get(`window.made.r.client.position('`+key+`')`, &before)
			if before.Epoch == "" || before.Seq != 3 {
				t.Fatalf("position after subscribing = %+v; want an epoch and seq 3", before)
			}

			g1.publish(t, key, []uint64{4, 5, 6}, false, 4)
			poll("trades 4..6", `window.made.r.msgs.a.length === 3`)

			// The node goes; trades go on into the hub meanwhile; a new
			// node on the same hub and address takes the client back.
			g1.stop()
			poll("the client to notice the drop", `window.made.r.client.state !== 'open'`)
			g1.publish(t, key, []uint64{7, 8, 9, 10, 11}, false, 7)
			g2, addr2 := startGatewayHub(t, addr, tradeSource{}, h)
			if addr2 != addr {
				t.Fatalf("restarted on %s; want %s", addr2, addr)
			}
			poll("the resubscription's outcome", `window.made.r.recovered.length === 1`)
			waitUntil(t, 5*time.Second, "the resubscription at the gateway", func() bool { return g2.subscribers(key) == 1 })
			g2.publish(t, key, []uint64{12, 13}, false, 12)
			poll("the last trade", `window.made.r.msgs.a.at(-1) === 13`)
			// Let anything late or repeated arrive.
			br.Do("wait", chromedp.Sleep(100*time.Millisecond))

			var tape []int
			get(`window.made.r.msgs.a`, &tape)
			if !slices.Equal(tape, tc.tape) {
				t.Errorf("tape %v; want %v", tape, tc.tape)
			}
			var metas []meta
			get(`window.made.r.metas.a`, &metas)
			for i, m := range metas {
				// Trade t has seq t: the hub numbered them from 1.
				if i < len(tape) && m.Seq != uint64(tape[i]) {
					t.Errorf("trade %d has seq %d; want %d", tape[i], m.Seq, tape[i])
				}
				first := i == 3 // the first message after the resubscription
				wantGap := first && !tc.recovered
				if m.Gap != wantGap || m.Latest {
					t.Errorf("meta of trade %d = %+v; want gap %v, not latest", tape[i], m, wantGap)
				}
				switch {
				case first && (m.Recovered == nil || *m.Recovered != tc.recovered):
					t.Errorf("meta of the first trade after the reconnect = %+v; want recovered %v", m, tc.recovered)
				case !first && m.Recovered != nil:
					t.Errorf("meta of trade %d = %+v; want no recovered", tape[i], m)
				}
			}
			var rec []recoveredEvent
			get(`window.made.r.recovered`, &rec)
			if want := []recoveredEvent{{key, tc.recovered}}; !slices.Equal(rec, want) {
				t.Errorf("recovered events %+v; want %+v", rec, want)
			}
			var gaps []gapEvent
			get(`window.made.r.gaps`, &gaps)
			if fmt.Sprint(gaps) != fmt.Sprint(tc.gaps) {
				t.Errorf("gap events %+v; want %+v", gaps, tc.gaps)
			}
			var after position
			get(`window.made.r.client.position('`+key+`')`, &after)
			if want := (position{before.Epoch, 13}); after != want {
				t.Errorf("position at the end = %+v; want %+v (the same epoch: the hub kept it)", after, want)
			}
			br.Do("close", chromedp.Evaluate[chromedp.Void](`window.made.r.client.close()`))
			br.NoErrors()
		})
	}
}
