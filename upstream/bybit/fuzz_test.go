package bybit

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/marketgate/marketgate/upstream"
)

func FuzzParseStream(f *testing.F) {
	for _, s := range []string{
		"publicTrade.BTCUSDT", "orderbook.50.BTCUSDT", "kline.D.ETHUSDT", "tickers.BTCUSDT-26DEC25",
		"orderbook.1.A", "a.b.c", ".", "kline..X", "orderbook.500.BTCUSDT",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		for _, d := range []Dialect{Spot, Linear} {
			s, err := d.ParseStream(name)
			if err != nil {
				if !errors.Is(err, upstream.ErrInvalidStream) || s != (upstream.Stream{}) {
					t.Fatalf("ParseStream(%q) = %+v, %v", name, s, err)
				}
				continue
			}
			if s.Name != name || s.Symbol == "" || s.Class == 0 || s.Kind < 0 || s.Kind >= len(d.Kinds()) ||
				!strings.HasSuffix(name, "."+s.Symbol) {
				t.Fatalf("ParseStream(%q) = %+v", name, s)
			}
			if strings.ContainsAny(name, "\"\\/ \t\r\n:") {
				t.Fatalf("ParseStream(%q) accepted a character that needs care", name)
			}
		}
	})
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		spotTrade, linearTrade, bookDelta, bookTop, kline, ticker,
		`{"topic":"a","data":{"x":"}]{\"","y":[1,{"z":"]"}]}}`,
		`{"topic":"a","data":{"x":1},"extra":{"y":2}}`,
		`{"topic":"a","data":[1,2}}`,
		`{"success":false,"ret_msg":"error:handler not found,topic:x","req_id":"8","op":"subscribe"}`,
		`{"success":true,"ret_msg":"pong","op":"ping"}`,
		`{"op":"shutdown"}`,
		`{"topic":"a","data":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		in, err := parseInbound(p)
		if err != nil || in.Kind != upstream.InEvent {
			return
		}
		if len(in.Stream) == 0 || len(in.Data) == 0 {
			t.Fatalf("event %q without stream or data", p)
		}
		if !json.Valid(p) || !utf8.Valid(p) {
			return // the fast path does not validate (readOne checks UTF-8)
		}
		var env envelope
		if err := json.Unmarshal(p, &env); err != nil {
			t.Fatal(err)
		}
		if env.Topic != string(in.Stream) {
			t.Fatalf("stream %q; encoding/json says %q", in.Stream, env.Topic)
		}
		// Identity, EventTime and Final must not panic on any event.
		for _, d := range []Dialect{Spot, Linear} {
			for k := KindTrade; k < numKinds; k++ {
				s := upstream.Stream{Kind: int(k)}
				d.Identity(&s, in.Data)
				d.Final(&s, in.Data)
			}
			d.EventTime(in.Data)
		}
	})
}
