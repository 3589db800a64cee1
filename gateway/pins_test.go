package gateway

import (
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/marketgate/marketgate/internal/demand"
)

// wantSet is a router that records what is wanted; it fails the test on
// a Want of a wanted key or an Unwant of an unwanted one (the router does
// not count references, so either would be a bug above it).
type wantSet struct {
	t      *testing.T
	wanted map[string]bool
}

func (w *wantSet) Validate(key string) error {
	if key == "bad" {
		return errors.New("invalid stream")
	}
	return nil
}

func (w *wantSet) Want(keys []string) {
	for _, k := range keys {
		if w.wanted[k] {
			w.t.Errorf("Want(%s) while wanted", k)
		}
		w.wanted[k] = true
	}
}

func (w *wantSet) Unwant(keys []string) {
	for _, k := range keys {
		if !w.wanted[k] {
			w.t.Errorf("Unwant(%s) while not wanted", k)
		}
		delete(w.wanted, k)
	}
}

func TestPins(t *testing.T) {
	router := &wantSet{t: t, wanted: map[string]bool{}}
	d := localSource{Set: demand.New(router, 0, nil), router: router}
	p := newPins(d.Validate, d)
	steps := []struct {
		name string
		do   func() error
		want []string // wanted upstream afterwards
	}{
		{"client wants a", func() error { d.Want([]string{"a"}); return nil }, []string{"a"}},
		{"pin a", func() error { return p.Pin("a") }, []string{"a"}},
		{"client leaves a: pinned", func() error { d.Unwant([]string{"a"}); return nil }, []string{"a"}},
		{"pin b, no client", func() error { return p.Pin("b") }, []string{"a", "b"}},
		{"pin b again", func() error { return p.Pin("b") }, []string{"a", "b"}},
		{"client wants b", func() error { d.Want([]string{"b"}); return nil }, []string{"a", "b"}},
		{"unpin b: a client holds it", func() error { return p.Unpin("b") }, []string{"a", "b"}},
		{"unpin a: nobody holds it", func() error { return p.Unpin("a") }, []string{"b"}},
		{"client leaves b", func() error { d.Unwant([]string{"b"}); return nil }, nil},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got := slices.Sorted(maps.Keys(router.wanted)); !slices.Equal(got, st.want) {
			t.Fatalf("%s: wanted %v; want %v", st.name, got, st.want)
		}
	}
	if err := p.Unpin("a"); !errors.Is(err, errNotPinned) {
		t.Errorf("Unpin of an unpinned stream = %v; want errNotPinned", err)
	}
	if err := p.Pin("bad"); err == nil || len(p.Pinned()) != 0 {
		t.Errorf("Pin(bad) = %v, pinned %v; want the validation error and no pin", err, p.Pinned())
	}
}
