package upstream_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/marketgate/marketgate/upstream"

	"github.com/marketgate/marketgate/exchangesim/binancesim"
	"github.com/marketgate/marketgate/internal/waitfor"
)

func TestBinanceFuturesSim(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t, binancesim.Config{Mode: binancesim.ModeFutures, MaxLifetime: 3 * time.Second})
	rec := newRecorder()
	f, err := newFutures(Config{
		URL:         "ws://" + addr,
		RESTURL:     "http://" + addr,
		Publisher:   rec,
		Logger:      testLogger(t),
		BackoffMin:  100 * time.Millisecond,
		BackoffMax:  time.Second,
		MaxLifetime: 3 * time.Second,
		RotateAfter: 1500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if f.Name() != "binance-futures" {
		t.Fatalf("Name() = %q", f.Name())
	}
	r := NewRouter(f)
	runBinance(t, f)
	waitfor.Cond(t, 5*time.Second, f.Ready)
	market := []string{"btcusdt@aggTrade", "ethusdt@aggTrade", "btcusdt@markPrice@1s", "btcusdt@kline_1m", "!miniTicker@arr"}
	public := []string{"btcusdt@depth@100ms", "ethusdt@depth", "btcusdt@depth5@100ms", "btcusdt@bookTicker"}
	var keys []string
	for _, n := range append(market, public...) {
		k := "binance-futures:" + n
		if err := r.Validate(k); err != nil {
			t.Fatalf("Validate(%q) = %v", k, err)
		}
		keys = append(keys, k)
	}
	for key, want := range map[string]error{
		"binance-futures:btcusdt@trade":    ErrInvalidStream, // spot only
		"binance-futures:foousdt@aggTrade": ErrUnknownSymbol,
	} {
		if err := r.Validate(key); !errors.Is(err, want) {
			t.Errorf("Validate(%q) = %v; want %v", key, err, want)
		}
	}
	r.Want(keys)
	waitKeys(t, rec, "binance-futures", append(market[:2], public...), 3)
	waitfor.Cond(t, 10*time.Second, func() error {
		if st := f.Status(); st.Rotations < 4 || rotating(st) {
			return fmt.Errorf("%d rotations", st.Rotations)
		}
		return nil
	})
	waitKeys(t, rec, "binance-futures", market[:2], 40)

	// Between rotations each stream is held once (during one, by both
	// connections of its shard).
	waitfor.Cond(t, 5*time.Second, func() error {
		subs := sim.Subscriptions()
		for _, n := range append(market, public...) {
			if subs[n] != 1 {
				return fmt.Errorf("%s held %d times", n, subs[n])
			}
		}
		if len(subs) != len(market)+len(public) {
			return fmt.Errorf("%d streams held", len(subs))
		}
		return nil
	})
	for _, c := range sim.Clients() {
		switch {
		case strings.HasPrefix(c.Path, "/market/stream"):
		case strings.HasPrefix(c.Path, "/public/stream"):
		default:
			t.Errorf("connection %d to %s; want /market/stream or /public/stream", c.ID, c.Path)
		}
	}
	checkRotations(t, sim, rec) // WrongRoute included
	st := f.Status()
	if len(st.Shards) != 2 || st.Shards[0].Endpoint != "/market/stream" || st.Shards[0].Assigned != len(market) ||
		st.Shards[1].Endpoint != "/public/stream" || st.Shards[1].Assigned != len(public) {
		t.Errorf("shards %+v; want the market and public endpoints with their streams", st.Shards)
	}
	if st.Reconnects != 0 {
		t.Errorf("status %+v; want no reconnect", st)
	}
}
