package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/marketgate/marketgate/downstream/downstreamtest"
	"github.com/marketgate/marketgate/exchangesim/bybitsim"
	bybitsimtest "github.com/marketgate/marketgate/exchangesim/bybitsim/simtest"
	"github.com/marketgate/marketgate/exchangesim/okxsim"
	okxsimtest "github.com/marketgate/marketgate/exchangesim/okxsim/simtest"
	"github.com/marketgate/marketgate/internal/waitfor"
	"github.com/marketgate/marketgate/upstream"
)

// The soak of OKX and Bybit: each exchange's strict simulator behind one
// in-process gateway that carries that exchange only, and browsers on
// top. What each phase proves:
//
//   - bad keys (unknown instrument, malformed name, wrong channel) are
//     refused to the browser with invalid_stream and never reach the
//     exchange;
//   - 500 browsers subscribing at once cost the exchange a few batched
//     requests within its limits (Bybit spot: 10 args a request; OKX:
//     its per-connection request budget), each stream carried once;
//   - planned handovers (the exchange's shutdown notices, and the
//     gateway's own rotation every few seconds) lose and repeat nothing:
//     no gap notice, trade ids contiguous;
//   - an abrupt drop of every exchange connection is followed by a
//     reconnect within the exchange's connection-attempt limit, a gap
//     notice where events may be lost, and no duplicate.
//
// The simulators count every rule the gateway breaks; the test wants
// none, and no handshake refused for too many attempts.

// exchangeSoakDuration is how long each exchange's soak runs after its
// browsers are in: one cycle of notices and a drop in the test command,
// cycles for MARKETGATE_SOAK (e.g. 5m, as TestSoak) with it set.
func exchangeSoakDuration(t *testing.T) time.Duration {
	if os.Getenv("MARKETGATE_SOAK") == "" {
		return 0 // one cycle
	}
	return soakDuration(t)
}

// soakVenue is one exchange under soak.
type soakVenue struct {
	name string // the exchange's name in stream keys and the gateway's table
	// symbols are the instruments the simulator lists, in stream-name form.
	symbols []string
	// trade, state and book make a stream key of a symbol.
	trade, state, book func(sym string) string
	// ids returns the range of trade ids an event of a trade stream
	// carries, first to last (an OKX push aggregates count fills and
	// names the last).
	ids func(data map[string]json.RawMessage) (lo, hi int64, err error)
	// perStream: ids leave no hole within a stream (OKX). Otherwise the
	// ids are numbered across the exchange's instruments (the Bybit
	// simulator), so only the union of every instrument's trades is
	// contiguous: an auditor client follows them all.
	perStream bool
	// bad are keys the gateway must refuse before anything goes upstream.
	bad []string
	// notice announces a planned close of every exchange connection,
	// closing them grace later.
	notice                           func(grace time.Duration)
	dropAll                          func()
	violations, refused, connections func() int
	accepted                         func() int // connections ever made
	// requests returns the subscribe and unsubscribe requests of every
	// connection ever made; subs, the connections holding each stream
	// name now.
	requests func() int
	subs     func() map[string]int
	// name maps a stream key to the simulator's name of it.
	simName func(key string) string
	// edit changes the gateway's settings of the exchange.
	edit func(*upstream.Config)
}

func okxVenue(t *testing.T, n int) *soakVenue {
	var syms []string
	for i := range n {
		syms = append(syms, fmt.Sprintf("T%02d-USDT", i))
	}
	sim, addr := okxsimtest.Start(t, okxsim.Config{Instruments: syms, NoticeGrace: 5 * time.Second})
	v := &soakVenue{
		name:    "okx",
		symbols: syms,
		trade:   func(s string) string { return "okx:trades:" + s },
		state:   func(s string) string { return "okx:tickers:" + s },
		book:    func(s string) string { return "okx:books5:" + s },
		ids: func(d map[string]json.RawMessage) (int64, int64, error) {
			var items []struct{ TradeID, Count string }
			if err := json.Unmarshal(d["data"], &items); err != nil || len(items) == 0 {
				return 0, 0, fmt.Errorf("not a trades push: %v", err)
			}
			lo, err1 := strconv.ParseInt(items[0].TradeID, 10, 64)
			n, err2 := strconv.ParseInt(items[0].Count, 10, 64)
			hi, err3 := strconv.ParseInt(items[len(items)-1].TradeID, 10, 64)
			if err1 != nil || err2 != nil || err3 != nil || n < 1 {
				return 0, 0, fmt.Errorf("tradeId/count of %s", d["data"])
			}
			return lo - n + 1, hi, nil
		},
		perStream: true,
		bad: []string{
			"okx:trades:NOPE-USDT",     // unknown instrument
			"okx:trades:T00-USDT-SWAP", // a swap the exchange does not list
			"okx:trade:T00-USDT",       // no such channel
			"okx:trades:t00-usdt",      // instIds are upper case
			"okx:candle7m:T00-USDT",    // no such bar
			"okx:trades",               // no instrument
			"okx:books5:T00_USDT",      // malformed instrument
		},
		notice:      func(g time.Duration) { sim.SendShutdownNotice() },
		dropAll:     func() { sim.DropAll() },
		violations:  sim.Violations,
		refused:     sim.RefusedAttempts,
		connections: sim.OpenConnections,
		accepted:    func() int { return len(sim.Clients()) },
		requests: func() int {
			n := 0
			for _, c := range sim.Clients() {
				n += c.Requests
			}
			return n
		},
		subs: sim.Subscriptions,
		simName: func(key string) string {
			ch, inst, _ := strings.Cut(strings.TrimPrefix(key, "okx:"), ":")
			return ch + ":" + inst
		},
	}
	v.edit = func(c *upstream.Config) { c.URL, c.RESTURL = "ws://"+addr, "http://"+addr }
	return v
}

func bybitVenue(t *testing.T, p bybitsim.Product, n int) *soakVenue {
	var syms []string
	for i := range n {
		syms = append(syms, fmt.Sprintf("T%02dUSDT", i))
	}
	sim, addr := bybitsimtest.Start(t, bybitsim.Config{Product: p, Symbols: syms})
	name := "bybit"
	if p == bybitsim.ProductLinear {
		name = "bybit-linear"
	}
	prefix := name + ":"
	v := &soakVenue{
		name:    name,
		symbols: syms,
		trade:   func(s string) string { return prefix + "publicTrade." + s },
		state:   func(s string) string { return prefix + "orderbook.1." + s },
		book:    func(s string) string { return prefix + "orderbook.50." + s },
		ids: func(d map[string]json.RawMessage) (int64, int64, error) {
			var items []struct{ I string }
			if err := json.Unmarshal(d["data"], &items); err != nil || len(items) == 0 {
				return 0, 0, fmt.Errorf("not a publicTrade push: %v", err)
			}
			lo, err1 := bybitTradeNumber(p, items[0].I)
			hi, err2 := bybitTradeNumber(p, items[len(items)-1].I)
			if err1 != nil || err2 != nil {
				return 0, 0, fmt.Errorf("trade ids of %s", d["data"])
			}
			return lo, hi, nil
		},
		bad: []string{
			prefix + "publicTrade.NOPEUSDT",     // unknown symbol
			prefix + "publicTrade.DELISTEDUSDT", // listed, but Closed
			prefix + "publicTrades.T00USDT",     // no such topic
			prefix + "orderbook.7.T00USDT",      // no such depth
			prefix + "kline.7.T00USDT",          // no such interval
			prefix + "publicTrade.t00usdt",      // symbols are upper case
			prefix + "publicTrade",              // no symbol
		},
		notice:      func(g time.Duration) { sim.SendShutdown(g) },
		dropAll:     sim.DropAll,
		violations:  sim.Violations,
		refused:     sim.RefusedAttempts,
		connections: sim.OpenConnections,
		accepted:    sim.Accepted,
		requests: func() int {
			n := 0
			for _, c := range sim.Clients() {
				for _, k := range c.Requests {
					n += k
				}
			}
			return n
		},
		subs:    sim.Subscriptions,
		simName: func(key string) string { return strings.TrimPrefix(key, prefix) },
	}
	v.edit = func(c *upstream.Config) {
		c.URL, c.RESTURL = "ws://"+addr, "http://"+addr
		c.MaxStreams = 20 // shards: 30 trade streams and the burst's 20 more take three connections
	}
	return v
}

// bybitTradeNumber returns the simulator's trade number in a Bybit trade
// id: spot ids are 2290000000000000000 + n, linear ids UUIDs whose last
// group is n.
func bybitTradeNumber(p bybitsim.Product, id string) (int64, error) {
	if p == bybitsim.ProductSpot {
		n, err := strconv.ParseInt(id, 10, 64)
		return n - 2290000000000000000, err
	}
	i := strings.LastIndexByte(id, '-')
	if i < 0 {
		return 0, fmt.Errorf("trade id %q is not a UUID", id)
	}
	return strconv.ParseInt(id[i+1:], 16, 64)
}

// TestSoakExchanges runs the soak described above against OKX, Bybit
// spot and Bybit linear, one after the other.
func TestSoakExchanges(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test; runs without -short")
	}
	for _, tc := range []struct {
		name  string
		venue func(*testing.T) *soakVenue
	}{
		{"okx", func(t *testing.T) *soakVenue { return okxVenue(t, 30) }},
		{"bybit", func(t *testing.T) *soakVenue { return bybitVenue(t, bybitsim.ProductSpot, 30) }},
		{"bybit-linear", func(t *testing.T) *soakVenue { return bybitVenue(t, bybitsim.ProductLinear, 30) }},
	} {
		t.Run(tc.name, func(t *testing.T) { soakVenueRun(t, tc.venue(t)) })
	}
}

// venueStream follows one trade stream on one client.
type venueStream struct {
	msgs, gaps    int
	lastSeq       uint64
	lastHi        int64
	dups, missing int
	earlyGaps     int // gap notices with no drop before them: a planned handover lost continuity
	firstErr      error
	lastAt        time.Time
	ranges        [][2]int64 // every event's ids, for the auditor
	rangesAt      []time.Time
}

func (s *venueStream) fail(err error) {
	if s.firstErr == nil {
		s.firstErr = err
	}
}

// add checks one message of the stream: no id seen twice, seq +1, and,
// where ids are contiguous per stream, no hole without a gap notice.
// dropped says whether an abrupt drop came before the message.
func (s *venueStream) add(v *soakVenue, m nativeMsg, now time.Time, dropped bool) {
	lo, hi, err := v.ids(m.Data)
	if err != nil {
		s.fail(fmt.Errorf("%s: %v", m.Stream, err))
		return
	}
	switch {
	case s.msgs > 0 && lo <= s.lastHi:
		s.dups++
		s.fail(fmt.Errorf("%s: trade ids %d..%d after %d (gap %v)", m.Stream, lo, hi, s.lastHi, m.Gap))
	case m.Gap:
		s.gaps++
		if !dropped {
			s.earlyGaps++
			s.fail(fmt.Errorf("%s: gap notice at seq %d before any drop: a planned handover lost continuity", m.Stream, m.Seq))
		}
	case s.msgs == 0:
	case v.perStream && lo != s.lastHi+1:
		s.missing += int(lo - s.lastHi - 1)
		s.fail(fmt.Errorf("%s: trade ids %d..%d missing without a gap notice", m.Stream, s.lastHi+1, lo-1))
	case m.Seq != s.lastSeq+1:
		s.fail(fmt.Errorf("%s: seq %d after %d without a gap notice", m.Stream, m.Seq, s.lastSeq))
	}
	s.msgs++
	s.lastSeq, s.lastHi, s.lastAt = m.Seq, hi, now
	s.ranges, s.rangesAt = append(s.ranges, [2]int64{lo, hi}), append(s.rangesAt, now)
}

// soakClient is one browser of the soak: its streams and what it saw.
type soakClient struct {
	c *downstreamtest.Client
	// mu guards the following fields: the reader writes them while the
	// test polls them.
	mu      sync.Mutex
	streams map[string]*venueStream
	err     error
}

// heard reports whether every stream of sc had a message after t.
func (sc *soakClient) heard(after time.Time) error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for k, s := range sc.streams {
		if s.msgs == 0 || !s.lastAt.After(after) {
			return fmt.Errorf("%s: no trade since %v", k, after.Format("15:04:05.000"))
		}
	}
	return nil
}

// drops records when the exchange's connections were dropped.
type drops struct {
	mu sync.Mutex
	at []time.Time
}

func (d *drops) add(t time.Time) {
	d.mu.Lock()
	d.at = append(d.at, t)
	d.mu.Unlock()
}

// before reports whether a drop happened before t.
func (d *drops) before(t time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.at) > 0 && d.at[0].Before(t)
}

func soakVenueRun(t *testing.T, v *soakVenue) {
	dur := exchangeSoakDuration(t)
	gw := startGatewayWith(t, "", func(c *config) {
		delete(c.upstreams, "binance")
		xc := &upstream.Config{RotateAfter: 8 * time.Second}
		v.edit(xc)
		c.upstreams[v.name] = xc
	})

	// Bad keys: refused with invalid_stream, nothing upstream.
	bad := downstreamtest.Dial(t, "ws://"+gw+"/ws")
	for i, k := range v.bad {
		bad.Send(fmt.Sprintf(`{"op":"subscribe","id":%d,"streams":[%q,%q]}`, i+1, v.trade(v.symbols[0]), k))
		var m struct {
			ID    int
			Error struct {
				Code, Msg string
				Streams   []string
			}
		}
		if p := bad.Next(); json.Unmarshal(p, &m) != nil || m.ID != i+1 || m.Error.Code != "invalid_stream" || m.Error.Msg == "" || !slices.Equal(m.Error.Streams, []string{k}) {
			t.Errorf("subscribe of %s = %s; want invalid_stream naming it alone", k, p)
		}
	}
	bad.Send(`{"op":"ping","id":"p"}`)
	if p := string(bad.Next()); p != `{"id":"p","result":"pong"}` {
		t.Fatalf("after bad keys, ping = %s", p)
	}
	if n, subs := v.requests(), v.subs(); n != 0 || len(subs) != 0 {
		t.Errorf("after bad keys only, the exchange got %d requests and carries %v; want none", n, subs)
	}
	bad.Close()

	var dropped drops
	read := func(sc *soakClient, stop <-chan struct{}) {
		for {
			select {
			case <-stop:
				return
			default:
			}
			p, err := sc.c.Read(15 * time.Second)
			now := time.Now()
			var m nativeMsg
			if err == nil {
				if jerr := json.Unmarshal(p, &m); jerr != nil {
					err = fmt.Errorf("message %s: %v", p, jerr)
				} else if m.Stream == "" && m.Error != nil {
					err = fmt.Errorf("subscribe refused: %s", p)
				}
			}
			sc.mu.Lock()
			s := sc.streams[m.Stream]
			switch {
			case err != nil:
				sc.err = err
			case m.Stream == "": // the subscribe reply
			case s == nil:
				sc.err = fmt.Errorf("message of a stream not subscribed: %.200s", p)
			default:
				s.add(v, m, now, dropped.before(now))
			}
			bad := sc.err != nil
			sc.mu.Unlock()
			if bad {
				return
			}
		}
	}
	subscribe := func(keys []string) *soakClient {
		sc := &soakClient{c: downstreamtest.Dial(t, "ws://"+gw+"/ws"), streams: map[string]*venueStream{}}
		for _, k := range keys {
			sc.streams[k] = &venueStream{}
		}
		q, _ := json.Marshal(keys)
		sc.c.Send(fmt.Sprintf(`{"op":"subscribe","id":1,"streams":%s}`, q))
		return sc
	}

	// Followers of trade streams: 20 clients of 5 streams each, and an
	// auditor of all of them.
	n := len(v.symbols)
	var followers []*soakClient
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var all []string
	for _, s := range v.symbols {
		all = append(all, v.trade(s))
	}
	auditor := subscribe(all)
	followers = append(followers, auditor)
	for i := range 20 {
		var keys []string
		for j := range 5 {
			keys = append(keys, v.trade(v.symbols[(i*7+j*3)%n]))
		}
		followers = append(followers, subscribe(keys))
	}
	for _, sc := range followers {
		wg.Go(func() { read(sc, stop) })
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()
	waitfor.Cond(t, 30*time.Second, func() error { return auditor.heard(time.Time{}) })

	// 500 browsers subscribe at once: a trade stream, a state stream and
	// a book stream of the first ten instruments each.
	before := v.requests()
	const burst = 500
	var bwg, ready sync.WaitGroup
	release := make(chan struct{})
	errs := make(chan error, burst)
	start := time.Now()
	for i := range burst {
		keys := []string{v.trade(v.symbols[i%n]), v.state(v.symbols[i%10]), v.book(v.symbols[(i+3)%10])}
		ready.Add(1)
		bwg.Go(func() {
			defer func() { <-release }() // hold the streams until the count
			defer ready.Done()
			c, err := downstreamtest.TryDial("ws://"+gw+"/ws", nil)
			if err != nil {
				errs <- fmt.Errorf("browser %d: %w", i, err)
				return
			}
			c.T = t
			t.Cleanup(func() { c.Close() })
			q, _ := json.Marshal(keys)
			c.Send(fmt.Sprintf(`{"op":"subscribe","id":1,"streams":%s}`, q))
			got := map[string]bool{}
			deadline := time.Now().Add(45 * time.Second)
			for len(got) < len(keys) {
				p, err := c.Read(time.Until(deadline))
				if err != nil {
					errs <- fmt.Errorf("browser %d: %v after %v", i, err, got)
					return
				}
				var m nativeMsg
				if json.Unmarshal(p, &m) != nil || m.Error != nil {
					errs <- fmt.Errorf("browser %d: %s", i, p)
					return
				}
				if m.Stream != "" {
					got[m.Stream] = true
				}
			}
		})
	}
	ready.Wait()
	took := time.Since(start)
	burstReqs := v.requests() - before
	// Twenty new streams (ten state, ten book), each asked for by 50
	// browsers: a few batched requests, not one per browser.
	if burstReqs > 10 {
		t.Errorf("the burst cost the exchange %d requests; want a few batches", burstReqs)
	}
	// Each stream once (twice only while a rotation hands it over).
	waitfor.Cond(t, 20*time.Second, func() error {
		subs := v.subs()
		for _, s := range v.symbols[:10] {
			for _, k := range []string{v.state(s), v.book(s), v.trade(s)} {
				if got := subs[v.simName(k)]; got != 1 {
					return fmt.Errorf("%s carried on %d connections; want 1", k, got)
				}
			}
		}
		return nil
	})
	close(release)
	bwg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d browsers subscribed 3 streams each and got data of all within %v; the exchange got %d requests for the 20 new streams",
		burst, took.Round(time.Millisecond), burstReqs)

	// Planned handovers, then an abrupt drop, while the gateway rotates
	// every 8 s on its own; the test command's form runs one such cycle
	// (about 15 s), the long form repeats it.
	const grace = 5 * time.Second
	end := time.Now().Add(dur)
	notices := 0
	for cycle := 0; cycle == 0 || time.Now().Before(end); cycle++ {
		for range 2 {
			v.notice(grace)
			notices++
			time.Sleep(4 * time.Second) // the 5 s grace overlaps the next notice
		}
		dropped.add(time.Now())
		v.dropAll()
		time.Sleep(6 * time.Second)
	}
	dropped.mu.Lock()
	lastDrop := dropped.at[len(dropped.at)-1]
	dropped.mu.Unlock()
	waitfor.Cond(t, 30*time.Second, func() error {
		for i, sc := range followers {
			if err := sc.heard(lastDrop); err != nil {
				return fmt.Errorf("client %d: %w", i, err)
			}
		}
		return nil
	})
	close(stop)
	wg.Wait()
	stop = make(chan struct{}) // for the deferred close

	var msgs, gaps, failures int
	for i, sc := range followers {
		if sc.err != nil {
			t.Errorf("client %d: %v", i, sc.err)
		}
		for k, s := range sc.streams {
			msgs += s.msgs
			gaps += s.gaps
			if s.firstErr != nil {
				failures++
				if failures <= 10 {
					t.Errorf("client %d %s: %v (dups %d, missing %d, gaps before any drop %d)", i, k, s.firstErr, s.dups, s.missing, s.earlyGaps)
				}
			}
			if !s.lastAt.After(lastDrop) {
				t.Errorf("client %d %s: no message since the last drop (%d in all)", i, k, s.msgs)
			}
		}
	}
	if !v.perStream {
		checkUnion(t, auditor, dropped.at[0])
	}
	if n := v.violations(); n != 0 {
		t.Errorf("simulator recorded %d rule violations (%d handshakes refused)", n, v.refused())
	}
	if n := v.refused(); n != 0 {
		t.Errorf("simulator refused %d handshakes over the connection-attempt limit", n)
	}
	t.Logf("soak of %s: %d clients, %d trade streams, %d messages checked, %d shutdown notices, %d drops, %d gap notices, %d requests in all, %d connections made (rotations, notices, drops), %d open, %d failures",
		v.name, len(followers), n, msgs, notices, len(dropped.at), gaps, v.requests(), v.accepted(), v.connections(), failures)
}

// checkUnion checks the auditor's trades before the first drop: across
// every instrument, each trade number of the exchange appears exactly
// once between the latest first trade and the earliest last trade of
// its streams (the Bybit simulator numbers trades across instruments).
func checkUnion(t *testing.T, auditor *soakClient, until time.Time) {
	t.Helper()
	lo, hi := int64(-1), int64(1<<62)
	seen := map[int64]int{}
	for k, s := range auditor.streams {
		var first, last int64 = -1, -1
		for i, r := range s.ranges {
			if !s.rangesAt[i].Before(until) {
				break
			}
			if first < 0 {
				first = r[0]
			}
			last = r[1]
			for id := r[0]; id <= r[1]; id++ {
				seen[id]++
			}
		}
		if first < 0 {
			t.Errorf("auditor: %s had no trade before the first drop", k)
			return
		}
		lo, hi = max(lo, first), min(hi, last)
	}
	missing, repeated := 0, 0
	for id := lo; id <= hi; id++ {
		switch seen[id] {
		case 0:
			missing++
			if missing <= 5 {
				t.Errorf("auditor: trade %d missing (between %d and %d, before the first drop)", id, lo, hi)
			}
		case 1:
		default:
			repeated++
			if repeated <= 5 {
				t.Errorf("auditor: trade %d delivered %d times", id, seen[id])
			}
		}
	}
	t.Logf("auditor: trades %d..%d across every instrument before the first drop: %d missing, %d repeated", lo, hi, missing, repeated)
}
