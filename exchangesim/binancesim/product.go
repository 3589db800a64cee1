package binancesim

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// product is what one Binance product does its own way: limits, stream
// names, paths, REST calls, payloads and update speeds. Everything else in
// the package is shared. [Config.Mode] selects one of spotProduct and
// futuresProduct; they are read only.
type product struct {
	// The defaults of Config.MaxMessagesPerSecond, PingInterval and
	// PongTimeout.
	maxMessages  int
	pingInterval time.Duration
	pongTimeout  time.Duration

	// grammar is the stream-name catalogue.
	grammar *grammar
	// routes are the path prefixes that choose a route; a path under none
	// is served on unrouted.
	routes   []routePrefix
	unrouted route
	// rest is the REST path prefix; under it /exchangeInfo, /depth, /time
	// and /ping are served.
	rest         string
	exchangeInfo func(s *Server, w http.ResponseWriter, r *http.Request)
	depth        depthCall

	// events maps a stream kind to how its events are made and how often;
	// a kind without an entry is accepted and silent.
	events map[streamKind]eventRule
	// depthWindows are the update periods (ms, above one tick) over which
	// book changes are collected for the depth streams.
	depthWindows []int64
	// perpetual gives every symbol a perpetual contract's state: index
	// and mark price, funding and liquidations.
	perpetual bool

	// timeUnit honours the timeUnit query parameter; without it times are
	// in milliseconds whatever the parameter says.
	timeUnit bool
	// shutdownEvent sends the serverShutdown event to every connection
	// before Run's end closes it.
	shutdownEvent bool
	// anyPong makes any pong answer every outstanding ping, and one that
	// answers none an allowed unsolicited pong whatever its payload.
	// Without it a pong answers the ping whose payload it echoes and every
	// older one.
	anyPong bool

	// weightLimit is the default of Config.RESTWeightLimit; weights gives
	// each REST call's request weight from its query.
	weightLimit int
	weights     map[string]func(q url.Values) int
}

// routePrefix is a path prefix that chooses a route. private marks the
// user-data prefix, which is not simulated.
type routePrefix struct {
	prefix  string
	route   route
	private bool
}

// depthCall is the REST depth snapshot's rule: its default and accepted
// limits, the error body for any other, and the body of a snapshot.
type depthCall struct {
	defaultLimit int
	validLimit   func(n int) bool
	badLimit     string
	body         func(b []byte, sy *symbolState, limit int, now int64) []byte
}

// eventRule says how a stream kind's events are made (emit) and how
// often: every period ms, unless the stream's name chose its own.
type eventRule struct {
	period int64
	emit   emitter
}

// Update periods in milliseconds. One tick stands for nominalTickMs.
// Spot's are its stream pages' (real time, 100ms, 1000ms, kline 2s);
// USD-M's depth and markPrice speeds are selectable, the others are the
// USD-M doc pages' (kline 250ms, miniTicker and ticker 2s, the all-market
// arrays and forceOrder 1s).
const (
	periodTick         = nominalTickMs
	periodSecond       = 1000
	periodSpotKline    = 2000
	periodDepthDefault = 250
	periodDepthSlow    = 500
	periodDepthFast    = periodTick
	periodMarkDefault  = 3000
	periodMarkFast     = 1000
	periodKline        = 250
	periodTicker       = 2000
	periodArr          = 1000
	periodForceOrder   = 1000
)

// productFor returns the product a mode imitates, or false for an unknown
// mode. The empty mode is Spot.
func productFor(m Mode) (*product, bool) {
	switch m {
	case "", ModeSpot:
		return &spotProduct, true
	case ModeFutures:
		return &futuresProduct, true
	}
	return nil, false
}

// spotProduct is Binance Spot (wss://stream.binance.com).
var spotProduct = product{
	maxMessages:  5,
	pingInterval: 20 * time.Second,
	pongTimeout:  time.Minute,
	grammar: &grammar{
		route:       routeSpot,
		validSymbol: validStreamSymbol,
		marketWide:  map[string]streamSpec{"!miniTicker@arr": {kind: kindAllMiniTickers}},
		fixed: map[string]streamSpec{
			"trade":          {kind: kindTrade},
			"aggTrade":       {kind: kindAggTrade},
			"blockTrade":     {kind: kindBlockTrade},
			"referencePrice": {kind: kindReferencePrice},
			"avgPrice":       {kind: kindAvgPrice},
			"miniTicker":     {kind: kindMiniTicker},
			"ticker":         {kind: kindTicker},
			"bookTicker":     {kind: kindBookTicker},
		},
		klines:      klineIntervals("1s"),
		klineUTC8:   true,
		windows:     map[string]bool{"1h": true, "4h": true, "1d": true},
		depthRoute:  routeSpot,
		depthPeriod: periodSecond,
		depthSpeeds: []depthSpeed{{"@100ms", periodTick}},
	},
	unrouted:     routeSpot,
	rest:         "/api/v3",
	exchangeInfo: (*Server).serveSpotExchangeInfo,
	depth: depthCall{
		defaultLimit: 100,
		validLimit:   func(n int) bool { return n >= 1 && n <= 5000 },
		badLimit:     msgIllegalLimit,
		body:         func(b []byte, sy *symbolState, limit int, _ int64) []byte { return appendPartialDepth(b, sy, limit) },
	},
	events: map[streamKind]eventRule{
		kindTrade:          {periodTick, eachTrade},
		kindAggTrade:       {periodTick, eachAggTrade(appendAggTrade)},
		kindBookTicker:     {periodTick, onTopChange(appendBookTicker)},
		kindPartialDepth:   {periodSecond, snapshots},
		kindDiffDepth:      {periodSecond, onBookChange(appendDiffDepth)},
		kindMiniTicker:     {periodSecond, every(appendMiniTicker)},
		kindTicker:         {periodSecond, every(appendTicker)},
		kindAvgPrice:       {periodSecond, every(appendAvgPrice)},
		kindKline:          {periodSpotKline, emitKline},
		kindAllMiniTickers: {periodSecond, arrayOf(tradedSymbols, appendMiniTicker)},
	},
	depthWindows:  []int64{periodSecond},
	timeUnit:      true,
	shutdownEvent: true,
	weightLimit:   6000,
	weights:       spotWeights,
}

// futuresProduct is Binance USD-M futures (wss://fstream.binance.com)
// after the 2026 routing change: depth and bookTicker on /public,
// everything else on /market.
var futuresProduct = product{
	maxMessages:  10,
	pingInterval: 3 * time.Minute,
	pongTimeout:  10 * time.Minute,
	grammar: &grammar{
		route:       routeMarket,
		validSymbol: validDeliverySymbol,
		marketWide: map[string]streamSpec{
			"!bookTicker":       {kind: kindAllBookTickers, route: routePublic},
			"!markPrice@arr":    {kind: kindAllMarkPrices, period: periodMarkDefault},
			"!markPrice@arr@1s": {kind: kindAllMarkPrices, period: periodMarkFast},
			"!miniTicker@arr":   {kind: kindAllMiniTickers},
			"!ticker@arr":       {kind: kindAllTickers},
			"!forceOrder@arr":   {kind: kindAllForceOrders},
			"!contractInfo":     {kind: kindContractInfo},
			"!assetIndex@arr":   {kind: kindAllAssetIndexes},
		},
		fixed: map[string]streamSpec{
			"aggTrade":       {kind: kindAggTrade},
			"markPrice":      {kind: kindMarkPrice, period: periodMarkDefault},
			"markPrice@1s":   {kind: kindMarkPrice, period: periodMarkFast},
			"miniTicker":     {kind: kindMiniTicker},
			"ticker":         {kind: kindTicker},
			"forceOrder":     {kind: kindForceOrder},
			"compositeIndex": {kind: kindCompositeIndex},
			// Asset index symbols (e.g. "adausd") are not trading symbols.
			"assetIndex": {kind: kindAssetIndex, symbol: marketWide},
			"bookTicker": {kind: kindBookTicker, route: routePublic},
		},
		klines: klineIntervals(),
		// As they appear (lower case) in stream names.
		contractTypes: map[string]bool{"perpetual": true, "current_quarter": true, "next_quarter": true},
		depthRoute:    routePublic,
		depthPeriod:   periodDepthDefault,
		depthSpeeds:   []depthSpeed{{"@100ms", periodDepthFast}, {"@500ms", periodDepthSlow}},
	},
	// An unrouted (legacy) path is served like /public: such connections
	// "only receive data from the Public endpoint".
	routes: []routePrefix{
		{prefix: "/public", route: routePublic},
		{prefix: "/market", route: routeMarket},
		{prefix: "/private", private: true},
	},
	unrouted:     routePublic,
	rest:         "/fapi/v1",
	exchangeInfo: (*Server).serveFuturesExchangeInfo,
	depth: depthCall{
		defaultLimit: 500,
		validLimit:   func(n int) bool { return slices.Contains(futuresDepthLimits, n) },
		badLimit:     msgInvalidLimit,
		body:         appendFuturesDepthSnapshot,
	},
	events: map[streamKind]eventRule{
		kindAggTrade:       {periodTick, eachAggTrade(appendFuturesAggTrade)},
		kindBookTicker:     {periodTick, onTopChange(appendFuturesBookTicker)},
		kindDiffDepth:      {periodDepthDefault, onBookChange(appendFuturesDepth)},
		kindPartialDepth:   {periodDepthDefault, onBookChange(appendFuturesDepth)},
		kindMarkPrice:      {periodMarkDefault, every(appendMarkPrice)},
		kindForceOrder:     {periodForceOrder, onLiquidation},
		kindKline:          {periodKline, emitKline},
		kindMiniTicker:     {periodTicker, every(appendMiniTicker)},
		kindTicker:         {periodTicker, every(appendFuturesTicker)},
		kindAllBookTickers: {periodTick, perSymbol(onTopChange(appendFuturesBookTicker))},
		kindAllForceOrders: {periodForceOrder, perSymbol(onLiquidation)},
		kindAllMarkPrices:  {periodMarkDefault, arrayOf(allSymbols, appendMarkPrice)},
		kindAllMiniTickers: {periodArr, arrayOf(tradedSymbols, appendMiniTicker)},
		kindAllTickers:     {periodArr, arrayOf(tradedSymbols, appendFuturesTicker)},
	},
	depthWindows: []int64{periodDepthDefault, periodDepthSlow},
	perpetual:    true,
	anyPong:      true,
	weightLimit:  2400,
	weights:      futuresWeights,
}

// klineIntervals returns the kline intervals both products share, 1m to
// 1M, and the seconds intervals given (Spot's 1s), each with its update
// period: the kind's, but every second for a seconds interval. Names are
// case-sensitive: 1m is a minute, 1M a month.
func klineIntervals(seconds ...string) map[string]int64 {
	m := map[string]int64{}
	for _, iv := range []string{"1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M"} {
		m[iv] = 0
	}
	for _, iv := range seconds {
		m[iv] = periodSecond
	}
	return m
}

// splitRoute splits a request path into its route and the rest:
// "/public/ws/a" is (routePublic, "/ws/a"). private reports a path under
// the user-data prefix.
func (p *product) splitRoute(path string) (rt route, rest string, private bool) {
	for _, r := range p.routes {
		if path == r.prefix || strings.HasPrefix(path, r.prefix+"/") {
			return r.route, path[len(r.prefix):], r.private
		}
	}
	return p.unrouted, path, false
}
