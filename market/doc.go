// Package market serves market-data REST calls (symbols, depth, klines,
// trades, tickers) to browsers and Binance client libraries while sparing
// the exchange: one governed [Client] per exchange host spends the IP's
// request weight for the whole node, identical concurrent calls cost one
// upstream request, answers are cached for a short time, and during a
// 429 or 418 stop the [Market.Handler] answers from cache (Age, X-Cache:
// stale) or with 503 and Retry-After, never calling the exchange.
//
//	m, err := market.New(market.Config{
//		Exchanges: []market.Exchange{{Rules: binance.SpotREST}, {Rules: binance.FuturesREST}},
//		Books:     keeper, // optional: depth from the gateway's kept books
//		Logger:    log,
//	})
//	if err != nil { … }
//	web.Config{Market: m.Handler()}
//	snap, err := m.Client("binance").Get(ctx, "/api/v3/depth", url.Values{"symbol": {"BTCUSDT"}, "limit": {"1000"}})
//
// An exchange plugs in through [Rules] (paths, weights, header names,
// errors, the symbol list), implemented next to its stream dialect, e.g.
// upstream/binance/rest.go.
//
// # Paths served
//
//   - GET /api/v1/market/<exchange>/symbols: {"exchange":…,"symbols":[{symbol,base,quote,status,tickSize,stepSize}]}
//   - GET /api/v1/market/<exchange>/depth?symbol=&limit=: the exchange's depth body, from [Books] when it keeps the book
//   - GET /api/v1/market/<exchange>/klines?symbol=&interval=&limit=&startTime=&endTime=: the exchange's klines verbatim
//   - GET /api/v1/market/<exchange>/trades?symbol=&limit=: the exchange's recent trades verbatim
//   - GET /<exchange><rest path>, e.g. /binance/api/v3/depth or /binance-futures/fapi/v1/klines: the
//     drop-in for the endpoints in [Endpoints], answered as the exchange answers (status and body
//     verbatim, the exchange's own error JSON). time and ping are answered locally: they carry no
//     market data and would only spend weight.
//
// Answers carry the exchange's status, body and Content-Type only: its
// used-weight headers describe the gateway's spending, not the client's,
// and would make a client library throttle itself for nothing. Every
// answer says how it was had: X-Cache: hit (fresh from cache or a kept
// book, with Age), miss (fetched for this request or shared with
// concurrent ones), stale (during a stop or an exchange failure, with
// Age); a call that can be had neither way is 503 with Retry-After. The
// gateway's own errors are {"error":{"code":…,"msg":…}}; unknown drop-in
// paths are 404 with an HTML page, as the exchange's front answers.
//
// # Cache lifetimes
//
// An answer (2xx or the exchange's 4xx) is fresh for its endpoint's TTL
// ([DefaultTTL]): exchangeInfo 1 min (the symbol list changes rarely and
// is the usual ban trigger), klines 1 s (the open candle moves; closed
// ones do not, but one TTL keeps the rule simple), ticker/24hr 1 s (the
// exchange updates it about once a second), trades 500 ms, depth 250 ms
// when not from a kept book (a browser polling faster should use the
// @book stream). A stale answer is kept, within the cache's bounds, for
// [Config.MaxStale] to be served during a stop.
//
// # Locks
//
// Client.mu and cache.mu are leaves: no code holds two.
package market
