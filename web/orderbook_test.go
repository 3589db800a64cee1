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

// bookSource accepts binance:<symbol>@book keys and carries nothing
// itself: the test publishes the book's messages into the hub.
type bookSource struct{}

func (bookSource) Validate(key string) error {
	name, ok := strings.CutPrefix(key, "binance:")
	if !ok {
		return fmt.Errorf("invalid stream key %q", key)
	}
	sym, ok := strings.CutSuffix(name, "@book")
	if !ok || sym == "" || strings.ContainsAny(sym, "@:/") {
		return fmt.Errorf("invalid stream name %q", name)
	}
	return nil
}
func (bookSource) Want([]string)   {}
func (bookSource) Unwant([]string) {}

// refBook is the test's own book: each side's levels by price in cents,
// each with the last spelling of its price and its quantity.
type refBook struct{ b, a map[int64][2]string }

func newRef() refBook { return refBook{b: map[int64][2]string{}, a: map[int64][2]string{}} }

// side returns the bids or the asks.
func (r refBook) side(bids bool) map[int64][2]string {
	if bids {
		return r.b
	}
	return r.a
}

// levels returns side's levels best first: bids highest first, asks lowest.
func (r refBook) levels(bids bool) [][2]string {
	m := r.side(bids)
	prices := make([]int64, 0, len(m))
	for p := range m {
		prices = append(prices, p)
	}
	slices.Sort(prices)
	if bids {
		slices.Reverse(prices)
	}
	out := make([][2]string, len(prices))
	for i, p := range prices {
		out[i] = m[p]
	}
	return out
}

// spell writes a price in cents as the exchange might: with two decimals,
// or with trailing zeros, or (whole prices) with none.
func spell(cents int64, style int) string {
	switch {
	case style == 1:
		return fmt.Sprintf("%d.%02d000000", cents/100, cents%100)
	case style == 2 && cents%100 == 0:
		return fmt.Sprintf("%d", cents/100)
	default:
		return fmt.Sprintf("%d.%02d", cents/100, cents%100)
	}
}

// bookPublisher publishes one book stream's messages into a gateway's hub,
// numbered as the hub's publisher would.
type bookPublisher struct {
	t   *testing.T
	g   *testGateway
	key string
	seq uint64
}

func (p *bookPublisher) publish(data any, gap bool) {
	p.t.Helper()
	b, err := json.Marshal(data)
	if err != nil {
		p.t.Fatal(err)
	}
	p.seq++
	if err := p.g.hub.Publish(p.t.Context(), hub.Message{Stream: p.key, Seq: p.seq, Gap: gap, Data: b}); err != nil {
		p.t.Fatal(err)
	}
	if err := p.g.hub.Flush(p.t.Context()); err != nil {
		p.t.Fatal(err)
	}
}

// snapshot publishes r as a snapshot with lastUpdateId id.
func (p *bookPublisher) snapshot(r refBook, id int64, gap bool) {
	p.t.Helper()
	msg := map[string]any{"type": "snapshot", "lastUpdateId": id, "bids": r.levels(true), "asks": r.levels(false)}
	if gap {
		msg["gap"] = true
	}
	p.publish(msg, false)
}

// TestBrowserOrderBook drives client.orderBook in headless Chromium
// against a real gateway node whose hub the test publishes a book stream
// into: a 1,000-level snapshot and 400 random updates (new levels,
// changed quantities, deletions, prices spelled several ways) leave the
// browser's book equal, level for level, to the test's own; a break in
// U/u, a gap-flagged frame and a stale message are handled as the
// contract says, a new snapshot always replaces the book, and a lost
// connection marks the book stale.
func TestBrowserOrderBook(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	const key = "binance:btcusdt@book"
	g, addr := startGatewaySource(t, "127.0.0.1:0", bookSource{})
	br := browsertest.Start(t, 90*time.Second)
	br.Do("load the test page", chromedp.Navigate("http://"+addr+"/test.html"))
	const state = `JSON.stringify({state: window.bk?.book?.state, id: window.bk?.book?.lastUpdateId, stats: window.bk?.book?.stats, events: window.bk?.events?.slice(-8)})`
	poll := func(what, expr string) { t.Helper(); br.Poll(10*time.Second, what, expr, state) }
	poll("the client module", `window.mgLoaded === true`)
	br.Do("open the book", chromedp.Evaluate[chromedp.Void](`(() => {
		window.mk('b', { pingInterval: 0 });
		const r = window.bk = { events: [], changes: 0 };
		const b = r.book = window.made.b.client.orderBook('`+key+`');
		for (const e of ['snapshot', 'stale', 'gap', 'error']) b.on(e, (x) => r.events.push({ e, ...x }));
		b.on('change', () => { r.changes++; });
		b.ready.then(() => { r.ready = true; }, (e) => { r.readyErr = e; });
	})()`))
	waitUntil(t, 5*time.Second, "the book's subscription", func() bool { return g.subscribers(key) == 1 })
	pub := &bookPublisher{t: t, g: g, key: key}

	// levels reads the browser's book, both sides.
	type sides struct {
		Bids  [][2]string `json:"bids"`
		Asks  [][2]string `json:"asks"`
		State string      `json:"state"`
		ID    *int64      `json:"id"`
	}
	read := func() sides {
		t.Helper()
		raw := browsertest.Eval[string](br, `JSON.stringify({bids: window.bk.book.bids, asks: window.bk.book.asks, state: window.bk.book.state, id: window.bk.book.lastUpdateId})`)
		var s sides
		if err := json.Unmarshal([]byte(raw), &s); err != nil {
			t.Fatalf("book: %v (%s)", err, raw)
		}
		return s
	}
	same := func(what string, ref refBook, id int64) {
		t.Helper()
		poll(what, fmt.Sprintf(`window.bk.book.lastUpdateId === %d`, id))
		got := read()
		if got.State != "live" {
			t.Errorf("%s: state %q; want live", what, got.State)
		}
		for _, side := range []struct {
			name      string
			got, want [][2]string
		}{{"bids", got.Bids, ref.levels(true)}, {"asks", got.Asks, ref.levels(false)}} {
			if len(side.got) != len(side.want) {
				t.Errorf("%s: %d %s; want %d", what, len(side.got), side.name, len(side.want))
				continue
			}
			for i := range side.want {
				if side.got[i] != side.want[i] {
					t.Errorf("%s: %s level %d = %v; want %v", what, side.name, i, side.got[i], side.want[i])
					break
				}
			}
		}
	}

	// A 1,000-level snapshot: bids 100.00–109.99 below asks 110.00–119.99,
	// spelled several ways (9.xx and 10x.xx sort by value, not as text).
	rng := rand.New(rand.NewPCG(1, 2))
	ref := newRef()
	level := func(cents int64) [2]string {
		return [2]string{spell(cents, rng.IntN(3)), fmt.Sprintf("%d.%05d", rng.IntN(20), rng.IntN(100000)+1)}
	}
	for i := range int64(1000) {
		ref.b[10999-i] = level(10999 - i)
		ref.a[11000+i] = level(11000 + i)
	}
	ref.b[950] = level(950) // 9.50, far below the rest of the bids
	id := int64(5000)
	pub.snapshot(ref, id, false)
	poll("the first snapshot", `window.bk.ready === true`)
	same("after the snapshot", ref, id)

	// 400 updates continuing it: changes, deletions (quantity zero, spelled
	// as Binance does), new levels, both sides.
	for range 400 {
		var b, a [][2]string
		for range 1 + rng.IntN(6) {
			bid := rng.IntN(2) == 0
			cents := 10999 - rng.Int64N(1100)
			if !bid {
				cents = 11000 + rng.Int64N(1100)
			}
			l := level(cents)
			if rng.IntN(4) == 0 {
				l[1] = "0.00000000"
				delete(ref.side(bid), cents)
			} else {
				ref.side(bid)[cents] = l
			}
			if bid {
				b = append(b, l)
			} else {
				a = append(a, l)
			}
		}
		if b == nil {
			b = [][2]string{}
		}
		if a == nil {
			a = [][2]string{}
		}
		n := int64(1 + rng.IntN(3))
		pub.publish(map[string]any{"type": "update", "U": id + 1, "u": id + n, "b": b, "a": a}, false)
		id += n
	}
	same("after 400 updates", ref, id)

	// An update whose U does not follow: the book is discarded, the stream
	// resubscribed; a new snapshot (after the gateway's resync) replaces it.
	pub.publish(map[string]any{"type": "update", "U": id + 5, "u": id + 6, "b": [][2]string{{"1.00", "1"}}, "a": [][2]string{}}, false)
	poll("the sequence gap", `window.bk.book.state === 'waiting' && window.bk.book.bids.length === 0 && window.bk.events.some((e) => e.e === 'gap' && e.reason === 'sequence')`)
	poll("the resubscription", `window.bk.book.stats.resyncs === 1`)
	br.Do("list", chromedp.Evaluate[chromedp.Void](`window.made.b.client.list().then((r) => { window.bk.listed = r.streams; })`))
	poll("the gateway's answer after the resubscription", `Array.isArray(window.bk.listed) && window.bk.listed.includes('`+key+`')`)
	// An update before the snapshot is ignored.
	pub.publish(map[string]any{"type": "update", "U": id + 7, "u": id + 7, "b": [][2]string{{"1.00", "1"}}, "a": [][2]string{}}, false)
	ref = refBook{b: map[int64][2]string{10000: {"100.00", "1.5"}}, a: map[int64][2]string{10100: {"101", "2"}, 10200: {"102.00", "0.25"}}}
	id = 9000
	pub.snapshot(ref, id, true)
	same("after the resync snapshot", ref, id)
	poll("the resync event", `window.bk.events.some((e) => e.e === 'gap' && e.reason === 'resync' && e.lastUpdateId === 9000) && window.bk.events.some((e) => e.e === 'snapshot' && e.gap === true)`)
	if n := browsertest.Eval[int](br, `window.bk.book.stats.ignored`); n != 1 {
		t.Errorf("updates ignored while waiting = %d; want 1", n)
	}
	if got := browsertest.Eval[string](br, `JSON.stringify([window.bk.book.best('bids'), window.bk.book.best('asks'), window.bk.book.levels('asks', 2), window.bk.book.depth('a')])`); got != `[["100.00","1.5"],["101","2"],[["101","2"],["102.00","0.25"]],2]` {
		t.Errorf("best, levels, depth = %s", got)
	}

	// A stale message keeps the book, marked, until the next snapshot.
	pub.publish(map[string]any{"type": "stale", "reason": "REST banned until 12:00"}, false)
	poll("the stale mark", `window.bk.book.state === 'stale' && window.bk.book.staleReason === 'REST banned until 12:00' && window.bk.book.bids.length === 1`)
	ref = refBook{b: map[int64][2]string{10050: {"100.50", "3"}}, a: map[int64][2]string{10150: {"101.50", "4"}}}
	id = 9100
	pub.snapshot(ref, id, false)
	same("after the snapshot that ends the stale mark", ref, id)

	// A frame the gateway flags as following a loss discards the book, even
	// with a U that follows.
	pub.publish(map[string]any{"type": "update", "U": id + 1, "u": id + 1, "b": [][2]string{{"100.40", "1"}}, "a": [][2]string{}}, true)
	poll("the stream gap", `window.bk.book.state === 'waiting' && window.bk.events.some((e) => e.e === 'gap' && e.reason === 'stream')`)
	poll("the second resubscription", `window.bk.book.stats.resyncs === 2`)
	br.Do("list", chromedp.Evaluate[chromedp.Void](`window.bk.listed = null; window.made.b.client.list().then((r) => { window.bk.listed = r.streams; })`))
	poll("the gateway's answer after the resubscription", `Array.isArray(window.bk.listed) && window.bk.listed.includes('`+key+`')`)
	ref = refBook{b: map[int64][2]string{10060: {"100.60", "5"}}, a: map[int64][2]string{10160: {"101.60", "6"}}}
	id = 9200
	pub.snapshot(ref, id, false)
	same("after the snapshot that follows the stream gap", ref, id)

	// close lets the stream go at the gateway.
	br.Do("close", chromedp.Evaluate[chromedp.Void](`window.bk.book.close()`))
	waitUntil(t, 5*time.Second, "the book's stream unsubscribed", func() bool { return g.subscribers(key) == 0 })
	if s := browsertest.Eval[string](br, `window.bk.book.state`); s != "closed" {
		t.Errorf("state after close() = %q; want closed", s)
	}

	// A lost connection marks a live book stale, its levels kept.
	const eth = "binance:ethusdt@book"
	br.Do("open a second book", chromedp.Evaluate[chromedp.Void](`window.bk2 = window.made.b.client.orderBook('`+eth+`')`))
	waitUntil(t, 5*time.Second, "the second book's subscription", func() bool { return g.subscribers(eth) == 1 })
	pub2 := &bookPublisher{t: t, g: g, key: eth}
	pub2.snapshot(refBook{b: map[int64][2]string{200000: {"2000.00", "1"}}, a: map[int64][2]string{200100: {"2001.00", "2"}}}, 1, false)
	poll("the second book", `window.bk2.state === 'live'`)
	g.stop()
	poll("the stale mark of a lost connection", `window.bk2.state === 'stale' && window.bk2.staleReason === 'disconnected' && window.bk2.bids.length === 1`)
	br.NoErrors()
}
