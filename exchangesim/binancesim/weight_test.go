package binancesim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for the REST limits.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// restResp is one REST answer.
type restResp struct {
	status     int
	used       string
	retryAfter string
	body       string
}

func restGet(t *testing.T, url string) restResp {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return restResp{resp.StatusCode, resp.Header.Get("X-MBX-USED-WEIGHT-1M"), resp.Header.Get("Retry-After"), string(b)}
}

func TestRESTWeights(t *testing.T) {
	t.Parallel()
	for _, mode := range []Mode{ModeSpot, ModeFutures} {
		cases := map[Mode][]struct {
			path   string
			weight int
		}{
			ModeSpot: {
				{"/api/v3/ping", 1}, {"/api/v3/time", 1}, {"/api/v3/exchangeInfo", 20},
				{"/api/v3/depth?symbol=BTCUSDT", 5}, {"/api/v3/depth?symbol=BTCUSDT&limit=100", 5},
				{"/api/v3/depth?symbol=BTCUSDT&limit=101", 25}, {"/api/v3/depth?symbol=BTCUSDT&limit=1000", 50},
				{"/api/v3/depth?symbol=BTCUSDT&limit=5000", 250},
			},
			ModeFutures: {
				{"/fapi/v1/ping", 1}, {"/fapi/v1/time", 1}, {"/fapi/v1/exchangeInfo", 1},
				{"/fapi/v1/depth?symbol=BTCUSDT", 10}, {"/fapi/v1/depth?symbol=BTCUSDT&limit=50", 2},
				{"/fapi/v1/depth?symbol=BTCUSDT&limit=100", 5}, {"/fapi/v1/depth?symbol=BTCUSDT&limit=1000", 20},
			},
		}[mode]
		t.Run(string(mode), func(t *testing.T) {
			clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			ts := startServerWith(t, Config{Mode: mode, TickInterval: quiet}, func(s *Server) { s.clock = clk.Now })
			used := 0
			for _, c := range cases {
				used += c.weight
				r := restGet(t, ts.httpURL(c.path))
				if r.status != 200 || r.used != strconv.Itoa(used) {
					t.Errorf("%s: status %d, used %q; want 200, %d", c.path, r.status, r.used, used)
				}
			}
			if st := ts.RESTStats(); st.Weight != used || st.Status429 != 0 {
				t.Errorf("RESTStats = %+v; want weight %d", st, used)
			}
			clk.add(time.Minute) // a new wall-clock minute resets the window
			if r := restGet(t, ts.httpURL(cases[0].path)); r.used != "1" {
				t.Errorf("after a minute: used %q; want 1", r.used)
			}
		})
	}
}

func TestRESTLimitAndBans(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 50, 0, time.UTC)}
	ts := startServerWith(t, Config{TickInterval: quiet, RESTWeightLimit: 3, BanDuration: 5 * time.Second}, func(s *Server) { s.clock = clk.Now })
	ping := ts.httpURL("/api/v3/ping")
	banMsg := func(until time.Time) string {
		return fmt.Sprintf(`{"code":-1003,"msg":"Way too much request weight used; IP banned until %d. Please use the websocket for live updates to avoid bans."}`, until.UnixMilli())
	}
	const tooMany = `{"code":-1003,"msg":"Too many requests; current limit of IP(127.0.0.1) is 3 requests per minute. Please use the websocket for live updates to avoid polling the API."}`
	for range 3 {
		if r := restGet(t, ping); r.status != 200 {
			t.Fatalf("within limit: %+v", r)
		}
	}
	steps := []struct {
		name    string
		advance time.Duration
		want    restResp
	}{
		{"over the limit", 0, restResp{429, "4", "10", tooMany}},
		{"during Retry-After", time.Second, restResp{418, "4", "5", banMsg(clk.Now().Add(6 * time.Second))}},
		{"during the ban", 2 * time.Second, restResp{418, "4", "3", banMsg(clk.Now().Add(6 * time.Second))}},
		// 0:00:57: the ban is over, the minute's weight still spent.
		{"after the ban", 4 * time.Second, restResp{429, "5", "3", tooMany}},
		{"escalated ban", 0, restResp{418, "5", "10", banMsg(clk.Now().Add(7*time.Second + 10*time.Second))}},
	}
	for _, st := range steps {
		clk.add(st.advance)
		if r := restGet(t, ping); r != st.want {
			t.Errorf("%s: got %+v; want %+v", st.name, r, st.want)
		}
	}
	st := ts.RESTStats()
	if st.Status429 != 2 || st.Status418 != 3 || st.Requests["/api/v3/ping"] != 8 || st.DuringBackoff != 3 {
		t.Errorf("RESTStats = %+v", st)
	}
}

func TestThrottleAndBanKnobs(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	ts := startServerWith(t, Config{Mode: ModeFutures, TickInterval: quiet, StrictBook: true}, func(s *Server) { s.clock = clk.Now })
	tm := ts.httpURL("/fapi/v1/time")
	ts.Throttle(3 * time.Second)
	for _, want := range []string{"3", "2"} {
		if r := restGet(t, tm); r.status != 429 || r.retryAfter != want {
			t.Errorf("throttled: %+v; want 429 Retry-After %s", r, want)
		}
		clk.add(time.Second)
	}
	clk.add(2 * time.Second)
	if r := restGet(t, tm); r.status != 200 {
		t.Errorf("after throttle: %+v", r)
	}
	ts.Ban(time.Minute)
	if r := restGet(t, tm); r.status != 418 || r.retryAfter != "60" {
		t.Errorf("banned: %+v", r)
	}
	clk.add(time.Minute)
	if r := restGet(t, tm); r.status != 200 {
		t.Errorf("after ban: %+v", r)
	}
	st := ts.RESTStats()
	if st.Status429 != 2 || st.Status418 != 1 || st.DuringBackoff != 1 || st.Violations != 1 {
		t.Errorf("RESTStats = %+v", st)
	}
	if ts.Violations() != 1 {
		t.Errorf("Violations() = %d; want 1 (StrictBook)", ts.Violations())
	}
}

func TestStrictBookSnapshots(t *testing.T) {
	t.Parallel()
	ts := startServer(t, Config{TickInterval: quiet, StrictBook: true})
	depth := ts.httpURL("/api/v3/depth?symbol=BTCUSDT")
	restGet(t, depth) // no subscription
	c := dial(t, ts.wsURL("/ws/btcusdt@depth@100ms"))
	_ = c
	for range 11 {
		if r := restGet(t, depth); r.status != 200 {
			t.Fatalf("depth: %+v", r)
		}
	}
	st := ts.RESTStats()
	if st.NoStream != 1 || st.TooManySnapshots != 2 || st.Violations != 3 {
		t.Errorf("RESTStats = %+v; want NoStream 1, TooManySnapshots 2", st)
	}
}

// depthEvent is a diff-depth event.
type depthEvent struct {
	U, U2, PU int64
	B, A      [][2]string
}

func parseDepth(t *testing.T, p []byte) depthEvent {
	t.Helper()
	var e struct {
		U  int64       `json:"U"`
		U2 int64       `json:"u"`
		PU int64       `json:"pu"`
		B  [][2]string `json:"b"`
		A  [][2]string `json:"a"`
	}
	if err := json.Unmarshal(p, &e); err != nil {
		t.Fatalf("depth event %s: %v", p, err)
	}
	return depthEvent{e.U, e.U2, e.PU, e.B, e.A}
}

func TestInjectGap(t *testing.T) {
	t.Parallel()
	cases := []struct {
		mode    Mode
		path    string
		streams []string
	}{
		{ModeSpot, "/stream?streams=btcusdt@depth/btcusdt@depth@100ms", []string{"btcusdt@depth", "btcusdt@depth@100ms"}},
		{ModeFutures, "/public/stream?streams=btcusdt@depth/btcusdt@depth@100ms/btcusdt@depth@500ms", []string{"btcusdt@depth", "btcusdt@depth@100ms", "btcusdt@depth@500ms"}},
	}
	for _, tc := range cases {
		t.Run(string(tc.mode), func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, Config{Mode: tc.mode, TickInterval: 5 * time.Millisecond, Symbols: []string{"BTCUSDT"}})
			c := dial(t, ts.wsURL(tc.path))
			last := map[string]int64{}
			for name, evs := range c.collectAll(5*time.Second, tc.streams...) {
				last[name] = parseDepth(t, evs[len(evs)-1]).U2
			}
			ts.InjectGap("BTCUSDT")
			// Read until every stream showed a discontinuity.
			gapped := map[string]bool{}
			deadline := time.Now().Add(10 * time.Second)
			for len(gapped) < len(tc.streams) && time.Now().Before(deadline) {
				for name, evs := range c.collect(500*time.Millisecond, 1) {
					for _, raw := range evs {
						e := parseDepth(t, raw)
						if prev, ok := last[name]; ok {
							broken := e.U != prev+1
							if tc.mode == ModeFutures {
								broken = e.PU != prev
							}
							if broken {
								gapped[name] = true
							}
						}
						last[name] = e.U2
					}
				}
			}
			for _, name := range tc.streams {
				if !gapped[name] {
					t.Errorf("%s: no gap seen", name)
				}
			}
		})
	}
}

// TestPauseBook checks that Pause stops the events, and that Book equals
// a REST snapshot taken while paused and a book kept from a snapshot and
// diffs by Binance's procedure.
func TestPauseBook(t *testing.T) {
	t.Parallel()
	ts := startServer(t, Config{TickInterval: 5 * time.Millisecond, Symbols: []string{"BTCUSDT"}})
	c := dial(t, ts.wsURL("/ws/btcusdt@depth@100ms"))
	first := parseDepth(t, c.data(5*time.Second))
	var snap struct {
		LastUpdateID int64       `json:"lastUpdateId"`
		Bids         [][2]string `json:"bids"`
		Asks         [][2]string `json:"asks"`
	}
	r := restGet(t, ts.httpURL("/api/v3/depth?symbol=BTCUSDT&limit=5000"))
	if err := json.Unmarshal([]byte(r.body), &snap); err != nil || snap.LastUpdateID < first.U {
		t.Fatalf("snapshot %v %d < U %d", err, snap.LastUpdateID, first.U)
	}
	bids, asks := map[string]string{}, map[string]string{}
	for _, l := range snap.Bids {
		bids[l[0]] = l[1]
	}
	for _, l := range snap.Asks {
		asks[l[0]] = l[1]
	}
	id := snap.LastUpdateID
	apply := func(e depthEvent) {
		if e.U2 <= id {
			return
		}
		if e.U > id+1 {
			t.Fatalf("gap: U %d after %d", e.U, id)
		}
		for _, side := range []struct {
			m  map[string]string
			lv [][2]string
		}{{bids, e.B}, {asks, e.A}} {
			for _, l := range side.lv {
				if l[1] == "0.00000000" {
					delete(side.m, l[0])
				} else {
					side.m[l[0]] = l[1]
				}
			}
		}
		id = e.U2
	}
	apply(first)
	time.Sleep(50 * time.Millisecond)
	ts.Pause()
	lastID, wantBids, wantAsks := ts.Book("BTCUSDT")
	for id < lastID {
		apply(parseDepth(t, c.data(5*time.Second)))
	}
	if _, err := c.next(100 * time.Millisecond); err == nil {
		t.Errorf("an event arrived while paused")
	}
	if id != lastID || len(bids) != len(wantBids) || len(asks) != len(wantAsks) {
		t.Fatalf("kept book id %d, %d/%d levels; Book id %d, %d/%d", id, len(bids), len(asks), lastID, len(wantBids), len(wantAsks))
	}
	for _, l := range wantBids {
		if bids[l[0]] != l[1] {
			t.Errorf("bid %s: kept %q, Book %q", l[0], bids[l[0]], l[1])
		}
	}
	for _, l := range wantAsks {
		if asks[l[0]] != l[1] {
			t.Errorf("ask %s: kept %q, Book %q", l[0], asks[l[0]], l[1])
		}
	}
	r = restGet(t, ts.httpURL("/api/v3/depth?symbol=BTCUSDT&limit=5000"))
	want, _ := json.Marshal(map[string]any{"lastUpdateId": lastID, "bids": wantBids, "asks": wantAsks})
	var got, exp any
	json.Unmarshal([]byte(r.body), &got)
	json.Unmarshal(want, &exp)
	if fmt.Sprint(got) != fmt.Sprint(exp) {
		t.Errorf("REST snapshot while paused differs from Book")
	}
	ts.Resume()
	c.data(5 * time.Second)
}
