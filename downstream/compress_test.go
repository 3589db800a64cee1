package downstream

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/gobwas/ws/wsutil"
	"github.com/gorilla/websocket"

	"github.com/marketgate/marketgate/hub"
)

// deflateClient is a raw gobwas client that offers permessage-deflate, so
// tests see the server's frames as sent (RSV1, compressed payload) and can
// write any frame.
type deflateClient struct {
	t        *testing.T
	nc       net.Conn
	br       *bufio.Reader // frames right behind the 101, then the conn
	accepted bool          // the server accepted permessage-deflate
}

func dialDeflate(t *testing.T, url string) *deflateClient {
	t.Helper()
	d := ws.Dialer{
		Timeout:    5 * time.Second,
		Extensions: []httphead.Option{wsflate.DefaultParameters.Option()},
	}
	nc, br, hs, err := d.Dial(context.Background(), url)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { nc.Close() })
	if br == nil {
		br = bufio.NewReader(nc)
	}
	c := &deflateClient{t: t, nc: nc, br: br}
	for _, x := range hs.Extensions {
		if string(x.Name) == wsflate.ExtensionName {
			c.accepted = true
		}
	}
	return c
}

// sendCompressed writes p as one masked, compressed text message.
func (c *deflateClient) sendCompressed(p string) {
	c.t.Helper()
	f, err := wsflate.CompressFrame(ws.NewTextFrame([]byte(p)))
	if err != nil {
		c.t.Fatal(err)
	}
	c.write(f)
}

func (c *deflateClient) write(f ws.Frame) {
	c.t.Helper()
	if err := ws.WriteFrame(c.nc, ws.MaskFrame(f)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// next returns the next frame's header and payload, decompressed when RSV1
// is set, skipping pings.
func (c *deflateClient) next() (ws.Header, []byte) {
	c.t.Helper()
	for {
		c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		h, err := ws.ReadHeader(c.br)
		if err != nil {
			c.t.Fatalf("read header: %v", err)
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(c.br, p); err != nil {
			c.t.Fatalf("read payload: %v", err)
		}
		if h.OpCode == ws.OpPing {
			continue
		}
		if h.Rsv1() {
			f, err := wsflate.DecompressFrame(ws.Frame{Header: h, Payload: p})
			if err != nil {
				c.t.Fatalf("decompress: %v", err)
			}
			p = f.Payload
		}
		return h, p
	}
}

// expectClose reads up to the server's close frame and returns its code.
func (c *deflateClient) expectClose() ws.StatusCode {
	c.t.Helper()
	for {
		h, p := c.next()
		if h.OpCode == ws.OpClose {
			code, _ := ws.ParseCloseFrameData(p)
			return code
		}
	}
}

func TestCompressionGorilla(t *testing.T) {
	env := startServer(t, Config{})
	const key = "binance:btcusdt@bookTicker"
	d := websocket.Dialer{EnableCompression: true}
	c, resp, err := d.Dial(env.url+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.Contains(got, "permessage-deflate") {
		t.Fatalf("Sec-WebSocket-Extensions = %q; want permessage-deflate", got)
	}
	read := func() string {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, p, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		return string(p)
	}
	// gorilla compresses what it writes once deflate is negotiated.
	if err := c.WriteMessage(websocket.TextMessage, []byte(`{"op":"subscribe","id":1,"streams":["`+key+`"]}`)); err != nil {
		t.Fatal(err)
	}
	if got, want := read(), `{"id":1,"result":{"streams":["`+key+`"]}}`; !jsonEqual([]byte(got), []byte(want)) {
		t.Fatalf("reply = %s; want %s", got, want)
	}
	data := `{"u":1,"s":"BTCUSDT","b":"` + strings.Repeat("1", 500) + `"}`
	for seq := range uint64(3) {
		publish(t, env.hub, key, seq+1, data)
	}
	for seq := 1; seq <= 3; seq++ {
		want := fmt.Sprintf(`{"stream":%q,"seq":%d,"data":%s}`, key, seq, data)
		if got := read(); got != want {
			t.Fatalf("message %d = %.80s…; want %.80s…", seq, got, want)
		}
	}
}

func TestCompressionOnTheWire(t *testing.T) {
	env := startServer(t, Config{})
	const key = "binance:ethusdt@trade"
	c := dialDeflate(t, env.url+"/binance/ws/ethusdt@trade")
	if !c.accepted {
		t.Fatal("server did not accept permessage-deflate")
	}
	env.waitSubscribers(t, key, 1)
	data := `{"e":"trade","t":1,"p":"` + strings.Repeat("9", 300) + `"}`
	publish(t, env.hub, key, 1, data)
	h, p := c.next()
	if !h.Rsv1() || h.OpCode != ws.OpText || h.Length >= int64(len(data)) {
		t.Fatalf("stream frame: rsv1=%v op=%v length %d of %d; want a compressed text frame", h.Rsv1(), h.OpCode, h.Length, len(data))
	}
	if string(p) != data {
		t.Fatalf("message = %.60s…; want %.60s…", p, data)
	}
	// A compressed command works, and its reply may go uncompressed.
	c.sendCompressed(`{"method":"LIST_SUBSCRIPTIONS","id":7}`)
	if _, p := c.next(); string(p) != `{"result":["ethusdt@trade"],"id":7}` {
		t.Fatalf("reply = %s", p)
	}
	// So does an uncompressed one on the same connection.
	c.write(ws.NewTextFrame([]byte(`{"method":"LIST_SUBSCRIPTIONS","id":8}`)))
	if _, p := c.next(); string(p) != `{"result":["ethusdt@trade"],"id":8}` {
		t.Fatalf("reply = %s", p)
	}
}

func TestCompressionOff(t *testing.T) {
	t.Run("not offered", func(t *testing.T) {
		env := startServer(t, Config{})
		d := websocket.Dialer{}
		c, resp, err := d.Dial(env.url+"/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got := resp.Header.Get("Sec-WebSocket-Extensions"); got != "" {
			t.Fatalf("Sec-WebSocket-Extensions = %q; want none", got)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		env := startServer(t, Config{DisableCompression: true})
		const key = "binance:ethusdt@trade"
		c := dialDeflate(t, env.url+"/binance/ws/ethusdt@trade")
		if c.accepted {
			t.Fatal("server accepted permessage-deflate with DisableCompression")
		}
		env.waitSubscribers(t, key, 1)
		publish(t, env.hub, key, 1, `{"t":1}`)
		if h, p := c.next(); h.Rsv != 0 || string(p) != `{"t":1}` {
			t.Fatalf("frame rsv=%d payload %s; want uncompressed {\"t\":1}", h.Rsv, p)
		}
		// RSV1 means nothing without the extension.
		f, _ := wsflate.CompressFrame(ws.NewTextFrame([]byte(`{"method":"LIST_SUBSCRIPTIONS","id":1}`)))
		c.write(f)
		if got := c.expectClose(); got != ws.StatusProtocolError {
			t.Fatalf("close code = %d; want 1002", got)
		}
	})
}

// TestCompressedFramesShared checks that a message is compressed once per
// wire form, that every compressing subscriber queues the very same bytes,
// and that nothing is compressed for subscribers that did not negotiate it.
func TestCompressedFramesShared(t *testing.T) {
	srv, err := New(Config{Hub: hub.NewMemory(), Source: newFakeSource()})
	if err != nil {
		t.Fatal(err)
	}
	const key = "binance:btcusdt@trade"
	newConn := func(native, deflate bool) *conn {
		c := &conn{srv: srv, proto: protoFor(native), deflate: deflate}
		c.writing = true // hold frames in the queue: no flush runs here
		return c
	}
	conns := []*conn{
		newConn(true, true), newConn(true, true), // native, compressed
		newConn(false, true), newConn(false, true), // dialect raw, compressed
		newConn(true, false), newConn(false, false), // uncompressed
	}
	tp := newTopic(key)
	tp.subs.Store(&conns)
	srv.topics.topics[key] = tp
	data := `{"t":1,"p":"` + strings.Repeat("5", 200) + `"}`
	srv.Receive(hub.Message{Stream: key, Seq: 3, Data: []byte(data)})

	wantPayload := []string{
		`{"stream":"binance:btcusdt@trade","seq":3,"data":` + data + `}`,
		data,
	}
	for i := 0; i < 4; i += 2 {
		a, b := conns[i].queue, conns[i+1].queue
		if len(a) != 1 || len(b) != 1 {
			t.Fatalf("conns %d,%d queued %d and %d frames; want 1 each", i, i+1, len(a), len(b))
		}
		if &a[0].frame[0] != &b[0].frame[0] {
			t.Errorf("conns %d and %d queued different copies of the compressed frame", i, i+1)
		}
		h, err := ws.ReadHeader(bytes.NewReader(a[0].frame))
		if err != nil {
			t.Fatal(err)
		}
		if !h.Rsv1() || h.Rsv2() || h.Rsv3() || !h.Fin || h.OpCode != ws.OpText {
			t.Fatalf("conn %d frame header %+v; want a final text frame with RSV1 only", i, h)
		}
		f, err := wsflate.DecompressFrame(ws.Frame{Header: h, Payload: a[0].frame[ws.HeaderSize(h):]})
		if err != nil {
			t.Fatalf("conn %d: decompress: %v", i, err)
		}
		if got := string(f.Payload); got != wantPayload[i/2] {
			t.Errorf("conn %d payload = %s; want %s", i, got, wantPayload[i/2])
		}
	}
	for i, c := range conns[4:] {
		f := c.queue[0].frame
		h, err := ws.ReadHeader(bytes.NewReader(f))
		if err != nil || h.Rsv != 0 || string(f[ws.HeaderSize(h):]) != wantPayload[i] {
			t.Errorf("uncompressed conn %d queued %q (%v); want %s without RSV bits", i, f, err, wantPayload[i])
		}
	}
}

// TestCompressedReadPath checks what a client that negotiated
// permessage-deflate may and may not send.
func TestCompressedReadPath(t *testing.T) {
	env := startServer(t, Config{MaxMessageSize: 256})
	ping := []byte(`{"op":"ping","id":1}`)
	compressed := func(p []byte) ws.Frame {
		f, err := wsflate.CompressFrame(ws.NewTextFrame(p))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	tests := []struct {
		name      string
		write     func(c *deflateClient)
		wantClose ws.StatusCode // 0: a pong reply
	}{
		{"compressed command", func(c *deflateClient) { c.write(compressed(ping)) }, 0},
		{"compressed fragments", func(c *deflateClient) {
			f := compressed(ping)
			first := ws.NewFrame(ws.OpText, false, f.Payload[:3])
			first.Header.Rsv = f.Header.Rsv
			c.write(first)
			c.write(ws.NewFrame(ws.OpContinuation, true, f.Payload[3:]))
		}, 0},
		{"decompression bomb", func(c *deflateClient) {
			// 128 KiB of spaces compress to fewer bytes than the limit
			// allows; inflated, they are 512 times the limit.
			f := compressed(bytes.Repeat([]byte(" "), 128<<10))
			if f.Header.Length >= 256 {
				t.Fatalf("bomb compresses to %d bytes; want it within the limit", f.Header.Length)
			}
			c.write(f)
		}, ws.StatusMessageTooBig},
		{"inflates just past the limit", func(c *deflateClient) {
			c.write(compressed(bytes.Repeat([]byte(" "), 257)))
		}, ws.StatusMessageTooBig},
		{"RSV2 with deflate negotiated", func(c *deflateClient) {
			f := ws.NewTextFrame(ping)
			f.Header.Rsv = ws.Rsv(false, true, false)
			c.write(f)
		}, ws.StatusProtocolError},
		{"RSV3 on a compressed frame", func(c *deflateClient) {
			f := compressed(ping)
			f.Header.Rsv |= ws.Rsv(false, false, true)
			c.write(f)
		}, ws.StatusProtocolError},
		{"RSV1 on a ping", func(c *deflateClient) {
			f := ws.NewPingFrame([]byte("x"))
			f.Header.Rsv = ws.Rsv(true, false, false)
			c.write(f)
		}, ws.StatusProtocolError},
		{"RSV1 on a continuation", func(c *deflateClient) {
			c.write(ws.NewFrame(ws.OpText, false, ping[:3]))
			f := ws.NewFrame(ws.OpContinuation, true, ping[3:])
			f.Header.Rsv = ws.Rsv(true, false, false)
			c.write(f)
		}, ws.StatusProtocolError},
		{"corrupt deflate data", func(c *deflateClient) {
			f := ws.NewTextFrame([]byte{0xff, 0xff, 0xff, 0xff})
			f.Header.Rsv = ws.Rsv(true, false, false)
			c.write(f)
		}, ws.StatusInvalidFramePayloadData},
		{"invalid UTF-8 inside a compressed message", func(c *deflateClient) {
			c.write(compressed([]byte{'"', 0xff, 0xfe, '"'}))
		}, ws.StatusInvalidFramePayloadData},
		{"invalid UTF-8 uncompressed", func(c *deflateClient) {
			c.write(ws.NewTextFrame([]byte{'"', 0xff, 0xfe, '"'}))
		}, ws.StatusInvalidFramePayloadData},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := dialDeflate(t, env.url+"/ws")
			if !c.accepted {
				t.Fatal("server did not accept permessage-deflate")
			}
			tc.write(c)
			if tc.wantClose == 0 {
				if _, p := c.next(); string(p) != `{"id":1,"result":"pong"}` {
					t.Fatalf("reply = %s; want the pong", p)
				}
				return
			}
			if got := c.expectClose(); got != tc.wantClose {
				t.Fatalf("close code = %d; want %d", got, tc.wantClose)
			}
		})
	}
}

// TestCompressionDeclinedForSmallServerWindow: compress/flate always uses a
// 32 KiB window, so an offer that limits the server's is declined and the
// connection goes on uncompressed.
func TestCompressionDeclinedForSmallServerWindow(t *testing.T) {
	env := startServer(t, Config{})
	d := ws.Dialer{Timeout: 5 * time.Second, Header: ws.HandshakeHeaderHTTP(http.Header{
		"Sec-WebSocket-Extensions": {"permessage-deflate; server_max_window_bits=10"},
	})}
	nc, _, hs, err := d.Dial(context.Background(), env.url+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if len(hs.Extensions) != 0 {
		t.Fatalf("extensions = %v; want none", hs.Extensions)
	}
	wsutil.WriteClientText(nc, []byte(`{"op":"ping","id":1}`))
	p, err := wsutil.ReadServerText(nc)
	if err != nil || string(p) != `{"id":1,"result":"pong"}` {
		t.Fatalf("reply = %s, %v", p, err)
	}
}

// TestInflateStopsAtTheLimit checks that a decompression bomb costs no more
// than the message size limit: decompression stops right past it.
func TestInflateStopsAtTheLimit(t *testing.T) {
	c := &conn{srv: &Server{cfg: Config{MaxMessageSize: 4096}}, proto: nativeProto{}, deflate: true}
	f, err := wsflate.CompressFrame(ws.NewTextFrame(bytes.Repeat([]byte(" "), 16<<20)))
	if err != nil {
		t.Fatal(err)
	}
	var m1, m2 runtime.MemStats
	runtime.ReadMemStats(&m1)
	_, err = c.inflate(f.Payload)
	runtime.ReadMemStats(&m2)
	if !errors.Is(err, wsutil.ErrMessageTooLarge) {
		t.Fatalf("inflate(16 MiB bomb) = %v; want ErrMessageTooLarge", err)
	}
	if n := m2.TotalAlloc - m1.TotalAlloc; n > 1<<20 {
		t.Errorf("inflating the bomb allocated %d bytes; want it stopped near the 4 KiB limit", n)
	}
}

func TestAppendHeader(t *testing.T) {
	for _, n := range []int64{0, 125, 126, 65535, 65536, 1 << 40} {
		for _, h := range []ws.Header{
			{Fin: true, Rsv: ws.Rsv(true, false, false), OpCode: ws.OpText, Length: n},
			{Fin: false, OpCode: ws.OpContinuation, Length: n},
		} {
			var want bytes.Buffer
			if err := ws.WriteHeader(&want, h); err != nil {
				t.Fatal(err)
			}
			if got := appendHeader([]byte("x"), h); !bytes.Equal(got[1:], want.Bytes()) || got[0] != 'x' {
				t.Errorf("appendHeader(%+v) = %x; want x%x", h, got, want.Bytes())
			}
		}
	}
}
