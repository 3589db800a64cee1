package binance

import (
	"errors"
	"testing"
	"time"

	"github.com/marketgate/marketgate/upstream"
)

func TestParseFuturesStream(t *testing.T) {
	tests := []struct {
		name     string
		want     Stream
		endpoint int
	}{
		{"btcusdt@aggTrade", Stream{Symbol: "btcusdt", Kind: KindAggTrade}, futuresMarket},
		{"btcusdt@markPrice", Stream{Symbol: "btcusdt", Kind: KindMarkPrice, Speed: 3 * time.Second}, futuresMarket},
		{"btcusdt@markPrice@1s", Stream{Symbol: "btcusdt", Kind: KindMarkPrice, Speed: time.Second}, futuresMarket},
		{"!markPrice@arr", Stream{Kind: KindMarkPriceArr, Speed: 3 * time.Second}, futuresMarket},
		{"!markPrice@arr@1s", Stream{Kind: KindMarkPriceArr, Speed: time.Second}, futuresMarket},
		{"btcusdt@kline_1m", Stream{Symbol: "btcusdt", Kind: KindKline, Interval: "1m"}, futuresMarket},
		{"btcusdt_perpetual@continuousKline_1M", Stream{Symbol: "btcusdt", Kind: KindContinuousKline, Interval: "1M", ContractType: "perpetual"}, futuresMarket},
		{"ethusdt_next_quarter@continuousKline_5m", Stream{Symbol: "ethusdt", Kind: KindContinuousKline, Interval: "5m", ContractType: "next_quarter"}, futuresMarket},
		{"btcusdt@miniTicker", Stream{Symbol: "btcusdt", Kind: KindMiniTicker}, futuresMarket},
		{"!miniTicker@arr", Stream{Kind: KindMiniTickerArr}, futuresMarket},
		{"btcusdt@ticker", Stream{Symbol: "btcusdt", Kind: KindTicker}, futuresMarket},
		{"!ticker@arr", Stream{Kind: KindTickerArr}, futuresMarket},
		{"btcusdt@forceOrder", Stream{Symbol: "btcusdt", Kind: KindForceOrder}, futuresMarket},
		{"!forceOrder@arr", Stream{Kind: KindForceOrderArr}, futuresMarket},
		{"btcusdt@bookTicker", Stream{Symbol: "btcusdt", Kind: KindBookTicker}, futuresPublic},
		{"!bookTicker", Stream{Kind: KindBookTickerArr}, futuresPublic},
		{"btcusdt@depth", Stream{Symbol: "btcusdt", Kind: KindDiffDepth, Speed: 250 * time.Millisecond}, futuresPublic},
		{"btcusdt@depth@100ms", Stream{Symbol: "btcusdt", Kind: KindDiffDepth, Speed: 100 * time.Millisecond}, futuresPublic},
		{"btcusdt@depth@500ms", Stream{Symbol: "btcusdt", Kind: KindDiffDepth, Speed: 500 * time.Millisecond}, futuresPublic},
		{"btcusdt@depth20@100ms", Stream{Symbol: "btcusdt", Kind: KindPartialDepth, Levels: 20, Speed: 100 * time.Millisecond}, futuresPublic},
		{"btcusdt_260626@depth5", Stream{Symbol: "btcusdt_260626", Kind: KindPartialDepth, Levels: 5, Speed: 250 * time.Millisecond}, futuresPublic},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseFuturesStream(tc.name)
			if err != nil {
				t.Fatalf("ParseFuturesStream(%q) error = %v", tc.name, err)
			}
			tc.want.Name = tc.name
			if got != tc.want {
				t.Errorf("ParseFuturesStream(%q) = %+v; want %+v", tc.name, got, tc.want)
			}
			if ep := Futures.EndpointOf(got.Neutral()); ep != tc.endpoint {
				t.Errorf("endpoint of %q = %s; want %s", tc.name, Futures.Endpoints()[ep], Futures.Endpoints()[tc.endpoint])
			}
		})
	}
	for _, name := range []string{
		"", "btcusdt@trade", "btcusdt@avgPrice", "btcusdt@kline_1s", "btcusdt@kline_1m@+08:00",
		"btcusdt@ticker_1h", "btcusdt@depth@1000ms", "btcusdt@depth15", "btcusdt@markPrice@3s",
		"BTCUSDT@aggTrade", "!ticker_1h@arr", "!bookTicker@arr", "btcusdt@continuousKline_1m",
		"btcusdt_weekly@continuousKline_1m", "btcusdt_perpetual@continuousKline_1s", "btcusdt__x@aggTrade",
		"_btcusdt@aggTrade", "!serverShutdown",
	} {
		if s, err := ParseFuturesStream(name); !errors.Is(err, upstream.ErrInvalidStream) {
			t.Errorf("ParseFuturesStream(%q) = %+v, %v; want ErrInvalidStream", name, s, err)
		}
	}
}
