package upstream_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/marketgate/marketgate/upstream"

	"github.com/marketgate/marketgate/exchangesim/binancesim"
	"github.com/marketgate/marketgate/internal/waitfor"
)

// rotationNames are spot streams of every identity kind.
var rotationNames = []string{
	"btcusdt@trade", "ethusdt@trade", "bnbusdt@trade", // consecutive t
	"btcusdt@aggTrade",                     // consecutive a
	"btcusdt@depth@100ms", "ethusdt@depth", // U = previous u + 1
	"btcusdt@bookTicker", "ethusdt@bookTicker", // u increasing
	"btcusdt@depth5@100ms",                 // lastUpdateId increasing
	"btcusdt@kline_1s",                     // (k.t, E) increasing
	"btcusdt@ticker", "ethusdt@miniTicker", // no identity
	"btcusdt@blockTrade", // silent in the simulator: switches as quiet
}

// checkRotations checks the simulator's connections after rotations:
// each closed one was closed by the gateway with 1000 (never by the
// exchange at its lifetime), there was no violation, and no event was
// lost or repeated.
func checkRotations(t *testing.T, sim *binancesim.Server, rec *recorder) {
	t.Helper()
	for _, c := range sim.Clients() {
		if c.Closed && (c.ClosedBy != "client" || c.CloseCode != 1000) {
			t.Errorf("connection %d (%s) closed by %s with %d %q; want by the client with 1000",
				c.ID, c.Path, c.ClosedBy, c.CloseCode, c.CloseReason)
		}
		if c.Violations() != 0 || c.WrongRoute != 0 {
			t.Errorf("connection %+v: violations", c)
		}
	}
	if gaps := checkSequences(t, rec); len(gaps) != 0 {
		t.Errorf("gaps %v; want none across rotations", gaps)
	}
	if n := checkIdentities(t, rec); n == 0 {
		t.Error("no event identity checked")
	}
}

// rotating reports whether a shard of st is rotating.
func rotating(st Status) bool {
	for _, sh := range st.Shards {
		if sh.Rotating {
			return true
		}
	}
	return false
}

func TestBinanceSimRotation(t *testing.T) {
	t.Parallel()
	// The exchange ends connections after 3s; the gateway rotates at 1.5s.
	sim, addr := startSim(t, binancesim.Config{MaxLifetime: 3 * time.Second})
	rec := newRecorder()
	b := newSimBinance(t, addr, rec, func(c *Config) {
		c.MaxLifetime = 3 * time.Second
		c.RotateAfter = 1500 * time.Millisecond
	})
	runBinance(t, b)
	b.Subscribe(rotationNames)
	waitfor.Cond(t, 10*time.Second, func() error {
		if st := b.Status(); st.Rotations < 2 || rotating(st) {
			return fmt.Errorf("%d rotations", st.Rotations)
		}
		return nil
	})
	before := counts(rec, rotationNames[:3])
	waitfor.Cond(t, 5*time.Second, func() error {
		for _, n := range rotationNames[:3] {
			if got := len(rec.get("binance:" + n)); got < before[n]+5 {
				return fmt.Errorf("%s: %d messages", n, got)
			}
		}
		return nil
	})
	checkRotations(t, sim, rec)
	clients := sim.Clients()
	if len(clients) < 3 {
		t.Errorf("%d connections; want ≥ 3 after 2 rotations", len(clients))
	}
	for _, c := range clients[1:] {
		if !strings.HasPrefix(c.Path, "/stream?streams=") || len(c.Requests) != 0 || c.Streams != len(rotationNames) && !c.Closed {
			t.Errorf("replacement %+v; want every stream in its URL and no request", c)
		}
	}
	if st := b.Status(); st.Reconnects != 0 || st.HandoverOverflows != 0 {
		t.Errorf("status %+v; want no reconnect, no overflow", st)
	}
}

func TestBinanceSimRotationWithRequests(t *testing.T) {
	t.Parallel()
	// URLs too short for any stream: the replacement subscribes with
	// paced requests while the old connection carries on.
	sim, addr := startSim(t, binancesim.Config{MaxLifetime: 4 * time.Second})
	rec := newRecorder()
	b := newSimBinance(t, addr, rec, func(c *Config) {
		c.MaxLifetime = 4 * time.Second
		c.RotateAfter = 1500 * time.Millisecond
		c.MaxURLBytes = -1
		c.MaxParams = 3 // several requests per rotation
	})
	runBinance(t, b)
	names := rotationNames[:9]
	b.Subscribe(names)
	waitfor.Cond(t, 10*time.Second, func() error {
		if st := b.Status(); st.Rotations < 1 || rotating(st) {
			return fmt.Errorf("%d rotations", st.Rotations)
		}
		return nil
	})
	waitMessages(t, rec, names[:3], 20)
	checkRotations(t, sim, rec)
	c := sim.Clients()[1]
	if c.Path != "/stream" || c.Requests["SUBSCRIBE"] != 3 {
		t.Errorf("replacement %+v; want 3 SUBSCRIBE requests on /stream", c)
	}
}

func TestBinanceSimOnlyBuiltRequests(t *testing.T) {
	t.Parallel()
	// StrictMethod closes a connection on anything but a request with a
	// method. Pings every 50ms and a busy market: nothing received may
	// ever be echoed upstream.
	sim, addr := startSim(t, binancesim.Config{
		Symbols:      simSymbols,
		StrictMethod: true,
		PingInterval: 50 * time.Millisecond,
		PongTimeout:  2 * time.Second,
		TickInterval: 20 * time.Millisecond,
	})
	rec := newRecorder()
	b := newSimBinance(t, addr, rec, func(c *Config) { c.Linger = -1 })
	runBinance(t, b)
	waitfor.Cond(t, 5*time.Second, b.Ready)
	names := shardNames(60)
	b.Subscribe(names)
	for i := range 6 {
		time.Sleep(150 * time.Millisecond)
		b.Unsubscribe(names[i*5 : i*5+5])
		b.Subscribe(names[i*5+2 : i*5+4])
	}
	waitfor.Cond(t, 5*time.Second, func() error {
		if st := b.Status(); st.PendingStreams != 0 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	published := 0
	for _, s := range rec.streams() {
		published += len(rec.get(s))
	}
	if published < 1000 {
		t.Errorf("%d events published; want a busy market", published)
	}
	clients := sim.Clients()
	if len(clients) != 1 {
		t.Fatalf("%d connections; want 1", len(clients))
	}
	c := clients[0]
	for m := range c.Requests {
		if m != "SUBSCRIBE" && m != "UNSUBSCRIBE" {
			t.Errorf("request method %q sent", m)
		}
	}
	if c.Closed || c.MissingMethod != 0 || c.InvalidJSON != 0 || c.UnknownMethod != 0 || c.Violations() != 0 ||
		c.Redundant != 0 || c.PongTimeouts != 0 {
		t.Errorf("client stats %+v; want open, only SUBSCRIBE/UNSUBSCRIBE, every ping answered", c)
	}
	t.Logf("%d events, %d frames sent (%v)", published, c.Messages, c.Requests)
}

// tcpProxy forwards connections to a backend and can cut any of them.
type tcpProxy struct {
	ln      net.Listener
	backend string
	wg      sync.WaitGroup

	mu    sync.Mutex
	conns []net.Conn // client sides, in accept order
}

func newTCPProxy(t *testing.T, backend string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, backend: backend}
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", backend)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c)
			p.mu.Unlock()
			p.wg.Go(func() { io.Copy(b, c); b.Close() })
			p.wg.Go(func() { io.Copy(c, b); c.Close() })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// cut drops connection i (from 0) abruptly.
func (p *tcpProxy) cut(i int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conns[i].Close()
}

func (p *tcpProxy) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

func TestBinanceSimRotationAborted(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t, binancesim.Config{})
	proxy := newTCPProxy(t, addr)
	rec := newRecorder()
	b := newSimBinance(t, addr, rec, func(c *Config) {
		c.URL = "ws://" + proxy.ln.Addr().String()
		c.MaxLifetime = 30 * time.Second
		c.RotateAfter = 2 * time.Second
	})
	runBinance(t, b)
	names := []string{"btcusdt@trade", "ethusdt@trade", "btcusdt@depth@100ms", "btcusdt@bookTicker"}
	b.Subscribe(names)
	b.Subscribe([]string{"btcusdt@blockTrade"}) // quiet: keeps the rotation open for a second
	waitfor.Cond(t, 5*time.Second, func() error {
		if proxy.count() < 2 {
			return errors.New("no rotation yet")
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond) // mid-handover
	proxy.cut(1)                       // the replacement dies; the old connection carries on
	waitfor.Cond(t, 10*time.Second, func() error {
		if st := b.Status(); st.Rotations < 1 || rotating(st) {
			return fmt.Errorf("%d rotations", st.Rotations)
		}
		return nil
	})
	waitMessages(t, rec, names[:2], 30)
	// The rotation counts as done when the old connection is asked to
	// close; its close frame reaches the exchange a moment later.
	waitfor.Cond(t, 5*time.Second, func() error {
		clients := sim.Clients()
		if len(clients) < 3 || clients[0].ClosedBy != "client" || clients[0].CloseCode != 1000 {
			return fmt.Errorf("clients %+v; want the first closed by the gateway after a later rotation", clients)
		}
		return nil
	})
	// Streams that had switched to the replacement come back to the old
	// connection with Gap; Seq never breaks.
	gaps := checkSequences(t, rec)
	for s, n := range gaps {
		if n > 1 {
			t.Errorf("%s: %d gaps; want at most 1", s, n)
		}
	}
	checkIdentities(t, rec)
	if st := b.Status(); st.Reconnects != 0 {
		t.Errorf("status %+v; want no reconnect", st)
	}
	if n := sim.Violations(); n != 0 {
		t.Errorf("simulator violations = %d", n)
	}
}
