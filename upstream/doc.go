// Package upstream keeps the gateway's connections to exchanges: ONE shared
// connection per exchange endpoint carries every stream any browser wants,
// each subscribed once, and publishes every event to a [hub.Publisher].
//
// [Binance] is the Binance spot upstream; [Router] maps gateway stream keys
// ("binance:btcusdt@trade") to exchanges; [ParseStream] is the Binance
// stream-name grammar.
//
//	b, err := upstream.NewBinance(upstream.BinanceConfig{Publisher: h, Logger: log})
//	if err != nil { … }
//	r := upstream.NewRouter(b)
//	g.Go(func() error { return b.Run(ctx) })
//	if err := r.Validate("binance:btcusdt@trade"); err != nil { … } // message for the client
//	r.Want([]string{"binance:btcusdt@trade"})   // on the first local subscriber
//	r.Unwant([]string{"binance:btcusdt@trade"}) // on the last one leaving
//
// Lock order: Binance.mu before session.mu (the only two locks held
// together).
package upstream
