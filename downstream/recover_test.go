package downstream

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/marketgate/marketgate/downstream/downstreamtest"
	"github.com/marketgate/marketgate/hub"
)

// dataMsg is a native data message, as a test reads it.
type dataMsg struct {
	Stream string          `json:"stream"`
	Seq    uint64          `json:"seq"`
	Gap    bool            `json:"gap"`
	Epoch  string          `json:"epoch"`
	Latest bool            `json:"latest"`
	Data   json.RawMessage `json:"data"`
	ID     json.RawMessage `json:"id"`
	Result *struct {
		Streams   []string                `json:"streams"`
		Positions map[string]hub.Position `json:"positions"`
		Recovered map[string]bool         `json:"recovered"`
	} `json:"result"`
	Error *nativeError `json:"error"`
}

func readMsg(t *testing.T, c *downstreamtest.Client) dataMsg {
	t.Helper()
	p := c.Next()
	var m dataMsg
	if err := json.Unmarshal(p, &m); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return m
}

// publishTrades publishes trades from..to (inclusive) with their trade id
// as data.
func publishTrades(t *testing.T, h hub.Hub, stream string, from, to uint64) {
	t.Helper()
	for i := from; i <= to; i++ {
		publish(t, h, stream, i, fmt.Sprintf(`{"t":%d}`, i))
	}
}

// TestRecoverSince checks recovery after a reconnect: what history holds
// comes back in order, flagged recovered, then live messages without a
// gap; what it no longer holds, or another epoch, gives recovered false
// and a gap on the first message.
func TestRecoverSince(t *testing.T) {
	const key = "binance:btcusdt@trade"
	env := startServer(t, Config{})
	env.hub.HistorySize = 10 // set before the first publish
	first := downstreamtest.Dial(t, env.url+"/ws")
	first.Send(`{"op":"subscribe","id":1,"streams":["` + key + `"]}`)
	readMsg(t, first)
	publishTrades(t, env.hub, key, 1, 5)
	var last dataMsg
	for range 5 {
		last = readMsg(t, first)
	}
	rec, _ := env.hub.Recover(context.Background(), key, nil)
	epoch := rec.Position.Epoch
	if last.Seq != 5 {
		t.Fatalf("last message %+v; want seq 5", last)
	}
	first.Close()
	publishTrades(t, env.hub, key, 6, 9) // missed while away

	// Each case asks for the messages after the current position minus
	// missed; the history holds the last 10.
	tests := []struct {
		name      string
		missed    uint64
		epoch     string
		recovered bool
	}{
		{"missed 4", 4, epoch, true},
		{"missed nothing", 0, epoch, true},
		{"missed all kept", 10, epoch, true},
		{"too old", 11, epoch, false},
		{"other epoch", 4, "zzzzzzzz", false},
		{"ahead", 0, epoch, false}, // since is one past the position
	}
	live := uint64(10)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := downstreamtest.Dial(t, env.url+"/ws")
			pos := hub.Position{Epoch: tc.epoch, Seq: live - 1 - tc.missed}
			if tc.name == "ahead" {
				pos.Seq = live
			}
			var want []uint64
			if tc.recovered {
				for s := pos.Seq + 1; s < live; s++ {
					want = append(want, s)
				}
			}
			since, _ := json.Marshal(map[string]hub.Position{key: pos})
			c.Send(`{"op":"subscribe","id":2,"streams":["` + key + `"],"since":` + string(since) + `}`)
			r := readMsg(t, c)
			if r.Result == nil || r.Result.Recovered[key] != tc.recovered || r.Result.Positions[key] != (hub.Position{Epoch: epoch, Seq: live - 1}) {
				t.Fatalf("reply %+v; want recovered %v at %s/%d", r.Result, tc.recovered, epoch, live-1)
			}
			for _, want := range want {
				m := readMsg(t, c)
				if m.Seq != want || m.Gap || m.Latest || string(m.Data) != fmt.Sprintf(`{"t":%d}`, want) {
					t.Fatalf("recovered message %+v; want seq %d", m, want)
				}
			}
			publishTrades(t, env.hub, key, live, live)
			m := readMsg(t, c)
			if m.Seq != live || m.Gap == tc.recovered {
				t.Fatalf("live message %+v; want seq %d, gap %v", m, live, !tc.recovered)
			}
			if m.Gap && m.Epoch != epoch {
				t.Fatalf("gap message names epoch %q; want %q", m.Epoch, epoch)
			}
			live++
			c.Close()
		})
	}
}

// TestRecoverWhilePublishing recovers while the stream runs fast, many
// times: every client gets exactly the messages after its position, each
// once and in order, whatever the race between history and live.
func TestRecoverWhilePublishing(t *testing.T) {
	const key = "binance:ethusdt@trade"
	env := startServer(t, Config{})
	env.hub.HistorySize = 100_000
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := uint64(1); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			env.hub.Publish(context.Background(), hub.Message{Stream: key, Seq: i, Data: fmt.Appendf(nil, `{"t":%d}`, i)})
			env.hub.Flush(context.Background())
			if i%8 == 0 {
				time.Sleep(100 * time.Microsecond)
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()
	waitFor(t, func() bool { r, _ := env.hub.Recover(context.Background(), key, nil); return r.Position.Seq > 50 })

	for n := range 20 {
		r, _ := env.hub.Recover(context.Background(), key, nil)
		since := r.Position
		since.Seq -= uint64(1 + n)
		c := downstreamtest.Dial(t, env.url+"/ws")
		sj, _ := json.Marshal(map[string]hub.Position{key: since})
		c.Send(fmt.Sprintf(`{"op":"subscribe","id":%d,"streams":["%s"],"since":%s}`, n, key, sj))
		reply := readMsg(t, c)
		if reply.Result == nil || !reply.Result.Recovered[key] {
			t.Fatalf("client %d: reply %+v; want recovered", n, reply.Result)
		}
		next := since.Seq + 1
		for range 3*n + 40 {
			m := readMsg(t, c)
			if m.Seq != next || m.Gap || string(m.Data) != fmt.Sprintf(`{"t":%d}`, next) {
				t.Fatalf("client %d: got %+v %s; want seq %d, no gap", n, m, m.Data, next)
			}
			next++
		}
		c.Close()
	}
}

// TestLatestFromHistory checks that a state stream this node carries no
// subscriber of yet still gives its latest value at once, from the
// hub's history, to native and Binance dialect clients, and that the
// reply names its position.
func TestLatestFromHistory(t *testing.T) {
	const key = "binance:ethusdt@kline_1m"
	env := startServer(t, Config{})
	publishState(t, env.hub, key, 1, `{"u":1}`)
	publishState(t, env.hub, key, 2, `{"u":2}`)

	c := downstreamtest.Dial(t, env.url+"/ws")
	start := time.Now()
	c.Send(`{"op":"subscribe","id":1,"streams":["` + key + `"]}`)
	r := readMsg(t, c)
	if r.Result == nil || r.Result.Positions[key].Seq != 2 {
		t.Fatalf("reply %+v; want position 2", r)
	}
	m := readMsg(t, c)
	if !m.Latest || m.Seq != 2 || string(m.Data) != `{"u":2}` {
		t.Fatalf("first message %+v; want the latest value, seq 2", m)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("latest value came %v after the subscribe; want at once", d)
	}
	c.Close()

	// Dropped from this node's streams meanwhile: both dialect forms.
	waitFor(t, func() bool { return len(env.srv.Streams()) == 0 })
	raw := downstreamtest.Dial(t, env.url+"/binance/ws/ethusdt@kline_1m")
	if got := string(raw.Next()); got != `{"u":2}` {
		t.Fatalf("Binance URL client: %s; want the latest value", got)
	}
	publishState(t, env.hub, key, 3, `{"u":3}`)
	if got := string(raw.Next()); got != `{"u":3}` {
		t.Fatalf("Binance URL client: %s; want the live value", got)
	}
}

// TestSubscribeSinceErrors checks the refusals of a malformed "since".
func TestSubscribeSinceErrors(t *testing.T) {
	env := startServer(t, Config{})
	c := downstreamtest.Dial(t, env.url+"/ws")
	tests := []string{
		`{"op":"subscribe","id":1,"streams":["binance:btcusdt@trade"],"since":{"binance:ethusdt@trade":{"epoch":"x","seq":1}}}`,
		`{"op":"subscribe","id":1,"streams":["binance:btcusdt@trade"],"since":{"binance:btcusdt@trade":{"seq":1}}}`,
		`{"op":"subscribe","id":1,"streams":["binance:btcusdt@trade"],"since":{"binance:btcusdt@trade":{"epoch":"x","seq":-1}}}`,
		`{"op":"subscribe","id":1,"streams":["binance:btcusdt@trade"],"since":[1]}`,
	}
	for _, cmd := range tests {
		c.Send(cmd)
		if m := readMsg(t, c); m.Error == nil || m.Error.Code != CodeBadRequest {
			t.Fatalf("%s: reply %+v; want bad_request", cmd, m)
		}
	}
	c.Send(`{"op":"list","id":2}`)
	expectJSON(t, c, `{"id":2,"result":{"streams":[]}}`)
}

// blockingHistory is a hub whose history reads wait until release is
// closed: catch-ups that take long.
type blockingHistory struct {
	*hub.Memory
	release chan struct{}
}

func (b blockingHistory) Recover(ctx context.Context, stream string, since *hub.Position) (hub.Recovery, error) {
	select {
	case <-b.release:
	case <-ctx.Done():
		return hub.Recovery{}, ctx.Err()
	}
	return b.Memory.Recover(ctx, stream, since)
}

// TestCatchupBounds checks that a client cannot queue more than
// maxCatchups history reads (the next subscribe is refused as busy, and
// its stream is not joined), that another client's commands go on while
// they wait, and that the replies come in order once they can.
func TestCatchupBounds(t *testing.T) {
	h := blockingHistory{hub.NewMemory(), make(chan struct{})}
	env := startServer(t, Config{Hub: h})
	c := downstreamtest.Dial(t, env.url+"/ws")
	keys := []string{"binance:btcusdt@trade", "binance:btcusdt@bookTicker", "binance:btcusdt@kline_1m", "binance:ethusdt@trade", "binance:ethusdt@bookTicker"}
	for i := range maxCatchups + 1 {
		c.Send(fmt.Sprintf(`{"op":"subscribe","id":%d,"streams":["%s"]}`, i, keys[i]))
	}
	m := readMsg(t, c)
	if m.Error == nil || m.Error.Code != CodeBusy || string(m.ID) != fmt.Sprint(maxCatchups) {
		t.Fatalf("reply %+v %+v; want busy for the last subscribe", m, m.Error)
	}
	other := downstreamtest.Dial(t, env.url+"/ws")
	other.Send(`{"op":"ping","id":"p"}`)
	expectJSON(t, other, `{"id":"p","result":"pong"}`)

	if err := h.Publish(context.Background(), hub.Message{Stream: "binance:btcusdt@trade", Seq: 1, Data: []byte(`{"t":1}`)}); err != nil {
		t.Fatal(err)
	}
	h.Flush(context.Background())
	close(h.release)
	// The message came after the join, while the history read waited:
	// it was held, and follows the reply, whose position is before it.
	for i := range maxCatchups {
		m := readMsg(t, c)
		if m.Result == nil || string(m.ID) != fmt.Sprint(i) {
			t.Fatalf("got %+v; want the reply to subscribe %d", m, i)
		}
		if i > 0 {
			continue
		}
		if p := m.Result.Positions["binance:btcusdt@trade"]; p.Seq != 0 {
			t.Fatalf("reply %+v; want position 0", m.Result)
		}
		if m := readMsg(t, c); m.Seq != 1 || m.Gap || string(m.Data) != `{"t":1}` {
			t.Fatalf("held message %+v; want seq 1 right after its reply", m)
		}
	}
	publish(t, h, "binance:btcusdt@trade", 2, `{"t":2}`)
	if m := readMsg(t, c); m.Seq != 2 || m.Gap {
		t.Fatalf("live message %+v; want seq 2, no gap", m)
	}
	c.Send(`{"op":"list","id":"l"}`)
	if m := readMsg(t, c); m.Result == nil || len(m.Result.Streams) != maxCatchups {
		t.Fatalf("list %+v; want %d streams (not the refused one)", m.Result, maxCatchups)
	}
}

// waitFor polls cond for up to 5 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
