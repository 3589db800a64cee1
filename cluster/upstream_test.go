package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/marketgate/marketgate/exchangesim/binancesim"
	"github.com/marketgate/marketgate/hub"
	"github.com/marketgate/marketgate/internal/redistest"
	"github.com/marketgate/marketgate/internal/waitfor"
	"github.com/marketgate/marketgate/upstream"
	"github.com/marketgate/marketgate/upstream/binance"
)

// discard is a hub.Publisher that drops everything.
type discard struct{}

func (discard) Publish(context.Context, hub.Message) error { return nil }
func (discard) Flush(context.Context) error                { return nil }

// startFeed runs a lazy Binance feed with the default Linger against an
// in-process simulator until the test ends.
func startFeed(t *testing.T) (*upstream.Feed, *binancesim.Server) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	sim, err := binancesim.New(binancesim.Config{Symbols: []string{"BTCUSDT", "ETHUSDT"}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	feed, err := upstream.New(upstream.Config{Dialect: binance.Spot,
		URL: "ws://" + addr, RESTURL: "http://" + addr, Publisher: discard{}, Logger: log, Lazy: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	simDone, feedDone := make(chan error, 1), make(chan error, 1)
	go func() { simDone <- sim.Run(ctx, ln) }()
	go func() { feedDone <- feed.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-feedDone
		if err := <-simDone; err != nil {
			t.Errorf("simulator Run = %v", err)
		}
	})
	return feed, sim
}

// TestLeaseLostUnsubscribesAtOnce runs a node over a real feed: when its
// lease is taken, the exchange sees the streams go at once, not after the
// feed's Linger (5s), while another node carries them.
func TestLeaseLostUnsubscribesAtOnce(t *testing.T) {
	feed, sim := startFeed(t)
	srv := redistest.Start(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer client.Close()
	cfg := testConfig(t, "a", client, upstream.NewRouter(feed))
	cfg.Exchanges = []string{testExchange}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()
	n.Want([]string{"binance:btcusdt@trade", "binance:ethusdt@trade"})
	subscribed := func(want int) func() error {
		return func() error {
			subs := sim.Subscriptions()
			for _, s := range []string{"btcusdt@trade", "ethusdt@trade"} {
				if subs[s] != want {
					return fmt.Errorf("the exchange has %s on %d connections; want %d (all: %v)", s, subs[s], want, subs)
				}
			}
			return nil
		}
	}
	waitfor.Cond(t, 10*time.Second, subscribed(1))

	lease := newKeyspace(defaultPrefix).exchange(testExchange).lease
	if err := client.Set(t.Context(), lease, leaseValue("intruder", 1<<50), 10*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	stolen := time.Now()
	// The node notices at its next renewal (within TTL/4) and the feed's
	// writer unsubscribes at once; the default Linger is 5s.
	waitfor.Cond(t, testTTL+time.Second, subscribed(0))
	t.Logf("the exchange saw the streams go %v after the lease was taken", time.Since(stolen).Round(time.Millisecond))
}
