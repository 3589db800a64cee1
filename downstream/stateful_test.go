package downstream

import (
	"context"
	"fmt"
	"testing"

	"github.com/marketgate/marketgate/downstream/downstreamtest"
	"github.com/marketgate/marketgate/hub"
)

// TestStatefulSubscribe checks what a subscriber of a stateful stream (an
// order book) gets: the stream's state, flagged latest, at its position,
// then every message after it and the live ones, with no gap; whether
// this node carried the stream already or not, and when a since cannot
// be recovered (recovered false, yet no gap: the state is whole).
func TestStatefulSubscribe(t *testing.T) {
	const key = "binance:btcusdt@kline_1m" // stateful in this test
	env := startServer(t, Config{Stateful: func(k string) bool { return k == key }})
	ctx := context.Background()
	publishTrades(t, env.hub, key, 1, 3)
	if err := env.hub.Publish(ctx, hub.Message{Stream: key, State: true, Data: []byte(`{"s":3}`)}); err != nil {
		t.Fatal(err)
	}
	publishTrades(t, env.hub, key, 4, 5)

	// expect reads the state at 3 then the messages 4..last.
	expect := func(t *testing.T, c *downstreamtest.Client, last uint64) {
		t.Helper()
		st := readMsg(t, c)
		if !st.Latest || st.Seq != 3 || string(st.Data) != `{"s":3}` || st.Gap {
			t.Fatalf("first message %+v; want the state at 3, flagged latest", st)
		}
		for s := uint64(4); s <= last; s++ {
			m := readMsg(t, c)
			if m.Seq != s || m.Gap || m.Latest || string(m.Data) != fmt.Sprintf(`{"t":%d}`, s) {
				t.Fatalf("message %+v; want %d, no gap", m, s)
			}
		}
	}
	tests := []struct {
		name, cmd string
		recovered *bool
	}{
		{"first subscriber", `{"op":"subscribe","id":1,"streams":["` + key + `"]}`, nil},
		{"stream carried here already", `{"op":"subscribe","id":1,"streams":["` + key + `"]}`, nil},
		{"since of another epoch", `{"op":"subscribe","id":1,"streams":["` + key + `"],"since":{"` + key + `":{"epoch":"zzzzzzzz","seq":2}}}`, new(bool)},
	}
	var clients []*downstreamtest.Client
	for _, tc := range tests {
		c := downstreamtest.Dial(t, env.url+"/ws") // open past the subtest
		clients = append(clients, c)
		t.Run(tc.name, func(t *testing.T) {
			c.T = t
			c.Send(tc.cmd)
			reply := readMsg(t, c)
			if reply.Result == nil || reply.Result.Positions[key].Seq != 5 {
				t.Fatalf("reply %+v; want position 5", reply)
			}
			if got, ok := reply.Result.Recovered[key]; tc.recovered != nil && (!ok || got != *tc.recovered) {
				t.Errorf("recovered %v (%v); want %v", got, ok, *tc.recovered)
			}
			expect(t, c, 5)
		})
	}
	publishTrades(t, env.hub, key, 6, 6)
	for i, c := range clients {
		c.T = t
		if m := readMsg(t, c); m.Seq != 6 || m.Gap {
			t.Errorf("client %d: live message %+v; want 6 without a gap", i, m)
		}
	}
}
