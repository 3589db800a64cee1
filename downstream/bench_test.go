package downstream

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/marketgate/marketgate/downstream/downstreamtest"
	"github.com/marketgate/marketgate/hub"
)

// BenchmarkBroadcast measures fan-out from one hub publish to subs real
// loopback WebSocket clients: framing once, queueing on every subscriber,
// writev, and the clients reading. The timer stops only after every client
// has read every message.
func BenchmarkBroadcast(b *testing.B) {
	for _, subs := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) {
			benchBroadcast(b, subs)
		})
	}
}

func benchBroadcast(b *testing.B, subs int) {
	h := hub.NewMemory()
	srv, err := New(Config{Hub: h, Source: newFakeSource(), Logger: slog.New(slog.DiscardHandler), MaxConns: subs + 10})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { srv.Run(ctx) })
	hs := httptest.NewServer(srv)
	defer func() {
		cancel()
		wg.Wait()
		hs.Close()
	}()
	for !srv.running.Load() {
		runtime.Gosched()
	}
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"
	const key = "binance:btcusdt@trade"
	var received atomic.Int64
	var readers sync.WaitGroup
	for range subs {
		c, err := downstreamtest.TryDial(url, nil)
		if err != nil {
			b.Fatal(err)
		}
		c.T = b
		c.Send(`{"op":"subscribe","id":1,"streams":["` + key + `"]}`)
		c.Next()
		readers.Go(func() {
			rd := wsutil.Reader{Source: c.Conn(), State: ws.StateClientSide}
			for {
				if _, err := rd.NextFrame(); err != nil {
					return
				}
				if _, err := io.Copy(io.Discard, &rd); err != nil {
					return
				}
				received.Add(1)
			}
		})
		defer c.Close()
	}
	payload := []byte(`{"e":"trade","E":1700000000000,"s":"BTCUSDT","t":42,"p":"37000.10000000","q":"0.01000000","T":1700000000000,"m":true,"M":true}`)
	b.ReportAllocs()
	b.ResetTimer()
	var seq uint64
	for b.Loop() {
		seq++
		h.Publish(ctx, hub.Message{Stream: key, Seq: seq, Data: payload})
		// Keep the publisher at most 256 messages ahead of the slowest
		// reader so queues stay bounded without slow-consumer closes.
		waitReceived(b, srv, &received, int64(subs)*int64(seq-min(seq, 256)))
	}
	waitReceived(b, srv, &received, int64(subs)*int64(seq))
	b.StopTimer()
	b.ReportMetric(float64(subs), "writes/op")
	if n := srv.Stats().Closed["slow_consumer"]; n != 0 {
		b.Fatalf("%d slow-consumer closes", n)
	}
}

// waitReceived spins until the clients have read n messages in all, and
// fails the benchmark if the server closed any of them meanwhile.
func waitReceived(b *testing.B, srv *Server, received *atomic.Int64, n int64) {
	for i := 0; received.Load() < n; i++ {
		runtime.Gosched()
		if i%1000 == 0 {
			if st := srv.Stats(); int64(st.Conns) != st.Accepted {
				b.Fatalf("clients were closed: %+v", st)
			}
		}
	}
}
