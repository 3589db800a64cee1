package binancesim

import (
	"maps"
	"strings"
)

// Test knobs on the market: pause it, read its book, and break the
// continuity of its depth streams.

// Pause stops the market: no symbol moves or trades until
// [Server.Resume]. The diff-depth events still owed for changes made
// before the pause go out when their period ends (at most 10 ticks);
// after that no market event is pushed, so a book kept from the diff
// streams then equals [Server.Book]. Connections, methods and REST calls
// keep working, and a REST snapshot taken while paused equals Book. A
// tick under way when Pause is called completes. Pausing a paused market
// does nothing.
func (s *Server) Pause() {
	if !s.paused.Swap(true) {
		s.log.Info("market paused")
	}
}

// Resume restarts a market stopped by [Server.Pause]. Resuming a running
// market does nothing.
func (s *Server) Resume() {
	if s.paused.Swap(false) {
		s.log.Info("market resumed")
	}
}

// Book returns the whole book of symbol (upper case as listed, e.g.
// "BTCUSDT"; lower case is accepted too) as a REST snapshot would give it:
// the last update id, then the bids best (highest) first and the asks
// best (lowest) first, each level [price, quantity] spelled as in the
// depth payloads. An unlisted symbol gives 0 and nil sides.
func (s *Server) Book(symbol string) (lastUpdateID int64, bids, asks [][2]string) {
	m := s.mkt
	m.mu.Lock()
	defer m.mu.Unlock()
	sy := m.bySym[strings.ToLower(symbol)]
	if sy == nil {
		return 0, nil, nil
	}
	return sy.updateID, formatLevels(sy, sy.bids), formatLevels(sy, sy.asks)
}

// formatLevels spells levels as the payloads do.
func formatLevels(sy *symbolState, lv []level) [][2]string {
	out := make([][2]string, len(lv))
	for k, l := range lv {
		out[k] = [2]string{string(appendE8(nil, sy.pxE8(l.px))), string(appendE8(nil, l.qty))}
	}
	return out
}

// InjectGap makes the next diff-depth event of symbol go missing from
// every depth stream, as an exchange engine restart does: the book changes
// it carries are applied to the book (and so to [Server.Book] and REST
// snapshots), but their update ids appear on no stream. On Spot the next
// event of each diff-depth stream has U > previous u + 1; on USD-M its pu
// is the missing event's u, not the previous event's u. A client that
// does not resync diverges from the book. Each call withholds one event
// (per stream); calls before it happens do not add up. An unlisted symbol
// is ignored.
func (s *Server) InjectGap(symbol string) {
	m := s.mkt
	m.mu.Lock()
	defer m.mu.Unlock()
	sy := m.bySym[strings.ToLower(symbol)]
	if sy == nil {
		s.log.Warn("InjectGap: unlisted symbol", "symbol", symbol)
		return
	}
	sy.gapPending = true
	s.log.Info("gap injected", "symbol", sy.name, "after", sy.updateID)
}

// withholdGap drops the pending events of every depth window when a gap
// was asked for and this step changed the book: the changes stay in the
// book, their ids are gone from the streams. It runs after step and before
// the step's events are pushed; m.mu is held.
func (sy *symbolState) withholdGap() {
	if !sy.gapPending || sy.tick.first == 0 {
		return
	}
	sy.gapPending = false
	sy.tick.reset()
	for i := range sy.windows {
		sy.windows[i].diff.reset()
	}
}

// RESTStats counts the REST calls the server answered and the REST
// procedure errors it saw, over all client IPs since [New].
type RESTStats struct {
	// Requests counts requests by path (e.g. "/api/v3/depth"), whatever
	// their answer; paths that name no REST call are not counted.
	Requests map[string]int
	// Weight is the request weight charged, over all IPs and minutes.
	Weight int
	// TooManyRequests counts 429 answers (weight limit or Throttle).
	TooManyRequests int
	// Banned counts 418 answers (a request during a 429's Retry-After,
	// a ban, or Ban).
	Banned int
	// Violations sums the procedure errors below.
	Violations int
	// DuringBackoff counts requests sent while the IP had a 429's
	// Retry-After or a 418 ban pending.
	DuringBackoff int
	// SnapshotUnsubscribed counts depth snapshots asked for by an IP that
	// held no open connection subscribed to a diff-depth stream of the
	// symbol (on a route that serves it).
	SnapshotUnsubscribed int
	// SnapshotFlood counts depth snapshots of a symbol beyond 10 per
	// minute from one IP.
	SnapshotFlood int
}

// RESTStats returns a copy of the REST counters.
func (s *Server) RESTStats() RESTStats {
	g := s.rest
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.stats
	st.Requests = maps.Clone(g.stats.Requests)
	st.Violations = st.DuringBackoff + st.SnapshotUnsubscribed + st.SnapshotFlood
	return st
}
