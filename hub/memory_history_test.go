package hub

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// seqsOf returns the positions of msgs.
func seqsOf(msgs []Message) []uint64 {
	var out []uint64
	for _, m := range msgs {
		out = append(out, m.Seq)
	}
	return out
}

// TestMemoryRecover checks what Recover returns of a history of 5
// messages out of 8 published: the position, and the messages after
// since only when every one of them is kept.
func TestMemoryRecover(t *testing.T) {
	ctx := t.Context()
	m := &Memory{HistorySize: 5}
	for i := range 8 {
		data := fmt.Appendf(nil, `{"i":%d}`, i+1)
		if err := m.Publish(ctx, Message{Stream: "s", Seq: uint64(100 + i), Data: data, Conflate: true}); err != nil {
			t.Fatal(err)
		}
	}
	latest, err := m.Recover(ctx, "s", nil)
	if err != nil {
		t.Fatal(err)
	}
	epoch := latest.Position.Epoch
	if latest.Position.Seq != 8 || len(epoch) != 8 || latest.Recovered {
		t.Fatalf("Recover(nil) = %+v; want position 8 of an 8-character epoch, not recovered", latest)
	}
	if len(latest.Messages) != 1 || string(latest.Messages[0].Data) != `{"i":8}` || !latest.Messages[0].Conflate {
		t.Fatalf("Recover(nil) messages = %+v; want the newest, whole", latest.Messages)
	}
	tests := []struct {
		name  string
		since Position
		ok    bool
		want  []uint64
	}{
		{"all kept", Position{epoch, 5}, true, []uint64{6, 7, 8}},
		{"oldest kept is the next", Position{epoch, 3}, true, []uint64{4, 5, 6, 7, 8}},
		{"one gone", Position{epoch, 2}, false, nil},
		{"up to date", Position{epoch, 8}, true, []uint64{}},
		{"ahead of the stream", Position{epoch, 9}, false, nil},
		{"other epoch", Position{"zzzzzzzz", 5}, false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := m.Recover(ctx, "s", &tc.since)
			if err != nil {
				t.Fatal(err)
			}
			if r.Recovered != tc.ok || r.Position != (Position{epoch, 8}) {
				t.Fatalf("Recover = recovered %v at %+v; want %v at %s/8", r.Recovered, r.Position, tc.ok, epoch)
			}
			if got := seqsOf(r.Messages); tc.ok && !slices.Equal(got, tc.want) && len(got)+len(tc.want) > 0 {
				t.Fatalf("messages %v; want %v", got, tc.want)
			}
			for _, msg := range r.Messages {
				if want := fmt.Sprintf(`{"i":%d}`, msg.Seq); string(msg.Data) != want || msg.Epoch != epoch {
					t.Fatalf("message %d: %s in %q; want %s in %q", msg.Seq, msg.Data, msg.Epoch, want, epoch)
				}
			}
		})
	}
	// A stream with no message yet gets its epoch at once, and its first
	// message is numbered in it.
	r, err := m.Recover(ctx, "quiet", &Position{epoch, 1})
	if err != nil || r.Recovered || r.Position.Seq != 0 || len(r.Position.Epoch) != 8 {
		t.Fatalf("Recover(quiet) = %+v, %v; want a new epoch at 0, not recovered", r, err)
	}
	if err := m.Publish(ctx, Message{Stream: "quiet", Seq: 1, Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if again, _ := m.Recover(ctx, "quiet", &r.Position); !again.Recovered || again.Position != (Position{r.Position.Epoch, 1}) || len(again.Messages) != 1 {
		t.Fatalf("after the first message: %+v; want it recovered from %+v", again, r.Position)
	}
}

// TestMemoryHistoryBounds checks the history's expiry and that a stream
// idle past positionTTL starts a new epoch, and that history can be off.
func TestMemoryHistoryBounds(t *testing.T) {
	ctx := t.Context()
	m := &Memory{HistoryTTL: time.Hour}
	pub := func() {
		if err := m.Publish(ctx, Message{Stream: "s", Data: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	pub()
	pub()
	before, _ := m.Recover(ctx, "s", nil)
	now := time.Now()
	m.sweep(now.Add(2 * time.Hour).UnixNano())
	r, _ := m.Recover(ctx, "s", &Position{before.Position.Epoch, 1})
	if r.Recovered || r.Position != before.Position {
		t.Fatalf("after the history's TTL: %+v; want the position %+v kept, nothing recovered", r, before.Position)
	}
	if r, _ := m.Recover(ctx, "s", &before.Position); !r.Recovered {
		t.Fatalf("a client that missed nothing does not recover: %+v", r)
	}
	m.sweep(now.Add(positionTTL + time.Hour).UnixNano())
	pub()
	after, _ := m.Recover(ctx, "s", nil)
	if after.Position.Epoch == before.Position.Epoch || after.Position.Seq != 1 {
		t.Fatalf("after a day idle: %+v; want a new epoch at 1 (was %+v)", after.Position, before.Position)
	}

	off := &Memory{HistorySize: -1}
	off.Publish(ctx, Message{Stream: "s", Seq: 1, Data: []byte(`{}`)})
	off.Publish(ctx, Message{Stream: "s", Seq: 2, Data: []byte(`{}`)})
	r2, err := off.Recover(ctx, "s", nil)
	if err != nil || r2.Position.Seq != 2 || len(r2.Messages) != 0 {
		t.Fatalf("Recover without history = %+v, %v; want position 2 and no message", r2, err)
	}
	if r, _ := off.Recover(ctx, "s", &r2.Position); !r.Recovered {
		t.Fatal("without history, a client that missed nothing does not recover")
	}
	if r, _ := off.Recover(ctx, "s", &Position{r2.Position.Epoch, 1}); r.Recovered {
		t.Fatal("without history, a client that missed a message recovers")
	}
}

// TestMemoryRecoverThenLive checks the promise of History.Recover: a
// receiver subscribed before Recover gets every message after the
// position live, while publishers run concurrently.
func TestMemoryRecoverThenLive(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	m := &Memory{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := uint64(1); ctx.Err() == nil && i < 100_000; i++ {
			m.Publish(ctx, Message{Stream: "s", Seq: i, Data: []byte(`{}`)})
		}
	}()
	for range 50 {
		r := &recorder{}
		m.Subscribe(ctx, "s", r)
		rec, err := m.Recover(ctx, "s", nil)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
		m.Unsubscribe(ctx, "s", r)
		got := r.seqs()
		next := rec.Position.Seq + 1
		for _, s := range got {
			if s < next {
				continue // before the position: the receiver drops it
			}
			if s != next {
				t.Fatalf("live messages after position %d: %v", rec.Position.Seq, got)
			}
			next++
		}
	}
	cancel()
	<-done
}
