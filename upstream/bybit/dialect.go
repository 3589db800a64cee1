package bybit

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"time"

	"github.com/marketgate/marketgate/upstream"
)

// Defaults shared by both products, the [upstream.Config] defaults.
const (
	DefaultURL     = "wss://stream.bybit.com"
	DefaultRESTURL = "https://api.bybit.com"
	// DefaultRequestInterval spaces requests: Bybit documents no
	// subscribe rate for public streams; 5 requests a second at most is
	// what a careful client sends (the simulator refuses faster).
	DefaultRequestInterval = 200 * time.Millisecond
	// DefaultMaxStreams keeps a connection's args far below Bybit's
	// 21,000 characters (200 topics of at most ~45 characters).
	DefaultMaxStreams = 200
	// DefaultIdleTimeout: with a ping every 20 s a pong arrives every
	// 20 s even on a silent connection.
	DefaultIdleTimeout = time.Minute
	// DefaultMaxLifetime: Bybit documents no lifetime; connections are
	// rotated once a day anyway.
	DefaultMaxLifetime = 24 * time.Hour
	// DefaultMaxConnAttempts is half of Bybit's 500 connections per 5
	// minutes, which are counted per domain: spot and linear share
	// stream.bybit.com.
	DefaultMaxConnAttempts   = 250
	DefaultConnAttemptWindow = 5 * time.Minute
	// HeartbeatEvery is how often Bybit asks for {"op":"ping"}.
	HeartbeatEvery = 20 * time.Second
	// SpotMaxArgs is the most args a spot request may carry ("args size
	// >10" otherwise).
	SpotMaxArgs = 10
	// MaxArgsChars is the most characters of args a connection may hold.
	MaxArgsChars = 21000
)

// Dialect is a Bybit v5 public product: [Spot] or [Linear].
type Dialect struct{ p *product }

var _ upstream.Dialect = Dialect{}

type product struct {
	name, endpoint, category string
	spot                     bool
	limits                   upstream.Limits
}

var limits = upstream.Limits{
	URL: DefaultURL, RESTURL: DefaultRESTURL,
	RequestInterval: DefaultRequestInterval, MaxStreams: DefaultMaxStreams,
	IdleTimeout: DefaultIdleTimeout, MaxLifetime: DefaultMaxLifetime,
	MaxConnAttempts: DefaultMaxConnAttempts, ConnAttemptWindow: DefaultConnAttemptWindow,
}

// Spot is Bybit spot, exchange name "bybit", endpoint /v5/public/spot.
var Spot = Dialect{p: &product{name: "bybit", endpoint: "/v5/public/spot", category: "spot", spot: true, limits: spotLimits()}}

// spotLimits are the limits with spot's 10 args per request.
func spotLimits() upstream.Limits {
	l := limits
	l.MaxParams = SpotMaxArgs
	return l
}

// Linear is Bybit USDT/USDC perpetuals and futures, exchange name
// "bybit-linear", endpoint /v5/public/linear.
var Linear = Dialect{p: &product{name: "bybit-linear", endpoint: "/v5/public/linear", category: "linear", limits: limits}}

// Name returns "bybit" or "bybit-linear".
func (d Dialect) Name() string { return d.p.name }

// Spot reports whether d is the spot product.
func (d Dialect) Spot() bool { return d.p.spot }

// Category returns the product's REST category, "spot" or "linear".
func (d Dialect) Category() string { return d.p.category }

// MaxArgs returns the most args one request may carry: 10 on spot, no
// documented limit (0) on linear.
func (d Dialect) MaxArgs() int {
	if d.p.spot {
		return SpotMaxArgs
	}
	return 0
}

// Endpoints returns the product's one endpoint.
func (d Dialect) Endpoints() []string { return []string{d.p.endpoint} }

// EndpointOf returns 0: one endpoint.
func (Dialect) EndpointOf(upstream.Stream) int { return 0 }

// ConnectURL returns base+path: Bybit URLs carry no topics.
func (Dialect) ConnectURL(base, path string, _ []string, _ int) (string, int) {
	return base + path, 0
}

// URLRefused is never true: no topics in URLs.
func (Dialect) URLRefused(int) bool { return false }

// SymbolsPaths returns the instruments-info path of the product. Linear
// lists are paged (limit=1000 is the largest page): ParseSymbols returns
// the next page's path from the list's nextPageCursor.
func (d Dialect) SymbolsPaths() []string {
	if d.p.spot {
		return []string{"/v5/market/instruments-info?category=spot"}
	}
	return []string{linearInstrumentsPath}
}

// linearInstrumentsPath is the first page of the linear instrument list.
const linearInstrumentsPath = "/v5/market/instruments-info?category=linear&limit=1000"

type instruments struct {
	RetCode int    `json:"retCode"`
	RetMsg  string `json:"retMsg"`
	Result  struct {
		List []struct {
			Symbol string `json:"symbol"`
			Status string `json:"status"`
		} `json:"list"`
		NextPageCursor string `json:"nextPageCursor"`
	} `json:"result"`
}

// ParseSymbols returns the symbols with status "Trading" of one page of
// path's list, and the next page's path when the page has a
// nextPageCursor: path without its cursor, plus the new one.
func (Dialect) ParseSymbols(path string, r io.Reader) (map[string]struct{}, string, error) {
	var in instruments
	if err := json.NewDecoder(r).Decode(&in); err != nil {
		return nil, "", err
	}
	if in.RetCode != 0 {
		return nil, "", fmt.Errorf("instruments-info: retCode %d: %s", in.RetCode, in.RetMsg)
	}
	m := make(map[string]struct{}, len(in.Result.List))
	for _, s := range in.Result.List {
		if s.Status == "Trading" && validSymbol(s.Symbol) {
			m[s.Symbol] = struct{}{}
		}
	}
	next, err := nextPage(path, in.Result.NextPageCursor)
	return m, next, err
}

// Limits returns Bybit's limits.
func (d Dialect) Limits() upstream.Limits { return d.p.limits }

var pingPayload = []byte(`{"op":"ping"}`)

// Heartbeat is {"op":"ping"} every 20 s.
func (Dialect) Heartbeat() upstream.Heartbeat {
	return upstream.Heartbeat{Every: HeartbeatEvery, Payload: pingPayload}
}

type request struct {
	ReqID string   `json:"req_id"`
	Op    string   `json:"op"`
	Args  []string `json:"args"`
}

// Encode encodes {"req_id":"<id>","op":"subscribe"|"unsubscribe","args":names}.
// The batch size is the core's (upstream.Config.MaxParams): a spot
// request of more than 10 names is refused by the exchange ("args size
// >10"), which fails its streams; an error here would instead end the
// connection.
func (Dialect) Encode(op upstream.Op, names []string, id int64) ([]byte, error) {
	o := "subscribe"
	if op == upstream.OpUnsubscribe {
		o = "unsubscribe"
	}
	return json.Marshal(request{ReqID: strconv.FormatInt(id, 10), Op: o, Args: names})
}

// nextPage returns path with its cursor parameter set to cursor, or ""
// when cursor is empty (the last page).
func nextPage(path, cursor string) (string, error) {
	if cursor == "" {
		return "", nil
	}
	u, err := url.Parse(path)
	if err != nil {
		return "", fmt.Errorf("instruments-info: page path %q: %w", path, err)
	}
	q := u.Query()
	if q.Get("cursor") == cursor {
		return "", fmt.Errorf("instruments-info: cursor %q repeats its own page", cursor)
	}
	q.Set("cursor", cursor)
	u.RawQuery = q.Encode()
	return u.String(), nil
}
