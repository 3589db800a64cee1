package binancesim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// REST endpoints a gateway needs next to the streams: symbols, book
// snapshots, time and ping, under the product's prefix (/api/v3 on Spot,
// /fapi/v1 on USD-M). Request weights and limits are in weight.go.

const (
	msgInvalidSymbol   = `{"code":-1121,"msg":"Invalid symbol."}`
	msgMandatorySymbol = `{"code":-1102,"msg":"Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."}`
	msgIllegalLimit    = `{"code":-1100,"msg":"Illegal characters found in parameter 'limit'; legal range is '1-5000'."}`
	msgInvalidLimit    = `{"code":-1130,"msg":"Data sent for parameter 'limit' is not valid."}`
	msgBothSymbols     = `{"code":-1128,"msg":"Combination of optional parameters invalid."}`
	// perpetualDeliveryDate is the deliveryDate Binance gives perpetual
	// contracts (2100-12-25).
	perpetualDeliveryDate = 4133404800000
	// simOnboardDate is the onboardDate of every simulated contract.
	simOnboardDate = 1569398400000
)

// futuresDepthLimits are the limits /fapi/v1/depth accepts.
var futuresDepthLimits = []int{5, 10, 20, 50, 100, 500, 1000}

// serveREST serves a REST call under the product's prefix and reports
// whether path names one. Every call is first charged its request weight
// ([Server.admit]), which may answer 429 or 418 instead.
func (s *Server) serveREST(w http.ResponseWriter, r *http.Request) bool {
	call, ok := strings.CutPrefix(r.URL.Path, s.prod.rest)
	if !ok {
		return false
	}
	var serve func(w http.ResponseWriter, r *http.Request)
	switch call {
	case "/exchangeInfo":
		serve = func(w http.ResponseWriter, r *http.Request) { s.prod.exchangeInfo(s, w, r) }
	case "/depth":
		serve = s.serveDepth
	case "/time":
		serve = func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, fmt.Appendf(nil, `{"serverTime":%d}`, s.cfg.Now().UnixMilli()))
		}
	case "/klines":
		serve = s.serveKlines
	case "/trades":
		serve = s.serveTrades
	case "/ticker/24hr":
		serve = s.serveTicker24
	case "/ping":
		serve = func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, []byte(`{}`)) }
	default:
		return false
	}
	q := r.URL.Query()
	depthSymbol := ""
	if call == "/depth" {
		depthSymbol = q.Get("symbol")
	}
	if s.admit(w, r, r.URL.Path, s.prod.weights[call](q), depthSymbol) {
		serve(w, r)
	}
	return true
}

// symbolInfo is one entry of /api/v3/exchangeInfo's symbols, in Binance's
// field order.
type symbolInfo struct {
	Symbol                          string     `json:"symbol"`
	Status                          string     `json:"status"`
	BaseAsset                       string     `json:"baseAsset"`
	BaseAssetPrecision              int        `json:"baseAssetPrecision"`
	QuoteAsset                      string     `json:"quoteAsset"`
	QuotePrecision                  int        `json:"quotePrecision"`
	QuoteAssetPrecision             int        `json:"quoteAssetPrecision"`
	BaseCommissionPrecision         int        `json:"baseCommissionPrecision"`
	QuoteCommissionPrecision        int        `json:"quoteCommissionPrecision"`
	OrderTypes                      []string   `json:"orderTypes"`
	IcebergAllowed                  bool       `json:"icebergAllowed"`
	OcoAllowed                      bool       `json:"ocoAllowed"`
	OtoAllowed                      bool       `json:"otoAllowed"`
	QuoteOrderQtyMarketAllowed      bool       `json:"quoteOrderQtyMarketAllowed"`
	AllowTrailingStop               bool       `json:"allowTrailingStop"`
	CancelReplaceAllowed            bool       `json:"cancelReplaceAllowed"`
	IsSpotTradingAllowed            bool       `json:"isSpotTradingAllowed"`
	IsMarginTradingAllowed          bool       `json:"isMarginTradingAllowed"`
	Filters                         []filter   `json:"filters"`
	Permissions                     []string   `json:"permissions"`
	PermissionSets                  [][]string `json:"permissionSets"`
	DefaultSelfTradePreventionMode  string     `json:"defaultSelfTradePreventionMode"`
	AllowedSelfTradePreventionModes []string   `json:"allowedSelfTradePreventionModes"`
}

// filter is a PRICE_FILTER or LOT_SIZE filter.
type filter struct {
	FilterType string `json:"filterType"`
	MinPrice   string `json:"minPrice,omitempty"`
	MaxPrice   string `json:"maxPrice,omitempty"`
	TickSize   string `json:"tickSize,omitempty"`
	MinQty     string `json:"minQty,omitempty"`
	MaxQty     string `json:"maxQty,omitempty"`
	StepSize   string `json:"stepSize,omitempty"`
}

// exchangeInfo is the /api/v3/exchangeInfo response.
type exchangeInfo struct {
	Timezone        string       `json:"timezone"`
	ServerTime      int64        `json:"serverTime"`
	RateLimits      []any        `json:"rateLimits"`
	ExchangeFilters []any        `json:"exchangeFilters"`
	Symbols         []symbolInfo `json:"symbols"`
}

// futuresSymbolInfo is one entry of /fapi/v1/exchangeInfo's symbols, in
// Binance's field order.
type futuresSymbolInfo struct {
	Symbol                string   `json:"symbol"`
	Pair                  string   `json:"pair"`
	ContractType          string   `json:"contractType"`
	DeliveryDate          int64    `json:"deliveryDate"`
	OnboardDate           int64    `json:"onboardDate"`
	Status                string   `json:"status"`
	MaintMarginPercent    string   `json:"maintMarginPercent"`
	RequiredMarginPercent string   `json:"requiredMarginPercent"`
	BaseAsset             string   `json:"baseAsset"`
	QuoteAsset            string   `json:"quoteAsset"`
	MarginAsset           string   `json:"marginAsset"`
	PricePrecision        int      `json:"pricePrecision"`
	QuantityPrecision     int      `json:"quantityPrecision"`
	BaseAssetPrecision    int      `json:"baseAssetPrecision"`
	QuotePrecision        int      `json:"quotePrecision"`
	UnderlyingType        string   `json:"underlyingType"`
	UnderlyingSubType     []string `json:"underlyingSubType"`
	TriggerProtect        string   `json:"triggerProtect"`
	LiquidationFee        string   `json:"liquidationFee"`
	MarketTakeBound       string   `json:"marketTakeBound"`
	Filters               []filter `json:"filters"`
	OrderTypes            []string `json:"orderTypes"`
	TimeInForce           []string `json:"timeInForce"`
}

// futuresAsset is one entry of /fapi/v1/exchangeInfo's assets.
type futuresAsset struct {
	Asset             string `json:"asset"`
	MarginAvailable   bool   `json:"marginAvailable"`
	AutoAssetExchange string `json:"autoAssetExchange"`
}

// futuresExchangeInfo is the /fapi/v1/exchangeInfo response.
type futuresExchangeInfo struct {
	Timezone        string              `json:"timezone"`
	ServerTime      int64               `json:"serverTime"`
	FuturesType     string              `json:"futuresType"`
	RateLimits      []any               `json:"rateLimits"`
	ExchangeFilters []any               `json:"exchangeFilters"`
	Assets          []futuresAsset      `json:"assets"`
	Symbols         []futuresSymbolInfo `json:"symbols"`
}

func e8String(v int64) string { return string(appendE8(nil, v)) }

// decimals returns the number of decimals of an e8 step such as a tick.
func decimals(stepE8 int64) int {
	n := 8
	for stepE8 >= 10 && n > 0 {
		stepE8 /= 10
		n--
	}
	return n
}

// filters returns the symbol's PRICE_FILTER and LOT_SIZE, the same on
// both products.
func (sy *symbolState) filters() []filter {
	return []filter{
		{FilterType: "PRICE_FILTER", MinPrice: e8String(sy.tickE8), MaxPrice: e8String(sy.tickE8 * 10_000_000), TickSize: e8String(sy.tickE8)},
		{FilterType: "LOT_SIZE", MinQty: e8String(sy.lotE8), MaxQty: e8String(sy.lotE8 * 1_000_000_000), StepSize: e8String(sy.lotE8)},
	}
}

func (sy *symbolState) info() symbolInfo {
	return symbolInfo{
		Symbol: sy.name, Status: "TRADING",
		BaseAsset: sy.base, BaseAssetPrecision: 8,
		QuoteAsset: sy.quote, QuotePrecision: 8, QuoteAssetPrecision: 8,
		BaseCommissionPrecision: 8, QuoteCommissionPrecision: 8,
		OrderTypes:     []string{"LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"},
		IcebergAllowed: true, OcoAllowed: true, OtoAllowed: true, QuoteOrderQtyMarketAllowed: true,
		AllowTrailingStop: true, CancelReplaceAllowed: true, IsSpotTradingAllowed: true,
		Filters:                         sy.filters(),
		Permissions:                     []string{},
		PermissionSets:                  [][]string{{"SPOT"}},
		DefaultSelfTradePreventionMode:  "EXPIRE_MAKER",
		AllowedSelfTradePreventionModes: []string{"EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"},
	}
}

func (sy *symbolState) futuresInfo() futuresSymbolInfo {
	return futuresSymbolInfo{
		Symbol: sy.name, Pair: sy.name, ContractType: "PERPETUAL",
		DeliveryDate: perpetualDeliveryDate, OnboardDate: simOnboardDate, Status: "TRADING",
		MaintMarginPercent: "2.5000", RequiredMarginPercent: "5.0000",
		BaseAsset: sy.base, QuoteAsset: sy.quote, MarginAsset: sy.quote,
		PricePrecision: decimals(sy.tickE8), QuantityPrecision: decimals(sy.lotE8),
		BaseAssetPrecision: 8, QuotePrecision: 8,
		UnderlyingType: "COIN", UnderlyingSubType: []string{},
		TriggerProtect: "0.0500", LiquidationFee: "0.012500", MarketTakeBound: "0.05",
		Filters:     sy.filters(),
		OrderTypes:  []string{"LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"},
		TimeInForce: []string{"GTC", "IOC", "FOK", "GTX", "GTD"},
	}
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	w.Write(body)
}

// writeJSONValue writes v as a 200 JSON response.
func writeJSONValue(w http.ResponseWriter, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// serveSpotExchangeInfo serves GET /api/v3/exchangeInfo with the optional
// symbol=X or symbols=["X","Y"] filters.
func (s *Server) serveSpotExchangeInfo(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var want []string
	switch sym, syms := q.Get("symbol"), q.Get("symbols"); {
	case sym != "" && syms != "":
		writeJSON(w, http.StatusBadRequest, []byte(msgBothSymbols))
		return
	case sym != "":
		want = []string{sym}
	case syms != "":
		if err := json.Unmarshal([]byte(syms), &want); err != nil || len(want) == 0 {
			writeJSON(w, http.StatusBadRequest, []byte(msgInvalidSymbol))
			return
		}
	}
	m := s.mkt
	info := exchangeInfo{Timezone: "UTC", ServerTime: s.cfg.Now().UnixMilli(), RateLimits: []any{}, ExchangeFilters: []any{}}
	m.mu.Lock()
	if want == nil {
		for _, sy := range m.syms {
			info.Symbols = append(info.Symbols, sy.info())
		}
	}
	for _, name := range want {
		sy := m.bySym[strings.ToLower(name)]
		if sy == nil || sy.name != name {
			m.mu.Unlock()
			writeJSON(w, http.StatusBadRequest, []byte(msgInvalidSymbol))
			return
		}
		info.Symbols = append(info.Symbols, sy.info())
	}
	m.mu.Unlock()
	writeJSONValue(w, info)
}

// serveFuturesExchangeInfo serves GET /fapi/v1/exchangeInfo: every listed
// symbol as a TRADING perpetual contract. It takes no parameters.
func (s *Server) serveFuturesExchangeInfo(w http.ResponseWriter, _ *http.Request) {
	info := futuresExchangeInfo{
		Timezone: "UTC", ServerTime: s.cfg.Now().UnixMilli(), FuturesType: "U_MARGINED",
		RateLimits: []any{}, ExchangeFilters: []any{}, Assets: []futuresAsset{},
	}
	m := s.mkt
	m.mu.Lock()
	for _, sy := range m.syms {
		info.Symbols = append(info.Symbols, sy.futuresInfo())
		if !slices.ContainsFunc(info.Assets, func(a futuresAsset) bool { return a.Asset == sy.quote }) {
			info.Assets = append(info.Assets, futuresAsset{Asset: sy.quote, MarginAvailable: true, AutoAssetExchange: "-10000"})
		}
	}
	m.mu.Unlock()
	writeJSONValue(w, info)
}

// serveDepth serves GET <prefix>/depth?symbol=X&limit=N: a snapshot of the
// simulated book whose lastUpdateId belongs to the same sequence as the
// depth streams' update ids, so the book-sync procedure (fetch a snapshot,
// drop the buffered updates it covers, apply the rest) works against it.
// The product sets the default and accepted limits and the body; the book
// holds 100 levels per side, so a larger limit returns at most that.
func (s *Server) serveDepth(w http.ResponseWriter, r *http.Request) {
	rule := &s.prod.depth
	q := r.URL.Query()
	name := q.Get("symbol")
	if name == "" {
		writeJSON(w, http.StatusBadRequest, []byte(msgMandatorySymbol))
		return
	}
	limit := rule.defaultLimit
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || !rule.validLimit(n) {
			writeJSON(w, http.StatusBadRequest, []byte(rule.badLimit))
			return
		}
		limit = n
	}
	now := s.cfg.Now().UnixMicro()
	m := s.mkt
	m.mu.Lock()
	sy := m.bySym[strings.ToLower(name)]
	if sy == nil || sy.name != name {
		m.mu.Unlock()
		writeJSON(w, http.StatusBadRequest, []byte(msgInvalidSymbol))
		return
	}
	body := rule.body(nil, sy, limit, now)
	m.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
}
