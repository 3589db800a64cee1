package binancesim

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseJSONErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"a":1}`, ""},
		{`  [1, -2.5e+3, "x\u00e9\ud83d\ude00", true, false, null, {}]  `, ""},
		{`x`, "expected value at line 1 column 1"},
		{`{"a":}`, "expected value at line 1 column 6"},
		{`{"a" 1}`, "expected `:` at line 1 column 6"},
		{`{"a":1 "b":2}`, "expected `,` or `}` at line 1 column 8"},
		{`[1 2]`, "expected `,` or `]` at line 1 column 4"},
		{`[1,]`, "trailing comma at line 1 column 4"},
		{`{"a":1,}`, "trailing comma at line 1 column 8"},
		{`{1:2}`, "key must be a string at line 1 column 2"},
		{`{"a":1`, "EOF while parsing an object at line 1 column 6"},
		{`[1`, "EOF while parsing a list at line 1 column 2"},
		{`"abc`, "EOF while parsing a string at line 1 column 4"},
		{`tru`, "EOF while parsing a value at line 1 column 3"},
		{`trux`, "expected ident at line 1 column 4"},
		{`01`, "invalid number at line 1 column 2"},
		{`1.`, "EOF while parsing a value at line 1 column 2"},
		{`1.x`, "invalid number at line 1 column 3"},
		{`-`, "invalid number at line 1 column 1"},
		{`1e`, "EOF while parsing a value at line 1 column 2"},
		{`"\x"`, "invalid escape at line 1 column 3"},
		{"\"a\x01\"", "control character (\\u0000-\\u001F) found while parsing a string at line 1 column 3"},
		{`"\udc00"`, "lone leading surrogate in hex escape at line 1 column 7"},
		{`{} {}`, "trailing characters at line 1 column 4"},
		{"{\n\"a\":\n}", "expected value at line 3 column 1"},
		{strings.Repeat("[", 129), "recursion limit exceeded at line 1 column 129"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			_, err := parseJSON([]byte(tc.in))
			got := ""
			if err != nil {
				got = err.format([]byte(tc.in))
			}
			if got != tc.want {
				t.Errorf("parseJSON(%q) error = %q; want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseJSONValues(t *testing.T) {
	v, err := parseJSON([]byte(`{"s":"a\"b\u00e9","n":-12,"l":[true,null],"o":{}}`))
	if err != nil {
		t.Fatal(err.msg)
	}
	if len(v.fields) != 4 || v.fields[0].value.s != "a\"bé" || v.fields[1].value.s != "-12" ||
		len(v.fields[2].value.items) != 2 || v.fields[3].value.kind != jsonObject {
		t.Errorf("parsed = %+v", v)
	}
}

func TestParseStream(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
		kind streamKind
	}{
		{"btcusdt@trade", true, kindTrade},
		{"btcusdt@aggTrade", true, kindAggTrade},
		{"btcusdt@blockTrade", true, kindBlockTrade},
		{"btcusdt@referencePrice", true, kindReferencePrice},
		{"btcusdt@avgPrice", true, kindAvgPrice},
		{"btcusdt@kline_1s", true, kindKline},
		{"btcusdt@kline_1M", true, kindKline},
		{"btcusdt@kline_12h@+08:00", true, kindKline},
		{"btcusdt@miniTicker", true, kindMiniTicker},
		{"btcusdt@ticker", true, kindTicker},
		{"btcusdt@ticker_1d", true, kindWindowTicker},
		{"btcusdt@bookTicker", true, kindBookTicker},
		{"btcusdt@depth5", true, kindPartialDepth},
		{"btcusdt@depth20@100ms", true, kindPartialDepth},
		{"btcusdt@depth", true, kindDiffDepth},
		{"btcusdt@depth@100ms", true, kindDiffDepth},
		{"!miniTicker@arr", true, kindAllMiniTickers},
		{"!ticker_4h@arr", true, kindAllWindowTickers},
		{"币安人生usdt@trade", true, kindTrade},
		{"BTCUSDT@trade", false, 0},
		{"btcusdt@TRADE", false, 0},
		{"btcusdt@aggtrade", false, 0},
		{"btcusdt", false, 0},
		{"@trade", false, 0},
		{"btc-usdt@trade", false, 0},
		{"btcusdt@kline_2m", false, 0},
		{"btcusdt@kline_1m@+09:00", false, 0},
		{"btcusdt@ticker_2h", false, 0},
		{"btcusdt@depth15", false, 0},
		{"btcusdt@depth@1000ms", false, 0},
		{"btcusdt@depth5@250ms", false, 0},
		{"btcusdt@trade ", false, 0},
		{"!ticker@arr", false, 0},
		{"!bookTicker", false, 0},
		{"!miniTicker", false, 0},
		{"", false, 0},
	}
	for _, tc := range tests {
		sp, ok := spotProduct.grammar.parse(tc.name)
		if ok != tc.ok || (ok && sp.kind != tc.kind) {
			t.Errorf("spotProduct.grammar.parse(%q) = kind %d, %v; want kind %d, %v", tc.name, sp.kind, ok, tc.kind, tc.ok)
		}
	}
}

func TestNewConfig(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	c := s.cfg
	if len(c.Symbols) != 5 || c.MaxMessagesPerSecond != 5 || c.MaxStreams != 1024 || c.PingInterval != 20*time.Second ||
		c.PongTimeout != time.Minute || c.MaxLifetime != 24*time.Hour || c.TickInterval != 100*time.Millisecond ||
		c.SendQueue != 4096 || c.MaxConnectionAttempts != 300 || c.Seed == 0 || c.Logger == nil || c.Now == nil {
		t.Errorf("defaults = %+v", c)
	}
	bad := []Config{
		{Symbols: []string{"btcusdt"}},
		{Symbols: []string{"BTCUSDT", "BTCUSDT"}},
		{Symbols: []string{"BTC-USDT"}},
		{Symbols: []string{"USDT"}},
		{Symbols: []string{"FOOBAR"}},
		{MaxMessagesPerSecond: -1},
		{MaxStreams: -1},
		{PingInterval: -time.Second},
		{PongTimeout: -1},
		{MaxLifetime: -1},
		{TickInterval: time.Microsecond},
		{SendQueue: -1},
		{MaxConnectionAttempts: -2},
	}
	for _, cfg := range bad {
		if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("New(%+v) = %v; want ErrInvalidConfig", cfg, err)
		}
	}
}

func TestBarBounds(t *testing.T) {
	at := func(s string) int64 {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm.UnixMicro()
	}
	tests := []struct {
		interval   string
		utc8       bool
		t          string
		start, end string
	}{
		{"1m", false, "2026-03-04T10:11:12Z", "2026-03-04T10:11:00Z", "2026-03-04T10:12:00Z"},
		{"4h", false, "2026-03-04T10:11:12Z", "2026-03-04T08:00:00Z", "2026-03-04T12:00:00Z"},
		{"1d", false, "2026-03-04T10:11:12Z", "2026-03-04T00:00:00Z", "2026-03-05T00:00:00Z"},
		{"1d", true, "2026-03-04T10:11:12Z", "2026-03-03T16:00:00Z", "2026-03-04T16:00:00Z"},
		{"1w", false, "2026-03-04T10:11:12Z", "2026-03-02T00:00:00Z", "2026-03-09T00:00:00Z"}, // Monday
		{"1M", false, "2026-02-14T10:11:12Z", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"},
		{"1M", true, "2026-02-28T20:00:00Z", "2026-02-28T16:00:00Z", "2026-03-31T16:00:00Z"},
	}
	for _, tc := range tests {
		s, e := barBounds(tc.interval, tc.utc8, at(tc.t))
		if s != at(tc.start) || e != at(tc.end) {
			t.Errorf("barBounds(%s, utc8=%v, %s) = %s, %s; want %s, %s", tc.interval, tc.utc8, tc.t,
				time.UnixMicro(s).UTC().Format(time.RFC3339), time.UnixMicro(e).UTC().Format(time.RFC3339), tc.start, tc.end)
		}
	}
}

func TestAppendE8(t *testing.T) {
	for v, want := range map[int64]string{0: "0.00000000", 1: "0.00000001", 123456789: "1.23456789", -150000000: "-1.50000000", 6500000000000: "65000.00000000"} {
		if got := string(appendE8(nil, v)); got != want {
			t.Errorf("appendE8(%d) = %s; want %s", v, got, want)
		}
	}
}
