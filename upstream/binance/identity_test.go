package binance

import (
	"fmt"
	"testing"

	"github.com/marketgate/marketgate/upstream"
	"github.com/marketgate/marketgate/upstream/binance/binancetest"
)

const (
	benchTrade      = binancetest.Trade
	benchBookTicker = binancetest.BookTicker
)

var benchDepth = binancetest.Depth

// neutral returns a stream of kind k as the core sees it.
func neutral(k Kind) *upstream.Stream {
	s := Stream{Kind: k}.Neutral()
	return &s
}

func TestIdentity(t *testing.T) {
	tests := []struct {
		d    Dialect
		kind Kind
		data string
		want upstream.EventID
	}{
		{Spot, KindTrade, benchTrade, upstream.EventID{Lo: 12345, Hi: 12345}},
		{Spot, KindAggTrade, `{"e":"aggTrade","E":1,"s":"X","a":77,"p":"1","f":100,"l":105,"T":1}`, upstream.EventID{Lo: 77, Hi: 77}},
		{Spot, KindDiffDepth, benchDepth, upstream.EventID{Lo: 157, Hi: 160}},
		{Futures, KindDiffDepth, `{"e":"depthUpdate","E":1,"T":1,"s":"X","U":157,"u":160,"pu":149,"b":[],"a":[]}`, upstream.EventID{Lo: 157, Hi: 160, Prev: 149, HasPrev: true}},
		{Spot, KindBookTicker, benchBookTicker, upstream.EventID{Lo: 400900217, Hi: 400900217}},
		{Spot, KindPartialDepth, `{"lastUpdateId":160,"bids":[],"asks":[]}`, upstream.EventID{Lo: 160, Hi: 160}},
		{Futures, KindPartialDepth, `{"e":"depthUpdate","E":1,"T":1,"s":"X","U":157,"u":160,"pu":149,"b":[],"a":[]}`, upstream.EventID{Lo: 160, Hi: 160}},
		{Spot, KindKline, `{"e":"kline","E":1672515782136,"s":"X","k":{"t":1672515780000,"T":1672515839999,"s":"X"}}`, upstream.EventID{Lo: 1672515780000, Hi: 1672515780000, Sub: 1672515782136}},
	}
	for _, tc := range tests {
		got, ok := tc.d.Identity(neutral(tc.kind), []byte(tc.data))
		if !ok || got != tc.want {
			t.Errorf("%s identity(%v) = %+v, %v; want %+v", tc.d.Name(), tc.kind, got, ok, tc.want)
		}
	}
	if _, ok := Spot.Identity(neutral(KindTrade), []byte(`{"e":"trade","T":5}`)); ok {
		t.Error("trade without t has an identity")
	}
	orders := []struct {
		name string
		want upstream.Order
	}{
		{"btcusdt@trade", upstream.OrderConsecutive},
		{"btcusdt@aggTrade", upstream.OrderConsecutive},
		{"btcusdt@depth", upstream.OrderConsecutive},
		{"btcusdt@blockTrade", upstream.OrderMonotonic},
		{"btcusdt@bookTicker", upstream.OrderMonotonic},
		{"btcusdt@depth5", upstream.OrderMonotonic},
		{"btcusdt@kline_1m", upstream.OrderMonotonic},
		{"btcusdt@ticker", upstream.OrderNone},
		{"btcusdt@avgPrice", upstream.OrderNone},
		{"!miniTicker@arr", upstream.OrderNone},
	}
	for _, tc := range orders {
		s, err := Spot.ParseStream(tc.name)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Order(); got != tc.want {
			t.Errorf("%s order = %v; want %v", tc.name, got, tc.want)
		}
	}
}

func TestFinal(t *testing.T) {
	const continuous = `{"e":"continuous_kline","E":1607443058651,"ps":"BTCUSDT","ct":"PERPETUAL","k":{"t":1607443020000,"T":1607443079999,"i":"1m","f":116467658886,"L":116468012423,"o":"18787.00","c":"18804.04","h":"18804.04","l":"18786.54","v":"197.664","n":543,"x":%s,"q":"3715253.19494","V":"184.769","Q":"3472925.84746","B":"0"}}`
	tests := []struct {
		name string
		d    Dialect
		kind Kind
		data string
		want bool
	}{
		{"open kline", Spot, KindKline, binancetest.Kline, false},
		{"closed kline", Spot, KindKline, binancetest.KlineClosed, true},
		{"closed futures kline", Futures, KindKline, binancetest.KlineClosed, true},
		{"open continuous kline", Futures, KindContinuousKline, fmt.Sprintf(continuous, "false"), false},
		{"closed continuous kline", Futures, KindContinuousKline, fmt.Sprintf(continuous, "true"), true},
		{"closed, spaced", Spot, KindKline, `{"e":"kline", "k": { "t":1, "x" : true } }`, true},
		{"x outside k", Spot, KindKline, `{"e":"kline","x":true,"k":{"t":1,"x":false}}`, false},
		{"x in a nested object of k", Spot, KindKline, `{"e":"kline","k":{"t":1,"z":{"x":true}}}`, false},
		{"x not a boolean", Spot, KindKline, `{"e":"kline","k":{"t":1,"x":"true"}}`, false},
		{"X is not x", Spot, KindKline, `{"e":"kline","k":{"t":1,"X":true}}`, false},
		{"no k", Spot, KindKline, `{"e":"kline","E":1}`, false},
		{"k not an object", Spot, KindKline, `{"e":"kline","k":true}`, false},
		{"truncated", Spot, KindKline, `{"e":"kline","k":{"t":1,"x":tr`, false},
		{"not a kline stream", Spot, KindTicker, `{"e":"24hrTicker","k":{"x":true},"x":true}`, false},
		{"mark price", Futures, KindMarkPrice, `{"e":"markPriceUpdate","k":{"x":true}}`, false},
		{"book ticker", Spot, KindBookTicker, benchBookTicker, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.d.Final(neutral(tc.kind), []byte(tc.data)); got != tc.want {
				t.Errorf("%s Final(%v, %.60s…) = %v; want %v", tc.d.Name(), tc.kind, tc.data, got, tc.want)
			}
		})
	}
	s, data := neutral(KindKline), []byte(binancetest.KlineClosed)
	if a := testing.AllocsPerRun(100, func() { Spot.Final(s, data) }); a != 0 {
		t.Errorf("Final: %v allocs; want 0", a)
	}
}

func TestEventTime(t *testing.T) {
	tests := []struct {
		data string
		want int64
	}{
		{benchTrade, 1672515782136000},                                 // milliseconds
		{`{"e":"trade","E":1672515782136123,"t":1}`, 1672515782136123}, // microseconds
		{`{"E":99999999999999}`, 99999999999999000},                    // the largest taken for ms
		{`{"E":100000000000000}`, 100000000000000},                     // the smallest taken for µs
		{benchBookTicker, 0},                                           // spot bookTicker has no E
		{`{"e":"x","E":0}`, 0},                                         // unknown
		{`{"e":"x","E":-5}`, 0},                                        // nonsense
		{`{"e":"x","E":"1"}`, 0},                                       // not a number
		{`[{"E":1672515782136}]`, 0},                                   // an array: no top-level E
		{`{"k":{"E":1672515782136}}`, 0},
		{`{"e":"x","E":1.5e12}`, 0},
	}
	for _, tc := range tests {
		if got := Spot.EventTime([]byte(tc.data)); got != tc.want {
			t.Errorf("EventTime(%.50s) = %d; want %d", tc.data, got, tc.want)
		}
	}
	if a := testing.AllocsPerRun(100, func() { Spot.EventTime([]byte(benchTrade)) }); a != 0 {
		t.Errorf("eventTime: %v allocs; want 0", a)
	}
}
