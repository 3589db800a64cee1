package hub

import "testing"

// TestSequence walks one stream through the cases of sequence.number:
// positions, Seq breaks, repeats, and publishers taking over.
func TestSequence(t *testing.T) {
	id := func(n int64) EventID { return EventID{Hi: n} }
	type want struct {
		seq uint64 // 0: dropped
		gap bool
	}
	steps := []struct {
		name string
		msg  Message
		want want
	}{
		{"first", Message{Seq: 41, ID: id(100)}, want{1, false}},
		{"next", Message{Seq: 42, ID: id(101)}, want{2, false}},
		{"seq skips", Message{Seq: 44, ID: id(103)}, want{3, true}},
		{"publisher's gap", Message{Seq: 45, Gap: true, ID: id(104)}, want{4, true}},
		{"repeat from the same origin", Message{Seq: 46, ID: id(104)}, want{}},
		// Origin 7 starts while origin 0 still publishes (a handover).
		{"new origin repeats", Message{Origin: 7, Seq: 1, ID: id(103)}, want{}},
		{"new origin repeats on", Message{Origin: 7, Seq: 2, ID: id(104)}, want{}},
		{"old origin goes on", Message{Seq: 47, ID: id(105)}, want{5, false}},
		{"new origin repeats that", Message{Origin: 7, Seq: 3, ID: id(105)}, want{}},
		{"new origin takes over, in line", Message{Origin: 7, Seq: 4, ID: id(106)}, want{6, false}},
		{"old origin is dropped", Message{Seq: 48, ID: id(107)}, want{}},
		{"new origin goes on", Message{Origin: 7, Seq: 5, ID: id(107)}, want{7, false}},
		// Origin 9 starts with something new: nothing proves it has
		// what came between (a failover after a crash).
		{"unproven takeover", Message{Origin: 9, Seq: 1, ID: id(120)}, want{8, true}},
		{"ids go on", Message{Origin: 9, Seq: 2, ID: id(121)}, want{9, false}},
		// An ID that is known to follow the last one proves it.
		{"consecutive takeover", Message{Origin: 11, Seq: 1, ID: EventID{Hi: 122, Prev: 121}}, want{10, false}},
		{"consecutive id after a hole", Message{Origin: 12, Seq: 1, ID: EventID{Hi: 130, Prev: 129}}, want{11, true}},
		// Without IDs a takeover cannot be proven either.
		{"no id", Message{Origin: 12, Seq: 2}, want{12, false}},
		{"no id, new origin", Message{Origin: 13, Seq: 1}, want{13, true}},
		{"no id, old origin", Message{Origin: 12, Seq: 3}, want{}},
	}
	var sq sequence
	epoch := ""
	for _, st := range steps {
		msg := st.msg
		got := want{}
		if sq.number(&msg) {
			got = want{msg.Seq, msg.Gap}
			if epoch == "" {
				epoch = msg.Epoch
			}
			if msg.Epoch != epoch || len(epoch) != 8 {
				t.Fatalf("%s: epoch %q; want %q, 8 characters", st.name, msg.Epoch, epoch)
			}
		} else if msg.Seq != st.msg.Seq || msg.Epoch != "" || msg.Gap != st.msg.Gap {
			t.Fatalf("%s: a dropped message was changed: %+v", st.name, msg)
		}
		if got != st.want {
			t.Fatalf("%s: number(%+v) = %+v; want %+v", st.name, st.msg, got, st.want)
		}
	}
}
