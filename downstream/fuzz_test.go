package downstream

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/gobwas/ws"

	"github.com/marketgate/marketgate/hub"
)

// commandConn returns an open connection whose replies stay in its queue
// (no flush runs), for feeding commands straight to a protocol.
func commandConn(t testing.TB, native bool) *conn {
	srv, err := New(Config{Hub: hub.NewMemory(), Source: newFakeSource(), MaxStreamsPerConn: 4})
	if err != nil {
		t.Fatal(err)
	}
	c := &conn{srv: srv, native: native}
	c.writing = true
	return c
}

// replies returns the payloads queued on c since the last call.
func replies(c *conn) [][]byte {
	var out [][]byte
	for _, q := range c.queue {
		out = append(out, q.frame[headerLen(q.frame):])
	}
	c.queue = c.queue[:0]
	return out
}

// headerLen is the length of an unmasked server frame's header.
func headerLen(f []byte) int {
	switch f[1] & 0x7f {
	case 126:
		return 4
	case 127:
		return 10
	}
	return 2
}

var commandSeeds = []string{
	`{"op":"subscribe","id":1,"streams":["binance:btcusdt@trade"]}`,
	`{"op":"unsubscribe","id":"a","streams":["binance:btcusdt@trade"]}`,
	`{"op":"list","id":3}`, `{"op":"ping"}`, `{"op":"subscribe","id":1,`, `[]`, `null`, `""`,
	`{"op":"subscribe","id":{"x":1},"streams":[1,2]}`,
	`{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":1}`,
	`{"method":"SET_PROPERTY","params":["combined",true],"id":"x1"}`,
	`{"method":"LIST_SUBSCRIPTIONS","id":null}`, `{"method":5}`, `{"params":[],"id":-9223372036854775808}`,
}

// FuzzNativeCommand checks that every client message gets exactly one reply,
// which is a JSON object with an id and either a result or an error.
func FuzzNativeCommand(f *testing.F) {
	for _, s := range commandSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		c := commandConn(t, true)
		nativeProto{}.handleText(c, p)
		rs := replies(c)
		if len(rs) != 1 {
			t.Fatalf("%d replies to %q; want 1", len(rs), p)
		}
		var r map[string]json.RawMessage
		if err := json.Unmarshal(rs[0], &r); err != nil {
			t.Fatalf("reply %q to %q is not a JSON object: %v", rs[0], p, err)
		}
		_, hasID := r["id"]
		_, hasResult := r["result"]
		_, hasError := r["error"]
		if !hasID || hasResult == hasError {
			t.Fatalf("reply %s to %q: want an id and exactly one of result and error", rs[0], p)
		}
	})
}

// FuzzDialectCommand checks the Binance dialect the same way: one reply,
// {"result":…,"id":…} or {"error":{"code":…,"msg":…}[,"id":…]}.
func FuzzDialectCommand(f *testing.F) {
	for _, s := range commandSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		c := commandConn(t, false)
		dialectProto{}.handleText(c, p)
		rs := replies(c)
		if len(rs) != 1 {
			t.Fatalf("%d replies to %q; want 1", len(rs), p)
		}
		var r struct {
			Result *json.RawMessage `json:"result"`
			Error  *struct {
				Code *int    `json:"code"`
				Msg  *string `json:"msg"`
			} `json:"error"`
		}
		if err := json.Unmarshal(rs[0], &r); err != nil {
			t.Fatalf("reply %q to %q is not JSON: %v", rs[0], p, err)
		}
		if r.Error != nil && (r.Error.Code == nil || r.Error.Msg == nil) {
			t.Fatalf("error reply %s to %q lacks code or msg", rs[0], p)
		}
	})
}

// FuzzReadFrames feeds arbitrary bytes to a connection's frame reader as if
// a client sent them, and checks that every outcome is a defined one:
// messages handled, or an error that maps to a close code or to a drop of
// a vanished peer. It never panics and never loops.
func FuzzReadFrames(f *testing.F) {
	masked := func(fr ws.Frame) []byte { return ws.MustCompileFrame(ws.MaskFrame(fr)) }
	f.Add(masked(ws.NewTextFrame([]byte(`{"op":"ping","id":1}`))))
	f.Add(append(masked(ws.NewFrame(ws.OpText, false, []byte(`{"op":`))), masked(ws.NewFrame(ws.OpContinuation, true, []byte(`"list"}`)))...))
	f.Add(masked(ws.NewPingFrame([]byte("p"))))
	f.Add(masked(ws.NewCloseFrame(ws.NewCloseFrameBody(1000, ""))))
	f.Add(ws.MustCompileFrame(ws.NewTextFrame([]byte("unmasked"))))
	f.Add([]byte{0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, p []byte) {
		c := commandConn(t, true)
		c.state.Store(stateClosed) // closeWith and finish become no-ops
		c.proto = nativeProto{}
		c.srv.cfg.MaxMessageSize = 64
		rd := c.frameReader(bytes.NewReader(p))
		defer releaseFrameReader(rd)
		var msg bytes.Buffer
		for range len(p) + 1 { // every iteration consumes at least a 2-byte header
			msg.Reset()
			op, err := c.readMessage(rd, &msg)
			if err != nil {
				code, _, drop := closeFor(err)
				if code == 0 && drop == "" && !errors.Is(err, errPeerClosed) {
					t.Fatalf("error %v has no defined outcome", err)
				}
				if drop == "read_error" {
					t.Fatalf("error %v is not a protocol outcome", err)
				}
				return
			}
			if op == ws.OpText {
				c.proto.handleText(c, msg.Bytes())
			}
		}
		t.Fatalf("reader did not finish %d bytes", len(p))
	})
}
