// Package binancesim simulates Binance's WebSocket market streams and the
// REST calls a market-data gateway needs, over plain ws:// and http://:
// Binance Spot by default, Binance USD-M futures with [ModeFutures]. It is
// the reference the gateway's upstream client is tested against, so it
// follows the protocol as Binance documents it and as it is observed in
// the wild, not as any client expects it.
//
// # Use
//
//	s, err := binancesim.New(binancesim.Config{Symbols: []string{"BTCUSDT", "ETHUSDT"}})
//	if err != nil { ... }
//	ln, err := net.Listen("tcp", "127.0.0.1:0")
//	if err != nil { ... }
//	go s.Run(ctx, ln) // returns nil once ctx ends and every connection is closed
//	base := "ws://" + ln.Addr().String() // base+"/stream?streams=btcusdt@trade"
//	rest := "http://" + ln.Addr().String() // rest+"/api/v3/exchangeInfo"
//
// With Config{Mode: binancesim.ModeFutures} the same base serves
// base+"/public/stream?streams=btcusdt@depth@100ms",
// base+"/market/stream?streams=btcusdt@aggTrade" and
// rest+"/fapi/v1/depth?symbol=BTCUSDT&limit=1000".
//
// Tests then inspect what the client did with [Server.Clients],
// [Server.Violations], [Server.Subscriptions], [Server.Accepted] and
// [Server.OpenConnections], and provoke failures with [Server.DropAll],
// [Server.DropOne] (or every [Config.DropEvery]), [Server.CloseAll] and
// [Server.SendServerShutdown]. A gateway test that
// asserts Violations() == 0 covers malformed requests, rate-limit,
// pong-timeout and slow-consumer closes, unknown symbols, refused
// handshakes and (futures) streams subscribed on the wrong route.
//
// # Spot: as Binance documents it
//
//   - Endpoints: /ws, /ws/<stream>[/<stream>...] (raw payloads, combined
//     false) and /stream?streams=<a>/<b> (the {"stream":..,"data":..}
//     wrapper, combined true); an empty or missing streams list is accepted
//     and held open; /stream/<anything> is HTTP 404 at the handshake.
//     timeUnit=MICROSECOND|microsecond|MILLISECOND|millisecond on either;
//     anything else is HTTP 400.
//   - Methods SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS, SET_PROPERTY and
//     GET_PROPERTY ("combined") with the documented replies, field order
//     result/error first, then id. The id is echoed as sent: a signed
//     64-bit integer, an alphanumeric string of at most 36 characters, or
//     null.
//   - Error replies as in Binance's error table: code 0 Unknown property,
//     code 1 Invalid value type, the code 2 family, code 3 Invalid JSON,
//     and the observed code 4 Too many subscriptions. Texts and positions
//     imitate serde_json ("at line L column C", column = 1-based byte
//     column of the last byte read, e.g. the closing brace for a missing
//     method). Error replies keep the connection open.
//   - Well-formed streams of unlisted symbols are accepted silently, in a
//     URL or a SUBSCRIBE (as observed on Binance), and counted in
//     ClientStats.InvalidStreams.
//   - Limits: incoming messages per rolling second (pings, pongs and data
//     frames count, close frames do not), close 1008 "Too many requests" on
//     the first one over; streams per connection; server pings with a
//     non-empty payload and a pong deadline; connection lifetime;
//     handshake attempts per IP per 5 minutes (HTTP 429).
//   - Payloads: field order of Binance's samples; prices and
//     quantities are strings with 8 decimals; ids and times are numbers.
//     Partial depth carries no symbol; bookTicker no e/E.
//   - One market state per symbol, independent of subscribers: trade ids
//     consecutive per symbol, aggTrade ids consecutive with f..l covering
//     consecutive trade ids, one book update-id sequence shared by diff
//     depth (U = previous u + 1 on both update speeds), bookTicker u,
//     partial depth lastUpdateId and the /api/v3/depth snapshot, so a
//     local book can be synced against it: buffer the diffs, fetch a
//     snapshot, drop the diffs with u <= its lastUpdateId, and apply the
//     rest, the first one having U <= lastUpdateId+1 <= u.
//   - serverShutdown, raw and in the !serverShutdown combined wrapper.
//
// # Choices where Binance's documentation is silent
//
//   - Over MaxStreams: the observed error reply code 4 (not a close); the
//     SUBSCRIBE is refused as a whole. A URL naming more than MaxStreams
//     streams is refused with HTTP 400.
//   - A SUBSCRIBE with any malformed name is refused as a whole with
//     "Invalid request: invalid stream"; well-formed names are subscribed
//     even if their symbol is unknown. Stream symbols must be lower case:
//     "BTCUSDT@trade" is malformed. Malformed names in a URL are accepted
//     and stay silent (the observed URL behaviour), not subscribed.
//   - SUBSCRIBE/UNSUBSCRIBE without params: "Invalid request: missing field
//     `params`". LIST_SUBSCRIPTIONS with non-empty params, GET_PROPERTY
//     with more than one and SET_PROPERTY with more than two: "too many
//     parameters". SET_PROPERTY without a boolean second param: code 1.
//   - Requests are checked like serde would: JSON syntax first (code 3),
//     then fields in document order, then missing fields (method before
//     id). A method that is not a string is serde's syntax error "expected
//     value" (code 3). A missing id is "request ID must be an unsigned
//     integer", as Binance's error table describes. An error reply carries the
//     id whenever the frame holds a valid one. Unknown fields are ignored;
//     duplicate fields are "duplicate field `x`". A JSON value that is not
//     an object is "invalid type: ..., expected struct Request" and counts
//     as a missing method. The empty frame is exactly "Invalid JSON: EOF
//     while parsing a value". Binary frames are treated like text.
//   - Re-subscribing, or unsubscribing a stream not held, succeeds and is
//     counted in ClientStats.Redundant. LIST_SUBSCRIPTIONS lists in
//     subscription order.
//   - Pong timeout: close 1008 "Pong timeout" (the reason observed in the
//     wild). A pong answers the ping whose payload it echoes and every
//     older one. Pongs echoing nothing count as BadPongs (a violation)
//     unless empty (UnsolicitedPongs, allowed).
//   - Lifetime: close 1001 "Connection lifetime expired". Run ending and
//     [Server.SendServerShutdown]: the event, then 1001 "Server shutdown".
//   - Frames or messages over 64 KiB: 1009; protocol errors 1002; invalid
//     UTF-8 in text 1007.
//   - Slow consumers (send queue full, or one write stalled beyond
//     WriteTimeout): close 1008 "Slow consumer", counted as SlowClosed.
//   - StrictMethod: after the error reply for a frame without a method
//     (or not JSON), close 1008 with Binance's historical reason
//     {"code":-1,"msg":"Illegal format ws or stream"}.
//   - Lifetime is counted from the accept (before the 101 is written), so
//     a client that rotates its connections sooner than MaxLifetime is
//     never cut by it.
//
// # Futures mode
//
// [ModeFutures] imitates wss://fstream.binance.com after the 2026 routing
// change. Everything above holds unless said otherwise here.
//
//   - Paths: /public/ws, /public/ws/<s1>/<s2>… (several raw streams),
//     /public/stream?streams=…, and the same under /market. Unrouted /ws
//     and /stream are accepted and behave like /public (the docs: such
//     connections "only receive data from the Public endpoint"). /private
//     (user data) is not simulated: HTTP 404, counted in Rejections. Like
//     /stream/x, /public/stream/x is HTTP 404.
//   - /public serves <s>@depth, @depth@100ms, @depth@500ms (250ms by
//     default), <s>@depth<5|10|20>[@100ms|@500ms], <s>@bookTicker and
//     !bookTicker. /market serves <s>@aggTrade, <s>@markPrice[@1s],
//     !markPrice@arr[@1s], <s>@kline_<i>, <s>@miniTicker, !miniTicker@arr,
//     <s>@ticker, !ticker@arr, <s>@forceOrder and !forceOrder@arr; it also
//     accepts, and keeps silent, <pair>_<contractType>@continuousKline_<i>,
//     <s>@compositeIndex, !contractInfo, <asset>@assetIndex and
//     !assetIndex@arr (asset names are not checked against Symbols).
//   - A well-formed stream on the wrong route (aggTrade on /public, depth
//     on /market or on an unrouted path) is accepted in the URL or by
//     SUBSCRIBE, listed, shown in Subscriptions, and never sent data, as
//     on Binance. Each one counts in ClientStats.WrongRoute, a violation.
//   - The grammar is USD-M's: spot-only names (trade, avgPrice, kline_1s,
//     @+08:00 klines, ticker_<w>, blockTrade, referencePrice, depth speeds
//     other than 100/250/500ms) are malformed: "invalid stream" in a
//     SUBSCRIBE, silent and counted in InvalidStreams in a URL. Futures
//     names are malformed in spot mode in the same way. There is no @trade
//     stream on futures (Binance lists none). Stream symbols may hold '_'
//     between parts, as delivery contracts do (btcusdt_260626@depth); the
//     simulator lists perpetuals only, so those are unlisted symbols.
//   - Limits default to 10 messages/s, 1024 streams, a ping every 3m, a
//     10m pong timeout and 24h. Any pong, echoing a ping or not, answers
//     every outstanding ping ("unsolicited pong frames … maintain the
//     connection"); unmatched pongs count as UnsolicitedPongs, never
//     BadPongs. The methods, replies and errors are Spot's (the futures
//     pages say the JSON is the same); ids are accepted as on Spot although the
//     futures page still says "unsigned INT".
//   - Payloads, field order as in the USD-M doc pages:
//     depthUpdate {e,E,T,s,U,u,pu,b,a}; partial depth has the same
//     depthUpdate shape with the top levels in b/a and the U/u/pu of the
//     diff of the same speed; bookTicker {e,u,E,T,s,b,B,a,A}; aggTrade
//     {e,E,s,a,p,q,f,l,T,m} (no M); markPriceUpdate {e,E,s,p,i,P,r,T} with
//     T the next funding time (00, 08, 16 UTC) and P equal to the index;
//     forceOrder {e,E,o:{s,S,o,f,q,p,ap,X,l,z,T}}; 24hrTicker
//     {e,E,s,p,P,w,c,Q,o,h,l,v,q,O,C,F,L,n} (no x/b/B/a/A); miniTicker and
//     kline as on Spot. Times are milliseconds; timeUnit is ignored.
//   - pu is the u of the previous event of the same stream (the previous
//     period's last update id, whether or not this connection saw it), so
//     every event's pu equals the previous event's u; in the simulator U is
//     always pu+1. T is the time of the last book change, T <= E.
//   - REST: GET /fapi/v1/exchangeInfo (every symbol a TRADING PERPETUAL
//     contract with pair, baseAsset, quoteAsset, marginAsset, filters; no
//     parameters), GET /fapi/v1/depth?symbol=&limit= (limit 5, 10, 20, 50,
//     100, 500 (default) or 1000, else HTTP 400 code -1130;
//     {lastUpdateId,E,T,bids,asks}, lastUpdateId from the streams' id
//     sequence, so the USD-M book sync works: drop the buffered events
//     with u < lastUpdateId, start at the one with U <= lastUpdateId <= u,
//     and from then on check each event's pu against the previous u),
//     /fapi/v1/time and
//     /fapi/v1/ping. /api/v3/* is HTTP 404 in futures mode and /fapi/* in
//     spot mode.
//   - Run's end closes with 1001 "Server shutdown" without the
//     serverShutdown event, which USD-M does not document;
//     SendServerShutdown still sends it when called.
//   - Update speeds (one tick standing for 100ms): aggTrade, bookTicker
//     and !bookTicker every tick (real time); depth every 1, 2.5 (on
//     average: ticks 200 and 300ms apart) or 5 ticks; kline every 2.5
//     ticks; miniTicker and ticker every 20; the @arr tickers, forceOrder
//     and markPrice@1s every 10; markPrice every 30. A symbol is
//     liquidated on about 2% of ticks; forceOrder pushes the latest
//     liquidation of each second, and it does not trade.
//
// # Generated and silent streams (spot)
//
// Generated: trade, aggTrade, bookTicker (once per tick when the top of
// book changed), depth5/10/20 and @100ms, depth and depth@100ms,
// miniTicker, ticker, avgPrice, kline_<interval> (also @+08:00), and
// !miniTicker@arr (symbols that traded in the last second). Accepted but
// silent: blockTrade, referencePrice, ticker_<window>, !ticker_<window>@arr.
// Real-time and @100ms streams are pushed every TickInterval; the "1000ms"
// streams every 10 ticks; klines every 20 ticks (10 for 1s klines). With
// a short TickInterval everything speeds up in proportion.
//
// The 24h ticker starts from synthetic values and accumulates; candles
// start when their stream or /klines is first served, with up to 1000
// synthetic past bars (a random walk ending at the current price, none
// before mid-2017), and keep their last 1500 finished bars. /trades
// answers from the last 1000 trades of the symbol.
//
// REST on both products: klines (symbol, interval (1s on Spot only),
// startTime, endTime, limit default 500, max 1000 Spot or 1500 USD-M),
// trades (limit default 500, max 1000; USD-M without isBestMatch) and
// ticker/24hr (one symbol, or all as an array; Spot also symbols=[…]),
// with Binance's error bodies (-1102, -1120, -1121, -1100 or -1130 for
// limit, -1023). The book keeps 100 levels per
// side; levels that fall out of range are sent as quantity 0. Times come
// from Config.Now, in milliseconds or, with timeUnit, microseconds (every
// time field: E, T, kline t/T, ticker O/C).
//
// # Cost
//
// Each tick steps every symbol (a few book updates and a bursty number of
// trades) under one lock, then encodes each due event once per stream and
// variant (raw/combined × ms/µs) as a complete WebSocket frame and queues
// the same bytes to every subscriber. Each connection has one reader, one
// writer (the only goroutine writing to it, batching frames into writev)
// and one timer goroutine; a bounded queue sits between the generator
// and the writer, so the generator never blocks.
//
// # REST weight, 429 and 418
//
// Every REST call is charged Binance's request weight against its IP in
// a fixed wall-clock minute (the limiter clock is the real one), and every
// answer carries X-MBX-USED-WEIGHT-1M. Spot: depth 5/25/50/250 for limit
// ≤100/≤500/≤1000/≤5000, exchangeInfo 20, time and ping 1 (klines 2,
// trades 25, ticker/24hr 2 with a symbol and 80 without). USD-M: depth
// 2/5/10/20 for limit 5–50/100/500/1000, exchangeInfo, time and ping 1
// (klines 1/2/5/10 by limit, trades 5, ticker/24hr 1 or 40). The call
// that passes [Config.RESTWeightLimit] gets HTTP 429 with Retry-After (the
// seconds to the next minute) and {"code":-1003,"msg":"Too many requests;
// current limit of IP(<ip>) is <n> requests per minute. …"}; a call
// before that Retry-After passes gets HTTP 418, a ban of
// [Config.BanDuration] that doubles with each ban of the same IP (3 days
// at most), with Retry-After and "Way too much request weight used; IP
// banned until <unix ms>. …". [Server.Throttle] and [Server.Ban] force
// 429s and 418s for every IP; [Server.RESTStats] counts calls by path,
// weight, 429s, 418s and the procedure violations of [Config.StrictBook]:
// a depth snapshot from an IP with no connection subscribed to the
// symbol's diff-depth stream, a call during a Retry-After or a ban, more
// than 10 snapshots of one symbol per minute per IP.
//
// # Book knobs
//
// [Server.Book] returns the whole book as a REST snapshot would;
// [Server.Pause] and [Server.Resume] stop and restart the market (REST
// keeps answering), so a test can compare a kept book with Book.
// [Server.InjectGap] withholds the next diff-depth event of a symbol on
// every update speed while the book keeps the changes: on Spot the next
// event's U is above the previous u + 1, on USD-M its pu differs from the
// previous u.
//
// # Guarantees for tests
//
// A connection is in [Server.Clients], and its URL streams in
// [Server.Subscriptions], before its 101 response is written; a SUBSCRIBE
// or UNSUBSCRIBE takes effect in Subscriptions before its reply can be
// read. So a test may assert right after a dial or a reply returns, with
// no polling. Closes are asynchronous: poll ClientStats.Closed.
//
// # Locks
//
// market.mu, then registry.mu, then conn.cmu; conn.mu, then registry.mu,
// then conn.cmu. Server.mu and conn.pmu are leaves.
package binancesim
