// Package okx is OKX v5 public market data as an [upstream.Dialect]:
// [V5], exchange name "okx".
//
//	f, err := upstream.New(upstream.Config{Dialect: okx.V5, Publisher: h, Logger: log})
//
// Stream names are "<channel>:<instId>", keys "okx:<channel>:<instId>":
// trades, tickers, books5, books (400 levels, snapshot then updates
// chained by seqId/prevSeqId), bbo-tbt and candle<bar>, of SPOT and SWAP
// instruments (BTC-USDT, BTC-USDT-SWAP). Events are passed on as OKX
// sends them: the whole frame {"arg":{…},["action":…,]"data":[…]}.
//
// What OKX asks of a client, and where it is kept:
//   - two endpoints: /ws/v5/public, and /ws/v5/business for candles
//     (grammar.go);
//   - requests {"id":"n","op":"subscribe","args":[{"channel":…,"instId":…}]},
//     each arg answered on its own ({"event":"subscribe","arg":{…}}) or
//     refused ({"event":"error","code":"60018",…}); no stream in URLs
//     (wire.go);
//   - at most 480 subscribe/unsubscribe requests per connection in any
//     rolling hour ([DefaultMaxRequests]): the core spends them from a
//     token bucket (120, refilled at 360 an hour), frames 250 ms apart;
//   - a text "ping" whenever nothing was sent for 20 s (the server cuts a
//     connection after 30 s), answered by a text "pong";
//   - 3 connection attempts per second per IP;
//   - the notice 64008, sent 60 s before a service upgrade closes the
//     connection, handled as a shutdown (make before break);
//   - identities: trade ids, book seqId/prevSeqId, candle open time and
//     confirm (identity.go).
package okx
