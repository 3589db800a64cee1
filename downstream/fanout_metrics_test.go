package downstream

import (
	"fmt"
	"testing"
	"time"

	"github.com/marketgate/marketgate/downstream/downstreamtest"
	"github.com/marketgate/marketgate/hub"
	"github.com/marketgate/marketgate/internal/waitfor"
)

// TestCommandOps checks that every op label is reachable and that
// anything else maps to "other".
func TestCommandOps(t *testing.T) {
	seen := map[string]bool{}
	for _, op := range []string{"subscribe", "unsubscribe", "list", "ping", "auth", "SUBSCRIBE", "x", ""} {
		seen[commandOps[nativeOp(op)]] = true
	}
	for _, m := range []string{"SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY", "subscribe", ""} {
		seen[commandOps[dialectOp(m)]] = true
	}
	for _, label := range commandOps {
		if !seen[label] {
			t.Errorf("op label %q is never used", label)
		}
	}
	if len(seen) != len(commandOps) {
		t.Errorf("labels used %v; want exactly %v", seen, commandOps)
	}
	for _, tc := range []struct{ op, want string }{
		{"SUBSCRIBE", "other"}, // native ops are lowercase
		{"Subscribe", "other"},
		{"ping", "ping"},
	} {
		if got := commandOps[nativeOp(tc.op)]; got != tc.want {
			t.Errorf("nativeOp(%q) = %q; want %q", tc.op, got, tc.want)
		}
	}
	if got := commandOps[dialectOp("subscribe")]; got != "other" {
		t.Errorf(`dialectOp("subscribe") = %q; want "other"`, got)
	}
}

// TestCommandCounts checks the counts of commands by op and result on both
// protocols.
func TestCommandCounts(t *testing.T) {
	env := startServer(t, Config{})
	c := downstreamtest.Dial(t, env.url+"/ws")
	for _, cmd := range []string{
		`{"op":"subscribe","id":1,"streams":["binance:btcusdt@trade"]}`,
		`{"op":"subscribe","id":2,"streams":["binance:nope@trade"]}`,
		`{"op":"list","id":3}`,
		`{"op":"ping","id":4}`,
		`{"op":"unsubscribe","id":5,"streams":[]}`,
		`{"op":"zzz","id":6}`,
		`not json`,
	} {
		c.Send(cmd)
		c.Next()
	}
	d := downstreamtest.Dial(t, env.url+"/binance/ws")
	for _, cmd := range []string{
		`{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":1}`,
		`{"method":"LIST_SUBSCRIPTIONS","id":2}`,
		`{"method":"SET_PROPERTY","params":["combined",true],"id":3}`,
		`{"method":"GET_PROPERTY","params":["nope"],"id":4}`,
		`{"method":"UNSUBSCRIBE","params":"x","id":5}`,
		`{"method":"subscribe","id":6}`,
		`{"id":7}`,
	} {
		d.Send(cmd)
		d.Next() // nothing is published: every message is a reply
	}
	want := map[string]CommandCount{
		"subscribe": {1, 1}, "unsubscribe": {0, 1}, "list": {1, 0}, "ping": {1, 0},
		"SUBSCRIBE": {1, 0}, "UNSUBSCRIBE": {0, 1}, "LIST_SUBSCRIPTIONS": {1, 0},
		"SET_PROPERTY": {1, 0}, "GET_PROPERTY": {0, 1}, "other": {0, 4}, "auth": {0, 0},
	}
	// A command is counted right after its reply is queued.
	waitfor.Cond(t, 2*time.Second, func() error {
		got := env.srv.Stats().Commands
		for op, w := range want {
			if got[op] != w {
				return fmt.Errorf("Commands[%q] = %+v; want %+v (all: %v)", op, got[op], w, got)
			}
		}
		if len(got) != len(want) {
			return fmt.Errorf("Commands = %v; want %v", got, want)
		}
		return nil
	})
}

// TestFanOutCounts checks frames and bytes out, counted once per
// subscriber, and the latency, observed once per message that has an
// event time.
func TestFanOutCounts(t *testing.T) {
	env := startServer(t, Config{})
	const key = "binance:btcusdt@trade"
	var clients []*downstreamtest.Client
	for range 3 {
		c := downstreamtest.Dial(t, env.url+"/ws")
		c.Send(`{"op":"subscribe","id":1,"streams":["` + key + `"]}`)
		c.Next()
		clients = append(clients, c)
	}
	env.waitSubscribers(t, key, 3)
	ctx := t.Context()
	before := env.srv.Stats()
	now := time.Now().UnixMicro()
	msgs := []hub.Message{
		{Stream: key, Seq: 1, Data: []byte(`{"p":"1"}`), EventTime: now - 3000}, // 3 ms ago
		{Stream: key, Seq: 2, Data: []byte(`{"p":"2"}`)},                        // no event time
	}
	for _, m := range msgs {
		env.hub.Publish(ctx, m)
	}
	env.hub.Flush(ctx)
	var size int64
	for _, c := range clients {
		for range msgs {
			// Each client gets the same native frames: header plus payload.
			size += int64(len(c.Next()) + 2)
		}
	}
	after := env.srv.Stats()
	if got := after.FramesOut - before.FramesOut; got != 6 {
		t.Errorf("FramesOut grew by %d; want 6 (2 messages × 3 subscribers)", got)
	}
	if got := after.BytesOut - before.BytesOut; got != size {
		t.Errorf("BytesOut grew by %d; want %d", got, size)
	}
	if got := after.Messages - before.Messages; got != 2 {
		t.Errorf("Messages grew by %d; want 2", got)
	}
	l := after.FanOutLatency
	if got := l.Count - before.FanOutLatency.Count; got != 1 {
		t.Errorf("latency observed %d times; want 1 (once per message with an event time)", got)
	}
	if l.Sum < 3*time.Millisecond || l.Sum > time.Minute {
		t.Errorf("latency sum %v; want about 3ms", l.Sum)
	}
}
