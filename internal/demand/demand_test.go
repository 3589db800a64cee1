package demand

import (
	"maps"
	"slices"
	"testing"
)

// wantSet is a sink that records what is wanted; it fails the test on a
// Want of a wanted key or an Unwant of an unwanted one (the router does
// not count references, so either would be a bug in the Set).
type wantSet struct {
	t      *testing.T
	wanted map[string]bool
	calls  int
}

func (w *wantSet) Want(keys []string) {
	w.calls++
	for _, k := range keys {
		if w.wanted[k] {
			w.t.Errorf("Want(%s) while wanted", k)
		}
		w.wanted[k] = true
	}
}

func (w *wantSet) Unwant(keys []string) {
	w.calls++
	for _, k := range keys {
		if !w.wanted[k] {
			w.t.Errorf("Unwant(%s) while not wanted", k)
		}
		delete(w.wanted, k)
	}
}

func TestSet(t *testing.T) {
	type op struct {
		kind string // want, unwant, pin, unpin
		keys []string
	}
	tests := []struct {
		name    string
		limit   int
		ops     []op
		want    []string // the union afterwards
		dropped int
		calls   int // calls of the sink
	}{
		{"want", 0, []op{{"want", []string{"b:1", "b:2"}}}, []string{"b:1", "b:2"}, 0, 1},
		{"want twice", 0, []op{{"want", []string{"b:1"}}, {"want", []string{"b:1"}}}, []string{"b:1"}, 0, 1},
		{"unwant", 0, []op{{"want", []string{"b:1", "b:2"}}, {"unwant", []string{"b:1", "b:9"}}}, []string{"b:2"}, 0, 2},
		{"pin survives unwant", 0, []op{{"pin", []string{"b:1"}}, {"want", []string{"b:1"}}, {"unwant", []string{"b:1"}}}, []string{"b:1"}, 0, 1},
		{"want survives unpin", 0, []op{{"want", []string{"b:1"}}, {"pin", []string{"b:1"}}, {"unpin", []string{"b:1"}}}, []string{"b:1"}, 0, 1},
		{"pin twice", 0, []op{{"pin", []string{"b:1"}}, {"pin", []string{"b:1"}}}, []string{"b:1"}, 0, 1},
		{"unpin releases", 0, []op{{"pin", []string{"b:1"}}, {"unpin", []string{"b:1"}}}, nil, 0, 2},
		{"limit drops", 3, []op{{"want", []string{"b:1", "b:2", "b:3", "b:4"}}}, []string{"b:1", "b:2", "b:3"}, 1, 1},
		{"overlap counts once", 3, []op{{"want", []string{"b:1", "b:2"}}, {"pin", []string{"b:1"}}, {"pin", []string{"b:3"}}, {"want", []string{"b:4"}}},
			[]string{"b:1", "b:2", "b:3"}, 1, 2},
		{"room after unwant", 3, []op{{"want", []string{"b:1", "b:2", "b:3"}}, {"unwant", []string{"b:1"}}, {"want", []string{"b:4"}}},
			[]string{"b:2", "b:3", "b:4"}, 0, 3},
		{"dropped key is not recorded", 1, []op{{"want", []string{"b:1", "b:2"}}, {"unwant", []string{"b:2"}}}, []string{"b:1"}, 1, 1},
		{"no-op is not a change", 0, []op{{"unwant", []string{"b:1"}}, {"unpin", []string{"b:1"}}}, nil, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := &wantSet{t: t, wanted: map[string]bool{}}
			dropped := 0
			s := New(sink, tc.limit, func(n int) { dropped += n })
			for _, o := range tc.ops {
				switch o.kind {
				case "want":
					s.Want(o.keys)
				case "unwant":
					s.Unwant(o.keys)
				case "pin":
					s.Pin(o.keys[0])
				case "unpin":
					s.Unpin(o.keys[0])
				}
			}
			if got := slices.Sorted(maps.Keys(sink.wanted)); !slices.Equal(got, tc.want) {
				t.Errorf("union = %v; want %v", got, tc.want)
			}
			if s.Len() != len(tc.want) {
				t.Errorf("Len() = %d; want %d", s.Len(), len(tc.want))
			}
			if dropped != tc.dropped {
				t.Errorf("dropped = %d; want %d", dropped, tc.dropped)
			}
			if sink.calls != tc.calls {
				t.Errorf("sink called %d times; want %d", sink.calls, tc.calls)
			}
		})
	}
}
