package binancesim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/marketgate/marketgate/internal/waitfor"
)

const listReq = `{"method":"LIST_SUBSCRIPTIONS","id":1}`

func TestRateLimit(t *testing.T) {
	tests := []struct {
		name    string
		frames  []ws.OpCode
		spacing time.Duration
		closed  bool
	}{
		{"six requests in a burst", repeat(ws.OpText, 6), 0, true},
		{"five requests in a burst", repeat(ws.OpText, 5), 0, false},
		{"pings and pongs count", []ws.OpCode{ws.OpPing, ws.OpPong, ws.OpText, ws.OpPing, ws.OpPong, ws.OpText}, 0, true},
		{"six requests spaced 210ms", repeat(ws.OpText, 6), 210 * time.Millisecond, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, Config{TickInterval: quiet}) // default 5 msg/s
			c := dial(t, ts.wsURL("/ws"))
			for k, op := range tc.frames {
				if k > 0 {
					time.Sleep(tc.spacing) // pacing, not synchronisation
				}
				switch op {
				case ws.OpText:
					c.send(listReq)
				default:
					c.write(op, []byte("x"))
				}
			}
			texts, pongs := 0, 0
			for {
				f, err := c.next(2 * time.Second)
				if err != nil {
					t.Fatalf("read after %d replies: %v", texts, err)
				}
				switch f.op {
				case ws.OpText:
					texts++
				case ws.OpPong:
					pongs++
				case ws.OpClose:
					code, reason := ws.ParseCloseFrameData(f.payload)
					if !tc.closed {
						t.Fatalf("closed %d %q; want open", code, reason)
					}
					if code != ws.StatusPolicyViolation || reason != "Too many requests" {
						t.Errorf("close = %d %q; want 1008 \"Too many requests\"", code, reason)
					}
					// The frames admitted before the limit were answered first.
					if texts+pongs != 5-countOp(tc.frames[:5], ws.OpPong) {
						t.Errorf("answers before close = %d text + %d pong", texts, pongs)
					}
					st := waitClosed(t, ts.Server)
					if st.RateLimitClosed != 1 || st.Messages != 6 || st.CloseCode != 1008 || st.ClosedBy != byServer {
						t.Errorf("stats = %+v", st)
					}
					return
				}
				if !tc.closed && texts == countOp(tc.frames, ws.OpText) {
					break
				}
			}
			// Still open: one more request fits once the window moved on.
			time.Sleep(time.Second)
			c.assertOpen()
			if st := lastClient(t, ts.Server); st.Violations() != 0 {
				t.Errorf("violations = %d (%+v)", st.Violations(), st)
			}
		})
	}
}

func repeat(op ws.OpCode, n int) []ws.OpCode {
	out := make([]ws.OpCode, n)
	for k := range out {
		out[k] = op
	}
	return out
}

func countOp(ops []ws.OpCode, op ws.OpCode) int {
	n := 0
	for _, o := range ops {
		if o == op {
			n++
		}
	}
	return n
}

func TestClientPingGetsPong(t *testing.T) {
	ts := startServer(t, Config{TickInterval: quiet})
	c := dial(t, ts.wsURL("/ws"))
	c.write(ws.OpPing, []byte("hello"))
	f, err := c.next(2 * time.Second)
	if err != nil || f.op != ws.OpPong || string(f.payload) != "hello" {
		t.Fatalf("got %v %q %v; want pong \"hello\"", f.op, f.payload, err)
	}
	if st := lastClient(t, ts.Server); st.Messages != 1 {
		t.Errorf("Messages = %d; want 1", st.Messages)
	}
}

func TestHeartbeat(t *testing.T) {
	tests := []struct {
		name        string
		answer      func(ping []byte) []byte // nil: do not answer
		wantClose   bool
		wantBadPong bool
	}{
		{"echoing client stays open", func(p []byte) []byte { return p }, false, false},
		{"silent client times out", nil, true, false},
		{"wrong payload times out", func([]byte) []byte { return []byte("wrong") }, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, Config{
				TickInterval: quiet, MaxMessagesPerSecond: 1000,
				PingInterval: 50 * time.Millisecond, PongTimeout: 300 * time.Millisecond,
			})
			c := dial(t, ts.wsURL("/ws"))
			pings := 0
			deadline := time.Now().Add(900 * time.Millisecond)
			for time.Now().Before(deadline) {
				f, err := c.next(2 * time.Second)
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				switch f.op {
				case ws.OpPing:
					pings++
					if _, err := strconv.ParseInt(string(f.payload), 10, 64); err != nil {
						t.Errorf("ping payload %q is not unix ms", f.payload)
					}
					if tc.answer != nil {
						c.write(ws.OpPong, tc.answer(f.payload))
					}
				case ws.OpClose:
					code, reason := ws.ParseCloseFrameData(f.payload)
					if !tc.wantClose {
						t.Fatalf("closed %d %q; want open", code, reason)
					}
					if code != 1008 || reason != "Pong timeout" {
						t.Errorf("close = %d %q; want 1008 \"Pong timeout\"", code, reason)
					}
					st := waitClosed(t, ts.Server)
					if st.PongTimeouts != 1 || (st.BadPongs > 0) != tc.wantBadPong {
						t.Errorf("stats = %+v", st)
					}
					return
				}
			}
			if tc.wantClose {
				t.Fatalf("not closed after %d pings", pings)
			}
			if pings < 5 {
				t.Errorf("pings = %d in 900ms at 50ms; want >= 5", pings)
			}
			waitfor.Cond(t, 2*time.Second, func() error {
				if st := lastClient(t, ts.Server); st.Violations() != 0 || st.Messages != pings {
					return fmt.Errorf("violations %d, messages %d (pings %d)", st.Violations(), st.Messages, pings)
				}
				return nil
			})
		})
	}
}

func TestUnsolicitedPong(t *testing.T) {
	ts := startServer(t, Config{TickInterval: quiet})
	c := dial(t, ts.wsURL("/ws"))
	c.write(ws.OpPong, nil)
	c.write(ws.OpPong, []byte("junk"))
	c.assertOpen()
	st := lastClient(t, ts.Server)
	if st.UnsolicitedPongs != 1 || st.BadPongs != 1 || st.Violations() != 1 {
		t.Errorf("UnsolicitedPongs %d, BadPongs %d, Violations %d; want 1, 1, 1", st.UnsolicitedPongs, st.BadPongs, st.Violations())
	}
}

func TestLifetime(t *testing.T) {
	ts := startServer(t, Config{TickInterval: quiet, MaxLifetime: 200 * time.Millisecond})
	start := time.Now()
	c := dial(t, ts.wsURL("/ws"))
	code, reason := c.expectClose(3 * time.Second)
	if code != ws.StatusGoingAway || reason != closeLifetimeReason {
		t.Errorf("close = %d %q; want 1001 %q", code, reason, closeLifetimeReason)
	}
	if el := time.Since(start); el < 200*time.Millisecond {
		t.Errorf("closed after %v; want >= 200ms", el)
	}
	st := waitClosed(t, ts.Server)
	if st.CloseCode != 1001 || st.ClosedBy != byServer || st.Violations() != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestProtocolErrors(t *testing.T) {
	masked := func(f ws.Frame) ws.Frame { return ws.MaskFrameInPlace(f) }
	tests := []struct {
		name  string
		frame ws.Frame
		code  ws.StatusCode
	}{
		{"frame over 64 KiB", masked(ws.NewTextFrame([]byte(`{"method":"SUBSCRIBE","params":["` + strings.Repeat("a", 70<<10) + `"],"id":1}`))), ws.StatusMessageTooBig},
		{"unmasked frame", ws.NewTextFrame([]byte(listReq)), ws.StatusProtocolError},
		{"reserved opcode", masked(ws.NewFrame(ws.OpCode(0x3), true, []byte("x"))), ws.StatusProtocolError},
		{"continuation first", masked(ws.NewFrame(ws.OpContinuation, true, []byte("x"))), ws.StatusProtocolError},
		{"invalid UTF-8", masked(ws.NewTextFrame([]byte("{\"method\":\"\xff\"}"))), ws.StatusInvalidFramePayloadData},
		{"bad close code", masked(ws.NewCloseFrame([]byte{0x03, 0xe7})), ws.StatusProtocolError}, // 999
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, Config{TickInterval: quiet})
			c := dial(t, ts.wsURL("/ws"))
			if err := ws.WriteFrame(c.nc, tc.frame); err != nil {
				t.Fatal(err)
			}
			if code, _ := c.expectClose(3 * time.Second); code != tc.code {
				t.Errorf("close code = %d; want %d", code, tc.code)
			}
			if st := waitClosed(t, ts.Server); st.ProtocolErrors != 1 || st.CloseCode != int(tc.code) {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}

func TestFragmentedRequest(t *testing.T) {
	ts := startServer(t, Config{TickInterval: quiet})
	c := dial(t, ts.wsURL("/ws"))
	req := []byte(listReq)
	for _, f := range []ws.Frame{
		ws.NewFrame(ws.OpText, false, req[:10]),
		ws.NewPingFrame([]byte("mid")),
		ws.NewFrame(ws.OpContinuation, false, req[10:20]),
		ws.NewFrame(ws.OpContinuation, true, req[20:]),
	} {
		if err := ws.WriteFrame(c.nc, ws.MaskFrameInPlace(f)); err != nil {
			t.Fatal(err)
		}
	}
	f, err := c.next(2 * time.Second)
	if err != nil || f.op != ws.OpPong || string(f.payload) != "mid" {
		t.Fatalf("got %v %q %v; want pong \"mid\"", f.op, f.payload, err)
	}
	if got := string(c.data(2 * time.Second)); got != `{"result":[],"id":1}` {
		t.Errorf("reply = %s", got)
	}
	if st := lastClient(t, ts.Server); st.Messages != 2 || st.Violations() != 0 {
		t.Errorf("Messages %d, Violations %d; want 2, 0", st.Messages, st.Violations())
	}
}

func TestClientClose(t *testing.T) {
	ts := startServer(t, Config{TickInterval: quiet})
	c := dial(t, ts.wsURL("/ws"))
	c.write(ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye"))
	f, err := c.next(2 * time.Second)
	if err != nil || f.op != ws.OpClose {
		t.Fatalf("got %v %v; want the close echo", f.op, err)
	}
	if code, _ := ws.ParseCloseFrameData(f.payload); code != ws.StatusNormalClosure {
		t.Errorf("echoed code %d; want 1000", code)
	}
	st := waitClosed(t, ts.Server)
	if st.CloseCode != 1000 || st.CloseReason != "bye" || st.ClosedBy != byClient {
		t.Errorf("stats = %+v", st)
	}
}

func TestDropAll(t *testing.T) {
	ts := startServer(t, Config{TickInterval: quiet})
	c := dial(t, ts.wsURL("/ws"))
	c.assertOpen()
	ts.DropAll()
	if f, err := c.next(2 * time.Second); err == nil {
		t.Fatalf("got frame %v %q; want EOF", f.op, f.payload)
	} else {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("read timed out; want EOF")
		}
	}
	st := waitClosed(t, ts.Server)
	if st.CloseCode != 1006 || st.ClosedBy != byServer {
		t.Errorf("stats = %+v", st)
	}
}

func TestServerShutdownEvent(t *testing.T) {
	tests := []struct {
		path, prefix string
		digits       int
	}{
		{"/ws", `{"e":"serverShutdown","E":`, 13},
		{"/stream?timeUnit=MICROSECOND", `{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":`, 16},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			ts := startServer(t, Config{TickInterval: quiet})
			c := dial(t, ts.wsURL(tc.path))
			c.assertOpen()
			ts.SendServerShutdown(50 * time.Millisecond)
			p := string(c.data(2 * time.Second))
			if !strings.HasPrefix(p, tc.prefix) {
				t.Fatalf("event %s; want prefix %s", p, tc.prefix)
			}
			if digits := len(strings.TrimRight(strings.TrimPrefix(p, tc.prefix), "}")); digits != tc.digits {
				t.Errorf("E has %d digits in %s; want %d", digits, p, tc.digits)
			}
			if code, reason := c.expectClose(2 * time.Second); code != 1001 || reason != closeShutdownReason {
				t.Errorf("close = %d %q", code, reason)
			}
		})
	}
}

func TestRunShutdown(t *testing.T) {
	s, err := New(Config{TickInterval: 10 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, ln) }()
	c := dial(t, "ws://"+ln.Addr().String()+"/stream?streams=btcusdt@trade")
	c.data(2 * time.Second) // data flows
	cancel()
	for {
		p := c.data(2 * time.Second)
		if strings.Contains(string(p), `"serverShutdown"`) {
			break
		}
	}
	if code, reason := c.expectClose(2 * time.Second); code != 1001 || reason != closeShutdownReason {
		t.Errorf("close = %d %q", code, reason)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v; want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if err := s.Run(t.Context(), ln); !errors.Is(err, ErrAlreadyRun) {
		t.Errorf("second Run = %v; want ErrAlreadyRun", err)
	}
	if st := s.Clients(); len(st) != 1 || !st[0].Closed || st[0].CloseCode != 1001 {
		t.Errorf("Clients() = %+v", st)
	}
}

func TestSlowConsumer(t *testing.T) {
	ts := startServer(t, Config{TickInterval: 2 * time.Millisecond, SendQueue: 8, WriteTimeout: 300 * time.Millisecond})
	d := ws.Dialer{
		Timeout: 5 * time.Second,
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if tc, ok := nc.(*net.TCPConn); ok {
				tc.SetReadBuffer(4096)
			}
			return nc, err
		},
	}
	var streams []string
	for _, sym := range defaultSymbols {
		for _, kind := range []string{"depth20@100ms", "depth@100ms", "trade", "aggTrade"} {
			streams = append(streams, strings.ToLower(sym)+"@"+kind)
		}
	}
	nc, _, _, err := d.Dial(t.Context(), ts.wsURL("/stream?streams="+strings.Join(streams, "/")))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// Never read: the socket buffers fill, then the queue.
	st := waitClosed(t, ts.Server)
	if st.SlowClosed != 1 || st.CloseCode != 1008 || st.CloseReason != closeSlowReason {
		t.Errorf("stats = %+v", st)
	}
}

func TestConnectionAttempts(t *testing.T) {
	ts := startServer(t, Config{TickInterval: quiet, MaxConnectionAttempts: 3})
	for k := range 4 {
		c, err := tryDial(t, ts.wsURL("/ws"))
		if k < 3 && err != nil {
			t.Fatalf("attempt %d: %v", k+1, err)
		}
		if k == 3 {
			if err == nil {
				t.Fatalf("attempt 4 accepted; want HTTP 429")
			}
			if !strings.Contains(fmt.Sprint(err), "429") {
				t.Errorf("attempt 4: %v; want status 429", err)
			}
		}
		if c != nil {
			c.nc.Close()
		}
	}
}

// TestDropOne: DropOne drops exactly one of the open connections, with no
// close frame; DropEvery keeps dropping one at a time.
func TestDropOne(t *testing.T) {
	ts := startServer(t, Config{TickInterval: quiet})
	if ts.DropOne() {
		t.Fatal("DropOne with no connection = true; want false")
	}
	a, b := dial(t, ts.wsURL("/ws")), dial(t, ts.wsURL("/ws"))
	a.assertOpen()
	b.assertOpen()
	if !ts.DropOne() {
		t.Fatal("DropOne = false; want true")
	}
	waitfor.Cond(t, 5*time.Second, func() error {
		if n := ts.OpenConnections(); n != 1 {
			return fmt.Errorf("%d open connections; want 1", n)
		}
		return nil
	})
	dropped := 0
	for _, st := range ts.Clients() {
		if st.CloseCode == 1006 && st.ClosedBy == byServer {
			dropped++
		}
	}
	if dropped != 1 {
		t.Errorf("%d connections dropped with 1006; want 1 (%+v)", dropped, ts.Clients())
	}

	tick := startServer(t, Config{TickInterval: quiet, DropEvery: 50 * time.Millisecond})
	dial(t, tick.wsURL("/ws"))
	dial(t, tick.wsURL("/ws"))
	waitfor.Cond(t, 5*time.Second, func() error {
		if n := tick.OpenConnections(); n != 0 {
			return fmt.Errorf("%d open connections; want 0", n)
		}
		return nil
	})
	if _, err := New(Config{DropEvery: -time.Second}); err == nil {
		t.Error("New(DropEvery -1s) = nil error; want one")
	}
}
