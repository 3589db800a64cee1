package bybit_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/marketgate/marketgate/exchangesim/bybitsim"
	"github.com/marketgate/marketgate/exchangesim/bybitsim/simtest"
	"github.com/marketgate/marketgate/internal/waitfor"
	"github.com/marketgate/marketgate/upstream"
	"github.com/marketgate/marketgate/upstream/bybit"
)

// TestFeedRedundancyLinear: Bybit linear trades carry UUIDs, without
// order (upstream.OrderSame), so a redundant feed tells the two lanes'
// copies apart by their bytes. Dropping one connection at a time, four
// times, loses no trade and repeats none. The simulator numbers its
// trades across symbols in the UUIDs' last 12 hex digits, which is what
// the test counts; the feed never reads them.
func TestFeedRedundancyLinear(t *testing.T) {
	syms := bybitsim.DefaultSymbols
	sim, addr := simtest.Start(t, bybitsim.Config{Product: bybitsim.ProductLinear, Symbols: syms, TickInterval: 5 * time.Millisecond})
	rec := newRecorder()
	f := newFeed(t, bybit.Linear, addr, rec, func(c *upstream.Config) { c.Redundancy = 2 })
	keys := keysOf(bybit.Linear, syms, "publicTrade.")
	f.Subscribe(names(keys, bybit.Linear))
	rec.waitMore(t, keys, nil, 3)
	bothUp := func() error {
		if st := f.Status(); st.LanesUp != 2 || st.Streams != 2*len(keys) {
			return fmt.Errorf("%d lanes up, %d streams", st.LanesUp, st.Streams)
		}
		return nil
	}
	for range 4 {
		waitfor.Cond(t, 10*time.Second, bothUp)
		rec.waitMore(t, keys, rec.counts(keys), 20) // the rejoined lane is in line
		if !sim.DropOne() {
			t.Fatal("DropOne: no connection open")
		}
		rec.waitMore(t, keys, rec.counts(keys), 20)
	}
	if gaps := check(t, rec, bybit.Linear, keys); len(gaps) != 0 {
		t.Errorf("gaps %v; want none with a second lane", gaps)
	}
	// Every trade between the latest first and the earliest last trade
	// of the streams, once.
	seen := map[int64]int{}
	var from, to int64 = 0, 1 << 62
	for _, key := range keys {
		var lo, hi int64 = 1 << 62, 0
		for _, m := range rec.get(key) {
			var ev struct{ Data []struct{ I string } }
			if err := json.Unmarshal(m.Data, &ev); err != nil {
				t.Fatalf("%s: %s: %v", key, m.Data, err)
			}
			for _, tr := range ev.Data {
				n, err := strconv.ParseInt(tr.I[strings.LastIndexByte(tr.I, '-')+1:], 16, 64)
				if err != nil {
					t.Fatalf("%s: trade id %q: %v", key, tr.I, err)
				}
				seen[n]++
				lo, hi = min(lo, n), max(hi, n)
			}
		}
		from, to = max(from, lo), min(to, hi)
	}
	missing, repeated := 0, 0
	for n := from; n <= to; n++ {
		switch seen[n] {
		case 0:
			missing++
		case 1:
		default:
			repeated++
		}
	}
	t.Logf("trades %d…%d: %d missing, %d repeated; status %+v", from, to, missing, repeated, f.Status().Dedup)
	if to-from < 100 || missing != 0 || repeated != 0 {
		t.Errorf("trades %d…%d: %d missing, %d repeated; want a hundred or more, none missing or repeated", from, to, missing, repeated)
	}
	if n := sim.Violations(); n != 0 {
		t.Errorf("simulator violations = %d", n)
	}
}
