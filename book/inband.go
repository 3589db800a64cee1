package book

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode"
)

// Procedures of exchanges whose diff streams send their own snapshots:
// OKX's books channel (action "snapshot" then "update", chained by
// seqId/prevSeqId) and Bybit's orderbook.<depth> topics ("snapshot" then
// "delta" with a consecutive u; u=1 or a new snapshot replaces the
// book). A gap is mended by subscribing the stream again, which sends a
// fresh snapshot. The messages are the exchanges' own frames, whole.

// errNoREST is what an in-band procedure's ParseSnapshot answers: it asks
// for no REST snapshot.
var errNoREST = errors.New("book: this exchange's snapshots come in its stream")

// OKX is the procedure of OKX v5 "books" (400 levels). Book streams:
// "book:<instId>" and "book<N>:<instId>", e.g. okx:book:BTC-USDT,
// okx:book20:BTC-USDT-SWAP.
type OKX struct{}

var _ Procedure = OKX{}

// ParseBook implements Procedure.
func (OKX) ParseBook(name string) (string, int, bool, error) {
	ch, inst, ok := strings.Cut(name, ":")
	rest, isBook := strings.CutPrefix(ch, "book")
	if !ok || !isBook || inst == "" || strings.ContainsFunc(rest, func(r rune) bool { return !unicode.IsDigit(r) }) {
		return "", 0, false, nil // books5, bbo-tbt, …: the exchange's own channels
	}
	if rest == "" {
		return inst, 0, true, nil
	}
	return viewOf(name, inst, "@"+rest, "@")
}

// BookName implements Procedure.
func (OKX) BookName(instID string) string { return "book:" + instID }

// DiffStream implements Procedure.
func (OKX) DiffStream(instID string) string { return "books:" + instID }

// SnapshotRequest implements Procedure: none (in-band).
func (OKX) SnapshotRequest(string, int) (string, url.Values) { return "", nil }

// ParseSnapshot implements Procedure.
func (OKX) ParseSnapshot([]byte) (Snapshot, error) { return Snapshot{}, errNoREST }

// ParseDiff implements Procedure:
// {"arg":{…},"action":"snapshot|update","data":[{"asks":[[px,sz,"0",n],…],"bids":…,"ts":"…","prevSeqId":…,"seqId":…}]}.
// A snapshot has prevSeqId -1; a heartbeat repeats seqId with no
// levels; after maintenance seqId may go down (prevSeqId still chains).
func (OKX) ParseDiff(data []byte) (Diff, error) {
	var m struct {
		Action string `json:"action"`
		Data   []struct {
			Asks      [][]string `json:"asks"`
			Bids      [][]string `json:"bids"`
			TS        string     `json:"ts"`
			PrevSeqID *int64     `json:"prevSeqId"`
			SeqID     *int64     `json:"seqId"`
		} `json:"data"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return Diff{}, fmt.Errorf("okx books: %w", err)
	}
	if len(m.Data) != 1 || m.Data[0].SeqID == nil || m.Data[0].PrevSeqID == nil {
		return Diff{}, errors.New("okx books: want one data item with seqId and prevSeqId")
	}
	d := m.Data[0]
	bids, err := pairs(d.Bids)
	if err != nil {
		return Diff{}, err
	}
	asks, err := pairs(d.Asks)
	if err != nil {
		return Diff{}, err
	}
	ts, _ := strconv.ParseInt(d.TS, 10, 64)
	return Diff{First: *d.PrevSeqID, Last: *d.SeqID, Prev: *d.PrevSeqID, Bids: bids, Asks: asks, Time: ts,
		Snapshot: m.Action == "snapshot"}, nil
}

// pairs keeps the price and size of OKX levels [px, sz, "0", orders].
func pairs(levels [][]string) ([][2]string, error) {
	out := make([][2]string, len(levels))
	for i, l := range levels {
		if len(l) < 2 {
			return nil, fmt.Errorf("book level %v: want price and size", l)
		}
		out[i] = [2]string{l[0], l[1]}
	}
	return out, nil
}

// Chained implements Procedure: prevSeqId names the last seqId.
func (OKX) Chained() bool { return true }

// DepthLimits implements Procedure: the books channel's 400 levels.
func (OKX) DepthLimits() []int { return []int{400} }

// AppendDepth implements Procedure: GET /api/v5/market/books's shape.
func (OKX) AppendDepth(b []byte, lastUpdateID int64, bids, asks []Level, timeMs int64) []byte {
	b = append(b, `{"code":"0","msg":"","data":[{"asks":`...)
	b = appendOKXLevels(b, asks)
	b = append(b, `,"bids":`...)
	b = appendOKXLevels(b, bids)
	b = append(b, `,"ts":"`...)
	b = strconv.AppendInt(b, timeMs, 10)
	b = append(b, `","seqId":`...)
	b = strconv.AppendInt(b, lastUpdateID, 10)
	return append(b, `}]}`...)
}

func appendOKXLevels(b []byte, levels []Level) []byte {
	b = append(b, '[')
	for i, l := range levels {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `["`...)
		b = append(b, l.P...)
		b = append(b, `","`...)
		b = append(b, l.Q...)
		b = append(b, `","0","1"]`...)
	}
	return append(b, ']')
}

// Bybit is the procedure of Bybit v5 orderbook.200.<symbol> (spot or
// linear). Book streams: "book.<symbol>" and "book.<N>.<symbol>", e.g.
// bybit:book.BTCUSDT, bybit-linear:book.50.ETHUSDT.
type Bybit struct{}

var _ Procedure = Bybit{}

// bybitDepth is the depth of the topic the books are kept from (100 ms).
const bybitDepth = 200

// ParseBook implements Procedure.
func (Bybit) ParseBook(name string) (string, int, bool, error) {
	rest, ok := strings.CutPrefix(name, "book.")
	if !ok || rest == "" {
		return "", 0, false, nil
	}
	n, symbol, hasN := strings.Cut(rest, ".")
	if !hasN {
		return rest, 0, true, nil
	}
	return viewOf(name, symbol, "@"+n, "@")
}

// BookName implements Procedure.
func (Bybit) BookName(symbol string) string { return "book." + symbol }

// DiffStream implements Procedure.
func (Bybit) DiffStream(symbol string) string {
	return "orderbook." + strconv.Itoa(bybitDepth) + "." + symbol
}

// SnapshotRequest implements Procedure: none (in-band).
func (Bybit) SnapshotRequest(string, int) (string, url.Values) { return "", nil }

// ParseSnapshot implements Procedure.
func (Bybit) ParseSnapshot([]byte) (Snapshot, error) { return Snapshot{}, errNoREST }

// ParseDiff implements Procedure:
// {"topic":…,"type":"snapshot|delta","ts":…,"data":{"s":…,"b":[[p,s],…],"a":…,"u":…,"seq":…},"cts":…}.
func (Bybit) ParseDiff(data []byte) (Diff, error) {
	var m struct {
		Type string `json:"type"`
		TS   int64  `json:"ts"`
		Data struct {
			B [][2]string `json:"b"`
			A [][2]string `json:"a"`
			U *int64      `json:"u"`
		} `json:"data"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return Diff{}, fmt.Errorf("bybit orderbook: %w", err)
	}
	if m.Data.U == nil || (m.Type != "snapshot" && m.Type != "delta") {
		return Diff{}, errors.New("bybit orderbook: want a snapshot or delta with u")
	}
	u := *m.Data.U
	// u=1 is a snapshot after a restart of Bybit's service.
	return Diff{First: u, Last: u, Bids: m.Data.B, Asks: m.Data.A, Time: m.TS, Snapshot: m.Type == "snapshot" || u == 1}, nil
}

// Chained implements Procedure: u goes up by one.
func (Bybit) Chained() bool { return false }

// DepthLimits implements Procedure.
func (Bybit) DepthLimits() []int { return []int{bybitDepth} }

// AppendDepth implements Procedure: GET /v5/market/orderbook's shape.
func (Bybit) AppendDepth(b []byte, lastUpdateID int64, bids, asks []Level, timeMs int64) []byte {
	b = append(b, `{"retCode":0,"retMsg":"OK","result":{"b":`...)
	b = appendLevels(b, bids)
	b = append(b, `,"a":`...)
	b = appendLevels(b, asks)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, timeMs, 10)
	b = append(b, `,"u":`...)
	b = strconv.AppendInt(b, lastUpdateID, 10)
	b = append(b, `},"retExtInfo":{},"time":`...)
	b = strconv.AppendInt(b, timeMs, 10)
	return append(b, '}')
}
