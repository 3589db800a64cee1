package book

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/marketgate/marketgate/hub"
)

// inbandExchange stands in for a feed whose stream sends its snapshots:
// every Subscribe, and every Resubscribe, of the diff stream owes a
// snapshot.
type inbandExchange struct {
	exchange
	mu     sync.Mutex
	owed   bool
	resubs int
}

func (e *inbandExchange) Subscribe(names []string) {
	e.exchange.Subscribe(names)
	e.mu.Lock()
	e.owed = true
	e.mu.Unlock()
}

func (e *inbandExchange) Resubscribe([]string) {
	e.mu.Lock()
	e.owed = true
	e.resubs++
	e.mu.Unlock()
}

// takeOwed reports whether a snapshot is owed, and clears it.
func (e *inbandExchange) takeOwed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	owed := e.owed
	e.owed = false
	return owed
}

// inbandFormat encodes the model's book and diffs as one exchange's frames.
type inbandFormat struct {
	proc     Procedure
	snapshot func(m *model, u int64) []byte
	diff     func(d map[string]any, u int64) []byte
}

func okxLevels(ls [][2]string) [][]string {
	out := [][]string{}
	for _, l := range ls {
		out = append(out, []string{l[0], l[1], "0", "1"})
	}
	return out
}

var inbandFormats = map[string]inbandFormat{
	"okx": {
		proc: OKX{},
		snapshot: func(m *model, _ int64) []byte {
			b, _ := json.Marshal(map[string]any{"arg": map[string]string{"channel": "books", "instId": "SYM"}, "action": "snapshot",
				"data": []any{map[string]any{"bids": okxLevels(sortedLevels(m.bids, true, 400)), "asks": okxLevels(sortedLevels(m.asks, false, 400)),
					"ts": "1", "checksum": 0, "prevSeqId": -1, "seqId": m.id}}})
			return b
		},
		diff: func(d map[string]any, _ int64) []byte {
			b, _ := json.Marshal(map[string]any{"arg": map[string]string{"channel": "books", "instId": "SYM"}, "action": "update",
				"data": []any{map[string]any{"bids": okxLevels(d["b"].([][2]string)), "asks": okxLevels(d["a"].([][2]string)),
					"ts": strconv.FormatInt(d["E"].(int64), 10), "checksum": 0, "prevSeqId": d["pu"], "seqId": d["u"]}}})
			return b
		},
	},
	"bybit": {
		proc: Bybit{},
		snapshot: func(m *model, u int64) []byte {
			b, _ := json.Marshal(map[string]any{"topic": "orderbook.200.SYM", "type": "snapshot", "ts": 1,
				"data": map[string]any{"s": "SYM", "b": sortedLevels(m.bids, true, 200), "a": sortedLevels(m.asks, false, 200), "u": u, "seq": u}})
			return b
		},
		diff: func(d map[string]any, u int64) []byte {
			b, _ := json.Marshal(map[string]any{"topic": "orderbook.200.SYM", "type": "delta", "ts": d["E"],
				"data": map[string]any{"s": "SYM", "b": d["b"], "a": d["a"], "u": u, "seq": u}})
			return b
		},
	},
}

// TestKeeperInBand keeps OKX- and Bybit-shaped books whose snapshots come
// in the stream: the first on subscribing, a fresh one after a gap by
// subscribing again (unsubscribed at once, no linger); a client of the
// view ends with the model's book, every resync a snapshot flagged gap.
func TestKeeperInBand(t *testing.T) {
	tests := []struct {
		format   string
		withhold map[int]bool
		resyncs  int
	}{
		{format: "okx"},
		{format: "bybit"},
		{format: "okx", withhold: map[int]bool{60: true}, resyncs: 1},
		{format: "bybit", withhold: map[int]bool{60: true}, resyncs: 1},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s %d gaps", tc.format, len(tc.withhold)), func(t *testing.T) {
			f := inbandFormats[tc.format]
			ctx := t.Context()
			m := newModel()
			m.prev = m.id // OKX chains the first update to the snapshot's seqId
			h := &hub.Memory{}
			ex := &inbandExchange{exchange: exchange{subs: map[string]bool{}}}
			b := startBooks(t, Config{Name: "x", Procedure: f.proc, Fetch: noFetch, Publisher: h, Depth: f.proc.DepthLimits()[0]}, ex)

			c := &client{}
			name := f.proc.BookName("SYM")
			if err := h.Subscribe(ctx, "x:"+name, c); err != nil {
				t.Fatal(err)
			}
			b.Subscribe([]string{name})
			diffKey := "x:" + f.proc.DiffStream("SYM")
			u := int64(100) // Bybit's message counter (u=1 would be a restart's snapshot)
			send := func(p []byte) {
				if err := b.Publish(ctx, hub.Message{Stream: diffKey, Data: p}); err != nil {
					t.Fatal(err)
				}
			}
			owed := func() {
				if ex.takeOwed() {
					m.mu.Lock()
					p := f.snapshot(m, u)
					m.mu.Unlock()
					send(p)
				}
			}
			r := rand.New(rand.NewPCG(2, 3))
			for step := range 150 {
				owed()
				var d map[string]any
				_ = json.Unmarshal(m.diff(r, true), &d)
				// JSON numbers come back as float64: restore the fields used.
				d["u"], d["pu"], d["E"] = int64(d["u"].(float64)), int64(d["pu"].(float64)), int64(d["E"].(float64))
				d["b"], d["a"] = levelsOfAny(d["b"]), levelsOfAny(d["a"])
				u++
				if !tc.withhold[step] {
					send(f.diff(d, u))
				}
				time.Sleep(time.Millisecond)
			}
			want, _ := m.top(1000)
			deadline := time.Now().Add(10 * time.Second)
			for {
				owed()
				if got, _ := c.top(); got == want {
					break
				}
				if time.Now().After(deadline) {
					got, _ := c.top()
					t.Fatalf("client book:\n%s\nmodel:\n%s", got, want)
				}
				time.Sleep(10 * time.Millisecond)
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			if len(c.broken) > 0 {
				t.Errorf("contract broken: %v", c.broken)
			}
			if c.gaps != tc.resyncs || c.snapshots != tc.resyncs+1 {
				t.Errorf("%d snapshots, %d with gap; want %d and %d", c.snapshots, c.gaps, tc.resyncs+1, tc.resyncs)
			}
			ex.mu.Lock()
			defer ex.mu.Unlock()
			if ex.resubs != tc.resyncs {
				t.Errorf("the diff stream was subscribed again %d times; want %d (once per gap)", ex.resubs, tc.resyncs)
			}
		})
	}
}

// lingerExchange is an upstream whose subscriptions linger: Unsubscribe
// keeps the diff stream flowing (the feed lets it go only later), so
// subscribing it again owes no snapshot; Resubscribe does.
type lingerExchange struct {
	inbandExchange
}

func (e *lingerExchange) Subscribe(names []string) {
	e.exchange.mu.Lock()
	fresh := false
	for _, n := range names {
		fresh = fresh || !e.subs[n]
	}
	e.exchange.mu.Unlock()
	if fresh {
		e.inbandExchange.Subscribe(names)
	}
}

func (e *lingerExchange) Unsubscribe([]string) {}

// TestKeeperInBandLingering: a view subscribed again after its book was
// let go, while the exchange's diff stream still flows, gets a snapshot:
// the new keeper sees diffs with no snapshot before them and subscribes
// the diff stream again (once) for one. Without that its clients waited
// for a snapshot that never came.
func TestKeeperInBandLingering(t *testing.T) {
	for _, format := range []string{"okx", "bybit"} {
		t.Run(format, func(t *testing.T) {
			f := inbandFormats[format]
			ctx := t.Context()
			m := newModel()
			m.prev = m.id
			h := &hub.Memory{}
			ex := &lingerExchange{inbandExchange{exchange: exchange{subs: map[string]bool{}}}}
			b := startBooks(t, Config{Name: "x", Procedure: f.proc, Fetch: noFetch, Publisher: h, Depth: f.proc.DepthLimits()[0]}, ex)

			name := f.proc.BookName("SYM")
			diffKey := "x:" + f.proc.DiffStream("SYM")
			u := int64(100)
			r := rand.New(rand.NewPCG(4, 5))
			// step sends the owed snapshot, if any, then one diff.
			step := func() {
				if ex.takeOwed() {
					m.mu.Lock()
					p := f.snapshot(m, u)
					m.mu.Unlock()
					if err := b.Publish(ctx, hub.Message{Stream: diffKey, Data: p}); err != nil {
						t.Fatal(err)
					}
				}
				var d map[string]any
				_ = json.Unmarshal(m.diff(r, true), &d)
				d["u"], d["pu"], d["E"] = int64(d["u"].(float64)), int64(d["pu"].(float64)), int64(d["E"].(float64))
				d["b"], d["a"] = levelsOfAny(d["b"]), levelsOfAny(d["a"])
				u++
				if err := b.Publish(ctx, hub.Message{Stream: diffKey, Data: f.diff(d, u)}); err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Millisecond)
			}
			// follow subscribes a client to the view and steps until it
			// has the model's book.
			follow := func(what string) {
				t.Helper()
				c := &client{}
				if err := h.Subscribe(ctx, "x:"+name, c); err != nil {
					t.Fatal(err)
				}
				b.Subscribe([]string{name})
				deadline := time.Now().Add(10 * time.Second)
				for {
					step()
					want, _ := m.top(1000)
					if got, _ := c.top(); got == want {
						break
					}
					if time.Now().After(deadline) {
						got, _ := c.top()
						t.Fatalf("%s: client book:\n%s\nmodel:\n%s", what, got, want)
					}
				}
				c.mu.Lock()
				defer c.mu.Unlock()
				if len(c.broken) > 0 {
					t.Errorf("%s: contract broken: %v", what, c.broken)
				}
				if err := h.Unsubscribe(ctx, "x:"+name, c); err != nil {
					t.Fatal(err)
				}
				b.Unsubscribe([]string{name})
			}
			follow("first view")
			for range 20 {
				step() // the diff stream lingers with no book kept
			}
			follow("the view again")
			ex.mu.Lock()
			defer ex.mu.Unlock()
			if ex.resubs != 1 {
				t.Errorf("the diff stream was subscribed again %d times; want 1 (for the second keeper's snapshot)", ex.resubs)
			}
		})
	}
}

// levelsOfAny converts decoded JSON levels back to pairs.
func levelsOfAny(v any) [][2]string {
	out := [][2]string{}
	l, _ := v.([]any)
	for _, x := range l {
		p := x.([]any)
		out = append(out, [2]string{p[0].(string), p[1].(string)})
	}
	return out
}

// TestParseBookNames checks the book stream names of each exchange.
func TestParseBookNames(t *testing.T) {
	tests := []struct {
		proc   Procedure
		name   string
		symbol string
		n      int
		isBook bool
		err    bool
	}{
		{OKX{}, "book:BTC-USDT", "BTC-USDT", 0, true, false},
		{OKX{}, "book20:BTC-USDT-SWAP", "BTC-USDT-SWAP", 20, true, false},
		{OKX{}, "book7:BTC-USDT", "", 0, true, true},
		{OKX{}, "books:BTC-USDT", "", 0, false, false},
		{OKX{}, "books5:BTC-USDT", "", 0, false, false},
		{OKX{}, "book:", "", 0, false, false},
		{Bybit{}, "book.BTCUSDT", "BTCUSDT", 0, true, false},
		{Bybit{}, "book.50.BTCUSDT", "BTCUSDT", 50, true, false},
		{Bybit{}, "book.3.BTCUSDT", "", 0, true, true},
		{Bybit{}, "orderbook.50.BTCUSDT", "", 0, false, false},
		{Binance{}, "btcusdt@book@1000", "btcusdt", 1000, true, false},
	}
	for _, tc := range tests {
		s, n, isBook, err := tc.proc.ParseBook(tc.name)
		if s != tc.symbol || n != tc.n || isBook != tc.isBook || (err != nil) != tc.err {
			t.Errorf("%T.ParseBook(%q) = %q, %d, %v, %v; want %q, %d, %v, error %v", tc.proc, tc.name, s, n, isBook, err, tc.symbol, tc.n, tc.isBook, tc.err)
		}
	}
}
