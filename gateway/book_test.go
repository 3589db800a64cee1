package gateway

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/marketgate/marketgate/book/booktest"
	"github.com/marketgate/marketgate/downstream/downstreamtest"
	"github.com/marketgate/marketgate/exchangesim/binancesim"
)

// followBook subscribes key on a native connection to the gateway at addr
// and returns a function that reads the connection's frames into f until
// done reports true.
func followBook(t *testing.T, addr, key string, f *booktest.Follower) func(done func() bool) {
	t.Helper()
	c := downstreamtest.Dial(t, "ws://"+addr+"/ws")
	c.Send(`{"op":"subscribe","id":1,"streams":["` + key + `"]}`)
	return func(done func() bool) {
		t.Helper()
		for !done() {
			var m struct {
				Stream string          `json:"stream"`
				Data   json.RawMessage `json:"data"`
			}
			if err := json.Unmarshal(c.Next(), &m); err != nil {
				t.Fatal(err)
			}
			if m.Stream == key {
				f.Apply(m.Data)
			}
		}
	}
}

// TestBookThroughGaps keeps binance:btcusdt@book through the gateway while
// the simulator withholds diffs (an engine restart's gap): after each gap
// the gateway resyncs with a new snapshot flagged "gap", and with the
// market paused the client's book equals the simulator's own, level for
// level, at the same update id. Each sync costs one REST snapshot, and
// the updates always continue the book.
func TestBookThroughGaps(t *testing.T) {
	const key, rounds = "binance:btcusdt@book", 3
	sim, simAddr := startSim(t, binancesim.Config{Symbols: []string{"BTCUSDT", "ETHUSDT"}, TickInterval: 20 * time.Millisecond, Seed: 7, StrictBook: true})
	addr := startGateway(t, simAddr, Config{})
	f := &booktest.Follower{}
	pump := followBook(t, addr, key, f)
	for round := range rounds {
		if round > 0 {
			sim.InjectGap("BTCUSDT")
			pump(func() bool { _, gaps, _, _ := f.Counts(); return gaps == round })
		}
		pump(func() bool { _, _, updates, _ := f.Counts(); return updates > 20 })
		sim.Pause()
		id, bids, asks := sim.Book("BTCUSDT")
		pump(func() bool { return f.LastUpdateID() == id && f.Diff(bids, asks, 0) == "" })
		sim.Resume()
		t.Logf("round %d: book equal to the simulator's at update %d (%d bids, %d asks)", round, id, len(bids), len(asks))
	}
	if b := f.Broken(); len(b) > 0 {
		t.Errorf("contract broken: %v", b)
	}
	snaps, gaps, _, _ := f.Counts()
	if snaps != rounds || gaps != rounds-1 {
		t.Errorf("%d snapshots, %d flagged gap; want %d and %d", snaps, gaps, rounds, rounds-1)
	}
	st := sim.RESTStats()
	if n := st.Requests["/api/v3/depth"]; n != rounds {
		t.Errorf("%d depth snapshots asked of the exchange; want %d, one per sync", n, rounds)
	}
	if st.Violations != 0 {
		t.Errorf("the simulator saw %d breaches of the book procedure: %+v", st.Violations, st)
	}
}

// BenchmarkBookLatency measures how long after the exchange's event time
// (E of the diff, on the simulator's clock, which is this machine's) a
// subscriber gets the book update that applies the diff, next to the raw
// diff itself on the same connection: what keeping the book adds on the
// way. b.N is the number of book updates measured (run it with e.g.
// -benchtime=500x); reported are the p50 and p99 of both, in ms.
func BenchmarkBookLatency(b *testing.B) {
	const key, raw = "binance:btcusdt@book", "binance:btcusdt@depth@100ms"
	if b.N == 1 {
		return // the framework's probe run; the measurement is the -benchtime=Nx run
	}
	_, simAddr := startSim(b, binancesim.Config{Symbols: []string{"BTCUSDT"}, TickInterval: 20 * time.Millisecond})
	addr := startGateway(b, simAddr, Config{})
	c := downstreamtest.Dial(b, "ws://"+addr+"/ws")
	c.Send(`{"op":"subscribe","id":1,"streams":["` + raw + `","` + key + `"]}`)
	// The keeper publishes a book update before the raw diff it applies
	// goes on: match them by u whichever comes first.
	eventTime := map[int64]int64{}     // diff u -> E (ms)
	bookArrival := map[int64]float64{} // book update u -> arrival (ms)
	var rawLat, bookLat []float64
	b.ResetTimer()
	for len(bookLat) < b.N {
		p, err := c.Read(10 * time.Second)
		if err != nil {
			b.Fatalf("%v after %d raw and %d book messages", err, len(rawLat), len(bookLat))
		}
		now := float64(time.Now().UnixMicro()) / 1000
		var m struct {
			Stream string `json:"stream"`
			Data   struct {
				Type  string `json:"type"`
				Ev    string `json:"e"` // keys match without regard to case: "e" needs its own field
				E     int64  `json:"E"`
				First int64  `json:"U"`
				U     int64  `json:"u"`
			} `json:"data"`
		}
		if json.Unmarshal(p, &m) != nil {
			continue
		}
		switch {
		case m.Stream == raw:
			rawLat = append(rawLat, now-float64(m.Data.E))
			if at, ok := bookArrival[m.Data.U]; ok {
				bookLat = append(bookLat, at-float64(m.Data.E))
				delete(bookArrival, m.Data.U)
			} else {
				eventTime[m.Data.U] = m.Data.E
			}
		case m.Stream == key && m.Data.Type == "update":
			if e, ok := eventTime[m.Data.U]; ok {
				bookLat = append(bookLat, now-float64(e))
				delete(eventTime, m.Data.U)
			} else {
				bookArrival[m.Data.U] = now
			}
		}
	}
	b.StopTimer()
	pct := func(v []float64, q float64) float64 {
		slices.Sort(v)
		return v[min(len(v)-1, int(q*float64(len(v))))]
	}
	b.ReportMetric(pct(rawLat, 0.5), "raw-p50-ms")
	b.ReportMetric(pct(rawLat, 0.99), "raw-p99-ms")
	b.ReportMetric(pct(bookLat, 0.5), "book-p50-ms")
	b.ReportMetric(pct(bookLat, 0.99), "book-p99-ms")
	b.ReportMetric(0, "ns/op")
}

// TestBookDuringBan: the exchange bans the IP (418) just as a book needs
// a new snapshot. Subscribers are told the book is stale, no REST call at
// all reaches the exchange until the ban's Retry-After has passed, and
// then the book comes back with a snapshot flagged gap.
func TestBookDuringBan(t *testing.T) {
	const key, ban = "binance:btcusdt@book@20", 3 * time.Second
	sim, simAddr := startSim(t, binancesim.Config{Symbols: []string{"BTCUSDT"}, TickInterval: 20 * time.Millisecond, Seed: 5})
	addr := startGateway(t, simAddr, Config{})
	f := &booktest.Follower{}
	pump := followBook(t, addr, key, f)
	pump(func() bool { _, _, updates, _ := f.Counts(); return updates > 5 })
	sim.Ban(ban)
	bannedAt := time.Now()
	sim.InjectGap("BTCUSDT")
	pump(func() bool { _, _, _, stale := f.Counts(); return stale > 0 })
	during := sim.RESTStats()
	pump(func() bool { _, gaps, _, _ := f.Counts(); return gaps > 0 })
	back := time.Since(bannedAt)
	after := sim.RESTStats()
	if during.Status418 != 1 || during.Requests["/api/v3/depth"] != 2 {
		t.Errorf("during the ban: %d depth calls, %d answered 418; want 2 (the first sync's and one refused) and 1", during.Requests["/api/v3/depth"], during.Status418)
	}
	if after.Status418 != 1 || after.DuringBackoff != 0 {
		t.Errorf("after the ban: %d answered 418, %d calls inside a Retry-After; want 1 and 0", after.Status418, after.DuringBackoff)
	}
	if back < ban {
		t.Errorf("the book came back %v after the ban began; not before the ban's %v", back, ban)
	}
	if b := f.Broken(); len(b) > 0 {
		t.Errorf("contract broken: %v", b)
	}
	t.Logf("stale during the ban; book back %v after it began", back.Round(time.Millisecond))
}
