package downstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/marketgate/marketgate/downstream/downstreamtest"
	"github.com/marketgate/marketgate/hub"
	"github.com/marketgate/marketgate/internal/waitfor"
)

// fakeSource is a Source for these tests: it accepts keys of known symbols
// and records what the server wants. It stands in for the upstream router,
// which has tests of its own against the exchange simulator.
type fakeSource struct {
	mu     sync.Mutex
	wants  map[string]int // Want calls per key
	wanted map[string]bool
}

func newFakeSource() *fakeSource {
	return &fakeSource{wants: map[string]int{}, wanted: map[string]bool{}}
}

func (f *fakeSource) Validate(key string) error {
	ex, name, ok := strings.Cut(key, ":")
	if !ok || ex != "binance" && ex != "binance-futures" {
		return fmt.Errorf("invalid stream key %q", key)
	}
	sym, kind, ok := strings.Cut(name, "@")
	if !ok || (kind != "trade" && kind != "bookTicker" && kind != "kline_1m" && (kind != "depth" || ex != "binance-futures")) {
		return fmt.Errorf("invalid stream name %q", name)
	}
	if sym != "btcusdt" && sym != "ethusdt" {
		return fmt.Errorf("unknown symbol %q", sym)
	}
	return nil
}

func (f *fakeSource) Want(keys []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range keys {
		f.wants[k]++
		f.wanted[k] = true
	}
}

func (f *fakeSource) Unwant(keys []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range keys {
		f.wanted[k] = false
	}
}

func (f *fakeSource) state(key string) (wants int, wanted bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.wants[key], f.wanted[key]
}

type testEnv struct {
	srv *Server
	hub *hub.Memory
	src *fakeSource
	url string // ws://host:port
}

func startServer(t *testing.T, cfg Config) *testEnv {
	t.Helper()
	env := &testEnv{hub: hub.NewMemory(), src: newFakeSource()}
	if cfg.Hub == nil {
		cfg.Hub = env.hub
	}
	if cfg.Source == nil {
		cfg.Source = env.src
	}
	if cfg.MaxCommandsPerSecond == 0 {
		cfg.MaxCommandsPerSecond = 1000 // these tests send many commands quickly
	}
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	env.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	hs := httptest.NewServer(srv)
	env.url = "ws" + strings.TrimPrefix(hs.URL, "http")
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v; want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
		hs.Close()
	})
	waitfor.Cond(t, 2*time.Second, func() error {
		if !srv.running.Load() {
			return errors.New("not running")
		}
		return nil
	})
	return env
}

// waitSubscribers waits until key has n local subscribers: a URL's streams
// are joined just after the handshake response, which the client may read
// first.
func (env *testEnv) waitSubscribers(t *testing.T, key string, n int) {
	t.Helper()
	waitfor.Cond(t, 2*time.Second, func() error {
		for _, si := range env.srv.Streams() {
			if si.Stream == key && si.Subscribers == n {
				return nil
			}
		}
		return fmt.Errorf("%s has not %d subscribers: %v", key, n, env.srv.Streams())
	})
}

// expectJSON reads the next message and fails unless it is JSON equal to want.
func expectJSON(t *testing.T, c *downstreamtest.Client, want string) {
	t.Helper()
	got := c.Next()
	if !jsonEqual(got, []byte(want)) {
		t.Fatalf("got %s\nwant %s", got, want)
	}
}

// jsonEqual reports whether a and b are the same JSON value. A reply's
// positions (random epochs) are compared only when b has them.
func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	if !bytes.Contains(b, []byte(`"positions"`)) {
		if m, ok := x.(map[string]any); ok {
			if r, ok := m["result"].(map[string]any); ok {
				delete(r, "positions")
			}
		}
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

func publish(t *testing.T, h hub.Hub, stream string, seq uint64, data string) {
	t.Helper()
	if err := h.Publish(context.Background(), hub.Message{Stream: stream, Seq: seq, Data: []byte(data)}); err != nil {
		t.Fatal(err)
	}
	h.Flush(context.Background())
}

func TestNativeSubscribeReceiveList(t *testing.T) {
	env := startServer(t, Config{})
	c := downstreamtest.Dial(t, env.url+"/ws")
	c.Send(`{"op":"subscribe","id":1,"streams":["binance:btcusdt@trade","binance:ethusdt@bookTicker"]}`)
	expectJSON(t, c, `{"id":1,"result":{"streams":["binance:btcusdt@trade","binance:ethusdt@bookTicker"]}}`)

	// seq is the hub's position: 1 for the first message of the stream,
	// whatever the upstream's Seq.
	publish(t, env.hub, "binance:btcusdt@trade", 7, `{"e":"trade","t":42}`)
	got := c.Next()
	if want := `{"stream":"binance:btcusdt@trade","seq":1,"data":{"e":"trade","t":42}}`; string(got) != want {
		t.Fatalf("data message = %s; want %s", got, want)
	}
	env.hub.Publish(context.Background(), hub.Message{Stream: "binance:btcusdt@trade", Seq: 8, Gap: true, Data: []byte(`{}`)})
	env.hub.Flush(context.Background())
	if got, want := maskEpochs(c.Next()), `{"stream":"binance:btcusdt@trade","seq":2,"gap":true,"epoch":"E","data":{}}`; got != want {
		t.Fatalf("gap message = %s; want %s", got, want)
	}

	c.Send(`{"op":"list","id":"l"}`)
	expectJSON(t, c, `{"id":"l","result":{"streams":["binance:btcusdt@trade","binance:ethusdt@bookTicker"]}}`)
	c.Send(`{"op":"unsubscribe","id":3,"streams":["binance:btcusdt@trade"]}`)
	expectJSON(t, c, `{"id":3,"result":{"streams":["binance:btcusdt@trade"]}}`)
	c.Send(`{"op":"ping","id":4}`)
	expectJSON(t, c, `{"id":4,"result":"pong"}`)
	publish(t, env.hub, "binance:btcusdt@trade", 8, `{"e":"trade","t":43}`)
	publish(t, env.hub, "binance:ethusdt@bookTicker", 1, `{"u":1}`)
	if got := string(c.Next()); !strings.Contains(got, `"binance:ethusdt@bookTicker"`) {
		t.Fatalf("after unsubscribe got %s; want only the bookTicker stream", got)
	}
}

func TestNativeBadInputKeepsConnection(t *testing.T) {
	env := startServer(t, Config{MaxStreamsPerConn: 2})
	c := downstreamtest.Dial(t, env.url+"/ws")
	tests := []struct {
		name, send, code string
	}{
		{"malformed JSON", `{"op":"subscribe",`, CodeBadRequest},
		{"not an object", `[1,2]`, CodeBadRequest},
		{"unknown op", `{"op":"subscrib","id":1}`, CodeUnknownOp},
		{"missing op", `{"id":1}`, CodeBadRequest},
		{"bad id", `{"op":"ping","id":{"x":1}}`, CodeBadRequest},
		{"no streams", `{"op":"subscribe","id":1,"streams":[]}`, CodeBadRequest},
		{"invalid stream name", `{"op":"subscribe","id":1,"streams":["binance:btcusdt@tradez"]}`, CodeInvalidStream},
		{"unknown symbol", `{"op":"subscribe","id":1,"streams":["binance:btcusdt@trade","binance:foousdt@trade"]}`, CodeInvalidStream},
		{"unknown exchange", `{"op":"subscribe","id":1,"streams":["kraken:btcusd@trade"]}`, CodeInvalidStream},
		{"too many streams", `{"op":"subscribe","id":1,"streams":["binance:btcusdt@trade","binance:ethusdt@trade","binance:ethusdt@bookTicker"]}`, CodeTooManyStreams},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c.T = t
			c.Send(tc.send)
			var reply struct {
				Error *nativeError `json:"error"`
			}
			if err := json.Unmarshal(c.Next(), &reply); err != nil || reply.Error == nil {
				t.Fatalf("reply to %s is not an error (%v)", tc.send, err)
			}
			if reply.Error.Code != tc.code || reply.Error.Msg == "" {
				t.Fatalf("error = %+v; want code %s with a message", reply.Error, tc.code)
			}
			c.Send(`{"op":"ping","id":9}`)
			expectJSON(t, c, `{"id":9,"result":"pong"}`)
		})
	}
	c.T = t
	// The command that named an unknown symbol was applied not at all.
	c.Send(`{"op":"list","id":1}`)
	expectJSON(t, c, `{"id":1,"result":{"streams":[]}}`)
	for _, k := range []string{"binance:btcusdt@trade", "binance:foousdt@trade", "binance:btcusdt@tradez"} {
		if n, _ := env.src.state(k); n != 0 {
			t.Errorf("source was asked for %s %d times; want 0", k, n)
		}
	}
}

func TestNativeUnknownSymbolErrorNamesStreams(t *testing.T) {
	env := startServer(t, Config{})
	c := downstreamtest.Dial(t, env.url+"/ws")
	c.Send(`{"op":"subscribe","id":2,"streams":["binance:foousdt@trade"]}`)
	expectJSON(t, c, `{"id":2,"error":{"code":"invalid_stream","msg":"unknown symbol \"foousdt\"","streams":["binance:foousdt@trade"]}}`)
}

func TestSharedStreamWantedOnce(t *testing.T) {
	env := startServer(t, Config{})
	const key = "binance:btcusdt@trade"
	var cs []*downstreamtest.Client
	for i := range 3 {
		c := downstreamtest.Dial(t, env.url+"/ws")
		c.Send(fmt.Sprintf(`{"op":"subscribe","id":%d,"streams":[%q]}`, i, key))
		c.Next()
		cs = append(cs, c)
	}
	if n, wanted := env.src.state(key); n != 1 || !wanted {
		t.Fatalf("Want calls = %d, wanted = %v; want 1, true", n, wanted)
	}
	publish(t, env.hub, key, 1, `{"t":1}`)
	for _, c := range cs {
		c.Next()
	}
	// Two leave by unsubscribing, one by disconnecting.
	cs[0].Send(`{"op":"unsubscribe","id":1,"streams":["` + key + `"]}`)
	cs[0].Next()
	cs[1].Send(`{"op":"unsubscribe","id":1,"streams":["` + key + `"]}`)
	cs[1].Next()
	if _, wanted := env.src.state(key); !wanted {
		t.Fatal("stream unwanted while a subscriber remains")
	}
	cs[2].Close()
	waitfor.Cond(t, 2*time.Second, func() error {
		if _, wanted := env.src.state(key); wanted {
			return errors.New("still wanted")
		}
		return nil
	})
	if got := env.srv.Streams(); len(got) != 0 {
		t.Fatalf("Streams() = %v; want none", got)
	}
}

func TestDialect(t *testing.T) {
	env := startServer(t, Config{})

	t.Run("combined stream URL and live methods", func(t *testing.T) {
		c := downstreamtest.Dial(t, env.url+"/binance/stream?streams=btcusdt@trade")
		env.waitSubscribers(t, "binance:btcusdt@trade", 1)
		publish(t, env.hub, "binance:btcusdt@trade", 1, `{"e":"trade","t":1}`)
		if got, want := string(c.Next()), `{"stream":"btcusdt@trade","data":{"e":"trade","t":1}}`; got != want {
			t.Fatalf("combined message = %s; want %s", got, want)
		}
		c.Send(`{"method":"SUBSCRIBE","params":["ethusdt@bookTicker"],"id":1}`)
		if got, want := string(c.Next()), `{"result":null,"id":1}`; got != want {
			t.Fatalf("SUBSCRIBE reply = %s; want %s", got, want)
		}
		c.Send(`{"method":"LIST_SUBSCRIPTIONS","id":3}`)
		if got, want := string(c.Next()), `{"result":["btcusdt@trade","ethusdt@bookTicker"],"id":3}`; got != want {
			t.Fatalf("LIST_SUBSCRIPTIONS reply = %s; want %s", got, want)
		}
		c.Send(`{"method":"GET_PROPERTY","params":["combined"],"id":"abc"}`)
		if got, want := string(c.Next()), `{"result":true,"id":"abc"}`; got != want {
			t.Fatalf("GET_PROPERTY reply = %s; want %s", got, want)
		}
		c.Send(`{"method":"SET_PROPERTY","params":["combined",false],"id":5}`)
		if got, want := string(c.Next()), `{"result":null,"id":5}`; got != want {
			t.Fatalf("SET_PROPERTY reply = %s; want %s", got, want)
		}
		publish(t, env.hub, "binance:ethusdt@bookTicker", 1, `{"u":5,"s":"ETHUSDT"}`)
		if got, want := string(c.Next()), `{"u":5,"s":"ETHUSDT"}`; got != want {
			t.Fatalf("raw message after SET_PROPERTY false = %s; want %s", got, want)
		}
		c.Send(`{"method":"UNSUBSCRIBE","params":["ethusdt@bookTicker"],"id":null}`)
		if got, want := string(c.Next()), `{"result":null,"id":null}`; got != want {
			t.Fatalf("UNSUBSCRIBE reply = %s; want %s", got, want)
		}
	})

	t.Run("USD-M futures under its routes", func(t *testing.T) {
		paths := []string{"/binance-futures/public/ws/btcusdt@depth", "/binance-futures/market/stream?streams=btcusdt@depth", "/binance-futures/ws/btcusdt@depth"}
		var conns []*downstreamtest.Client
		for _, path := range paths {
			conns = append(conns, downstreamtest.Dial(t, env.url+path))
		}
		env.waitSubscribers(t, "binance-futures:btcusdt@depth", len(paths))
		publish(t, env.hub, "binance-futures:btcusdt@depth", 1, `{"e":"depthUpdate"}`)
		for i, c := range conns {
			if got := string(c.Next()); !strings.Contains(got, `{"e":"depthUpdate"}`) {
				t.Errorf("%s: message = %s", paths[i], got)
			}
			c.Close()
		}
	})

	t.Run("raw stream URL", func(t *testing.T) {
		c := downstreamtest.Dial(t, env.url+"/binance/ws/ethusdt@trade")
		env.waitSubscribers(t, "binance:ethusdt@trade", 1)
		publish(t, env.hub, "binance:ethusdt@trade", 1, `{"e":"trade","t":9}`)
		if got, want := string(c.Next()), `{"e":"trade","t":9}`; got != want {
			t.Fatalf("raw message = %s; want %s", got, want)
		}
	})

	t.Run("errors", func(t *testing.T) {
		c := downstreamtest.Dial(t, env.url+"/binance/ws")
		tests := []struct{ send, want string }{
			{`{"method":"SUBSCRIBE",`, `{"error":{"code":3,"msg":"Invalid JSON: unexpected end of JSON input"}}`},
			{`{"params":["btcusdt@trade"],"id":7}`, "{\"error\":{\"code\":2,\"msg\":\"Invalid request: missing field `method` at line 1 column 35\"},\"id\":7}"},
			{`{"method":"SUBSCRIBEX","id":8}`, "{\"error\":{\"code\":2,\"msg\":\"Invalid request: unknown variant `SUBSCRIBEX`, expected one of `SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY` at line 1 column 30\"},\"id\":8}"},
			{`{"method":"LIST_SUBSCRIPTIONS","id":1.5}`, `{"error":{"code":2,"msg":"Invalid request: request ID must be an unsigned integer"}}`},
			{`{"method":"SUBSCRIBE","params":["foousdt@trade"],"id":9}`, `{"error":{"code":2,"msg":"Invalid request: unknown symbol \"foousdt\""},"id":9}`},
			{`{"method":"SET_PROPERTY","params":["colour",true],"id":10}`, `{"error":{"code":0,"msg":"Unknown property"},"id":10}`},
			{`{"method":"SET_PROPERTY","params":["combined","yes"],"id":11}`, `{"error":{"code":1,"msg":"Invalid value type: expected Boolean"},"id":11}`},
			{`{"method":"GET_PROPERTY","params":[5],"id":12}`, `{"error":{"code":2,"msg":"Invalid request: property name must be a string"},"id":12}`},
		}
		for _, tc := range tests {
			c.T = t
			c.Send(tc.send)
			if got := string(c.Next()); got != tc.want {
				t.Errorf("reply to %s =\n%s\nwant\n%s", tc.send, got, tc.want)
			}
		}
		if n, _ := env.src.state("binance:foousdt@trade"); n != 0 {
			t.Errorf("source was asked for an unknown symbol")
		}
	})

	t.Run("handshake rejections", func(t *testing.T) {
		for _, path := range []string{"/binance/stream?streams=btcusdt@trade&timeUnit=MICROSECOND", "/binance/nope"} {
			if _, err := downstreamtest.TryDial(env.url+path, nil); err == nil {
				t.Errorf("dial %s succeeded; want an HTTP error", path)
			}
		}
	})

	// Binance opens a connection whatever names its URL holds; those that
	// are not streams carry nothing. Client libraries open /ws/<label>
	// and then send SUBSCRIBE.
	t.Run("names that are not streams", func(t *testing.T) {
		tests := []struct {
			path string
			want []string // LIST_SUBSCRIPTIONS
		}{
			{"/binance/ws/mylabel", nil},
			{"/binance/ws/foousdt@trade", nil},
			{"/binance/ws/foousdt@trade/btcusdt@trade", []string{"btcusdt@trade"}},
			{"/binance/stream?streams=label/ethusdt@bookTicker", []string{"ethusdt@bookTicker"}},
		}
		for _, tc := range tests {
			c := downstreamtest.Dial(t, env.url+tc.path)
			c.Send(`{"method":"LIST_SUBSCRIPTIONS","id":1}`)
			want, _ := json.Marshal(map[string]any{"result": tc.want, "id": 1})
			if tc.want == nil {
				want = []byte(`{"result":[],"id":1}`)
			}
			// A latest value may come first on a state stream.
			for {
				got := c.Next()
				if bytes.Contains(got, []byte(`"id":1`)) {
					if !jsonEqual(got, want) {
						t.Errorf("%s: LIST_SUBSCRIPTIONS = %s; want %s", tc.path, got, want)
					}
					break
				}
			}
			c.Send(`{"method":"SUBSCRIBE","params":["btcusdt@kline_1m"],"id":2}`)
			for {
				got := c.Next()
				if bytes.Contains(got, []byte(`"id":2`)) {
					if string(got) != `{"result":null,"id":2}` {
						t.Errorf("%s: SUBSCRIBE = %s", tc.path, got)
					}
					break
				}
			}
			c.Close()
		}
		if n, _ := env.src.state("binance:foousdt@trade"); n != 0 {
			t.Errorf("source was asked for an unknown symbol")
		}
	})
}

func TestPingIsAnswered(t *testing.T) {
	env := startServer(t, Config{})
	c := downstreamtest.Dial(t, env.url+"/ws")
	ws.WriteFrame(c.Conn(), ws.MaskFrame(ws.NewPingFrame([]byte("hi"))))
	hdr, p, err := c.NextFrame(5 * time.Second)
	if err != nil || hdr.OpCode != ws.OpPong || string(p) != "hi" {
		t.Fatalf("got frame %v %q, %v; want a pong with payload %q", hdr.OpCode, p, err, "hi")
	}
}

func TestSlowConsumerClosedOthersUnaffected(t *testing.T) {
	env := startServer(t, Config{WriteQueueBytes: 64 << 10, WriteTimeout: 30 * time.Second})
	const key = "binance:btcusdt@trade"
	slow := downstreamtest.Dial(t, env.url+"/ws")
	fast := downstreamtest.Dial(t, env.url+"/ws")
	for _, c := range []*downstreamtest.Client{slow, fast} {
		c.Send(`{"op":"subscribe","id":1,"streams":["` + key + `"]}`)
		c.Next()
	}
	// slow never reads; fast reads everything in the background and the
	// publisher never gets more than a few messages ahead of it.
	var received atomic.Int64
	readErr := make(chan error, 1)
	go func() {
		for {
			if _, err := fast.Read(10 * time.Second); err != nil {
				readErr <- err
				return
			}
			received.Add(1)
		}
	}()
	payload := `{"e":"trade","p":"` + strings.Repeat("1", 4000) + `"}`
	const most = 20000 // 80 MB: far beyond any socket buffer
	sent := 0
	for sent < most && env.srv.Stats().Closed["slow_consumer"] == 0 {
		publish(t, env.hub, key, uint64(sent+1), payload)
		sent++
		waitfor.Cond(t, 10*time.Second, func() error {
			select {
			case err := <-readErr:
				t.Fatalf("fast client: %v after %d messages", err, received.Load())
			default:
			}
			if int(received.Load()) < sent-4 {
				return fmt.Errorf("fast client has %d of %d", received.Load(), sent)
			}
			return nil
		})
	}
	if n := env.srv.Stats().Closed["slow_consumer"]; n != 1 {
		t.Fatalf("slow_consumer closes = %d after %d messages; want 1", n, sent)
	}
	waitfor.Cond(t, 5*time.Second, func() error {
		if int(received.Load()) != sent {
			return fmt.Errorf("fast client has %d of %d", received.Load(), sent)
		}
		return nil
	})
	if got := slow.ExpectClose(); got != StatusSlowConsumer {
		t.Fatalf("slow client close code = %d; want %d", got, StatusSlowConsumer)
	}
}

func TestHandshakeLimits(t *testing.T) {
	env := startServer(t, Config{MaxConns: 2, AllowedOrigins: []string{"https://app.example"}})
	if _, err := downstreamtest.TryDial(env.url+"/ws", http.Header{"Origin": {"https://evil.example"}}); err == nil {
		t.Fatal("dial with a foreign Origin succeeded")
	} else if !errors.Is(err, ws.StatusError(http.StatusForbidden)) {
		t.Fatalf("foreign Origin: err = %v; want 403", err)
	}
	downstreamtest.Dial(t, env.url+"/ws")
	c2, err := downstreamtest.TryDial(env.url+"/ws", http.Header{"Origin": {"https://app.example"}})
	if err != nil {
		t.Fatalf("allowed origin: %v", err)
	}
	defer c2.Close()
	if _, err := downstreamtest.TryDial(env.url+"/ws", nil); !errors.Is(err, ws.StatusError(http.StatusServiceUnavailable)) {
		t.Fatalf("third connection: err = %v; want 503", err)
	}
	if got := env.srv.Stats().Rejected; got["origin"] != 1 || got["max_conns"] != 1 {
		t.Fatalf("rejections = %v; want one origin and one max_conns", got)
	}
}

func TestShutdownClosesWithGoingAway(t *testing.T) {
	hubm := hub.NewMemory()
	srv, err := New(Config{Hub: hubm, Source: newFakeSource()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	hs := httptest.NewServer(srv)
	defer hs.Close()
	waitfor.Cond(t, 2*time.Second, func() error {
		if !srv.running.Load() {
			return errors.New("not running")
		}
		return nil
	})
	c := downstreamtest.Dial(t, "ws"+strings.TrimPrefix(hs.URL, "http")+"/ws")
	// The client reads the 101 just before the server registers the
	// connection; shut down only once it is registered.
	waitfor.Cond(t, 2*time.Second, func() error {
		if srv.ConnCount() != 1 {
			return errors.New("connection not registered")
		}
		return nil
	})
	cancel()
	if got := c.ExpectClose(); got != ws.StatusGoingAway {
		t.Fatalf("close code = %d; want 1001", got)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if n := srv.ConnCount(); n != 0 {
		t.Fatalf("%d connections left after Run returned", n)
	}
}

func TestStreamFailedUpstream(t *testing.T) {
	env := startServer(t, Config{})
	const failed, other = "binance:btcusdt@trade", "binance:ethusdt@trade"
	c := downstreamtest.Dial(t, env.url+"/ws")
	c.Send(`{"op":"subscribe","id":1,"streams":["` + failed + `","` + other + `"]}`)
	c.Next()
	d := downstreamtest.Dial(t, env.url+"/binance/ws/btcusdt@trade")
	env.waitSubscribers(t, failed, 2)

	env.hub.Publish(context.Background(), hub.Message{Stream: failed, Err: "the exchange refused it"})
	env.hub.Flush(context.Background())
	expectJSON(t, c, `{"stream":"binance:btcusdt@trade","error":{"code":"upstream_error","msg":"the exchange refused it"}}`)
	if got, want := string(d.Next()), `{"error":{"code":-1,"msg":"btcusdt@trade: the exchange refused it"}}`; got != want {
		t.Fatalf("dialect notice = %s; want %s", got, want)
	}
	c.Send(`{"op":"list","id":2}`)
	expectJSON(t, c, `{"id":2,"result":{"streams":["`+other+`"]}}`)
	if _, wanted := env.src.state(failed); wanted {
		t.Error("failed stream still wanted from the source")
	}
	if _, wanted := env.src.state(other); !wanted {
		t.Error("other stream no longer wanted")
	}
	publish(t, env.hub, failed, 9, `{"t":9}`)
	publish(t, env.hub, other, 1, `{"t":1}`)
	if got := string(c.Next()); !strings.Contains(got, other) {
		t.Fatalf("after the failure got %s; want only %s", got, other)
	}
	// The stream can be subscribed again.
	c.Send(`{"op":"subscribe","id":3,"streams":["` + failed + `"]}`)
	c.Next()
	if n, wanted := env.src.state(failed); n != 2 || !wanted {
		t.Errorf("after resubscribing: Want calls = %d, wanted = %v; want 2, true", n, wanted)
	}
}

// TestBurstWaitsForFlush checks that the stream messages of a burst are
// written when the hub ends it (Flush), all of them and in order, and that
// a burst of more than maxBurst frames is written without waiting for it.
func TestBurstWaitsForFlush(t *testing.T) {
	env := startServer(t, Config{WriteQueueBytes: 8 << 20})
	c := downstreamtest.Dial(t, env.url+"/ws")
	c.Send(`{"op":"subscribe","id":1,"streams":["binance:btcusdt@trade","binance:ethusdt@trade"]}`)
	c.Next()
	// The flush that wrote the reply may still be looping: it would take a
	// frame queued now, as it should.
	waitfor.Cond(t, 2*time.Second, func() error {
		for _, sc := range env.srv.snapshot() {
			sc.mu.Lock()
			writing := sc.writing
			sc.mu.Unlock()
			if writing {
				return errors.New("the reply's flush is still running")
			}
		}
		return nil
	})
	ctx := context.Background()
	burst := []struct {
		stream string
		seq    uint64
	}{{"binance:btcusdt@trade", 1}, {"binance:ethusdt@trade", 1}, {"binance:btcusdt@trade", 2}}
	for _, m := range burst {
		env.hub.Publish(ctx, hub.Message{Stream: m.stream, Seq: m.seq, Data: []byte(`{}`)})
	}
	if p, err := c.Read(200 * time.Millisecond); err == nil {
		t.Fatalf("got %s before the burst ended", p)
	}
	env.hub.Flush(ctx)
	for i, m := range burst {
		want := fmt.Sprintf(`{"stream":%q,"seq":%d,"data":{}}`, m.stream, m.seq)
		if got := string(c.Next()); got != want {
			t.Fatalf("message %d = %s; want %s", i, got, want)
		}
	}

	// One subscriber: one frame per message, so maxBurst messages fill a
	// burst, and the first arrives with no Flush.
	for seq := range uint64(maxBurst) {
		env.hub.Publish(ctx, hub.Message{Stream: burst[0].stream, Seq: 3 + seq, Data: []byte(`{}`)})
	}
	if got, want := string(c.Next()), fmt.Sprintf(`{"stream":%q,"seq":3,"data":{}}`, burst[0].stream); got != want {
		t.Fatalf("first message of a long burst = %s; want %s", got, want)
	}
}

// TestDrainRefusesNewClients checks that a draining server answers new
// handshakes with 503 while the clients it holds keep their streams.
func TestDrainRefusesNewClients(t *testing.T) {
	env := startServer(t, Config{})
	c := downstreamtest.Dial(t, env.url+"/ws")
	c.Send(`{"op":"subscribe","id":1,"streams":["binance:btcusdt@trade"]}`)
	c.Next()
	env.srv.Drain()
	if _, err := downstreamtest.TryDial(env.url+"/ws", nil); !errors.Is(err, ws.StatusError(http.StatusServiceUnavailable)) {
		t.Fatalf("dial while draining: %v; want a 503", err)
	}
	if got := env.srv.Stats().Rejected["draining"]; got != 1 {
		t.Errorf("rejected draining = %d; want 1", got)
	}
	publish(t, env.hub, "binance:btcusdt@trade", 1, `{"t":1}`)
	if got, want := string(c.Next()), `{"stream":"binance:btcusdt@trade","seq":1,"data":{"t":1}}`; got != want {
		t.Fatalf("held client got %s; want %s", got, want)
	}
}
