package okxsim_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/marketgate/marketgate/exchangesim/okxsim"
	"github.com/marketgate/marketgate/exchangesim/okxsim/simtest"
)

// client is a test WebSocket client.
type client struct {
	t  *testing.T
	nc net.Conn
}

func dial(t *testing.T, addr, path string) *client {
	t.Helper()
	nc, _, _, err := ws.Dial(context.Background(), "ws://"+addr+path)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
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

// next returns the next text message, failing after 3 s.
func (c *client) next() string {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	p, err := wsutil.ReadServerText(c.nc)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return string(p)
}

// until returns the first message containing sub.
func (c *client) until(sub string) string {
	c.t.Helper()
	for {
		if m := c.next(); strings.Contains(m, sub) {
			return m
		}
	}
}

// closed waits for the connection to end and returns the close frame's
// code, or 0 when it ended without one.
func (c *client) closed() ws.StatusCode {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, err := wsutil.ReadServerText(c.nc)
		if err == nil {
			continue
		}
		if ce, ok := err.(wsutil.ClosedError); ok {
			return ce.Code
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			c.t.Fatal("connection still open")
		}
		return 0
	}
}

type bookMsg struct {
	Action string `json:"action"`
	Data   []struct {
		Asks      [][]string `json:"asks"`
		Bids      [][]string `json:"bids"`
		SeqID     int64      `json:"seqId"`
		PrevSeqID int64      `json:"prevSeqId"`
	} `json:"data"`
}

func TestStreams(t *testing.T) {
	srv, addr := simtest.Start(t, okxsim.Config{TickInterval: 10 * time.Millisecond, BookLevels: 50})
	c := dial(t, addr, "/ws/v5/public")
	c.send(`{"id":"7","op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"},{"channel":"trades","instId":"BTC-USDT"},{"channel":"tickers","instId":"ETH-USDT-SWAP"},{"channel":"books5","instId":"BTC-USDT"},{"channel":"bbo-tbt","instId":"BTC-USDT"}]}`)
	if m := c.next(); m != `{"id":"7","event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"},"connId":"5f3f0001"}` {
		t.Fatalf("first reply %s", m)
	}
	var snap bookMsg
	if err := json.Unmarshal([]byte(c.until(`"channel":"books",`)), &snap); err != nil {
		t.Fatal(err)
	}
	if snap.Action != "snapshot" || snap.Data[0].PrevSeqID != -1 || len(snap.Data[0].Bids) != 50 || len(snap.Data[0].Asks) != 50 {
		t.Fatalf("snapshot %+v; want 50 levels a side and prevSeqId -1", snap)
	}
	last := snap.Data[0].SeqID
	seen := map[string]bool{}
	for i := 0; i < 200 && len(seen) < 4; i++ {
		m := c.next()
		for _, ch := range []string{"trades", "tickers", "books5", "bbo-tbt"} {
			if strings.HasPrefix(m, `{"arg":{"channel":"`+ch+`"`) {
				seen[ch] = true
			}
		}
		if strings.HasPrefix(m, `{"arg":{"channel":"books",`) {
			var u bookMsg
			if err := json.Unmarshal([]byte(m), &u); err != nil {
				t.Fatal(err)
			}
			if u.Action != "update" || u.Data[0].PrevSeqID != last || u.Data[0].SeqID <= last {
				t.Fatalf("update %s after seqId %d; want it chained", m, last)
			}
			last = u.Data[0].SeqID
		}
	}
	if len(seen) < 4 {
		t.Errorf("channels seen %v; want every one", seen)
	}
	if got := srv.Subscriptions(); len(got) != 5 || got["books:BTC-USDT"] != 1 {
		t.Errorf("Subscriptions = %v", got)
	}
	c.send(`{"op":"unsubscribe","args":[{"channel":"trades","instId":"BTC-USDT"}]}`)
	c.until(`"event":"unsubscribe"`)
	if v := srv.Violations(); v != 0 {
		t.Errorf("Violations = %d; want 0 (%+v)", v, srv.Clients())
	}
}

func TestCandles(t *testing.T) {
	srv, addr := simtest.Start(t, okxsim.Config{TickInterval: 50 * time.Millisecond})
	c := dial(t, addr, "/ws/v5/business")
	c.send(`{"id":"1","op":"subscribe","args":[{"channel":"candle1s","instId":"BTC-USDT"}]}`)
	c.until(`"event":"subscribe"`)
	m := c.until(`"1"]]}`) // a confirmed candle, once its second ends
	if !strings.HasPrefix(m, `{"arg":{"channel":"candle1s","instId":"BTC-USDT"},"data":[["`) {
		t.Errorf("candle %s", m)
	}
	p := dial(t, addr, "/ws/v5/public")
	p.send(`{"id":"2","op":"subscribe","args":[{"channel":"candle1m","instId":"BTC-USDT"}]}`)
	if m := p.next(); !strings.Contains(m, `"code":"60018"`) || !strings.Contains(m, "channel:candle1m,instId:BTC-USDT") {
		t.Errorf("candle on /public: %s; want 60018", m)
	}
	if got := srv.Clients()[1].WrongEndpoint; got != 1 {
		t.Errorf("WrongEndpoint = %d; want 1", got)
	}
}

func TestRules(t *testing.T) {
	srv, addr := simtest.Start(t, okxsim.Config{MaxRequestsPerHour: 2, IdleTimeout: 400 * time.Millisecond,
		MaxConnAttempts: 3, ConnAttemptWindow: time.Hour, MaxBookChannels: 1})
	c := dial(t, addr, "/ws/v5/public")
	for _, tc := range []struct{ req, want string }{
		{`ping`, `pong`},
		{`{"op":"subscribe","args":[{"channel":"trades","instId":"BTC-USDT"}]`, `"code":"60012"`},
		{`{"id":"a-1","op":"subscribe","args":[{"channel":"trades","instId":"BTC-USDT"}]}`, `"code":"60012"`},
		{`{"op":"login","args":[{"channel":"trades","instId":"BTC-USDT"}]}`, `"code":"60012"`},
		{`{"op":"subscribe","args":[{"channel":"trades","instId":"BTC-USDT","x":1}]}`, `"code":"60012"`},
		{`{"id":"3","op":"subscribe","args":[{"channel":"trades","instId":"DOGE-USDT"},{"channel":"books","instId":"BTC-USDT"},{"channel":"books","instId":"ETH-USDT"}]}`, `"code":"60018"`},
	} {
		c.send(tc.req)
		if m := c.next(); !strings.Contains(m, tc.want) {
			t.Errorf("%s: got %s; want %s", tc.req, m, tc.want)
		}
	}
	c.until(`"event":"subscribe"`) // books:BTC-USDT
	if m := c.until(`"code"`); !strings.Contains(m, "channel:books,instId:ETH-USDT") {
		t.Errorf("second book channel: %s", m)
	}
	c.send(`{"id":"4","op":"unsubscribe","args":[{"channel":"books","instId":"BTC-USDT"}]}`)
	c.until(`"event":"unsubscribe"`)
	c.send(`{"id":"5","op":"subscribe","args":[{"channel":"trades","instId":"BTC-USDT"}]}`)
	if m := c.until(`"event":"error"`); !strings.Contains(m, `"code":"60014"`) {
		t.Errorf("third request: %s; want 60014", m)
	}
	if code := c.closed(); code != ws.StatusNormalClosure {
		t.Errorf("idle close code %d", code)
	}
	st := srv.Clients()[0]
	if st.BadRequests != 4 || st.UnknownStreams != 1 || st.TooManyBooks != 1 || st.RateLimited != 1 || st.IdleClosed != 1 || st.Pings != 1 {
		t.Errorf("stats %+v", st)
	}
	dial(t, addr, "/ws/v5/public")
	dial(t, addr, "/ws/v5/business")
	if _, _, _, err := ws.Dial(context.Background(), "ws://"+addr+"/ws/v5/public"); err == nil {
		t.Error("a fourth handshake within the window succeeded")
	}
	if got := srv.RefusedAttempts(); got != 1 {
		t.Errorf("RefusedAttempts = %d; want 1", got)
	}
}

func TestKnobs(t *testing.T) {
	srv, addr := simtest.Start(t, okxsim.Config{NoticeGrace: 300 * time.Millisecond})
	a := dial(t, addr, "/ws/v5/public")
	// The client's handshake ends before the server has registered the
	// connection: wait for it.
	for deadline := time.Now().Add(5 * time.Second); srv.OpenConnections() != 1 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if n := srv.SendShutdownNotice(); n != 1 {
		t.Fatalf("SendShutdownNotice = %d", n)
	}
	if m := a.next(); !strings.Contains(m, `"code":"64008"`) {
		t.Errorf("notice %s", m)
	}
	if code := a.closed(); code != ws.StatusGoingAway {
		t.Errorf("close after the notice: %d; want 1001", code)
	}
	b := dial(t, addr, "/ws/v5/public")
	for srv.OpenConnections() != 1 {
		time.Sleep(5 * time.Millisecond)
	}
	if n := srv.DropAll(); n != 1 {
		t.Errorf("DropAll = %d", n)
	}
	if code := b.closed(); code != 0 {
		t.Errorf("dropped connection got close code %d; want none", code)
	}
	if v := srv.Violations(); v != 0 {
		t.Errorf("Violations = %d", v)
	}
}

func TestInstruments(t *testing.T) {
	_, addr := simtest.Start(t, okxsim.Config{})
	for q, want := range map[string]string{
		"?instType=SPOT": `"instId":"BTC-USDT",`, "?instType=SWAP": `"instId":"BTC-USDT-SWAP"`, "": `"code":"51000"`,
	} {
		resp, err := http.Get("http://" + addr + "/api/v5/public/instruments" + q)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), want) {
			t.Errorf("instruments%s = %s; want %s", q, b, want)
		}
	}
}
