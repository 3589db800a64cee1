package upstream_test

import (
	"errors"
	"slices"
	"sync"
	"testing"

	. "github.com/marketgate/marketgate/upstream"
)

// fakeExchange records calls and accepts names in valid.
type fakeExchange struct {
	name  string
	valid map[string]bool

	mu    sync.Mutex
	subs  [][]string
	unsub [][]string
}

func (f *fakeExchange) Name() string { return f.name }

func (f *fakeExchange) Validate(name string) error {
	if !f.valid[name] {
		return InvalidStream(name)
	}
	return nil
}

func (f *fakeExchange) Subscribe(names []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subs = append(f.subs, slices.Clone(names))
}

func (f *fakeExchange) Unsubscribe(names []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unsub = append(f.unsub, slices.Clone(names))
}

func TestRouterValidate(t *testing.T) {
	bin := &fakeExchange{name: "binance", valid: map[string]bool{"btcusdt@trade": true}}
	r := NewRouter(bin, &fakeExchange{name: "other"})
	tests := []struct {
		key     string
		wantErr error
		wantMsg string
	}{
		{"binance:btcusdt@trade", nil, ""},
		{"binance:btcusdt@tradez", ErrInvalidStream, `invalid stream name "btcusdt@tradez"`},
		{"kraken:btcusdt@trade", ErrUnknownExchange, `unknown exchange "kraken"`},
		{"foo", ErrInvalidKey, `invalid stream key "foo": want <exchange>:<stream>`},
		{":btcusdt@trade", ErrInvalidKey, `invalid stream key ":btcusdt@trade": want <exchange>:<stream>`},
		{"binance:", ErrInvalidKey, `invalid stream key "binance:": want <exchange>:<stream>`},
		{"", ErrInvalidKey, `invalid stream key "": want <exchange>:<stream>`},
		{"Binance:btcusdt@trade", ErrUnknownExchange, `unknown exchange "Binance"`},
	}
	for _, tc := range tests {
		t.Run(tc.key, func(t *testing.T) {
			err := r.Validate(tc.key)
			if (err == nil) != (tc.wantErr == nil) || !errors.Is(err, tc.wantErr) {
				t.Fatalf("Validate(%q) = %v; want %v", tc.key, err, tc.wantErr)
			}
			if err != nil && err.Error() != tc.wantMsg {
				t.Errorf("Validate(%q) message = %q; want %q", tc.key, err.Error(), tc.wantMsg)
			}
		})
	}
}

func TestRouterWantGroupsByExchange(t *testing.T) {
	a := &fakeExchange{name: "binance"}
	b := &fakeExchange{name: "other"}
	r := NewRouter(a, b)
	r.Want([]string{"binance:x@trade", "other:y", "binance:z@trade", "bogus", "kraken:q"})
	r.Unwant([]string{"other:y"})
	if want := [][]string{{"x@trade", "z@trade"}}; !slices.EqualFunc(a.subs, want, slices.Equal) {
		t.Errorf("binance Subscribe calls = %q; want %q", a.subs, want)
	}
	if want := [][]string{{"y"}}; !slices.EqualFunc(b.subs, want, slices.Equal) {
		t.Errorf("other Subscribe calls = %q; want %q", b.subs, want)
	}
	if want := [][]string{{"y"}}; !slices.EqualFunc(b.unsub, want, slices.Equal) {
		t.Errorf("other Unsubscribe calls = %q; want %q", b.unsub, want)
	}
	if len(a.unsub) != 0 {
		t.Errorf("binance Unsubscribe calls = %q; want none", a.unsub)
	}
}

func TestNewRouterPanics(t *testing.T) {
	tests := []struct {
		name string
		exs  []Exchange
	}{
		{"duplicate", []Exchange{&fakeExchange{name: "a"}, &fakeExchange{name: "a"}}},
		{"empty name", []Exchange{&fakeExchange{name: ""}}},
		{"colon", []Exchange{&fakeExchange{name: "a:b"}}},
		{"nil", []Exchange{nil}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("NewRouter did not panic")
				}
			}()
			NewRouter(tc.exs...)
		})
	}
}

// nowExchange is a fakeExchange that can unsubscribe without linger.
type nowExchange struct {
	fakeExchange
	now [][]string
}

func (f *nowExchange) UnsubscribeNow(names []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = append(f.now, slices.Clone(names))
}

func TestRouterUnwantNow(t *testing.T) {
	plain := &fakeExchange{name: "plain"}
	now := &nowExchange{fakeExchange: fakeExchange{name: "now"}}
	r := NewRouter(plain, now)
	r.UnwantNow([]string{"plain:a", "now:b", "now:c", "bogus"})
	if want := [][]string{{"a"}}; !slices.EqualFunc(plain.unsub, want, slices.Equal) {
		t.Errorf("plain Unsubscribe calls = %q; want %q", plain.unsub, want)
	}
	if want := [][]string{{"b", "c"}}; !slices.EqualFunc(now.now, want, slices.Equal) || len(now.unsub) != 0 {
		t.Errorf("now: UnsubscribeNow calls = %q, Unsubscribe calls = %q; want %q and none", now.now, now.unsub, want)
	}
}
