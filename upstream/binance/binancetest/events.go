// Package binancetest holds sample Binance events for tests and
// benchmarks of the packages that read them.
package binancetest

import (
	"fmt"
	"strings"
)

// Sample events, as Binance spot sends them in the "data" of a combined
// stream.
const (
	// Trade is a <symbol>@trade event with trade id 12345.
	Trade = `{"e":"trade","E":1672515782136,"s":"BTCUSDT","t":12345,"p":"0.00100000","q":"100.00000000","T":1672515782136,"m":true,"M":true}`
	// BookTicker is a <symbol>@bookTicker event with update id 400900217.
	BookTicker = `{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}`
	// Kline is a <symbol>@kline_1m event of the candle opened at
	// 1672515780000, still open ("x":false).
	Kline = `{"e":"kline","E":1672515782136,"s":"BTCUSDT","k":{"t":1672515780000,"T":1672515839999,"s":"BTCUSDT","i":"1m","f":100,"L":200,"o":"16500.10","c":"16502.30","h":"16503.00","l":"16499.90","v":"12.5","n":101,"x":false,"q":"206280.5","V":"6.1","Q":"100650.2","B":"0"}}`
	// KlineClosed is the last event of the same candle: it closed
	// ("x":true).
	KlineClosed = `{"e":"kline","E":1672515840001,"s":"BTCUSDT","k":{"t":1672515780000,"T":1672515839999,"s":"BTCUSDT","i":"1m","f":100,"L":250,"o":"16500.10","c":"16501.70","h":"16503.00","l":"16499.90","v":"14.2","n":151,"x":true,"q":"234330.9","V":"7.0","Q":"115510.4","B":"0"}}`
)

// Depth is a diff depth event (update ids 157 to 160) with 10 levels a
// side.
var Depth = func() string {
	var b strings.Builder
	b.WriteString(`{"e":"depthUpdate","E":1672515782136,"s":"BTCUSDT","U":157,"u":160,"b":[`)
	for i := range 10 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `["%d.00000000","%d.50000000"]`, 60000-i, i+1)
	}
	b.WriteString(`],"a":[`)
	for i := range 10 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `["%d.00000000","%d.25000000"]`, 60001+i, i+2)
	}
	b.WriteString(`]}`)
	return b.String()
}()
