package upstream_test

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/marketgate/marketgate/upstream"

	"github.com/marketgate/marketgate/exchangesim/binancesim"
	"github.com/marketgate/marketgate/internal/waitfor"
)

// shardNames returns n spot stream names over simSymbols.
func shardNames(n int) []string {
	var names []string
	for _, suf := range []string{"trade", "aggTrade", "bookTicker", "depth@100ms"} {
		for _, sym := range simSymbols {
			if len(names) < n {
				names = append(names, strings.ToLower(sym)+"@"+suf)
			}
		}
	}
	return names
}

// openClients returns the simulator's open connections.
func openClients(sim *binancesim.Server) []binancesim.ClientStats {
	return slices.DeleteFunc(sim.Clients(), func(c binancesim.ClientStats) bool { return c.Closed })
}

// checkEachOnce checks that the simulator holds every name exactly once
// and nothing else.
func checkEachOnce(sim *binancesim.Server, names []string) error {
	subs := sim.Subscriptions()
	for _, n := range names {
		if subs[n] != 1 {
			return fmt.Errorf("%s held %d times", n, subs[n])
		}
	}
	if len(subs) != len(names) {
		return fmt.Errorf("simulator holds %d streams; want %d", len(subs), len(names))
	}
	return nil
}

func TestBinanceSimSharding(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t, binancesim.Config{Symbols: simSymbols})
	rec := newRecorder()
	b := newSimBinance(t, addr, rec, func(c *Config) {
		c.MaxStreams = 10
		c.Linger = 200 * time.Millisecond
	})
	runBinance(t, b)
	waitfor.Cond(t, 5*time.Second, b.Ready)
	names := shardNames(35)
	b.Subscribe(names)
	waitfor.Cond(t, 10*time.Second, func() error {
		if err := checkEachOnce(sim, names); err != nil {
			return err
		}
		if st := b.Status(); st.Streams != 35 || st.PendingStreams != 0 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	clients := openClients(sim)
	if len(clients) != 4 {
		t.Fatalf("%d connections; want 4 (10+10+10+5)", len(clients))
	}
	for _, c := range clients {
		if c.Streams > 10 {
			t.Errorf("connection %d holds %d streams; want ≤ 10", c.ID, c.Streams)
		}
	}
	if st := b.Status(); len(st.Shards) != 4 || st.Connections != 4 {
		t.Errorf("status %+v; want 4 shards, 4 connections", st)
	}
	waitMessages(t, rec, names[:20], 2) // the trades

	// Empty shards close after the linger; the first one stays.
	b.Unsubscribe(names[10:])
	waitfor.Cond(t, 5*time.Second, func() error {
		if c := openClients(sim); len(c) != 1 || c[0].ID != clients[0].ID {
			return fmt.Errorf("open connections %+v", c)
		}
		return checkEachOnce(sim, names[:10])
	})
	for _, c := range sim.Clients() {
		if c.Closed && (c.ClosedBy != "client" || c.CloseCode != 1000) {
			t.Errorf("connection %d closed by %s with %d; want by the client with 1000", c.ID, c.ClosedBy, c.CloseCode)
		}
	}
	// A shard opened again takes the streams in its URL. They were off
	// the exchange meanwhile: each goes on with Gap.
	before := counts(rec, names[10:15])
	b.Subscribe(names[10:15])
	waitfor.Cond(t, 5*time.Second, func() error { return checkEachOnce(sim, names[:15]) })
	waitfor.Cond(t, 5*time.Second, func() error {
		for _, n := range names[10:15] {
			if got := len(rec.get("binance:" + n)); got <= before[n] {
				return fmt.Errorf("%s: no message after subscribing again", n)
			}
		}
		return nil
	})
	if n := sim.Violations(); n != 0 {
		t.Errorf("simulator violations = %d", n)
	}
	gaps := checkSequences(t, rec)
	for _, n := range names[:20] {
		want := 0
		if slices.Contains(names[10:15], n) {
			want = 1
		}
		if gaps["binance:"+n] != want {
			t.Errorf("%s: %d gaps; want %d", n, gaps["binance:"+n], want)
		}
	}
}

func TestBinanceSimShardOnTooManySubscriptions(t *testing.T) {
	t.Parallel()
	// The exchange holds 10 streams per connection; the gateway thinks
	// 1024. Its code 4 replies make the gateway shard.
	sim, addr := startSim(t, binancesim.Config{Symbols: simSymbols, MaxStreams: 10})
	rec := newRecorder()
	b := newSimBinance(t, addr, rec, nil)
	runBinance(t, b)
	waitfor.Cond(t, 5*time.Second, b.Ready)
	names := shardNames(35)
	b.Subscribe(names)
	waitfor.Cond(t, 15*time.Second, func() error {
		if err := checkEachOnce(sim, names); err != nil {
			return err
		}
		if st := b.Status(); st.Streams != 35 || st.PendingStreams != 0 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	clients := openClients(sim)
	if len(clients) != 4 {
		t.Errorf("%d connections; want 4", len(clients))
	}
	refused := 0
	for _, c := range sim.Clients() {
		refused += c.TooManyStreams
		if c.Streams > 10 || c.Violations() != c.TooManyStreams || c.RateLimitClosed != 0 {
			t.Errorf("connection %+v; want ≤ 10 streams and no violation but code 4 replies", c)
		}
	}
	if refused == 0 {
		t.Error("no code 4 reply: the test did not test anything")
	}
	for _, sh := range b.Status().Shards {
		if sh.Limit != 10 {
			t.Errorf("shard %+v; want the learned limit 10", sh)
		}
	}
	for _, s := range rec.streams() {
		for _, m := range rec.get(s) {
			if m.Err != "" {
				t.Errorf("%s failed: %s", s, m.Err)
			}
		}
	}
	t.Logf("%d code 4 replies", refused)
}

func TestConnAttemptBudget(t *testing.T) {
	t.Parallel()
	// Every handshake fails at once: the reconnect loop would spin, the
	// attempt budget holds it to 3 per 600ms.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var accepted []time.Time
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted = append(accepted, time.Now())
			mu.Unlock()
			c.Close()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	info := newExchangeInfoServer(t, exchangeInfoBody)
	const window, budget = 600 * time.Millisecond, 3
	b, err := newSpot(Config{
		URL: "ws://" + ln.Addr().String(), RESTURL: info.URL, Publisher: nopPublisher{}, Logger: testLogger(t),
		BackoffMin: time.Millisecond, BackoffMax: 2 * time.Millisecond,
		MaxConnAttempts: budget, ConnAttemptWindow: window,
	})
	if err != nil {
		t.Fatal(err)
	}
	runBinance(t, b)
	start := time.Now()
	time.Sleep(3*window + window/2)
	mu.Lock()
	times := slices.Clone(accepted)
	mu.Unlock()
	elapsed := time.Since(start)
	// Accept times trail attempt times by a varying few ms.
	const slack = 30 * time.Millisecond
	for i := range times {
		n := 0
		for _, at := range times[i:] {
			if at.Sub(times[i]) < window-slack {
				n++
			}
		}
		if n > budget {
			t.Errorf("%d attempts within %v from attempt %d; want ≤ %d", n, window, i, budget)
		}
	}
	if max := budget * (int(elapsed/window) + 1); len(times) > max || len(times) < budget*3 {
		t.Errorf("%d attempts in %v; want %d..%d", len(times), elapsed, budget*3, max)
	}
	if st := b.Status(); st.AttemptWaits < 3 {
		t.Errorf("status %+v; want the budget spent at least 3 times", st)
	}
}

func TestFeedStreamLimit(t *testing.T) {
	rec := newRecorder()
	f, err := newSpot(Config{URL: "ws://127.0.0.1:1", RESTURL: "http://127.0.0.1:1", Publisher: rec,
		MaxStreams: 2, MaxShards: 2})
	if err != nil {
		t.Fatal(err)
	}
	// Streams without a symbol validate before the symbol list is loaded.
	names := []string{"!miniTicker@arr", "!ticker_1h@arr", "!ticker_4h@arr", "!ticker_1d@arr"}
	for _, n := range names {
		if err := f.Validate(n); err != nil {
			t.Fatalf("Validate(%q) = %v", n, err)
		}
		f.Subscribe([]string{n})
	}
	if err := f.Validate(names[0]); err != nil {
		t.Errorf("Validate of a stream already carried = %v", err)
	}
	if err := f.Validate("!miniTicker@arr@x"); !errors.Is(err, ErrInvalidStream) {
		t.Errorf("Validate of an invalid stream = %v", err)
	}
	f.Unsubscribe(names[:1]) // lingering: still counts
	st := f.Status()
	if st.Desired != 4 || len(st.Shards) != 2 || st.Shards[0].Assigned != 2 || st.Shards[1].Assigned != 2 {
		t.Fatalf("status %+v; want 4 streams on 2 shards", st)
	}
	// A fifth stream has no room: MaxShards × MaxStreams.
	f2, _ := newSpot(Config{URL: "ws://127.0.0.1:1", RESTURL: "http://127.0.0.1:1", Publisher: rec,
		MaxStreams: 1, MaxShards: 1})
	f2.Subscribe(names[:1])
	if err := f2.Validate(names[1]); !errors.Is(err, ErrStreamLimit) {
		t.Errorf("Validate over the limit = %v; want ErrStreamLimit", err)
	}
	f2.Subscribe(names[1:2]) // fails: its subscribers get an Err message
	if st := f2.Status(); st.Rejected != 1 || st.Desired != 2 || len(st.Failed) != 1 || st.Failed[0].Stream != names[1] {
		t.Errorf("status %+v; want 1 rejected, 2 desired, %s failed", st, names[1])
	}
}
