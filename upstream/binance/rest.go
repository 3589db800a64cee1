package binance

import (
	"encoding/json"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/marketgate/marketgate/market"
)

// Binance's REST request-weight limits per IP per minute.
const (
	SpotWeightLimit    = 6000
	FuturesWeightLimit = 2400
)

// UsedWeightHeader is the header of every Binance REST answer carrying
// the IP's request weight used in the current minute.
const UsedWeightHeader = "X-MBX-USED-WEIGHT-1M"

// Error bodies Binance answers with HTTP 400, verbatim.
const (
	msgInvalidSymbol = `{"code":-1121,"msg":"Invalid symbol."}`
	msgMandatory     = `{"code":-1102,"msg":"Mandatory parameter '%s' was not sent, was empty/null, or malformed."}`
)

// REST is a Binance product's REST API as [market.Rules]: [SpotREST]
// (exchange "binance", /api/v3) or [FuturesREST] (exchange
// "binance-futures", /fapi/v1). The weights are the ones the API pages
// document (spot rest-api.md "Market Data endpoints", USD-M
// "Market Data" pages); the answers' used-weight header re-syncs the
// budget, so a weight that changes upstream costs budget precision, not a
// ban.
type REST struct{ p *restProduct }

var _ market.Rules = REST{}

// SpotREST is Binance spot's REST API: 6000 weight per minute; depth 5,
// 25, 50 or 250 by limit (≤100, ≤500, ≤1000, more), klines 2, trades 25,
// ticker/24hr 2 per symbol up to 20, 40 up to 100, 80 for more or all,
// exchangeInfo 20, time and ping 1.
var SpotREST = REST{p: &spotREST}

// FuturesREST is Binance USD-M futures' REST API: 2400 weight per
// minute; depth 2, 5, 10 or 20 by limit (≤50, 100, 500, 1000), klines 1,
// 2, 5 or 10 by limit (<100, <500, ≤1000, more), trades 5, ticker/24hr 1
// for a symbol or 40 for all, exchangeInfo, time and ping 1.
var FuturesREST = REST{p: &futuresREST}

// restProduct is what differs between the products' REST APIs.
type restProduct struct {
	name    string
	baseURL string
	limit   int
	prefix  string
	// depthDefault is depth's default limit; depthValid tells a limit
	// the product accepts.
	depthDefault int
	depthValid   func(n int) bool
	weight       map[market.Endpoint]func(q url.Values) int
	intervals    []string
	tradesMax    int
}

var spotREST = restProduct{
	name: "binance", baseURL: DefaultSpotRESTURL, limit: SpotWeightLimit, prefix: "/api/v3",
	depthDefault: 100,
	depthValid:   func(n int) bool { return n >= 1 && n <= 5000 },
	weight: map[market.Endpoint]func(url.Values) int{
		market.EndpointExchangeInfo: fixed(20),
		market.EndpointDepth: func(q url.Values) int {
			switch n := intParam(q, "limit", 100); {
			case n <= 100:
				return 5
			case n <= 500:
				return 25
			case n <= 1000:
				return 50
			default:
				return 250
			}
		},
		market.EndpointKlines: fixed(2),
		market.EndpointTrades: fixed(25),
		market.EndpointTicker24h: func(q url.Values) int {
			n := 0 // symbols asked; 0 is all
			if q.Get("symbol") != "" {
				n = 1
			} else if s := q.Get("symbols"); s != "" {
				n = strings.Count(s, ",") + 1
			}
			switch {
			case n >= 1 && n <= 20:
				return 2
			case n >= 21 && n <= 100:
				return 40
			default:
				return 80
			}
		},
		market.EndpointTime: fixed(1),
		market.EndpointPing: fixed(1),
	},
	intervals: []string{"1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M"},
	tradesMax: 1000,
}

var futuresREST = restProduct{
	name: "binance-futures", baseURL: DefaultFuturesRESTURL, limit: FuturesWeightLimit, prefix: "/fapi/v1",
	depthDefault: 500,
	depthValid:   func(n int) bool { return slices.Contains([]int{5, 10, 20, 50, 100, 500, 1000}, n) },
	weight: map[market.Endpoint]func(url.Values) int{
		market.EndpointExchangeInfo: fixed(1),
		market.EndpointDepth: func(q url.Values) int {
			switch n := intParam(q, "limit", 500); {
			case n <= 50:
				return 2
			case n <= 100:
				return 5
			case n <= 500:
				return 10
			default:
				return 20
			}
		},
		market.EndpointKlines: func(q url.Values) int {
			switch n := intParam(q, "limit", 500); {
			case n < 100:
				return 1
			case n < 500:
				return 2
			case n <= 1000:
				return 5
			default:
				return 10
			}
		},
		market.EndpointTrades: fixed(5),
		market.EndpointTicker24h: func(q url.Values) int {
			if q.Get("symbol") != "" {
				return 1
			}
			return 40
		},
		market.EndpointTime: fixed(1),
		market.EndpointPing: fixed(1),
	},
	intervals: []string{"1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M"},
	tradesMax: 1000,
}

// unknownWeight is charged for a path the rules do not know: more than
// most market-data calls, so that an unknown call errs on the safe side.
const unknownWeight = 20

func fixed(w int) func(url.Values) int { return func(url.Values) int { return w } }

// intParam returns q's key as an int, or def when absent or malformed.
func intParam(q url.Values, key string, def int) int {
	if n, err := strconv.Atoi(q.Get(key)); err == nil {
		return n
	}
	return def
}

// Name returns "binance" or "binance-futures".
func (r REST) Name() string { return r.p.name }

// BaseURL returns https://api.binance.com or https://fapi.binance.com.
func (r REST) BaseURL() string { return r.p.baseURL }

// WeightLimit returns 6000 (spot) or 2400 (USD-M).
func (r REST) WeightLimit() int { return r.p.limit }

// UsedWeightHeader returns X-MBX-USED-WEIGHT-1M.
func (REST) UsedWeightHeader() string { return UsedWeightHeader }

// Path returns /api/v3/<e> or /fapi/v1/<e>.
func (r REST) Path(e market.Endpoint) string { return r.p.prefix + "/" + string(e) }

// Endpoint returns the endpoint of path, one of [market.Endpoints] under
// the product's prefix.
func (r REST) Endpoint(path string) (market.Endpoint, bool) {
	rest, ok := strings.CutPrefix(path, r.p.prefix+"/")
	if !ok {
		return "", false
	}
	e := market.Endpoint(rest)
	return e, slices.Contains(market.Endpoints(), e)
}

// Weight returns the documented weight of a call of path with q.
func (r REST) Weight(path string, q url.Values) int {
	if e, ok := r.Endpoint(path); ok {
		return r.p.weight[e](q)
	}
	return unknownWeight
}

// DepthLimit returns q's depth limit, 100 (spot) or 500 (USD-M) when
// absent; false when the product would refuse it.
func (r REST) DepthLimit(q url.Values) (int, bool) {
	s := q.Get("limit")
	if s == "" {
		return r.p.depthDefault, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || !r.p.depthValid(n) {
		return 0, false
	}
	return n, true
}

// Validate answers Binance's own error for a call that lacks its
// mandatory symbol (or klines interval), and, when the call's other
// parameters are ones Binance accepts, for a symbol that is not listed.
// Parameters it cannot judge surely are left to Binance, whose answer is
// cached like any other.
func (r REST) Validate(e market.Endpoint, q url.Values, known func(string) bool) []byte {
	sym := q.Get("symbol")
	switch e {
	case market.EndpointDepth, market.EndpointKlines, market.EndpointTrades:
		if sym == "" {
			return mandatory("symbol")
		}
	case market.EndpointTicker24h, market.EndpointExchangeInfo:
		if sym == "" || q.Has("symbols") {
			return nil
		}
	default:
		return nil
	}
	switch e {
	case market.EndpointDepth:
		if _, ok := r.DepthLimit(q); !ok {
			return nil
		}
	case market.EndpointKlines:
		iv := q.Get("interval")
		if iv == "" {
			return mandatory("interval")
		}
		if !slices.Contains(r.p.intervals, iv) || !plainInts(q, "limit", "startTime", "endTime") {
			return nil
		}
	case market.EndpointTrades:
		if !plainInts(q, "limit") {
			return nil
		}
	}
	if !known(sym) {
		return []byte(msgInvalidSymbol)
	}
	return nil
}

func mandatory(param string) []byte { return []byte(strings.Replace(msgMandatory, "%s", param, 1)) }

// plainInts reports whether each of q's keys is absent or a positive
// decimal integer.
func plainInts(q url.Values, keys ...string) bool {
	for _, k := range keys {
		if !q.Has(k) {
			continue
		}
		if n, err := strconv.ParseInt(q.Get(k), 10, 64); err != nil || n < 0 {
			return false
		}
	}
	return true
}

// restExchangeInfo is the part of exchangeInfo the symbol list needs;
// spot and USD-M futures share it.
type restExchangeInfo struct {
	Symbols []struct {
		Symbol     string `json:"symbol"`
		Status     string `json:"status"`
		BaseAsset  string `json:"baseAsset"`
		QuoteAsset string `json:"quoteAsset"`
		Filters    []struct {
			FilterType string `json:"filterType"`
			TickSize   string `json:"tickSize"`
			StepSize   string `json:"stepSize"`
		} `json:"filters"`
	} `json:"symbols"`
}

// ParseSymbols reads every symbol of an exchangeInfo body, whatever its
// status, with its PRICE_FILTER tick size and LOT_SIZE step size.
func (REST) ParseSymbols(body []byte) ([]market.Symbol, error) {
	var info restExchangeInfo
	if err := json.Unmarshal(body, &info); err != nil {
		return nil, err
	}
	out := make([]market.Symbol, 0, len(info.Symbols))
	for _, s := range info.Symbols {
		sym := market.Symbol{Symbol: s.Symbol, Base: s.BaseAsset, Quote: s.QuoteAsset, Status: s.Status}
		for _, f := range s.Filters {
			switch f.FilterType {
			case "PRICE_FILTER":
				sym.TickSize = f.TickSize
			case "LOT_SIZE":
				sym.StepSize = f.StepSize
			}
		}
		out = append(out, sym)
	}
	return out, nil
}

// banUntil finds the end of a ban in a 418 body: "IP banned until
// 1635504416554".
var banUntil = regexp.MustCompile(`banned until (\d{10,16})`)

// BanUntil reads the end of the ban from a 418 body.
func (REST) BanUntil(body []byte) (time.Time, bool) {
	m := banUntil.FindSubmatch(body)
	if m == nil {
		return time.Time{}, false
	}
	ms, err := strconv.ParseInt(string(m[1]), 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(ms), true
}
