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
		`{"stream":"binance:btcusdt@trade","seq":1,"data":{"t":1}}`, // this node's numbering

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

// TestAdmit walks one stream through the cases of topic.admit: this
// node's numbering, Seq breaks, repeats, and publishers taking over.
func TestAdmit(t *testing.T) {
	id := func(n int64) hub.EventID { return hub.EventID{Hi: n} }
	type want struct {
		seq uint64 // 0: dropped
		gap bool
	}
	steps := []struct {
		name string
		msg  hub.Message
		want want
	}{
		{"first", hub.Message{Seq: 41, ID: id(100)}, want{1, false}},
		{"next", hub.Message{Seq: 42, ID: id(101)}, want{2, false}},
		{"seq skips", hub.Message{Seq: 44, ID: id(103)}, want{3, true}},
		{"publisher's gap", hub.Message{Seq: 45, Gap: true, ID: id(104)}, want{4, true}},
		{"repeat from the same origin", hub.Message{Seq: 46, ID: id(104)}, want{}},
		// Origin 7 starts while origin 0 still publishes (a handover).
		{"new origin repeats", hub.Message{Origin: 7, Seq: 1, ID: id(103)}, want{}},
		{"new origin repeats on", hub.Message{Origin: 7, Seq: 2, ID: id(104)}, want{}},
		{"old origin goes on", hub.Message{Seq: 47, ID: id(105)}, want{5, false}},
		{"new origin repeats that", hub.Message{Origin: 7, Seq: 3, ID: id(105)}, want{}},
		{"new origin takes over, in line", hub.Message{Origin: 7, Seq: 4, ID: id(106)}, want{6, false}},
		{"old origin is dropped", hub.Message{Seq: 48, ID: id(107)}, want{}},
		{"new origin goes on", hub.Message{Origin: 7, Seq: 5, ID: id(107)}, want{7, false}},
		// Origin 9 starts with something new: nothing proves it has
		// what came between (a failover after a crash).
		{"unproven takeover", hub.Message{Origin: 9, Seq: 1, ID: id(120)}, want{8, true}},
		{"ids go on", hub.Message{Origin: 9, Seq: 2, ID: id(121)}, want{9, false}},
		// An ID that is known to follow the last one proves it.
		{"consecutive takeover", hub.Message{Origin: 11, Seq: 1, ID: hub.EventID{Hi: 122, Prev: 121}}, want{10, false}},
		{"consecutive id after a hole", hub.Message{Origin: 12, Seq: 1, ID: hub.EventID{Hi: 130, Prev: 129}}, want{11, true}},
		// Without IDs a takeover cannot be proven either.
		{"no id", hub.Message{Origin: 12, Seq: 2}, want{12, false}},
		{"no id, new origin", hub.Message{Origin: 13, Seq: 1}, want{13, true}},
		{"no id, old origin", hub.Message{Origin: 12, Seq: 3}, want{}},
	}
	tp := newTopic("binance:btcusdt@trade")
	for _, st := range steps {
		seq, gap, _, ok := tp.admit(st.msg)
		got := want{}
		if ok {
			got = want{seq, gap}
		}
		if got != st.want {
			t.Fatalf("%s: admit(%+v) = %+v; want %+v", st.name, st.msg, got, st.want)
		}
	}
}
