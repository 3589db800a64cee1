package bybit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/marketgate/marketgate/exchangesim/bybitsim"
	"github.com/marketgate/marketgate/exchangesim/bybitsim/simtest"
	"github.com/marketgate/marketgate/hub"
	"github.com/marketgate/marketgate/internal/waitfor"
	"github.com/marketgate/marketgate/upstream"
	"github.com/marketgate/marketgate/upstream/bybit"
)

// These tests run the core with the Bybit dialects against the strict
// simulator, which counts every rule broken.

// recorder is a hub.Publisher that keeps every message, by stream.
type recorder struct {
	mu   sync.Mutex
	msgs map[string][]hub.Message
}

func newRecorder() *recorder { return &recorder{msgs: map[string][]hub.Message{}} }

func (r *recorder) Publish(_ context.Context, m hub.Message) error {
	m.Data = bytes.Clone(m.Data)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs[m.Stream] = append(r.msgs[m.Stream], m)
	return nil
}

func (r *recorder) Flush(context.Context) error { return nil }

func (r *recorder) get(stream string) []hub.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs[stream])
}

func (r *recorder) counts(keys []string) map[string]int {
	out := map[string]int{}
	for _, k := range keys {
		out[k] = len(r.get(k))
	}
	return out
}

// waitMore waits until each key has n more messages than before.
func (r *recorder) waitMore(t *testing.T, keys []string, before map[string]int, n int) {
	t.Helper()
	waitfor.Cond(t, 10*time.Second, func() error {
		for _, k := range keys {
			if got := len(r.get(k)); got < before[k]+n {
				return fmt.Errorf("%s: %d messages, want %d", k, got, before[k]+n)
			}
		}
		return nil
	})
}

// fastBeat is a dialect whose heartbeat is every 100 ms, so that tests
// see the simulator's heartbeat deadline at work.
type fastBeat struct{ bybit.Dialect }

func (f fastBeat) Heartbeat() upstream.Heartbeat {
	h := f.Dialect.Heartbeat()
	h.Every = 100 * time.Millisecond
	return h
}

func newFeed(t *testing.T, d upstream.Dialect, addr string, pub hub.Publisher, mod func(*upstream.Config)) *upstream.Feed {
	t.Helper()
	cfg := upstream.Config{
		Dialect:    d,
		URL:        "ws://" + addr,
		RESTURL:    "http://" + addr,
		Publisher:  pub,
		Logger:     slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		BackoffMin: 100 * time.Millisecond,
		BackoffMax: time.Second,
		// MaxParams is left to the dialect's Limits: spot's 10 args per
		// request, which the strict simulator holds the feed to.
	}
	if mod != nil {
		mod(&cfg)
	}
	f, err := upstream.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("feed did not stop")
		}
	})
	return f
}

// check checks each stream's messages: Seq 1, 2, 3, … and, between gaps,
// orderbook deltas whose u continues (a snapshot resets), spot trade ids
// that increase and repeat none, and no candle after a later one. It
// returns the gaps per stream.
func check(t *testing.T, rec *recorder, d bybit.Dialect, keys []string) map[string]int {
	t.Helper()
	gaps := map[string]int{}
	for _, key := range keys {
		name := key[len(d.Name())+1:]
		s, err := d.ParseStream(name)
		if err != nil {
			t.Fatal(err)
		}
		var lastU, lastTrade int64
		for i, m := range rec.get(key) {
			if m.Seq != uint64(i+1) {
				t.Errorf("%s: message %d has seq %d", key, i, m.Seq)
			}
			if m.Gap {
				gaps[key]++
				lastU, lastTrade = 0, 0
			}
			if m.Err != "" {
				continue
			}
			var ev struct {
				Topic string          `json:"topic"`
				Type  string          `json:"type"`
				Data  json.RawMessage `json:"data"`
			}
			if err := json.Unmarshal(m.Data, &ev); err != nil || ev.Topic != name {
				t.Errorf("%s: message %d: %s (%v)", key, i, m.Data, err)
				continue
			}
			switch bybit.Kind(s.Kind) {
			case bybit.KindBook:
				var b struct{ U int64 }
				json.Unmarshal(ev.Data, &b)
				if ev.Type == "delta" && lastU != 0 && b.U != lastU+1 {
					t.Errorf("%s: message %d: u %d after %d", key, i, b.U, lastU)
				}
				lastU = b.U
			case bybit.KindTrade:
				if !d.Spot() {
					continue
				}
				var ts []struct{ I string }
				json.Unmarshal(ev.Data, &ts)
				for _, tr := range ts {
					id, _ := strconv.ParseInt(tr.I, 10, 64)
					if id <= lastTrade {
						t.Errorf("%s: message %d: trade %d after %d", key, i, id, lastTrade)
					}
					lastTrade = id
				}
			}
		}
	}
	return gaps
}

var symbols = []string{"BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT", "LTCUSDT", "BNBUSDT"}

func keysOf(d bybit.Dialect, syms []string, topics ...string) []string {
	var keys []string
	for _, s := range syms {
		for _, tp := range topics {
			keys = append(keys, d.Name()+":"+tp+s)
		}
	}
	return keys
}

func names(keys []string, d bybit.Dialect) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k[len(d.Name())+1:]
	}
	return out
}

// TestFeedSpotMany subscribes 48 topics, past the 20 a connection may
// hold here, in requests of at most 10; bad symbols never reach the
// exchange; a heartbeat keeps idle connections open.
func TestFeedSpotMany(t *testing.T) {
	sim, addr := simtest.Start(t, bybitsim.Config{Symbols: symbols, TickInterval: 20 * time.Millisecond, PingTimeout: time.Second})
	rec := newRecorder()
	f := newFeed(t, fastBeat{bybit.Spot}, addr, rec, func(c *upstream.Config) { c.MaxStreams = 20 })
	r := upstream.NewRouter(f)
	keys := keysOf(bybit.Spot, symbols, "publicTrade.", "tickers.", "orderbook.1.", "orderbook.50.", "orderbook.200.", "kline.1.")
	waitfor.Cond(t, 5*time.Second, f.Ready)
	for _, k := range keys {
		if err := r.Validate(k); err != nil {
			t.Fatalf("Validate(%s) = %v", k, err)
		}
	}
	for key, want := range map[string]error{
		"bybit:publicTrade.NOPEUSDT":     upstream.ErrUnknownSymbol,
		"bybit:publicTrade.DELISTEDUSDT": upstream.ErrUnknownSymbol,
		"bybit:publicTrade.btcusdt":      upstream.ErrInvalidStream,
		"bybit:orderbook.25.BTCUSDT":     upstream.ErrInvalidStream,
	} {
		if err := r.Validate(key); !errors.Is(err, want) {
			t.Errorf("Validate(%s) = %v; want %v", key, err, want)
		}
	}
	r.Want(keys)
	f.Subscribe([]string{"publicTrade.NOPEUSDT", "orderbook.25.BTCUSDT", `tickers.BTCUSDT","x`})
	waitfor.Cond(t, 15*time.Second, func() error {
		if n := len(sim.Subscriptions()); n != len(keys) {
			return fmt.Errorf("simulator holds %d topics", n)
		}
		if st := f.Status(); st.Streams != len(keys) || st.PendingStreams != 0 {
			return fmt.Errorf("status: %d streams, %d pending", st.Streams, st.PendingStreams)
		}
		return nil
	})
	rec.waitMore(t, keysOf(bybit.Spot, symbols, "orderbook.50.", "tickers."), nil, 3)
	time.Sleep(1500 * time.Millisecond) // past the simulator's 1 s heartbeat deadline, with no request
	clients := sim.Clients()
	if len(clients) != 3 {
		t.Errorf("%d connections; want 3 for 48 topics at 20 each", len(clients))
	}
	for _, c := range clients {
		if c.Closed || c.Topics > 20 || c.Violations() != 0 || c.Pings == 0 || c.Requests["subscribe"] < (c.Topics+9)/10 {
			t.Errorf("connection %+v; want open, at most 20 topics, pings, requests of at most 10", c)
		}
	}
	st := f.Status()
	if len(st.Failed) != 1 || st.Failed[0].Stream != "publicTrade.NOPEUSDT" {
		t.Errorf("Failed = %+v; want publicTrade.NOPEUSDT", st.Failed)
	}
	if n := sim.Violations(); n != 0 {
		t.Errorf("simulator violations = %d", n)
	}
	if gaps := check(t, rec, bybit.Spot, keys); len(gaps) != 0 {
		t.Errorf("gaps %v", gaps)
	}
	for _, k := range keys {
		s, _ := bybit.Spot.ParseStream(k[len("bybit:"):])
		for _, m := range rec.get(k) {
			if m.Conflate != s.Class.Conflatable() {
				t.Errorf("%s: Conflate %v", k, m.Conflate)
				break
			}
		}
	}
}

// TestFeedShutdownAndDrop: a shutdown notice is handed over make before
// break with nothing lost; an abrupt drop reconnects.
func TestFeedShutdownAndDrop(t *testing.T) {
	for _, d := range []bybit.Dialect{bybit.Spot, bybit.Linear} {
		t.Run(d.Name(), func(t *testing.T) {
			product := bybitsim.ProductSpot
			if !d.Spot() {
				product = bybitsim.ProductLinear
			}
			sim, addr := simtest.Start(t, bybitsim.Config{Product: product, TickInterval: 20 * time.Millisecond})
			rec := newRecorder()
			f := newFeed(t, d, addr, rec, nil)
			keys := keysOf(d, symbols[:4], "publicTrade.", "tickers.", "orderbook.1.", "orderbook.50.", "kline.1.")
			f.Subscribe(names(keys, d))
			rec.waitMore(t, keys, nil, 3)

			sim.SendShutdown(-1) // announce; the client closes
			waitfor.Cond(t, 10*time.Second, func() error {
				cs := sim.Clients()
				if len(cs) != 2 || !cs[0].Closed || cs[1].Topics != len(keys) {
					return fmt.Errorf("%d connections", len(cs))
				}
				return nil
			})
			rec.waitMore(t, keys, rec.counts(keys), 3)
			// Announce, and close 2 s later (Bybit documents no notice;
			// OKX's comes 60 s ahead): the new connection's two requests
			// and the switch fit.
			sim.SendShutdown(2 * time.Second)
			waitfor.Cond(t, 10*time.Second, func() error {
				cs := sim.Clients()
				if len(cs) != 3 || !cs[1].Closed || cs[2].Topics != len(keys) {
					return fmt.Errorf("%d connections", len(cs))
				}
				return nil
			})
			rec.waitMore(t, keys, rec.counts(keys), 3)
			if gaps := check(t, rec, d, keys); len(gaps) != 0 {
				t.Errorf("gaps %v across make-before-break handovers", gaps)
			}
			if st := f.Status(); st.Rotations != 2 || st.Reconnects != 0 {
				t.Errorf("status: %d rotations, %d reconnects; want 2, 0", st.Rotations, st.Reconnects)
			}

			sim.DropAll()
			waitfor.Cond(t, 10*time.Second, func() error {
				for _, k := range keys {
					if !slices.ContainsFunc(rec.get(k), func(m hub.Message) bool { return m.Gap }) {
						return fmt.Errorf("%s: nothing after the drop", k)
					}
				}
				return nil
			})
			for k, n := range check(t, rec, d, keys) {
				if n != 1 {
					t.Errorf("%s: %d gaps; want 1", k, n)
				}
			}
			if st := f.Status(); st.Reconnects != 1 {
				t.Errorf("status: %d reconnects; want 1", st.Reconnects)
			}
			if n := sim.Violations(); n != 0 {
				t.Errorf("simulator violations = %d", n)
			}
		})
	}
}

// TestFeedPagedSymbols: the linear instrument list comes in pages; a
// symbol of any page is valid, and one on no page is refused before
// anything goes upstream.
func TestFeedPagedSymbols(t *testing.T) {
	syms := []string{"AUSDT", "BUSDT", "CUSDT", "DUSDT", "EUSDT"}
	sim, addr := simtest.Start(t, bybitsim.Config{Product: bybitsim.ProductLinear, Symbols: syms, MaxPageSize: 2})
	f := newFeed(t, bybit.Linear, addr, newRecorder(), nil)
	waitfor.Cond(t, 5*time.Second, f.Ready)
	for _, s := range syms {
		if err := f.Validate("publicTrade." + s); err != nil {
			t.Errorf("Validate(publicTrade.%s) = %v; want nil (a symbol of page %d)", s, err, 1+slices.Index(syms, s)/2)
		}
	}
	for _, name := range []string{"publicTrade.DELISTEDUSDT", "publicTrade.FUSDT"} {
		if err := f.Validate(name); !errors.Is(err, upstream.ErrUnknownSymbol) {
			t.Errorf("Validate(%s) = %v; want %v", name, err, upstream.ErrUnknownSymbol)
		}
	}
	if v := sim.Violations(); v != 0 {
		t.Errorf("%d violations", v)
	}
}
