package binancesim

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// USD-M futures REST endpoints: /fapi/v1/exchangeInfo and /fapi/v1/depth.
// As for spot, request weights and REST rate limits are not simulated.

const (
	msgInvalidLimit          = `{"code":-1130,"msg":"Data sent for parameter 'limit' is not valid."}`
	futuresDepthDefaultLimit = 500
	// perpetualDeliveryDate is the deliveryDate Binance gives perpetual
	// contracts (2100-12-25).
	perpetualDeliveryDate = 4133404800000
	// simOnboardDate is the onboardDate of every simulated contract.
	simOnboardDate = 1569398400000
)

// futuresDepthLimits are the limits /fapi/v1/depth accepts.
var futuresDepthLimits = []int{5, 10, 20, 50, 100, 500, 1000}

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

// decimals returns the number of decimals of an e8 step such as a tick.
func decimals(stepE8 int64) int {
	n := 8
	for stepE8 >= 10 && n > 0 {
		stepE8 /= 10
		n--
	}
	return n
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
		Filters: []filter{
			{FilterType: "PRICE_FILTER", MinPrice: e8String(sy.tickE8), MaxPrice: e8String(sy.tickE8 * 10_000_000), TickSize: e8String(sy.tickE8)},
			{FilterType: "LOT_SIZE", MinQty: e8String(sy.lotE8), MaxQty: e8String(sy.lotE8 * 1_000_000_000), StepSize: e8String(sy.lotE8)},
		},
		OrderTypes:  []string{"LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"},
		TimeInForce: []string{"GTC", "IOC", "FOK", "GTX", "GTD"},
	}
}

// serveFuturesExchangeInfo serves GET /fapi/v1/exchangeInfo: every listed
// symbol as a TRADING perpetual contract. It takes no parameters.
func (s *Server) serveFuturesExchangeInfo(w http.ResponseWriter) {
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
	body, err := json.Marshal(info)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// serveFuturesDepth serves GET /fapi/v1/depth?symbol=X&limit=N:
// {"lastUpdateId":N,"E":ms,"T":ms,"bids":[…],"asks":[…]}, with lastUpdateId
// from the same sequence as the depth streams' U/u/pu, so the USD-M
// book-sync procedure (spec §2) works. limit is one of 5, 10, 20, 50,
// 100, 500 (the default) or 1000; the book holds 100 levels per side.
func (s *Server) serveFuturesDepth(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	name := q.Get("symbol")
	if name == "" {
		writeJSON(w, http.StatusBadRequest, []byte(msgMandatorySymbol))
		return
	}
	limit := futuresDepthDefaultLimit
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || !slices.Contains(futuresDepthLimits, n) {
			writeJSON(w, http.StatusBadRequest, []byte(msgInvalidLimit))
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
	bids, asks := sy.snapshot(limit)
	b := append([]byte(nil), `{"lastUpdateId":`...)
	b = appendInt(b, sy.updateID)
	b = append(b, `,"E":`...)
	b = appendTime(b, now, false)
	b = append(b, `,"T":`...)
	b = appendTime(b, sy.bookTime, false)
	b = append(b, `,"bids":`...)
	b = appendLevels(b, sy, bids)
	b = append(b, `,"asks":`...)
	b = appendLevels(b, sy, asks)
	b = append(b, '}')
	m.mu.Unlock()
	writeJSON(w, http.StatusOK, b)
}
