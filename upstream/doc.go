// Package upstream keeps the gateway's connections to exchanges: every
// stream any browser wants is subscribed once, on shared connections, and
// each of its events is published once to a [hub.Publisher].
//
// A [Feed] serves one exchange product through its [Dialect], which an
// exchange's own package implements (upstream/binance: binance.Spot,
// binance.Futures); [Router] maps gateway stream keys
// ("binance:btcusdt@trade") to feeds. Nothing in this package knows an
// exchange: it speaks of endpoints, requests and replies, heartbeats,
// stream classes ([Class]: trade, book delta, … which decide conflation
// and how events are told apart) and event identities.
//
//	spot, err := upstream.New(upstream.Config{Dialect: binance.Spot, Publisher: h, Logger: log})
//	if err != nil { … }
//	fut, err := upstream.New(upstream.Config{Dialect: binance.Futures, Publisher: h, Logger: log})
//	if err != nil { … }
//	r := upstream.NewRouter(spot, fut)
//	g.Go(func() error { return spot.Run(ctx) })
//	g.Go(func() error { return fut.Run(ctx) })
//	if err := r.Validate("binance:btcusdt@trade"); err != nil { … } // message for the client
//	r.Want([]string{"binance-futures:btcusdt@aggTrade"}) // on the first local subscriber
//	r.Unwant([]string{"binance-futures:btcusdt@aggTrade"}) // on the last one leaving
//
// # Within the exchange's limits by construction
//
// Only frames the gateway composes itself go upstream: subscribe and
// unsubscribe requests of validated stream names (encoded by the
// dialect), pongs echoing a ping's payload, the dialect's heartbeat, and
// close frames, all written by one writer goroutine per connection, at
// least RequestInterval apart (at most 4 frames in any second on Binance
// spot). Replies are matched by request id, or stream by stream for
// exchanges that answer each stream on its own. Streams go to shards of at most MaxStreams;
// dials of every shard, rotation and reconnect share a sliding-window
// budget of MaxConnAttempts per ConnAttemptWindow. Connections are
// rotated before MaxLifetime without losing or repeating an event
// (rotate.go). The hot path (reader.go) reads each message into a reused
// buffer, routes it by a byte scan, and publishes a [hub.Message] whose
// Data aliases that buffer: it allocates nothing.
//
// # Locks
//
// streamState.pmu, then mergeStream.mu (a redundant feed's merger), then
// Feed.mu, then session.mu. pmu and mergeStream.mu are held while
// publishing, which may call back into Subscribe and Unsubscribe (they
// take Feed.mu, of each lane in turn), so neither is ever taken while a
// Feed.mu or a session.mu is held. At most one session.mu is held at a
// time. symbolSet.mu, attemptLimiter.mu and merger.mu are leaves.
package upstream
