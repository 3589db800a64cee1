package cluster

import (
	"maps"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

func set(keys ...string) map[string]struct{} {
	m := make(map[string]struct{}, len(keys))
	for _, k := range keys {
		m[k] = struct{}{}
	}
	return m
}

func TestDiff(t *testing.T) {
	tests := []struct {
		name           string
		have, want     map[string]struct{}
		added, removed []string
	}{
		{"both empty", nil, nil, nil, nil},
		{"start", nil, set("b:2", "b:1"), []string{"b:1", "b:2"}, nil},
		{"stop", set("b:1", "b:2"), nil, nil, []string{"b:1", "b:2"}},
		{"same", set("b:1"), set("b:1"), nil, nil},
		{"both ways", set("b:1", "b:2"), set("b:2", "b:3"), []string{"b:3"}, []string{"b:1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			added, removed := diff(tc.have, tc.want)
			if !slices.Equal(added, tc.added) || !slices.Equal(removed, tc.removed) {
				t.Errorf("diff(%v, %v) = %v, %v; want %v, %v", tc.have, tc.want, added, removed, tc.added, tc.removed)
			}
		})
	}
}

func TestGroupByExchange(t *testing.T) {
	known := map[string]bool{"binance": true, "binance-futures": true}
	tests := []struct {
		name string
		in   []string
		want map[string][]string
	}{
		{"empty", nil, map[string][]string{}},
		{"split", []string{"binance:a", "binance-futures:b", "binance:c"},
			map[string][]string{"binance": {"binance:a", "binance:c"}, "binance-futures": {"binance-futures:b"}}},
		{"unknown and malformed dropped", []string{"kraken:a", "binance", ":x", "binance:", "binance:ok"},
			map[string][]string{"binance": {"binance:ok"}}},
		{"prefix is not a match", []string{"binancex:a", "binance-futuresx:b"}, map[string][]string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := groupByExchange(tc.in, known)
			gotSorted := map[string][]string{}
			for ex, keys := range got {
				gotSorted[ex] = slices.Sorted(maps.Keys(keys))
			}
			if !maps.EqualFunc(gotSorted, tc.want, slices.Equal) {
				t.Errorf("groupByExchange(%v) = %v; want %v", tc.in, gotSorted, tc.want)
			}
		})
	}
}

// TestCarrierUnion drives the carrier through claims and demand changes
// and checks what Local carries after each step.
func TestCarrierUnion(t *testing.T) {
	local := newFakeLocal()
	c := newCarrier(local, testExchanges)
	far := time.Now().Add(time.Hour)
	union := func(keys ...string) map[string]map[string]struct{} {
		return groupByExchange(keys, map[string]bool{testExchange: true, testFutures: true})
	}
	steps := []struct {
		name string
		do   func()
		want []string
		now  int // keys removed by UnwantNow so far: those of ended claims
	}{
		{"demand without a claim is not carried", func() { c.setUnion(union("binance:a")) }, nil, 0},
		{"a claim starts from no demand", func() { c.setUntil(testExchange, far) }, nil, 0},
		{"demand of the claimed exchange", func() { c.setUnion(union("binance:a", "binance:b", "binance-futures:x")) },
			[]string{"binance:a", "binance:b"}, 0},
		{"renewal changes nothing", func() { c.setUntil(testExchange, far.Add(time.Second)) }, []string{"binance:a", "binance:b"}, 0},
		{"second claim uses the current demand", func() { c.setUntil(testFutures, far) },
			[]string{"binance-futures:x", "binance:a", "binance:b"}, 0},
		{"demand shrinks and grows", func() { c.setUnion(union("binance:b", "binance:c", "binance-futures:x")) },
			[]string{"binance-futures:x", "binance:b", "binance:c"}, 0},
		{"claim lost", func() { c.setUntil(testExchange, time.Time{}) }, []string{"binance-futures:x"}, 2},
		{"stop all", c.stopAll, nil, 3},
		{"frozen: no calls", func() {
			c.setUntil(testExchange, far)
			c.setUnion(union("binance:z"))
			c.freeze()
			c.setUntil(testExchange, time.Time{})
		}, []string{"binance:z"}, 3},
	}
	for _, st := range steps {
		st.do()
		if got := local.carrying(""); !slices.Equal(got, st.want) {
			t.Fatalf("%s: Local carries %v; want %v", st.name, got, st.want)
		}
		local.mu.Lock()
		now := local.now
		local.mu.Unlock()
		if now != st.now {
			t.Fatalf("%s: %d keys removed at once (UnwantNow); want %d", st.name, now, st.now)
		}
	}
	local.check(t, "carrier")
}

// TestCarrierWatchdog checks that the watchdog stops carrying exactly
// when a claim ends, with nobody calling the carrier: a lease loop stuck
// in a Redis call cannot keep a node carrying.
func TestCarrierWatchdog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		local := newFakeLocal()
		c := newCarrier(local, testExchanges)
		ctx := t.Context()
		go c.watch(ctx)
		c.setUntil(testExchange, time.Now().Add(time.Second))
		c.setUntil(testFutures, time.Now().Add(2*time.Second))
		c.setUnion(groupByExchange([]string{"binance:a", "binance-futures:b"}, map[string]bool{testExchange: true, testFutures: true}))
		checks := []struct {
			after time.Duration
			want  []string
		}{
			{999 * time.Millisecond, []string{"binance-futures:b", "binance:a"}},
			{2 * time.Millisecond, []string{"binance-futures:b"}},
			{998 * time.Millisecond, []string{"binance-futures:b"}},
			{2 * time.Millisecond, nil},
		}
		for _, ch := range checks {
			time.Sleep(ch.after)
			synctest.Wait()
			if got := local.carrying(""); !slices.Equal(got, ch.want) {
				t.Fatalf("at %v: Local carries %v; want %v", ch.after, got, ch.want)
			}
		}
		if c.valid() {
			t.Error("valid() = true after every claim ended")
		}
		local.check(t, "watchdog")
	})
}
