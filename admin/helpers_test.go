package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/marketgate/marketgate/cluster"
	"github.com/marketgate/marketgate/downstream"
	"github.com/marketgate/marketgate/upstream"
)

// fakeBackend is a Backend for these tests: it keeps pins and a fixed set
// of streams, feeds, nodes and clients. It stands in for gateway.Gateway's
// delegation to the node's parts, whose own packages test them; what is
// under test here is the HTTP layer above them. Each method fails with
// fail[name] when that is set.
type fakeBackend struct {
	mu      sync.Mutex
	pins    map[string]bool
	clients []downstream.ClientInfo
	fail    map[string]error
	// lastPage is the offset and limit of the last Clients call.
	lastPage [2]int
}

// A fixed instant, so that bodies can be compared.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)

func newFakeBackend() *fakeBackend {
	b := &fakeBackend{pins: map[string]bool{"binance:ethusdt@depth5@100ms": true}, fail: map[string]error{}}
	for id := uint64(1); id <= 3; id++ {
		b.clients = append(b.clients, downstream.ClientInfo{
			ID:             id,
			Remote:         fmt.Sprintf("192.0.2.%d:5000", id),
			Origin:         "https://app.example",
			Protocol:       downstream.ProtocolNative,
			Streams:        []string{"binance:btcusdt@trade"},
			QueueBytes:     int(id) * 10,
			ConnectedSince: t0,
		})
	}
	b.clients[2].Protocol, b.clients[2].Origin, b.clients[2].Streams = downstream.ProtocolBinance, "", nil
	b.clients[0].User, b.clients[1].User = "alice", "alice"
	return b
}

func (b *fakeBackend) err(op string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.fail[op]
}

// validate accepts <exchange>:<symbol>@<kind>… keys of binance.
func validate(key string) error {
	ex, name, ok := strings.Cut(key, ":")
	if !ok || ex != "binance" {
		return fmt.Errorf("invalid stream key %q: want binance:<stream name>", key)
	}
	if sym, _, ok := strings.Cut(name, "@"); !ok || sym == "" || strings.ContainsAny(name, "/ ") {
		return fmt.Errorf("invalid stream name %q", name)
	}
	return nil
}

func (b *fakeBackend) Streams(ctx context.Context) ([]StreamInfo, error) {
	if err := b.err("streams"); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	out := []StreamInfo{{Stream: "binance:btcusdt@trade", Subscribers: 2, Pinned: b.pins["binance:btcusdt@trade"]}}
	for k := range b.pins {
		if k != out[0].Stream {
			out = append(out, StreamInfo{Stream: k, Pinned: true})
		}
	}
	slices.SortFunc(out, func(x, y StreamInfo) int { return strings.Compare(x.Stream, y.Stream) })
	return out, nil
}

func (b *fakeBackend) Pin(ctx context.Context, key string) error {
	if err := b.err("pin"); err != nil {
		return err
	}
	if err := validate(key); err != nil {
		return Invalid(err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pins[key] = true
	return nil
}

func (b *fakeBackend) Unpin(ctx context.Context, key string) error {
	if err := b.err("unpin"); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.pins[key] {
		return NotFound("stream %q is not pinned", key)
	}
	delete(b.pins, key)
	return nil
}

func (b *fakeBackend) pinned(key string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pins[key]
}

func (b *fakeBackend) Upstreams(ctx context.Context) ([]upstream.Status, error) {
	if err := b.err("upstreams"); err != nil {
		return nil, err
	}
	// Every field set, and one feed with every optional field absent.
	return []upstream.Status{{
		Exchange: "binance", State: upstream.StateConnected, Streams: 3, PendingStreams: 1, Desired: 5,
		Failed:   []upstream.FailedStream{{Stream: "foousdt@trade", Error: "unknown symbol"}},
		Rejected: 1, Symbols: 1500, Connections: 2,
		Shards: []upstream.ShardStatus{{
			Endpoint: "/stream", Shard: 0, State: upstream.StateConnected, Assigned: 4, Limit: 1024,
			Streams: 3, PendingStreams: 1, Rotating: true, ConnectedSince: t0,
		}},
		ConnectedSince: t0, Reconnects: 2, Rotations: 1, HandoverOverflows: 1,
		Closes: map[int]int{1008: 2}, AttemptWaits: 1, LastError: "read: EOF", LastErrorAt: t0,
	}, {
		Exchange: "binance-futures", State: upstream.StateIdle,
	}}, nil
}

func (b *fakeBackend) Nodes(ctx context.Context) ([]cluster.NodeInfo, error) {
	if err := b.err("nodes"); err != nil {
		return nil, err
	}
	return []cluster.NodeInfo{
		{ID: "a", Heartbeat: t0, Demand: 12, Owns: []string{"binance"}},
		{ID: "b", Heartbeat: t0, Demand: 0}, // owns nothing: Owns is nil
	}, nil
}

func (b *fakeBackend) Clients(ctx context.Context, offset, limit int) ([]downstream.ClientInfo, int, error) {
	if err := b.err("clients"); err != nil {
		return nil, 0, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lastPage = [2]int{offset, limit}
	all := b.clients
	page := all[min(offset, len(all)):]
	page = page[:min(limit, len(page))]
	if len(page) == 0 {
		page = nil // as a Backend may: answered as []
	}
	return page, len(all), nil
}

func (b *fakeBackend) Disconnect(ctx context.Context, id uint64) (bool, error) {
	if err := b.err("disconnect"); err != nil {
		return false, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	i := slices.IndexFunc(b.clients, func(c downstream.ClientInfo) bool { return c.ID == id })
	if i < 0 {
		return false, nil
	}
	b.clients = slices.Delete(b.clients, i, i+1)
	return true, nil
}

func (b *fakeBackend) DisconnectUser(ctx context.Context, user string) (int, int64, error) {
	if err := b.err("disconnect user"); err != nil {
		return 0, 0, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(b.clients)
	b.clients = slices.DeleteFunc(b.clients, func(c downstream.ClientInfo) bool { return c.User == user })
	return n - len(b.clients), 0, nil
}

var _ Backend = (*fakeBackend)(nil)

// errRedisDown is a Backend failure the answer must not show.
var errRedisDown = errors.New("redis: dial tcp 10.0.0.5:6379: connection refused")

// metricsText is what the fake Metrics handler serves.
const metricsText = "# TYPE marketgate_up gauge\nmarketgate_up 1\n"

var fakeMetrics = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write([]byte(metricsText))
})

// newServer returns a Server with token, b (none when nil), the fake
// metrics, and cfg changed by with.
func newServer(t *testing.T, token string, b Backend, with func(*Config)) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	cfg := Config{
		Listener: ln,
		Token:    token,
		Drain:    func() {},
		Metrics:  fakeMetrics,
		Logger:   slog.New(slog.NewTextHandler(t.Output(), nil)),
	}
	if b != nil {
		cfg.Backend = b
	}
	if with != nil {
		with(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Remote addresses requests come from.
const (
	loopback = "127.0.0.1:5000"
	remote   = "10.1.2.3:5000"
)

// listenHost is the Host the test requests name: the listener's own.
const listenHost = "127.0.0.1:9090"

// newRequest returns a request as a legitimate client sends it: from
// remote address from, to listenHost, with the X-Marketgate-Admin
// header, and auth as its Authorization header (none when empty).
func newRequest(method, target, from, auth string) *http.Request {
	req := httptest.NewRequest(method, target, nil)
	req.RemoteAddr, req.Host = from, listenHost
	req.Header.Set("X-Marketgate-Admin", "1")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return req
}

// serve answers one request made by newRequest through the server's
// handler.
func serve(s *Server, method, target, from, auth string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	s.http.Handler.ServeHTTP(rec, newRequest(method, target, from, auth))
	return rec
}
