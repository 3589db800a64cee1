package book

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/marketgate/marketgate/hub"
	"github.com/marketgate/marketgate/upstream"
)

// model is an exchange's book for the keeper tests: every change has its
// own update id; diffs group changes, as a depth stream does.
type model struct {
	mu         sync.Mutex
	bids, asks map[int]int // price -> qty, in ticks and lots
	id, prev   int64       // last change; last of the previous diff
	fetches    int
}

func newModel() *model {
	m := &model{bids: map[int]int{}, asks: map[int]int{}, id: 1000}
	for i := 1; i <= 40; i++ {
		m.bids[1000-i], m.asks[1000+i] = i, i
	}
	return m
}

func px(p int) string { return strconv.Itoa(p) + ".00" }
func qty(q int) string {
	if q == 0 {
		return "0.00000000"
	}
	return strconv.Itoa(q) + ".5"
}

// diff changes the book a few times and returns the diff event.
func (m *model) diff(r *rand.Rand, futures bool) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	first := m.id + 1
	var b, a [][2]string
	for range 1 + r.IntN(4) {
		m.id++
		side, p, bid := m.asks, 1001+r.IntN(30), false
		if r.IntN(2) == 0 {
			side, p, bid = m.bids, 999-r.IntN(30), true
		}
		q := r.IntN(5)
		if q == 0 {
			delete(side, p)
		} else {
			side[p] = q
		}
		if bid {
			b = append(b, [2]string{px(p), qty(q)})
		} else {
			a = append(a, [2]string{px(p), qty(q)})
		}
	}
	d := map[string]any{"e": "depthUpdate", "E": time.Now().UnixMilli(), "s": "SYM", "U": first, "u": m.id, "b": b, "a": a}
	if futures {
		d["pu"] = m.prev
	}
	m.prev = m.id
	out, _ := json.Marshal(d)
	return out
}

func sortedLevels(side map[int]int, bids bool, n int) [][2]string {
	ps := make([]int, 0, len(side))
	for p := range side {
		ps = append(ps, p)
	}
	sort.Ints(ps)
	if bids {
		sort.Sort(sort.Reverse(sort.IntSlice(ps)))
	}
	var out [][2]string
	for _, p := range ps[:min(n, len(ps))] {
		out = append(out, [2]string{px(p), qty(side[p])})
	}
	return out
}

func (m *model) fetch(_ context.Context, _ string, q url.Values) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fetches++
	n, _ := strconv.Atoi(q.Get("limit"))
	return json.Marshal(map[string]any{"lastUpdateId": m.id, "bids": sortedLevels(m.bids, true, n), "asks": sortedLevels(m.asks, false, n)})
}

// top returns the model's top n as "p:q" lines, and its update id.
func (m *model) top(n int) (string, int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return fmt.Sprint(sortedLevels(m.bids, true, n), sortedLevels(m.asks, false, n)), m.id
}

// client keeps a book from a view's messages by the contract: any
// snapshot replaces it, an update must start at the previous u + 1.
type client struct {
	mu        sync.Mutex
	book      *Book
	synced    bool
	snapshots int
	gaps      int // snapshots with "gap":true
	broken    []string
}

func (c *client) Receive(msg hub.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var m wireBook
	var gap struct {
		Gap bool `json:"gap"`
	}
	if err := json.Unmarshal(msg.Data, &m); err != nil {
		c.broken = append(c.broken, err.Error())
		return
	}
	_ = json.Unmarshal(msg.Data, &gap)
	switch m.Type {
	case "snapshot":
		c.book, c.synced = NewBook(0), true
		c.snapshots++
		if gap.Gap {
			c.gaps++
		}
		for _, l := range m.Bids {
			c.book.Set(true, l[0], l[1])
		}
		for _, l := range m.Asks {
			c.book.Set(false, l[0], l[1])
		}
		c.book.LastUpdateID = m.LastUpdateID
	case "update":
		if !c.synced {
			return
		}
		if m.First != c.book.LastUpdateID+1 {
			c.broken = append(c.broken, fmt.Sprintf("update U %d after u %d", m.First, c.book.LastUpdateID))
		}
		for _, l := range m.B {
			c.book.Set(true, l[0], l[1])
		}
		for _, l := range m.A {
			c.book.Set(false, l[0], l[1])
		}
		c.book.LastUpdateID = m.U
	case "stale":
	default:
		c.broken = append(c.broken, "message "+string(msg.Data))
	}
}

func (c *client) Flush() {}

// top returns the client's book as model.top does.
func (c *client) top() (string, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.book == nil {
		return "", 0
	}
	conv := func(ls []Level) [][2]string {
		var out [][2]string
		for _, l := range ls {
			out = append(out, [2]string{l.P, l.Q})
		}
		return out
	}
	return fmt.Sprint(conv(c.book.Bids.Top(0)), conv(c.book.Asks.Top(0))), c.book.LastUpdateID
}

// exchange stands in for a feed: it records what is subscribed.
type exchange struct {
	mu   sync.Mutex
	subs map[string]bool
}

func (e *exchange) Name() string          { return "x" }
func (e *exchange) Validate(string) error { return nil }
func (e *exchange) Subscribe(names []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, n := range names {
		e.subs[n] = true
	}
}
func (e *exchange) Unsubscribe(names []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, n := range names {
		delete(e.subs, n)
	}
}

// TestKeeper keeps a book of a model exchange through the diffs it
// sends, with gaps (a diff withheld), reconnects (a Gap-flagged diff) and
// unreadable diffs, and checks that a client of the view, following the
// contract, ends with exactly the model's top N, and that every resync
// came as a snapshot with "gap":true.
func TestKeeper(t *testing.T) {
	tests := []struct {
		name     string
		futures  bool
		withhold map[int]bool // steps whose diff is never sent
		gapFlag  map[int]bool // steps whose diff is marked Gap (a reconnect)
		garbage  map[int]bool // steps followed by an unreadable diff
		resyncs  int
	}{
		{name: "spot"},
		{name: "futures", futures: true},
		{name: "spot gaps", withhold: map[int]bool{50: true, 120: true}, resyncs: 2},
		{name: "futures gaps", futures: true, withhold: map[int]bool{50: true, 120: true}, resyncs: 2},
		{name: "reconnect", gapFlag: map[int]bool{80: true}, resyncs: 1},
		{name: "unreadable diff", garbage: map[int]bool{80: true}, resyncs: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const n = 20
			ctx := t.Context()
			m := newModel()
			h := &hub.Memory{}
			ex := &exchange{subs: map[string]bool{}}
			b := startBooks(t, Config{Name: "x", Procedure: Binance{Futures: tc.futures}, Fetch: m.fetch, Publisher: h, Depth: 100}, ex)

			c := &client{}
			key := fmt.Sprintf("x:sym@book@%d", n)
			if err := h.Subscribe(ctx, key, c); err != nil {
				t.Fatal(err)
			}
			// The whole book (Depth 100) and its top 100 are two streams
			// of the same depth: each gets its own view.
			whole, top100 := &client{}, &client{}
			h.Subscribe(ctx, "x:sym@book", whole)
			h.Subscribe(ctx, "x:sym@book@100", top100)
			b.Subscribe([]string{"sym@book@20", "sym@book", "sym@book@100"})
			if !ex.subs["sym@depth@100ms"] {
				t.Fatalf("the diff stream is not subscribed: %v", ex.subs)
			}
			r := rand.New(rand.NewPCG(1, uint64(len(tc.name))))
			for step := range 200 {
				d := m.diff(r, tc.futures)
				if tc.withhold[step] {
					continue
				}
				msg := hub.Message{Stream: "x:sym@depth@100ms", Data: d, Gap: tc.gapFlag[step]}
				if err := b.Publish(ctx, msg); err != nil {
					t.Fatal(err)
				}
				if tc.garbage[step] {
					b.Publish(ctx, hub.Message{Stream: "x:sym@depth@100ms", Data: []byte(`{"e":"depthUpdate","U":"x"}`)})
				}
				time.Sleep(2 * time.Millisecond) // let the keeper fetch
			}
			want, wantID := m.top(n)
			deadline := time.Now().Add(10 * time.Second)
			// A view's update id moves only when its top N changes.
			for {
				got, id := c.top()
				b.mu.RLock()
				k := b.keepers["sym"]
				b.mu.RUnlock()
				k.mu.Lock()
				kid := k.book.LastUpdateID
				k.mu.Unlock()
				if got == want && id <= wantID && kid == wantID {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("client book at %d:\n%s\nmodel at %d:\n%s", id, got, wantID, want)
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
			if st := b.Stats(); st.Resyncs != uint64(tc.resyncs) || st.Syncs != uint64(tc.resyncs+1) {
				t.Errorf("stats %+v; want %d resyncs", st, tc.resyncs)
			}
			// The stream's state, for a later subscriber, is the book too.
			rec, err := h.Recover(ctx, key, nil)
			if err != nil || rec.State == nil {
				t.Fatalf("no state kept: %v %+v", err, rec)
			}
			late := &client{}
			late.Receive(*rec.State)
			for _, msg := range rec.Messages {
				late.Receive(msg)
			}
			if got, id := late.top(); got != want || id > wantID {
				t.Errorf("state + history at %d:\n%s\nwant at %d:\n%s", id, got, wantID, want)
			}
			wantAll, _ := m.top(1000)
			for name, cl := range map[string]*client{"sym@book": whole, "sym@book@100": top100} {
				if got, _ := cl.top(); got != wantAll {
					t.Errorf("%s: book differs from the model's", name)
				}
			}
			b.Unsubscribe([]string{"sym@book@20", "sym@book"})
			if !ex.subs["sym@depth@100ms"] {
				t.Errorf("the diff stream was unsubscribed while a view is left")
			}
			b.Unsubscribe([]string{"sym@book@100"})
			if ex.subs["sym@depth@100ms"] {
				t.Errorf("the diff stream is still subscribed after the last view left")
			}
		})
	}
}

// TestSnapshotWaitsForDiffs: Binance's procedure subscribes and buffers
// before it asks for the snapshot, so a keeper whose diff stream has not
// delivered yet fetches nothing; the first diff starts the fetch.
func TestSnapshotWaitsForDiffs(t *testing.T) {
	ctx := t.Context()
	m := newModel()
	h := &hub.Memory{}
	b := startBooks(t, Config{Name: "x", Procedure: Binance{}, Fetch: m.fetch, Publisher: h, Depth: 100}, &exchange{subs: map[string]bool{}})
	b.Subscribe([]string{"sym@book"})
	fetches := func() int {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.fetches
	}
	time.Sleep(300 * time.Millisecond)
	if n := fetches(); n != 0 {
		t.Fatalf("%d snapshots fetched before any diff arrived; want 0", n)
	}
	r := rand.New(rand.NewPCG(5, 6))
	b.Publish(ctx, hub.Message{Stream: "x:sym@depth@100ms", Data: m.diff(r, false)})
	deadline := time.Now().Add(5 * time.Second)
	for fetches() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d snapshots fetched after the first diff; want 1", fetches())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startBooks runs books of cfg carrying ex until the test ends, and
// checks that Run returned nil.
func startBooks(t *testing.T, cfg Config, ex upstream.Exchange) *Books {
	t.Helper()
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b.Carry(ex)
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return b
}
