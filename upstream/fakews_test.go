package upstream_test

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/marketgate/marketgate/upstream"

	"github.com/gobwas/ws"

	"github.com/marketgate/marketgate/internal/waitfor"
)

// This file is a minimal scripted WebSocket server for unit tests of the
// writer's edge cases (pacing against a ping flood, error replies, reply
// timeouts, bytes behind the 101) that the exchange simulator has no knob
// for. Behaviour against a Binance-like server is tested with binancesim
// in binance_test.go.

// wsScript serves WebSocket connections on a loopback listener and hands
// each to handle, on its own goroutine, which it waits for on Close.
type wsScript struct {
	ln     net.Listener
	handle func(c *scriptConn)
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns []*scriptConn
}

// scriptConn is the server side of one connection.
type scriptConn struct {
	net.Conn
	br  *bufio.Reader
	wmu sync.Mutex

	mu     sync.Mutex
	frames []clientFrame
}

// clientFrame is a frame the client sent, unmasked, with its arrival time.
type clientFrame struct {
	at      time.Time
	op      ws.OpCode
	payload []byte
}

// newWSScript starts the server. hello, if not nil, is written in the same
// write as the 101 response, so it lands in the Dialer's bufio.Reader.
func newWSScript(t *testing.T, hello []byte, handle func(c *scriptConn)) *wsScript {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &wsScript{ln: ln, handle: handle}
	s.wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			c := &scriptConn{Conn: nc, br: bufio.NewReader(nc)}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Go(func() {
				defer nc.Close()
				if err := c.handshake(hello); err != nil {
					return
				}
				s.handle(c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *wsScript) url() string { return "ws://" + s.ln.Addr().String() }

func (s *wsScript) connections() []*scriptConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.conns)
}

func (c *scriptConn) handshake(hello []byte) error {
	req, err := http.ReadRequest(c.br)
	if err != nil {
		return err
	}
	if req.URL.Path != "/stream" {
		fmt.Fprint(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
		return errors.New("bad path")
	}
	h := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(h[:]) + "\r\n\r\n"
	_, err = c.Write(append([]byte(resp), hello...))
	return err
}

// read returns the next client frame, unmasked, and records it.
func (c *scriptConn) read() (clientFrame, error) {
	h, err := ws.ReadHeader(c.br)
	if err != nil {
		return clientFrame{}, err
	}
	if !h.Masked {
		return clientFrame{}, errors.New("unmasked client frame")
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(c.br, p); err != nil {
		return clientFrame{}, err
	}
	ws.Cipher(p, h.Mask, 0)
	f := clientFrame{at: time.Now(), op: h.OpCode, payload: p}
	c.mu.Lock()
	c.frames = append(c.frames, f)
	c.mu.Unlock()
	return f, nil
}

func (c *scriptConn) received() []clientFrame {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.frames)
}

// send writes one unmasked server frame.
func (c *scriptConn) send(op ws.OpCode, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return ws.WriteFrame(c, ws.NewFrame(op, true, p))
}

// serverFrame returns the bytes of an unmasked server frame.
func serverFrame(op ws.OpCode, p []byte) []byte {
	return ws.MustCompileFrame(ws.NewFrame(op, true, p))
}

// request is a Binance live-subscription request as the scripted
// exchange reads it.
type request struct {
	Method string   `json:"method"`
	Params []string `json:"params"`
	ID     int64    `json:"id"`
}

// decodeRequest parses a client request frame.
func decodeRequest(t *testing.T, f clientFrame) request {
	t.Helper()
	var r request
	if err := json.Unmarshal(f.payload, &r); err != nil {
		t.Errorf("client sent a text frame that is not a request: %q", f.payload)
	}
	return r
}

// testLogger logs to the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// runBinance starts b.Run and registers a cleanup that cancels it and
// checks that it returned nil.
func runBinance(t *testing.T, b *Feed) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v; want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Run did not return within 5s of cancel")
		}
	})
}

func TestBinancePacingUnderPingFlood(t *testing.T) {
	const interval = 100 * time.Millisecond
	hello := serverFrame(ws.OpPing, []byte("hello-ping")) // sits behind the 101, in br
	var pingMu sync.Mutex
	var pings []string
	srv := newWSScript(t, hello, func(c *scriptConn) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var wg sync.WaitGroup
		defer wg.Wait()
		wg.Go(func() { // ping every 20 ms: 5 per RequestInterval
			// Start after the hello ping was surely answered: only the
			// newest unanswered ping gets a pong.
			time.Sleep(3 * interval)
			for i := 0; ctx.Err() == nil; i++ {
				p := fmt.Sprintf("p%d", i)
				pingMu.Lock()
				pings = append(pings, p)
				pingMu.Unlock()
				if c.send(ws.OpPing, []byte(p)) != nil {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
		for {
			f, err := c.read()
			if err != nil {
				return
			}
			if f.op == ws.OpText {
				var r request
				if json.Unmarshal(f.payload, &r) == nil {
					c.send(ws.OpText, fmt.Appendf(nil, `{"result":null,"id":%d}`, r.ID))
				}
			}
		}
	})
	info := newExchangeInfoServer(t, exchangeInfoBody)
	b, err := newSpot(Config{
		URL: srv.url(), RESTURL: info.URL, Publisher: nopPublisher{}, Logger: testLogger(t),
		RequestInterval: interval, MaxParams: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	runBinance(t, b)
	waitfor.Cond(t, 5*time.Second, b.Ready) // connected: streams go by requests
	names := []string{
		"btcusdt@trade", "btcusdt@aggTrade", "btcusdt@depth", "btcusdt@ticker", "btcusdt@kline_1m",
		"ethusdt@trade", "ethusdt@aggTrade", "ethusdt@depth", "ethusdt@ticker", "ethusdt@kline_1m",
	}
	for _, n := range names {
		b.Subscribe([]string{n}) // one call each: the writer must coalesce
		time.Sleep(5 * time.Millisecond)
	}
	waitfor.Cond(t, 5*time.Second, func() error {
		if st := b.Status(); st.Streams != len(names) {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond) // keep the flood going for a while

	conns := srv.connections()
	if len(conns) != 1 {
		t.Fatalf("%d connections; want 1", len(conns))
	}
	frames := conns[0].received()
	var subscribed []string
	var pongs []string
	for i, f := range frames {
		if i > 0 {
			// Arrival gaps can shrink by scheduling noise on loopback only.
			if gap := f.at.Sub(frames[i-1].at); gap < interval-20*time.Millisecond {
				t.Errorf("frames %d and %d arrived %v apart; want ≥ %v", i-1, i, gap, interval)
			}
		}
		if n := countInWindow(frames, i, time.Second); n > 10 {
			t.Errorf("%d frames in the second from frame %d; want ≤ 10", n, i)
		}
		switch f.op {
		case ws.OpText:
			r := decodeRequest(t, f)
			if r.Method != "SUBSCRIBE" || len(r.Params) == 0 || len(r.Params) > 2 {
				t.Errorf("request %+v; want SUBSCRIBE with 1..2 params", r)
			}
			subscribed = append(subscribed, r.Params...)
		case ws.OpPong:
			pongs = append(pongs, string(f.payload))
		default:
			t.Errorf("unexpected client frame %v", f.op)
		}
	}
	slices.Sort(subscribed)
	want := slices.Sorted(slices.Values(names))
	if !slices.Equal(subscribed, want) {
		t.Errorf("subscribed %q; want each of %q exactly once", subscribed, want)
	}
	if len(pongs) == 0 || pongs[0] != "hello-ping" {
		t.Fatalf("pongs %q; want the first to answer the ping sent behind the 101", pongs)
	}
	pingMu.Lock()
	sent := slices.Clone(pings)
	pingMu.Unlock()
	for _, p := range pongs[1:] {
		if !slices.Contains(sent, p) {
			t.Errorf("pong payload %q was never a ping payload", p)
		}
	}
	if len(pongs) < 5 {
		t.Errorf("%d pongs; want the flood answered regularly", len(pongs))
	}
}

// countInWindow counts frames in [frames[i].at, frames[i].at+w).
func countInWindow(frames []clientFrame, i int, w time.Duration) int {
	n := 0
	for _, f := range frames[i:] {
		if f.at.Sub(frames[i].at) >= w {
			break
		}
		n++
	}
	return n
}

func TestBinanceErrorReply(t *testing.T) {
	srv := newWSScript(t, nil, func(c *scriptConn) {
		for {
			f, err := c.read()
			if err != nil {
				return
			}
			var r request
			if f.op != ws.OpText || json.Unmarshal(f.payload, &r) != nil {
				continue
			}
			if slices.Contains(r.Params, "ethusdt@trade") {
				c.send(ws.OpText, fmt.Appendf(nil, `{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":%d}`, r.ID))
				continue
			}
			c.send(ws.OpText, fmt.Appendf(nil, `{"result":null,"id":%d}`, r.ID))
		}
	})
	info := newExchangeInfoServer(t, exchangeInfoBody)
	rec := newRecorder()
	b, err := newSpot(Config{
		URL: srv.url(), RESTURL: info.URL, Publisher: rec, Logger: testLogger(t),
		RequestInterval: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	runBinance(t, b)
	waitfor.Cond(t, 5*time.Second, b.Ready) // connected: streams go by requests
	b.Subscribe([]string{"btcusdt@trade"})
	waitfor.Cond(t, 5*time.Second, func() error {
		if st := b.Status(); st.Streams != 1 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	b.Subscribe([]string{"ethusdt@trade"})
	waitfor.Cond(t, 5*time.Second, func() error {
		st := b.Status()
		if len(st.Failed) != 1 || st.Failed[0].Stream != "ethusdt@trade" || !strings.Contains(st.Failed[0].Error, "invalid stream") {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond) // 10 pacing intervals: room for a wrong retry
	var requests int
	for _, f := range srv.connections()[0].received() {
		if f.op == ws.OpText {
			requests++
		}
	}
	if requests != 2 {
		t.Errorf("%d requests; want 2 (a rejected stream is not retried on the same connection)", requests)
	}
	if st := b.Status(); st.Streams != 1 || st.PendingStreams != 0 || st.Desired != 2 {
		t.Errorf("status %+v; want 1 stream, none pending, 2 desired", st)
	}
	// The refusal fails exactly the stream it concerns, with a message
	// for its subscribers; the other stream is untouched.
	msgs := rec.get("binance:ethusdt@trade")
	if len(msgs) != 1 || msgs[0].Data != nil || msgs[0].Seq != 1 ||
		msgs[0].Err != "exchange refused the stream: Invalid request: invalid stream (code 2)" {
		t.Errorf("messages of the refused stream %+v; want one Err message", msgs)
	}
	if got := rec.streams(); !slices.Equal(got, []string{"binance:ethusdt@trade"}) {
		t.Errorf("messages published for %q; want only the refused stream", got)
	}
	// Subscribing it again tries again (and fails again, with Seq going on).
	b.Subscribe([]string{"ethusdt@trade"})
	waitfor.Cond(t, 5*time.Second, func() error {
		if msgs := rec.get("binance:ethusdt@trade"); len(msgs) != 2 || msgs[1].Err == "" || msgs[1].Seq != 2 {
			return fmt.Errorf("messages %+v", msgs)
		}
		return nil
	})
}

func TestBinanceReplyTimeout(t *testing.T) {
	srv := newWSScript(t, nil, func(c *scriptConn) {
		for { // never replies
			if _, err := c.read(); err != nil {
				return
			}
		}
	})
	info := newExchangeInfoServer(t, exchangeInfoBody)
	b, err := newSpot(Config{
		URL: srv.url(), RESTURL: info.URL, Publisher: nopPublisher{}, Logger: testLogger(t),
		RequestInterval: 20 * time.Millisecond, ReplyTimeout: 200 * time.Millisecond,
		BackoffMin: 50 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	runBinance(t, b)
	waitfor.Cond(t, 5*time.Second, b.Ready) // connected: streams go by requests
	b.Subscribe([]string{"btcusdt@trade", "ethusdt@trade"})
	waitfor.Cond(t, 5*time.Second, func() error {
		if n := len(srv.connections()); n < 2 {
			return fmt.Errorf("%d connections", n)
		}
		return nil
	})
	first := srv.connections()[0].received()
	var reqs []request
	for _, f := range first {
		if f.op == ws.OpText {
			reqs = append(reqs, decodeRequest(t, f))
		}
	}
	if len(reqs) != 2 {
		t.Fatalf("first connection got %d requests %+v; want the request and one retry", len(reqs), reqs)
	}
	if !slices.Equal(reqs[0].Params, reqs[1].Params) || reqs[0].ID == reqs[1].ID {
		t.Errorf("retry %+v of %+v; want the same params with a fresh id", reqs[1], reqs[0])
	}
	if gap := first[1].at.Sub(first[0].at); gap < 150*time.Millisecond {
		t.Errorf("retry after %v; want after the reply timeout", gap)
	}
	if st := b.Status(); !strings.Contains(st.LastError, "reply timeout") {
		t.Errorf("LastError = %q; want a reply timeout", st.LastError)
	}
}
