package hub

import (
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/marketgate/marketgate/internal/redistest"
	"github.com/marketgate/marketgate/internal/waitfor"
)

// panicky is a Receiver with a bug: its Receive panics on Seq 1 and its
// first Flush panics; it keeps the Seqs it took otherwise.
type panicky struct {
	mu      sync.Mutex
	seqs    []uint64
	flushed bool
}

func (p *panicky) Receive(m Message) {
	if m.Seq == 1 {
		panic("test: Receive")
	}
	p.mu.Lock()
	p.seqs = append(p.seqs, m.Seq)
	p.mu.Unlock()
}

func (p *panicky) Flush() {
	p.mu.Lock()
	first := !p.flushed
	p.flushed = true
	p.mu.Unlock()
	if first {
		panic("test: Flush")
	}
}

func (p *panicky) got() []uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]uint64(nil), p.seqs...)
}

// TestReceiverPanicRecovered checks that a receiver's panic, in Receive
// or Flush, is recovered and counted by either hub, and that delivery
// goes on: the other receiver gets every message, and the panicky one
// the messages after.
func TestReceiverPanicRecovered(t *testing.T) {
	const stream = "x:s"
	log := func(t *testing.T) *slog.Logger {
		return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	tests := []struct {
		name string
		// hub returns the hub, its counters, and what waits until a
		// subscription is in place.
		hub func(t *testing.T) (Hub, func() Stats, func())
	}{
		{"memory", func(t *testing.T) (Hub, func() Stats, func()) {
			m := &Memory{Logger: log(t)}
			return m, m.Stats, func() {}
		}},
		{"redis", func(t *testing.T) (Hub, func() Stats, func()) {
			srv := redistest.Start(t)
			h := runHub(t, RedisConfig{URL: srv.URL(), NodeID: "n", Logger: log(t)})
			count := standaloneCounter(t, srv)
			return h, h.Stats, func() { waitSubscribers(t, h, count, 1, stream) }
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, stats, subscribed := tc.hub(t)
			ctx := t.Context()
			bad, good := &panicky{}, &msgLog{}
			for _, rc := range []Receiver{bad, good} {
				if err := h.Subscribe(ctx, stream, rc); err != nil {
					t.Fatal(err)
				}
			}
			subscribed()
			for seq := uint64(1); seq <= 3; seq++ {
				if err := h.Publish(ctx, Message{Stream: stream, Seq: seq, Data: []byte(`{"d":1}`)}); err != nil {
					t.Fatal(err)
				}
				if err := h.Flush(ctx); err != nil {
					t.Fatal(err)
				}
			}
			waitfor.Cond(t, 5*time.Second, func() error {
				if n := len(good.of(stream)); n != 3 {
					return fmt.Errorf("good receiver got %d messages; want 3", n)
				}
				if got := bad.got(); len(got) != 2 {
					return fmt.Errorf("panicky receiver got seqs %v; want 2 and 3", got)
				}
				return nil
			})
			if n := stats().InternalErrors; n != 2 {
				t.Errorf("InternalErrors = %d; want 2 (Receive and Flush)", n)
			}
		})
	}
}
