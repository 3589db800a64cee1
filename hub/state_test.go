package hub

import (
	"context"
	"fmt"
	"testing"

	"github.com/marketgate/marketgate/internal/redistest"
)

// stateHub is what TestState needs of a hub: publishing, flushing and
// reading history.
type stateHub interface {
	Publisher
	History
}

// TestState checks how a stream's state (Message.State) is kept and read
// back, on both hubs: at the position of the newest message before it,
// with every message after it, instead of the latest value and instead of
// a since that cannot be recovered; dropped from another origin; forgotten
// with empty Data or when history no longer covers it.
func TestState(t *testing.T) {
	const size = 10
	hubs := map[string]func(t *testing.T) stateHub{
		"memory": func(*testing.T) stateHub { return &Memory{HistorySize: size} },
		"redis": func(t *testing.T) stateHub {
			srv := redistest.Start(t)
			return runHub(t, RedisConfig{URL: srv.URL(), NodeID: "n", HistorySize: size})
		},
	}
	for name, newHub := range hubs {
		t.Run(name, func(t *testing.T) {
			h := newHub(t)
			ctx := t.Context()
			const stream = "x:book"
			if r, ok := h.(*Redis); ok {
				subscribed(t, r, stream)
			}
			n := uint64(0)
			publish := func(k int) {
				t.Helper()
				for range k {
					n++
					msg := Message{Stream: stream, Seq: n, Data: fmt.Appendf(nil, `{"n":%d}`, n)}
					if err := h.Publish(ctx, msg); err != nil {
						t.Fatal(err)
					}
				}
				if err := h.Flush(ctx); err != nil {
					t.Fatal(err)
				}
			}
			state := func(data string, origin uint64) {
				t.Helper()
				if err := h.Publish(ctx, Message{Stream: stream, State: true, Origin: origin, Data: []byte(data)}); err != nil {
					t.Fatal(err)
				}
				if err := h.Flush(ctx); err != nil {
					t.Fatal(err)
				}
			}
			recover := func(since *Position) Recovery {
				t.Helper()
				rc, cancel := context.WithCancel(ctx)
				defer cancel()
				rec, err := h.Recover(rc, stream, since)
				if err != nil {
					t.Fatal(err)
				}
				return rec
			}
			check := func(step string, rec Recovery, wantState string, wantStateSeq uint64, wantSeqs []uint64, recovered bool) {
				t.Helper()
				gotState, gotStateSeq := "", uint64(0)
				if rec.State != nil {
					gotState, gotStateSeq = string(rec.State.Data), rec.State.Seq
					if rec.State.Epoch != rec.Position.Epoch || !rec.State.State {
						t.Errorf("%s: state %+v not of the position's epoch %q or not marked State", step, rec.State, rec.Position.Epoch)
					}
				}
				if gotState != wantState || gotStateSeq != wantStateSeq {
					t.Errorf("%s: state %q at %d; want %q at %d", step, gotState, gotStateSeq, wantState, wantStateSeq)
				}
				if got := seqsOf(rec.Messages); fmt.Sprint(got) != fmt.Sprint(wantSeqs) {
					t.Errorf("%s: messages %v; want %v", step, got, wantSeqs)
				}
				if rec.Recovered != recovered {
					t.Errorf("%s: recovered %v; want %v", step, rec.Recovered, recovered)
				}
			}

			state(`{"s":0}`, 0) // no position yet: dropped
			check("state before any message", recover(nil), "", 0, nil, false)
			publish(3)
			state(`{"s":3}`, 0)
			check("state at the newest message", recover(nil), `{"s":3}`, 3, []uint64{}, false)
			publish(4)
			rec := recover(nil)
			check("state and the messages after it", rec, `{"s":3}`, 3, []uint64{4, 5, 6, 7}, false)
			epoch := rec.Position.Epoch
			check("a since that is recovered wins", recover(&Position{epoch, 5}), "", 0, []uint64{6, 7}, true)
			check("a since of another epoch gets the state", recover(&Position{"zzzzzzzz", 5}), `{"s":3}`, 3, []uint64{4, 5, 6, 7}, false)
			state(`{"s":7}`, 9) // another origin than the newest message's
			check("another origin's state is dropped", recover(nil), `{"s":3}`, 3, []uint64{4, 5, 6, 7}, false)
			publish(8) // 15 published, history holds 6..15: the state at 3 is no use
			check("history no longer covers the state", recover(nil), "", 0, []uint64{15}, false)
			state(`{"s":15}`, 0)
			publish(1)
			check("a newer state replaces it", recover(nil), `{"s":15}`, 15, []uint64{16}, false)
			state("", 0)
			check("empty data forgets the state", recover(nil), "", 0, []uint64{16}, false)
		})
	}
}
