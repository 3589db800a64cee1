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
