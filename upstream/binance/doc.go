// Package binance is Binance's market streams as an [upstream.Dialect]:
// [Spot] (exchange "binance") and USD-M [Futures] (exchange
// "binance-futures"), two values of one [Dialect] type that differ only in
// their product tables (grammar, endpoints, symbol list path, limits,
// identity fields).
//
//	spot, err := upstream.New(upstream.Config{Dialect: binance.Spot, Publisher: h, Logger: log})
//	if err != nil { … }
//	fut, err := upstream.New(upstream.Config{Dialect: binance.Futures, Publisher: h, Logger: log})
//	if err != nil { … }
//	r := upstream.NewRouter(spot, fut)
//
// What Binance asks of a client, and where it is kept:
//   - requests {"method":"SUBSCRIBE","params":[…],"id":n}, one reply per
//     request by id; error code 4 means too many streams on the
//     connection (wire.go);
//   - streams in the connection URL (/stream?streams=a/b/c), which cost
//     no request; a URL with too many is refused with HTTP 400;
//   - the combined-stream envelope {"stream":…,"data":…}, parsed without
//     allocating; !serverShutdown announces a close (wire.go);
//   - server pings answered with pongs (by the core), no client heartbeat;
//   - event time "E", event ids and closed candles (identity.go); the
//     stream grammars and their classes (grammar.go).
package binance
