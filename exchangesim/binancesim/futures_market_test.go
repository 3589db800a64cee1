package binancesim

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestFuturesPayloadFieldOrder(t *testing.T) {
	t.Parallel()
	const (
		depth      = "e E T s U u pu b a"
		bookTicker = "e u E T s b B a A"
		markPrice  = "e E s p i P r T"
		forceOrder = "e E o"
		kline      = "e E s k"
		miniTicker = "e E s c o h l v q"
		ticker     = "e E s p P w c Q o h l v q O C F L n"
	)
	tests := []struct {
		route, stream string
		keys          string
		array         bool
	}{
		{"public", "btcusdt@depth", depth, false},
		{"public", "btcusdt@depth@100ms", depth, false},
		{"public", "btcusdt@depth@500ms", depth, false},
		{"public", "btcusdt@depth5", depth, false},
		{"public", "btcusdt@depth10@100ms", depth, false},
		{"public", "btcusdt@depth20@500ms", depth, false},
		{"public", "btcusdt@bookTicker", bookTicker, false},
		{"public", "!bookTicker", bookTicker, false},
		{"market", "btcusdt@aggTrade", "e E s a p q f l T m", false},
		{"market", "btcusdt@markPrice", markPrice, false},
		{"market", "btcusdt@markPrice@1s", markPrice, false},
		{"market", "!markPrice@arr", markPrice, true},
		{"market", "!markPrice@arr@1s", markPrice, true},
		{"market", "btcusdt@kline_1m", kline, false},
		{"market", "btcusdt@miniTicker", miniTicker, false},
		{"market", "!miniTicker@arr", miniTicker, true},
		{"market", "btcusdt@ticker", ticker, false},
		{"market", "!ticker@arr", ticker, true},
		{"market", "btcusdt@forceOrder", forceOrder, false},
		{"market", "!forceOrder@arr", forceOrder, false},
	}
	ts := startFutures(t, Config{TickInterval: fast})
	byRoute := map[string][]string{}
	for _, tc := range tests {
		byRoute[tc.route] = append(byRoute[tc.route], tc.stream)
	}
	got := map[string][]json.RawMessage{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for route, names := range byRoute {
		c := dial(t, ts.wsURL("/"+route+"/stream?streams="+strings.Join(names, "/")))
		wg.Go(func() {
			// forceOrder is random: about one per 0.6s at this tick.
			msgs := c.collectAll(8*time.Second, names...)
			mu.Lock()
			defer mu.Unlock()
			for k, v := range msgs {
				got[k] = v
			}
		})
	}
	wg.Wait()
	e8 := regexp.MustCompile(`^"-?[0-9]+\.[0-9]{8}"$`)
	e8Keys := map[string][]string{
		bookTicker: {"b", "B", "a", "A"}, markPrice: {"p", "i", "P", "r"}, "e E s a p q f l T m": {"p", "q"},
		miniTicker: {"c", "o", "h", "l", "v", "q"}, ticker: {"p", "w", "c", "Q", "o", "h", "l", "v", "q"},
	}
	for _, tc := range tests {
		t.Run(tc.stream, func(t *testing.T) {
			msgs := got[tc.stream]
			if len(msgs) == 0 {
				t.Fatalf("no %s event", tc.stream)
			}
			p := msgs[0]
			if tc.array {
				var arr []json.RawMessage
				if err := json.Unmarshal(p, &arr); err != nil || len(arr) == 0 {
					t.Fatalf("not a non-empty array: %s", p)
				}
				p = arr[0]
			}
			if keys := strings.Join(jsonKeys(t, p), " "); keys != tc.keys {
				t.Errorf("keys = %s; want %s\n%s", keys, tc.keys, p)
			}
			f := fields(t, p)
			if s, ok := f["s"]; ok && !strings.HasPrefix(tc.stream, "!") && string(s) != `"BTCUSDT"` {
				t.Errorf("s = %s; want \"BTCUSDT\"", s)
			}
			for _, k := range []string{"E", "T", "u", "U", "pu"} {
				if v, ok := f[k]; ok {
					if n, err := strconv.ParseInt(string(v), 10, 64); err != nil || n <= 0 {
						t.Errorf("%s = %s; want a positive integer", k, v)
					}
				}
			}
			for _, k := range e8Keys[tc.keys] {
				if !e8.Match(f[k]) {
					t.Errorf("%s = %s; want a string with 8 decimals", k, f[k])
				}
			}
		})
	}
	t.Run("partial depth levels", func(t *testing.T) {
		for stream, n := range map[string]int{"btcusdt@depth5": 5, "btcusdt@depth10@100ms": 10, "btcusdt@depth20@500ms": 20} {
			var lv struct{ B, A [][2]string }
			f := fields(t, got[stream][0])
			json.Unmarshal(f["b"], &lv.B)
			json.Unmarshal(f["a"], &lv.A)
			if len(lv.B) != n || len(lv.A) != n {
				t.Errorf("%s: %d bids, %d asks; want %d", stream, len(lv.B), len(lv.A), n)
			}
		}
	})
	t.Run("forceOrder order", func(t *testing.T) {
		o := fields(t, got["btcusdt@forceOrder"][0])["o"]
		if keys := strings.Join(jsonKeys(t, o), " "); keys != "s S o f q p ap X l z T" {
			t.Errorf("o keys = %s; want s S o f q p ap X l z T\n%s", keys, o)
		}
	})
	t.Run("kline body", func(t *testing.T) {
		k := fields(t, got["btcusdt@kline_1m"][0])["k"]
		if keys := strings.Join(jsonKeys(t, k), " "); keys != "t T s i f L o c h l v n x q V Q B" {
			t.Errorf("k keys = %s", keys)
		}
	})
	t.Run("times in milliseconds", func(t *testing.T) {
		if e := intField(t, got["btcusdt@aggTrade"][0], "E"); len(strconv.FormatInt(e, 10)) != 13 {
			t.Errorf("E = %d; want 13 digits", e)
		}
		if tt := intField(t, got["btcusdt@markPrice"][0], "T"); tt%(8*3600*1000) != 0 {
			t.Errorf("markPrice T = %d; want a funding time (multiple of 8h)", tt)
		}
	})
}

// TestFuturesDepthChain checks pu chaining on every depth speed: each
// event's pu is the previous event's u, and (in the simulator) U = pu+1.
func TestFuturesDepthChain(t *testing.T) {
	t.Parallel()
	streams := []string{"btcusdt@depth@100ms", "btcusdt@depth", "btcusdt@depth@500ms", "btcusdt@depth5@100ms", "ethusdt@depth10"}
	ts := startFutures(t, Config{TickInterval: fast})
	c := dial(t, ts.wsURL("/public/stream?streams="+strings.Join(streams, "/")))
	got := c.collect(2*time.Second, 1<<30)
	for _, stream := range streams {
		t.Run(stream, func(t *testing.T) {
			msgs := got[stream]
			if len(msgs) < 3 {
				t.Fatalf("%d events; want >= 3", len(msgs))
			}
			var prevU int64
			for k, m := range msgs {
				U, u, pu := intField(t, m, "U"), intField(t, m, "u"), intField(t, m, "pu")
				if U > u || pu >= U {
					t.Errorf("event %d: U=%d u=%d pu=%d", k, U, u, pu)
				}
				if k > 0 && pu != prevU {
					t.Fatalf("event %d: pu=%d; want previous u %d", k, pu, prevU)
				}
				if U != pu+1 {
					t.Errorf("event %d: U=%d; want pu+1 = %d", k, U, pu+1)
				}
				prevU = u
			}
		})
	}
}

// TestFuturesBookSync runs USD-M's book-sync procedure against
// /fapi/v1/depth and @depth@100ms, checking the local book against
// depth20@100ms events with the same u.
func TestFuturesBookSync(t *testing.T) {
	t.Parallel()
	ts := startFutures(t, Config{TickInterval: fast})
	c := dial(t, ts.wsURL("/public/stream?streams=btcusdt@depth@100ms/btcusdt@depth20@100ms"))
	// Buffer from the start: the event covering the snapshot's id may be
	// the first one.
	got := c.collect(time.Second, 1)
	if len(got) == 0 {
		t.Fatal("no depth event")
	}
	resp, err := http.Get(ts.httpURL("/fapi/v1/depth?symbol=BTCUSDT&limit=1000"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if keys := strings.Join(jsonKeys(t, body), " "); keys != "lastUpdateId E T bids asks" {
		t.Fatalf("snapshot keys = %s", keys)
	}
	var snap snapshot
	if err := json.Unmarshal(body, &snap); err != nil || snap.LastUpdateID == 0 {
		t.Fatalf("snapshot: %v %s", err, body)
	}
	book := map[bool]map[string]string{true: {}, false: {}}
	for _, l := range snap.Bids {
		book[true][l[0]] = l[1]
	}
	for _, l := range snap.Asks {
		book[false][l[0]] = l[1]
	}
	last := snap.LastUpdateID
	for stream, msgs := range c.collect(1500*time.Millisecond, 1<<30) {
		got[stream] = append(got[stream], msgs...)
	}
	parts := map[int64][]byte{}
	for _, p := range got["btcusdt@depth20@100ms"] {
		parts[intField(t, p, "u")] = p
	}
	synced, compared := false, 0
	for _, m := range got["btcusdt@depth@100ms"] {
		U, u, pu := intField(t, m, "U"), intField(t, m, "u"), intField(t, m, "pu")
		if u < snap.LastUpdateID {
			continue // step 4
		}
		if !synced && !(U <= snap.LastUpdateID && u >= snap.LastUpdateID) {
			t.Fatalf("first event [%d;%d] does not cover snapshot %d", U, u, snap.LastUpdateID)
		}
		if synced && pu != last {
			t.Fatalf("gap: pu=%d after u=%d", pu, last)
		}
		synced = true
		f := fields(t, m)
		for side, key := range map[bool]string{true: "b", false: "a"} {
			var lv [][2]string
			json.Unmarshal(f[key], &lv)
			for _, l := range lv {
				if l[1] == "0.00000000" {
					delete(book[side], l[0])
				} else {
					book[side][l[0]] = l[1]
				}
			}
		}
		last = u
		if p, ok := parts[u]; ok {
			pf := fields(t, p)
			var bids, asks [][2]string
			json.Unmarshal(pf["b"], &bids)
			json.Unmarshal(pf["a"], &asks)
			if want, have := levelsString(bids), topLevels(book[true], true, 20); want != have {
				t.Fatalf("bids at %d:\n local   %s\n depth20 %s", u, have, want)
			}
			if want, have := levelsString(asks), topLevels(book[false], false, 20); want != have {
				t.Fatalf("asks at %d:\n local   %s\n depth20 %s", u, have, want)
			}
			compared++
		}
	}
	if compared < 3 {
		t.Errorf("compared the local book %d times; want >= 3", compared)
	}
}
