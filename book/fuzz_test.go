package book

import (
	"context"
	"errors"
	"net/url"
	"testing"

	"github.com/marketgate/marketgate/hub"
)

// FuzzKeeperDiff feeds arbitrary diff events to a synced keeper: it must
// never panic, and whatever it publishes must still be a book a client
// can follow (the contract holds: every update continues the last).
func FuzzKeeperDiff(f *testing.F) {
	f.Add([]byte(`{"e":"depthUpdate","E":1,"s":"X","U":101,"u":102,"b":[["1.0","2"]],"a":[["3","0"]]}`))
	f.Add([]byte(`{"U":1,"u":0}`))
	f.Add([]byte(`{"U":101,"u":101,"pu":100,"b":[["x","1"],["1","-1"]],"a":[]}`))
	f.Add([]byte(`{"U":9e99,"u":1e300}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, futures := range []bool{false, true} {
			h := &hub.Memory{}
			b, err := New(Config{Name: "x", Procedure: Binance{Futures: futures}, Fetch: noFetch, Publisher: h, Depth: 5})
			if err != nil {
				t.Fatal(err)
			}
			c := &client{}
			h.Subscribe(t.Context(), "x:s@book", c)
			k := newKeeper(b, "s")
			k.views["x:s@book"] = &view{key: "x:s@book", n: 5}
			k.mu.Lock()
			k.syncing = true
			k.buf = append(k.buf, Diff{First: 100, Last: 100, Prev: 99})
			k.mu.Unlock()
			if _, err := k.adopt(t.Context(), Snapshot{LastUpdateID: 100, Bids: [][2]string{{"1", "1"}}, Asks: [][2]string{{"2", "1"}}}); err != nil {
				t.Fatal(err)
			}
			k.onDiff(t.Context(), hub.Message{Stream: k.diff, Data: data})
			k.onDiff(t.Context(), hub.Message{Stream: k.diff, Data: data})
			c.mu.Lock()
			broken := c.broken
			c.mu.Unlock()
			if len(broken) > 0 {
				t.Fatalf("futures %v: contract broken by %q: %v", futures, data, broken)
			}
		}
	})
}

// noFetch fails every snapshot: the fuzz target adopts its own.
func noFetch(context.Context, string, url.Values) ([]byte, error) {
	return nil, errors.New("no snapshots here")
}
