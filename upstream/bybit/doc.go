// Package bybit is Bybit v5 public market data as [upstream.Dialect]s:
// [Spot] (exchange name "bybit", /v5/public/spot) and [Linear] ("bybit-linear",
// /v5/public/linear: USDT and USDC perpetuals and USDT futures), two values
// of one type.
//
// Stream names are Bybit topics, and keys are "bybit:<topic>" and
// "bybit-linear:<topic>":
//
//	publicTrade.<SYMBOL>                     trades (an event carries up to 1024)
//	tickers.<SYMBOL>                         spot: snapshots; linear: snapshot then deltas
//	orderbook.<1|50|200|1000>.<SYMBOL>       depth 1: snapshots; others: snapshot then deltas (u, seq)
//	kline.<1|3|5|15|30|60|120|240|360|720|D|W|M>.<SYMBOL>
//
// Requests are {"req_id":"<id>","op":"subscribe","args":[…]}, replies are
// matched by req_id; an error naming a topic ("error:handler not
// found,topic:…") fails exactly that topic. The client heartbeat is the
// text {"op":"ping"} every 20 s. Events are passed on verbatim: the event
// of a stream is the whole message ({"topic":…,"type":…,"ts":…,"data":…}).
//
// Spot takes at most 10 args per request: its Limits say MaxParams
// [SpotMaxArgs], which the feed's requests keep to by default.
package bybit
