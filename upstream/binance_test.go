package upstream_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/marketgate/marketgate/upstream"
	"github.com/marketgate/marketgate/upstream/binance"

	"github.com/marketgate/marketgate/exchangesim/binancesim"
	"github.com/marketgate/marketgate/exchangesim/binancesim/simtest"
	"github.com/marketgate/marketgate/hub"
	"github.com/marketgate/marketgate/internal/waitfor"
)

// These tests run Binance against the exchange simulator, which enforces
// Binance's limits (5 messages per rolling second, pong payloads, stream
// names) and counts every violation.

// recorder is a hub.Publisher that keeps every message, by stream.
type recorder struct {
	mu        sync.Mutex
	msgs      map[string][]hub.Message
	published int // messages in all
	flushes   int // Flush calls
	unflushed int // messages published since the last Flush
}

func newRecorder() *recorder { return &recorder{msgs: make(map[string][]hub.Message)} }

func (r *recorder) Publish(_ context.Context, m hub.Message) error {
	m.Data = bytes.Clone(m.Data) // valid only until Publish returns
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs[m.Stream] = append(r.msgs[m.Stream], m)
	r.published++
	r.unflushed++
	return nil
}

func (r *recorder) Flush(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.flushes++
	r.unflushed = 0
	return nil
}

// bursts checks that the feed ends every burst of messages with a Flush
// (none is left unflushed) and that bursts batch (fewer flushes than
// messages).
func (r *recorder) bursts() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.unflushed != 0 {
		return fmt.Errorf("%d messages published since the last Flush", r.unflushed)
	}
	if r.flushes == 0 || r.flushes >= r.published {
		return fmt.Errorf("%d flushes for %d messages", r.flushes, r.published)
	}
	return nil
}

func (r *recorder) get(stream string) []hub.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs[stream])
}

func (r *recorder) streams() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for s := range r.msgs {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// startSim runs a simulator on a loopback port until the test ends and
// returns it with its host:port.
func startSim(t *testing.T, cfg binancesim.Config) (*binancesim.Server, string) {
	t.Helper()
	return simtest.Start(t, cfg)
}

// newSimBinance returns a spot Feed pointed at the simulator at addr, with
// mod applied to its config. The pacing stays at its default.
func newSimBinance(t *testing.T, addr string, pub hub.Publisher, mod func(*Config)) *Feed {
	t.Helper()
	cfg := Config{
		URL:        "ws://" + addr,
		RESTURL:    "http://" + addr,
		Publisher:  pub,
		Logger:     testLogger(t),
		BackoffMin: 100 * time.Millisecond,
		BackoffMax: time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	b, err := newSpot(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkSequences checks that every stream's messages carry Seq 1, 2, 3, …
// with no hole or repeat (Seq belongs to the stream: it goes on across
// reconnects and rotations, and Gap says events were missed), that the
// first has no Gap, and that trade ids are consecutive between gaps. It
// returns the number of messages with Gap per stream.
func checkSequences(t *testing.T, rec *recorder) map[string]int {
	t.Helper()
	gaps := make(map[string]int)
	for _, stream := range rec.streams() {
		msgs := rec.get(stream)
		var lastTrade int64
		for i, m := range msgs {
			if m.Seq != uint64(i+1) {
				t.Errorf("%s: message %d has seq %d; want %d", stream, i, m.Seq, i+1)
			}
			if m.Gap {
				if i == 0 {
					t.Errorf("%s: first message has Gap", stream)
				}
				gaps[stream]++
				lastTrade = 0
			}
			if m.Err != "" {
				continue
			}
			if !json.Valid(m.Data) {
				t.Errorf("%s: message %d data is not JSON: %q", stream, i, m.Data)
			}
			if strings.HasSuffix(stream, "@trade") {
				// Keys differ only in case ("e"/"E", "t"/"T"): no struct.
				var tr map[string]any
				if err := json.Unmarshal(m.Data, &tr); err != nil || tr["e"] != "trade" {
					t.Errorf("%s: message %d is not a trade: %s", stream, i, m.Data)
					continue
				}
				id, _ := tr["t"].(float64)
				if lastTrade != 0 && int64(id) != lastTrade+1 {
					t.Errorf("%s: trade id %d after %d", stream, int64(id), lastTrade)
				}
				lastTrade = int64(id)
			}
		}
	}
	return gaps
}

var simSymbols = []string{
	"BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT", "DOTUSDT", "LTCUSDT", "LINKUSDT",
	"ETHBTC", "BNBBTC", "SOLBTC", "XRPBTC", "ADABTC", "BTCUSDC", "ETHUSDC", "BTCEUR", "ETHEUR", "BNBETH",
}

var simSuffixes = []string{
	"trade", "aggTrade", "bookTicker", "miniTicker", "ticker", "ticker_1h", "ticker_4h", "ticker_1d",
	"avgPrice", "kline_1m", "kline_1s", "depth5", "depth10@100ms", "depth", "depth@100ms",
}

func TestBinanceSimSubscribeMany(t *testing.T) {
	sim, addr := startSim(t, binancesim.Config{Symbols: simSymbols, MaxMessagesPerSecond: 5})
	rec := newRecorder()
	b := newSimBinance(t, addr, rec, func(c *Config) { c.Linger = 300 * time.Millisecond })
	r := NewRouter(b)
	runBinance(t, b)

	var names []string
	for _, sym := range simSymbols {
		for _, suf := range simSuffixes {
			names = append(names, strings.ToLower(sym)+"@"+suf)
		}
	}
	if len(names) != 300 {
		t.Fatalf("%d names; want 300", len(names))
	}
	waitfor.Cond(t, 5*time.Second, b.Ready) // the first connection is up: streams go by requests
	var keys []string
	for _, n := range names {
		if err := r.Validate("binance:" + n); err != nil {
			t.Fatalf("Validate(%q) = %v", n, err)
		}
		keys = append(keys, "binance:"+n)
	}
	for key, want := range map[string]error{
		"binance:BTCUSDT@trade":  ErrInvalidStream,
		"binance:btcusdt@tradez": ErrInvalidStream,
		"binance:foousdt@trade":  ErrUnknownSymbol,
		"kraken:btcusdt@trade":   ErrUnknownExchange,
	} {
		if err := r.Validate(key); !errors.Is(err, want) {
			t.Errorf("Validate(%q) = %v; want %v", key, err, want)
		}
	}
	r.Want(keys)
	// Invalid names never reach the exchange, even when a caller skips
	// Validate.
	b.Subscribe([]string{"BTCUSDT@trade", "btcusdt@tradez", "foousdt@trade", `btcusdt@trade","x`})

	waitfor.Cond(t, 10*time.Second, func() error {
		if n := len(sim.Subscriptions()); n != 300 {
			return fmt.Errorf("simulator holds %d streams", n)
		}
		if st := b.Status(); st.Streams != 300 || st.PendingStreams != 0 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	waitfor.Cond(t, 5*time.Second, func() error {
		for _, sym := range simSymbols {
			s := "binance:" + strings.ToLower(sym) + "@trade"
			if n := len(rec.get(s)); n < 3 {
				return fmt.Errorf("%s: %d messages", s, n)
			}
		}
		return nil
	})
	waitfor.Cond(t, 2*time.Second, rec.bursts)
	st := b.Status()
	if len(st.Failed) != 1 || st.Failed[0].Stream != "foousdt@trade" || st.Failed[0].Error != `unknown symbol "foousdt"` {
		t.Errorf("Status().Failed = %+v; want foousdt@trade with unknown symbol", st.Failed)
	}
	if st.Rejected != 3 {
		t.Errorf("Status().Rejected = %d; want 3", st.Rejected)
	}

	// Unsubscribe half; one stream comes back within its linger and must
	// never leave the exchange.
	half := keys[:150]
	r.Unwant(half)
	r.Want(half[:1])
	if n := len(sim.Subscriptions()); n != 300 {
		t.Errorf("simulator holds %d streams right after Unwant; want 300 during the linger", n)
	}
	waitfor.Cond(t, 5*time.Second, func() error {
		subs := sim.Subscriptions()
		if len(subs) != 151 {
			return fmt.Errorf("simulator holds %d streams", len(subs))
		}
		if subs[names[0]] != 1 {
			return fmt.Errorf("re-wanted %s not held", names[0])
		}
		return nil
	})

	clients := sim.Clients()
	if len(clients) != 1 {
		t.Fatalf("%d connections; want 1", len(clients))
	}
	c := clients[0]
	if c.Requests["SUBSCRIBE"] != 2 || c.Requests["UNSUBSCRIBE"] != 1 || len(c.Requests) != 2 {
		t.Errorf("requests %v; want 2 SUBSCRIBE (200+100 streams) and 1 UNSUBSCRIBE", c.Requests)
	}
	if c.Violations() != 0 || c.InvalidStreams != 0 || c.Redundant != 0 || c.RateLimitClosed != 0 || c.Closed {
		t.Errorf("client stats %+v; want no violations, no redundant requests, open", c)
	}
	if n := sim.Violations(); n != 0 {
		t.Errorf("simulator violations = %d", n)
	}
	checkSequences(t, rec)
	// Each message says whether a slow consumer may skip to it.
	for _, n := range names {
		st, _ := binance.Spot.ParseStream(n)
		for _, m := range rec.get("binance:" + n) {
			if m.Err == "" && m.Conflate != st.Class.Conflatable() {
				t.Errorf("%s: message %d has Conflate %v; want %v", n, m.Seq, m.Conflate, st.Class.Conflatable())
				break
			}
		}
	}
}

func TestBinanceSimReconnect(t *testing.T) {
	sim, addr := startSim(t, binancesim.Config{MaxMessagesPerSecond: 5})
	rec := newRecorder()
	b := newSimBinance(t, addr, rec, nil)
	runBinance(t, b)
	names := []string{"btcusdt@trade", "ethusdt@trade", "btcusdt@depth@100ms", "ethusdt@bookTicker", "btcusdt@aggTrade"}
	b.Subscribe(names)
	waitfor.Cond(t, 5*time.Second, func() error {
		for _, n := range names {
			if got := len(rec.get("binance:" + n)); got < 3 {
				return fmt.Errorf("%s: %d messages", n, got)
			}
		}
		return b.Ready()
	})

	dropped := time.Now()
	sim.DropAll()
	waitfor.Cond(t, 5*time.Second, func() error {
		for _, n := range names {
			if !slices.ContainsFunc(rec.get("binance:"+n), func(m hub.Message) bool { return m.Gap }) {
				return fmt.Errorf("%s: no message after the drop", n)
			}
		}
		return nil
	})
	if d := time.Since(dropped); d > 2*time.Second {
		t.Errorf("data flowed again %v after the drop; want within 2s", d)
	} else {
		t.Logf("data flowed again %v after the drop", d)
	}
	gaps := checkSequences(t, rec) // Seq goes on across the reconnect
	for _, n := range names {
		if gaps["binance:"+n] != 1 {
			t.Errorf("%s: %d gaps; want 1", n, gaps["binance:"+n])
		}
	}
	clients := sim.Clients()
	if len(clients) != 2 {
		t.Fatalf("%d connections; want 2", len(clients))
	}
	if c := clients[1]; len(c.Requests) != 0 || c.Violations() != 0 || c.Streams != len(names) ||
		!strings.HasPrefix(c.Path, "/stream?streams=") {
		t.Errorf("second connection %+v; want every stream in its URL, no request, no violations", c)
	}
	if st := b.Status(); st.Reconnects != 1 || st.State != StateConnected || st.Streams != len(names) {
		t.Errorf("status %+v; want 1 reconnect, connected, %d streams", st, len(names))
	}
	if n := sim.Violations(); n != 0 {
		t.Errorf("simulator violations = %d", n)
	}
}

func TestBinanceSimPings(t *testing.T) {
	sim, addr := startSim(t, binancesim.Config{
		MaxMessagesPerSecond: 5,
		PingInterval:         100 * time.Millisecond,
		PongTimeout:          time.Second,
	})
	rec := newRecorder()
	b := newSimBinance(t, addr, rec, nil)
	runBinance(t, b)
	// Requests compete with pongs for the 300 ms slots meanwhile.
	for i, sym := range []string{"btcusdt", "ethusdt", "bnbusdt", "solusdt", "xrpusdt"} {
		waitfor.Cond(t, 5*time.Second, func() error {
			if len(sim.Clients()) == 0 {
				return errors.New("not connected")
			}
			return nil
		})
		b.Subscribe([]string{sym + "@trade"})
		waitfor.Cond(t, 5*time.Second, func() error {
			if n := b.Status().Streams; n != i+1 {
				return fmt.Errorf("%d streams", n)
			}
			return nil
		})
	}
	time.Sleep(2 * time.Second) // 20 ping periods, two pong timeouts
	clients := sim.Clients()
	if len(clients) != 1 {
		t.Fatalf("%d connections; want 1 (%+v)", len(clients), clients)
	}
	if c := clients[0]; c.Closed || c.PongTimeouts != 0 || c.BadPongs != 0 || c.Violations() != 0 {
		t.Errorf("client stats %+v; want open, every ping answered with its payload", c)
	}
	if st := b.Status(); st.Reconnects != 0 {
		t.Errorf("status %+v; want no reconnect", st)
	}
	checkSequences(t, rec)
}

func TestBinanceSimServerShutdown(t *testing.T) {
	sim, addr := startSim(t, binancesim.Config{MaxMessagesPerSecond: 5})
	rec := newRecorder()
	b := newSimBinance(t, addr, rec, nil)
	runBinance(t, b)
	names := []string{"btcusdt@trade", "ethusdt@aggTrade", "btcusdt@depth@100ms", "btcusdt@bookTicker", "btcusdt@depth5@100ms"}
	b.Subscribe(names)
	b.Subscribe([]string{"btcusdt@blockTrade"}) // silent in the simulator: a quiet stream
	waitMessages(t, rec, names, 5)
	sim.SendServerShutdown(-1) // announce, but leave closing to the client
	waitfor.Cond(t, 5*time.Second, func() error {
		clients := sim.Clients()
		if len(clients) != 2 || !clients[0].Closed || clients[1].Streams != len(names)+1 {
			return fmt.Errorf("clients %+v", clients)
		}
		return nil
	})
	before := counts(rec, names)
	waitfor.Cond(t, 5*time.Second, func() error {
		for _, n := range names {
			if got := len(rec.get("binance:" + n)); got < before[n]+3 {
				return fmt.Errorf("%s: %d messages", n, got)
			}
		}
		return nil
	})
	c := sim.Clients()
	if c[0].ClosedBy != "client" || c[0].CloseCode != 1000 {
		t.Errorf("first connection closed by %s with %d; want closed by the client with 1000", c[0].ClosedBy, c[0].CloseCode)
	}

	// Announced again, and this time the exchange closes the connection
	// 300ms later, before quiet streams would have switched: still no loss.
	sim.SendServerShutdown(300 * time.Millisecond)
	waitfor.Cond(t, 5*time.Second, func() error {
		clients := sim.Clients()
		if len(clients) != 3 || !clients[1].Closed || clients[2].Streams != len(names)+1 {
			return fmt.Errorf("clients %+v", clients)
		}
		return nil
	})
	before = counts(rec, names)
	waitfor.Cond(t, 5*time.Second, func() error {
		for _, n := range names {
			if got := len(rec.get("binance:" + n)); got < before[n]+3 {
				return fmt.Errorf("%s: %d messages", n, got)
			}
		}
		return nil
	})
	if gaps := checkSequences(t, rec); len(gaps) != 0 {
		t.Errorf("gaps %v; want none across the make-before-break rotations", gaps)
	}
	checkIdentities(t, rec)
	if st := b.Status(); st.Rotations != 2 || st.Reconnects != 0 {
		t.Errorf("status %+v; want 2 rotations, no reconnect", st)
	}
	if n := sim.Violations(); n != 0 {
		t.Errorf("simulator violations = %d", n)
	}
}

func TestBinanceSimChurn(t *testing.T) {
	sim, addr := startSim(t, binancesim.Config{
		MaxMessagesPerSecond: 5,
		PingInterval:         70 * time.Millisecond, // pongs compete for every slot
		PongTimeout:          3 * time.Second,
	})
	rec := newRecorder()
	b := newSimBinance(t, addr, rec, func(c *Config) { c.Linger = -1 }) // every removal is a request
	runBinance(t, b)
	var pool []string
	for _, sym := range []string{"btcusdt", "ethusdt", "bnbusdt", "solusdt", "xrpusdt"} {
		for _, suf := range []string{"trade", "aggTrade", "bookTicker", "depth5"} {
			pool = append(pool, sym+"@"+suf)
		}
	}
	waitfor.Cond(t, 5*time.Second, b.Ready)
	want := make(map[string]bool)
	start := time.Now()
	for i := 0; time.Since(start) < 2*time.Second; i++ {
		n := pool[(i*7)%len(pool)]
		if want[n] {
			b.Unsubscribe([]string{n})
		} else {
			b.Subscribe([]string{n})
		}
		want[n] = !want[n]
		time.Sleep(3 * time.Millisecond)
	}
	waitfor.Cond(t, 10*time.Second, func() error {
		subs := sim.Subscriptions()
		for _, n := range pool {
			if (subs[n] == 1) != want[n] {
				return fmt.Errorf("%s: simulator holds it %d times; want %v", n, subs[n], want[n])
			}
		}
		if st := b.Status(); st.PendingStreams != 0 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	elapsed := time.Since(start)
	clients := sim.Clients()
	if len(clients) != 1 {
		t.Fatalf("%d connections; want 1", len(clients))
	}
	c := clients[0]
	if c.Closed || c.Violations() != 0 || c.Redundant != 0 {
		t.Errorf("client stats %+v; want open, no violations, no redundant requests", c)
	}
	// At most one frame per 300 ms, pongs included.
	if limit := int(elapsed/binance.DefaultSpotRequestInterval) + 2; c.Messages > limit {
		t.Errorf("%d messages in %v; want ≤ %d", c.Messages, elapsed, limit)
	}
	t.Logf("%d messages (%v requests) in %v", c.Messages, c.Requests, elapsed)
	checkSequences(t, rec)
}

func TestBinanceSimResubscribeSameConnection(t *testing.T) {
	sim, addr := startSim(t, binancesim.Config{MaxMessagesPerSecond: 5})
	rec := newRecorder()
	b := newSimBinance(t, addr, rec, func(c *Config) { c.Linger = -1 })
	runBinance(t, b)
	const name, key = "btcusdt@trade", "binance:btcusdt@trade"
	b.Subscribe([]string{name})
	waitfor.Cond(t, 5*time.Second, func() error {
		if n := len(rec.get(key)); n < 3 {
			return fmt.Errorf("%d messages", n)
		}
		return nil
	})
	b.Unsubscribe([]string{name})
	waitfor.Cond(t, 5*time.Second, func() error {
		if n := sim.Subscriptions()[name]; n != 0 || b.Status().Streams != 0 {
			return fmt.Errorf("still subscribed: sim %d, status %+v", n, b.Status())
		}
		return nil
	})
	before := len(rec.get(key))
	b.Subscribe([]string{name})
	waitfor.Cond(t, 5*time.Second, func() error {
		if n := len(rec.get(key)); n < before+2 {
			return fmt.Errorf("%d messages", n)
		}
		return nil
	})
	msgs := rec.get(key)
	if m := msgs[before]; !m.Gap || m.Seq != msgs[before-1].Seq+1 {
		t.Errorf("first message after re-subscribing: seq %d gap %v after seq %d; want Seq continued with Gap",
			m.Seq, m.Gap, msgs[before-1].Seq)
	}
	if gaps := checkSequences(t, rec); gaps[key] != 1 {
		t.Errorf("%d gaps; want 1", gaps[key])
	}
	if n := len(sim.Clients()); n != 1 {
		t.Errorf("%d connections; want 1", n)
	}
	if n := sim.Violations(); n != 0 {
		t.Errorf("simulator violations = %d", n)
	}
}

func TestBinanceSimRateCloseBacksOff(t *testing.T) {
	sim, addr := startSim(t, binancesim.Config{MaxMessagesPerSecond: 5})
	b := newSimBinance(t, addr, newRecorder(), func(c *Config) {
		c.BackoffMin, c.BackoffMax = 20*time.Millisecond, time.Second
	})
	runBinance(t, b)
	b.Subscribe([]string{"btcusdt@trade"})
	waitfor.Cond(t, 5*time.Second, func() error {
		if b.Status().Streams != 1 {
			return errors.New("not subscribed")
		}
		return nil
	})
	closed := time.Now()
	sim.CloseAll(1008, "Too many requests")
	waitfor.Cond(t, 5*time.Second, func() error {
		if c := sim.Clients(); len(c) != 2 || c[1].Streams != 1 {
			return fmt.Errorf("clients %+v", c)
		}
		return nil
	})
	// After a rate close the venue penalizes quick returns: the next
	// attempt waits the longest backoff (jittered within [max/2, max]).
	if d := time.Since(closed); d < 500*time.Millisecond {
		t.Errorf("reconnected %v after a 1008 close; want ≥ BackoffMax/2", d)
	}
	if st := b.Status(); !strings.Contains(st.LastError, "1008") || !strings.Contains(st.LastError, "Too many requests") ||
		st.Closes[1008] != 1 {
		t.Errorf("status %+v; want the close code and reason, and the close counted", st)
	}
}

// TestBinanceMicrosecondTimes checks that WithMicrosecondTimes gets events
// whose times are in microseconds (16 digits, not 13).
func TestBinanceMicrosecondTimes(t *testing.T) {
	_, addr := startSim(t, binancesim.Config{Symbols: []string{"BTCUSDT"}, TickInterval: 10 * time.Millisecond})
	rec := newRecorder()
	b := newSimBinance(t, addr, rec, func(c *Config) { c.Dialect = binance.Spot.WithMicrosecondTimes() })
	r := NewRouter(b)
	runBinance(t, b)
	r.Want([]string{"binance:btcusdt@trade"})
	var msgs []hub.Message
	waitfor.Cond(t, 5*time.Second, func() error {
		if msgs = rec.get("binance:btcusdt@trade"); len(msgs) == 0 {
			return errors.New("no trade yet")
		}
		return nil
	})
	var ev map[string]json.RawMessage // "e" and "E" differ only in case
	if err := json.Unmarshal(msgs[0].Data, &ev); err != nil {
		t.Fatal(err)
	}
	e, err := strconv.ParseInt(string(ev["E"]), 10, 64)
	if now := time.Now().UnixMicro(); err != nil || e < now-60e6 || e > now+60e6 {
		t.Fatalf("event time E = %s; want microseconds near %d", ev["E"], now)
	}
}

// TestBinanceLazy checks that a lazy feed holds a connection only while
// streams are wanted: none at start (yet it is ready), one for a stream,
// none again once the stream has lingered out.
func TestBinanceLazy(t *testing.T) {
	sim, addr := startSim(t, binancesim.Config{Symbols: []string{"BTCUSDT"}, TickInterval: 10 * time.Millisecond})
	rec := newRecorder()
	b := newSimBinance(t, addr, rec, func(c *Config) {
		c.Lazy = true
		c.Linger = 200 * time.Millisecond
	})
	runBinance(t, b)
	waitfor.Cond(t, 5*time.Second, b.Ready)
	time.Sleep(300 * time.Millisecond) // a non-lazy feed has connected by now
	if n := sim.OpenConnections(); n != 0 {
		t.Fatalf("%d connections with nothing wanted; want 0", n)
	}
	b.Subscribe([]string{"btcusdt@trade"})
	waitMessages(t, rec, []string{"btcusdt@trade"}, 3)
	if n := sim.OpenConnections(); n != 1 {
		t.Errorf("%d connections for one stream; want 1", n)
	}
	b.Unsubscribe([]string{"btcusdt@trade"})
	waitfor.Cond(t, 5*time.Second, func() error {
		if n := sim.OpenConnections(); n != 0 {
			return fmt.Errorf("%d connections after the stream left", n)
		}
		return nil
	})
}

// TestIdleConnectionBackoffResets: a connection that carries no stream
// has nothing to deliver; when it lasted, its drop is retried at once,
// however often it is dropped (else the backoff would grow each time and
// an idle endpoint could come back up to BackoffMax late).
func TestIdleConnectionBackoffResets(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out four stable sessions")
	}
	sim, addr := startSim(t, binancesim.Config{})
	b := newSimBinance(t, addr, newRecorder(), func(c *Config) {
		c.BackoffMin, c.BackoffMax = 2*time.Second, 30*time.Second
	})
	runBinance(t, b)
	waitfor.Cond(t, 5*time.Second, b.Ready)
	for i := range 4 {
		time.Sleep(2200 * time.Millisecond) // past stableSession (2 s)
		if !sim.DropOne() {
			t.Fatalf("drop %d: no open connection", i+1)
		}
		dropped := time.Now()
		waitfor.Cond(t, 10*time.Second, func() error {
			if st := b.Status(); st.Reconnects != i+1 || st.State != StateConnected {
				return fmt.Errorf("status %+v; want %d reconnects, connected", st, i+1)
			}
			return nil
		})
		// The backoff starts at 2 s: a reconnect in under 1 s is one
		// that did not wait for it.
		if d := time.Since(dropped); d > time.Second {
			t.Fatalf("drop %d of an idle, stable connection: reconnected after %v; want at once", i+1, d)
		}
	}
}
