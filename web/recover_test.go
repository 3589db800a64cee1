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

// recoveredEvent and position are marketgate.js's RecoveredEvent and Position.
type recoveredEvent struct {
	Stream    string `json:"stream"`
	Recovered bool   `json:"recovered"`
}

type position struct {
	Epoch string `json:"epoch"`
	Seq   uint64 `json:"seq"`
}

// TestBrowserRecover restarts the gateway node under a web/client/marketgate.js
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

// TestBrowserRecoverScript drives web/client/marketgate.js against a scripted
// fake gateway, for what a real node does not show on demand: a latest
// value is no gap; a resubscription refused with busy is sent again,
// after a backoff, with the same "since"; a recovered stream's seq is
// still checked across the reconnect; and a recovery that fails gives a
// gap of reason 'unrecovered' and the position of the new epoch.
func TestBrowserRecoverScript(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	_, br, run, get := clientPage(t)
	const key = "binance:solusdt@trade"
	type step = map[string]any
	reply := func(epoch string, seq int, recovered *bool) step {
		r := step{"streams": []string{key}, "positions": step{key: step{"epoch": epoch, "seq": seq}}}
		if recovered != nil {
			r["recovered"] = step{key: *recovered}
		}
		return step{"result": r}
	}
	yes, no := true, false
	script := [][][]any{
		// Connection 0: a fresh subscribe; the latest value at the
		// reply's position, then two trades; the connection drops.
		{{reply("e1", 10, nil), step{"seq": 10, "latest": true}, step{"seq": 11}, step{"seq": 12}, "close"}},
		// Connection 1: busy first; then recovered, with 13..15 missed,
		// then a seq jump (17), and a drop.
		{
			{step{"error": step{"code": "busy", "msg": "try again later"}}},
			{reply("e1", 15, &yes), step{"seq": 13}, step{"seq": 14}, step{"seq": 15}, step{"seq": 17}, "close"},
		},
		// Connection 2: not recovered (the history lost it: a new epoch).
		{{reply("e2", 3, &no), step{"seq": 4, "gap": true, "epoch": "e2"}}},
	}
	js, err := json.Marshal(script)
	if err != nil {
		t.Fatal(err)
	}
	run(fmt.Sprintf(`window.rfakeStart(%q, %s)`, key, js))
	br.Poll(10*time.Second, "the scripted messages", `window.rfake.subOK === true && window.rfake.metas.length === 8`, `JSON.stringify(window.rfake)`)

	var f struct {
		Cmds []struct {
			Conn  int                 `json:"conn"`
			Since map[string]position `json:"since"`
			T     float64             `json:"t"`
		} `json:"cmds"`
		Metas []struct {
			Seq       int   `json:"seq"`
			Gap       bool  `json:"gap"`
			Latest    bool  `json:"latest"`
			Recovered *bool `json:"recovered"`
		} `json:"metas"`
		Gaps []struct {
			Seq     int    `json:"seq"`
			PrevSeq *int   `json:"prevSeq"`
			Reason  string `json:"reason"`
		} `json:"gaps"`
		Recovered []recoveredEvent `json:"recovered"`
		Errors    []any            `json:"errors"`
	}
	get(`window.rfake`, &f)

	// What the client asked: nothing to recover at first; twice from 12
	// on connection 1 (busy, then again after a backoff); from 17 on 2.
	wantSince := []struct {
		conn  int
		since map[string]position
	}{
		{0, nil},
		{1, map[string]position{key: {"e1", 12}}},
		{1, map[string]position{key: {"e1", 12}}},
		{2, map[string]position{key: {"e1", 17}}},
	}
	if len(f.Cmds) != len(wantSince) {
		t.Fatalf("subscribe commands %+v; want %d", f.Cmds, len(wantSince))
	}
	for i, w := range wantSince {
		if c := f.Cmds[i]; c.Conn != w.conn || fmt.Sprint(c.Since) != fmt.Sprint(w.since) {
			t.Errorf("subscribe %d: connection %d, since %v; want connection %d, since %v", i, c.Conn, c.Since, w.conn, w.since)
		}
	}
	// backoff.min 50: the first busy retry waits between 25 and 50 ms.
	if d := f.Cmds[2].T - f.Cmds[1].T; d < 20 {
		t.Errorf("subscribe sent again %.0f ms after busy; want a backoff of at least 25 ms", d)
	}

	type m struct {
		seq         int
		gap, latest bool
		recovered   string // "", "true", "false"
	}
	want := []m{
		{10, false, true, ""}, {11, false, false, ""}, {12, false, false, ""},
		{13, false, false, "true"}, {14, false, false, ""}, {15, false, false, ""}, {17, true, false, ""},
		{4, true, false, "false"},
	}
	for i, w := range want {
		g := f.Metas[i]
		rec := ""
		if g.Recovered != nil {
			rec = fmt.Sprint(*g.Recovered)
		}
		if got := (m{g.Seq, g.Gap, g.Latest, rec}); got != w {
			t.Errorf("message %d: %+v; want %+v", i, got, w)
		}
	}
	type gap struct {
		seq, prev int
		reason    string
	}
	var gaps []gap
	for _, g := range f.Gaps {
		prev := -1 // none
		if g.PrevSeq != nil {
			prev = *g.PrevSeq
		}
		gaps = append(gaps, gap{g.Seq, prev, g.Reason})
	}
	// The position before 4 is the failed reply's, 3 in epoch e2.
	if want := []gap{{17, 15, "seq"}, {4, 3, "unrecovered"}}; !slices.Equal(gaps, want) {
		t.Errorf("gap events %+v; want %+v", gaps, want)
	}
	if want := []recoveredEvent{{key, true}, {key, false}}; !slices.Equal(f.Recovered, want) {
		t.Errorf("recovered events %+v; want %+v", f.Recovered, want)
	}
	if len(f.Errors) != 0 {
		t.Errorf("error events %v; want none (busy is retried, not reported)", f.Errors)
	}
	var pos position
	get(`window.rfake.client.position('`+key+`')`, &pos)
	if pos != (position{"e2", 4}) {
		t.Errorf("position = %+v; want {e2 4}", pos)
	}
	run(`window.rfake.client.close()`)
	br.NoErrors()
}
