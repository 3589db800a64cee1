package binancesim

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fast is a TickInterval that makes "1000ms" streams push every 100ms.
const fast = 10 * time.Millisecond

func TestPayloadFieldOrder(t *testing.T) {
	tests := []struct {
		stream string
		keys   string
	}{
		{"btcusdt@trade", "e E s t p q T m M"},
		{"btcusdt@aggTrade", "e E s a p q f l T m M"},
		{"btcusdt@bookTicker", "u s b B a A"},
		{"btcusdt@depth5", "lastUpdateId bids asks"},
		{"btcusdt@depth10@100ms", "lastUpdateId bids asks"},
		{"btcusdt@depth", "e E s U u b a"},
		{"btcusdt@depth@100ms", "e E s U u b a"},
		{"btcusdt@miniTicker", "e E s c o h l v q"},
		{"btcusdt@ticker", "e E s p P w x c Q b B a A o h l v q O C F L n"},
		{"btcusdt@avgPrice", "e E s i w T"},
		{"btcusdt@kline_1s", "e E s k"},
		{"btcusdt@kline_1m@+08:00", "e E s k"},
	}
	names := make([]string, len(tests))
	for k, tc := range tests {
		names[k] = tc.stream
	}
	ts := startServer(t, Config{TickInterval: fast})
	c := dial(t, ts.wsURL("/stream?streams="+strings.Join(names, "/")+"/!miniTicker@arr"))
	got := c.collectAll(5*time.Second, append(names, "!miniTicker@arr")...)
	for _, tc := range tests {
		t.Run(tc.stream, func(t *testing.T) {
			msgs := got[tc.stream]
			if len(msgs) == 0 {
				t.Fatalf("no %s event in 5s", tc.stream)
			}
			if keys := strings.Join(jsonKeys(t, msgs[0]), " "); keys != tc.keys {
				t.Errorf("keys = %s; want %s\n%s", keys, tc.keys, msgs[0])
			}
		})
	}
	t.Run("kline body", func(t *testing.T) {
		var ev struct{ K json.RawMessage }
		if err := json.Unmarshal(got["btcusdt@kline_1s"][0], &ev); err != nil {
			t.Fatal(err)
		}
		want := "t T s i f L o c h l v n x q V Q B"
		if keys := strings.Join(jsonKeys(t, ev.K), " "); keys != want {
			t.Errorf("k keys = %s; want %s", keys, want)
		}
	})
	t.Run("!miniTicker@arr", func(t *testing.T) {
		var arr []json.RawMessage
		if err := json.Unmarshal(got["!miniTicker@arr"][0], &arr); err != nil || len(arr) == 0 {
			t.Fatalf("not a non-empty array: %s", got["!miniTicker@arr"][0])
		}
	})
	t.Run("number formats", func(t *testing.T) {
		var tr map[string]any
		json.Unmarshal(got["btcusdt@trade"][0], &tr)
		e8 := regexp.MustCompile(`^[0-9]+\.[0-9]{8}$`)
		for _, k := range []string{"p", "q"} {
			if s, ok := tr[k].(string); !ok || !e8.MatchString(s) {
				t.Errorf("%s = %#v; want a string with 8 decimals", k, tr[k])
			}
		}
		for _, k := range []string{"E", "T", "t"} {
			if _, ok := tr[k].(float64); !ok {
				t.Errorf("%s = %#v; want a number", k, tr[k])
			}
		}
	})
}

func TestRawAndCombined(t *testing.T) {
	ts := startServer(t, Config{TickInterval: fast, MaxMessagesPerSecond: 100})
	raw := dial(t, ts.wsURL("/ws/btcusdt@trade"))
	if p := raw.data(3 * time.Second); !strings.HasPrefix(string(p), `{"e":"trade","E":`) {
		t.Errorf("raw payload %s", p)
	}
	comb := dial(t, ts.wsURL("/stream?streams=btcusdt@trade"))
	if p := comb.data(3 * time.Second); !strings.HasPrefix(string(p), `{"stream":"btcusdt@trade","data":{"e":"trade","E":`) {
		t.Errorf("combined payload %s", p)
	}
	// SET_PROPERTY switches live: every frame after the reply is wrapped.
	if got := raw.call(`{"method":"SET_PROPERTY","params":["combined",true],"id":1}`); got != `{"result":null,"id":1}` {
		t.Fatalf("SET_PROPERTY = %s", got)
	}
	for range 3 {
		if p := raw.data(3 * time.Second); !strings.HasPrefix(string(p), `{"stream":"btcusdt@trade","data":{"e":"trade"`) {
			t.Errorf("after SET_PROPERTY true: %s", p)
		}
	}
	if got := comb.call(`{"method":"SET_PROPERTY","params":["combined",false],"id":2}`); got != `{"result":null,"id":2}` {
		t.Fatalf("SET_PROPERTY = %s", got)
	}
	for range 3 {
		if p := comb.data(3 * time.Second); !strings.HasPrefix(string(p), `{"e":"trade"`) {
			t.Errorf("after SET_PROPERTY false: %s", p)
		}
	}
}

type tradeEv struct {
	T  int64  `json:"t"`
	P  string `json:"p"`
	Q  string `json:"q"`
	Tt int64  `json:"T"`
}

func TestTradeIDsConsecutive(t *testing.T) {
	ts := startServer(t, Config{TickInterval: fast})
	url := ts.wsURL("/stream?streams=btcusdt@trade/btcusdt@aggTrade/ethusdt@trade")
	a, b := dial(t, url), dial(t, url)
	gotA, gotB := a.collect(2*time.Second, 300), b.collect(2*time.Second, 300)
	seen := map[string]map[int64]tradeEv{}
	ids := map[string]map[int64]bool{"a": {}, "b": {}}
	for who, got := range map[string]map[string][]json.RawMessage{"a": gotA, "b": gotB} {
		for _, stream := range []string{"btcusdt@trade", "ethusdt@trade"} {
			msgs := got[stream]
			if len(msgs) < 10 {
				t.Fatalf("%s: %d %s events; want >= 10", who, len(msgs), stream)
			}
			if seen[stream] == nil {
				seen[stream] = map[int64]tradeEv{}
			}
			var prev int64
			for k, m := range msgs {
				var tr tradeEv
				if err := json.Unmarshal(m, &tr); err != nil {
					t.Fatal(err)
				}
				if k > 0 && tr.T != prev+1 {
					t.Fatalf("%s %s: trade id %d after %d", who, stream, tr.T, prev)
				}
				prev = tr.T
				if other, ok := seen[stream][tr.T]; ok && other != tr {
					t.Errorf("%s: trade %d differs between connections: %+v vs %+v", stream, tr.T, tr, other)
				}
				seen[stream][tr.T] = tr
				if stream == "btcusdt@trade" {
					ids[who][tr.T] = true
				}
			}
		}
		var prevAgg struct{ a, l int64 }
		for k, m := range got["btcusdt@aggTrade"] {
			var ag struct {
				A, F, L int64
			}
			json.Unmarshal(m, &ag)
			if ag.F > ag.L {
				t.Errorf("aggTrade f %d > l %d", ag.F, ag.L)
			}
			if k > 0 && (ag.A != prevAgg.a+1 || ag.F != prevAgg.l+1) {
				t.Fatalf("%s: aggTrade a=%d f=%d after a=%d l=%d", who, ag.A, ag.F, prevAgg.a, prevAgg.l)
			}
			prevAgg.a, prevAgg.l = ag.A, ag.L
		}
	}
	// Both connections were open at the same time, so they must have seen
	// some of the same trades, with the same content (checked above).
	shared := 0
	for id := range ids["a"] {
		if ids["b"][id] {
			shared++
		}
	}
	if shared == 0 {
		t.Error("the two connections saw no common btcusdt trade id")
	}
}

type depthEv struct {
	U, Lu int64
	B, A  [][2]string
}

func (d *depthEv) UnmarshalJSON(p []byte) error {
	var raw struct {
		U  int64       `json:"U"`
		Lu int64       `json:"u"`
		B  [][2]string `json:"b"`
		A  [][2]string `json:"a"`
	}
	err := json.Unmarshal(p, &raw)
	d.U, d.Lu, d.B, d.A = raw.U, raw.Lu, raw.B, raw.A
	return err
}

type snapshot struct {
	LastUpdateID int64       `json:"lastUpdateId"`
	Bids         [][2]string `json:"bids"`
	Asks         [][2]string `json:"asks"`
}

func TestDepthChaining(t *testing.T) {
	ts := startServer(t, Config{TickInterval: fast})
	c := dial(t, ts.wsURL("/stream?streams=btcusdt@depth@100ms/btcusdt@depth/btcusdt@bookTicker/btcusdt@depth5@100ms/btcusdt@depth20"))
	got := c.collect(1500*time.Millisecond, 1<<30)
	for _, stream := range []string{"btcusdt@depth@100ms", "btcusdt@depth"} {
		msgs := got[stream]
		if len(msgs) < 5 {
			t.Fatalf("%d %s events; want >= 5", len(msgs), stream)
		}
		var prev depthEv
		for k, m := range msgs {
			var d depthEv
			if err := json.Unmarshal(m, &d); err != nil {
				t.Fatal(err)
			}
			if d.U > d.Lu || len(d.B)+len(d.A) == 0 {
				t.Errorf("%s: bad event U=%d u=%d with %d levels", stream, d.U, d.Lu, len(d.B)+len(d.A))
			}
			if k > 0 && d.U != prev.Lu+1 {
				t.Fatalf("%s: U=%d after u=%d; want U = u+1", stream, d.U, prev.Lu)
			}
			prev = d
		}
	}
	nonDecreasing := func(stream, field string, want int) {
		msgs := got[stream]
		if len(msgs) < 3 {
			t.Fatalf("%d %s events; want >= 3", len(msgs), stream)
		}
		var prev int64
		for _, m := range msgs {
			var v map[string]json.RawMessage
			json.Unmarshal(m, &v)
			id, _ := strconv.ParseInt(string(v[field]), 10, 64)
			if id < prev {
				t.Errorf("%s: %s %d after %d", stream, field, id, prev)
			}
			prev = id
			if want > 0 {
				var s snapshot
				json.Unmarshal(m, &s)
				if len(s.Bids) != want || len(s.Asks) != want {
					t.Errorf("%s: %d bids, %d asks; want %d", stream, len(s.Bids), len(s.Asks), want)
				}
			}
		}
	}
	nonDecreasing("btcusdt@bookTicker", "u", 0)
	nonDecreasing("btcusdt@depth5@100ms", "lastUpdateId", 5)
	nonDecreasing("btcusdt@depth20", "lastUpdateId", 20)
}

// TestBookSync runs Spot's book-sync procedure: buffer diffs, fetch a REST
// snapshot, apply, then check the local book against partial depth
// snapshots carrying the same update id.
func TestBookSync(t *testing.T) {
	ts := startServer(t, Config{TickInterval: fast})
	c := dial(t, ts.wsURL("/stream?streams=btcusdt@depth@100ms/btcusdt@depth20@100ms"))
	first := c.collect(time.Second, 1)
	if len(first["btcusdt@depth@100ms"])+len(first["btcusdt@depth20@100ms"]) == 0 {
		t.Fatal("no depth event")
	}
	resp, err := http.Get(ts.httpURL("/api/v3/depth?symbol=BTCUSDT&limit=5000"))
	if err != nil {
		t.Fatal(err)
	}
	var snap snapshot
	err = json.NewDecoder(resp.Body).Decode(&snap)
	resp.Body.Close()
	if err != nil || snap.LastUpdateID == 0 {
		t.Fatalf("snapshot: %v %+v", err, snap)
	}
	book := map[bool]map[string]string{true: {}, false: {}}
	for _, l := range snap.Bids {
		book[true][l[0]] = l[1]
	}
	for _, l := range snap.Asks {
		book[false][l[0]] = l[1]
	}
	id := snap.LastUpdateID
	got := c.collect(1500*time.Millisecond, 1<<30)
	synced, compared := false, 0
	parts := map[int64]snapshot{}
	for _, p := range got["btcusdt@depth20@100ms"] {
		var s snapshot
		json.Unmarshal(p, &s)
		parts[s.LastUpdateID] = s
	}
	for _, m := range got["btcusdt@depth@100ms"] {
		var d depthEv
		json.Unmarshal(m, &d)
		if d.Lu <= id {
			continue
		}
		if !synced && (d.U > id+1 || d.Lu < id+1) {
			t.Fatalf("first event [%d;%d] does not cover snapshot %d+1", d.U, d.Lu, id)
		}
		if synced && d.U != id+1 {
			t.Fatalf("gap: U=%d after %d", d.U, id)
		}
		synced = true
		for side, lv := range map[bool][][2]string{true: d.B, false: d.A} {
			for _, l := range lv {
				if l[1] == "0.00000000" {
					delete(book[side], l[0])
				} else {
					book[side][l[0]] = l[1]
				}
			}
		}
		id = d.Lu
		if s, ok := parts[id]; ok {
			if want, have := levelsString(s.Bids), topLevels(book[true], true, 20); want != have {
				t.Fatalf("bids at %d:\n local %s\n depth20 %s", id, have, want)
			}
			if want, have := levelsString(s.Asks), topLevels(book[false], false, 20); want != have {
				t.Fatalf("asks at %d:\n local %s\n depth20 %s", id, have, want)
			}
			compared++
		}
	}
	if compared < 3 {
		t.Errorf("compared the local book %d times; want >= 3", compared)
	}
}

func levelsString(lv [][2]string) string {
	parts := make([]string, len(lv))
	for k, l := range lv {
		parts[k] = l[0] + "@" + l[1]
	}
	return strings.Join(parts, " ")
}

func topLevels(side map[string]string, bid bool, n int) string {
	type pl struct {
		p float64
		l [2]string
	}
	var all []pl
	for p, q := range side {
		f, _ := strconv.ParseFloat(p, 64)
		all = append(all, pl{f, [2]string{p, q}})
	}
	slices.SortFunc(all, func(x, y pl) int {
		if bid {
			x, y = y, x
		}
		switch {
		case x.p < y.p:
			return -1
		case x.p > y.p:
			return 1
		}
		return 0
	})
	var lv [][2]string
	for k := 0; k < n && k < len(all); k++ {
		lv = append(lv, all[k].l)
	}
	return levelsString(lv)
}

func TestTimeUnit(t *testing.T) {
	ts := startServer(t, Config{TickInterval: fast})
	tests := []struct {
		query  string
		digits int // 0: handshake refused
	}{
		{"", 13},
		{"&timeUnit=MILLISECOND", 13},
		{"&timeUnit=millisecond", 13},
		{"&timeUnit=MICROSECOND", 16},
		{"&timeUnit=microsecond", 16},
		{"&timeUnit=Microsecond", 0},
		{"&timeUnit=NANOSECOND", 0},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			url := ts.wsURL("/stream?streams=btcusdt@trade/btcusdt@kline_1s" + tc.query)
			if tc.digits == 0 {
				if _, err := tryDial(t, url); err == nil || !strings.Contains(err.Error(), "400") {
					t.Errorf("dial = %v; want HTTP 400", err)
				}
				return
			}
			c := dial(t, url)
			got := c.collectAll(5*time.Second, "btcusdt@trade", "btcusdt@kline_1s")
			var tr struct{ E, T int64 }
			json.Unmarshal(got["btcusdt@trade"][0], &tr)
			var kl struct {
				E int64
				K struct{ T, Tt int64 } `json:"k"`
			}
			json.Unmarshal(got["btcusdt@kline_1s"][0], &kl)
			for name, v := range map[string]int64{"trade E": tr.E, "trade T": tr.T, "kline E": kl.E} {
				if n := len(strconv.FormatInt(v, 10)); n != tc.digits {
					t.Errorf("%s = %d has %d digits; want %d", name, v, n, tc.digits)
				}
			}
		})
	}
}

func TestExchangeInfo(t *testing.T) {
	ts := startServer(t, Config{TickInterval: quiet, Symbols: []string{"BTCUSDT", "ETHBTC", "BNBFDUSD", "ADAEUR"}})
	resp, err := http.Get(ts.httpURL("/api/v3/exchangeInfo"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var info struct {
		Timezone        string
		ServerTime      int64
		RateLimits      []any
		ExchangeFilters []any
		Symbols         []struct{ Symbol, Status, BaseAsset, QuoteAsset string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		t.Fatal(err)
	}
	if info.Timezone != "UTC" || info.ServerTime == 0 || info.RateLimits == nil || info.ExchangeFilters == nil {
		t.Errorf("header fields: %+v", info)
	}
	want := [][3]string{{"BTCUSDT", "BTC", "USDT"}, {"ETHBTC", "ETH", "BTC"}, {"BNBFDUSD", "BNB", "FDUSD"}, {"ADAEUR", "ADA", "EUR"}}
	if len(info.Symbols) != len(want) {
		t.Fatalf("%d symbols; want %d", len(info.Symbols), len(want))
	}
	for k, w := range want {
		s := info.Symbols[k]
		if s.Symbol != w[0] || s.BaseAsset != w[1] || s.QuoteAsset != w[2] || s.Status != "TRADING" {
			t.Errorf("symbol %d = %+v; want %v TRADING", k, s, w)
		}
	}
	for path, status := range map[string]int{
		"/api/v3/exchangeInfo?symbol=ETHBTC":                200,
		`/api/v3/exchangeInfo?symbols=["BTCUSDT","ADAEUR"]`: 200,
		"/api/v3/exchangeInfo?symbol=XYZUSDT":               400,
		"/api/v3/exchangeInfo?symbol=btcusdt":               400,
		"/api/v3/depth?symbol=BTCUSDT&limit=5":              200,
		"/api/v3/depth?symbol=BTCUSDT&limit=0":              400,
		"/api/v3/depth?limit=5":                             400,
		"/api/v3/time":                                      200,
		"/api/v3/ping":                                      200,
		"/api/v3/nothing":                                   404,
	} {
		resp, err := http.Get(ts.httpURL(path))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != status {
			t.Errorf("GET %s = %d; want %d", path, resp.StatusCode, status)
		}
	}
}
