package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/marketgate/marketgate/downstream"
	"github.com/marketgate/marketgate/hub"
	"github.com/marketgate/marketgate/internal/browsertest"
	"github.com/marketgate/marketgate/normalize"
)

// tradeSource is a downstream.Source that accepts "binance:<symbol>@trade"
// keys and carries nothing itself: the test publishes into the hub.
type tradeSource struct{}

func (tradeSource) Validate(key string) error {
	name, ok := strings.CutPrefix(key, "binance:")
	if !ok {
		return fmt.Errorf("invalid stream key %q", key)
	}
	sym, ok := strings.CutSuffix(name, "@trade")
	if !ok || sym == "" || strings.ContainsAny(sym, "@:/") {
		return fmt.Errorf("invalid stream name %q", name)
	}
	return nil
}
func (tradeSource) Want([]string)   {}
func (tradeSource) Unwant([]string) {}

// testGateway is one in-process gateway node: a memory hub, the downstream
// WebSocket server and the web routes, plus the test page.
type testGateway struct {
	hub  *hub.Memory
	ds   *downstream.Server
	http *http.Server
	stop func()
}

// testPage imports the client from the gateway and records what it sees in
// window.mg, which the test reads.
const testPage = `<!doctype html>
<meta charset="utf-8"><title>marketgate client test</title>
<script type="module">
import { connect } from '/marketgate.js';
const mg = window.mg = { msgs: [], gaps: [], states: [], errors: [], subscribed: 0 };
const c = window.mgClient = connect('/ws', { backoff: { min: 50, max: 400 }, pingInterval: 500, pingTimeout: 2000 });
c.on('state', (s) => mg.states.push(s));
c.on('gap', (g) => mg.gaps.push(g));
c.on('error', (e) => mg.errors.push(e));
c.subscribe(['binance:btcusdt@trade'], (data, meta) => mg.msgs.push({ t: data.t, ...meta }))
  .then((r) => { mg.subscribed++; mg.subResult = r; }, (e) => { mg.subErr = e; });
// An invalid stream in the same first resubscription: its call rejects, the other goes on.
c.subscribe(['binance:nope'], () => {}).then(() => { mg.badOK = true; }, (e) => { mg.badErr = e; });

// burst subscribes 12 streams in 12 calls at once, more than the gateway's
// 10 commands a second: the client paces them, so none is refused and the
// connection stays open; then it unsubscribes them in one command.
window.burst = () => {
  const t0 = performance.now();
  const keys = Array.from({ length: 12 }, (_, i) => 'binance:burst' + i + 'usdt@trade');
  Promise.all(keys.map((k) => c.subscribe([k], () => {})))
    .then(() => { mg.burstMs = performance.now() - t0; return c.unsubscribe(keys); })
    .then(() => { mg.burstDone = true; }, (e) => { mg.burstErr = e; });
};

// A fake socket checks what the real gateway does not send: a seq jump,
// and a command that gets no reply. It answers subscribe at once, with
// three messages after, and nothing else.
class FakeWS {
  constructor(url) { setTimeout(() => this.onopen && this.onopen(), 0); }
  send(s) {
    const cmd = JSON.parse(s);
    if (cmd.op !== 'subscribe') return;
    setTimeout(() => {
      this.deliver({ id: cmd.id, result: { streams: cmd.streams } });
      for (const seq of [7, 8, 10]) this.deliver({ stream: cmd.streams[0], seq, data: {} });
    }, 0);
  }
  close() {}
  deliver(o) { this.onmessage && this.onmessage({ data: JSON.stringify(o) }); }
}
window.fakeStart = () => {
  const f = window.fake = { msgs: [], gaps: [] };
  const fc = connect('ws://fake.invalid/ws', { WebSocket: FakeWS, pingInterval: 0, commandTimeout: 300 });
  fc.on('gap', (g) => f.gaps.push(g));
  fc.subscribe(['binance:ethusdt@trade'], (d, m) => {
    f.msgs.push(m.seq);
    if (f.msgs.length === 3) {
      fc.unsubscribe(['binance:ethusdt@trade']).then(() => { f.unsubOK = true; }, (e) => { f.unsubErr = e.code; fc.close(); });
    }
  }).then(() => { f.subOK = true; }, (e) => { f.subErr = e.code; });
};

// Clients made on demand by name (TestBrowserSubscriptions, TestBrowserCloses,
// TestBrowserRecover): mk connects one; sub adds subscription id of
// streams, whose messages' trade ids go to msgs[id] and metas to
// metas[id]; unsub lets go of it. Outcomes go to results, events to
// states, closes, errors, gaps and recovered.
const made = window.made = {};
window.mk = (name, opts) => {
  const r = made[name] = { msgs: {}, metas: {}, subs: {}, results: {}, states: [], closes: [], errors: [], gaps: [], recovered: [] };
  const c = r.client = connect('/ws', { backoff: { min: 50, max: 400 }, pingInterval: 0, ...opts });
  c.on('state', (s) => r.states.push({ s, t: performance.now() }));
  c.on('close', (e) => r.closes.push({ ...e, t: performance.now() }));
  c.on('error', (e) => r.errors.push(e));
  c.on('gap', (g) => r.gaps.push(g));
  c.on('recovered', (e) => r.recovered.push(e));
};
window.sub = (name, id, keys) => {
  const r = made[name];
  r.msgs[id] = [];
  r.metas[id] = [];
  r.subs[id] = r.client.subscribe(keys, (d, m) => { r.msgs[id].push(d.t); r.metas[id].push(m); });
  r.subs[id].then((h) => { r.results[id] = 'ok ' + h.streams.join(','); }, (e) => { r.results[id] = e.code; });
};
window.unsub = (name, id) => {
  const r = made[name];
  r.subs[id].unsubscribe().then((res) => { r.results[id + '-unsub'] = 'ok ' + res.streams.join(','); },
    (e) => { r.results[id + '-unsub'] = e.code; });
};

// CloseWS is a socket that opens and then closes with the code its client
// was made for, once: the client's reaction to each close code, without a
// gateway (TestBrowserCloseCodes).
class CloseWS {
  constructor(url) {
    const code = Number(new URL(url).searchParams.get('code'));
    const r = window.closeRuns[code];
    r.sockets++;
    setTimeout(() => {
      this.onopen && this.onopen();
      if (r.sockets === 1) setTimeout(() => this.onclose && this.onclose({ code, reason: 'reason ' + code }), 0);
    }, 0);
  }
  send() {}
  close() {}
}
window.closeRuns = {};
window.closeCase = (code) => {
  const r = window.closeRuns[code] = { sockets: 0, closes: [], states: [] };
  const c = r.client = connect('ws://fake.invalid/ws?code=' + code, { WebSocket: CloseWS, pingInterval: 0, backoff: { min: 50, max: 2000 } });
  c.on('close', (e) => r.closes.push(e));
  c.on('state', (s) => r.states.push(s));
};
// RecoverWS plays a gateway that numbers streams and recovers them, without
// one (TestBrowserRecoverScript): the k-th subscribe on the n-th connection
// gets the steps rfake.script[n][k], a reply ({result} or {error}), data
// messages of the command's first stream, or 'close' (the connection drops).
class RecoverWS {
  constructor() {
    this.n = window.rfake.sockets++;
    this.subs = 0;
    setTimeout(() => this.onopen && this.onopen(), 0);
  }
  send(s) {
    const f = window.rfake;
    const cmd = JSON.parse(s);
    if (cmd.op !== 'subscribe') return;
    f.cmds.push({ conn: this.n, streams: cmd.streams, since: cmd.since || null, t: performance.now() });
    const steps = (f.script[this.n] || [])[this.subs++] || [];
    setTimeout(() => {
      for (const o of steps) {
        if (o === 'close') {
          this.onclose && this.onclose({ code: 1006, reason: '' });
          return;
        }
        const m = o.result || o.error ? { id: cmd.id, ...o } : { stream: cmd.streams[0], ...o, data: { t: o.seq } };
        this.onmessage && this.onmessage({ data: JSON.stringify(m) });
      }
    }, 0);
  }
  close() {}
}
window.rfakeStart = (stream, script) => {
  const f = window.rfake = { sockets: 0, cmds: [], script, metas: [], gaps: [], recovered: [], errors: [] };
  const c = f.client = connect('ws://fake.invalid/ws', { WebSocket: RecoverWS, pingInterval: 0, backoff: { min: 50, max: 400 } });
  c.on('gap', (g) => f.gaps.push(g));
  c.on('recovered', (e) => f.recovered.push(e));
  c.on('error', (e) => f.errors.push(e));
  c.subscribe([stream], (d, m) => f.metas.push(m)).then(() => { f.subOK = true; }, (e) => { f.subErr = e; });
};
window.mgLoaded = true;
</script>
`

// startGateway serves a gateway node on addr ("127.0.0.1:0" for any port).
func startGateway(t *testing.T, addr string) (*testGateway, string) {
	t.Helper()
	return startGatewaySource(t, addr, tradeSource{})
}

// startGatewaySource is startGateway with the downstream Source src.
func startGatewaySource(t *testing.T, addr string, src downstream.Source) (*testGateway, string) {
	t.Helper()
	return startGatewayHub(t, addr, src, hub.NewMemory())
}

// startGatewayHub is startGatewaySource on the hub h, which may outlive
// the node: a node started again on it has the stream history of the
// one before.
func startGatewayHub(t *testing.T, addr string, src downstream.Source, h *hub.Memory) (*testGateway, string) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	// The normalized form of the Binance symbols the tests publish, as the
	// market page asks for it.
	syms := &normalize.Symbols{}
	syms.Set(map[string]string{"BTCUSDT": "BTC/USDT", "ETHUSDT": "ETH/USDT"})
	norm := normalize.Set{"binance": normalize.Binance{Exchange: "binance", Symbols: syms}}
	ds, err := downstream.New(downstream.Config{Hub: h, Source: src, Logger: log, CloseGrace: 200 * time.Millisecond, Normalizer: norm})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	dsDone := make(chan error, 1)
	go func() { dsDone <- ds.Run(ctx) }()

	ws, err := New(Config{Addr: addr, WebSockets: ds, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /test.html", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, testPage)
	})
	mux.Handle("/", ws.Handler())
	var ln net.Listener
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err = net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // the old node's port may take a moment
	}
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	g := &testGateway{hub: h, ds: ds, http: srv}
	var once sync.Once
	g.stop = func() {
		once.Do(func() {
			srv.Close() // no new handshakes
			cancel()    // closes the WebSockets with 1001
			select {
			case err := <-dsDone:
				if err != nil {
					t.Errorf("downstream Run = %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("downstream Run did not return")
			}
		})
	}
	t.Cleanup(g.stop)
	waitUntil(t, 2*time.Second, "downstream server running", func() bool {
		resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return g, ln.Addr().String()
}

func (g *testGateway) subscribers(key string) int {
	for _, si := range g.ds.Streams() {
		if si.Stream == key {
			return si.Subscribers
		}
	}
	return 0
}

func (g *testGateway) publish(t *testing.T, key string, seqs []uint64, gap bool, firstTrade int) {
	t.Helper()
	for i, seq := range seqs {
		data := fmt.Sprintf(`{"e":"trade","s":"BTCUSDT","t":%d}`, firstTrade+i)
		msg := hub.Message{Stream: key, Seq: seq, Gap: gap && i == 0, Data: []byte(data)}
		if err := g.hub.Publish(t.Context(), msg); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.hub.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBrowserClient drives web/client/marketgate.js in headless Chromium against a
// real gateway node, restarts the node, and checks that the client
// reconnects, resubscribes and reports the gap.
func TestBrowserClient(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	const key = "binance:btcusdt@trade"
	g1, addr := startGateway(t, "127.0.0.1:0")

	start := time.Now()
	br := browsertest.Start(t, 90*time.Second)
	ctx := br.Ctx
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+addr+"/test.html")); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	t.Logf("browser up and page loaded in %v", time.Since(start).Round(time.Millisecond))

	// poll waits, bounded, until expr is truthy in the page.
	poll := func(what, expr string) {
		t.Helper()
		br.Poll(10*time.Second, what, expr, `JSON.stringify({mg: window.mg, fake: window.fake})`)
	}
	eval := func(expr string, v any) {
		t.Helper()
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify(`+expr+`)`))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		if err := json.Unmarshal([]byte(raw), v); err != nil {
			t.Fatalf("evaluate %s: %v (%s)", expr, err, raw)
		}
	}
	type meta struct {
		T      int    `json:"t"`
		Stream string `json:"stream"`
		Seq    uint64 `json:"seq"`
		Gap    bool   `json:"gap"`
	}
	type gapEvent struct {
		Stream string `json:"stream"`
		Seq    uint64 `json:"seq"`
		Reason string `json:"reason"`
	}

	poll("the module to load", `window.mgLoaded === true`)
	poll("the subscribe promise", `window.mg.subscribed === 1 && window.mg.badErr !== undefined`)
	var badErr struct {
		Code    string   `json:"code"`
		Streams []string `json:"streams"`
	}
	eval(`window.mg.badErr`, &badErr)
	if badErr.Code != "invalid_stream" || len(badErr.Streams) != 1 || badErr.Streams[0] != "binance:nope" {
		t.Errorf("subscribe of an invalid stream rejected with %+v; want invalid_stream naming binance:nope", badErr)
	}
	waitUntil(t, 5*time.Second, "the browser's subscription on node 1", func() bool { return g1.subscribers(key) == 1 })

	// Node 1 delivers trades 1..5: consecutive seq, no gap.
	g1.publish(t, key, []uint64{1, 2, 3, 4, 5}, false, 1)
	poll("five messages", `window.mg.msgs.length >= 5`)
	var msgs []meta
	eval(`window.mg.msgs`, &msgs)
	for i, m := range msgs {
		if m.Stream != key || m.Seq != uint64(i+1) || m.T != i+1 || m.Gap {
			t.Errorf("message %d = %+v; want stream %s, seq %d, trade %d, no gap", i, m, key, i+1, i+1)
		}
	}
	var gaps []gapEvent
	eval(`window.mg.gaps`, &gaps)
	if len(gaps) != 0 {
		t.Errorf("gap events before any loss: %+v", gaps)
	}

	// Restart the node on the same port: the client reconnects by itself.
	restart := time.Now()
	g1.stop()
	poll("the client to notice the drop", `window.mg.states.includes('reconnecting')`)
	g2, addr2 := startGateway(t, addr)
	if addr2 != addr {
		t.Fatalf("restarted on %s; want %s", addr2, addr)
	}
	poll("the client to reopen", `window.mgClient.state === 'open'`)
	waitUntil(t, 10*time.Second, "the resubscription on node 2", func() bool { return g2.subscribers(key) == 1 })
	t.Logf("reconnected and resubscribed %v after the restart", time.Since(restart).Round(time.Millisecond))

	// Node 2 is a new hub: a new epoch, numbered from 1 again. The client
	// asked to recover from node 1's epoch and could not; its first
	// message is an "unrecovered" gap, the rest follow on.
	g2.publish(t, key, []uint64{1, 2, 3}, false, 100)
	poll("three more messages", `window.mg.msgs.length >= 8`)
	// The gateway marks a loss with gap:true.
	g2.publish(t, key, []uint64{7}, true, 200)
	poll("the gap-flagged message", `window.mg.msgs.length >= 9`)
	eval(`window.mg.msgs`, &msgs)
	want := []meta{
		{T: 100, Seq: 1, Gap: true}, {T: 101, Seq: 2}, {T: 102, Seq: 3}, {T: 200, Seq: 4, Gap: true},
	}
	if len(msgs) != 9 {
		t.Fatalf("got %d messages; want 9: %+v", len(msgs), msgs)
	}
	for i, w := range want {
		m := msgs[5+i]
		if m.T != w.T || m.Seq != w.Seq || m.Gap != w.Gap {
			t.Errorf("message %d after restart = %+v; want trade %d seq %d gap %v", i, m, w.T, w.Seq, w.Gap)
		}
	}
	eval(`window.mg.gaps`, &gaps)
	wantGaps := []gapEvent{{key, 1, "unrecovered"}, {key, 4, "gap"}}

	// A burst of subscribe calls is paced under the gateway's flood limit.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.burst()`)); err != nil {
		t.Fatal(err)
	}
	poll("the burst of subscriptions", `window.mg.burstDone === true || window.mg.burstErr !== undefined`)
	var burstMs float64
	eval(`window.mg.burstMs`, &burstMs)
	if burstMs < 1500 {
		t.Errorf("12 subscribe calls answered within %.0f ms; want them paced at 5 a second (over 1.5 s)", burstMs)
	}
	if fmt.Sprint(gaps) != fmt.Sprint(wantGaps) {
		t.Errorf("gap events = %+v; want %+v", gaps, wantGaps)
	}
	var states []string
	eval(`window.mg.states`, &states)
	if got := strings.Join(states, ","); got != "connecting,open,reconnecting,open" {
		t.Errorf("states = %s; want connecting,open,reconnecting,open", got)
	}
	var streams []string
	eval(`window.mgClient.streams`, &streams)
	if len(streams) != 1 || streams[0] != key {
		t.Errorf("client streams = %v; want [%s]", streams, key)
	}

	// Unsubscribe reaches the gateway; close stops for good.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.mgClient.unsubscribe(['`+key+`']).then(() => { window.mg.unsubscribed = true; })`)); err != nil {
		t.Fatal(err)
	}
	poll("the unsubscribe reply", `window.mg.unsubscribed === true`)
	waitUntil(t, 5*time.Second, "the unsubscription on node 2", func() bool { return g2.subscribers(key) == 0 })
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.mgClient.close()`)); err != nil {
		t.Fatal(err)
	}
	poll("the closed state", `window.mgClient.state === 'closed' && window.mg.states.at(-1) === 'closed'`)

	// The fake socket: a seq jump is a gap; a command without a reply times out.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.fakeStart()`)); err != nil {
		t.Fatal(err)
	}
	poll("the fake client's messages and command timeout", `window.fake.subOK === true && window.fake.msgs.length === 3 && window.fake.unsubErr !== undefined`)
	var fake struct {
		Msgs     []int      `json:"msgs"`
		Gaps     []gapEvent `json:"gaps"`
		UnsubErr string     `json:"unsubErr"`
	}
	eval(`window.fake`, &fake)
	if fmt.Sprint(fake.Msgs) != "[7 8 10]" || len(fake.Gaps) != 1 || fake.Gaps[0].Seq != 10 || fake.Gaps[0].Reason != "seq" {
		t.Errorf("fake socket: messages %v, gaps %+v; want [7 8 10] and one seq gap at 10", fake.Msgs, fake.Gaps)
	}
	if fake.UnsubErr != "timeout" {
		t.Errorf("unanswered unsubscribe rejected with %q; want timeout", fake.UnsubErr)
	}

	// Let any late asynchronous error surface, then require none.
	if err := chromedp.Do(ctx, chromedp.Sleep(100*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	br.NoErrors()
	t.Logf("browser test took %v", time.Since(start).Round(time.Millisecond))
}
