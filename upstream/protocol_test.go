package upstream

import (
	"bytes"
	"io"
	"testing"

	"github.com/gobwas/ws"
)

// readClientFrame parses p as one frame a client sent.
func readClientFrame(t *testing.T, p []byte) ws.Frame {
	t.Helper()
	r := bytes.NewReader(p)
	h, err := ws.ReadHeader(r)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Masked {
		t.Fatalf("client frame is not masked")
	}
	payload := make([]byte, h.Length)
	if _, err := io.ReadFull(r, payload); err != nil {
		t.Fatal(err)
	}
	if r.Len() != 0 {
		t.Fatalf("%d bytes after the frame", r.Len())
	}
	return ws.UnmaskFrameInPlace(ws.Frame{Header: h, Payload: payload})
}

func TestOutFrameCompile(t *testing.T) {
	req := outFrame{req: &request{op: OpSubscribe, names: []string{"a", "b"}, id: 42}}
	p, err := req.compile(fakeDialect{})
	if err != nil {
		t.Fatal(err)
	}
	f := readClientFrame(t, p)
	if f.Header.OpCode != ws.OpText {
		t.Errorf("request opcode = %v; want text", f.Header.OpCode)
	}
	if got, want := string(f.Payload), `{"op":"SUBSCRIBE","args":["a","b"],"id":"42"}`; got != want {
		t.Errorf("request = %s; want %s", got, want)
	}

	ping := []byte("hello")
	p, err = outFrame{isPong: true, pong: ping}.compile(fakeDialect{})
	if err != nil {
		t.Fatal(err)
	}
	f = readClientFrame(t, p)
	if f.Header.OpCode != ws.OpPong || string(f.Payload) != "hello" || string(ping) != "hello" {
		t.Errorf("pong = %v %q (ping now %q); want pong \"hello\", ping untouched", f.Header.OpCode, f.Payload, ping)
	}

	p, err = outFrame{heartbeat: []byte("ping")}.compile(fakeDialect{})
	if err != nil {
		t.Fatal(err)
	}
	if f = readClientFrame(t, p); f.Header.OpCode != ws.OpText || string(f.Payload) != "ping" {
		t.Errorf("heartbeat = %v %q; want text \"ping\"", f.Header.OpCode, f.Payload)
	}

	p, err = outFrame{closeCode: ws.StatusNormalClosure}.compile(fakeDialect{})
	if err != nil {
		t.Fatal(err)
	}
	f = readClientFrame(t, p)
	code, _ := ws.ParseCloseFrameData(f.Payload)
	if f.Header.OpCode != ws.OpClose || code != ws.StatusNormalClosure {
		t.Errorf("close = %v %v", f.Header.OpCode, code)
	}
	if _, err := (outFrame{}).compile(fakeDialect{}); err == nil {
		t.Error("empty outFrame compiled")
	}
}
