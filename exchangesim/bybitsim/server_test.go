package bybitsim_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/marketgate/marketgate/exchangesim/bybitsim"
	"github.com/marketgate/marketgate/exchangesim/bybitsim/simtest"
)

// client is a test WebSocket client.
type client struct {
	t  *testing.T
	nc net.Conn
}

func dial(t *testing.T, addr string, p bybitsim.Product) *client {
	t.Helper()
	nc, _, _, err := ws.Dial(context.Background(), "ws://"+addr+p.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc}
}

func (c *client) send(s string) {
	c.t.Helper()
	if err := wsutil.WriteClientText(c.nc, []byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

// msg is any message of the simulator.
type msg struct {
	Topic   string          `json:"topic"`
	Type    string          `json:"type"`
	TS      int64           `json:"ts"`
	Data    json.RawMessage `json:"data"`
	Success *bool           `json:"success"`
	RetMsg  string          `json:"ret_msg"`
	ReqID   string          `json:"req_id"`
	Op      string          `json:"op"`
	raw     string
}

// next reads the next text message within 5 s.
func (c *client) next() (msg, error) {
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	p, err := wsutil.ReadServerText(c.nc)
	if err != nil {
		return msg{}, err
	}
	var m msg
	if err := json.Unmarshal(p, &m); err != nil {
		c.t.Fatalf("simulator sent %s: %v", p, err)
	}
	m.raw = string(p)
	return m, nil
}

// reply reads until a reply (success set) arrives.
func (c *client) reply() msg {
	c.t.Helper()
	for {
		m, err := c.next()
		if err != nil {
			c.t.Fatal(err)
		}
		if m.Success != nil {
			return m
		}
	}
}

func TestInstruments(t *testing.T) {
	_, addr := simtest.Start(t, bybitsim.Config{Product: bybitsim.ProductLinear, Symbols: []string{"BTCUSDT", "ETHUSDT"}})
	get := func(q string) map[string]any {
		res, err := http.Get("http://" + addr + "/v5/market/instruments-info?" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var v map[string]any
		if err := json.NewDecoder(res.Body).Decode(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	v := get("category=linear&limit=1000")
	list := v["result"].(map[string]any)["list"].([]any)
	if v["retCode"].(float64) != 0 || len(list) != 3 {
		t.Fatalf("%v", v)
	}
	if st := list[2].(map[string]any); st["symbol"] != "DELISTEDUSDT" || st["status"] != "Closed" {
		t.Fatalf("%v", st)
	}
	if v := get("category=spot"); v["retCode"].(float64) != 10001 {
		t.Fatalf("wrong category: %v", v)
	}
}

func TestInstrumentPages(t *testing.T) {
	_, addr := simtest.Start(t, bybitsim.Config{Product: bybitsim.ProductLinear, MaxPageSize: 2,
		Symbols: []string{"AUSDT", "BUSDT", "CUSDT", "DUSDT"}})
	type page struct {
		RetCode int `json:"retCode"`
		Result  struct {
			List []struct {
				Symbol string `json:"symbol"`
			} `json:"list"`
			NextPageCursor string `json:"nextPageCursor"`
		} `json:"result"`
	}
	get := func(q string) page {
		res, err := http.Get("http://" + addr + "/v5/market/instruments-info?category=linear" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var p page
		if err := json.NewDecoder(res.Body).Decode(&p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var got []string
	cursor, pages := "", 0
	for {
		q := "&limit=1000"
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		p := get(q)
		if p.RetCode != 0 {
			t.Fatalf("page %d: retCode %d", pages, p.RetCode)
		}
		pages++
		for _, s := range p.Result.List {
			got = append(got, s.Symbol)
		}
		if cursor = p.Result.NextPageCursor; cursor == "" {
			break
		}
		if pages > 10 {
			t.Fatal("the cursor never ends")
		}
	}
	if want := "AUSDT BUSDT CUSDT DUSDT DELISTEDUSDT"; strings.Join(got, " ") != want || pages != 3 {
		t.Fatalf("%d pages of %q; want 3 of %q", pages, got, want)
	}
	for _, q := range []string{"&limit=0", "&limit=1001", "&limit=x", "&cursor=bogus", "&cursor=next:99"} {
		if p := get(q); p.RetCode != 10001 {
			t.Errorf("%s: retCode %d; want 10001", q, p.RetCode)
		}
	}
}

// book is a client's order book, kept from snapshots and deltas.
type book struct {
	side [2]map[string]string
	u    int64
}

func (b *book) apply(t *testing.T, m msg) {
	var d struct {
		B, A [][2]string
		U    int64 `json:"u"`
		Seq  int64 `json:"seq"`
	}
	if err := json.Unmarshal(m.Data, &d); err != nil {
		t.Fatal(err)
	}
	switch m.Type {
	case "snapshot":
		b.side = [2]map[string]string{{}, {}}
	case "delta":
		if b.side[0] == nil {
			t.Fatalf("delta before snapshot: %s", m.raw)
		}
		if d.U != b.u+1 {
			t.Fatalf("u %d after %d", d.U, b.u)
		}
	default:
		t.Fatalf("type %q", m.Type)
	}
	b.u = d.U
	for i, levels := range [2][][2]string{d.B, d.A} {
		for _, l := range levels {
			if l[1] == "0" || strings.Trim(l[1], "0.") == "" {
				if _, ok := b.side[i][l[0]]; !ok && m.Type == "delta" {
					t.Fatalf("delete of absent level %s: %s", l[0], m.raw)
				}
				delete(b.side[i], l[0])
				continue
			}
			b.side[i][l[0]] = l[1]
		}
	}
	best := func(i int, better func(a, b float64) bool) float64 {
		var v float64
		first := true
		for p := range b.side[i] {
			f, _ := strconv.ParseFloat(p, 64)
			if first || better(f, v) {
				v, first = f, false
			}
		}
		return v
	}
	bb := best(0, func(a, b float64) bool { return a > b })
	ba := best(1, func(a, b float64) bool { return a < b })
	if len(b.side[0]) > 50 || len(b.side[1]) > 50 || bb >= ba {
		t.Fatalf("book of %d/%d levels, best %v/%v", len(b.side[0]), len(b.side[1]), bb, ba)
	}
}

func TestSpotStreams(t *testing.T) {
	srv, addr := simtest.Start(t, bybitsim.Config{TickInterval: 10 * time.Millisecond})
	c := dial(t, addr, bybitsim.ProductSpot)
	c.send(`{"req_id":"1","op":"subscribe","args":["publicTrade.BTCUSDT","tickers.BTCUSDT","orderbook.50.BTCUSDT","orderbook.1.ETHUSDT","kline.1.BTCUSDT"]}`)
	if r := c.reply(); !*r.Success || r.ReqID != "1" || r.Op != "subscribe" || r.RetMsg != "subscribe" {
		t.Fatalf("%+v", r)
	}
	var b book
	seen := map[string]int{}
	var lastID int64
	for seen["orderbook.50.BTCUSDT"] < 50 || seen["publicTrade.BTCUSDT"] < 5 || seen["kline.1.BTCUSDT"] < 2 {
		m, err := c.next()
		if err != nil {
			t.Fatal(err)
		}
		seen[m.Topic]++
		switch m.Topic {
		case "orderbook.50.BTCUSDT":
			b.apply(t, m)
		case "publicTrade.BTCUSDT":
			var ts []struct{ I string }
			json.Unmarshal(m.Data, &ts)
			for _, tr := range ts {
				id, err := strconv.ParseInt(tr.I, 10, 64)
				if err != nil || id <= lastID {
					t.Fatalf("trade id %q after %d", tr.I, lastID)
				}
				lastID = id
			}
		case "orderbook.1.ETHUSDT", "tickers.BTCUSDT":
			if m.Type != "snapshot" {
				t.Fatalf("%s", m.raw)
			}
		}
	}
	if got := srv.Subscriptions(); len(got) != 5 || got["tickers.BTCUSDT"] != 1 {
		t.Fatalf("Subscriptions = %v", got)
	}
	c.send(`{"req_id":"2","op":"unsubscribe","args":["tickers.BTCUSDT"]}`)
	if r := c.reply(); !*r.Success || r.ReqID != "2" {
		t.Fatalf("%+v", r)
	}
	c.send(`{"op":"ping"}`)
	if r := c.reply(); r.Op != "ping" || r.RetMsg != "pong" {
		t.Fatalf("%+v", r)
	}
	if len(srv.Subscriptions()) != 4 || srv.Violations() != 0 {
		t.Fatalf("%v, %d violations", srv.Subscriptions(), srv.Violations())
	}
}

func TestLinearStreams(t *testing.T) {
	srv, addr := simtest.Start(t, bybitsim.Config{Product: bybitsim.ProductLinear, TickInterval: 10 * time.Millisecond})
	c := dial(t, addr, bybitsim.ProductLinear)
	args := `["publicTrade.BTCUSDT","tickers.BTCUSDT","orderbook.200.BTCUSDT"`
	for _, s := range []string{"ETHUSDT", "SOLUSDT", "XRPUSDT"} {
		for _, k := range []string{"publicTrade.", "tickers.", "orderbook.1.", "kline.5."} {
			args += `,"` + k + s + `"`
		}
	}
	c.send(`{"req_id":"7","op":"subscribe","args":` + args + `]}`) // 15 args: linear has no limit
	if r := c.reply(); !*r.Success || r.ReqID != "7" || r.RetMsg != "" {
		t.Fatalf("%+v", r)
	}
	tickers := 0
	var b book
	b.side = [2]map[string]string{}
	for n := 0; n < 300; n++ {
		m, err := c.next()
		if err != nil {
			t.Fatal(err)
		}
		switch m.Topic {
		case "tickers.BTCUSDT":
			if (tickers == 0) != (m.Type == "snapshot") {
				t.Fatalf("ticker %d: %s", tickers, m.raw)
			}
			tickers++
		case "publicTrade.BTCUSDT":
			if !strings.Contains(m.raw, `"L":"`) || strings.Count(m.raw, "-") < 4 {
				t.Fatalf("linear trade %s", m.raw)
			}
		case "orderbook.200.BTCUSDT":
			var d struct{ B [][2]string }
			json.Unmarshal(m.Data, &d)
			if m.Type == "snapshot" && len(d.B) < 150 {
				t.Fatalf("snapshot of %d bids", len(d.B))
			}
		}
	}
	if tickers < 2 || srv.Violations() != 0 {
		t.Fatalf("%d tickers, %d violations", tickers, srv.Violations())
	}
}

func TestViolations(t *testing.T) {
	srv, addr := simtest.Start(t, bybitsim.Config{MaxRequestsPerSecond: 100})
	eleven := `"publicTrade.BTCUSDT"` + strings.Repeat(`,"publicTrade.BTCUSDT"`, 10)
	for _, c := range []struct {
		req, retMsg string
		counter     func(bybitsim.ClientStats) int
	}{
		{`[1]`, "error:invalid request, not a JSON object", func(s bybitsim.ClientStats) int { return s.InvalidJSON }},
		{`{"req_id":"1","op":"SUBSCRIBE","args":["publicTrade.BTCUSDT"]}`, "error:unknown op", func(s bybitsim.ClientStats) int { return s.UnknownOp }},
		{`{"req_id":1,"op":"subscribe","args":["publicTrade.BTCUSDT"]}`, "error:req_id must be a string", func(s bybitsim.ClientStats) int { return s.InvalidReqID }},
		{`{"req_id":"1","op":"subscribe","args":[]}`, "error:args must be a non-empty array of strings", func(s bybitsim.ClientStats) int { return s.InvalidArgs }},
		{`{"req_id":"1","op":"subscribe","args":"publicTrade.BTCUSDT"}`, "error:args must be a non-empty array of strings", func(s bybitsim.ClientStats) int { return s.InvalidArgs }},
		{`{"req_id":"1","op":"subscribe","args":[` + eleven + `]}`, "args size >10", func(s bybitsim.ClientStats) int { return s.TooManyArgs }},
		{`{"req_id":"1","op":"subscribe","args":["publicTrade.NOPEUSDT"]}`, "error:handler not found,topic:publicTrade.NOPEUSDT", func(s bybitsim.ClientStats) int { return s.UnknownTopics }},
		{`{"req_id":"1","op":"subscribe","args":["tickers.BTCUSDT","orderbook.25.BTCUSDT"]}`, "error:handler not found,topic:orderbook.25.BTCUSDT", func(s bybitsim.ClientStats) int { return s.UnknownTopics }},
		{`{"req_id":"1","op":"subscribe","args":["tickers.DELISTEDUSDT"]}`, "error:handler not found,topic:tickers.DELISTEDUSDT", func(s bybitsim.ClientStats) int { return s.UnknownTopics }},
		{`{"req_id":"1","op":"subscribe","args":["tickers.BTCUSDT","tickers.BTCUSDT"]}`, "error:already subscribed,topic:tickers.BTCUSDT", func(s bybitsim.ClientStats) int { return s.Duplicates }},
	} {
		cl := dial(t, addr, bybitsim.ProductSpot)
		cl.send(c.req)
		r := cl.reply()
		if *r.Success || r.RetMsg != c.retMsg {
			t.Errorf("%s: %+v, want ret_msg %q", c.req, r, c.retMsg)
		}
		cs := srv.Clients()
		st := cs[len(cs)-1]
		if c.counter(st) != 1 || st.Violations() != 1 || st.Topics != 0 {
			t.Errorf("%s: stats %+v", c.req, st)
		}
	}
	// A refused request subscribes nothing; the same topics then succeed.
	cl := dial(t, addr, bybitsim.ProductSpot)
	cl.send(`{"req_id":"a","op":"subscribe","args":["tickers.BTCUSDT"]}`)
	if r := cl.reply(); !*r.Success {
		t.Fatalf("%+v", r)
	}
	cl.send(`{"req_id":"b","op":"subscribe","args":["tickers.BTCUSDT"]}`)
	if r := cl.reply(); *r.Success || r.RetMsg != "error:already subscribed,topic:tickers.BTCUSDT" || r.ReqID != "b" {
		t.Fatalf("%+v", r)
	}
	cl.send(`{"req_id":"c","op":"unsubscribe","args":["tickers.ETHUSDT"]}`)
	if r := cl.reply(); !*r.Success {
		t.Fatalf("%+v", r)
	}
	cs := srv.Clients()
	if st := cs[len(cs)-1]; st.Redundant != 1 || st.Violations() != 1 {
		t.Fatalf("%+v", st)
	}
	// Binary frames end the connection.
	cl = dial(t, addr, bybitsim.ProductSpot)
	wsutil.WriteClientBinary(cl.nc, []byte(`{"op":"ping"}`))
	if _, err := cl.next(); err == nil {
		t.Fatal("binary frame: connection still open")
	}
	cs = srv.Clients()
	if st := cs[len(cs)-1]; st.ProtocolErrors != 1 {
		t.Fatalf("%+v", st)
	}
}

func TestRateAndCharLimits(t *testing.T) {
	srv, addr := simtest.Start(t, bybitsim.Config{Product: bybitsim.ProductLinear, MaxRequestsPerSecond: 2, MaxArgsChars: 40})
	c := dial(t, addr, bybitsim.ProductLinear)
	c.send(`{"req_id":"1","op":"subscribe","args":["tickers.BTCUSDT","tickers.ETHUSDT"]}`) // 30 characters
	if r := c.reply(); !*r.Success {
		t.Fatalf("%+v", r)
	}
	c.send(`{"req_id":"2","op":"subscribe","args":["tickers.SOLUSDT"]}`)
	if r := c.reply(); *r.Success || !strings.HasPrefix(r.RetMsg, "error:args length exceeded 40,topic:tickers.SOLUSDT") {
		t.Fatalf("%+v", r)
	}
	c.send(`{"req_id":"3","op":"unsubscribe","args":["tickers.ETHUSDT"]}`)
	if r := c.reply(); *r.Success || r.RetMsg != "error:too many requests" {
		t.Fatalf("%+v", r)
	}
	st := srv.Clients()[0]
	if st.ArgsCharsExceeded != 1 || st.RateLimited != 1 || st.Violations() != 2 || st.Topics != 2 {
		t.Fatalf("%+v", st)
	}
}

func TestPingTimeout(t *testing.T) {
	srv, addr := simtest.Start(t, bybitsim.Config{PingTimeout: 300 * time.Millisecond})
	quiet := dial(t, addr, bybitsim.ProductSpot)
	alive := dial(t, addr, bybitsim.ProductSpot)
	stop := time.After(time.Second)
	pings := time.NewTicker(100 * time.Millisecond)
	defer pings.Stop()
loop:
	for {
		select {
		case <-pings.C:
			alive.send(`{"op":"ping"}`)
		case <-stop:
			break loop
		}
	}
	quiet.nc.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := wsutil.ReadServerText(quiet.nc); err == nil {
		t.Fatal("quiet connection got a message")
	}
	cs := srv.Clients()
	if cs[0].Pings > 0 { // accepted in either order
		cs[0], cs[1] = cs[1], cs[0]
	}
	if !cs[0].Closed || cs[0].PingTimeouts != 1 || cs[1].Closed || cs[1].Violations() != 0 || cs[1].Pings < 5 {
		t.Fatalf("%+v\n%+v", cs[0], cs[1])
	}
}

func TestConnAttempts(t *testing.T) {
	srv, addr := simtest.Start(t, bybitsim.Config{MaxConnAttempts: 2})
	dial(t, addr, bybitsim.ProductSpot)
	dial(t, addr, bybitsim.ProductSpot)
	_, _, _, err := ws.Dial(context.Background(), "ws://"+addr+"/v5/public/spot")
	var se ws.StatusError
	if err == nil || !strings.Contains(err.Error(), "429") {
		t.Fatalf("third attempt: %v (%T %v)", err, err, se)
	}
	for i := 0; srv.Accepted() != 2 && i < 100; i++ {
		time.Sleep(10 * time.Millisecond) // the server records a connection after its 101
	}
	if srv.RefusedAttempts() != 1 || srv.Violations() != 1 || srv.Accepted() != 2 {
		t.Fatalf("refused %d, violations %d", srv.RefusedAttempts(), srv.Violations())
	}
}

func TestKnobs(t *testing.T) {
	srv, addr := simtest.Start(t, bybitsim.Config{})
	c := dial(t, addr, bybitsim.ProductSpot)
	c.send(`{"req_id":"1","op":"subscribe","args":["orderbook.1.BTCUSDT"]}`)
	c.reply()
	srv.SendShutdown(50 * time.Millisecond)
	for {
		m, err := c.next()
		if err != nil {
			t.Fatal(err)
		}
		if m.Op == "shutdown" {
			break
		}
	}
	for {
		_, err := c.next()
		var ce wsutil.ClosedError
		if err != nil {
			if !(errorsAs(err, &ce) && ce.Code == ws.StatusGoingAway) {
				t.Fatalf("after shutdown: %v", err)
			}
			break
		}
	}
	d := dial(t, addr, bybitsim.ProductSpot)
	for srv.OpenConnections() != 1 {
		time.Sleep(10 * time.Millisecond)
	}
	srv.DropAll()
	d.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadAll(d.nc); err != nil {
		t.Fatalf("drop: %v", err)
	}
	if srv.Violations() != 0 {
		t.Fatalf("%d violations", srv.Violations())
	}
}

func TestKlineClose(t *testing.T) {
	var mu sync.Mutex
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { // 20 s of market time per call
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(20 * time.Second)
		return clock
	}
	_, addr := simtest.Start(t, bybitsim.Config{TickInterval: 5 * time.Millisecond, Now: now})
	c := dial(t, addr, bybitsim.ProductSpot)
	c.send(`{"req_id":"1","op":"subscribe","args":["kline.1.BTCUSDT"]}`)
	c.reply()
	closed := 0
	var lastStart int64
	for closed < 3 {
		m, err := c.next()
		if err != nil {
			t.Fatal(err)
		}
		var ks []struct {
			Start, End int64
			Confirm    bool
		}
		json.Unmarshal(m.Data, &ks)
		for _, k := range ks {
			if k.Start < lastStart || k.End != k.Start+59999 || k.Start%60000 != 0 {
				t.Fatalf("candle %+v after start %d", k, lastStart)
			}
			if k.Confirm {
				closed++
			}
			lastStart = k.Start
		}
	}
}
