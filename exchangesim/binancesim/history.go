package binancesim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// REST klines, trades and ticker/24hr.

// maxRecentTrades is the number of trades per symbol /trades can return.
const maxRecentTrades = 1000

const (
	msgInvalidInterval = `{"code":-1120,"msg":"Invalid interval."}`
	msgStartAfterEnd   = `{"code":-1023,"msg":"Start time is greater than end time."}`
)

func msgMandatory(p string) string {
	return `{"code":-1102,"msg":"Mandatory parameter '` + p + `' was not sent, was empty/null, or malformed."}`
}

// limitParam reads limit (default def, 1..max); bad is the error body.
func (s *Server) limitParam(w http.ResponseWriter, r *http.Request, def, maxN int) (int, bool) {
	l := r.URL.Query().Get("limit")
	if l == "" {
		return def, true
	}
	n, err := strconv.Atoi(l)
	if err != nil || n < 1 || n > maxN {
		if s.cfg.Mode == ModeFutures {
			writeJSON(w, http.StatusBadRequest, []byte(msgInvalidLimit))
		} else {
			writeJSON(w, http.StatusBadRequest, fmt.Appendf(nil, `{"code":-1100,"msg":"Illegal characters found in parameter 'limit'; legal range is '1-%d'."}`, maxN))
		}
		return 0, false
	}
	return n, true
}

// symbolParam returns the listed symbol of the symbol parameter, with
// the market locked; on an error it has answered and unlocked.
func (s *Server) symbolParam(w http.ResponseWriter, r *http.Request) *symbolState {
	name := r.URL.Query().Get("symbol")
	if name == "" {
		writeJSON(w, http.StatusBadRequest, []byte(msgMandatorySymbol))
		return nil
	}
	s.mkt.mu.Lock()
	sy := s.mkt.bySym[strings.ToLower(name)]
	if sy == nil || sy.name != name {
		s.mkt.mu.Unlock()
		writeJSON(w, http.StatusBadRequest, []byte(msgInvalidSymbol))
		return nil
	}
	return sy
}

// serveKlines serves GET <prefix>/klines: the symbol's bars of interval,
// oldest first, the current one last, selected by startTime, endTime
// (open times, ms) and limit (default 500, max 1000 spot, 1500 USD-M).
func (s *Server) serveKlines(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("symbol") == "" {
		writeJSON(w, http.StatusBadRequest, []byte(msgMandatorySymbol))
		return
	}
	iv := q.Get("interval")
	if iv == "" {
		writeJSON(w, http.StatusBadRequest, []byte(msgMandatory("interval")))
		return
	}
	if _, ok := s.prod.grammar.klines[iv]; !ok {
		writeJSON(w, http.StatusBadRequest, []byte(msgInvalidInterval))
		return
	}
	maxN := 1000
	if s.cfg.Mode == ModeFutures {
		maxN = 1500
	}
	limit, ok := s.limitParam(w, r, 500, maxN)
	if !ok {
		return
	}
	times := [2]int64{-1, -1}
	for i, k := range []string{"startTime", "endTime"} {
		if v := q.Get(k); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				writeJSON(w, http.StatusBadRequest, fmt.Appendf(nil, `{"code":-1100,"msg":"Illegal characters found in parameter '%s'; legal range is '^[0-9]{1,20}$'."}`, k))
				return
			}
			times[i] = n * 1000
		}
	}
	if times[0] >= 0 && times[1] >= 0 && times[0] > times[1] {
		writeJSON(w, http.StatusBadRequest, []byte(msgStartAfterEnd))
		return
	}
	now := s.cfg.Now().UnixMicro()
	sy := s.symbolParam(w, r)
	if sy == nil {
		return
	}
	defer s.mkt.mu.Unlock()
	c := sy.candleFor(streamSpec{kind: kindKline, interval: iv}, now, s.mkt.seed)
	c.roll(now)
	bars := append(c.past[:len(c.past):len(c.past)], c.cur)
	var sel []candleBar
	for _, b := range bars {
		if (times[0] < 0 || b.start >= times[0]) && (times[1] < 0 || b.start <= times[1]) {
			sel = append(sel, b)
		}
	}
	if len(sel) > limit {
		if times[0] >= 0 {
			sel = sel[:limit]
		} else {
			sel = sel[len(sel)-limit:]
		}
	}
	out := appendKlineRows(sel)
	writeJSON(w, http.StatusOK, out)
}

// appendKlineRows encodes bars as Binance's klines array of arrays.
func appendKlineRows(bars []candleBar) []byte {
	b := []byte{'['}
	for k, bar := range bars {
		if k > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = appendTime(b, bar.start, false)
		for _, v := range []int64{bar.open, bar.high, bar.low, bar.close} {
			b = append(b, `,"`...)
			b = appendE8(b, v)
			b = append(b, '"')
		}
		b = append(b, `,"`...)
		b = strconv.AppendFloat(b, bar.volume, 'f', 8, 64)
		b = append(b, `",`...)
		b = appendCloseTime(b, bar.end, false)
		b = append(b, `,"`...)
		b = strconv.AppendFloat(b, bar.quoteVolume, 'f', 8, 64)
		b = append(b, `",`...)
		b = appendInt(b, bar.count)
		for _, v := range []float64{bar.takerBase, bar.takerQuote} {
			b = append(b, `,"`...)
			b = strconv.AppendFloat(b, v, 'f', 8, 64)
			b = append(b, '"')
		}
		b = append(b, `,"0"]`...)
	}
	return append(b, ']')
}

// serveTrades serves GET <prefix>/trades: the symbol's last trades,
// oldest first (limit default 500, max 1000).
func (s *Server) serveTrades(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("symbol") == "" {
		writeJSON(w, http.StatusBadRequest, []byte(msgMandatorySymbol))
		return
	}
	limit, ok := s.limitParam(w, r, 500, maxRecentTrades)
	if !ok {
		return
	}
	sy := s.symbolParam(w, r)
	if sy == nil {
		return
	}
	trs := sy.recent[max(0, len(sy.recent)-limit):]
	b := []byte{'['}
	for k, tr := range trs {
		if k > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":`...)
		b = appendInt(b, tr.id)
		b = append(b, `,"price":"`...)
		b = appendE8(b, tr.px)
		b = append(b, `","qty":"`...)
		b = appendE8(b, tr.qty)
		b = append(b, `","quoteQty":"`...)
		b = strconv.AppendFloat(b, float64(tr.px)/e8*float64(tr.qty)/e8, 'f', 8, 64)
		b = append(b, `","time":`...)
		b = appendTime(b, tr.time, false)
		b = append(b, `,"isBuyerMaker":`...)
		b = appendBool(b, tr.buyerMaker)
		if s.cfg.Mode != ModeFutures {
			b = append(b, `,"isBestMatch":true`...)
		}
		b = append(b, '}')
	}
	s.mkt.mu.Unlock()
	writeJSON(w, http.StatusOK, append(b, ']'))
}

// serveTicker24 serves GET <prefix>/ticker/24hr: one symbol's 24h
// statistics, or (no symbol) every symbol's as an array; Spot also takes
// symbols=["A","B"].
func (s *Server) serveTicker24(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var want []string
	spot := s.cfg.Mode != ModeFutures
	switch sym, syms := q.Get("symbol"), q.Get("symbols"); {
	case sym != "" && syms != "" && spot:
		writeJSON(w, http.StatusBadRequest, []byte(msgBothSymbols))
		return
	case sym != "":
		want = []string{sym}
	case syms != "" && spot:
		if err := json.Unmarshal([]byte(syms), &want); err != nil || len(want) == 0 {
			writeJSON(w, http.StatusBadRequest, []byte(msgInvalidSymbol))
			return
		}
	}
	now := s.cfg.Now().UnixMicro()
	m := s.mkt
	m.mu.Lock()
	defer m.mu.Unlock()
	var list []*symbolState
	if want == nil {
		list = m.syms
	}
	for _, name := range want {
		sy := m.bySym[strings.ToLower(name)]
		if sy == nil || sy.name != name {
			writeJSON(w, http.StatusBadRequest, []byte(msgInvalidSymbol))
			return
		}
		list = append(list, sy)
	}
	b := []byte{}
	if q.Get("symbol") == "" {
		b = append(b, '[')
	}
	for k, sy := range list {
		if k > 0 {
			b = append(b, ',')
		}
		b = s.appendTicker24(b, sy, now, spot)
	}
	if q.Get("symbol") == "" {
		b = append(b, ']')
	}
	writeJSON(w, http.StatusOK, b)
}

// appendTicker24 appends one REST 24h ticker object in Binance's field
// order; spot adds prevClosePrice and the best bid and ask.
func (s *Server) appendTicker24(b []byte, sy *symbolState, now int64, spot bool) []byte {
	st := &sy.stats
	change, pct, wavg := st.derived()
	str := func(b []byte, k string, v int64) []byte {
		b = append(b, `,"`+k+`":"`...)
		return append(appendE8(b, v), '"')
	}
	flt := func(b []byte, k string, v float64) []byte {
		b = append(b, `,"`+k+`":"`...)
		return append(strconv.AppendFloat(b, v, 'f', 8, 64), '"')
	}
	b = append(b, `{"symbol":`...)
	b = appendJSONString(b, sy.name)
	b = str(b, "priceChange", change)
	b = append(b, `,"priceChangePercent":"`...)
	b = append(strconv.AppendFloat(b, pct, 'f', 3, 64), '"')
	b = flt(b, "weightedAvgPrice", wavg)
	if spot {
		b = str(b, "prevClosePrice", st.open)
	}
	b = str(b, "lastPrice", st.last)
	b = str(b, "lastQty", st.lastQty)
	if spot {
		bid, ask := sy.top()
		b = str(b, "bidPrice", sy.pxE8(bid.px))
		b = str(b, "bidQty", bid.qty)
		b = str(b, "askPrice", sy.pxE8(ask.px))
		b = str(b, "askQty", ask.qty)
	}
	b = str(b, "openPrice", st.open)
	b = str(b, "highPrice", st.high)
	b = str(b, "lowPrice", st.low)
	b = flt(b, "volume", st.volume)
	b = flt(b, "quoteVolume", st.quoteVolume)
	b = append(b, `,"openTime":`...)
	b = appendTime(b, now-microsPerDay, false)
	b = append(b, `,"closeTime":`...)
	b = appendTime(b, now, false)
	b = append(b, `,"firstId":`...)
	b = appendInt(b, st.firstID)
	b = append(b, `,"lastId":`...)
	b = appendInt(b, sy.nextTrade-1)
	b = append(b, `,"count":`...)
	b = appendInt(b, st.count)
	return append(b, '}')
}
