package upstream

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/marketgate/marketgate/exchangesim/binancesim"
	"github.com/marketgate/marketgate/internal/waitfor"
)

func TestParseFuturesStream(t *testing.T) {
	tests := []struct {
		name     string
		want     Stream
		endpoint int
	}{
		{"btcusdt@aggTrade", Stream{Symbol: "btcusdt", Kind: KindAggTrade}, futuresMarket},
		{"btcusdt@markPrice", Stream{Symbol: "btcusdt", Kind: KindMarkPrice, Speed: 3 * time.Second}, futuresMarket},
		{"btcusdt@markPrice@1s", Stream{Symbol: "btcusdt", Kind: KindMarkPrice, Speed: time.Second}, futuresMarket},
		{"!markPrice@arr", Stream{Kind: KindMarkPriceArr, Speed: 3 * time.Second}, futuresMarket},
		{"!markPrice@arr@1s", Stream{Kind: KindMarkPriceArr, Speed: time.Second}, futuresMarket},
		{"btcusdt@kline_1m", Stream{Symbol: "btcusdt", Kind: KindKline, Interval: "1m"}, futuresMarket},
		{"btcusdt_perpetual@continuousKline_1M", Stream{Symbol: "btcusdt", Kind: KindContinuousKline, Interval: "1M", ContractType: "perpetual"}, futuresMarket},
		{"ethusdt_next_quarter@continuousKline_5m", Stream{Symbol: "ethusdt", Kind: KindContinuousKline, Interval: "5m", ContractType: "next_quarter"}, futuresMarket},
		{"btcusdt@miniTicker", Stream{Symbol: "btcusdt", Kind: KindMiniTicker}, futuresMarket},
		{"!miniTicker@arr", Stream{Kind: KindMiniTickerArr}, futuresMarket},
		{"btcusdt@ticker", Stream{Symbol: "btcusdt", Kind: KindTicker}, futuresMarket},
		{"!ticker@arr", Stream{Kind: KindTickerArr}, futuresMarket},
		{"btcusdt@forceOrder", Stream{Symbol: "btcusdt", Kind: KindForceOrder}, futuresMarket},
		{"!forceOrder@arr", Stream{Kind: KindForceOrderArr}, futuresMarket},
		{"btcusdt@bookTicker", Stream{Symbol: "btcusdt", Kind: KindBookTicker}, futuresPublic},
		{"!bookTicker", Stream{Kind: KindBookTickerArr}, futuresPublic},
		{"btcusdt@depth", Stream{Symbol: "btcusdt", Kind: KindDiffDepth, Speed: 250 * time.Millisecond}, futuresPublic},
		{"btcusdt@depth@100ms", Stream{Symbol: "btcusdt", Kind: KindDiffDepth, Speed: 100 * time.Millisecond}, futuresPublic},
		{"btcusdt@depth@500ms", Stream{Symbol: "btcusdt", Kind: KindDiffDepth, Speed: 500 * time.Millisecond}, futuresPublic},
		{"btcusdt@depth20@100ms", Stream{Symbol: "btcusdt", Kind: KindPartialDepth, Levels: 20, Speed: 100 * time.Millisecond}, futuresPublic},
		{"btcusdt_260626@depth5", Stream{Symbol: "btcusdt_260626", Kind: KindPartialDepth, Levels: 5, Speed: 250 * time.Millisecond}, futuresPublic},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseFuturesStream(tc.name)
			if err != nil {
				t.Fatalf("ParseFuturesStream(%q) error = %v", tc.name, err)
			}
			tc.want.Name = tc.name
			if got != tc.want {
				t.Errorf("ParseFuturesStream(%q) = %+v; want %+v", tc.name, got, tc.want)
			}
			if ep := BinanceFutures.endpointOf(got); ep != tc.endpoint {
				t.Errorf("endpoint of %q = %s; want %s", tc.name, futuresEndpoints[ep], futuresEndpoints[tc.endpoint])
			}
		})
	}
	for _, name := range []string{
		"", "btcusdt@trade", "btcusdt@avgPrice", "btcusdt@kline_1s", "btcusdt@kline_1m@+08:00",
		"btcusdt@ticker_1h", "btcusdt@depth@1000ms", "btcusdt@depth15", "btcusdt@markPrice@3s",
		"BTCUSDT@aggTrade", "!ticker_1h@arr", "!bookTicker@arr", "btcusdt@continuousKline_1m",
		"btcusdt_weekly@continuousKline_1m", "btcusdt_perpetual@continuousKline_1s", "btcusdt__x@aggTrade",
		"_btcusdt@aggTrade", "!serverShutdown",
	} {
		if s, err := ParseFuturesStream(name); !errors.Is(err, ErrInvalidStream) {
			t.Errorf("ParseFuturesStream(%q) = %+v, %v; want ErrInvalidStream", name, s, err)
		}
	}
}

func TestBinanceFuturesSim(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t, binancesim.Config{Mode: binancesim.ModeFutures, MaxLifetime: 3 * time.Second})
	rec := newRecorder()
	f, err := NewBinanceFutures(BinanceConfig{
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
