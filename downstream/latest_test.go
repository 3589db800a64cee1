package downstream

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/marketgate/marketgate/downstream/downstreamtest"
	"github.com/marketgate/marketgate/hub"
)

// publishState publishes a message of a stream whose messages supersede
// each other (a ticker, a book top), as the upstream marks them.
func publishState(t *testing.T, h hub.Hub, stream string, seq uint64, data string) {
	t.Helper()
	if err := h.Publish(context.Background(), hub.Message{Stream: stream, Seq: seq, Data: []byte(data), Conflate: true}); err != nil {
		t.Fatal(err)
	}
	h.Flush(context.Background())
}

// TestLatestValueOnSubscribe checks that a client subscribing to a stream
// this node already carries gets the newest message of a state stream
// right after the reply (native: flagged "latest"), then the live ones
// without a gap; event streams (trades) have no latest value.
func TestLatestValueOnSubscribe(t *testing.T) {
	env := startServer(t, Config{})
	const book, trade = "binance:btcusdt@bookTicker", "binance:btcusdt@trade"
	first := downstreamtest.Dial(t, env.url+"/ws")
	first.Send(`{"op":"subscribe","id":1,"streams":["` + book + `","` + trade + `"]}`)
	first.Next()
	publishState(t, env.hub, book, 1, `{"u":1}`)
	publishState(t, env.hub, book, 2, `{"u":2}`)
	publish(t, env.hub, trade, 1, `{"t":1}`)
	for range 3 {
		first.Next()
	}

	tests := []struct {
		name, url, sub string
		want           []string
	}{
		{"native", "/ws", `{"op":"subscribe","id":2,"streams":["` + book + `","` + trade + `"]}`, []string{
			`{"id":2,"result":{"streams":["` + book + `","` + trade + `"],"positions":{"` + book + `":{"epoch":"E","seq":2},"` + trade + `":{"epoch":"E","seq":1}}}}`,
			`{"stream":"` + book + `","seq":2,"latest":true,"data":{"u":2}}`,
		}},
		{"binance combined", "/binance/stream", `{"method":"SUBSCRIBE","params":["btcusdt@bookTicker","btcusdt@trade"],"id":3}`, []string{
			`{"result":null,"id":3}`,
			`{"stream":"btcusdt@bookTicker","data":{"u":2}}`,
		}},
		{"binance URL", "/binance/ws/btcusdt@bookTicker", "", []string{`{"u":2}`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := downstreamtest.Dial(t, env.url+tc.url)
			if tc.sub != "" {
				c.Send(tc.sub)
			}
			for _, want := range tc.want {
				start := time.Now()
				got, err := c.Read(2 * time.Second)
				if err != nil {
					t.Fatalf("waiting for %s: %v", want, err)
				}
				if maskEpochs(got) != want {
					t.Fatalf("got %s; want %s", got, want)
				}
				if d := time.Since(start); d > time.Second {
					t.Errorf("%s came %v after subscribing; want at once", got, d)
				}
			}
			// Nothing else is pending: the trade has no latest value.
			if got, err := c.Read(100 * time.Millisecond); err == nil {
				t.Fatalf("then got %s; want nothing until the next message", got)
			}
		})
	}
	// The first client was not sent anything again.
	publishState(t, env.hub, book, 3, `{"u":3}`)
	if got, want := string(first.Next()), `{"stream":"`+book+`","seq":3,"data":{"u":3}}`; got != want {
		t.Fatalf("first client got %s; want %s", got, want)
	}
}

// TestLatestValueRaceFree subscribes clients while the stream is
// published as fast as it goes: each client gets every message from the
// one it starts with exactly once and in order (the latest value or a
// live one, never both), then follows live.
func TestLatestValueRaceFree(t *testing.T) {
	env := startServer(t, Config{})
	const key = "binance:ethusdt@bookTicker"
	first := downstreamtest.Dial(t, env.url+"/ws")
	first.Send(`{"op":"subscribe","id":1,"streams":["` + key + `"]}`)
	first.Next()
	publishState(t, env.hub, key, 1, `{"u":0}`)
	first.Next()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 2; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			env.hub.Publish(context.Background(), hub.Message{Stream: key, Seq: uint64(i), Data: fmt.Appendf(nil, `{"u":%d}`, i), Conflate: true})
			env.hub.Flush(context.Background())
			time.Sleep(50 * time.Microsecond)
		}
	})
	defer func() { close(stop); wg.Wait() }()

	for n := range 20 {
		c := downstreamtest.Dial(t, env.url+"/ws")
		c.Send(fmt.Sprintf(`{"op":"subscribe","id":%d,"streams":["%s"]}`, n, key))
		var reply struct {
			Result struct {
				Streams   []string                `json:"streams"`
				Positions map[string]hub.Position `json:"positions"`
			} `json:"result"`
		}
		got := c.Next()
		if err := json.Unmarshal(got, &reply); err != nil || len(reply.Result.Streams) != 1 || reply.Result.Positions[key].Seq == 0 {
			t.Fatalf("client %d: reply %s; want the stream and its position", n, got)
		}
		prev := reply.Result.Positions[key].Seq - 1 // the latest value is at the position
		for i := range 30 {
			var m struct {
				Seq    uint64 `json:"seq"`
				Gap    bool   `json:"gap"`
				Latest bool   `json:"latest"`
			}
			if err := json.Unmarshal(c.Next(), &m); err != nil {
				t.Fatal(err)
			}
			switch {
			case i == 0 && !m.Latest:
				t.Fatalf("client %d: first message %+v; want the latest value", n, m)
			case i > 0 && (m.Latest || m.Gap || m.Seq != prev+1):
				t.Fatalf("client %d: message %d %+v after seq %d; want seq %d, live, no gap", n, i, m, prev, prev+1)
			}
			prev = m.Seq
		}
		c.Close()
	}
}

// TestLatestJoinAdmitOrder checks both orders of a subscriber joining and
// a message being admitted: admitted first, the message is the joiner's
// latest value and admit does not send it to the joiner; joined first,
// admit sends it live and the latest value is the one before.
func TestLatestJoinAdmitOrder(t *testing.T) {
	newConn := func() *conn { return &conn{srv: &Server{}, proto: nativeProto{}} }
	msg := func(seq uint64, data string) hub.Message {
		return hub.Message{Stream: "binance:btcusdt@bookTicker", Seq: seq, Data: []byte(data), Conflate: true}
	}
	tp := newTopic("binance:btcusdt@bookTicker")
	if _, _, _, ok := tp.admit(msg(1, `{"u":1}`)); !ok {
		t.Fatal("first message not admitted")
	}

	a := newConn()
	if f := tp.join(a).latest; !bytes.Contains(f, []byte(`"seq":1,"latest":true,"data":{"u":1}`)) {
		t.Fatalf("join after admit: latest frame %q; want message 1", f)
	}
	_, subs, _, _ := tp.admit(msg(2, `{"u":2}`))
	if !slices.Contains(subs, a) {
		t.Fatal("admit after join: the joiner is not sent the message live")
	}

	b := newConn()
	if f := tp.join(b).latest; !bytes.Contains(f, []byte(`"seq":2,"latest":true,"data":{"u":2}`)) {
		t.Fatalf("second join: latest frame %q; want message 2", f)
	}
	tp.admit(hub.Message{Stream: "binance:btcusdt@bookTicker", Seq: 3, Data: []byte(`{"t":3}`)})
	if f := tp.join(newConn()).latest; !bytes.Contains(f, []byte(`"seq":2,"latest":true`)) {
		t.Fatalf("after a message that supersedes nothing: latest frame %q; want message 2 still", f)
	}
}

var epochRE = regexp.MustCompile(`"epoch":"[^"]*"`)

// maskEpochs returns p with every epoch's value replaced by "E": epochs
// are random.
func maskEpochs(p []byte) string {
	return epochRE.ReplaceAllString(string(p), `"epoch":"E"`)
}
