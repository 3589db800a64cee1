// Package binancesim simulates Binance Spot's WebSocket market streams and
// the REST calls a market-data gateway needs, over plain ws:// and http://.
// It is the reference the gateway's upstream client is tested against, so
// it follows the protocol as documented and observed
// (/work/shared/spec/binance-streams.md, "the spec" below), not any client.
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
// Tests then inspect what the client did with [Server.Clients],
// [Server.Violations] and [Server.Subscriptions], and provoke failures with
// [Server.DropAll], [Server.CloseAll] and [Server.SendServerShutdown].
//
// # Faithful to the spec
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
//   - Error replies per the spec's table (§1.6): code 0 Unknown property,
//     code 1 Invalid value type, the code 2 family, code 3 Invalid JSON,
//     and the observed code 4 Too many subscriptions. Texts and positions
//     imitate serde_json ("at line L column C", column = 1-based byte
//     column of the last byte read, e.g. the closing brace for a missing
//     method). Error replies keep the connection open.
//   - Well-formed streams of unlisted symbols are accepted silently, in a
//     URL or a SUBSCRIBE (§1.6 observations), and counted in
//     ClientStats.InvalidStreams.
//   - Limits: incoming messages per rolling second (pings, pongs and data
//     frames count, close frames do not), close 1008 "Too many requests" on
//     the first one over; streams per connection; server pings with a
//     non-empty payload and a pong deadline; connection lifetime;
//     handshake attempts per IP per 5 minutes (HTTP 429).
//   - Payloads: field order of the spec's samples (§1.8); prices and
//     quantities are strings with 8 decimals; ids and times are numbers.
//     Partial depth carries no symbol; bookTicker no e/E.
//   - One market state per symbol, independent of subscribers: trade ids
//     consecutive per symbol, aggTrade ids consecutive with f..l covering
//     consecutive trade ids, one book update-id sequence shared by diff
//     depth (U = previous u + 1 on both update speeds), bookTicker u,
//     partial depth lastUpdateId and the /api/v3/depth snapshot, so the
//     §4 book-sync procedure works against it.
//   - serverShutdown, raw and in the !serverShutdown combined wrapper.
//
// # Choices where the spec is silent
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
//     integer", as the spec's table describes. An error reply carries the
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
//
// # Generated and silent streams
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
// start when their stream is first served. The book keeps 100 levels per
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
