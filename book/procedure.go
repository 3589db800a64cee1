package book

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/marketgate/marketgate/upstream"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Procedure is how one exchange's books are built from its REST snapshot
// and its diff stream: what to subscribe, what to fetch and how to tell
// that a diff continues the book. Implementations are immutable values.
type Procedure interface {
	// ParseBook reads a book stream name of the exchange, such as
	// Binance's "<symbol>@book" and "<symbol>@book@<N>": its symbol and
	// depth (0: the whole kept book). ok is false for any other name; err
	// says what is wrong with a malformed book name (ok true).
	ParseBook(name string) (symbol string, n int, ok bool, err error)
	// BookName is the name of the whole-book stream of a symbol as the
	// exchange's REST spells it ("BTCUSDT" → "btcusdt@book").
	BookName(restSymbol string) string
	// DiffStream is the exchange stream name of symbol's diffs, e.g.
	// "btcusdt@depth@100ms"; symbol as in stream names.
	DiffStream(symbol string) string
	// SnapshotRequest returns the REST path and query of symbol's
	// snapshot with limit levels a side; an empty path means the diff
	// stream sends its snapshots itself (Diff.Snapshot), and a fresh one
	// comes by subscribing the stream again.
	SnapshotRequest(symbol string, limit int) (path string, q url.Values)
	// ParseSnapshot reads a snapshot answer.
	ParseSnapshot(body []byte) (Snapshot, error)
	// ParseDiff reads one diff event.
	ParseDiff(data []byte) (Diff, error)
	// Chained reports whether a diff proves continuity by naming the
	// previous diff's last id (Diff.Prev, USD-M's pu) rather than by its
	// first id following it (spot's U == previous u + 1).
	Chained() bool
	// DepthLimits are the snapshot limits the exchange accepts, in
	// increasing order; the largest is the deepest book it serves.
	DepthLimits() []int
	// AppendDepth appends the exchange's REST depth answer for a book at
	// lastUpdateID with the given levels; timeMs is the answer's time
	// (USD-M's E and T).
	AppendDepth(b []byte, lastUpdateID int64, bids, asks []Level, timeMs int64) []byte
}

// Snapshot is a REST book snapshot.
type Snapshot struct {
	LastUpdateID int64
	Bids, Asks   [][2]string
}

// Diff is one diff event: the update ids it covers (First to Last),
// Prev the last id of the diff before it (when the exchange says), the
// levels it sets and its event time in Unix milliseconds. Snapshot marks
// an event that carries the whole book (it replaces the book, at Last).
type Diff struct {
	First, Last, Prev int64
	Bids, Asks        [][2]string
	Time              int64
	Snapshot          bool
}

// Binance is the procedure of Binance's spot (Futures false) and USD-M
// futures diff-depth books ("How to manage a local order book
// correctly").
type Binance struct {
	Futures bool
}

var _ Procedure = Binance{}

// ParseBook implements Procedure: "<symbol>@book" and
// "<symbol>@book@<N>".
func (Binance) ParseBook(name string) (string, int, bool, error) {
	symbol, rest, found := strings.Cut(name, "@book")
	if !found || symbol == "" || strings.Contains(symbol, "@") {
		return "", 0, false, nil
	}
	return viewOf(name, symbol, rest, "@")
}

// viewOf reads the depth part of a book stream name: rest is what follows
// the book word, sep what must start a depth.
func viewOf(name, symbol, rest, sep string) (string, int, bool, error) {
	if rest == "" {
		return symbol, 0, true, nil
	}
	v, cut := strings.CutPrefix(rest, sep)
	if !cut {
		return "", 0, false, nil // another stream, such as @bookTicker
	}
	n, err := strconv.Atoi(v)
	if err != nil || !slices.Contains(Views, n) {
		return "", 0, true, fmt.Errorf("%w: want a depth of %v", &upstream.ValidationError{Err: upstream.ErrInvalidStream, Value: name}, Views)
	}
	return symbol, n, true, nil
}

// BookName implements Procedure.
func (Binance) BookName(restSymbol string) string { return strings.ToLower(restSymbol) + "@book" }

// DiffStream implements Procedure.
func (Binance) DiffStream(symbol string) string { return symbol + "@depth@100ms" }

// SnapshotRequest implements Procedure.
func (b Binance) SnapshotRequest(symbol string, limit int) (string, url.Values) {
	q := url.Values{"symbol": {strings.ToUpper(symbol)}, "limit": {strconv.Itoa(limit)}}
	if b.Futures {
		return "/fapi/v1/depth", q
	}
	return "/api/v3/depth", q
}

// ParseSnapshot implements Procedure.
func (Binance) ParseSnapshot(body []byte) (Snapshot, error) {
	var s struct {
		LastUpdateID *int64      `json:"lastUpdateId"`
		Bids         [][2]string `json:"bids"`
		Asks         [][2]string `json:"asks"`
	}
	if err := json.Unmarshal(body, &s); err != nil {
		return Snapshot{}, fmt.Errorf("depth snapshot: %w", err)
	}
	if s.LastUpdateID == nil {
		return Snapshot{}, fmt.Errorf("depth snapshot without lastUpdateId")
	}
	return Snapshot{LastUpdateID: *s.LastUpdateID, Bids: s.Bids, Asks: s.Asks}, nil
}

// ParseDiff implements Procedure.
func (Binance) ParseDiff(data []byte) (Diff, error) {
	// Every key has its field: encoding/json matches keys without
	// regard to case, so "e" would land in E otherwise.
	var d struct {
		Ev string      `json:"e"`
		E  int64       `json:"E"`
		U  *int64      `json:"U"`
		LU *int64      `json:"u"`
		PU int64       `json:"pu"`
		B  [][2]string `json:"b"`
		A  [][2]string `json:"a"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return Diff{}, fmt.Errorf("depth diff: %w", err)
	}
	if d.U == nil || d.LU == nil || *d.LU < *d.U {
		return Diff{}, fmt.Errorf("depth diff without a valid U/u")
	}
	e := d.E
	if e > 1e14 { // microsecond event times (timeUnit=MICROSECOND)
		e /= 1000
	}
	return Diff{First: *d.U, Last: *d.LU, Prev: d.PU, Bids: d.B, Asks: d.A, Time: e}, nil
}

// Chained implements Procedure.
func (b Binance) Chained() bool { return b.Futures }

// DepthLimits implements Procedure.
func (b Binance) DepthLimits() []int {
	if b.Futures {
		return []int{5, 10, 20, 50, 100, 500, 1000}
	}
	return []int{5, 10, 20, 50, 100, 500, 1000, 5000}
}

// AppendDepth implements Procedure: {"lastUpdateId":…,"bids":…,"asks":…}
// on spot, with "E" and "T" after lastUpdateId on USD-M.
func (b Binance) AppendDepth(dst []byte, lastUpdateID int64, bids, asks []Level, timeMs int64) []byte {
	dst = append(dst, `{"lastUpdateId":`...)
	dst = strconv.AppendInt(dst, lastUpdateID, 10)
	if b.Futures {
		dst = append(dst, `,"E":`...)
		dst = strconv.AppendInt(dst, timeMs, 10)
		dst = append(dst, `,"T":`...)
		dst = strconv.AppendInt(dst, timeMs, 10)
	}
	dst = append(dst, `,"bids":`...)
	dst = appendLevels(dst, bids)
	dst = append(dst, `,"asks":`...)
	dst = appendLevels(dst, asks)
	return append(dst, '}')
}

// HTTPFetch returns a Fetch that gets base+path with c, with no budget of
// its own: for tests and tools; the gateway fetches through its governed
// market-data client.
func HTTPFetch(c *http.Client, base string) Fetch {
	return func(ctx context.Context, path string, q url.Values) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path+"?"+q.Encode(), nil)
		if err != nil {
			return nil, err
		}
		resp, err := c.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		if err != nil {
			return nil, err
		}
		if resp.StatusCode/100 != 2 {
			return nil, fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, body)
		}
		return body, nil
	}
}
