package downstream

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/marketgate/marketgate/downstream/downstreamtest"
	"github.com/marketgate/marketgate/hub"
	"github.com/marketgate/marketgate/internal/waitfor"
)

// publishConflatable publishes one message of a stream whose newest
// message supersedes the older ones, as upstream marks a book ticker.
func publishConflatable(t *testing.T, h hub.Hub, stream string, seq uint64, data string) {
	t.Helper()
	if err := h.Publish(context.Background(), hub.Message{Stream: stream, Seq: seq, Data: []byte(data), Conflate: true}); err != nil {
		t.Fatal(err)
	}
	h.Flush(context.Background())
}

// fastReader reads c in the background and counts the data messages, which
// must arrive with seq 1, 2, 3, ….
func fastReader(t *testing.T, c *downstreamtest.Client) *atomic.Int64 {
	var n atomic.Int64
	go func() {
		for {
			p, err := c.Read(30 * time.Second)
			if err != nil {
				return
			}
			var m struct{ Seq int64 }
			if json.Unmarshal(p, &m) != nil || m.Seq != n.Load()+1 {
				t.Errorf("fast client: message %.60s… after seq %d", p, n.Load())
				return
			}
			n.Add(1)
		}
	}()
	return &n
}

// TestSlowReaderConflated: a client that stops reading a book ticker
// stream is never closed; its queue keeps only the newest values, and when
// it reads again it gets them in order, ending with the newest. A fast
// client of the same stream gets every message.
func TestSlowReaderConflated(t *testing.T) {
	env := startServer(t, Config{WriteQueueBytes: 64 << 10, WriteTimeout: 30 * time.Second})
	const key = "binance:btcusdt@bookTicker"
	slow := downstreamtest.Dial(t, env.url+"/ws")
	fast := downstreamtest.Dial(t, env.url+"/ws")
	for _, c := range []*downstreamtest.Client{slow, fast} {
		c.Send(`{"op":"subscribe","id":1,"streams":["` + key + `"]}`)
		c.Next()
	}
	received := fastReader(t, fast)
	payload := `{"u":1,"b":"` + strings.Repeat("1", 4000) + `"}`
	const most = 20000 // 80 MB: far beyond any socket buffer
	sent := 0
	for sent < most && env.srv.Stats().Dropped["conflated"] < 100 {
		sent++
		publishConflatable(t, env.hub, key, uint64(sent), payload)
		waitfor.Cond(t, 10*time.Second, func() error {
			if int(received.Load()) < sent-4 {
				return fmt.Errorf("fast client has %d of %d", received.Load(), sent)
			}
			return nil
		})
	}
	st := env.srv.Stats()
	if st.Dropped["conflated"] < 100 {
		t.Fatalf("%d conflated drops after %d messages; want at least 100", st.Dropped["conflated"], sent)
	}
	if st.Conns != 2 || st.Closed["slow_consumer"] != 0 {
		t.Fatalf("stats %+v; want both clients open", st)
	}
	waitfor.Cond(t, 10*time.Second, func() error {
		if int(received.Load()) != sent {
			return fmt.Errorf("fast client has %d of %d", received.Load(), sent)
		}
		return nil
	})

	// The slow client reads again: every message it gets is newer than
	// the one before, some were skipped, and the last is the newest.
	got, last := 0, int64(0)
	for last != int64(sent) {
		var m struct{ Seq int64 }
		if p := slow.Next(); json.Unmarshal(p, &m) != nil || m.Seq <= last {
			t.Fatalf("slow client: message %.60s… after seq %d", p, last)
		}
		got++
		last = m.Seq
	}
	if got >= sent {
		t.Fatalf("slow client got all %d messages; want conflated ones skipped", sent)
	}
	t.Logf("published %d; slow client got %d; %d conflated", sent, got, env.srv.Stats().Dropped["conflated"])
	slow.Send(`{"op":"ping","id":2}`)
	expectJSON(t, slow, `{"id":2,"result":"pong"}`)
}

// TestSlowReaderKeepsClosedCandles: a client that stops reading a kline
// stream is conflated like a ticker's, but the final event of each candle
// ("x":true, hub.Message.Final) is never skipped: when it reads again it
// gets every closed candle, each in its place, and the newest event last.
func TestSlowReaderKeepsClosedCandles(t *testing.T) {
	env := startServer(t, Config{WriteQueueBytes: 64 << 10, WriteTimeout: 30 * time.Second})
	const key = "binance:btcusdt@kline_1m"
	slow := downstreamtest.Dial(t, env.url+"/ws")
	slow.Send(`{"op":"subscribe","id":1,"streams":["` + key + `"]}`)
	if p := slow.Next(); !strings.Contains(string(p), `"result"`) {
		t.Fatalf("subscribe reply %s; want a result", p)
	}
	pad := strings.Repeat("4", 4000)
	const perCandle = 97 // events of one candle, the last one final
	const most = 20000   // 80 MB: far beyond any socket buffer
	finals := map[int64]bool{}
	sent, drops := 0, int64(0)
	// Past the first conflation, go on until a few candles closed while
	// the queue was full: a final event lands in the middle of a burst
	// that is being conflated.
	for sent < most && (drops == 0 || len(finals) < 3 || sent%perCandle != perCandle/2) {
		sent++
		candle, final := int64(sent/perCandle), sent%perCandle == perCandle-1
		data := fmt.Sprintf(`{"e":"kline","E":%d,"k":{"t":%d,"x":%t,"p":"%s"}}`, sent, candle, final, pad)
		if err := env.hub.Publish(t.Context(), hub.Message{Stream: key, Seq: uint64(sent), Data: []byte(data), Conflate: true, Final: final}); err != nil {
			t.Fatal(err)
		}
		env.hub.Flush(t.Context())
		if drops = env.srv.Stats().Dropped["conflated"]; drops > 0 && final {
			finals[candle] = true
		}
	}
	st := env.srv.Stats()
	if st.Dropped["conflated"] == 0 || len(finals) < 3 {
		t.Fatalf("%d conflated drops, %d candles closed while conflating, after %d messages; want both", st.Dropped["conflated"], len(finals), sent)
	}
	if st.Conns != 1 || st.Closed["slow_consumer"] != 0 {
		t.Fatalf("stats %+v; want the client open", st)
	}

	// Every message is newer than the one before; every candle's final
	// event is there, and after it only later candles' events.
	got, last, closed := 0, int64(0), int64(-1)
	for last != int64(sent) {
		var m struct {
			Seq  int64 `json:"seq"`
			Data struct {
				K struct {
					T int64 `json:"t"`
					X bool  `json:"x"`
				} `json:"k"`
			} `json:"data"`
		}
		if p := slow.Next(); json.Unmarshal(p, &m) != nil || m.Seq <= last {
			t.Fatalf("slow client: message %.60s… after seq %d", p, last)
		}
		got++
		last = m.Seq
		if m.Data.K.T <= closed {
			t.Fatalf("slow client: seq %d, of candle %d, after that candle closed", m.Seq, m.Data.K.T)
		}
		if m.Data.K.X {
			if m.Data.K.T != closed+1 {
				t.Fatalf("slow client: candle %d closed after candle %d; candles in between were lost", m.Data.K.T, closed)
			}
			closed = m.Data.K.T
		}
	}
	if want := int64(sent/perCandle) - 1; closed != want {
		t.Errorf("slow client: last closed candle %d; want %d", closed, want)
	}
	if got >= sent {
		t.Fatalf("slow client got all %d messages; want conflated ones skipped", sent)
	}
	t.Logf("published %d (%d candles); slow client got %d; %d conflated", sent, sent/perCandle, got, env.srv.Stats().Dropped["conflated"])
}

// TestSlowReaderDoesNotDelayOthers: clients that stop reading hold no
// worker, so however many there are, the others get every message at once.
// With fewer workers than stalled clients, a flush that blocked until its
// client read would stall every other client for WriteTimeout.
func TestSlowReaderDoesNotDelayOthers(t *testing.T) {
	env := startServer(t, Config{Workers: 2, WriteQueueBytes: 16 << 10, WriteTimeout: 30 * time.Second})
	const key = "binance:ethusdt@bookTicker"
	var stalled []*downstreamtest.Client
	for range 6 {
		c := downstreamtest.Dial(t, env.url+"/ws")
		c.Send(`{"op":"subscribe","id":1,"streams":["` + key + `"]}`)
		c.Next()
		stalled = append(stalled, c)
	}
	fast := downstreamtest.Dial(t, env.url+"/ws")
	fast.Send(`{"op":"subscribe","id":1,"streams":["` + key + `"]}`)
	fast.Next()
	received := fastReader(t, fast)

	payload := `{"u":1,"b":"` + strings.Repeat("2", 8000) + `"}`
	var worst time.Duration
	sent := 0
	for sent < 20000 && env.srv.Stats().Dropped["conflated"] < 600 {
		sent++
		start := time.Now()
		publishConflatable(t, env.hub, key, uint64(sent), payload)
		waitfor.Cond(t, 10*time.Second, func() error {
			if int(received.Load()) < sent {
				return fmt.Errorf("fast client has %d of %d", received.Load(), sent)
			}
			return nil
		})
		worst = max(worst, time.Since(start))
	}
	st := env.srv.Stats()
	if st.Dropped["conflated"] < 600 || st.Conns != 7 {
		t.Fatalf("after %d messages: stats %+v; want 600 conflated drops and every client open", sent, st)
	}
	t.Logf("%d messages; the fast client waited at most %v for one", sent, worst)
	if worst > 2*time.Second {
		t.Errorf("the fast client waited %v for a message", worst)
	}
	for _, c := range stalled {
		c.Close()
	}
}

// TestSlowReaderClosedOnGapStream: on a stream where a gap corrupts what the
// client builds (trades), a full queue closes the client with 4008, even
// while its other, conflatable streams were being conflated.
func TestSlowReaderClosedOnGapStream(t *testing.T) {
	env := startServer(t, Config{WriteQueueBytes: 16 << 10, WriteTimeout: 30 * time.Second})
	const ticker, trades = "binance:btcusdt@bookTicker", "binance:btcusdt@trade"
	slow := downstreamtest.Dial(t, env.url+"/ws")
	slow.Send(`{"op":"subscribe","id":1,"streams":["` + ticker + `","` + trades + `"]}`)
	slow.Next()
	payload := `{"p":"` + strings.Repeat("3", 4000) + `"}`
	seq := uint64(0)
	for seq < 20000 && env.srv.Stats().Dropped["conflated"] < 20 {
		seq++
		publishConflatable(t, env.hub, ticker, seq, payload)
	}
	if st := env.srv.Stats(); st.Dropped["conflated"] < 20 || st.Conns != 1 {
		t.Fatalf("after %d ticker messages: stats %+v; want conflated drops, the client open", seq, st)
	}
	for n := uint64(1); n < 100 && env.srv.Stats().Closed["slow_consumer"] == 0; n++ {
		publish(t, env.hub, trades, n, payload)
	}
	if got := slow.ExpectClose(); got != StatusSlowConsumer {
		t.Fatalf("close code = %d; want %d", got, StatusSlowConsumer)
	}
}

// TestConflateLocked checks the queue surgery on a full queue directly.
// Frames named in capitals are final (hub.Message.Final).
func TestConflateLocked(t *testing.T) {
	srv, err := New(Config{Hub: hub.NewMemory(), Source: newFakeSource(), WriteQueueBytes: 10})
	if err != nil {
		t.Fatal(err)
	}
	a, b := newTopic("binance:btcusdt@bookTicker"), newTopic("binance:ethusdt@bookTicker")
	d := newTopic("binance:btcusdt@kline_1m")
	f := func(s string) []byte { return []byte(s) }
	type entry struct {
		frame string
		t     *topic
		final bool
	}
	tests := []struct {
		name  string
		queue []entry
		frame string
		t     *topic
		final bool
		ok    bool
		want  []entry // the queue after
		drops int64
	}{
		{"replaces the stream's last frame, drops its others",
			[]entry{{"a1", a, false}, {"r!", nil, false}, {"b1", b, false}, {"a2", a, false}, {"x!", nil, false}}, "a3", a, false, true,
			[]entry{{"r!", nil, false}, {"b1", b, false}, {"a3", a, false}, {"x!", nil, false}}, 2},
		{"cuts other streams down to their last frame to make room",
			[]entry{{"b1", b, false}, {"b2", b, false}, {"b3", b, false}, {"r!", nil, false}, {"b4", b, false}}, "a1", a, false, true,
			[]entry{{"r!", nil, false}, {"b4", b, false}, {"a1", a, false}}, 3},
		{"full of frames that must not be dropped",
			[]entry{{"t1", nil, false}, {"t2", nil, false}, {"t3", nil, false}, {"t4", nil, false}, {"t5", nil, false}}, "a1", a, false, false,
			[]entry{{"t1", nil, false}, {"t2", nil, false}, {"t3", nil, false}, {"t4", nil, false}, {"t5", nil, false}}, 0},
		{"a final frame replaces the stream's last frame like any other",
			[]entry{{"a1", a, false}, {"r!", nil, false}, {"b1", b, false}, {"a2", a, false}, {"x!", nil, false}}, "A3", a, true, true,
			[]entry{{"r!", nil, false}, {"b1", b, false}, {"A3", a, true}, {"x!", nil, false}}, 2},
		{"a final frame waiting stays, the new frame goes behind it",
			[]entry{{"a1", a, false}, {"A2", a, true}, {"b1", b, false}, {"b2", b, false}, {"x!", nil, false}}, "a3", a, false, true,
			[]entry{{"A2", a, true}, {"b1", b, false}, {"b2", b, false}, {"x!", nil, false}, {"a3", a, false}}, 1},
		{"a frame after the final one is replaced in place",
			[]entry{{"A1", a, true}, {"b1", b, false}, {"a2", a, false}, {"b2", b, false}, {"x!", nil, false}}, "a3", a, false, true,
			[]entry{{"A1", a, true}, {"b1", b, false}, {"a3", a, false}, {"b2", b, false}, {"x!", nil, false}}, 1},
		{"a new final frame goes behind a final one",
			[]entry{{"A1", a, true}, {"b1", b, false}, {"b2", b, false}, {"b3", b, false}, {"x!", nil, false}}, "A2", a, true, true,
			[]entry{{"A1", a, true}, {"b3", b, false}, {"x!", nil, false}, {"A2", a, true}}, 2},
		{"cutting down keeps final frames, drops what they supersede",
			[]entry{{"b1", b, false}, {"a1", a, false}, {"A2", a, true}, {"B2", b, true}, {"b3", b, false}}, "d1", d, false, true,
			[]entry{{"A2", a, true}, {"B2", b, true}, {"b3", b, false}, {"d1", d, false}}, 2},
		{"full of final frames",
			[]entry{{"A1", a, true}, {"A2", a, true}, {"B1", b, true}, {"t1", nil, false}, {"t2", nil, false}}, "a3", a, false, false,
			[]entry{{"A1", a, true}, {"A2", a, true}, {"B1", b, true}, {"t1", nil, false}, {"t2", nil, false}}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &conn{srv: srv}
			c.writing = true // no flush runs here
			for _, e := range tc.queue {
				c.queue = append(c.queue, qframe{f(e.frame), e.t, e.final})
				c.queued += len(e.frame)
			}
			before := srv.metrics.drops["conflated"].Load()
			if ok := c.conflateLocked(f(tc.frame), tc.t, tc.final); ok != tc.ok {
				t.Fatalf("conflateLocked = %v; want %v", ok, tc.ok)
			}
			var got []entry
			n := 0
			for _, q := range c.queue {
				got = append(got, entry{string(q.frame), q.t, q.final})
				n += len(q.frame)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("queue = %v; want %v", got, tc.want)
			}
			if n != c.queued {
				t.Errorf("queued = %d; the frames hold %d bytes", c.queued, n)
			}
			if d := srv.metrics.drops["conflated"].Load() - before; d != tc.drops {
				t.Errorf("%d conflated drops; want %d", d, tc.drops)
			}
		})
	}
}

// TestSendAllocs: with room in the queue, send appends without allocating,
// whether the frame is of a gap-free stream, a conflatable one or a final
// one (hub.Message.Final), and a final frame is queued as final.
func TestSendAllocs(t *testing.T) {
	srv, err := New(Config{Hub: hub.NewMemory(), Source: newFakeSource(), WriteQueueBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	k := newTopic("binance:btcusdt@kline_1m")
	frame := []byte("frame")
	tests := []struct {
		name     string
		conflate bool
		final    bool
	}{
		{"gap-free", false, false},
		{"conflatable", true, false},
		{"final", true, true},
		{"final without a stream to conflate", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &conn{srv: srv, queue: make([]qframe, 0, 4)}
			c.writing = true // no flush runs here
			fs := frameSet{t: k, msg: hub.Message{Conflate: tc.conflate, Final: tc.final}}
			allocs := testing.AllocsPerRun(100, func() {
				c.queue, c.queued = c.queue[:0], 0
				c.send(&fs, frame)
			})
			var want *topic
			if tc.conflate {
				want = k
			}
			if allocs != 0 {
				t.Errorf("send: %v allocs; want 0", allocs)
			}
			final := tc.final && tc.conflate // final means nothing on a gap-free stream
			if len(c.queue) != 1 || c.queue[0].t != want || c.queue[0].final != final || c.queue[0].conflatable() != (tc.conflate && !final) {
				t.Errorf("queue %+v; want one frame of %p, final %v", c.queue, want, final)
			}
		})
	}
}
