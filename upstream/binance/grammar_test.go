package binance

import (
	"errors"
	"github.com/marketgate/marketgate/upstream"
	"strings"
	"testing"
	"time"
)

func TestParseStream(t *testing.T) {
	tests := []struct {
		name string
		want Stream
	}{
		{"btcusdt@trade", Stream{Symbol: "btcusdt", Kind: KindTrade}},
		{"btcusdt@aggTrade", Stream{Symbol: "btcusdt", Kind: KindAggTrade}},
		{"bnbbtc@blockTrade", Stream{Symbol: "bnbbtc", Kind: KindBlockTrade}},
		{"bazusd@referencePrice", Stream{Symbol: "bazusd", Kind: KindReferencePrice}},
		{"btcusdt@avgPrice", Stream{Symbol: "btcusdt", Kind: KindAvgPrice}},
		{"btcusdt@miniTicker", Stream{Symbol: "btcusdt", Kind: KindMiniTicker}},
		{"btcusdt@ticker", Stream{Symbol: "btcusdt", Kind: KindTicker}},
		{"btcusdt@ticker_1h", Stream{Symbol: "btcusdt", Kind: KindWindowTicker, Interval: "1h"}},
		{"btcusdt@ticker_4h", Stream{Symbol: "btcusdt", Kind: KindWindowTicker, Interval: "4h"}},
		{"btcusdt@ticker_1d", Stream{Symbol: "btcusdt", Kind: KindWindowTicker, Interval: "1d"}},
		{"btcusdt@bookTicker", Stream{Symbol: "btcusdt", Kind: KindBookTicker}},
		{"btcusdt@kline_1s", Stream{Symbol: "btcusdt", Kind: KindKline, Interval: "1s"}},
		{"btcusdt@kline_1m", Stream{Symbol: "btcusdt", Kind: KindKline, Interval: "1m"}},
		{"btcusdt@kline_1M", Stream{Symbol: "btcusdt", Kind: KindKline, Interval: "1M"}},
		{"btcusdt@kline_12h", Stream{Symbol: "btcusdt", Kind: KindKline, Interval: "12h"}},
		{"btcusdt@kline_1w@+08:00", Stream{Symbol: "btcusdt", Kind: KindKline, Interval: "1w", TimeZone: "+08:00"}},
		{"btcusdt@depth", Stream{Symbol: "btcusdt", Kind: KindDiffDepth, Speed: time.Second}},
		{"btcusdt@depth@100ms", Stream{Symbol: "btcusdt", Kind: KindDiffDepth, Speed: 100 * time.Millisecond}},
		{"ethusdt@depth5", Stream{Symbol: "ethusdt", Kind: KindPartialDepth, Levels: 5, Speed: time.Second}},
		{"ethusdt@depth10@100ms", Stream{Symbol: "ethusdt", Kind: KindPartialDepth, Levels: 10, Speed: 100 * time.Millisecond}},
		{"ethusdt@depth20", Stream{Symbol: "ethusdt", Kind: KindPartialDepth, Levels: 20, Speed: time.Second}},
		{"!miniTicker@arr", Stream{Kind: KindMiniTickerArr}},
		{"!ticker_1h@arr", Stream{Kind: KindWindowTickerArr, Interval: "1h"}},
		{"!ticker_1d@arr", Stream{Kind: KindWindowTickerArr, Interval: "1d"}},
		{"币安usdt@trade", Stream{Symbol: "币安usdt", Kind: KindTrade}},
		{"1000satsusdt@trade", Stream{Symbol: "1000satsusdt", Kind: KindTrade}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseStream(tc.name)
			if err != nil {
				t.Fatalf("ParseStream(%q) error = %v", tc.name, err)
			}
			tc.want.Name = tc.name
			if got != tc.want {
				t.Errorf("ParseStream(%q) = %+v; want %+v", tc.name, got, tc.want)
			}
		})
	}
}

func TestParseStreamInvalid(t *testing.T) {
	tests := []string{
		"",
		"btcusdt",
		"btcusdt@",
		"@trade",
		"btcusdt@tradez",
		"btcusdt@Trade",
		"BTCUSDT@trade",       // symbols are lowercase
		"btcUSDT@trade",       //
		"btcusdt@aggtrade",    // kinds are case-sensitive
		"btcusdt@kline_1H",    // 1h is valid, 1H is not
		"btcusdt@kline_2M",    // only 1M
		"btcusdt@kline_",      //
		"btcusdt@kline_1m@",   //
		"btcusdt@kline_1m@+8", //
		"btcusdt@kline_1m@+08:00@+08:00",
		"btcusdt@ticker_2h",
		"btcusdt@ticker_",
		"btcusdt@depth15",
		"btcusdt@depth5@1000ms", // only @100ms exists
		"btcusdt@depth@250ms",
		"btcusdt@depth@100ms@100ms",
		"btcusdt@depth5@",
		"btcusdt@trade@trade",
		"btc usdt@trade",
		"btc/usdt@trade",
		"btc\"usdt@trade",
		"btc-usdt@trade",
		"btcusdt@trade ",
		" btcusdt@trade",
		"!ticker@arr",       // retired 2026-03-26
		"!bookTicker",       // removed 2022
		"!serverShutdown",   // pushed, not subscribable
		"!miniTicker@arr@x", //
		"!ticker_1w@arr",
		"!miniTicker",
		"!",
		"!btcusdt@trade",
		"ＢＴＣusdt@trade", // full-width upper case
		"\xffbtc@trade",
		strings.Repeat("a", 200) + "@trade",
	}
	for _, name := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseStream(name)
			if err == nil {
				t.Fatalf("ParseStream(%q) = %+v; want error", name, got)
			}
			if !errors.Is(err, upstream.ErrInvalidStream) {
				t.Errorf("ParseStream(%q) error = %v; want ErrInvalidStream", name, err)
			}
		})
	}
}

func TestParseStreamErrorMessage(t *testing.T) {
	_, err := ParseStream("btcusdt@tradez")
	if got, want := err.Error(), `invalid stream name "btcusdt@tradez"`; got != want {
		t.Errorf("error = %q; want %q", got, want)
	}
}

func TestKindConflatable(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"btcusdt@trade", false},
		{"btcusdt@aggTrade", false},
		{"btcusdt@blockTrade", false},
		{"btcusdt@depth", false},
		{"btcusdt@depth@100ms", false},
		{"!miniTicker@arr", false},
		{"!ticker_4h@arr", false},
		{"btcusdt@miniTicker", true},
		{"btcusdt@ticker", true},
		{"btcusdt@ticker_1h", true},
		{"btcusdt@bookTicker", true},
		{"btcusdt@depth5", true},
		{"btcusdt@depth20@100ms", true},
		{"btcusdt@avgPrice", true},
		{"btcusdt@referencePrice", true},
		{"btcusdt@kline_1m", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseStream(tc.name)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Kind.Class().Conflatable(); got != tc.want {
				t.Errorf("ParseStream(%q).Kind.Class().Conflatable() = %v; want %v", tc.name, got, tc.want)
			}
			if got, want := s.Kind.PerSymbol(), s.Symbol != ""; got != want {
				t.Errorf("ParseStream(%q).Kind.PerSymbol() = %v; want %v", tc.name, got, want)
			}
			if s.Kind.String() == "invalid" {
				t.Errorf("Kind(%d).String() = invalid", s.Kind)
			}
		})
	}
}

func FuzzParseStream(f *testing.F) {
	for _, s := range []string{
		"btcusdt@trade", "btcusdt@kline_1M@+08:00", "ethusdt@depth20@100ms",
		"!ticker_1h@arr", "!miniTicker@arr", "BTCUSDT@trade", "btcusdt@depth@100ms",
		"币安usdt@bookTicker", "btcusdt@ticker_1d", "a@b@c", "!", "@",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		s, err := ParseStream(name)
		if err != nil {
			if !errors.Is(err, upstream.ErrInvalidStream) {
				t.Fatalf("ParseStream(%q) error %v does not wrap ErrInvalidStream", name, err)
			}
			if s != (Stream{}) {
				t.Fatalf("ParseStream(%q) returned %+v with an error", name, s)
			}
			return
		}
		if s.Name != name || s.Kind == KindInvalid {
			t.Fatalf("ParseStream(%q) = %+v", name, s)
		}
		if s.Kind.PerSymbol() != (s.Symbol != "") {
			t.Fatalf("ParseStream(%q) = %+v: symbol vs kind", name, s)
		}
		if s.Symbol != "" {
			if !strings.HasPrefix(name, s.Symbol+"@") || strings.ToLower(s.Symbol) != s.Symbol {
				t.Fatalf("ParseStream(%q) symbol %q", name, s.Symbol)
			}
		}
		// Names are safe to embed in JSON without escaping.
		if strings.ContainsAny(name, "\"\\/ \t\r\n") {
			t.Fatalf("ParseStream(%q) accepted a character that needs care", name)
		}
		again, err := ParseStream(s.Name)
		if err != nil || again != s {
			t.Fatalf("ParseStream is not stable on %q", name)
		}
	})
}
