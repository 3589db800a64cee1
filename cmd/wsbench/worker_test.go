package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// fakeServer answers a subscribe, pings once, then sends each stream's
// seqs, E set to now, and waits for the client's close.
func fakeServer(t *testing.T, seqs []uint64) *httptest.Server {
	t.Helper()
	var wg sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, _, err := ws.UpgradeHTTP(r, w)
		if err != nil {
			return
		}
		wg.Go(func() {
			defer conn.Close()
			msg, err := wsutil.ReadClientText(conn)
			if err != nil {
				return
			}
			var cmd struct {
				ID      json.RawMessage `json:"id"`
				Streams []string        `json:"streams"`
			}
			if err := json.Unmarshal(msg, &cmd); err != nil {
				return
			}
			if err := wsutil.WriteServerText(conn, fmt.Appendf(nil, `{"id":%s,"result":{"streams":[]}}`, cmd.ID)); err != nil {
				return
			}
			_ = wsutil.WriteServerMessage(conn, ws.OpPing, []byte("hi"))
			for _, s := range cmd.Streams {
				for _, q := range seqs {
					m := fmt.Sprintf(`{"stream":%q,"seq":%d,"data":{"e":"trade","E":%d}}`, s, q, time.Now().UnixMilli())
					if err := wsutil.WriteServerText(conn, []byte(m)); err != nil {
						return
					}
				}
			}
			// Read the pong and the close frame.
			for {
				if _, _, err := wsutil.ReadClientData(conn); err != nil {
					return
				}
			}
		})
	}))
	t.Cleanup(func() {
		srv.Close()
		wg.Wait()
	})
	return srv
}

func TestWorker(t *testing.T) {
	srv := fakeServer(t, []uint64{1, 2, 3, 5, 6})
	cfg := config{
		url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws", conns: 20, streams: []string{"a", "b", "c"}, perConn: 2,
		procs: 2, rate: 1000, dialTimeout: 5 * time.Second, child: -1,
	}
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	ctx, cancel := context.WithCancel(t.Context())
	// Two workers, as two child processes would split the connections.
	workers := []*worker{newWorker(cfg, 0, log), newWorker(cfg, 1, log)}
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() { w.run(ctx) })
	}
	snapshot := func() Snapshot { return Merge([]Snapshot{workers[0].snapshot(), workers[1].snapshot()}) }
	want := int64(20 * 2 * 5) // conns × streams × messages
	deadline := time.Now().Add(5 * time.Second)
	for s := snapshot(); !s.Ready || s.Msgs < want; s = snapshot() {
		if time.Now().After(deadline) {
			t.Fatalf("after 5s: %+v", s)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	s := snapshot()
	if s.Opened != 20 || s.Closed != 20 || s.Subscribed != 20 || s.Errors() != 0 {
		t.Errorf("opened %d closed %d subscribed %d errors %d; want 20, 20, 20, 0", s.Opened, s.Closed, s.Subscribed, s.Errors())
	}
	if s.Msgs != want || s.Latency.Total() != uint64(want) {
		t.Errorf("msgs %d, latency samples %d; want %d", s.Msgs, s.Latency.Total(), want)
	}
	if s.SeqGaps != 40 || s.Missing != 40 { // seq 4 is missing once per stream and connection
		t.Errorf("seq gaps %d missing %d; want 40, 40", s.SeqGaps, s.Missing)
	}
	if p := s.Latency.Quantile(1); p > 5_000_000 {
		t.Errorf("max latency %d µs; want well under 5 s", p)
	}
}

func TestWorkerRefused(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "full", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	cfg := config{url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws", conns: 3, streams: []string{"a"}, perConn: 1,
		procs: 1, rate: 1000, dialTimeout: 5 * time.Second, child: -1}
	w := newWorker(cfg, 0, slog.New(slog.NewTextHandler(t.Output(), nil)))
	w.run(t.Context())
	s := w.snapshot()
	if !s.Ready || s.HandshakeErrors != 3 || s.Opened != 0 {
		t.Errorf("snapshot %+v; want ready, 3 handshake errors, none opened", s)
	}
	cfg.url = "ws://127.0.0.1:1/ws" // nothing listens on port 1
	w = newWorker(cfg, 0, slog.New(slog.NewTextHandler(t.Output(), nil)))
	w.run(t.Context())
	if s := w.snapshot(); s.DialErrors != 3 {
		t.Errorf("snapshot %+v; want 3 dial errors", s)
	}
}

// TestWorkerOthers checks --sample-conns with both --others modes: only
// the sampled connections record latency and seqs; counting ones count
// every message, mute ones none.
func TestWorkerOthers(t *testing.T) {
	for _, tc := range []struct {
		others string
		msgs   int64
	}{
		{othersCount, 20 * 2 * 5},
		{othersMute, 6 * 2 * 5},
	} {
		t.Run(tc.others, func(t *testing.T) {
			srv := fakeServer(t, []uint64{1, 2, 3, 5, 6})
			// 20 connections in groups of 3 (the streams): groups 2 and 5
			// sample, connections 6-8 and 15-17.
			cfg := config{
				url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws", conns: 20, streams: []string{"a", "b", "c"}, perConn: 2,
				procs: 1, rate: 1000, dialTimeout: 5 * time.Second, child: -1, sampleConns: 6, others: tc.others,
			}
			w := newWorker(cfg, 0, slog.New(slog.NewTextHandler(t.Output(), nil)))
			ctx, cancel := context.WithCancel(t.Context())
			var wg sync.WaitGroup
			wg.Go(func() { w.run(ctx) })
			deadline := time.Now().Add(5 * time.Second)
			for s := w.snapshot(); !s.Ready || s.Msgs < tc.msgs || s.Latency.Total() < 60; s = w.snapshot() {
				if time.Now().After(deadline) {
					t.Fatalf("after 5s: %+v", s)
				}
				time.Sleep(10 * time.Millisecond)
			}
			cancel()
			wg.Wait()
			s := w.snapshot()
			if s.Msgs != tc.msgs || s.Latency.Total() != 60 || s.Errors() != 0 {
				t.Errorf("msgs %d, latency samples %d, errors %d; want %d, 60, 0", s.Msgs, s.Latency.Total(), s.Errors(), tc.msgs)
			}
			if s.SeqGaps != 12 {
				t.Errorf("seq gaps %d; want 12 (the sampled connections')", s.SeqGaps)
			}
		})
	}
}
