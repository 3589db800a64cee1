package market

import (
	"net/url"
	"time"
)

// Endpoint names a market-data call every exchange offers; its value is
// the call's last path segments on Binance, which is how the drop-in paths
// and the metrics spell it.
type Endpoint string

// The endpoints served. EndpointOther labels, in [Stats], a call through
// [Client.Get] to a path the exchange's [Rules] do not know.
const (
	EndpointExchangeInfo Endpoint = "exchangeInfo"
	EndpointDepth        Endpoint = "depth"
	EndpointKlines       Endpoint = "klines"
	EndpointTrades       Endpoint = "trades"
	EndpointTicker24h    Endpoint = "ticker/24hr"
	EndpointTime         Endpoint = "time"
	EndpointPing         Endpoint = "ping"
	EndpointOther        Endpoint = "other"
)

// Endpoints returns the endpoints of the drop-in paths, in a fixed
// order, in a new slice.
func Endpoints() []Endpoint {
	return []Endpoint{
		EndpointExchangeInfo, EndpointDepth, EndpointKlines, EndpointTrades,
		EndpointTicker24h, EndpointTime, EndpointPing,
	}
}

// Symbol is one entry of an exchange's symbol list, as the native
// /symbols call answers it. Prices and sizes are decimal strings as the
// exchange spells them.
type Symbol struct {
	Symbol   string `json:"symbol"`
	Base     string `json:"base"`
	Quote    string `json:"quote"`
	Status   string `json:"status"`
	TickSize string `json:"tickSize"`
	StepSize string `json:"stepSize"`
}

// Rules is what package market needs to know of one exchange product's
// REST API. An implementation is a read-only value, safe for concurrent
// use; upstream/binance provides Binance spot's and USD-M futures'.
type Rules interface {
	// Name is the exchange's name in native paths and stream keys, e.g.
	// "binance"; the drop-in paths are "/"+Name()+Path(e).
	Name() string
	// BaseURL is the REST base URL of the real exchange, e.g.
	// "https://api.binance.com".
	BaseURL() string
	// WeightLimit is the documented request weight one IP may spend per
	// minute.
	WeightLimit() int
	// UsedWeightHeader names the response header carrying the IP's weight
	// used in the current minute, e.g. "X-MBX-USED-WEIGHT-1M".
	UsedWeightHeader() string
	// Path returns the REST path of e, e.g. "/api/v3/depth".
	Path(e Endpoint) string
	// Endpoint returns the endpoint whose REST path is path; false when
	// path is none of [Endpoints].
	Endpoint(path string) (Endpoint, bool)
	// Weight returns the request weight the exchange charges for a call of
	// path with q; for an unknown path a conservative guess.
	Weight(path string, q url.Values) int
	// DepthLimit returns the depth limit q asks for (the exchange's
	// default when absent); false when q's limit is not one the exchange
	// accepts.
	DepthLimit(q url.Values) (int, bool)
	// Validate checks the parameters of a call of e locally where that
	// saves a call the exchange would refuse: it returns the exchange's
	// exact error body (status 400) or nil to let the call go. known
	// reports whether a symbol is listed (true when the list is not at
	// hand); calling it may fetch the list, so call it last.
	Validate(e Endpoint, q url.Values, known func(symbol string) bool) []byte
	// ParseSymbols reads the symbol list from an exchangeInfo body.
	ParseSymbols(body []byte) ([]Symbol, error)
	// BanUntil reads the end of an IP ban from a 418 body, when the
	// exchange states it there.
	BanUntil(body []byte) (time.Time, bool)
}
