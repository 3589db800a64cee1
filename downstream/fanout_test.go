package downstream

import (
	"testing"

	"github.com/marketgate/marketgate/hub"
)

// TestReceiveFramesOnce checks that one hub message is framed once per wire
// form and that every subscriber of a form queues the very same bytes.
func TestReceiveFramesOnce(t *testing.T) {
	srv, err := New(Config{Hub: hub.NewMemory(), Source: newFakeSource()})
	if err != nil {
		t.Fatal(err)
	}
	const key = "binance:btcusdt@trade"
	newConn := func(native, combined bool) *conn {
		c := &conn{srv: srv, proto: protoFor(native)}
		c.combined.Store(combined)
		c.writing = true // hold frames in the queue: no flush runs here
		return c
	}
	conns := []*conn{
		newConn(true, false), newConn(true, false), // native
		newConn(false, true), newConn(false, true), // dialect, combined
		newConn(false, false), newConn(false, false), // dialect, raw
	}
	tp := newTopic(key)
	tp.subs.Store(&conns)
	srv.topics.topics[key] = tp

	srv.Receive(hub.Message{Stream: key, Seq: 3, Data: []byte(`{"t":1}`)})

	wantPayload := []string{
		`{"stream":"binance:btcusdt@trade","seq":3,"data":{"t":1}}`, // the hub's position

		`{"stream":"btcusdt@trade","data":{"t":1}}`,
		`{"t":1}`,
	}
	for i := 0; i < len(conns); i += 2 {
		a, b := conns[i].queue, conns[i+1].queue
		if len(a) != 1 || len(b) != 1 {
			t.Fatalf("conns %d,%d queued %d and %d frames; want 1 each", i, i+1, len(a), len(b))
		}
		if &a[0].frame[0] != &b[0].frame[0] {
			t.Errorf("conns %d and %d queued different copies of the frame", i, i+1)
		}
		if got := string(a[0].frame[2:]); got != wantPayload[i/2] {
			t.Errorf("frame payload = %s; want %s", got, wantPayload[i/2])
		}
	}
	if &conns[0].queue[0].frame[0] == &conns[2].queue[0].frame[0] {
		t.Error("native and dialect subscribers share a frame")
	}
}
