package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/marketgate/marketgate/gateway"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/marketgate/marketgate/downstream/downstreamtest"
	"github.com/marketgate/marketgate/exchangesim/binancesim"
	"github.com/marketgate/marketgate/exchangesim/binancesim/simtest"
	"github.com/marketgate/marketgate/internal/redistest"
	"github.com/marketgate/marketgate/upstream"
)

// startSim runs a simulator on a loopback port until the test ends and
// returns it with its host:port.
func startSim(t *testing.T, cfg binancesim.Config) (*binancesim.Server, string) {
	t.Helper()
	return simtest.Start(t, cfg)
}

// startGateway runs the gateway's components in-process against the
// simulator at simAddr and returns the gateway's address once it is ready.
func startGateway(t *testing.T, simAddr string) string {
	t.Helper()
	return startGatewayWith(t, simAddr, nil)
}

// startGatewayWith is startGateway with settings changed by edit first. The
// futures exchange is off unless edit sets it up.
func startGatewayWith(t *testing.T, simAddr string, edit func(*config)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := config{
		listen:    ln.Addr().String(),
		upstreams: map[string]*upstream.Config{"binance": {URL: "ws://" + simAddr, RESTURL: "http://" + simAddr}},
		nodeID:    "test",
	}
	if edit != nil {
		edit(&cfg)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, ln, log) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve = %v; want nil", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("gateway did not stop within 15s")
		}
	})
	addr := ln.Addr().String()
	waitReady(t, addr)
	return addr
}

// waitReady polls /readyz until it answers 200.
func waitReady(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway at %s not ready: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type nativeMsg struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  json.RawMessage `json:"error"`
	Stream string          `json:"stream"`
	Seq    uint64          `json:"seq"`
	Gap    bool            `json:"gap"`
	// Data is decoded as a map: Binance events have keys that differ only
	// in case ("e" and "E", "t" and "T"), which encoding/json's
	// case-insensitive struct matching would confuse.
	Data map[string]json.RawMessage `json:"data"`
}

// tradeID returns the data's "t" and whether "e" is "trade".
func (m nativeMsg) trade() (id uint64, ok bool) {
	if string(m.Data["e"]) != `"trade"` {
		return 0, false
	}
	err := json.Unmarshal(m.Data["t"], &id)
	return id, err == nil
}

// streamCheck follows one stream on one client: seq and trade id must both
// grow by exactly one per message, seq from the subscribe reply's position
// on (n is -1 until the first message).
type streamCheck struct {
	n               int
	lastSeq, lastID uint64
}

func (s *streamCheck) add(m nativeMsg) error {
	id, ok := m.trade()
	if !ok {
		return fmt.Errorf("not a trade: %s %s", m.Stream, m.Data)
	}
	if s.n != 0 && m.Seq != s.lastSeq+1 {
		return fmt.Errorf("%s: seq %d after %d", m.Stream, m.Seq, s.lastSeq)
	}
	if s.n > 0 && id != s.lastID+1 {
		return fmt.Errorf("%s: trade id %d after %d", m.Stream, id, s.lastID)
	}
	if s.n < 0 {
		s.n = 0 // from the reply's position; its first message is counted now
	}
	s.n++
	s.lastSeq, s.lastID = m.Seq, id
	return nil
}

// followTrades subscribes c to streams and reads until each stream has
// delivered want messages, checking the ack and the id sequences.
func followTrades(c *downstreamtest.Client, streams []string, want int) error {
	q, _ := json.Marshal(streams)
	c.Send(fmt.Sprintf(`{"op":"subscribe","id":1,"streams":%s}`, q))
	acked := false
	checks := map[string]*streamCheck{}
	for _, s := range streams {
		checks[s] = &streamCheck{}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		done := acked
		for _, ch := range checks {
			done = done && ch.n >= want
		}
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out: acked=%v, progress %v", acked, checks)
		}
		p, err := c.Read(10 * time.Second)
		if err != nil {
			return err
		}
		var m nativeMsg
		if err := json.Unmarshal(p, &m); err != nil {
			return fmt.Errorf("message %s: %v", p, err)
		}
		switch {
		case m.Stream == "":
			var r struct {
				Streams   []string `json:"streams"`
				Positions map[string]struct {
					Epoch string `json:"epoch"`
					Seq   uint64 `json:"seq"`
				} `json:"positions"`
			}
			if string(m.ID) != "1" || json.Unmarshal(m.Result, &r) != nil || !slices.Equal(r.Streams, streams) || len(r.Positions) != len(streams) {
				return fmt.Errorf("subscribe reply = %s; want id 1, streams %s and their positions", p, q)
			}
			// The first message of each stream follows its position.
			for s, pos := range r.Positions {
				if ch := checks[s]; ch != nil {
					ch.n, ch.lastSeq, ch.lastID = -1, pos.Seq, 0
				}
			}
			acked = true
		case !acked:
			return fmt.Errorf("data before the subscribe reply: %s", p)
		default:
			ch := checks[m.Stream]
			if ch == nil {
				return fmt.Errorf("message of a stream not subscribed: %s", p)
			}
			if err := ch.add(m); err != nil {
				return err
			}
		}
	}
}

func TestEndToEnd50Clients(t *testing.T) {
	sim, simAddr := startSim(t, binancesim.Config{Symbols: []string{"BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT"}})
	gw := startGateway(t, simAddr)
	symbols := []string{"btcusdt", "ethusdt", "bnbusdt", "solusdt"}

	const clients = 50
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		c := downstreamtest.Dial(t, "ws://"+gw+"/ws")
		streams := []string{
			"binance:" + symbols[i%4] + "@trade",
			"binance:" + symbols[(i+1)%4] + "@trade",
		}
		wg.Go(func() {
			if err := followTrades(c, streams, 20); err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// However many browsers want a stream, the exchange sees it once.
	subs := sim.Subscriptions()
	for _, s := range symbols {
		if n := subs[s+"@trade"]; n != 1 {
			t.Errorf("simulator has %s@trade on %d connections; want 1", s, n)
		}
	}
	if v := sim.Violations(); v != 0 {
		t.Errorf("simulator counted %d violations by the gateway: %+v", v, sim.Clients())
	}
}

func TestBadInputNeverReachesExchange(t *testing.T) {
	sim, simAddr := startSim(t, binancesim.Config{Symbols: []string{"BTCUSDT"}})
	gw := startGateway(t, simAddr)
	c := downstreamtest.Dial(t, "ws://"+gw+"/ws")
	tests := []struct{ send, code string }{
		{`{"op":"subscribe","id":1,`, "bad_request"},
		{`{"op":"frobnicate","id":2}`, "unknown_op"},
		{`{"op":"subscribe","id":3,"streams":["binance:btcusdt@tradez"]}`, "invalid_stream"},
		{`{"op":"subscribe","id":4,"streams":["binance:foousdt@trade"]}`, "invalid_stream"},
		{`{"op":"subscribe","id":5,"streams":["binance:BTCUSDT@trade"]}`, "invalid_stream"},
		{`{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":6}`, "bad_request"},
	}
	for _, tc := range tests {
		c.Send(tc.send)
		var m struct {
			Error struct{ Code, Msg string } `json:"error"`
		}
		if p := c.Next(); json.Unmarshal(p, &m) != nil || m.Error.Code != tc.code || m.Error.Msg == "" {
			t.Errorf("reply to %s = %s; want error code %s with a message", tc.send, p, tc.code)
		}
	}
	c.Send(`{"op":"ping","id":7}`)
	if p := string(c.Next()); p != `{"id":7,"result":"pong"}` {
		t.Fatalf("after bad input, ping reply = %s", p)
	}
	if v := sim.Violations(); v != 0 {
		t.Errorf("simulator counted %d violations: %+v", v, sim.Clients())
	}
	if subs := sim.Subscriptions(); len(subs) != 0 {
		t.Errorf("simulator subscriptions = %v; want none", subs)
	}
	for _, cl := range sim.Clients() {
		if cl.Requests["SUBSCRIBE"] != 0 {
			t.Errorf("gateway sent %d SUBSCRIBE requests for invalid input", cl.Requests["SUBSCRIBE"])
		}
	}
}

// TestDemoBinary builds the gateway and runs it as a user would, with
// --demo, then checks the acceptance: 20 independent clients each
// receive two trade streams with consecutive trade ids, and a client of
// /binance/stream gets Binance-format messages and responses.
func TestDemoBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := filepath.Join(t.TempDir(), "marketgate")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = t.Output()
	if err := build.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	addr := freeAddr(t)
	cmd := exec.Command(bin, "--demo", "--listen", addr, "--admin-listen", freeAddr(t))
	cmd.Stderr = t.Output()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("marketgate exited with %v after SIGINT; want 0", err)
			}
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			t.Error("marketgate did not exit within 15s of SIGINT")
		}
	})
	waitReady(t, addr)

	var wg sync.WaitGroup
	errs := make(chan error, 20)
	symbols := []string{"btcusdt", "ethusdt", "bnbusdt"}
	for i := range 20 {
		c := downstreamtest.Dial(t, "ws://"+addr+"/ws")
		streams := []string{"binance:" + symbols[i%3] + "@trade", "binance:" + symbols[(i+1)%3] + "@trade"}
		wg.Go(func() {
			if err := followTrades(c, streams, 10); err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
			}
		})
	}

	b := downstreamtest.Dial(t, "ws://"+addr+"/binance/stream?streams=btcusdt@trade")
	var first nativeMsg
	if p := b.Next(); json.Unmarshal(p, &first) != nil || first.Stream != "btcusdt@trade" || string(first.Data["e"]) != `"trade"` || string(first.Data["s"]) != `"BTCUSDT"` {
		t.Errorf("first /binance/stream message = %s; want a combined trade of btcusdt", p)
	}
	b.Send(`{"method":"SUBSCRIBE","params":["ethusdt@trade"],"id":7}`)
	b.Send(`{"method":"LIST_SUBSCRIPTIONS","id":8}`)
	var replies []string
	for len(replies) < 2 {
		p := string(b.Next())
		if strings.HasPrefix(p, `{"result"`) {
			replies = append(replies, p)
		}
	}
	if want := []string{`{"result":null,"id":7}`, `{"result":["btcusdt@trade","ethusdt@trade"],"id":8}`}; !slices.Equal(replies, want) {
		t.Errorf("dialect replies = %q; want %q", replies, want)
	}

	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// carried checks that exactly the exchanges names are carried (have a
// URL).
func carried(names ...string) func(config) error {
	return func(c config) error {
		var got []string
		for _, x := range gateway.Exchanges() {
			if c.upstreams[x.Name].URL != "" {
				got = append(got, x.Name)
			}
		}
		if !slices.Equal(got, names) {
			return fmt.Errorf("carried %q; want %q", got, names)
		}
		return nil
	}
}

func TestConfig(t *testing.T) {
	tlsFiles := redistest.NewTLSFiles(t)
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
		check   func(config) error
	}{
		{name: "defaults", check: func(c config) error {
			if c.listen != ":8080" || c.upstreams["binance"].URL != "wss://stream.binance.com:9443" || c.upstreams["binance-futures"].URL != "wss://fstream.binance.com" || c.demo ||
				c.upstreams["binance"].RequestInterval != 300*time.Millisecond || c.upstreams["binance-futures"].MaxStreams != 200 {
				return fmt.Errorf("defaults = %+v", c)
			}
			return nil
		}},
		{name: "env sets a flag", env: map[string]string{"MARKETGATE_LISTEN": "127.0.0.1:9999", "MARKETGATE_DEMO": "true"}, check: func(c config) error {
			if c.listen != "127.0.0.1:9999" || !c.demo {
				return fmt.Errorf("listen=%q demo=%v", c.listen, c.demo)
			}
			return nil
		}},
		{name: "write delay", args: []string{"--write-delay", "2ms"}, check: func(c config) error {
			if c.browsers.WriteDelay != 2*time.Millisecond {
				return fmt.Errorf("WriteDelay = %v; want 2ms", c.browsers.WriteDelay)
			}
			return nil
		}},
		{name: "write delay too long", args: []string{"--write-delay", "1s"}, wantErr: "--write-delay"},
		{name: "write delay negative", env: map[string]string{"MARKETGATE_WRITE_DELAY": "-1ms"}, wantErr: "--write-delay"},
		{name: "flag beats env", args: []string{"--listen", "127.0.0.1:1"}, env: map[string]string{"MARKETGATE_LISTEN": "127.0.0.1:2"}, check: func(c config) error {
			if c.listen != "127.0.0.1:1" {
				return fmt.Errorf("listen=%q", c.listen)
			}
			return nil
		}},
		{name: "origins", args: []string{"--allowed-origins", "https://a.example, http://b.example:8080"}, check: func(c config) error {
			if !slices.Equal(c.allowedOrigins, []string{"https://a.example", "http://b.example:8080"}) {
				return fmt.Errorf("origins=%q", c.allowedOrigins)
			}
			return nil
		}},
		{name: "bad listen", args: []string{"--listen", "8080"}, wantErr: "--listen"},
		{name: "bad env bool", env: map[string]string{"MARKETGATE_DEMO": "maybe"}, wantErr: "MARKETGATE_DEMO"},
		{name: "bad origin", args: []string{"--allowed-origins", "example.com"}, wantErr: "--allowed-origins"},
		{name: "bad binance url", args: []string{"--binance-url", "http://x"}, wantErr: "--binance-url"},
		{name: "bad futures rest url", args: []string{"--binance-futures-rest-url", "ws://x"}, wantErr: "--binance-futures-rest-url"},
		{name: "futures off", args: []string{"--binance-futures-url", ""}, check: func(c config) error {
			if c.upstreams["binance-futures"].URL != "" {
				return fmt.Errorf("noFutures = false")
			}
			return nil
		}},
		{name: "default exchanges", check: carried("binance", "binance-futures")},
		{name: "demo carries every exchange", args: []string{"--demo"}, check: carried("binance", "binance-futures", "okx", "bybit", "bybit-linear")},
		{name: "demo with a list", args: []string{"--demo", "--exchanges", "binance,okx"}, check: carried("binance", "okx")},
		{name: "exchanges from env", env: map[string]string{"MARKETGATE_EXCHANGES": "binance, bybit-linear"}, check: carried("binance", "bybit-linear")},
		{name: "all exchanges", args: []string{"--exchanges", "all"}, check: carried("binance", "binance-futures", "okx", "bybit", "bybit-linear")},
		{name: "listed but its url empty", args: []string{"--exchanges", "all", "--okx-url", ""}, check: carried("binance", "binance-futures", "bybit", "bybit-linear")},
		{name: "unknown exchange", args: []string{"--exchanges", "binance,kraken"}, wantErr: `--exchanges: "kraken" is not an exchange`},
		{name: "exchange twice", args: []string{"--exchanges", "binance,okx,okx"}, wantErr: `--exchanges: "okx" is listed twice`},
		{name: "required exchange left out", args: []string{"--exchanges", "okx"}, wantErr: "--exchanges: binance cannot be left out"},
		{name: "okx request budget", args: []string{"--exchanges", "all", "--okx-max-requests", "100", "--okx-request-window", "10m"}, check: func(c config) error {
			if o := c.upstreams["okx"]; o.MaxRequests != 100 || o.RequestWindow != 10*time.Minute {
				return fmt.Errorf("okx budget %d per %v", o.MaxRequests, o.RequestWindow)
			}
			return nil
		}},
		{name: "a budget needs a window", args: []string{"--binance-max-requests", "100"}, wantErr: "--binance-max-requests"},
		{name: "exchange limit", args: []string{"--binance-max-streams", "50", "--binance-futures-rotate-after", "1h"}, check: func(c config) error {
			if c.upstreams["binance"].MaxStreams != 50 || c.upstreams["binance-futures"].RotateAfter != time.Hour {
				return fmt.Errorf("max streams %d, rotate after %v", c.upstreams["binance"].MaxStreams, c.upstreams["binance-futures"].RotateAfter)
			}
			return nil
		}},
		{name: "rotation after lifetime", args: []string{"--binance-rotate-after", "25h"}, wantErr: "--binance-rotate-after"},
		{name: "shorter lifetime alone", args: []string{"--binance-max-lifetime", "1h"}, check: func(c config) error {
			if c.upstreams["binance"].MaxLifetime != time.Hour || c.upstreams["binance"].RotateAfter != 0 {
				return fmt.Errorf("lifetime %v, rotate after %v", c.upstreams["binance"].MaxLifetime, c.upstreams["binance"].RotateAfter)
			}
			return nil
		}},
		{name: "backoff order", args: []string{"--binance-backoff-min", "1m"}, wantErr: "--binance-backoff-min"},
		{name: "browser limits", args: []string{"--max-conns", "5", "--pong-timeout", "2s"}, check: func(c config) error {
			if c.browsers.MaxConns != 5 || c.browsers.PongTimeout != 2*time.Second || c.browsers.MaxCommandsPerSecond != 10 {
				return fmt.Errorf("browsers = %+v", c.browsers)
			}
			return nil
		}},
		{name: "max-conns not chosen", args: nil, check: func(c config) error {
			if c.browsers.MaxConns != 0 {
				return fmt.Errorf("MaxConns = %d; want 0, the server's default that fits the descriptor limit", c.browsers.MaxConns)
			}
			return nil
		}},
		{name: "stream limits and proxies", args: []string{"--max-streams-per-ip", "7", "--max-streams-per-node", "70", "--trusted-proxies", "10.0.0.0/8, 127.0.0.1"}, check: func(c config) error {
			if c.browsers.MaxStreamsPerIP != 7 || c.browsers.MaxStreams != 70 || fmt.Sprint(c.browsers.TrustedProxies) != "[10.0.0.0/8 127.0.0.1/32]" {
				return fmt.Errorf("browsers = %+v", c.browsers)
			}
			return nil
		}},
		{name: "bad trusted proxies", args: []string{"--trusted-proxies", "10.0.0.0/40"}, wantErr: "--trusted-proxies"},
		{name: "bad stream limit", args: []string{"--max-streams-per-ip", "0"}, wantErr: "--max-streams-per-ip"},
		{name: "bad browser limit", args: []string{"--max-commands-per-second", "0"}, wantErr: "--max-commands-per-second"},
		{name: "zero streams", args: []string{"--binance-futures-max-streams", "0"}, wantErr: "--binance-futures-max-streams"},
		{name: "bad log level", args: []string{"--log-level", "loud"}, wantErr: "--log-level"},
		{name: "bad redis url", args: []string{"--redis", "http://127.0.0.1:6379/0"}, wantErr: "--redis"},
		{name: "redis", args: []string{"--redis", "redis://127.0.0.1:6379/0", "--node-id", "n1"}, check: func(c config) error {
			if c.redis != "redis://127.0.0.1:6379/0" || c.nodeID != "n1" || c.drainTimeout != 10*time.Second {
				return fmt.Errorf("redis %q node %q drain %v", c.redis, c.nodeID, c.drainTimeout)
			}
			return nil
		}},
		{name: "bad drain timeout", args: []string{"--drain-timeout", "0s"}, wantErr: "--drain-timeout"},
		// One line per flag type, naming the setting, the value and what it expects.
		{name: "int", args: []string{"--max-conns", "abc"}, wantErr: `--max-conns: "abc" is not a whole number`},
		{name: "int64", args: []string{"--binance-max-message-size", "1x"}, wantErr: `--binance-max-message-size: "1x" is not a whole number`},
		{name: "duration", args: []string{"--ping-interval", "5"}, wantErr: `--ping-interval: "5" is not a duration such as 500ms, 30s or 5m`},
		{name: "bool", args: []string{"--demo=maybe"}, wantErr: `--demo: "maybe" is not true or false`},
		{name: "env int", env: map[string]string{"MARKETGATE_MAX_CONNS": "x"}, wantErr: `MARKETGATE_MAX_CONNS: "x" is not a whole number`},
		{name: "env duration", env: map[string]string{"MARKETGATE_PONG_TIMEOUT": "soon"}, wantErr: `MARKETGATE_PONG_TIMEOUT: "soon" is not a duration`},
		{name: "unknown flag", args: []string{"--nosuch"}, wantErr: "--nosuch: no such setting"},
		{name: "redis cluster", args: []string{"--redis", "redis://127.0.0.1:7000?addr=127.0.0.1:7001", "--redis-cluster"}, check: func(c config) error {
			if !c.redisCluster {
				return errors.New("redisCluster not set")
			}
			return nil
		}},
		{name: "redis cluster without redis", args: []string{"--redis-cluster"}, wantErr: "--redis-cluster"},
		{name: "bad redis cluster url", args: []string{"--redis", "redis://127.0.0.1:7000?nosuch=1", "--redis-cluster"}, wantErr: "--redis"},
		{name: "stray argument", args: []string{"extra"}, wantErr: "unexpected argument"},
		// The control listener: a token long enough, and one whenever it
		// listens beyond loopback.
		{name: "short token", args: []string{"--admin-token", "s3cret"}, wantErr: "--admin-token: 6 bytes is too short; use at least 16"},
		{name: "short token in env", env: map[string]string{"MARKETGATE_ADMIN_TOKEN": "0123456789abcde"}, wantErr: "--admin-token: 15 bytes"},
		{name: "token", env: map[string]string{"MARKETGATE_ADMIN_TOKEN": "0123456789abcdef"}, check: func(c config) error {
			if c.adminToken != "0123456789abcdef" {
				return fmt.Errorf("adminToken %q", c.adminToken)
			}
			return nil
		}},
		{name: "every interface, no token", args: []string{"--admin-listen", ":9090"}, wantErr: "--admin-listen: \":9090\" is reachable beyond loopback: set --admin-token"},
		{name: "any address, no token", env: map[string]string{"MARKETGATE_ADMIN_LISTEN": "0.0.0.0:9090"}, wantErr: "--admin-listen"},
		{name: "ipv6 any, no token", args: []string{"--admin-listen", "[::]:9090"}, wantErr: "--admin-listen"},
		{name: "host address, no token", args: []string{"--admin-listen", "10.0.0.5:9090"}, wantErr: "--admin-listen"},
		{name: "host name, no token", args: []string{"--admin-listen", "gateway.internal:9090"}, wantErr: "--admin-listen"},
		{name: "every interface with a token", args: []string{"--admin-listen", ":9090", "--admin-token", "0123456789abcdef"}, check: func(c config) error { return nil }},
		{name: "loopback, no token", args: []string{"--admin-listen", "127.0.0.2:9090"}, check: func(c config) error { return nil }},
		{name: "ipv6 loopback, no token", args: []string{"--admin-listen", "[::1]:9090"}, check: func(c config) error { return nil }},
		{name: "localhost, no token", args: []string{"--admin-listen", "localhost:0"}, check: func(c config) error { return nil }},
		{name: "redis tls files from the environment", args: []string{"--redis", "rediss://:pw@127.0.0.1:6380/0"},
			env: map[string]string{"MARKETGATE_REDIS_TLS_CA": tlsFiles.CA, "MARKETGATE_REDIS_TLS_CERT": tlsFiles.ClientCert, "MARKETGATE_REDIS_TLS_KEY": tlsFiles.ClientKey},
			check: func(c config) error {
				opt, _, err := redisOptions(c)
				if err != nil {
					return err
				}
				if opt.TLSConfig == nil || opt.TLSConfig.RootCAs == nil || len(opt.TLSConfig.Certificates) != 1 || opt.Password != "pw" {
					return fmt.Errorf("TLS config %+v, password %q; want the CA, the client certificate and the password", opt.TLSConfig, opt.Password)
				}
				return nil
			}},
		{name: "redis cluster tls", args: []string{"--redis", "rediss://u:pw@127.0.0.1:7000?addr=127.0.0.1:7001", "--redis-cluster", "--redis-tls-ca", tlsFiles.CA}, check: func(c config) error {
			_, copt, err := redisOptions(c)
			if err != nil {
				return err
			}
			if copt.TLSConfig == nil || copt.TLSConfig.RootCAs == nil || copt.Username != "u" || copt.Password != "pw" || len(copt.Addrs) != 2 {
				return fmt.Errorf("cluster options %+v; want TLS with the CA, the credentials and both seeds", copt)
			}
			return nil
		}},
		{name: "redis tls without rediss", args: []string{"--redis", "redis://127.0.0.1:6379/0", "--redis-tls-ca", tlsFiles.CA}, wantErr: "--redis-tls-ca: needs a rediss://"},
		{name: "redis tls cert without key", args: []string{"--redis", "rediss://127.0.0.1:6379/0", "--redis-tls-cert", tlsFiles.ClientCert}, wantErr: "--redis-tls-key"},
		{name: "redis tls ca missing", args: []string{"--redis", "rediss://127.0.0.1:6379/0", "--redis-tls-ca", "/nonexistent/ca.pem"}, wantErr: "--redis-tls-ca"},
		{name: "redis tls ca not pem", args: []string{"--redis", "rediss://127.0.0.1:6379/0", "--redis-tls-ca", tlsFiles.ClientKey}, wantErr: "--redis-tls-ca"},
		{name: "redis tls without redis", args: []string{"--redis-tls-ca", tlsFiles.CA}, wantErr: "need --redis"},
		{name: "redundancy", args: []string{"--binance-redundancy", "2"}, env: map[string]string{"MARKETGATE_OKX_REDUNDANCY": "3"}, check: func(c config) error {
			if c.upstreams["binance"].Redundancy != 2 || c.upstreams["okx"].Redundancy != 3 || c.upstreams["bybit"].Redundancy != 1 {
				return fmt.Errorf("redundancy binance %d, okx %d, bybit %d; want 2, 3, 1",
					c.upstreams["binance"].Redundancy, c.upstreams["okx"].Redundancy, c.upstreams["bybit"].Redundancy)
			}
			return nil
		}},
		{name: "redundancy zero", args: []string{"--bybit-linear-redundancy", "0"}, wantErr: "--bybit-linear-redundancy: 0 is not a positive number"},
		{name: "redundancy too high", args: []string{"--binance-redundancy", "5"}, wantErr: "--binance-redundancy: Redundancy 5 is not between 1 and 4"},
		{name: "redundancy above shards", args: []string{"--binance-futures-redundancy", "3", "--binance-futures-max-shards", "2"}, wantErr: "--binance-futures-redundancy: Redundancy 3 is above MaxShards 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var usage strings.Builder
			c, err := parseConfig(tc.args, tc.env, &usage)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("err = %v; want one line naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.check(c); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestInvalidConfigExitCode(t *testing.T) {
	var stderr strings.Builder
	if code := run([]string{"--listen", "nope"}, nil, io.Discard, &stderr); code != 2 {
		t.Fatalf("exit code = %d; want 2", code)
	}
	if lines := strings.Count(strings.TrimSpace(stderr.String()), "\n"); lines != 0 || !strings.Contains(stderr.String(), "--listen") {
		t.Fatalf("stderr = %q; want one line naming --listen", stderr.String())
	}
}

// TestMaxConnsAboveDescriptorLimit is L7: a --max-conns the descriptor
// limit cannot hold refuses to start, saying what to change.
func TestMaxConnsAboveDescriptorLimit(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Max > 1<<30 {
		t.Skipf("no usable descriptor limit (%d, %v)", lim.Max, err)
	}
	var stderr strings.Builder
	args := []string{"--demo", "--listen", freeAddr(t), "--admin-listen", freeAddr(t), "--max-conns", strconv.FormatUint(lim.Max, 10)}
	if code := run(args, nil, io.Discard, &stderr); code == 0 {
		t.Fatal("exit code 0; want a refusal")
	}
	if !strings.Contains(stderr.String(), "--max-conns") || !strings.Contains(stderr.String(), "descriptor limit") {
		t.Fatalf("stderr = %q; want it to name --max-conns and the descriptor limit", stderr.String())
	}
}

// TestFuturesEndToEnd runs both exchanges: a client subscribes a futures
// aggTrade stream (served on /market) and a futures diff depth stream (on
// /public) next to a spot trade stream, and gets each with its own identity
// chain intact: aggregate ids +1, depth pu equal to the previous u.
func TestFuturesEndToEnd(t *testing.T) {
	spot, spotAddr := startSim(t, binancesim.Config{Symbols: []string{"BTCUSDT"}})
	fut, futAddr := startSim(t, binancesim.Config{Mode: binancesim.ModeFutures, Symbols: []string{"BTCUSDT", "ETHUSDT"}})
	gw := startGatewayWith(t, spotAddr, func(c *config) {
		c.upstreams["binance-futures"] = &upstream.Config{URL: "ws://" + futAddr, RESTURL: "http://" + futAddr}
	})
	c := downstreamtest.Dial(t, "ws://"+gw+"/ws")
	c.Send(`{"op":"subscribe","id":1,"streams":["binance-futures:btcusdt@aggTrade","binance-futures:ethusdt@depth@100ms","binance:btcusdt@trade"]}`)
	type chain struct {
		n    int
		last uint64
	}
	chains := map[string]*chain{}
	num := func(m nativeMsg, k string) uint64 {
		var v uint64
		if err := json.Unmarshal(m.Data[k], &v); err != nil {
			t.Fatalf("%s: field %q: %v in %s", m.Stream, k, err, m.Data)
		}
		return v
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		done := len(chains) == 3
		for _, ch := range chains {
			done = done && ch.n >= 10
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out; progress %v", chains)
		}
		var m nativeMsg
		if p := c.Next(); json.Unmarshal(p, &m) != nil {
			t.Fatalf("bad message %s", p)
		}
		if m.Stream == "" {
			continue
		}
		ch := chains[m.Stream]
		if ch == nil {
			ch = &chain{}
			chains[m.Stream] = ch
		}
		// prev is what the previous message's id must have been.
		var prev, id uint64
		switch m.Stream {
		case "binance-futures:btcusdt@aggTrade":
			id = num(m, "a")
			prev = id - 1
		case "binance-futures:ethusdt@depth@100ms":
			prev, id = num(m, "pu"), num(m, "u")
		case "binance:btcusdt@trade":
			id = num(m, "t")
			prev = id - 1
		default:
			t.Fatalf("unexpected stream %s", m.Stream)
		}
		if ch.n > 0 && prev != ch.last {
			t.Fatalf("%s: id %d follows %d; want it to follow %d", m.Stream, id, ch.last, prev)
		}
		ch.n++
		ch.last = id
	}
	for name, sim := range map[string]*binancesim.Server{"spot": spot, "futures": fut} {
		if v := sim.Violations(); v != 0 {
			t.Errorf("%s simulator counted %d violations: %+v", name, v, sim.Clients())
		}
	}
	// Futures streams live on two routed endpoints: two connections.
	if n := fut.Accepted(); n != 2 {
		t.Errorf("futures simulator accepted %d connections; want 2 (/public and /market)", n)
	}
}

// TestUsage checks --help: every flag once, under a group, with its
// environment variable and help text.
func TestUsage(t *testing.T) {
	var out strings.Builder
	if _, err := parseConfig([]string{"--help"}, nil, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("parseConfig(--help) = %v; want flag.ErrHelp", err)
	}
	help := out.String()
	for _, name := range []string{"listen", "admin-token", "metrics-public", "redis", "node-id", "max-conns", "binance-url", "binance-futures-url", "log-level", "demo"} {
		line := fmt.Sprintf("  --%s (%s)\n", name, envName(name))
		if n := strings.Count(help, line); n != 1 {
			t.Errorf("--help lists --%s with its variable %d times; want once", name, n)
		}
	}
	for _, g := range flagGroups[:len(flagGroups)-1] {
		if !strings.Contains(help, "\n"+g.title+":\n") {
			t.Errorf("--help has no group %q", g.title)
		}
	}
	if strings.Contains(help, "(default \"\")\n    \t\n") {
		t.Error("a flag has no help text")
	}
	for _, want := range []string{"Give secrets (--admin-token, a --redis URL with a password) through the environment", "set MARKETGATE_ADMIN_TOKEN rather than the flag"} {
		if !strings.Contains(help, want) {
			t.Errorf("--help does not say %q", want)
		}
	}
}

// TestRedactArgs checks that the command line /debug/pprof/cmdline shows
// has every secret masked, in each way the flag package takes a value.
func TestRedactArgs(t *testing.T) {
	tests := []struct{ in, want []string }{
		{[]string{"--admin-token", "tok-tok-tok-tok-1", "--demo"}, []string{"--admin-token", "***", "--demo"}},
		{[]string{"--listen", ":1", "--admin-token", "tok-tok-tok-tok-1", "--demo", "--redis", "redis://:pw@r"}, []string{"--listen", ":1", "--admin-token", "***", "--demo", "--redis", "redis://:%2A%2A%2A@r"}},
		{[]string{"-admin-token=tok-tok-tok-tok-1"}, []string{"-admin-token=***"}},
		{[]string{"--admin-token=tok-tok-tok-tok-1", "--listen", ":1"}, []string{"--admin-token=***", "--listen", ":1"}},
		{[]string{"--redis", "redis://u:hunter2@r:6379/0"}, []string{"--redis", "redis://u:%2A%2A%2A@r:6379/0"}},
		{[]string{"--redis=redis://:hunter2@r:6379/0", "--redis-cluster"}, []string{"--redis=redis://:%2A%2A%2A@r:6379/0", "--redis-cluster"}},
		{[]string{"--redis", "redis://r:6379/0"}, []string{"--redis", "redis://r:6379/0"}},
		{[]string{"--redis", "re dis://u:hunter2@r"}, []string{"--redis", "re dis://***@r"}},
		{[]string{"--admin-token"}, []string{"--admin-token"}},
		{[]string{"--listen", ":1", "--", "--admin-token", "x"}, []string{"--listen", ":1", "--", "--admin-token", "x"}},
	}
	for _, tc := range tests {
		in := slices.Clone(tc.in)
		if got := redactArgs(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("redactArgs(%q) = %q; want %q", in, got, tc.want)
		}
		if !slices.Equal(tc.in, in) {
			t.Errorf("redactArgs changed its argument to %q", tc.in)
		}
	}
}

// TestRedisURLErrorHidesPassword: an invalid --redis, however malformed,
// is reported without its password (the start-up log masks it too).
func TestRedisURLErrorHidesPassword(t *testing.T) {
	for _, u := range []string{
		"http://user:hunter2@127.0.0.1:6379/0",
		"redis://user:hunter2@127.0.0.1:bad/0",
		"redis://:hunter2@127.0.0.1:6379/0/extra",
		"redis://:hun/ter2@127.0.0.1:6379/x",
		"redis://:hunter2@127.0.0.1:6379/0?nosuch=1",
	} {
		for _, cluster := range []bool{false, true} {
			args := []string{"--redis", u}
			if cluster {
				args = append(args, "--redis-cluster")
			}
			_, err := parseConfig(args, nil, io.Discard)
			if err == nil {
				if cluster {
					continue // a valid cluster URL
				}
				t.Fatalf("parseConfig(%q) = nil; want an error", args)
			}
			if strings.Contains(err.Error(), "hun") || strings.Contains(err.Error(), "ter2") || !strings.Contains(err.Error(), "--redis") {
				t.Errorf("parseConfig(%q) = %v; want an error naming --redis without the password", args, err)
			}
		}
	}
}

func TestMaskSecret(t *testing.T) {
	for _, tc := range []struct{ name, value, want string }{
		{"admin-token", "s3cret", "***"},
		{"admin-token", "", ""},
		{"redis", "redis://user:pw@r:6379/0", "redis://user:%2A%2A%2A@r:6379/0"},
		{"redis", "redis://r:6379/0", "redis://r:6379/0"},
		{"listen", ":8080", ":8080"},
		{"redis", "rediss://:p%40ss@r:6379/0", "rediss://:%2A%2A%2A@r:6379/0"},
		{"redis", "redis://user:pw@r:bad/0", "redis://***@r:bad/0"},
		{"redis", "redis://:p@ss@r:6379/0", "redis://***@r:6379/0"},
		{"redis", "redis://:pa/ss@r:6379/0", "redis://***@r:6379/0"},
	} {
		if got := maskSecret(tc.name, tc.value); got != tc.want {
			t.Errorf("maskSecret(%s, %q) = %q; want %q", tc.name, tc.value, got, tc.want)
		}
	}
}
