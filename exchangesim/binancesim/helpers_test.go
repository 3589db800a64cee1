package binancesim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/marketgate/marketgate/internal/waitfor"
)

// quiet is a TickInterval long enough that no market data flows during a
// test, so replies can be compared byte for byte.
const quiet = time.Hour

// testLogger logs to the test's output at warn level and above.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// testServer is a Server running on a loopback listener.
type testServer struct {
	*Server
	addr string
}

func (ts *testServer) wsURL(path string) string   { return "ws://" + ts.addr + path }
func (ts *testServer) httpURL(path string) string { return "http://" + ts.addr + path }

// startServer runs a Server for the test. When the test ends, Run must
// return nil within 10 s.
func startServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	return startServerWith(t, cfg, nil)
}

// startServerWith is startServer with prep run on the Server before Run.
func startServerWith(t *testing.T, cfg Config, prep func(*Server)) *testServer {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if prep != nil {
		prep(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(t.Context(), ln) }()
	t.Cleanup(func() {
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v; want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return within 10s of cancel")
		}
	})
	return &testServer{Server: s, addr: ln.Addr().String()}
}

// client is a test WebSocket client built on gobwas/ws.
type client struct {
	t  *testing.T
	nc net.Conn
	r  io.Reader
	// autoPong answers server pings while reading.
	autoPong bool
}

// frame is one received frame.
type frame struct {
	op      ws.OpCode
	payload []byte
}

// dial connects to url or fails the test.
func dial(t *testing.T, url string) *client {
	t.Helper()
	c, err := tryDial(t, url)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	return c
}

func tryDial(t *testing.T, url string) (*client, error) {
	d := ws.Dialer{Timeout: 5 * time.Second}
	nc, br, _, err := d.Dial(context.Background(), url)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { nc.Close() })
	c := &client{t: t, nc: nc, r: nc}
	if br != nil {
		c.r = br
	}
	return c, nil
}

// write sends one client frame.
func (c *client) write(op ws.OpCode, p []byte) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := wsutil.WriteClientMessage(c.nc, op, p); err != nil {
		c.t.Fatalf("write %v: %v", op, err)
	}
}

func (c *client) send(s string) { c.t.Helper(); c.write(ws.OpText, []byte(s)) }

// next reads one frame within timeout.
func (c *client) next(timeout time.Duration) (frame, error) {
	c.nc.SetReadDeadline(time.Now().Add(timeout))
	h, err := ws.ReadHeader(c.r)
	if err != nil {
		return frame{}, err
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(c.r, p); err != nil {
		return frame{}, err
	}
	if h.Masked {
		ws.Cipher(p, h.Mask, 0)
	}
	if !h.Fin {
		return frame{}, errors.New("server sent a fragment")
	}
	return frame{op: h.OpCode, payload: p}, nil
}

// data returns the next data frame, skipping (or answering) pings.
func (c *client) data(timeout time.Duration) []byte {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		f, err := c.next(time.Until(deadline))
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		switch f.op {
		case ws.OpText:
			return f.payload
		case ws.OpPing:
			if c.autoPong {
				c.write(ws.OpPong, f.payload)
			}
		case ws.OpClose:
			code, reason := ws.ParseCloseFrameData(f.payload)
			c.t.Fatalf("unexpected close %d %q", code, reason)
		}
	}
}

// isReply reports whether p is a method reply rather than market data.
func isReply(p []byte) bool {
	return bytes.HasPrefix(p, []byte(`{"result":`)) || bytes.HasPrefix(p, []byte(`{"error":`))
}

// reply returns the next method reply, skipping market data.
func (c *client) reply(timeout time.Duration) string {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if p := c.data(time.Until(deadline)); isReply(p) {
			return string(p)
		}
	}
}

// call sends a request and returns its reply.
func (c *client) call(req string) string {
	c.t.Helper()
	c.send(req)
	return c.reply(2 * time.Second)
}

// expectClose reads until a close frame and returns its code and reason.
func (c *client) expectClose(timeout time.Duration) (ws.StatusCode, string) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		f, err := c.next(time.Until(deadline))
		if err != nil {
			c.t.Fatalf("waiting for close: %v", err)
		}
		if f.op == ws.OpClose {
			code, reason := ws.ParseCloseFrameData(f.payload)
			// Answer like a well-behaved client; the server may already
			// have closed the TCP connection.
			wsutil.WriteClientMessage(c.nc, ws.OpClose, ws.NewCloseFrameBody(code, ""))
			return code, reason
		}
		if f.op == ws.OpPing && c.autoPong {
			c.write(ws.OpPong, f.payload)
		}
	}
}

// assertOpen checks the connection still answers requests.
func (c *client) assertOpen() {
	c.t.Helper()
	if got := c.call(`{"method":"GET_PROPERTY","params":["combined"],"id":99}`); !strings.HasPrefix(got, `{"result":`) {
		c.t.Fatalf("connection not usable: reply %s", got)
	}
}

// combinedMsg is the combined wrapper.
type combinedMsg struct {
	Stream string          `json:"stream"`
	Data   json.RawMessage `json:"data"`
}

// collect reads combined messages for d or until n messages arrived,
// grouped by stream.
func (c *client) collect(d time.Duration, n int) map[string][]json.RawMessage {
	c.t.Helper()
	total := 0
	return c.collectUntil(d, func(map[string][]json.RawMessage) bool {
		total++
		return total >= n
	})
}

// collectAll reads combined messages until every stream in want has sent
// one, or d passes.
func (c *client) collectAll(d time.Duration, want ...string) map[string][]json.RawMessage {
	c.t.Helper()
	return c.collectUntil(d, func(got map[string][]json.RawMessage) bool {
		for _, w := range want {
			if len(got[w]) == 0 {
				return false
			}
		}
		return true
	})
}

// collectUntil reads combined messages, grouped by stream, until done
// (called after each message) returns true or d passes.
func (c *client) collectUntil(d time.Duration, done func(map[string][]json.RawMessage) bool) map[string][]json.RawMessage {
	c.t.Helper()
	out := map[string][]json.RawMessage{}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		f, err := c.next(time.Until(deadline))
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				break
			}
			c.t.Fatalf("read: %v", err)
		}
		if f.op == ws.OpPing {
			c.write(ws.OpPong, f.payload)
			continue
		}
		if f.op != ws.OpText || isReply(f.payload) {
			continue
		}
		var m combinedMsg
		if err := json.Unmarshal(f.payload, &m); err != nil || m.Stream == "" {
			c.t.Fatalf("not a combined message: %s", f.payload)
		}
		out[m.Stream] = append(out[m.Stream], m.Data)
		if done(out) {
			break
		}
	}
	return out
}

// jsonKeys returns the keys of a JSON object in document order.
func jsonKeys(t *testing.T, p []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(p))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", p)
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatalf("token: %v in %s", err, p)
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatalf("value: %v in %s", err, p)
		}
	}
	return keys
}

// clientStats returns the stats of the connection with the given id.
func clientStats(t *testing.T, s *Server, id uint64) ClientStats {
	t.Helper()
	for _, st := range s.Clients() {
		if st.ID == id {
			return st
		}
	}
	t.Fatalf("no client %d in %d clients", id, len(s.Clients()))
	return ClientStats{}
}

// lastClient returns the stats of the most recent connection.
func lastClient(t *testing.T, s *Server) ClientStats {
	t.Helper()
	all := s.Clients()
	if len(all) == 0 {
		t.Fatalf("no clients")
	}
	return all[len(all)-1]
}

// waitClosed waits until the most recent connection is fully closed.
func waitClosed(t *testing.T, s *Server) ClientStats {
	t.Helper()
	var st ClientStats
	waitfor.Cond(t, 5*time.Second, func() error {
		all := s.Clients()
		if len(all) == 0 {
			return errors.New("no clients yet")
		}
		st = all[len(all)-1]
		if !st.Closed {
			return fmt.Errorf("client %d still open", st.ID)
		}
		return nil
	})
	return st
}

func errorsAs(err error, target any) bool { return err != nil && errors.As(err, target) }

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// listen opens a loopback listener.
func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	return ln
}
