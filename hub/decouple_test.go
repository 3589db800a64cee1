package hub

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/marketgate/marketgate/internal/redistest"
	"github.com/marketgate/marketgate/internal/waitfor"
)

// gatedPublisher records what it is given; its Flush waits until the
// gate is opened, as a slow Redis would.
type gatedPublisher struct {
	gate    chan struct{}
	mu      sync.Mutex
	got     []Message
	flushes int
}

func (g *gatedPublisher) Publish(_ context.Context, m Message) error {
	m.Data = append([]byte(nil), m.Data...)
	g.mu.Lock()
	g.got = append(g.got, m)
	g.mu.Unlock()
	return nil
}

func (g *gatedPublisher) Flush(context.Context) error {
	<-g.gate
	g.mu.Lock()
	g.flushes++
	g.mu.Unlock()
	return nil
}

func (g *gatedPublisher) seqs() []uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]uint64, len(g.got))
	for i, m := range g.got {
		out[i] = m.Seq
	}
	return out
}

func runDecoupled(t *testing.T, d *Decoupled) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}

// TestDecoupledNeverWaits checks that Publish and Flush return while the
// publisher behind is stuck, that what fits in the queue goes out in
// order once it moves again, and that what did not fit is dropped and
// counted, leaving a skip in Seq for the hub to mark as a gap.
func TestDecoupledNeverWaits(t *testing.T) {
	next := &gatedPublisher{gate: make(chan struct{})}
	d, err := NewDecoupled(DecoupledConfig{Next: next, MaxBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	runDecoupled(t, d)
	ctx := t.Context()
	// Each message's 100 bytes are its Seq, so a message that went out
	// with another's data shows.
	data := func(seq uint64) []byte { return bytes.Repeat([]byte{byte(seq)}, 100) }
	// Message 1 is taken by Run, whose Flush then hangs on the gate.
	d.Publish(ctx, Message{Stream: "s", Seq: 1, Data: data(1)})
	d.Flush(ctx)
	waitfor.Cond(t, 5*time.Second, func() error {
		if s := next.seqs(); len(s) != 1 {
			return fmt.Errorf("next got %v; want [1] being flushed", s)
		}
		return nil
	})
	// 2..30 while Next is stuck: 10 fit (1000 bytes), the rest drop.
	done := make(chan struct{})
	go func() {
		for seq := uint64(2); seq <= 30; seq++ {
			d.Publish(ctx, Message{Stream: "s", Seq: seq, Data: data(seq)})
			d.Flush(ctx)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Publish or Flush waited for the stuck publisher")
	}
	if n := d.Dropped(); n != 19 {
		t.Errorf("Dropped = %d; want 19 (29 published, 10 fit)", n)
	}
	// The queue drains; publishing resumes after the skip.
	close(next.gate)
	waitfor.Cond(t, 5*time.Second, func() error {
		if s := next.seqs(); len(s) != 11 {
			return fmt.Errorf("next got %v; want 1..11", s)
		}
		return nil
	})
	d.Publish(ctx, Message{Stream: "s", Seq: 31, Data: data(31)})
	d.Flush(ctx)
	want := fmt.Sprint([]uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 31})
	waitfor.Cond(t, 5*time.Second, func() error {
		if s := fmt.Sprint(next.seqs()); s != want {
			return fmt.Errorf("next got %s; want %s", s, want)
		}
		return nil
	})
	next.mu.Lock()
	defer next.mu.Unlock()
	for _, m := range next.got {
		if len(m.Data) != 100 {
			t.Fatalf("message %d has %d bytes; want 100", m.Seq, len(m.Data))
		}
		if !bytes.Equal(m.Data, data(m.Seq)) {
			t.Fatalf("message %d carries another message's data (%d…)", m.Seq, m.Data[0])
		}
	}
}

// TestDecoupledSlowRedis runs the Redis hub behind a Decoupled against a
// real redis-server paused with CLIENT PAUSE: publishing and flushing
// return while Redis answers nothing, and every message reaches a
// receiver in order and as published, once Redis answers again.
func TestDecoupledSlowRedis(t *testing.T) {
	srv := redistest.Start(t)
	count := standaloneCounter(t, srv)
	h := runHub(t, RedisConfig{URL: srv.URL(), NodeID: "n"})
	ctx := t.Context()
	const s = "binance:btcusdt@trade"
	l := &msgLog{}
	if err := h.Subscribe(ctx, s, l); err != nil {
		t.Fatal(err)
	}
	waitSubscribers(t, h, count, 1, s)
	sent := &flushCounter{Publisher: h}
	d, err := NewDecoupled(DecoupledConfig{Next: sent})
	if err != nil {
		t.Fatal(err)
	}
	runDecoupled(t, d)

	// Paused for 1 s: well inside the client's 3 s read timeout, so this
	// is a slow Redis, not a failing one.
	admin := redis.NewClient(srv.Options())
	t.Cleanup(func() { admin.Close() })
	if err := admin.Do(ctx, "CLIENT", "PAUSE", "1000", "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	// The last is an unnumbered failure notice: it stays in its place.
	msgs := testMessages(s, 51)
	for _, m := range msgs {
		d.Publish(ctx, m)
		d.Flush(ctx)
	}
	// Every call above returned; had one waited for Redis, a flush would
	// have completed by now.
	if n := sent.completed(); n != 0 {
		t.Fatalf("%d flushes to Redis completed before publishing returned; want 0 (Redis is paused)", n)
	}
	waitfor.Cond(t, 15*time.Second, func() error {
		if n := len(l.of(s)); n != len(msgs) {
			return fmt.Errorf("received %d of %d", n, len(msgs))
		}
		return nil
	})
	checkMessages(t, "receiver", l, s, msgs)
	if d.Dropped() != 0 {
		t.Errorf("Dropped = %d; want 0", d.Dropped())
	}
}

// flushCounter counts the Flush calls of the publisher it wraps that
// returned.
type flushCounter struct {
	Publisher
	mu sync.Mutex
	n  int
}

func (f *flushCounter) Flush(ctx context.Context) error {
	err := f.Publisher.Flush(ctx)
	f.mu.Lock()
	f.n++
	f.mu.Unlock()
	return err
}

func (f *flushCounter) completed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// stampedPublisher records what it is given and when.
type stampedPublisher struct {
	mu  sync.Mutex
	got []Message
	at  []time.Time
}

func (p *stampedPublisher) Publish(_ context.Context, m Message) error {
	m.Data = append([]byte(nil), m.Data...)
	p.mu.Lock()
	p.got = append(p.got, m)
	p.at = append(p.at, time.Now())
	p.mu.Unlock()
	return nil
}

func (p *stampedPublisher) Flush(context.Context) error { return nil }

func (p *stampedPublisher) snapshot() ([]Message, []time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.got), slices.Clone(p.at)
}

// TestDecoupledHold: with Hold, each message goes out no sooner than
// Hold after it was published, in order and with its own data, also when
// only part of what is held is due (the rest is kept at the front); when
// Hold drops to 0, what is held goes at the next Flush, ahead of the new.
func TestDecoupledHold(t *testing.T) {
	var hold atomic.Int64
	hold.Store(int64(300 * time.Millisecond))
	next := &stampedPublisher{}
	d, err := NewDecoupled(DecoupledConfig{Next: next, Hold: func() time.Duration { return time.Duration(hold.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	runDecoupled(t, d)
	ctx := t.Context()
	data := func(seq uint64) []byte { return bytes.Repeat([]byte{byte('a' + seq)}, int(seq)*7) }
	published := map[uint64]time.Time{}
	publish := func(from, to uint64) {
		for seq := from; seq <= to; seq++ {
			published[seq] = time.Now()
			d.Publish(ctx, Message{Stream: "s", Seq: seq, Data: data(seq)})
			d.Flush(ctx)
		}
	}
	publish(1, 3)
	time.Sleep(150 * time.Millisecond)
	publish(4, 6) // due 150 ms after 1..3: two rounds
	waitfor.Cond(t, 5*time.Second, func() error {
		if got, _ := next.snapshot(); len(got) < 6 {
			return fmt.Errorf("%d of 6 sent", len(got))
		}
		return nil
	})
	got, at := next.snapshot()
	for i, m := range got {
		seq := uint64(i + 1)
		if m.Seq != seq || !bytes.Equal(m.Data, data(seq)) {
			t.Fatalf("message %d: seq %d, data %q; want seq %d with its own data", i, m.Seq, m.Data, seq)
		}
		if waited := at[i].Sub(published[seq]); waited < 300*time.Millisecond {
			t.Errorf("message %d went out %v after it was published; want at least the 300 ms hold", seq, waited)
		}
	}

	// Held, then the hold ends: the held go at the next Flush, first.
	publish(7, 8)
	hold.Store(0)
	publish(9, 9)
	waitfor.Cond(t, 5*time.Second, func() error {
		if got, _ := next.snapshot(); len(got) < 9 {
			return fmt.Errorf("%d of 9 sent", len(got))
		}
		return nil
	})
	got, _ = next.snapshot()
	for i, m := range got {
		if seq := uint64(i + 1); m.Seq != seq || !bytes.Equal(m.Data, data(seq)) {
			t.Fatalf("message %d: seq %d, data %q; want seq %d with its own data", i, m.Seq, m.Data, seq)
		}
	}
}
