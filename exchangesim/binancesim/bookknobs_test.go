package binancesim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"
)

// Tests of the book knobs: Pause/Resume, Book, InjectGap, and RESTStats.

// diffEv is one diff-depth event; pu is -1 where the product has none.
type diffEv struct {
	first, last, prev int64
	b, a              [][2]string
}

// parseDiff decodes a depth event by exact keys ("U" and "u" differ only
// in case).
func parseDiff(t *testing.T, p []byte) diffEv {
	t.Helper()
	f := fields(t, p)
	num := func(k string) int64 {
		raw, ok := f[k]
		if !ok {
			return -1
		}
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			t.Fatalf("%q = %s in %s", k, raw, p)
		}
		return n
	}
	ev := diffEv{first: num("U"), last: num("u"), prev: num("pu")}
	if err := json.Unmarshal(f["b"], &ev.b); err != nil {
		t.Fatalf("b: %v in %s", err, p)
	}
	if err := json.Unmarshal(f["a"], &ev.a); err != nil {
		t.Fatalf("a: %v in %s", err, p)
	}
	return ev
}

// continuous reports whether next continues prev: U == u+1 on Spot, pu
// == u on USD-M.
func continuous(futures bool, prev, next diffEv) bool {
	if futures {
		return next.prev == prev.last
	}
	return next.first == prev.last+1
}

// getSnapshot fetches a REST depth snapshot.
func getSnapshot(t *testing.T, url string) snapshot {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	var s snapshot
	if err := json.Unmarshal(body, &s); err != nil || s.LastUpdateID == 0 {
		t.Fatalf("snapshot %s: %v", body, err)
	}
	return s
}

// drain reads until no frame arrives for quietFor, and returns what came.
func (c *client) drain(quietFor time.Duration) map[string][]json.RawMessage {
	c.t.Helper()
	all := map[string][]json.RawMessage{}
	for {
		got := c.collect(quietFor, 1)
		if len(got) == 0 {
			return all
		}
		for k, v := range got {
			all[k] = append(all[k], v...)
		}
	}
}

func TestPauseStopsEvents(t *testing.T) {
	t.Parallel()
	for _, mode := range []Mode{ModeSpot, ModeFutures} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, Config{Mode: mode, TickInterval: fast})
			path := "/stream?streams=btcusdt@depth@100ms/btcusdt@aggTrade"
			if mode == ModeFutures {
				path = "/public/stream?streams=btcusdt@depth@100ms"
			}
			c := dial(t, ts.wsURL(path))
			if got := c.collect(2*time.Second, 1); len(got) == 0 {
				t.Fatal("no event before Pause")
			}
			ts.Pause()
			ts.Pause() // idempotent
			c.drain(300 * time.Millisecond)
			if got := c.collect(500*time.Millisecond, 1); len(got) != 0 {
				t.Fatalf("events while paused: %v", got)
			}
			id1, _, _ := ts.Book("BTCUSDT")
			// REST keeps answering while paused, with the same book.
			base := "/api/v3"
			if mode == ModeFutures {
				base = "/fapi/v1"
			}
			if snap := getSnapshot(t, ts.httpURL(base+"/depth?symbol=BTCUSDT&limit=5")); snap.LastUpdateID != id1 {
				t.Fatalf("snapshot id %d while paused; Book says %d", snap.LastUpdateID, id1)
			}
			ts.Resume()
			if got := c.collect(2*time.Second, 1); len(got) == 0 {
				t.Fatal("no event after Resume")
			}
			if id2, _, _ := ts.Book("BTCUSDT"); id2 <= id1 {
				t.Fatalf("book id %d after Resume, %d before", id2, id1)
			}
		})
	}
}

func TestBookEqualsPausedSnapshot(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode Mode
		path string
	}{
		{ModeSpot, "/api/v3/depth?symbol=BTCUSDT&limit=5000"},
		{ModeFutures, "/fapi/v1/depth?symbol=BTCUSDT&limit=1000"},
	}
	for _, tt := range tests {
		t.Run(string(tt.mode), func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, Config{Mode: tt.mode, TickInterval: fast})
			time.Sleep(50 * time.Millisecond) // let the market move
			ts.Pause()
			time.Sleep(2 * fast) // a tick in progress ends
			snap := getSnapshot(t, ts.httpURL(tt.path))
			id, bids, asks := ts.Book("btcusdt")
			if id != snap.LastUpdateID || !slices.Equal(bids, snap.Bids) || !slices.Equal(asks, snap.Asks) {
				t.Fatalf("Book = %d, %d bids, %d asks; snapshot %d, %d bids, %d asks",
					id, len(bids), len(asks), snap.LastUpdateID, len(snap.Bids), len(snap.Asks))
			}
			if len(bids) < 50 || len(asks) < 50 {
				t.Fatalf("book too thin: %d bids, %d asks", len(bids), len(asks))
			}
			if id, b, a := ts.Book("NOPEUSDT"); id != 0 || b != nil || a != nil {
				t.Fatalf("Book(unlisted) = %d %v %v", id, b, a)
			}
		})
	}
}

// localBook is a client's book kept by Binance's procedure.
type localBook struct {
	id         int64
	bids, asks map[string]string
}

func newLocalBook(s snapshot) *localBook {
	lb := &localBook{id: s.LastUpdateID, bids: map[string]string{}, asks: map[string]string{}}
	for _, l := range s.Bids {
		lb.bids[l[0]] = l[1]
	}
	for _, l := range s.Asks {
		lb.asks[l[0]] = l[1]
	}
	return lb
}

func (lb *localBook) apply(ev diffEv) {
	set := func(side map[string]string, lv [][2]string) {
		for _, l := range lv {
			if q, _ := strconv.ParseFloat(l[1], 64); q == 0 {
				delete(side, l[0])
			} else {
				side[l[0]] = l[1]
			}
		}
	}
	set(lb.bids, ev.b)
	set(lb.asks, ev.a)
	lb.id = ev.last
}

// sorted returns a side as Book spells it.
func sorted(side map[string]string, desc bool) [][2]string {
	out := make([][2]string, 0, len(side))
	for p, q := range side {
		out = append(out, [2]string{p, q})
	}
	slices.SortFunc(out, func(x, y [2]string) int {
		a, _ := strconv.ParseFloat(x[0], 64)
		b, _ := strconv.ParseFloat(y[0], 64)
		if desc {
			a, b = b, a
		}
		switch {
		case a < b:
			return -1
		case a > b:
			return 1
		}
		return 0
	})
	return out
}

// TestBookEqualsSyncedBook keeps a book by the documented procedure
// (buffer diffs, snapshot, drop covered events, check continuity, apply)
// and checks it equals Book once the market is paused.
func TestBookEqualsSyncedBook(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode       Mode
		ws, stream string
		snap       string
		futures    bool
	}{
		{ModeSpot, "/stream?streams=btcusdt@depth@100ms", "btcusdt@depth@100ms", "/api/v3/depth?symbol=BTCUSDT&limit=5000", false},
		{ModeSpot, "/stream?streams=btcusdt@depth", "btcusdt@depth", "/api/v3/depth?symbol=BTCUSDT&limit=1000", false},
		{ModeFutures, "/public/stream?streams=btcusdt@depth@100ms", "btcusdt@depth@100ms", "/fapi/v1/depth?symbol=BTCUSDT&limit=1000", true},
		{ModeFutures, "/public/stream?streams=btcusdt@depth@500ms", "btcusdt@depth@500ms", "/fapi/v1/depth?symbol=BTCUSDT&limit=1000", true},
	}
	for _, tt := range tests {
		t.Run(string(tt.mode)+"/"+tt.stream, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, Config{Mode: tt.mode, TickInterval: fast})
			c := dial(t, ts.wsURL(tt.ws))
			buf := c.collect(3*time.Second, 1)[tt.stream]
			if len(buf) == 0 {
				t.Fatal("no diff before the snapshot")
			}
			lb := newLocalBook(getSnapshot(t, ts.httpURL(tt.snap)))
			buf = append(buf, c.collect(1500*time.Millisecond, 1<<30)[tt.stream]...)
			ts.Pause()
			buf = append(buf, c.drain(300 * time.Millisecond)[tt.stream]...)
			applied := 0
			var prev diffEv
			for _, raw := range buf {
				ev := parseDiff(t, raw)
				if ev.last < lb.id || (!tt.futures && ev.last == lb.id) {
					continue
				}
				if applied == 0 {
					if ev.first > lb.id+1 || (tt.futures && ev.first > lb.id) {
						t.Fatalf("first event U=%d u=%d does not cover snapshot %d", ev.first, ev.last, lb.id)
					}
				} else if !continuous(tt.futures, prev, ev) {
					t.Fatalf("gap without InjectGap: %+v after %+v", ev, prev)
				}
				lb.apply(ev)
				prev = ev
				applied++
			}
			if applied < 2 {
				t.Fatalf("only %d events applied", applied)
			}
			id, bids, asks := ts.Book("BTCUSDT")
			if lb.id != id {
				t.Fatalf("local id %d, Book id %d", lb.id, id)
			}
			if got := sorted(lb.bids, true); !slices.Equal(got, bids) {
				t.Fatalf("bids differ:\nlocal %v\nBook  %v", got, bids)
			}
			if got := sorted(lb.asks, false); !slices.Equal(got, asks) {
				t.Fatalf("asks differ:\nlocal %v\nBook  %v", got, asks)
			}
		})
	}
}

// TestInjectGap checks each diff-depth stream of the symbol misses one
// event after InjectGap (Spot: U > u+1; USD-M: pu != u) while other
// symbols stay continuous, and that Book keeps the withheld changes.
func TestInjectGap(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode    Mode
		path    string
		streams []string
		futures bool
	}{
		{ModeSpot, "/stream?streams=btcusdt@depth@100ms/btcusdt@depth/ethusdt@depth@100ms",
			[]string{"btcusdt@depth@100ms", "btcusdt@depth"}, false},
		{ModeFutures, "/public/stream?streams=btcusdt@depth@100ms/btcusdt@depth/btcusdt@depth@500ms/ethusdt@depth@100ms",
			[]string{"btcusdt@depth@100ms", "btcusdt@depth", "btcusdt@depth@500ms"}, true},
	}
	for _, tt := range tests {
		t.Run(string(tt.mode), func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, Config{Mode: tt.mode, TickInterval: fast})
			c := dial(t, ts.wsURL(tt.path))
			before := c.collectAll(3*time.Second, tt.streams...)
			ts.InjectGap("BTCUSDT")
			ts.InjectGap("NOPEUSDT") // ignored
			// Read until every stream has three more events.
			after := c.collectUntil(5*time.Second, func(got map[string][]json.RawMessage) bool {
				for _, s := range tt.streams {
					if len(got[s]) < 3 {
						return false
					}
				}
				return true
			})
			for _, s := range append(tt.streams, "ethusdt@depth@100ms") {
				evs := append(before[s], after[s]...)
				gaps := 0
				for k := 1; k < len(evs); k++ {
					if !continuous(tt.futures, parseDiff(t, evs[k-1]), parseDiff(t, evs[k])) {
						gaps++
					}
				}
				want := 1
				if s == "ethusdt@depth@100ms" {
					want = 0
				}
				if gaps != want {
					t.Errorf("%s: %d gaps in %d events; want %d", s, gaps, len(evs), want)
				}
			}
			// The withheld ids are in the book: the snapshot's id is past
			// every id the stream skipped.
			ts.Pause()
			c.drain(300 * time.Millisecond)
			id, _, _ := ts.Book("BTCUSDT")
			last := parseDiff(t, after[tt.streams[0]][len(after[tt.streams[0]])-1])
			if last.last > id {
				t.Fatalf("stream at u=%d, Book at %d", last.last, id)
			}
		})
	}
}

func TestRESTStatsRequests(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode  Mode
		calls []string
		want  map[string]int
	}{
		{ModeSpot, []string{"/api/v3/ping", "/api/v3/ping", "/api/v3/depth?symbol=BTCUSDT", "/api/v3/time", "/api/v3/nope", "/fapi/v1/ping"},
			map[string]int{"/api/v3/ping": 2, "/api/v3/depth": 1, "/api/v3/time": 1}},
		{ModeFutures, []string{"/fapi/v1/exchangeInfo", "/fapi/v1/depth?symbol=BTCUSDT&limit=7", "/api/v3/ping"},
			map[string]int{"/fapi/v1/exchangeInfo": 1, "/fapi/v1/depth": 1}},
	}
	for _, tt := range tests {
		t.Run(string(tt.mode), func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, Config{Mode: tt.mode, TickInterval: quiet})
			for _, p := range tt.calls {
				resp, err := http.Get(ts.httpURL(p))
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			st := ts.RESTStats()
			if fmt.Sprint(st.Requests) != fmt.Sprint(tt.want) {
				t.Fatalf("Requests = %v; want %v", st.Requests, tt.want)
			}
		})
	}
}
