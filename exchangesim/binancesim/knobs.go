package binancesim

import "strings"

// Test knobs on the market: InjectGap, Pause, Resume and Book.

// InjectGap withholds the next diff-depth event of symbol (either case)
// from every depth stream, as an engine restart does: for each update
// speed, the next event that would be pushed (whether anybody is
// subscribed or not) is never sent, while the book keeps its changes. On
// Spot the following event's U is then above the previous event's u + 1;
// on USD-M its pu is not the previous event's u. A client that does not
// resync diverges from [Server.Book]. An unknown symbol is ignored.
func (s *Server) InjectGap(symbol string) {
	m := s.mkt
	m.mu.Lock()
	defer m.mu.Unlock()
	sy := m.bySym[strings.ToLower(symbol)]
	if sy == nil {
		s.log.Warn("InjectGap: unknown symbol", "symbol", symbol)
		return
	}
	sy.gap = make([]bool, 1+len(sy.windows))
	for i := range sy.gap {
		sy.gap[i] = true
	}
}

// armGap marks as withheld, after a step, the depth windows InjectGap
// armed whose event is due on this tick.
func (sy *symbolState) armGap(m *market) {
	if sy.gap == nil {
		return
	}
	if sy.gap[0] && sy.tick.first != 0 {
		sy.gap[0], sy.tick.skip = false, true
	}
	pending := sy.gap[0]
	for i := range sy.windows {
		w := &sy.windows[i]
		if sy.gap[i+1] && w.diff.first != 0 && m.due(w.period) {
			sy.gap[i+1], w.diff.skip = false, true
		}
		pending = pending || sy.gap[i+1]
	}
	if !pending {
		sy.gap = nil
	}
}

// Pause stops the market: no step, no event of any stream, until
// [Server.Resume]. REST keeps answering from the standing market, and
// connections keep being served (pings included). Events queued before
// Pause returns may still be delivered.
func (s *Server) Pause() {
	s.mkt.mu.Lock()
	defer s.mkt.mu.Unlock()
	s.paused.Store(true)
}

// Resume restarts the market after [Server.Pause].
func (s *Server) Resume() {
	s.mkt.mu.Lock()
	defer s.mkt.mu.Unlock()
	s.paused.Store(false)
}

// Book returns the whole book of symbol (either case) as a REST snapshot
// would give it: the last update id, and the bids (best, highest, first)
// and asks (best, lowest, first) as [price, quantity] strings with 8
// decimals. An unknown symbol gives 0 and nil sides.
func (s *Server) Book(symbol string) (lastUpdateID int64, bids, asks [][2]string) {
	m := s.mkt
	m.mu.Lock()
	defer m.mu.Unlock()
	sy := m.bySym[strings.ToLower(symbol)]
	if sy == nil {
		return 0, nil, nil
	}
	side := func(lv []level) [][2]string {
		out := make([][2]string, len(lv))
		for i, l := range lv {
			out[i] = [2]string{e8String(sy.pxE8(l.px)), e8String(l.qty)}
		}
		return out
	}
	return sy.updateID, side(sy.bids), side(sy.asks)
}
