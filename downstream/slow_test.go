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
func TestConflateLocked(t *testing.T) {
	srv, err := New(Config{Hub: hub.NewMemory(), Source: newFakeSource(), WriteQueueBytes: 10})
	if err != nil {
		t.Fatal(err)
	}
	a, b := newTopic("binance:btcusdt@bookTicker"), newTopic("binance:ethusdt@bookTicker")
	f := func(s string) []byte { return []byte(s) }
	type entry struct {
		frame string
		t     *topic
	}
	tests := []struct {
		name  string
		queue []entry
		frame string
		t     *topic
		ok    bool
		want  []entry // the queue after
		drops int64
	}{
		{"replaces the stream's last frame, drops its others",
			[]entry{{"a1", a}, {"r!", nil}, {"b1", b}, {"a2", a}, {"x!", nil}}, "a3", a, true,
			[]entry{{"r!", nil}, {"b1", b}, {"a3", a}, {"x!", nil}}, 2},
		{"cuts other streams down to their last frame to make room",
			[]entry{{"b1", b}, {"b2", b}, {"b3", b}, {"r!", nil}, {"b4", b}}, "a1", a, true,
			[]entry{{"r!", nil}, {"b4", b}, {"a1", a}}, 3},
		{"full of frames that must not be dropped",
			[]entry{{"t1", nil}, {"t2", nil}, {"t3", nil}, {"t4", nil}, {"t5", nil}}, "a1", a, false,
			[]entry{{"t1", nil}, {"t2", nil}, {"t3", nil}, {"t4", nil}, {"t5", nil}}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &conn{srv: srv}
			c.writing = true // no flush runs here
			for _, e := range tc.queue {
				c.queue = append(c.queue, qframe{f(e.frame), e.t})
				c.queued += len(e.frame)
			}
			before := srv.metrics.drops["conflated"].Load()
			if ok := c.conflateLocked(f(tc.frame), tc.t); ok != tc.ok {
				t.Fatalf("conflateLocked = %v; want %v", ok, tc.ok)
			}
			var got []entry
			n := 0
			for _, q := range c.queue {
				got = append(got, entry{string(q.frame), q.t})
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
