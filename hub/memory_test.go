package hub

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

type recorder struct {
	mu      sync.Mutex
	msgs    []Message
	flushes int
}

func (r *recorder) Flush() {
	r.mu.Lock()
	r.flushes++
	r.mu.Unlock()
}

func (r *recorder) flushCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.flushes
}

func (r *recorder) Receive(m Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
}

func (r *recorder) seqs() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []uint64
	for _, m := range r.msgs {
		out = append(out, m.Seq)
	}
	return out
}

func TestMemory(t *testing.T) {
	ctx := t.Context()
	m := NewMemory()
	a, b := &recorder{}, &recorder{}
	pub := func(stream string, seq uint64) {
		if err := m.Publish(ctx, Message{Stream: stream, Seq: seq}); err != nil {
			t.Fatal(err)
		}
	}
	pub("x", 1) // nobody subscribed: dropped
	m.Subscribe(ctx, "x", a)
	m.Subscribe(ctx, "x", a) // no-op
	m.Subscribe(ctx, "x", b)
	m.Subscribe(ctx, "y", b)
	pub("x", 2)
	pub("y", 3)
	m.Unsubscribe(ctx, "x", a)
	m.Unsubscribe(ctx, "x", a) // no-op
	m.Unsubscribe(ctx, "z", a) // unknown: ignored
	pub("x", 4)
	m.Unsubscribe(ctx, "x", b)
	pub("x", 5)

	tests := []struct {
		name string
		r    *recorder
		want []uint64
	}{
		// Positions count every message of a stream published, received
		// or not: x is at 2 when a joins.
		{"a", a, []uint64{2}},
		{"b", b, []uint64{2, 1, 3}},
	}
	for _, tc := range tests {
		if got := tc.r.seqs(); !slices.Equal(got, tc.want) {
			t.Errorf("receiver %s got seqs %v; want %v", tc.name, got, tc.want)
		}
	}
	if err := m.Ready(); err != nil {
		t.Errorf("Ready = %v", err)
	}
}

// TestMemoryFields checks that a message reaches its receivers whole:
// every field as published, Final included.
func TestMemoryFields(t *testing.T) {
	ctx := t.Context()
	m := NewMemory()
	r := &recorder{}
	m.Subscribe(ctx, "binance:btcusdt@kline_1m", r)
	msgs := []Message{
		{Stream: "binance:btcusdt@kline_1m", Seq: 1, Conflate: true, ID: EventID{Hi: 60000, Sub: 61000}, EventTime: 61_000_000, Data: []byte(`{"k":{"x":false}}`)},
		{Stream: "binance:btcusdt@kline_1m", Seq: 2, Conflate: true, Final: true, ID: EventID{Hi: 60000, Sub: 119999}, EventTime: 119_999_000, Data: []byte(`{"k":{"x":true}}`)},
		{Stream: "binance:btcusdt@kline_1m", Seq: 3, Gap: true, Origin: 4, Err: "refused"},
	}
	for _, msg := range msgs {
		if err := m.Publish(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.msgs) != len(msgs) {
		t.Fatalf("received %d messages; want %d", len(r.msgs), len(msgs))
	}
	for i, want := range msgs {
		if got := r.msgs[i]; !sameMessage(got, want) {
			t.Errorf("message %d = %+v; want %+v", i, got, want)
		}
	}
}

// TestMemoryFlush checks that Flush reaches each receiver given a message
// since the last Flush exactly once, and no other.
func TestMemoryFlush(t *testing.T) {
	ctx := t.Context()
	m := NewMemory()
	a, b, idle := &recorder{}, &recorder{}, &recorder{}
	m.Subscribe(ctx, "x", a)
	m.Subscribe(ctx, "x", b)
	m.Subscribe(ctx, "y", b)
	m.Subscribe(ctx, "z", idle)
	for _, stream := range []string{"x", "y", "x"} {
		m.Publish(ctx, Message{Stream: stream})
	}
	m.Flush(ctx)
	m.Flush(ctx) // nothing published since: flushes nobody
	m.Publish(ctx, Message{Stream: "y"})
	m.Flush(ctx)
	for _, tc := range []struct {
		name string
		r    *recorder
		want int
	}{{"a", a, 1}, {"b", b, 2}, {"idle", idle, 0}} {
		if got := tc.r.flushCount(); got != tc.want {
			t.Errorf("receiver %s flushed %d times; want %d", tc.name, got, tc.want)
		}
	}
}

func TestMemoryConcurrent(t *testing.T) {
	m := NewMemory()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			r := &recorder{}
			for j := range 200 {
				m.Subscribe(ctx, "s", r)
				m.Publish(ctx, Message{Stream: "s", Seq: uint64(i*1000 + j)})
				m.Unsubscribe(ctx, "s", r)
			}
		})
	}
	wg.Wait()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
}
