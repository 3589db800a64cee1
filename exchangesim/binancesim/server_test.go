package binancesim

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/marketgate/marketgate/internal/waitfor"
)

func TestHandshakeRoutes(t *testing.T) {
	ts := startServer(t, Config{TickInterval: quiet})
	tests := []struct {
		path     string
		status   int    // 0: upgraded
		list     string // LIST_SUBSCRIPTIONS result when upgraded
		combined bool
	}{
		{"/ws", 0, `[]`, false},
		{"/ws/", 0, `[]`, false},
		{"/ws/btcusdt@trade", 0, `["btcusdt@trade"]`, false},
		{"/ws/btcusdt@trade/ethusdt@depth@100ms", 0, `["btcusdt@trade","ethusdt@depth@100ms"]`, false},
		{"/stream", 0, `[]`, true},
		{"/stream?streams=", 0, `[]`, true},
		{"/stream?streams=btcusdt@trade/btcusdt@trade/ethusdt@kline_1m", 0, `["btcusdt@trade","ethusdt@kline_1m"]`, true},
		{"/stream?streams=btcusdt@kline_1h@+08:00", 0, `["btcusdt@kline_1h@+08:00"]`, true},
		{"/stream?streams=btcusdt%40trade&timeUnit=microsecond", 0, `["btcusdt@trade"]`, true},
		{"/stream/nonsense", http.StatusNotFound, "", false},
		{"/stream/", http.StatusNotFound, "", false},
		{"/wss", http.StatusNotFound, "", false},
		{"/", http.StatusNotFound, "", false},
		{"/ws?timeUnit=seconds", http.StatusBadRequest, "", false},
	}
	rejected := 0
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			c, err := tryDial(t, ts.wsURL(tc.path))
			if tc.status != 0 {
				rejected++
				var se ws.StatusError
				if !errorsAs(err, &se) || int(se) != tc.status {
					t.Fatalf("dial = %v; want HTTP %d", err, tc.status)
				}
				return
			}
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			if got, want := c.call(`{"method":"LIST_SUBSCRIPTIONS","id":1}`), `{"result":`+tc.list+`,"id":1}`; got != want {
				t.Errorf("LIST = %s; want %s", got, want)
			}
			want := map[bool]string{true: `{"result":true,"id":2}`, false: `{"result":false,"id":2}`}[tc.combined]
			if got := c.call(`{"method":"GET_PROPERTY","params":["combined"],"id":2}`); got != want {
				t.Errorf("GET_PROPERTY = %s; want %s", got, want)
			}
		})
	}
	if got := ts.Rejections(); got != rejected {
		t.Errorf("Rejections() = %d; want %d", got, rejected)
	}
	if got := ts.Violations(); got != rejected {
		t.Errorf("Violations() = %d; want %d", got, rejected)
	}
}

func TestClientStats(t *testing.T) {
	ts := startServer(t, Config{TickInterval: quiet, MaxMessagesPerSecond: 100})
	good := dial(t, ts.wsURL("/stream?streams=btcusdt@trade"))
	good.call(`{"method":"SUBSCRIBE","params":["ethusdt@trade"],"id":1}`)
	bad := dial(t, ts.wsURL("/ws/zzzusdt@trade"))
	for _, req := range []string{
		`not json`,
		`{"e":"trade"}`,
		`{"method":"PING","id":1}`,
		`{"method":"SUBSCRIBE","params":["btcusdt@bogus"],"id":2}`,
		`{"method":"SUBSCRIBE","params":["ethusdt@trade","yyyusdt@trade"],"id":3}`,
		`{"method":"UNSUBSCRIBE","params":["yyyusdt@trade"],"id":4}`,
		`{"method":"LIST_SUBSCRIPTIONS","id":1.5}`,
	} {
		bad.call(req)
	}
	subs := ts.Subscriptions()
	want := map[string]int{"btcusdt@trade": 1, "ethusdt@trade": 2, "zzzusdt@trade": 1}
	if len(subs) != len(want) {
		t.Errorf("Subscriptions() = %v; want %v", subs, want)
	}
	for k, v := range want {
		if subs[k] != v {
			t.Errorf("Subscriptions()[%s] = %d; want %d", k, subs[k], v)
		}
	}

	all := ts.Clients()
	if len(all) != 2 || all[0].ID >= all[1].ID {
		t.Fatalf("Clients() = %+v", all)
	}
	g, b := all[0], all[1]
	if g.Violations() != 0 || g.Requests[methodSubscribe] != 1 || g.Streams != 2 || g.Path != "/stream?streams=btcusdt@trade" ||
		g.Connected.IsZero() || g.Remote == "" || g.Closed {
		t.Errorf("good client = %+v", g)
	}
	wantBad := ClientStats{
		InvalidJSON: 1, MissingMethod: 1, UnknownMethod: 1, InvalidID: 1,
		InvalidStreams: 3, // zzzusdt in the URL, the malformed request, yyyusdt
		Messages:       7, Streams: 2,
	}
	if b.InvalidJSON != wantBad.InvalidJSON || b.MissingMethod != wantBad.MissingMethod || b.UnknownMethod != wantBad.UnknownMethod ||
		b.InvalidID != wantBad.InvalidID || b.InvalidStreams != wantBad.InvalidStreams || b.Messages != wantBad.Messages ||
		b.Streams != wantBad.Streams || b.Requests[methodSubscribe] != 2 || b.Requests[methodUnsubscribe] != 1 ||
		b.Requests[methodListSubscriptions] != 1 || b.Requests["PING"] != 0 {
		t.Errorf("bad client = %+v", b)
	}
	if got := ts.Violations(); got != 7 {
		t.Errorf("Violations() = %d; want 7", got)
	}

	// A client close is reported as such and its streams are released.
	bad.write(ws.OpClose, ws.NewCloseFrameBody(ws.StatusGoingAway, "leaving"))
	waitfor.Cond(t, 2*time.Second, func() error {
		if st := ts.Clients()[1]; !st.Closed {
			return errorf("not closed: %+v", st)
		}
		return nil
	})
	if st := ts.Clients()[1]; st.CloseCode != 1001 || st.CloseReason != "leaving" || st.ClosedBy != byClient {
		t.Errorf("closed stats = %+v", st)
	}
	if subs := ts.Subscriptions(); subs["zzzusdt@trade"] != 0 || subs["ethusdt@trade"] != 1 {
		t.Errorf("Subscriptions() after close = %v", subs)
	}
}

func TestHandlerWithoutRun(t *testing.T) {
	s, err := New(Config{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: s.Handler()}
	ln := listen(t)
	go srv.Serve(ln)
	t.Cleanup(func() {
		s.DropAll()
		srv.Close()
	})
	c := dial(t, "ws://"+ln.Addr().String()+"/ws")
	if got := c.call(`{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":1}`); got != `{"result":null,"id":1}` {
		t.Errorf("SUBSCRIBE = %s", got)
	}
	// No generator without Run: nothing but replies arrives.
	if f, err := c.next(300 * time.Millisecond); err == nil {
		t.Errorf("got %v %s; want nothing", f.op, f.payload)
	}
	resp, err := http.Get("http://" + ln.Addr().String() + "/api/v3/exchangeInfo")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Errorf("exchangeInfo = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// TestVisibleOnReturn checks the guarantee tests rely on: once a dial has
// returned, or a SUBSCRIBE/UNSUBSCRIBE reply has arrived, Clients() and
// Subscriptions() already reflect it, with no polling.
func TestVisibleOnReturn(t *testing.T) {
	ts := startServer(t, Config{TickInterval: fast, MaxMessagesPerSecond: 1000})
	for k := range 20 {
		c := dial(t, ts.wsURL("/stream?streams=btcusdt@trade"))
		if got := ts.Subscriptions()["btcusdt@trade"]; got != 1 {
			t.Fatalf("round %d: after dial Subscriptions()[btcusdt@trade] = %d; want 1", k, got)
		}
		if got := len(ts.Clients()); got != k+1 {
			t.Fatalf("round %d: after dial %d clients; want %d", k, got, k+1)
		}
		c.call(`{"method":"SUBSCRIBE","params":["ethusdt@depth"],"id":1}`)
		if got := ts.Subscriptions()["ethusdt@depth"]; got != 1 {
			t.Fatalf("round %d: after SUBSCRIBE reply Subscriptions()[ethusdt@depth] = %d; want 1", k, got)
		}
		c.call(`{"method":"UNSUBSCRIBE","params":["ethusdt@depth"],"id":2}`)
		if got := ts.Subscriptions()["ethusdt@depth"]; got != 0 {
			t.Fatalf("round %d: after UNSUBSCRIBE reply Subscriptions()[ethusdt@depth] = %d; want 0", k, got)
		}
		c.nc.Close()
		waitClosed(t, ts.Server)
	}
}
