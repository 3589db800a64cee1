package downstream

import (
	"bytes"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/marketgate/marketgate/downstream/downstreamtest"
)

// frame writes one masked client frame with the given header bits.
func frame(nc net.Conn, fin bool, rsv byte, op ws.OpCode, p []byte) {
	f := ws.NewFrame(op, fin, bytes.Clone(p))
	f.Header.Rsv = rsv
	ws.WriteFrame(nc, ws.MaskFrame(f))
}

// TestConformance is the RFC 6455 table: each row writes raw frames and
// states what the server must answer: a reply (the connection lives on), a
// pong, or a close with the code the RFC names.
func TestConformance(t *testing.T) {
	env := startServer(t, Config{MaxMessageSize: 64})
	ping := []byte(`{"op":"ping","id":1}`)
	const pong = `{"id":1,"result":"pong"}`
	tests := []struct {
		name      string
		write     func(nc net.Conn)
		wantReply string        // a text reply, connection open
		wantPong  string        // a pong with this payload
		wantClose ws.StatusCode // or a close with this code
		// or these frames in this order: "pong <payload>", "text <json>",
		// "close <code>"
		wantFrames []string
	}{
		// Framing and masking (§5.1, §5.2, §5.3).
		{name: "masked text", write: func(nc net.Conn) { frame(nc, true, 0, ws.OpText, ping) }, wantReply: pong},
		{name: "unmasked frame", write: func(nc net.Conn) {
			ws.WriteFrame(nc, ws.NewTextFrame(ping))
		}, wantClose: ws.StatusProtocolError},
		{name: "RSV1 without an extension", write: func(nc net.Conn) { frame(nc, true, 4, ws.OpText, ping) }, wantClose: ws.StatusProtocolError},
		{name: "RSV2", write: func(nc net.Conn) { frame(nc, true, 2, ws.OpText, ping) }, wantClose: ws.StatusProtocolError},
		{name: "RSV3", write: func(nc net.Conn) { frame(nc, true, 1, ws.OpText, ping) }, wantClose: ws.StatusProtocolError},
		{name: "reserved data opcode 3", write: func(nc net.Conn) { frame(nc, true, 0, 3, nil) }, wantClose: ws.StatusProtocolError},
		{name: "reserved control opcode 11", write: func(nc net.Conn) { frame(nc, true, 0, 11, nil) }, wantClose: ws.StatusProtocolError},
		{name: "64-bit length with the top bit set", write: func(nc net.Conn) {
			nc.Write([]byte{0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4})
		}, wantClose: ws.StatusProtocolError},
		// Control frames (§5.5).
		{name: "ping gets a pong with its payload", write: func(nc net.Conn) { frame(nc, true, 0, ws.OpPing, []byte("abc")) }, wantPong: "abc"},
		{name: "unsolicited pong is ignored", write: func(nc net.Conn) {
			frame(nc, true, 0, ws.OpPong, []byte("x"))
			frame(nc, true, 0, ws.OpText, ping)
		}, wantReply: pong},
		{name: "fragmented control frame", write: func(nc net.Conn) { frame(nc, false, 0, ws.OpPing, []byte("a")) }, wantClose: ws.StatusProtocolError},
		{name: "control frame over 125 bytes", write: func(nc net.Conn) {
			frame(nc, true, 0, ws.OpPing, bytes.Repeat([]byte("a"), 126))
		}, wantClose: ws.StatusProtocolError},
		// Fragmentation (§5.4).
		{name: "fragmented message reassembled", write: func(nc net.Conn) {
			frame(nc, false, 0, ws.OpText, ping[:5])
			frame(nc, false, 0, ws.OpContinuation, ping[5:10])
			frame(nc, true, 0, ws.OpContinuation, ping[10:])
		}, wantReply: pong},
		{name: "ping between fragments", write: func(nc net.Conn) {
			frame(nc, false, 0, ws.OpText, ping[:5])
			frame(nc, true, 0, ws.OpPing, []byte("mid"))
			frame(nc, true, 0, ws.OpContinuation, ping[5:])
		}, wantPong: "mid"},
		{name: "continuation without a start", write: func(nc net.Conn) {
			frame(nc, true, 0, ws.OpContinuation, []byte("x"))
		}, wantClose: ws.StatusProtocolError},
		{name: "new message inside a fragmented one", write: func(nc net.Conn) {
			frame(nc, false, 0, ws.OpText, ping[:5])
			frame(nc, true, 0, ws.OpText, ping)
		}, wantClose: ws.StatusProtocolError},
		// Payload (§8.1, §10.4).
		{name: "invalid UTF-8", write: func(nc net.Conn) { frame(nc, true, 0, ws.OpText, []byte{'"', 0xff, '"'}) }, wantClose: ws.StatusInvalidFramePayloadData},
		{name: "invalid UTF-8 split across fragments", write: func(nc net.Conn) {
			frame(nc, false, 0, ws.OpText, []byte{'"', 0xe2, 0x82})
			frame(nc, true, 0, ws.OpContinuation, []byte{0x28, '"'})
		}, wantClose: ws.StatusInvalidFramePayloadData},
		{name: "valid UTF-8 split across fragments", write: func(nc net.Conn) {
			frame(nc, false, 0, ws.OpText, []byte(`{"op":"ping","id":"€`)[:19])
			frame(nc, true, 0, ws.OpContinuation, []byte(`{"op":"ping","id":"€"}`)[19:])
		}, wantReply: `{"id":"€","result":"pong"}`},
		{name: "message over the limit", write: func(nc net.Conn) {
			frame(nc, true, 0, ws.OpText, bytes.Repeat([]byte("x"), 65))
		}, wantClose: ws.StatusMessageTooBig},
		{name: "fragments over the limit together", write: func(nc net.Conn) {
			frame(nc, false, 0, ws.OpText, bytes.Repeat([]byte("x"), 40))
			frame(nc, true, 0, ws.OpContinuation, bytes.Repeat([]byte("x"), 40))
		}, wantClose: ws.StatusMessageTooBig},
		{name: "binary message", write: func(nc net.Conn) { frame(nc, true, 0, ws.OpBinary, []byte{1}) }, wantClose: ws.StatusUnsupportedData},
		// The close handshake (§5.5.1, §7.4).
		{name: "close 1000 echoed", write: func(nc net.Conn) {
			frame(nc, true, 0, ws.OpClose, ws.NewCloseFrameBody(1000, ""))
		}, wantClose: 1000},
		{name: "close 3000 echoed", write: func(nc net.Conn) {
			frame(nc, true, 0, ws.OpClose, ws.NewCloseFrameBody(3000, "app"))
		}, wantClose: 3000},
		{name: "close 4999 echoed", write: func(nc net.Conn) {
			frame(nc, true, 0, ws.OpClose, ws.NewCloseFrameBody(4999, ""))
		}, wantClose: 4999},
		{name: "empty close answered with 1000", write: func(nc net.Conn) { frame(nc, true, 0, ws.OpClose, nil) }, wantClose: 1000},
		{name: "one-byte close body", write: func(nc net.Conn) { frame(nc, true, 0, ws.OpClose, []byte{3}) }, wantClose: ws.StatusProtocolError},
		{name: "close 1005 is not sendable", write: func(nc net.Conn) {
			frame(nc, true, 0, ws.OpClose, ws.NewCloseFrameBody(1005, ""))
		}, wantClose: ws.StatusProtocolError},
		{name: "close 999", write: func(nc net.Conn) {
			frame(nc, true, 0, ws.OpClose, ws.NewCloseFrameBody(999, ""))
		}, wantClose: ws.StatusProtocolError},
		{name: "close 5000", write: func(nc net.Conn) {
			frame(nc, true, 0, ws.OpClose, ws.NewCloseFrameBody(5000, ""))
		}, wantClose: ws.StatusProtocolError},
		{name: "close reason not UTF-8", write: func(nc net.Conn) {
			frame(nc, true, 0, ws.OpClose, append(ws.NewCloseFrameBody(1000, ""), 0xff))
		}, wantClose: ws.StatusProtocolError},
		// Every frame read before a close frame is answered before the
		// close reply (§5.5.1, §5.5.2), also when they all arrive in one
		// TCP segment.
		{name: "ping and close in one segment", write: func(nc net.Conn) {
			segment(nc, maskedFrame(ws.OpPing, true, []byte("a")), maskedFrame(ws.OpClose, true, ws.NewCloseFrameBody(1000, "")))
		}, wantFrames: []string{"pong a", "close 1000"}},
		{name: "commands and close in one segment", write: func(nc net.Conn) {
			segment(nc, maskedFrame(ws.OpText, true, ping), maskedFrame(ws.OpText, true, []byte(`{"op":"list","id":2}`)),
				maskedFrame(ws.OpClose, true, ws.NewCloseFrameBody(3000, "")))
		}, wantFrames: []string{"text " + pong, `text {"id":2,"result":{"streams":[]}}`, "close 3000"}},
		{name: "ping, command, ping and empty close in one segment", write: func(nc net.Conn) {
			segment(nc, maskedFrame(ws.OpPing, true, []byte("1")), maskedFrame(ws.OpText, true, ping),
				maskedFrame(ws.OpPing, true, []byte("2")), maskedFrame(ws.OpClose, true, nil))
		}, wantFrames: []string{"pong 1", "text " + pong, "pong 2", "close 1000"}},
		{name: "fragmented command around a ping, then close, in one segment", write: func(nc net.Conn) {
			segment(nc, maskedFrame(ws.OpText, false, ping[:7]), maskedFrame(ws.OpPing, true, []byte("mid")),
				maskedFrame(ws.OpContinuation, true, ping[7:]), maskedFrame(ws.OpClose, true, ws.NewCloseFrameBody(1001, "")))
		}, wantFrames: []string{"pong mid", "text " + pong, "close 1001"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := downstreamtest.Dial(t, env.url+"/ws")
			tc.write(c.Conn())
			switch {
			case tc.wantFrames != nil:
				var got []string
				for len(got) < len(tc.wantFrames) {
					hdr, p, err := c.NextFrame(5 * time.Second)
					if err != nil {
						t.Fatalf("after %q: %v; want %q", got, err, tc.wantFrames)
					}
					switch hdr.OpCode {
					case ws.OpPong:
						got = append(got, "pong "+string(p))
					case ws.OpText:
						got = append(got, "text "+string(p))
					case ws.OpClose:
						code, _ := ws.ParseCloseFrameData(p)
						got = append(got, fmt.Sprintf("close %d", code))
					}
				}
				if !slices.Equal(got, tc.wantFrames) {
					t.Fatalf("got %q; want %q", got, tc.wantFrames)
				}
			case tc.wantReply != "":
				if got := string(c.Next()); got != tc.wantReply {
					t.Fatalf("reply = %s; want %s", got, tc.wantReply)
				}
			case tc.wantPong != "":
				hdr, p, err := c.NextFrame(5 * time.Second)
				if err != nil || hdr.OpCode != ws.OpPong || string(p) != tc.wantPong {
					t.Fatalf("got %v %q (%v); want a pong %q", hdr.OpCode, p, err, tc.wantPong)
				}
			default:
				if got := c.ExpectClose(); got != tc.wantClose {
					t.Fatalf("close code = %d; want %d", got, tc.wantClose)
				}
			}
		})
	}
}

// segment writes frames to nc in one write, so that they arrive together.
func segment(nc net.Conn, frames ...[]byte) {
	nc.Write(bytes.Join(frames, nil))
}
