package upstream_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	. "github.com/marketgate/marketgate/upstream"

	"github.com/marketgate/marketgate/exchangesim/binancesim"
	"github.com/marketgate/marketgate/internal/waitfor"
	"github.com/marketgate/marketgate/upstream/binance"
)

// redundancySymbols and redundancyNames are the streams of the
// redundancy proof: trades of four symbols.
var (
	redundancySymbols = []string{"BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT"}
	redundancyNames   = []string{"btcusdt@trade", "ethusdt@trade", "bnbusdt@trade", "solusdt@trade"}
)

// redundancyTick makes the simulator trade often enough that a
// reconnect (a few milliseconds on loopback) misses trades.
const redundancyTick = 5 * time.Millisecond

// tradeTally counts, over one stream's published trades, the trade ids
// missing between the first and the last, the ids published again (or
// out of order), and the messages with Gap.
type tradeTally struct {
	trades, missing, repeated, gaps int
	first, last                     int64
}

func tallyTrades(t *testing.T, rec *recorder, name string) tradeTally {
	t.Helper()
	var n tradeTally
	for i, m := range rec.get("binance:" + name) {
		if m.Gap && i > 0 {
			n.gaps++
		}
		if m.Err != "" {
			t.Errorf("%s: Err message %q", name, m.Err)
			continue
		}
		id := num(t, decodeEvent(t, m.Data), "t")
		switch {
		case n.trades == 0:
			n.first = id
		case id <= n.last:
			n.repeated++
			continue
		case id > n.last+1:
			n.missing += int(id - n.last - 1)
		}
		n.trades++
		n.last = id
	}
	return n
}

// TestRedundancyRandomDrops is issue 17's proof: a strict simulator drops
// one random connection every 2 s; with Redundancy 2 the four trade
// streams lose no trade id and repeat none, with no Gap and no
// violation. 30 s of trades (8 s with -short).
func TestRedundancyRandomDrops(t *testing.T) {
	run := 30 * time.Second
	if testing.Short() {
		run = 8 * time.Second
	}
	const every = 2 * time.Second
	sim, addr := startSim(t, binancesim.Config{
		Symbols: redundancySymbols, TickInterval: redundancyTick, StrictMethod: true, DropEvery: every,
	})
	rec := newRecorder()
	b := newSimBinance(t, addr, rec, func(c *Config) { c.Redundancy = 2 })
	runBinance(t, b)
	waitfor.Cond(t, 5*time.Second, b.Ready)
	b.Subscribe(redundancyNames)
	waitMessages(t, rec, redundancyNames, 1)
	time.Sleep(run) // the soak: what is checked is what it published meanwhile

	for _, name := range redundancyNames {
		n := tallyTrades(t, rec, name)
		t.Logf("%s: %d trades, ids %d…%d, missing %d, repeated %d, gaps %d", name, n.trades, n.first, n.last, n.missing, n.repeated, n.gaps)
		if n.missing != 0 || n.repeated != 0 || n.gaps != 0 {
			t.Errorf("%s: %d trade ids missing, %d repeated, %d messages with Gap; want none", name, n.missing, n.repeated, n.gaps)
		}
		if n.trades < 100 {
			t.Errorf("%s: %d trades in %v; the simulator trades every few ticks", name, n.trades, run)
		}
	}
	checkSequences(t, rec)
	drops := 0
	for _, c := range sim.Clients() {
		if c.CloseCode == 1006 {
			drops++
		}
	}
	if min := int(run/every) - 2; drops < min {
		t.Errorf("%d connections dropped; want at least %d: the proof needs drops", drops, min)
	}
	if v := sim.Violations(); v != 0 {
		t.Errorf("simulator counted %d violations; want 0", v)
	}
	if acc := sim.Accepted(); acc > drops+2 {
		t.Errorf("simulator accepted %d connections for %d drops; want one per lane and one per drop", acc, drops)
	}
	st := b.Status()
	t.Logf("drops %d, connections accepted %d, dedup %+v, reconnects %d", drops, sim.Accepted(), st.Dedup, st.Reconnects)
	if st.Redundancy != 2 || st.Dedup.Duplicates == 0 || st.Dedup.Merged == 0 {
		t.Errorf("status redundancy %d, dedup %+v; want 2 lanes and both merged events and duplicates", st.Redundancy, st.Dedup)
	}
}

// TestRedundancyOneLosesOnDrop shows that the proof above can fail: with
// one connection per stream, a drop loses the trades made until the
// reconnect has subscribed again (and the feed says so with Gap).
func TestRedundancyOneLosesOnDrop(t *testing.T) {
	sim, addr := startSim(t, binancesim.Config{Symbols: redundancySymbols, TickInterval: redundancyTick, StrictMethod: true})
	rec := newRecorder()
	b := newSimBinance(t, addr, rec, nil)
	runBinance(t, b)
	waitfor.Cond(t, 5*time.Second, b.Ready)
	b.Subscribe(redundancyNames)
	waitMessages(t, rec, redundancyNames, 1)
	lost := func() (missing, gaps int) {
		for _, name := range redundancyNames {
			n := tallyTrades(t, rec, name)
			missing += n.missing
			gaps += n.gaps
		}
		return missing, gaps
	}
	for i := 0; i < 20; i++ {
		if missing, _ := lost(); missing > 0 {
			break
		}
		rec.mu.Lock()
		before := rec.published
		rec.mu.Unlock()
		if !sim.DropOne() {
			t.Fatal("DropOne: no connection open")
		}
		waitfor.Cond(t, 5*time.Second, func() error {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if rec.published < before+50 || sim.OpenConnections() != 1 {
				return fmt.Errorf("%d messages since the drop, %d connections open", rec.published-before, sim.OpenConnections())
			}
			return nil
		})
	}
	missing, gaps := lost()
	if missing == 0 || gaps == 0 {
		t.Errorf("with Redundancy 1 drops lost %d trade ids and published %d Gaps; want some of both", missing, gaps)
	}
	if st := b.Status(); st.Redundancy != 1 || st.Dedup != (RedundancyStats{}) {
		t.Errorf("status redundancy %d, dedup %+v; want 1 and nothing merged", st.Redundancy, st.Dedup)
	}
}

// TestRedundancyLimits: the lanes share the feed's connections per
// endpoint (each gets MaxShards/N), so redundancy carries fewer streams
// instead of opening more connections; TestRedundancySharesAttemptBudget
// checks the shared connection-attempt budget.
func TestRedundancyLimits(t *testing.T) {
	rec := newRecorder()
	f, err := New(Config{Dialect: binance.Spot, URL: "ws://127.0.0.1:1", RESTURL: "http://127.0.0.1:1", Publisher: rec,
		Redundancy: 2, MaxShards: 2, MaxStreams: 1, Lazy: true})
	if err != nil {
		t.Fatal(err)
	}
	f.Subscribe([]string{"btcusdt@trade", "ethusdt@trade"})
	st := f.Status()
	lanes := map[int]int{}
	for _, sh := range st.Shards {
		lanes[sh.Lane]++
	}
	if len(st.Shards) != 2 || lanes[0] != 1 || lanes[1] != 1 {
		t.Errorf("shards %+v; want one per lane (MaxShards 2 over 2 lanes)", st.Shards)
	}
	if len(st.Failed) != 1 || st.Redundancy != 2 {
		t.Errorf("failed %+v, redundancy %d; want the second stream over the limit of one stream per lane, 2", st.Failed, st.Redundancy)
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Redundancy: MaxRedundancy + 1}, "Redundancy"},
		{Config{Redundancy: -1}, "Redundancy"},
		{Config{Redundancy: 3, MaxShards: 2}, "Redundancy"},
	} {
		tc.cfg.Dialect, tc.cfg.Publisher = binance.Spot, rec
		err := CheckConfig(tc.cfg)
		if ce, ok := errors.AsType[*ConfigError](err); !ok || ce.Field != tc.want {
			t.Errorf("CheckConfig(Redundancy %d, MaxShards %d) = %v; want a ConfigError of %s", tc.cfg.Redundancy, tc.cfg.MaxShards, err, tc.want)
		}
	}
}

// TestRedundancySharesAttemptBudget: the lanes draw their dials from one
// connection-attempt budget. With room for one dial an hour, the second
// lane stays down (each lane's own budget would let it dial, a second
// after the first); with room for two, both lanes come up.
func TestRedundancySharesAttemptBudget(t *testing.T) {
	for _, tc := range []struct {
		attempts, wantDials int
	}{
		{1, 1},
		{2, 2},
	} {
		t.Run(fmt.Sprintf("attempts=%d", tc.attempts), func(t *testing.T) {
			sim, addr := startSim(t, binancesim.Config{Symbols: redundancySymbols, TickInterval: redundancyTick, StrictMethod: true})
			b := newSimBinance(t, addr, newRecorder(), func(c *Config) {
				c.Redundancy, c.MaxConnAttempts, c.ConnAttemptWindow = 2, tc.attempts, time.Hour
			})
			runBinance(t, b)
			b.Subscribe(redundancyNames)
			waitfor.Cond(t, 10*time.Second, func() error {
				if n := sim.Accepted(); n != tc.wantDials {
					return fmt.Errorf("%d connections accepted; want %d", n, tc.wantDials)
				}
				return nil
			})
			// The second lane dials a second after the first: give it
			// three before checking it did not.
			time.Sleep(3 * time.Second)
			if n, up := sim.Accepted(), b.Status().LanesUp; n != tc.wantDials || up != tc.wantDials {
				t.Errorf("%d connections accepted, %d lanes up; want %d of each", n, up, tc.wantDials)
			}
		})
	}
}
