package binancesim

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// REST endpoints a gateway needs next to the streams (spec §1.4): symbols
// and book snapshots. Request weights and REST rate limits are not
// simulated.

const (
	msgInvalidSymbol   = `{"code":-1121,"msg":"Invalid symbol."}`
	msgMandatorySymbol = `{"code":-1102,"msg":"Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."}`
	msgIllegalLimit    = `{"code":-1100,"msg":"Illegal characters found in parameter 'limit'; legal range is '1-5000'."}`
	msgBothSymbols     = `{"code":-1128,"msg":"Combination of optional parameters invalid."}`
	depthDefaultLimit  = 100
	depthMaxLimit      = 5000
)

// symbolInfo is one entry of exchangeInfo's symbols, in Binance's field
// order.
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

func e8String(v int64) string { return string(appendE8(nil, v)) }

func (sy *symbolState) info() symbolInfo {
	return symbolInfo{
		Symbol: sy.name, Status: "TRADING",
		BaseAsset: sy.base, BaseAssetPrecision: 8,
		QuoteAsset: sy.quote, QuotePrecision: 8, QuoteAssetPrecision: 8,
		BaseCommissionPrecision: 8, QuoteCommissionPrecision: 8,
		OrderTypes:     []string{"LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"},
		IcebergAllowed: true, OcoAllowed: true, OtoAllowed: true, QuoteOrderQtyMarketAllowed: true,
		AllowTrailingStop: true, CancelReplaceAllowed: true, IsSpotTradingAllowed: true,
		Filters: []filter{
			{FilterType: "PRICE_FILTER", MinPrice: e8String(sy.tickE8), MaxPrice: e8String(sy.tickE8 * 10_000_000), TickSize: e8String(sy.tickE8)},
			{FilterType: "LOT_SIZE", MinQty: e8String(sy.lotE8), MaxQty: e8String(sy.lotE8 * 1_000_000_000), StepSize: e8String(sy.lotE8)},
		},
		Permissions:                     []string{},
		PermissionSets:                  [][]string{{"SPOT"}},
		DefaultSelfTradePreventionMode:  "EXPIRE_MAKER",
		AllowedSelfTradePreventionModes: []string{"EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"},
	}
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	w.Write(body)
}

// serveExchangeInfo serves GET /api/v3/exchangeInfo with the optional
// symbol=X or symbols=["X","Y"] filters.
func (s *Server) serveExchangeInfo(w http.ResponseWriter, r *http.Request) {
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
	body, err := json.Marshal(info)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// serveDepth serves GET /api/v3/depth?symbol=X&limit=N: a snapshot of the
// simulated book whose lastUpdateId belongs to the same sequence as the
// diff-depth streams (spec §4). The book holds 100 levels per side, so a
// larger limit returns at most that.
func (s *Server) serveDepth(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	name := q.Get("symbol")
	if name == "" {
		writeJSON(w, http.StatusBadRequest, []byte(msgMandatorySymbol))
		return
	}
	limit := depthDefaultLimit
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > depthMaxLimit {
			writeJSON(w, http.StatusBadRequest, []byte(msgIllegalLimit))
			return
		}
		limit = n
	}
	m := s.mkt
	m.mu.Lock()
	sy := m.bySym[strings.ToLower(name)]
	if sy == nil || sy.name != name {
		m.mu.Unlock()
		writeJSON(w, http.StatusBadRequest, []byte(msgInvalidSymbol))
		return
	}
	body := appendPartialDepth(nil, sy, limit)
	m.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
}
