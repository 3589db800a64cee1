package downstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/gobwas/ws/wsutil"

	"github.com/marketgate/marketgate/hub"
)

// benchSubs are the subscriber counts of the fan-out benchmarks. Clients
// and server share one process here, and it may hold 20,000 descriptors:
// 9,000 connections take 18,000 of them; 10,000 would take them all.
var benchSubs = []int{1, 100, 1000, 9000}

// BenchmarkBroadcast measures fan-out from one hub publish to subs real
// loopback WebSocket clients: framing once, queueing on every subscriber,
// writev, and the clients reading. The timer stops only after every client
// has read every message. writes/op is the frames delivered per publish;
// allocs/write the allocations per delivered frame, clients included.
func BenchmarkBroadcast(b *testing.B) {
	for _, subs := range benchSubs {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) {
			benchBroadcast(b, subs, false)
		})
	}
}

// BenchmarkBroadcastCompressed is BenchmarkBroadcast with every client
// negotiating permessage-deflate: each message is compressed once and the
// same compressed frame written to every client (which do not inflate it).
func BenchmarkBroadcastCompressed(b *testing.B) {
	for _, subs := range benchSubs {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) {
			benchBroadcast(b, subs, true)
		})
	}
}

// startBenchServer runs a server on h for subs clients behind an
// httptest server and returns it, its WebSocket URL and the function that
// stops both.
func startBenchServer(b *testing.B, h *hub.Memory, subs int) (*Server, string, func()) {
	srv, err := New(Config{
		Hub: h, Source: newFakeSource(), Logger: slog.New(slog.DiscardHandler),
		MaxConns: subs + 10, MaxConnsPerIP: subs + 10,
		// Dialing thousands of clients takes long enough for the first to
		// be pinged, and these clients never answer.
		PingInterval: time.Hour,
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { srv.Run(ctx) })
	hs := httptest.NewServer(srv)
	for !srv.running.Load() {
		runtime.Gosched()
	}
	return srv, "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws", func() {
		cancel()
		wg.Wait()
		hs.Close()
	}
}

func benchBroadcast(b *testing.B, subs int, compress bool) {
	h := hub.NewMemory()
	srv, url, stop := startBenchServer(b, h, subs)
	defer stop()
	ctx := b.Context()
	const key = "binance:btcusdt@trade"
	var received atomic.Int64
	var readers sync.WaitGroup
	for range subs {
		nc, src, err := benchSubscriber(url, key, compress)
		if err != nil {
			b.Fatal(err)
		}
		readers.Go(func() {
			rd := wsutil.Reader{Source: src, State: ws.StateClientSide}
			if compress {
				rd.State = rd.State.Set(ws.StateExtended)
			}
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
		defer nc.Close()
	}
	payload := []byte(`{"e":"trade","E":1700000000000,"s":"BTCUSDT","t":42,"p":"37000.10000000","q":"0.01000000","T":1700000000000,"m":true,"M":true}`)
	b.ReportAllocs()
	var m1, m2 runtime.MemStats
	runtime.ReadMemStats(&m1)
	var seq uint64
	for b.Loop() {
		seq++
		h.Publish(ctx, hub.Message{Stream: key, Seq: seq, Data: payload})
		h.Flush(ctx)
		// Keep the publisher at most 256 messages ahead of the slowest
		// reader so queues stay bounded without slow-consumer closes.
		waitReceived(b, srv, &received, int64(subs)*int64(seq-min(seq, 256)))
	}
	waitReceived(b, srv, &received, int64(subs)*int64(seq))
	b.StopTimer()
	runtime.ReadMemStats(&m2)
	b.ReportMetric(float64(subs), "writes/op")
	b.ReportMetric(float64(m2.Mallocs-m1.Mallocs)/float64(seq)/float64(subs), "allocs/write")
	if n := srv.Stats().Closed["slow_consumer"]; n != 0 {
		b.Fatalf("%d slow-consumer closes", n)
	}
}

// benchSubscriber connects a client to url, offering permessage-deflate if
// compress, and subscribes it to key. It returns the connection and the
// reader its frames come from.
func benchSubscriber(url, key string, compress bool) (net.Conn, io.Reader, error) {
	d := ws.Dialer{Timeout: 10 * time.Second}
	if compress {
		d.Extensions = []httphead.Option{wsflate.DefaultParameters.Option()}
	}
	nc, br, hs, err := d.Dial(context.Background(), url)
	if err != nil {
		return nil, nil, err
	}
	if compress && len(hs.Extensions) == 0 {
		nc.Close()
		return nil, nil, errors.New("permessage-deflate not accepted")
	}
	var src io.Reader = nc
	if br != nil {
		src = br
	}
	if err := wsutil.WriteClientText(nc, []byte(`{"op":"subscribe","id":1,"streams":["`+key+`"]}`)); err != nil {
		nc.Close()
		return nil, nil, err
	}
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	rd := wsutil.Reader{Source: src, State: ws.StateClientSide}
	if _, err := rd.NextFrame(); err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("subscribe reply: %w", err)
	}
	if _, err := io.Copy(io.Discard, &rd); err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("subscribe reply: %w", err)
	}
	nc.SetReadDeadline(time.Time{})
	return nc, src, nil
}

// waitReceived spins until the clients have read n messages in all, and
// fails the benchmark if the server closed any of them meanwhile.
func waitReceived(b *testing.B, srv *Server, received *atomic.Int64, n int64) {
	for i := 0; received.Load() < n; i++ {
		runtime.Gosched()
		if i%1000 == 0 {
			// Not Stats: it allocates, and allocs/op is measured.
			if n, acc := srv.ConnCount(), srv.metrics.accepted.Load(); int64(n) != acc {
				b.Fatalf("clients were closed: %d of %d left", n, acc)
			}
		}
	}
}

// BenchmarkFanOut measures the server's own fan-out duration (see
// round): one event at a time to subs loopback clients, waiting until the
// event is written before the next. With clients=count they read and
// count bytes in this process, and the next event waits until they have
// it; with clients=mute they read nothing (their socket buffers take the
// run's few hundred frames), so the process spends its CPU on the server
// alone and the next event waits only for the writes. fanout-µs is the
// mean of marketgate_fanout_duration_seconds over the run, from the
// event's arrival to its last frame's write, and queue-µs the part of it
// spent queueing the frames on every subscriber, one after the other, on
// the publisher's goroutine (the serial part); frames/write the frames per
// write system call; allocs/frame the allocations per delivered frame,
// clients included. Run it with -cpu 1,2 to see what a second core gives.
func BenchmarkFanOut(b *testing.B) {
	for _, subs := range []int{1000, 4000, 9000} {
		for _, mute := range []bool{false, true} {
			name := fmt.Sprintf("subs=%d/clients=count", subs)
			if mute {
				name = fmt.Sprintf("subs=%d/clients=mute", subs)
			}
			b.Run(name, func(b *testing.B) {
				benchFanOut(b, subs, mute)
			})
		}
	}
}

// roundsDone reports whether every round handed to the pool has ended:
// every frame queued so far was written (or held back by a full socket).
func (s *Server) roundsDone() bool {
	s.pmu.Lock()
	idle := len(s.pending) == 0 && len(s.starts) == 0
	s.pmu.Unlock()
	s.rounds.mu.Lock()
	defer s.rounds.mu.Unlock()
	return idle && len(s.rounds.fifo) == 0
}

func benchFanOut(b *testing.B, subs int, mute bool) {
	h := hub.NewMemory()
	srv, url, stop := startBenchServer(b, h, subs)
	defer stop()
	var wg sync.WaitGroup // the readers, which end as their conns close
	defer wg.Wait()
	ctx := b.Context()
	const key = "binance:btcusdt@trade"
	var received atomic.Int64 // bytes
	for range subs {
		nc, src, err := benchSubscriber(url, key, false)
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		if mute {
			continue
		}
		wg.Go(func() {
			var buf [4096]byte
			for {
				n, err := src.Read(buf[:])
				received.Add(int64(n))
				if err != nil {
					return
				}
			}
		})
	}
	// wait waits until the event is written (mute) or read (count).
	wait := func() {
		want := srv.metrics.bytesOut.Load()
		for i := 0; mute && !srv.roundsDone() || !mute && received.Load() < want; i++ {
			// Sleep, not Gosched: a goroutine that spins holds a P the
			// server's workers could use, which hides what a second
			// core gives.
			time.Sleep(20 * time.Microsecond)
			if i%1000 == 0 && srv.ConnCount() != subs {
				b.Fatalf("clients were closed: %d of %d left", srv.ConnCount(), subs)
			}
		}
	}
	payload := []byte(`{"e":"trade","E":1700000000000,"s":"BTCUSDT","t":42,"p":"37000.10000000","q":"0.01000000","T":1700000000000,"m":true,"M":true}`)
	// One event first: a connection's first frame allocates its queue
	// and write arrays, which later frames reuse.
	h.Publish(ctx, hub.Message{Stream: key, Seq: 1, Data: payload})
	h.Flush(ctx)
	wait()
	before := srv.Stats()
	var m1, m2 runtime.MemStats
	runtime.ReadMemStats(&m1)
	b.ReportAllocs()
	seq := uint64(1)
	var queueing time.Duration // in Publish: Receive's serial loop over the subscribers
	for b.Loop() {
		seq++
		t0 := time.Now()
		h.Publish(ctx, hub.Message{Stream: key, Seq: seq, Data: payload})
		queueing += time.Since(t0)
		h.Flush(ctx)
		wait()
	}
	b.StopTimer()
	runtime.ReadMemStats(&m2)
	after := srv.Stats()
	d := after.FanOutDuration
	n := d.Count - before.FanOutDuration.Count
	if n > 0 {
		b.ReportMetric(float64((d.Sum-before.FanOutDuration.Sum).Microseconds())/float64(n), "fanout-µs")
	}
	if w := after.Writes - before.Writes; w > 0 {
		b.ReportMetric(float64(after.FramesOut-before.FramesOut)/float64(w), "frames/write")
	}
	b.ReportMetric(float64(queueing.Microseconds())/float64(seq-1), "queue-µs")
	b.ReportMetric(float64(m2.Mallocs-m1.Mallocs)/float64(seq-1)/float64(subs), "allocs/frame")
}
