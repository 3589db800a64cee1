// Package okxsim imitates OKX v5 public market data: the WebSocket
// endpoints /ws/v5/public (trades, tickers, books5, books, bbo-tbt) and
// /ws/v5/business (candle<bar>), and the REST instrument list
// GET /api/v5/public/instruments?instType=SPOT|SWAP, over plain ws:// and
// http:// on a listener the caller gives it.
//
//	srv, err := okxsim.New(okxsim.Config{Logger: log})
//	if err != nil { … }
//	err = srv.Run(ctx, ln) // until ctx ends
//
// The data is plausible and consistent: one market per instrument, shared
// by every connection, so trade ids and book seqIds are the same on all
// of them, as OKX's are. Books start with a 400-level snapshot
// (prevSeqId -1) and go on with updates whose prevSeqId is the previous
// seqId; seqIds increase with gaps. Candles are pushed at most once a
// second (Config.CandleInterval), as OKX does, and
// once more with confirm "1" when their bar ends.
//
// OKX's rules are enforced strictly, each break counted per connection
// in [ClientStats] (their sum is [Server.Violations]):
//   - requests are JSON {"id":"≤32 alphanumerics","op":"subscribe"|
//     "unsubscribe","args":[{"channel":…,"instId":…},…]}; anything else
//     gets error 60012 (BadRequests);
//   - unknown channels or instruments, and channels asked for on the
//     wrong endpoint, get error 60018 naming them (UnknownStreams,
//     WrongEndpoint);
//   - the args of one request may not exceed 64 KB (TooLarge);
//   - 480 subscribe/unsubscribe requests per connection per rolling hour
//     (Config.MaxRequestsPerHour); more get error 60014 "Requests too
//     frequent" (RateLimited);
//   - fewer than 30 book channels per connection (TooManyBooks);
//   - a connection that sent nothing (not even "ping") for 30 s is closed
//     (IdleClosed); this is stricter than OKX, which also keeps a
//     connection alive while it pushes data, but a client that pings
//     after 20 s of silence never meets it;
//   - 3 WebSocket handshakes per second per IP; more are refused with
//     HTTP 429 ([Server.RefusedAttempts]).
//
// Knobs for tests: [Server.SendShutdownNotice] (notice 64008, then a
// close after Config.NoticeGrace), [Server.DropAll] (abrupt TCP close of
// every connection) and [Server.Subscriptions].
package okxsim
