package downstream

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/marketgate/marketgate/downstream/downstreamtest"
	"github.com/marketgate/marketgate/hub"
	"github.com/marketgate/marketgate/internal/waitfor"
)

// These tests cover the review's findings L2 (client addresses behind a
// proxy, IPv6 per /64), M4 (stream capacity cannot be taken anonymously)
// and L7 (MaxConns against the descriptor limit).

func TestClientAddr(t *testing.T) {
	trusted, err := ParseTrustedProxies("10.0.0.0/8, ::1, 192.0.2.7")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, peer, xff, realIP, want string
	}{
		{name: "untrusted peer: headers ignored", peer: "198.51.100.1:4000", xff: "203.0.113.9", want: "198.51.100.1"},
		{name: "trusted peer, one hop", peer: "10.1.2.3:4000", xff: "203.0.113.9", want: "203.0.113.9"},
		{name: "client claims are left of the proxy's entry", peer: "10.1.2.3:4000", xff: "6.6.6.6, 203.0.113.9", want: "203.0.113.9"},
		{name: "trusted hops are skipped", peer: "10.1.2.3:4000", xff: "203.0.113.9, 10.9.9.9, 192.0.2.7", want: "203.0.113.9"},
		{name: "X-Real-IP without X-Forwarded-For", peer: "[::1]:4000", realIP: "2001:db8::5", want: "2001:db8::5"},
		{name: "malformed hop: the peer", peer: "10.1.2.3:4000", xff: "203.0.113.9, junk", want: "10.1.2.3"},
		{name: "only trusted hops: the peer", peer: "10.1.2.3:4000", xff: "10.4.4.4", want: "10.1.2.3"},
		{name: "IPv4-mapped peer", peer: "[::ffff:10.1.2.3]:4000", xff: "203.0.113.9", want: "203.0.113.9"},
		{name: "hop with a port", peer: "10.1.2.3:4000", xff: "203.0.113.9:5555", want: "203.0.113.9"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/ws", nil)
			r.RemoteAddr = tc.peer
			if tc.xff != "" {
				r.Header.Set("X-Forwarded-For", tc.xff)
			}
			if tc.realIP != "" {
				r.Header.Set("X-Real-IP", tc.realIP)
			}
			if got := clientAddr(r, trusted); got != netip.MustParseAddr(tc.want) {
				t.Fatalf("clientAddr = %v; want %v", got, tc.want)
			}
		})
	}
}

func TestIPKey(t *testing.T) {
	for addr, want := range map[string]string{
		"203.0.113.9":          "203.0.113.9",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2::ffff":   "2001:db8:1:2::/64",
		"::ffff:203.0.113.9":   "203.0.113.9",
	} {
		if got := ipKey(netip.MustParseAddr(addr).Unmap()); got != want {
			t.Errorf("ipKey(%s) = %s; want %s", addr, got, want)
		}
	}
}

func TestParseTrustedProxies(t *testing.T) {
	got, err := ParseTrustedProxies(" 10.0.0.0/8,127.0.0.1, 2001:db8::/32 ")
	if err != nil || fmt.Sprint(got) != "[10.0.0.0/8 127.0.0.1/32 2001:db8::/32]" {
		t.Fatalf("= %v, %v", got, err)
	}
	for _, bad := range []string{"10.0.0.0/33", "nope", "10.0.0.1/8/2"} {
		if _, err := ParseTrustedProxies(bad); err == nil {
			t.Errorf("ParseTrustedProxies(%q) accepted", bad)
		}
	}
}

// forwarded returns the headers of a handshake a trusted proxy forwarded
// for addr.
func forwarded(addr string) http.Header {
	return http.Header{"X-Forwarded-For": {addr}}
}

// TestPerIPLimitsBehindAProxy runs the server behind a trusted proxy (the
// test's own loopback address): connections are counted per forwarded
// address, IPv6 ones per /64, and the clients list shows that address.
func TestPerIPLimitsBehindAProxy(t *testing.T) {
	env := startServer(t, Config{MaxConnsPerIP: 2, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	tests := []struct {
		addr string
		ok   bool
	}{
		{"203.0.113.1", true}, {"203.0.113.1", true}, {"203.0.113.1", false}, {"203.0.113.2", true},
		{"2001:db8::1", true}, {"2001:db8::2", true}, {"2001:db8::3", false}, {"2001:db8:0:1::1", true},
	}
	for i, tc := range tests {
		c, err := downstreamtest.TryDial(env.url+"/ws", forwarded(tc.addr))
		if tc.ok != (err == nil) {
			t.Fatalf("connection %d from %s: err = %v; want ok %t", i, tc.addr, err, tc.ok)
		}
		if err == nil {
			t.Cleanup(func() { c.Close() })
		} else if !errors.Is(err, ws.StatusError(http.StatusTooManyRequests)) {
			t.Fatalf("connection %d from %s: %v; want 429", i, tc.addr, err)
		}
	}
	page, _ := env.srv.Clients(0, 100)
	if len(page) == 0 || page[0].Remote != "203.0.113.1" {
		t.Fatalf("clients list shows %+v; want the forwarded address first", page)
	}
}

// TestStreamLimits is M4: the distinct streams of one address and of the
// node are bounded, and a refused subscribe says so and changes nothing.
func TestStreamLimits(t *testing.T) {
	env := startServer(t, Config{MaxStreamsPerIP: 2, MaxStreams: 3, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	a1 := dialFrom(t, env, "203.0.113.1")
	a2 := dialFrom(t, env, "203.0.113.1")
	b := dialFrom(t, env, "203.0.113.2")
	steps := []struct {
		c    *downstreamtest.Client
		cmd  string
		want string
	}{
		{a1, `{"op":"subscribe","id":1,"streams":["binance:btcusdt@trade","binance:ethusdt@trade"]}`,
			`{"id":1,"result":{"streams":["binance:btcusdt@trade","binance:ethusdt@trade"]}}`},
		// a2 shares a1's address: a stream a1 holds is no new one...
		{a2, `{"op":"subscribe","id":2,"streams":["binance:btcusdt@trade"]}`, `{"id":2,"result":{"streams":["binance:btcusdt@trade"]}}`},
		// ...a third distinct one is refused, the whole command with it.
		{a2, `{"op":"subscribe","id":3,"streams":["binance:ethusdt@trade","binance:btcusdt@bookTicker"]}`,
			`{"id":3,"error":{"code":"stream_limit","msg":"the connections from one address may hold at most 2 distinct streams","streams":["binance:btcusdt@bookTicker"]}}`},
		{a2, `{"op":"list","id":4}`, `{"id":4,"result":{"streams":["binance:btcusdt@trade"]}}`},
		// Another address has room of its own, up to the node's limit.
		{b, `{"op":"subscribe","id":5,"streams":["binance:btcusdt@bookTicker"]}`, `{"id":5,"result":{"streams":["binance:btcusdt@bookTicker"]}}`},
		{b, `{"op":"subscribe","id":6,"streams":["binance:ethusdt@bookTicker"]}`,
			`{"id":6,"error":{"code":"stream_limit","msg":"this node carries at most 3 distinct streams; try again later","streams":["binance:ethusdt@bookTicker"]}}`},
		// Leaving gives the room back.
		{a1, `{"op":"unsubscribe","id":7,"streams":["binance:ethusdt@trade"]}`, `{"id":7,"result":{"streams":["binance:ethusdt@trade"]}}`},
		{b, `{"op":"subscribe","id":8,"streams":["binance:ethusdt@bookTicker"]}`, `{"id":8,"result":{"streams":["binance:ethusdt@bookTicker"]}}`},
		{a2, `{"op":"subscribe","id":9,"streams":["binance:ethusdt@trade"]}`,
			`{"id":9,"error":{"code":"stream_limit","msg":"this node carries at most 3 distinct streams; try again later","streams":["binance:ethusdt@trade"]}}`},
	}
	for i, st := range steps {
		st.c.Send(st.cmd)
		if got := st.c.Next(); !jsonEqual(got, []byte(st.want)) {
			t.Fatalf("step %d: got %s\nwant %s", i, got, st.want)
		}
	}
	if n := env.srv.Stats().StreamsRefused; n != 3 {
		t.Fatalf("StreamsRefused = %d; want 3", n)
	}
	// Every connection of an address gone: its accounting is gone too.
	a1.Close()
	a2.Close()
	b.Close()
	waitForNoClients(t, env)
	env.srv.topics.mu.RLock()
	n := len(env.srv.topics.byIP)
	env.srv.topics.mu.RUnlock()
	if n != 0 {
		t.Fatalf("%d addresses still counted after every client left", n)
	}
}

func dialFrom(t *testing.T, env *testEnv, addr string) *downstreamtest.Client {
	t.Helper()
	c, err := downstreamtest.TryDial(env.url+"/ws", forwarded(addr))
	if err != nil {
		t.Fatal(err)
	}
	c.T = t
	t.Cleanup(func() { c.Close() })
	return c
}

func waitForNoClients(t *testing.T, env *testEnv) {
	t.Helper()
	waitfor.Cond(t, 2*time.Second, func() error {
		if n := env.srv.ConnCount(); n != 0 {
			return fmt.Errorf("%d connections", n)
		}
		return nil
	})
}

// refusingHub is a hub that refuses to subscribe one stream, as a Redis hub
// does at its stream limit or while Redis is down.
type refusingHub struct {
	*hub.Memory
	refuse string
}

func (h refusingHub) Subscribe(ctx context.Context, stream string, r hub.Receiver) error {
	if stream == h.refuse {
		return errors.New("hub: stream limit reached")
	}
	return h.Memory.Subscribe(ctx, stream, r)
}

// TestHubRefusalIsAnError is M4's silent loss: when the hub refuses a new
// stream, the client gets an error naming it, not a success without data.
func TestHubRefusalIsAnError(t *testing.T) {
	mem := hub.NewMemory()
	env := startServer(t, Config{Hub: refusingHub{mem, "binance:ethusdt@trade"}})
	c := downstreamtest.Dial(t, env.url+"/ws")
	c.Send(`{"op":"subscribe","id":1,"streams":["binance:btcusdt@trade","binance:ethusdt@trade"]}`)
	expectJSON(t, c, `{"id":1,"error":{"code":"upstream_error","msg":"this node cannot carry the stream now; try again later","streams":["binance:ethusdt@trade"]}}`)
	c.Send(`{"op":"list","id":2}`)
	expectJSON(t, c, `{"id":2,"result":{"streams":[]}}`)
	if got := env.srv.Streams(); len(got) != 0 {
		t.Fatalf("streams after the refusal: %v", got)
	}
	// The stream subscribed before the refused one was let go in the hub.
	if err := mem.Publish(context.Background(), hub.Message{Stream: "binance:btcusdt@trade", Seq: 1, Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	mem.Flush(context.Background())
	c.Send(`{"op":"ping","id":3}`)
	expectJSON(t, c, `{"id":3,"result":"pong"}`)
}

// TestDialectURLOverTheLimit closes a dialect connection whose URL streams
// the node cannot take with 1013 (try again later).
func TestDialectURLOverTheLimit(t *testing.T) {
	env := startServer(t, Config{MaxStreams: 1})
	c := downstreamtest.Dial(t, env.url+"/binance/stream?streams=btcusdt@trade/ethusdt@trade")
	if got := c.ExpectClose(); got != statusTryAgainLater {
		t.Fatalf("close code %d; want 1013", got)
	}
}

// TestMaxConnsAgainstDescriptors is L7: MaxConns must leave the node
// DescriptorReserve descriptors, and its default shrinks to fit.
func TestMaxConnsAgainstDescriptors(t *testing.T) {
	tests := []struct {
		limit    uint64
		maxConns int
		want     int    // the MaxConns in effect
		wantErr  string // or the start of the error
	}{
		{limit: 20000, maxConns: 0, want: 10000},
		{limit: 20000, maxConns: 19744, want: 19744},
		{limit: 20000, maxConns: 19745, wantErr: "downstream: MaxConns (--max-conns) 19745 is above what the descriptor limit 20000 allows (19744"},
		{limit: 1024, maxConns: 0, want: 768},
		{limit: 0, maxConns: 0, want: 10000},     // unknown limit
		{limit: 0, maxConns: 50000, want: 50000}, // unknown limit
		{limit: 200, maxConns: 0, wantErr: "downstream: the descriptor limit 200 leaves no room"},
	}
	for _, tc := range tests {
		cfg := Config{Hub: hub.NewMemory(), Source: newFakeSource(), MaxConns: tc.maxConns}
		err := cfg.setDefaults(tc.limit)
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
				t.Errorf("limit %d, MaxConns %d: err = %v; want %q…", tc.limit, tc.maxConns, err, tc.wantErr)
			}
		case err != nil || cfg.MaxConns != tc.want:
			t.Errorf("limit %d, MaxConns %d: MaxConns %d, err %v; want %d", tc.limit, tc.maxConns, cfg.MaxConns, err, tc.want)
		}
	}
}

// TestSetLimits: New's limits (defaults filled) are the first in force;
// SetLimits replaces them all, and refuses a limit that is not positive,
// changing nothing. (Their effect on handshakes and subscribes is tested
// through a reload in cmd/marketgate.)
func TestSetLimits(t *testing.T) {
	srv, err := New(Config{Hub: hub.NewMemory(), Source: newFakeSource(), MaxStreamsPerConn: 4})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := srv.Limits(), (Limits{MaxConnsPerIP: 1000, MaxStreamsPerConn: 4, MaxStreamsPerIP: 2048, MaxStreams: 8192, MaxCommandsPerSecond: 10}); got != want {
		t.Errorf("Limits() = %+v; want %+v", got, want)
	}
	next := Limits{MaxConnsPerIP: 1, MaxStreamsPerConn: 2, MaxStreamsPerIP: 3, MaxStreams: 4, MaxCommandsPerSecond: 5}
	if err := srv.SetLimits(next); err != nil || srv.Limits() != next {
		t.Errorf("SetLimits(%+v) = %v; Limits() = %+v", next, err, srv.Limits())
	}
	bad := next
	bad.MaxStreamsPerIP = 0
	if err := srv.SetLimits(bad); err == nil || !strings.Contains(err.Error(), "MaxStreamsPerIP 0 is not positive") || srv.Limits() != next {
		t.Errorf("SetLimits(%+v) = %v, Limits() = %+v; want an error naming MaxStreamsPerIP and no change", bad, err, srv.Limits())
	}
}
