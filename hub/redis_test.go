package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/marketgate/marketgate/internal/redistest"
	"github.com/marketgate/marketgate/internal/waitfor"
	"github.com/redis/go-redis/v9"
)

// msgLog is a Receiver that keeps copies of what it receives, as the
// contract asks, and checks that every Receive is followed by a Flush.
type msgLog struct {
	mu        sync.Mutex
	msgs      []Message
	flushes   int
	unflushed int
}

func (l *msgLog) Receive(m Message) {
	m.Data = bytes.Clone(m.Data)
	l.mu.Lock()
	l.msgs = append(l.msgs, m)
	l.unflushed++
	l.mu.Unlock()
}

func (l *msgLog) Flush() {
	l.mu.Lock()
	l.flushes++
	l.unflushed = 0
	l.mu.Unlock()
}

func (l *msgLog) all() []Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.msgs)
}

// of returns the messages of stream, in the order received.
func (l *msgLog) of(stream string) []Message {
	var out []Message
	for _, m := range l.all() {
		if m.Stream == stream {
			out = append(out, m)
		}
	}
	return out
}

func (l *msgLog) flushCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.flushes
}

// settled fails unless every Receive has been followed by a Flush.
func (l *msgLog) settled() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.unflushed != 0 {
		return fmt.Errorf("%d messages received since the last Flush", l.unflushed)
	}
	return nil
}

// testProbe are probe settings that make the health tests quick.
const (
	testProbeInterval = 100 * time.Millisecond
	testProbeTimeout  = time.Second
)

// runHub makes a Redis hub from cfg (with quick probes and a test logger
// unless set), runs it until the test ends, and checks that Run returns
// nil then.
func runHub(t *testing.T, cfg RedisConfig) *Redis {
	t.Helper()
	h := newHub(t, cfg)
	startHub(t, h)
	return h
}

func newHub(t *testing.T, cfg RedisConfig) *Redis {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if cfg.ProbeInterval == 0 {
		cfg.ProbeInterval, cfg.ProbeTimeout = testProbeInterval, testProbeTimeout
	}
	h, err := NewRedis(cfg)
	if err != nil {
		t.Fatalf("NewRedis(%+v) = %v", cfg, err)
	}
	return h
}

func startHub(t *testing.T, h *Redis) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v; want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return within 10s of cancel")
		}
	})
}

// subCounter reports how many clients subscribe to a channel.
type subCounter func(ctx context.Context, channel string) (int64, error)

// standaloneCounter counts with PUBSUB NUMSUB.
func standaloneCounter(t *testing.T, srv *redistest.Server) subCounter {
	rc := redis.NewClient(srv.Options())
	t.Cleanup(func() { rc.Close() })
	return func(ctx context.Context, ch string) (int64, error) {
		m, err := rc.PubSubNumSub(ctx, ch).Result()
		return m[ch], err
	}
}

// clusterCounter counts with PUBSUB SHARDNUMSUB on every master: only the
// owner of the channel's slot has its subscribers.
func clusterCounter(t *testing.T, c *redistest.Cluster) subCounter {
	var rcs []*redis.Client
	for _, srv := range c.Servers() {
		rc := redis.NewClient(srv.Options())
		t.Cleanup(func() { rc.Close() })
		rcs = append(rcs, rc)
	}
	return func(ctx context.Context, ch string) (int64, error) {
		var n int64
		for _, rc := range rcs {
			m, err := rc.PubSubShardNumSub(ctx, ch).Result()
			if err != nil {
				return 0, err
			}
			n += m[ch]
		}
		return n, nil
	}
}

// waitSubscribers waits until every stream's channel on h has want
// subscribers in Redis.
func waitSubscribers(t *testing.T, h *Redis, count subCounter, want int64, streams ...string) {
	t.Helper()
	waitfor.Cond(t, 10*time.Second, func() error {
		for _, s := range streams {
			n, err := count(t.Context(), h.channel(s))
			if err != nil {
				return err
			}
			if n != want {
				return fmt.Errorf("channel %q has %d subscribers; want %d", h.channel(s), n, want)
			}
		}
		return nil
	})
}

// testMessages returns n messages of stream covering every field: random
// Data, Gap, Conflate, Final, and a final Err.
func testMessages(stream string, n int) []Message {
	rng := rand.New(rand.NewPCG(1, uint64(len(stream))))
	var out []Message
	for i := range n {
		m := Message{Stream: stream, Seq: uint64(i + 1), Gap: i%7 == 3, Conflate: i%3 == 1, Final: i%6 == 4, ID: EventID{Hi: int64(100 + i), Sub: int64(i % 2)}}
		// Random JSON of random length, with escapes and multi-byte
		// characters, as exchange events may carry.
		m.Data = fmt.Appendf(nil, `{"i":%d,"s":"\"\\é}","v":[`, i)
		for range rng.IntN(40) {
			m.Data = fmt.Appendf(m.Data, `%d,`, rng.Uint32())
		}
		m.Data = append(m.Data, "0]}"...)
		if i == n-1 {
			// Not numbered: it arrives with Seq 0.
			m.Data, m.Err, m.Seq = nil, "stream "+stream+" failed: symbol delisted", 0
		}
		out = append(out, m)
	}
	return out
}

func sameMessage(got, want Message) bool {
	return got.Stream == want.Stream && got.Seq == want.Seq && got.Gap == want.Gap &&
		got.Conflate == want.Conflate && got.Final == want.Final && got.ID == want.ID && got.Origin == want.Origin && got.EventTime == want.EventTime && got.Err == want.Err && bytes.Equal(got.Data, want.Data)
}

// checkMessages fails t unless l received exactly want of stream, in order.
func checkMessages(t *testing.T, name string, l *msgLog, stream string, want []Message) {
	t.Helper()
	got := l.of(stream)
	if len(got) != len(want) {
		t.Errorf("%s got %d messages of %q; want %d", name, len(got), stream, len(want))
		return
	}
	for i := range want {
		if !sameMessage(got[i], want[i]) {
			t.Errorf("%s message %d of %q = %+v; want %+v", name, i, stream, got[i], want[i])
			return
		}
	}
}

// publishAll publishes msgs through h, flushing every few, from one
// reused Data buffer that is overwritten after each Publish: receivers
// seeing the right bytes proves Publish kept no reference to it.
func publishAll(t *testing.T, h *Redis, msgs []Message) {
	t.Helper()
	ctx := t.Context()
	buf := make([]byte, 0, 512)
	for i, m := range msgs {
		buf = append(buf[:0], m.Data...)
		m.Data = buf
		if err := h.Publish(ctx, m); err != nil {
			t.Fatalf("Publish(%q, seq %d) = %v", m.Stream, m.Seq, err)
		}
		for j := range buf {
			buf[j] = 0xEE
		}
		if i%5 == 4 || i == len(msgs)-1 {
			if err := h.Flush(ctx); err != nil {
				t.Fatalf("Flush = %v", err)
			}
		}
	}
}

// testFanOut runs two hubs ("nodes") on one Redis, publishes from the
// first and checks that receivers on both get every message, in order,
// intact, and that each burst ends with Flush.
// It returns the publishing hub.
func testFanOut(t *testing.T, base RedisConfig, count subCounter, streams []string) *Redis {
	cfgA, cfgB := base, base
	cfgA.NodeID, cfgB.NodeID = "node-a", "node-b"
	a, b := runHub(t, cfgA), runHub(t, cfgB)
	ctx := t.Context()
	la, lb, lb2 := &msgLog{}, &msgLog{}, &msgLog{}
	for _, s := range streams {
		for _, sub := range []struct {
			h *Redis
			l *msgLog
		}{{a, la}, {b, lb}} {
			if err := sub.h.Subscribe(ctx, s, sub.l); err != nil {
				t.Fatalf("Subscribe(%q) = %v", s, err)
			}
		}
	}
	if err := b.Subscribe(ctx, streams[0], lb2); err != nil {
		t.Fatalf("Subscribe(%q) = %v", streams[0], err)
	}
	waitfor.Cond(t, 10*time.Second, a.Ready)
	waitfor.Cond(t, 10*time.Second, b.Ready)
	waitSubscribers(t, a, count, 2, streams...)

	// Interleave the streams, as an upstream would.
	want := map[string][]Message{}
	var all []Message
	const perStream = 25
	for _, s := range streams {
		want[s] = testMessages(s, perStream)
	}
	for i := range perStream {
		for _, s := range streams {
			all = append(all, want[s][i])
		}
	}
	publishAll(t, a, all)

	total := len(all)
	waitfor.Cond(t, 10*time.Second, func() error {
		for _, l := range []*msgLog{la, lb} {
			if n := len(l.all()); n < total {
				return fmt.Errorf("%d of %d messages delivered", n, total)
			}
			if err := l.settled(); err != nil {
				return err
			}
		}
		return nil
	})
	for _, s := range streams {
		checkMessages(t, "node-a", la, s, want[s])
		checkMessages(t, "node-b", lb, s, want[s])
	}
	waitfor.Cond(t, 10*time.Second, func() error {
		if n := len(lb2.all()); n < perStream {
			return fmt.Errorf("second receiver on node-b has %d of %d", n, perStream)
		}
		return lb2.settled()
	})
	checkMessages(t, "node-b second receiver", lb2, streams[0], want[streams[0]])

	if st := a.Stats(); st.Published != uint64(total) || st.PublishErrors != 0 || st.DecodeErrors != 0 {
		t.Errorf("publisher Stats = %+v; want Published %d and no errors", st, total)
	}
	if st := b.Stats(); st.Received != uint64(total) || st.DecodeErrors != 0 {
		t.Errorf("receiver Stats = %+v; want Received %d", st, total)
	}
	if fa, fb := la.flushCount(), lb.flushCount(); fa == 0 || fb == 0 {
		t.Errorf("flushes = %d, %d; want some", fa, fb)
	}
	return a
}

func TestRedisFanOut(t *testing.T) {
	srv := redistest.Start(t)
	testFanOut(t, RedisConfig{URL: srv.URL()}, standaloneCounter(t, srv),
		[]string{"binance:btcusdt@trade", "binance:ethusdt@depth5@100ms", "binance:!ticker@arr"})
}

func TestRedisClusterFanOut(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	count := clusterCounter(t, c)
	var streams []string
	groups := map[int]bool{}
	for _, sym := range []string{"btc", "eth", "bnb", "sol", "xrp", "ada", "doge", "trx", "ton", "link"} {
		s := "binance:" + sym + "usdt@trade"
		streams = append(streams, s)
		groups[groupOf(s, defaultRedisGroups)] = true
	}
	if len(groups) < 4 {
		t.Fatalf("streams fall in %d groups; want them spread over at least 4", len(groups))
	}
	h := testFanOut(t, RedisConfig{ClusterAddrs: c.Addrs()}, count, streams)

	// The groups live on more than one master: each stream's subscribers
	// are on the master that owns its group's slot.
	masters := map[string]bool{}
	for _, addr := range c.Addrs() {
		rc := redis.NewClient(&redis.Options{Addr: addr})
		for _, s := range streams {
			m, err := rc.PubSubShardNumSub(t.Context(), h.channel(s)).Result()
			if err != nil {
				t.Fatalf("PUBSUB SHARDNUMSUB on %s: %v", addr, err)
			}
			if m[h.channel(s)] > 0 {
				masters[addr] = true
			}
		}
		rc.Close()
	}
	if len(masters) < 2 {
		t.Errorf("the streams' subscriptions are all on %v; want at least 2 masters", masters)
	}

	// One connection per group used, plus the probe's home group, all
	// healthy.
	home := groupOf("node-a", defaultRedisGroups)
	groups[home] = true
	waitRoundTrips(t, h, 2)
	if err := h.Ready(); err != nil {
		t.Errorf("Ready = %v", err)
	}
	h.connsMu.Lock()
	var got []int
	for _, c := range h.conns {
		got = append(got, c.group)
	}
	h.connsMu.Unlock()
	if got[0] != home || len(got) != len(groups) {
		t.Errorf("connections of groups %v; want the home group %d first and one for each of %d groups", got, home, len(groups))
	}

	// A master down makes the hub unready, naming a group it serves.
	for _, srv := range c.Servers() {
		if masters[srv.Addr()] {
			srv.Kill()
			break
		}
	}
	waitfor.Cond(t, testProbeTimeout+time.Second, func() error {
		err := h.Ready()
		if err == nil || !strings.Contains(err.Error(), "redis: group ") {
			return fmt.Errorf("Ready = %v; want a group's error", err)
		}
		return nil
	})
	t.Logf("Ready with a master down: %v", h.Ready())
}

// TestRedisCredentials runs the fan-out on servers that need a password
// or TLS with a client certificate: every connection of the hub, the
// subscriber connections included, carries them.
func TestRedisCredentials(t *testing.T) {
	streams := []string{"binance:btcusdt@trade", "binance:ethusdt@trade", "binance:solusdt@trade"}
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"password standalone, URL", func(t *testing.T) {
			srv := redistest.StartWith(t, redistest.Config{Password: "s3cret"})
			testFanOut(t, RedisConfig{URL: srv.URL()}, standaloneCounter(t, srv), streams)
		}},
		{"tls and password standalone, Options", func(t *testing.T) {
			srv := redistest.StartWith(t, redistest.Config{Password: "s3cret", TLS: true})
			opt, err := redis.ParseURL(srv.URL())
			if err != nil {
				t.Fatal(err)
			}
			opt.TLSConfig = srv.TLS().ClientConfig()
			testFanOut(t, RedisConfig{Options: opt}, standaloneCounter(t, srv), streams)
		}},
		{"password cluster, ClusterOptions", func(t *testing.T) {
			c := redistest.StartClusterWith(t, 3, redistest.Config{Password: "s3cret"})
			opt, err := redis.ParseClusterURL(c.URL())
			if err != nil {
				t.Fatal(err)
			}
			testFanOut(t, RedisConfig{ClusterOptions: opt}, clusterCounter(t, c), streams)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}
}

// TestRedisWrongPassword: a hub with the wrong password is not ready, and
// Ready's error is go-redis's authentication error, which /readyz turns
// into its category.
func TestRedisWrongPassword(t *testing.T) {
	srv := redistest.StartWith(t, redistest.Config{Password: "s3cret"})
	c := redistest.StartClusterWith(t, 3, redistest.Config{Password: "s3cret"})
	for _, cfg := range []RedisConfig{
		{URL: "redis://:wrong@" + srv.Addr() + "/0"},
		{ClusterOptions: &redis.ClusterOptions{Addrs: c.Addrs(), Password: "wrong"}},
	} {
		h := runHub(t, cfg)
		if err := h.Subscribe(t.Context(), "x:s", &msgLog{}); err != nil {
			t.Fatal(err)
		}
		waitfor.Cond(t, 10*time.Second, func() error {
			if err := h.Ready(); !redis.IsAuthError(err) {
				return fmt.Errorf("Ready = %v; want an authentication error", err)
			}
			return nil
		})
		t.Logf("Ready = %v", h.Ready())
	}
}

func TestRedisUnsubscribe(t *testing.T) {
	srv := redistest.Start(t)
	count := standaloneCounter(t, srv)
	h := runHub(t, RedisConfig{URL: srv.URL(), NodeID: "n"})
	ctx := t.Context()
	const s = "binance:btcusdt@trade"
	l1, l2 := &msgLog{}, &msgLog{}
	h.Subscribe(ctx, s, l1)
	h.Subscribe(ctx, s, l1) // no-op
	h.Subscribe(ctx, s, l2)
	waitSubscribers(t, h, count, 1, s)

	msgs := testMessages(s, 4)
	publishAll(t, h, msgs[:1])
	waitfor.Cond(t, 10*time.Second, func() error {
		if len(l1.all()) < 1 || len(l2.all()) < 1 {
			return errors.New("first message not delivered to both")
		}
		return nil
	})

	// Not the last receiver: delivery to l1 stops at once, the Redis
	// subscription stays.
	h.Unsubscribe(ctx, s, l1)
	h.Unsubscribe(ctx, s, l1)         // no-op
	h.Unsubscribe(ctx, "unknown", l1) // ignored
	publishAll(t, h, msgs[1:2])
	waitfor.Cond(t, 10*time.Second, func() error {
		if n := len(l2.all()); n < 2 {
			return fmt.Errorf("l2 has %d messages; want 2", n)
		}
		return nil
	})
	checkMessages(t, "l1", l1, s, msgs[:1])
	checkMessages(t, "l2", l2, s, msgs[:2])

	// The last receiver: the Redis subscription goes too.
	h.Unsubscribe(ctx, s, l2)
	waitSubscribers(t, h, count, 0, s)
	before := h.Stats().Received
	publishAll(t, h, msgs[2:])
	// The probe still round-trips, so the hub would have received the
	// messages by the time two more probes have.
	waitRoundTrips(t, h, 2)
	if got := h.Stats().Received; got != before {
		t.Errorf("Received went from %d to %d after the last Unsubscribe", before, got)
	}
	checkMessages(t, "l2", l2, s, msgs[:2])
}

// waitRoundTrips waits until n probes published after the call came back.
func waitRoundTrips(t *testing.T, h *Redis, n int) {
	t.Helper()
	h.connsMu.Lock()
	c := h.conns[0]
	h.connsMu.Unlock()
	start := time.Now()
	waitfor.Cond(t, 10*time.Second, func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.lastAck.Sub(start) < time.Duration(n)*testProbeInterval {
			return errors.New("probes not back yet")
		}
		return nil
	})
}

func TestRedisSubscribeAroundRunStart(t *testing.T) {
	srv := redistest.Start(t)
	count := standaloneCounter(t, srv)
	h := newHub(t, RedisConfig{URL: srv.URL(), NodeID: "n"})
	ctx := t.Context()
	before, after := &msgLog{}, &msgLog{}
	if err := h.Subscribe(ctx, "x:before", before); err != nil {
		t.Fatal(err)
	}
	if err := h.Ready(); err == nil || err.Error() != "redis: starting" {
		t.Errorf("Ready before Run = %v; want redis: starting", err)
	}
	startHub(t, h)
	if err := h.Subscribe(ctx, "x:after", after); err != nil {
		t.Fatal(err)
	}
	waitSubscribers(t, h, count, 1, "x:before", "x:after")
	want := []Message{{Stream: "x:before", Seq: 1, Data: []byte(`{"b":1}`)}, {Stream: "x:after", Seq: 1, Data: []byte(`["a"]`)}}
	publishAll(t, h, want)
	waitfor.Cond(t, 10*time.Second, func() error {
		if len(before.all()) < 1 || len(after.all()) < 1 {
			return errors.New("not delivered yet")
		}
		return nil
	})
	checkMessages(t, "before", before, "x:before", want[:1])
	checkMessages(t, "after", after, "x:after", want[1:])
}

// TestRedisOutage kills Redis under a running hub: Ready must fail within
// ProbeTimeout+1s, Subscribe and Unsubscribe must not block meanwhile, and
// after a restart data must flow again within 5s, with every subscription
// (the ones made during the outage too) restored by the hub itself.
func TestRedisOutage(t *testing.T) {
	srv := redistest.Start(t)
	count := standaloneCounter(t, srv)
	h := runHub(t, RedisConfig{URL: srv.URL(), NodeID: "n"})
	ctx := t.Context()
	l := &msgLog{}
	const old, added, dropped = "x:old", "x:added", "x:dropped"
	h.Subscribe(ctx, old, l)
	h.Subscribe(ctx, dropped, l)
	waitfor.Cond(t, 10*time.Second, h.Ready)
	waitSubscribers(t, h, count, 1, old, dropped)

	srv.Kill()
	killed := time.Now()
	waitfor.Cond(t, testProbeTimeout+time.Second, func() error {
		if h.Ready() == nil {
			return errors.New("still ready with Redis killed")
		}
		return nil
	})
	t.Logf("Ready after kill (%v): %v", time.Since(killed).Round(time.Millisecond), h.Ready())

	// Subscribe and Unsubscribe only touch memory. The bound is loose for
	// a loaded machine running the race detector; a network wait would
	// take a dial timeout.
	const bound = 50 * time.Millisecond
	for i := range 20 {
		other := &msgLog{}
		for _, f := range []func() error{
			func() error { return h.Subscribe(ctx, fmt.Sprintf("x:churn%d", i), other) },
			func() error { return h.Unsubscribe(ctx, fmt.Sprintf("x:churn%d", i), other) },
		} {
			start := time.Now()
			if err := f(); err != nil {
				t.Fatalf("call during outage = %v", err)
			}
			if d := time.Since(start); d > bound {
				t.Errorf("Subscribe/Unsubscribe took %v with Redis down; want < %v", d, bound)
			}
		}
	}
	start := time.Now()
	h.Subscribe(ctx, added, l)
	h.Unsubscribe(ctx, dropped, l)
	if d := time.Since(start); d > bound {
		t.Errorf("Subscribe/Unsubscribe took %v with Redis down; want < %v", d, bound)
	}
	// The hub tried the change against the dead server: after the restart
	// it must come from the hub's own retry or go-redis's resubscribe.
	waitfor.Cond(t, 5*time.Second, func() error {
		if h.Stats().SubscribeErrors == 0 {
			return errors.New("no subscribe attempt failed yet")
		}
		return nil
	})

	srv.Restart(t)
	restarted := time.Now()
	seq := uint64(0)
	waitfor.Cond(t, 5*time.Second, func() error {
		seq++
		// Errors are expected until the publishing connection is back.
		_ = h.Publish(ctx, Message{Stream: old, Seq: seq, Data: []byte(`{}`)})
		_ = h.Publish(ctx, Message{Stream: added, Seq: seq, Data: []byte(`{}`)})
		_ = h.Flush(ctx)
		if len(l.of(old)) == 0 || len(l.of(added)) == 0 {
			return fmt.Errorf("after restart: %d messages of %q, %d of %q", len(l.of(old)), old, len(l.of(added)), added)
		}
		return nil
	})
	t.Logf("data flowing %v after restart", time.Since(restarted).Round(time.Millisecond))
	waitfor.Cond(t, 5*time.Second, h.Ready)
	waitSubscribers(t, h, count, 0, dropped, "x:churn0", "x:churn19")
}

// TestRedisChurn subscribes and unsubscribes from many goroutines while
// messages flow, then checks that Redis ends up subscribed to exactly the
// streams that still have receivers.
// TestRedisFlushNotSent: an empty Flush says ErrNotSent while the last
// send failed, and nil otherwise, so that a publisher logs "recovered"
// only once a send went through.
func TestRedisFlushNotSent(t *testing.T) {
	srv := redistest.Start(t)
	h := runHub(t, RedisConfig{URL: srv.URL(), NodeID: "n"})
	ctx := t.Context()
	msg := Message{Stream: "x:s", Seq: 1, Data: []byte(`{}`)}
	send := func() error {
		if err := h.Publish(ctx, msg); err != nil {
			return err
		}
		return h.Flush(ctx)
	}
	if err := send(); err != nil {
		t.Fatalf("Publish and Flush = %v", err)
	}
	if err := h.Flush(ctx); err != nil {
		t.Fatalf("empty Flush after a send = %v; want nil", err)
	}
	srv.Kill()
	if err := send(); err == nil || errors.Is(err, ErrNotSent) {
		t.Fatalf("Publish and Flush with Redis down = %v; want the send's error", err)
	}
	for range 3 {
		if err := h.Flush(ctx); !errors.Is(err, ErrNotSent) {
			t.Fatalf("empty Flush after a failed send = %v; want ErrNotSent", err)
		}
	}
	srv.Restart(t)
	waitfor.Cond(t, 10*time.Second, send)
	if err := h.Flush(ctx); err != nil {
		t.Fatalf("empty Flush after a send went through = %v; want nil", err)
	}
}

func TestRedisChurn(t *testing.T) {
	srv := redistest.Start(t)
	count := standaloneCounter(t, srv)
	h := runHub(t, RedisConfig{URL: srv.URL(), NodeID: "n", BatchSize: 3})
	ctx := t.Context()
	streams := make([]string, 12)
	for i := range streams {
		streams[i] = fmt.Sprintf("x:s%d", i)
	}
	logs := make([]*msgLog, 6)
	var wg sync.WaitGroup
	for i := range logs {
		logs[i] = &msgLog{}
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 2))
			for range 300 {
				s := streams[rng.IntN(len(streams))]
				if rng.IntN(2) == 0 {
					h.Subscribe(ctx, s, logs[i])
				} else {
					h.Unsubscribe(ctx, s, logs[i])
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 200 {
			h.Publish(ctx, Message{Stream: streams[i%len(streams)], Seq: uint64(i), Data: []byte(`{}`)})
			if i%10 == 9 {
				h.Flush(ctx)
			}
		}
	})
	wg.Wait()
	// Leave receivers on the even streams only.
	for i, s := range streams {
		for _, l := range logs {
			if i%2 == 0 && l == logs[0] {
				h.Subscribe(ctx, s, l)
			} else {
				h.Unsubscribe(ctx, s, l)
			}
		}
	}
	for i, s := range streams {
		waitSubscribers(t, h, count, int64(1-i%2), s)
	}
	for _, l := range logs {
		waitfor.Cond(t, 5*time.Second, l.settled)
	}
}

func TestRedisMalformed(t *testing.T) {
	srv := redistest.Start(t)
	count := standaloneCounter(t, srv)
	h := runHub(t, RedisConfig{URL: srv.URL(), NodeID: "n"})
	ctx := t.Context()
	const s = "x:s"
	l := &msgLog{}
	h.Subscribe(ctx, s, l)
	waitSubscribers(t, h, count, 1, s)
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rc.Close()
	bad := []string{
		"",
		"{\"json\":true}",
		"\x02\x00\x01\x09x:s", // stream length beyond the payload
		string(appendFrame(nil, Message{Stream: "x:other", Seq: 1, Data: []byte(`{}`)})), // frame of another stream
		// Whoever can PUBLISH could otherwise reach every browser with:
		string(appendFrame(nil, Message{Stream: s, Seq: 2, Data: []byte("{\"p\":\"\xff\xfe\"}")})), // invalid UTF-8
		string(appendFrame(nil, Message{Stream: s, Seq: 3, Data: []byte(`{"p":"1"},"stream":"binance:ethusdt@trade","x":{`)})),
		string(appendFrame(nil, Message{Stream: s, Seq: 4})), // no data: "data":}
		string(appendFrame(nil, Message{Stream: s, Seq: 5, Data: []byte(`{"p":"1"]`)})),
		string(appendFrame(nil, Message{Stream: s, Seq: 6, Err: "bad \xff"})),
		"\x03\x001:a\"b:\x03x:s{}", // an epoch that would break the browser's JSON
	}
	for _, p := range bad {
		if err := rc.Publish(ctx, h.channel(s), p).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// The good message is the stream's first: position 1.
	publishAll(t, h, []Message{{Stream: s, Seq: 7, Data: []byte(`{"good":true}`)}})
	waitfor.Cond(t, 10*time.Second, func() error {
		if len(l.all()) < 1 {
			return errors.New("good message not delivered")
		}
		return nil
	})
	checkMessages(t, "receiver", l, s, []Message{{Stream: s, Seq: 1, Data: []byte(`{"good":true}`)}})
	if got := h.Stats().DecodeErrors; got != uint64(len(bad)) {
		t.Errorf("DecodeErrors = %d; want %d", got, len(bad))
	}
}

func TestRedisReadyStopped(t *testing.T) {
	srv := redistest.Start(t)
	h := newHub(t, RedisConfig{URL: srv.URL(), NodeID: "n"})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	waitfor.Cond(t, 10*time.Second, h.Ready)
	if err := h.Run(ctx); err == nil {
		t.Error("second Run = nil; want an error")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if err := h.Ready(); err == nil || err.Error() != "redis: stopped" {
		t.Errorf("Ready after Run = %v; want redis: stopped", err)
	}
	if err := h.Publish(t.Context(), Message{Stream: "x", Seq: 1}); err != nil {
		t.Errorf("Publish after Run = %v; want nil (batched)", err)
	}
	if err := h.Flush(t.Context()); err == nil {
		t.Error("Flush after Run = nil; want an error")
	}
}

// TestRedisLateServer starts the hub before Redis: Ready says why it is
// not ready, and once Redis is up the hub gets ready and delivers without
// help.
func TestRedisLateServer(t *testing.T) {
	srv := redistest.Start(t)
	srv.Kill()
	h := runHub(t, RedisConfig{URL: srv.URL(), NodeID: "n"})
	l := &msgLog{}
	h.Subscribe(t.Context(), "x:s", l)
	waitfor.Cond(t, 5*time.Second, func() error {
		err := h.Ready()
		if err == nil || !strings.Contains(err.Error(), "connection refused") {
			return fmt.Errorf("Ready = %v; want a connection refused error", err)
		}
		return nil
	})
	srv.Restart(t)
	waitfor.Cond(t, 5*time.Second, h.Ready)
	waitSubscribers(t, h, standaloneCounter(t, srv), 1, "x:s")
	publishAll(t, h, []Message{{Stream: "x:s", Seq: 1, Data: []byte(`{}`)}})
	waitfor.Cond(t, 5*time.Second, func() error {
		if len(l.all()) == 0 {
			return errors.New("not delivered")
		}
		return nil
	})
}

func TestNewRedisConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     RedisConfig
		wantErr string
	}{
		{"neither", RedisConfig{}, "exactly one"},
		{"both", RedisConfig{URL: "redis://127.0.0.1:1/0", ClusterAddrs: []string{"127.0.0.1:1"}}, "exactly one"},
		{"none", RedisConfig{}, "exactly one"},
		{"options and cluster options", RedisConfig{Options: &redis.Options{}, ClusterOptions: &redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}}}, "exactly one"},
		{"cluster options without addrs", RedisConfig{ClusterOptions: &redis.ClusterOptions{}}, "no Addrs"},
		{"bad url keeps its password", RedisConfig{URL: "redis://u:pw@127.0.0.1:x/0"}, "parse URL"},
		{"options ok", RedisConfig{Options: &redis.Options{Addr: "127.0.0.1:1", Password: "pw"}}, ""},
		{"cluster options ok", RedisConfig{ClusterOptions: &redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}, Password: "pw"}}, ""},
		{"bad url", RedisConfig{URL: "http://127.0.0.1:1"}, "parse URL"},
		{"timeout not above interval", RedisConfig{URL: "redis://127.0.0.1:1/0", ProbeInterval: time.Second, ProbeTimeout: time.Second}, "must exceed"},
		{"groups", RedisConfig{ClusterAddrs: []string{"127.0.0.1:1"}, Groups: -1}, "Groups"},
		{"brace prefix", RedisConfig{ClusterAddrs: []string{"127.0.0.1:1"}, Prefix: "mg{x}:"}, "brace"},
		{"batch", RedisConfig{URL: "redis://127.0.0.1:1/0", BatchSize: -1}, "BatchSize"},
		{"streams", RedisConfig{URL: "redis://127.0.0.1:1/0", MaxStreams: -1}, "MaxStreams"},
		{"batch bytes", RedisConfig{URL: "redis://127.0.0.1:1/0", MaxBatchBytes: -1}, "MaxBatchBytes"},
		{"history ttl", RedisConfig{URL: "redis://127.0.0.1:1/0", HistoryTTL: -time.Second}, "HistoryTTL"},
		{"history ttl under a millisecond", RedisConfig{URL: "redis://127.0.0.1:1/0", HistoryTTL: time.Microsecond}, "HistoryTTL"},
		{"no history ok", RedisConfig{URL: "redis://127.0.0.1:1/0", HistorySize: -1}, ""},
		{"standalone ok", RedisConfig{URL: "redis://127.0.0.1:1/0"}, ""},
		{"cluster ok", RedisConfig{ClusterAddrs: []string{"127.0.0.1:1"}, Groups: 4}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := NewRedis(tc.cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("NewRedis = %v; want an error containing %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "pw") {
					t.Fatalf("NewRedis = %v; the error shows the password", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewRedis = %v", err)
			}
			defer h.client.Close()
			if tc.cfg.Options != nil || tc.cfg.ClusterOptions != nil {
				// The hub's client has the given credentials, on its
				// own copy of the options, which never retries.
				var pw string
				var retries int
				switch o := h.client.(type) {
				case *redis.Client:
					pw, retries = o.Options().Password, o.Options().MaxRetries
				case *redis.ClusterClient:
					pw, retries = o.Options().Password, o.Options().MaxRetries
				}
				if pw != "pw" || retries != -1 && retries != 0 {
					t.Errorf("client password %q, MaxRetries %d; want \"pw\" and no retries", pw, retries)
				}
				if tc.cfg.Options != nil && tc.cfg.Options.MaxRetries != 0 || tc.cfg.ClusterOptions != nil && tc.cfg.ClusterOptions.MaxRetries != 0 {
					t.Error("NewRedis changed the caller's options")
				}
			}
			c := h.cfg
			if c.Prefix != defaultRedisPrefix || c.ProbeInterval != defaultRedisProbeInterval ||
				c.ProbeTimeout != defaultRedisProbeTimeout || c.NodeID == "" || c.Logger == nil {
				t.Errorf("defaults not applied: %+v", c)
			}
		})
	}
}

func TestRedisSubscribeLimits(t *testing.T) {
	h, err := NewRedis(RedisConfig{URL: "redis://127.0.0.1:1/0", MaxStreams: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer h.client.Close()
	ctx := t.Context()
	l := &msgLog{}
	tests := []struct {
		stream string
		want   error // nil, ErrTooManyStreams, or errAny
	}{
		{"a:1", nil},
		{"a:2", nil},
		{"a:1", nil}, // known stream: fine at the limit
		{"a:3", ErrTooManyStreams},
		{"probe:n", errAny},
	}
	for _, tc := range tests {
		err := h.Subscribe(ctx, tc.stream, l)
		switch {
		case tc.want == nil && err != nil,
			tc.want == errAny && err == nil,
			tc.want == ErrTooManyStreams && !errors.Is(err, ErrTooManyStreams):
			t.Errorf("Subscribe(%q) = %v; want %v", tc.stream, err, tc.want)
		}
	}
	h.Unsubscribe(ctx, "a:2", l)
	if err := h.Subscribe(ctx, "a:3", l); err != nil {
		t.Errorf("Subscribe after Unsubscribe = %v", err)
	}
}

var errAny = errors.New("any error")

func TestGroupOfStable(t *testing.T) {
	// Every node of a cluster must map streams to the same groups, across
	// versions: these values must never change.
	tests := []struct {
		stream string
		groups int
		want   int
	}{
		{"", 16, 5},
		{"binance:btcusdt@trade", 16, 14},
		{"binance:ethusdt@depth5@100ms", 16, 15},
		{"binance:btcusdt@trade", 1, 0},
		{"binance:btcusdt@trade", 1000, 462},
	}
	for _, tc := range tests {
		if got := groupOf(tc.stream, tc.groups); got != tc.want {
			t.Errorf("groupOf(%q, %d) = %d; want %d", tc.stream, tc.groups, got, tc.want)
		}
	}
}

func TestFrameRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		msg  Message
	}{
		{"empty object", Message{Data: []byte(`{}`)}},
		{"data", Message{Stream: "binance:btcusdt@trade", Seq: 1, Data: []byte(`{"e":"trade","p":"1.0"}`)}},
		{"flags", Message{Stream: "s", Seq: 300, Gap: true, Conflate: true, Data: []byte(`[1,2]`)}},
		{"max seq", Message{Stream: "s", Seq: ^uint64(0), Data: []byte(`{"x":null}`)}},
		{"error", Message{Stream: "binance:x@trade", Seq: 9, Gap: true, Err: "invalid symbol"}},
		{"binary stream, big data", Message{Stream: "\x00\xff:{g1}", Seq: 2, Data: depthData(70000)}},
		{"long stream", Message{Stream: strings.Repeat("s", 200), Seq: 2, Data: []byte(`[]`)}},
		{"event id", Message{Stream: "s", Seq: 3, ID: EventID{Hi: 4_000_000_123, Sub: 1700000000000}, Data: []byte(`{"t":1}`)}},
		{"event id, hi only", Message{Stream: "s", Seq: 3, ID: EventID{Hi: 1}, Data: []byte(`{}`)}},
		{"event id with prev", Message{Stream: "s", Seq: 3, ID: EventID{Hi: 77, Prev: 76}, Data: []byte(`{}`)}},
		{"origin", Message{Stream: "s", Seq: 3, Origin: 1 << 40, ID: EventID{Hi: 9}, Data: []byte(` {"o":[{}]} `)}},
		{"event time", Message{Stream: "s", Seq: 3, EventTime: 1_700_000_000_123_456, Data: []byte(`{"E":1700000000123456}`)}},
		{"final", Message{Stream: "binance:btcusdt@kline_1m", Seq: 8, Conflate: true, Final: true, ID: EventID{Hi: 1672515780000, Sub: 1672515839999},
			Data: []byte(`{"e":"kline","k":{"t":1672515780000,"x":true}}`)}},
		{"not final", Message{Stream: "binance:btcusdt@kline_1m", Seq: 7, Conflate: true, Data: []byte(`{"e":"kline","k":{"x":false}}`)}},
		{"everything", Message{Stream: "s", Seq: 5, Gap: true, Conflate: true, Final: true, Origin: 7,
			ID: EventID{Hi: 9, Sub: 2, Prev: 8}, EventTime: 1, Data: []byte(`{"all":"\u00e9\"}"}`)}},
		{"epoch", Message{Stream: "s", Seq: 1234, Epoch: "ab3k9zzq", Data: []byte(`{}`)}},
		{"longest epoch", Message{Stream: "s", Seq: 1, Epoch: strings.Repeat("Az09_-", maxEpochLen/6), Origin: 3, Data: []byte(`{}`)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			frame := appendFrame([]byte("junk"), tc.msg)[4:]
			got, err := decodeFrame(string(frame))
			if err != nil {
				t.Fatalf("decodeFrame(appendFrame(%+v)) = %v", tc.msg, err)
			}
			if !sameMessage(got, tc.msg) || got.Epoch != tc.msg.Epoch {
				t.Errorf("decodeFrame(appendFrame(m)) = %+v; want %+v", got, tc.msg)
			}
		})
	}
	// The header the publish script writes: decimal seq and epoch before
	// the body Go encodes.
	m0 := Message{Stream: "s", Seq: 9, Gap: true, ID: EventID{Hi: 5}, Data: []byte(`[1]`)}
	script := appendFrameBody([]byte("\x03\x09"+"42:Ep0ch:"), m0)
	if got, err := decodeFrame(string(script)); err != nil || got.Seq != 42 || got.Epoch != "Ep0ch" || !got.Gap || got.ID != m0.ID || string(got.Data) != "[1]" {
		t.Errorf("decodeFrame of the script's frame = %+v, %v; want seq 42, epoch Ep0ch, the body", got, err)
	}
	// A version 2 frame (a node not upgraded yet) decodes, unnumbered.
	if got, err := decodeFrame("\x02\x00\x07\x01s{}"); err != nil || got.Seq != 7 || got.Epoch != "" || string(got.Data) != "{}" {
		t.Errorf("decodeFrame of a version 2 frame = %+v, %v; want seq 7, no epoch", got, err)
	}
	// Data is not encoded with Err.
	m := Message{Stream: "s", Err: "e", Data: []byte("ignored")}
	if got, err := decodeFrame(string(appendFrame(nil, m))); err != nil || got.Data != nil || got.Err != "e" {
		t.Errorf("round trip of Err with Data = %+v, %v; want Err only", got, err)
	}
	// A frame of a node that predates Final (no frameFinal bit) still
	// decodes, as not final.
	if got, err := decodeFrame("\x02\x02\x07\x01s{}"); err != nil || !got.Conflate || got.Final || got.Seq != 7 || string(got.Data) != "{}" {
		t.Errorf("decodeFrame of a conflatable frame without frameFinal = %+v, %v; want Conflate, not Final", got, err)
	}
	// A negative event time is unknown, and not encoded.
	m = Message{Stream: "s", Seq: 1, EventTime: -5, Data: []byte(`{}`)}
	if got, err := decodeFrame(string(appendFrame(nil, m))); err != nil || got.EventTime != 0 {
		t.Errorf("round trip of EventTime -5 = %+v, %v; want EventTime 0", got, err)
	}
}

func TestDecodeFrameMalformed(t *testing.T) {
	tests := []struct {
		name    string
		payload string
	}{
		{"empty", ""},
		{"one byte", "\x02"},
		{"version 0", "\x00\x00\x01\x00"},
		{"version 1", "\x01\x00\x01\x00"},
		{"version 4", "\x04\x00\x01\x00"},
		{"v3 no seq", "\x03\x00:e:\x01s{}"},
		{"v3 seq not decimal", "\x03\x00x:e:\x01s{}"},
		{"v3 seq over uint64", "\x03\x0018446744073709551616:e:\x01s{}"},
		{"v3 seq of 21 digits", "\x03\x00000000000000000000001:e:\x01s{}"},
		{"v3 no epoch end", "\x03\x001:e"},
		{"v3 epoch with a quote", "\x03\x001:e\"x:\x01s{}"},
		{"v3 epoch too long", "\x03\x001:" + strings.Repeat("e", maxEpochLen+1) + ":\x01s{}"},
		{"v3 no stream", "\x03\x001:e:"},
		{"v3 unknown flag", "\x03\x801:e:\x01s{}"},
		{"json", `{"stream":"x"}`},
		{"unknown flag", "\x02\x80\x01\x00"},
		{"no event time", "\x02\x20\x01"},
		{"zero event time", "\x02\x20\x01\x00\x00"},
		{"event time over int64", "\x02\x20\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\x00"},
		{"unterminated event time", "\x02\x20\x01\x80"},
		{"no origin", "\x02\x10\x01"},
		{"no id", "\x02\x08\x01"},
		{"id over int64", "\x02\x08\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\x00\x00"},
		{"no seq", "\x02\x00"},
		{"unterminated seq", "\x02\x00\x80\x80"},
		{"seq overflow", "\x02\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02\x00"},
		{"no stream length", "\x02\x00\x01"},
		{"stream too long", "\x02\x00\x01\x05abc"},
		{"huge stream length", "\x02\x00\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"},
		{"empty error", "\x02\x04\x01\x01s"},
		{"error not UTF-8", "\x02\x04\x01\x01s\xff"},
		{"no data", "\x02\x00\x01\x01s"},
		{"data not JSON", "\x02\x00\x01\x01sabc"},
		{"data spoofs a stream", "\x02\x00\x01\x01s" + `{"p":"1"},"stream":"binance:ethusdt@trade","x":{`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if m, err := decodeFrame(tc.payload); !errors.Is(err, errFrame) {
				t.Errorf("decodeFrame(%q) = %+v, %v; want a malformed frame error", tc.payload, m, err)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	for _, m := range []Message{
		{},
		{Stream: "binance:btcusdt@trade", Seq: 1, Data: []byte(`{"e":"trade"}`)},
		{Stream: "s", Seq: 1 << 40, Gap: true, Conflate: true, Data: []byte{0, 0xff}},
		{Stream: "s", Seq: 3, Err: "refused"},
		{Stream: "binance:btcusdt@kline_1m", Seq: 5, Conflate: true, Final: true, Data: []byte(`{"k":{"x":true}}`)},
		{Stream: "s", Seq: 4, Origin: 9, ID: EventID{Hi: 5, Sub: 1, Prev: 4}, Data: []byte(`[{"a":"]"},"\\\""]`)},
		{Stream: "s", Seq: 6, Origin: 2, ID: EventID{Hi: 7}, EventTime: 1_700_000_000_123_456, Data: []byte(` {"y":"é"}`)},
		{Stream: "binance:btcusdt@trade", Seq: 1234, Epoch: "k3m9ab2z", Gap: true, Origin: 4, ID: EventID{Hi: 8, Prev: 7}, Data: []byte(`{"p":"1"}`)},
		{Stream: "s", Seq: 0, Epoch: "", Err: "gone"},
	} {
		f.Add(appendFrame(nil, m))
	}
	// Version 2 frames of nodes not upgraded yet, and version 3 headers
	// as the publish script writes them, some broken.
	f.Add([]byte("\x02\x00\x07\x01s{}"))
	f.Add([]byte("\x03\x01" + "18446744073709551615:zz:\x01s[]"))
	f.Add([]byte("\x03\x00" + "18446744073709551616:e:\x01s[]"))
	f.Add([]byte("\x03\x00" + "1:e\"}:\x01s[]"))
	f.Add([]byte("\x03\x00" + "1::"))
	// Data that must not reach browsers.
	for _, d := range dataSeeds {
		f.Add(appendFrame(nil, Message{Stream: "s", Seq: 1, Data: []byte(d)}))
	}
	f.Add([]byte("\x02\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02\x00"))
	f.Add([]byte(`{"json":1}`))
	f.Fuzz(func(t *testing.T, p []byte) {
		m, err := decodeFrame(string(p))
		if err != nil {
			return
		}
		// What decodes re-encodes to something that decodes the same.
		again, err := decodeFrame(string(appendFrame(nil, m)))
		if err != nil {
			t.Fatalf("decodeFrame(appendFrame(%+v)) = %v", m, err)
		}
		if !sameMessage(again, m) || again.Epoch != m.Epoch {
			t.Fatalf("re-decoded %+v; want %+v", again, m)
		}
		if !validEpoch(m.Epoch) {
			t.Fatalf("decoded an epoch a browser's JSON cannot take: %+v", m)
		}
		if m.Err != "" && m.Data != nil {
			t.Fatalf("decoded both Err and Data: %+v", m)
		}
		// What goes to browsers is UTF-8, and Data is one JSON
		// container: inside a message, it keeps the message's shape.
		if !utf8.Valid(m.Data) || !utf8.ValidString(m.Err) {
			t.Fatalf("decoded text that is not UTF-8: %+v", m)
		}
		if m.Err == "" {
			// The message adds one level around Data, so Data nested
			// maxDataDepth deep (which decodeFrame accepts) makes a
			// message checkData, bounded at maxDataDepth, refuses for its
			// depth alone. The shape is checked without that bound, and
			// checkData still has to agree wherever the bound allows.
			msg := `{"data":` + string(m.Data) + `,"stream":"s"}`
			depth, err := shapeOf(msg)
			if err != nil {
				t.Fatalf("Data %q inside a message: %v", m.Data, err)
			}
			if depth <= maxDataDepth {
				if err := checkData(msg); err != nil {
					t.Fatalf("Data %q inside a message: %v", m.Data, err)
				}
			}
		}
	})
}

// shapeOf checks what checkData checks, with no bound on the nesting,
// and returns how deep d nests: d is UTF-8 and one JSON object or array
// with only whitespace around it, its brackets match, and its strings end
// and hold no control characters. It keeps a stack where checkData keeps
// a 64-bit mask, so that it can judge a message around Data that is
// nested maxDataDepth deep.
func shapeOf(d string) (int, error) {
	if !utf8.ValidString(d) {
		return 0, errors.New("not UTF-8")
	}
	t := strings.Trim(d, " \t\r\n")
	if t == "" || (t[0] != '{' && t[0] != '[') {
		return 0, errors.New("not a JSON object or array")
	}
	var open []byte
	deepest := 0
	for i := 0; i < len(t); i++ {
		switch c := t[i]; c {
		case '{', '[':
			open = append(open, c)
			deepest = max(deepest, len(open))
		case '}', ']':
			if len(open) == 0 || (open[len(open)-1] == '{') != (c == '}') {
				return 0, fmt.Errorf("unmatched %q at byte %d", c, i)
			}
			open = open[:len(open)-1]
			if len(open) == 0 && i != len(t)-1 {
				return 0, fmt.Errorf("more after the value, at byte %d", i+1)
			}
		case '"':
			for i++; ; i++ {
				if i >= len(t) {
					return 0, errors.New("a string does not end")
				}
				if t[i] == '"' {
					break
				}
				if t[i] < 0x20 {
					return 0, fmt.Errorf("a control character in a string, at byte %d", i)
				}
				if t[i] == '\\' {
					i++
				}
			}
		}
	}
	if len(open) != 0 {
		return 0, errors.New("the value does not close")
	}
	return deepest, nil
}

// dataSeeds are Data that checkData refuses.
var dataSeeds = []string{
	"",
	"   ",
	"x",
	"1",
	`"s"`,
	"{\"p\":\"\xff\"}",
	"{\"p\":\"\xed\xa0\x80\"}", // a surrogate, not UTF-8
	`{"p":"1"},"stream":"binance:ethusdt@trade","x":{`,
	`{"p":"1"]`,
	`["p"}`,
	`{"p":"1"}}`,
	`{"p":"1"} x`,
	`{"p":"1"}{}`,
	`{"p":"1`,
	`{"p":"1\"}`,
	"{\"p\":\"a\nb\"}",
	`{"p":"1"`,
	strings.Repeat("[", maxDataDepth+1) + strings.Repeat("]", maxDataDepth+1),
}

func TestCheckData(t *testing.T) {
	for _, d := range dataSeeds {
		if err := checkData(d); err == nil {
			t.Errorf("checkData(%q) = nil; want an error", d)
		}
	}
	for _, d := range []string{
		`{}`,
		`[]`,
		" \t\r\n{\"a\":1} \n",
		`{"e":"trade","p":"0.01","m":true,"x":null}`,
		`[{"a":"]}\"{["},{"b":[[],[{}]]}]`,
		`{"s":"\\"}`,
		`{"é":"日本","u":"\u00e9"}`,
		strings.Repeat("[", maxDataDepth) + strings.Repeat("]", maxDataDepth),
		string(depthData(4096)),
	} {
		if err := checkData(d); err != nil {
			t.Errorf("checkData(%q) = %v; want nil", d, err)
		}
	}
	d := string(depthData(4096))
	if n := testing.AllocsPerRun(100, func() { _ = checkData(d) }); n != 0 {
		t.Errorf("checkData allocates %v times; want 0", n)
	}
}

// FuzzCheckData: checkData accepts every valid JSON object or array that
// nests at most maxDataDepth levels, and only UTF-8.
func FuzzCheckData(f *testing.F) {
	for _, d := range dataSeeds {
		f.Add(d)
	}
	f.Add(`{"a":[1,"]",{"b":"\\"}]}`)
	f.Fuzz(func(t *testing.T, d string) {
		err := checkData(d)
		if err == nil && !utf8.ValidString(d) {
			t.Fatalf("checkData(%q) accepted text that is not UTF-8", d)
		}
		t0 := strings.TrimLeft(d, " \t\r\n")
		container := t0 != "" && (t0[0] == '{' || t0[0] == '[')
		if err != nil && container && utf8.ValidString(d) && json.Valid([]byte(d)) && depthOf(d) <= maxDataDepth {
			t.Fatalf("checkData(%q) = %v; the JSON is valid", d, err)
		}
		// shapeOf, FuzzDecode's judge of messages around Data, agrees
		// with checkData within checkData's bound.
		depth, shapeErr := shapeOf(d)
		if err == nil && shapeErr != nil {
			t.Fatalf("checkData(%q) = nil; shapeOf = %v", d, shapeErr)
		}
		if err != nil && shapeErr == nil && depth <= maxDataDepth {
			t.Fatalf("checkData(%q) = %v; shapeOf = nil, depth %d", d, err, depth)
		}
	})
}

// depthOf returns how deep valid JSON d nests.
func depthOf(d string) int {
	dec := json.NewDecoder(strings.NewReader(d))
	depth, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return deepest
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
			deepest = max(deepest, depth)
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}

// chanReceiver signals every delivered message.
type chanReceiver chan struct{}

func (c chanReceiver) Receive(Message) { c <- struct{}{} }
func (c chanReceiver) Flush()          {}

func BenchmarkRedisRoundTrip(b *testing.B) {
	srv := redistest.Start(b)
	h := benchHub(b, RedisConfig{URL: srv.URL(), NodeID: "bench"})
	ctx := b.Context()
	count := func(ch string) (int64, error) {
		rc := redis.NewClient(&redis.Options{Addr: srv.Addr()})
		defer rc.Close()
		m, err := rc.PubSubNumSub(ctx, ch).Result()
		return m[ch], err
	}
	for _, size := range []int{64, 4096} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			stream := fmt.Sprintf("bench:%d", size)
			rc := make(chanReceiver, 1)
			h.Subscribe(ctx, stream, rc)
			defer h.Unsubscribe(ctx, stream, rc)
			waitfor.Cond(b, 10*time.Second, func() error {
				n, err := count(h.channel(stream))
				if err == nil && n != 1 {
					err = errors.New("not subscribed yet")
				}
				return err
			})
			msg := Message{Stream: stream, Data: depthData(size)}
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				msg.Seq++
				if err := h.Publish(ctx, msg); err != nil {
					b.Fatal(err)
				}
				if err := h.Flush(ctx); err != nil {
					b.Fatal(err)
				}
				<-rc
			}
		})
	}
}

// depthData returns a depth event of about size bytes, as JSON as the
// exchange sends it.
func depthData(size int) []byte {
	b := []byte(`{"e":"depthUpdate","E":1700000000000,"s":"BTCUSDT","U":157,"u":160,"b":[`)
	for i := 0; len(b) < size-40; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, `["%d.00000000","%d.50000000"]`, 60000+i, i)
	}
	return append(b, `],"a":[]}`...)
}

func BenchmarkEncodeDecode(b *testing.B) {
	for _, size := range []int{100, 4096} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			msg := Message{Stream: "binance:btcusdt@depth20@100ms", Seq: 123456789, Conflate: true, Data: depthData(size)}
			size := len(msg.Data)
			var buf []byte
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				buf = appendFrame(buf[:0], msg)
				// go-redis hands over the payload as a string it
				// allocated; view buf as one so only the codec is timed.
				m, err := decodeFrame(unsafe.String(&buf[0], len(buf)))
				if err != nil || m.Seq != msg.Seq {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchHub makes a Redis hub for a benchmark and runs it until the
// benchmark ends.
func benchHub(b *testing.B, cfg RedisConfig) *Redis {
	b.Helper()
	h, err := NewRedis(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("Run = %v", err)
		}
	})
	return h
}
