package downstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
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
	nc, peer := net.Pipe()
	t.Cleanup(func() { nc.Close(); peer.Close() })
	c := &conn{srv: srv, proto: protoFor(native), nc: nc}
	c.writing = true
	return c
}

// replies returns the payloads queued on c since the last call, after
// running the catch-ups its commands queued (no Run serves them here).
func replies(c *conn) [][]byte {
	for done := false; !done; {
		select {
		case cu := <-c.srv.catchups:
			c.srv.catchup(context.Background(), cu)
		default:
			done = true
		}
	}
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
		protoFor(false).handleText(c, p)
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

// recordSink records what a msgReader hands it; like a connection, it
// stops at a close frame.
type recordSink struct{ events []string }

func (s *recordSink) control(op ws.OpCode, p []byte) error {
	s.events = append(s.events, fmt.Sprintf("control %v %q", op, p))
	if op == ws.OpClose {
		return errPeerClosed
	}
	return nil
}

func (s *recordSink) message(op ws.OpCode, compressed bool, p []byte) error {
	s.events = append(s.events, fmt.Sprintf("message %v %t %q", op, compressed, p))
	return nil
}

// readAll feeds p to a fresh msgReader in chunks of the given size (all at
// once when chunk is 0) and returns what it handed on, the error it stopped
// at, and the reader.
func readAll(p []byte, chunk int, deflate bool) ([]string, error, *msgReader) {
	r := &msgReader{limit: 64, deflate: deflate}
	var sink recordSink
	p = bytes.Clone(p)
	if chunk == 0 {
		chunk = len(p)
	}
	for len(p) > 0 {
		n := min(chunk, len(p))
		if err := r.feed(p[:n], &sink); err != nil {
			return sink.events, err, r
		}
		p = p[n:]
	}
	return sink.events, nil, r
}

// FuzzReadFrames feeds arbitrary bytes to the incremental frame reader as a
// client might send them, whole and split into chunks, and checks that
// every outcome is a defined one: the same frames and messages, in the same
// order, and the same error however the bytes are split; an error that maps
// to a close code; and never more kept than one frame within the limit.
func FuzzReadFrames(f *testing.F) {
	masked := func(fr ws.Frame) []byte { return ws.MustCompileFrame(ws.MaskFrame(fr)) }
	f.Add(masked(ws.NewTextFrame([]byte(`{"op":"ping","id":1}`))), uint8(1), false)
	f.Add(append(masked(ws.NewFrame(ws.OpText, false, []byte(`{"op":`))), masked(ws.NewFrame(ws.OpContinuation, true, []byte(`"list"}`)))...), uint8(3), false)
	f.Add(append(masked(ws.NewFrame(ws.OpText, false, []byte(`{"op":`))), append(masked(ws.NewPingFrame([]byte("p"))), masked(ws.NewFrame(ws.OpContinuation, true, []byte(`"list"}`)))...)...), uint8(2), true)
	f.Add(masked(ws.NewPingFrame([]byte("p"))), uint8(1), false)
	f.Add(append(masked(ws.NewPingFrame([]byte("p"))), masked(ws.NewCloseFrame(ws.NewCloseFrameBody(1000, "")))...), uint8(5), false)
	f.Add(ws.MustCompileFrame(ws.NewTextFrame([]byte("unmasked"))), uint8(1), false)
	f.Add([]byte{0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, uint8(4), false)
	f.Add([]byte{0xc1, 0x85, 1, 2, 3, 4, 'a', 'b', 'c', 'd', 'e'}, uint8(2), true)
	f.Fuzz(func(t *testing.T, p []byte, chunk uint8, deflate bool) {
		whole, werr, _ := readAll(p, 0, deflate)
		split, serr, r := readAll(p, int(chunk%16)+1, deflate)
		if fmt.Sprint(whole) != fmt.Sprint(split) || fmt.Sprint(werr) != fmt.Sprint(serr) {
			t.Fatalf("whole: %v, %v\nin chunks of %d: %v, %v", whole, werr, chunk%16+1, split, serr)
		}
		if serr != nil {
			code, _, drop := closeFor(serr)
			if code == 0 && !errors.Is(serr, errPeerClosed) {
				t.Fatalf("error %v has no close code (drop %q)", serr, drop)
			}
			return
		}
		// A frame is a header (at most 14 bytes) and a payload within the
		// limit, or within 125 bytes for a control frame.
		if len(r.partial) > 125+14 || len(r.msg) > 64 {
			t.Fatalf("reader keeps %d bytes of a frame and %d of a message; limit 64", len(r.partial), len(r.msg))
		}
	})
}

// protoFor returns the native protocol, or the Binance dialect when native
// is false.
func protoFor(native bool) protocol {
	if native {
		return nativeProto{}
	}
	return dialects[0]
}
