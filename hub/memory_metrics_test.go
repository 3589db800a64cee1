package hub

import (
	"context"
	"testing"
)

func TestMemoryStats(t *testing.T) {
	m := NewMemory()
	ctx := t.Context()
	r := &countReceiver{}
	if err := m.Subscribe(ctx, "a", r); err != nil {
		t.Fatal(err)
	}
	for _, stream := range []string{"a", "a", "b"} { // b has no receiver
		if err := m.Publish(ctx, Message{Stream: stream, Seq: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := Stats{Published: 3, Received: 2}
	if got := m.Stats(); got != want {
		t.Errorf("Stats() = %+v; want %+v", got, want)
	}
	if r.n != 2 {
		t.Errorf("receiver got %d messages; want 2", r.n)
	}
}

// countReceiver counts the messages it receives; Publish calls it on the
// publisher's goroutine.
type countReceiver struct{ n int }

func (c *countReceiver) Receive(Message) { c.n++ }
func (c *countReceiver) Flush()          {}
