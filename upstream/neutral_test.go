package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/marketgate/marketgate/hub"
	"github.com/marketgate/marketgate/internal/waitfor"
)

// These tests run the core against fakeDialect and a scripted exchange
// that behaves like OKX and Bybit rather than Binance: no stream in URLs,
// string request ids, one reply per stream without an id, string error
// codes, a client text heartbeat.

// scriptedExchange serves the symbol list and WebSocket connections. It
// answers each subscribed stream on its own; a stream named "SLOW-…" gets
// no answer the first time it is asked for.
type scriptedExchange struct {
	t    *testing.T
	addr string

	mu       sync.Mutex
	paths    []string   // request URIs of the WebSocket connections
	requests [][]string // the args of each request, in order
	ids      []string   // their ids
	pings    []time.Time
	slowSeen bool
}

func newScriptedExchange(t *testing.T) *scriptedExchange {
	x := &scriptedExchange{t: t}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	x.addr = ln.Addr().String()
	srv := &http.Server{Handler: x}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return x
}

func (x *scriptedExchange) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/instruments" {
		fmt.Fprint(w, `["BTC-USDT","BAD-USDT","SLOW-USDT"]`)
		return
	}
	x.mu.Lock()
	x.paths = append(x.paths, r.URL.RequestURI())
	x.mu.Unlock()
	conn, _, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		return
	}
	go x.serve(conn)
}

func (x *scriptedExchange) serve(conn net.Conn) {
	defer conn.Close()
	var wmu sync.Mutex
	send := func(s string) {
		wmu.Lock()
		defer wmu.Unlock()
		wsutil.WriteServerText(conn, []byte(s))
	}
	for {
		p, op, err := wsutil.ReadClientData(conn)
		if err != nil {
			return
		}
		if op != ws.OpText {
			continue
		}
		if string(p) == "ping" {
			x.mu.Lock()
			x.pings = append(x.pings, time.Now())
			x.mu.Unlock()
			send("pong")
			continue
		}
		var req struct {
			Op   string   `json:"op"`
			Args []string `json:"args"`
			ID   string   `json:"id"`
		}
		if err := json.Unmarshal(p, &req); err != nil {
			x.t.Errorf("exchange got %q, which is no request", p)
			return
		}
		x.mu.Lock()
		x.requests = append(x.requests, req.Args)
		x.ids = append(x.ids, req.ID)
		x.mu.Unlock()
		for _, arg := range req.Args {
			switch {
			case strings.HasPrefix(arg, "BAD"):
				send(`{"event":"error","code":"60012","msg":"Invalid request","arg":"` + arg + `"}`)
			case strings.HasPrefix(arg, "SLOW") && !x.slow():
			default:
				send(`{"event":"subscribe","arg":"` + arg + `"}`)
				send(`{"arg":"` + arg + `","data":{"n":1}}`)
			}
		}
	}
}

// slow reports whether a SLOW stream was asked for before, and notes it.
func (x *scriptedExchange) slow() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	seen := x.slowSeen
	x.slowSeen = true
	return seen
}

// messages collects what a feed publishes.
type messages struct {
	mu   sync.Mutex
	msgs []hub.Message
}

func (m *messages) Publish(_ context.Context, msg hub.Message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	msg.Data = slices.Clone(msg.Data)
	m.msgs = append(m.msgs, msg)
	return nil
}

func (m *messages) Flush(context.Context) error { return nil }

func (m *messages) of(stream string) []hub.Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []hub.Message
	for _, msg := range m.msgs {
		if msg.Stream == stream {
			out = append(out, msg)
		}
	}
	return out
}

func TestNeutralDialect(t *testing.T) {
	x := newScriptedExchange(t)
	pub := &messages{}
	f, err := New(Config{
		Dialect:      fakeDialect{},
		URL:          "ws://" + x.addr,
		RESTURL:      "http://" + x.addr,
		Publisher:    pub,
		ReplyTimeout: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	waitfor.Cond(t, 5*time.Second, f.Ready)
	streams := []string{"BTC-USDT.trades", "BAD-USDT.trades", "SLOW-USDT.ticker"}
	for _, s := range streams {
		if err := f.Validate(s); err != nil {
			t.Fatalf("Validate(%q) = %v", s, err)
		}
	}
	f.Subscribe(streams)

	// Answered stream by stream: BTC flows, BAD fails with the
	// exchange's code, SLOW (not answered) is asked for again alone.
	waitfor.Cond(t, 5*time.Second, func() error {
		if len(pub.of("fake:BTC-USDT.trades")) == 0 || len(pub.of("fake:BAD-USDT.trades")) == 0 ||
			len(pub.of("fake:SLOW-USDT.ticker")) == 0 {
			return fmt.Errorf("not every stream published")
		}
		return nil
	})
	if got := pub.of("fake:BTC-USDT.trades")[0]; string(got.Data) != `{"n":1}` || got.Conflate {
		t.Errorf("trade %+v; want its data, not conflatable", got)
	}
	if got := pub.of("fake:SLOW-USDT.ticker")[0]; !got.Conflate {
		t.Errorf("ticker %+v; want conflatable", got)
	}
	if got, want := pub.of("fake:BAD-USDT.trades")[0].Err, "exchange refused the stream: Invalid request (code 60012)"; got != want {
		t.Errorf("refused stream: Err %q; want %q", got, want)
	}
	x.mu.Lock()
	requests, ids, paths := slices.Clone(x.requests), slices.Clone(x.ids), slices.Clone(x.paths)
	x.mu.Unlock()
	want := [][]string{{"BAD-USDT.trades", "BTC-USDT.trades", "SLOW-USDT.ticker"}, {"SLOW-USDT.ticker"}}
	if !slices.EqualFunc(requests, want, slices.Equal) {
		t.Errorf("requests %q; want %q (answered streams are not asked for again)", requests, want)
	}
	if len(ids) != 2 || ids[0] == ids[1] || ids[0] == "" {
		t.Errorf("request ids %q; want two distinct string ids", ids)
	}
	if len(paths) != 1 || paths[0] != "/ws/public" {
		t.Errorf("connections to %q; want one, to /ws/public with no streams in the URL", paths)
	}

	// Idle: the writer sends the dialect's heartbeat, paced; "pong" is
	// read as the answer, not as a malformed message.
	waitfor.Cond(t, 5*time.Second, func() error {
		x.mu.Lock()
		defer x.mu.Unlock()
		if len(x.pings) < 3 {
			return fmt.Errorf("%d pings", len(x.pings))
		}
		return nil
	})
	x.mu.Lock()
	for i := 1; i < len(x.pings); i++ {
		if d := x.pings[i].Sub(x.pings[i-1]); d < 100*time.Millisecond {
			t.Errorf("pings %v apart; want about every 150 ms", d)
		}
	}
	x.mu.Unlock()
	st := f.Status()
	if st.Malformed != 0 {
		t.Errorf("%d malformed messages; want 0", st.Malformed)
	}
	if st.MessagesIn["trades"] != 1 || st.MessagesIn["ticker"] != 1 || st.MessagesIn["other"] < 4 {
		t.Errorf("messages in %v; want 1 trade, 1 ticker, replies and pongs as other", st.MessagesIn)
	}
}
