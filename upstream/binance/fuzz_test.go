package binance

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/marketgate/marketgate/upstream"
)

func FuzzParseInbound(f *testing.F) {
	for _, s := range []string{
		`{"stream":"btcusdt@trade","data":` + benchTrade + `}`,
		`{"stream":"btcusdt@depth","data":` + benchDepth + `}`,
		`{"stream":"!miniTicker@arr","data":[{"e":"24hrMiniTicker"},{"s":"币安"}]}`,
		`{"stream":"a@trade","data":{"x":"}]{\"","y":[1,{"z":"]"}]}}`,
		`{"stream":"a@trade","data":{"x":1},"extra":{"y":2}}`,
		`{"result":null,"id":7}`,
		`{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":3}`,
		`{"stream":"a@trade","data":{"x":"}"}`,
		"{\"stream\":\"a\",\"data\": {} \n}",
		`{"stream":"btcusdt@trade","data":{"e":"trade","t":1]}`,
		`{"stream":"btcusdt@trade","data":[1,2}}`,
		`{"stream":"a@trade","data":{"x":[1,{"y":2]}}}`,
		`{"stream":"a@trade","data":{"x":"{]","y":["}"]}}`,
		`{"stream":"a@trade","data":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		in, err := parseInbound(p)
		if err != nil || in.Kind == upstream.InReply {
			return
		}
		if len(in.Stream) == 0 || len(in.Data) == 0 {
			t.Fatalf("event %q without stream or data", p)
		}
		if !bracketsMatch(in.Data) {
			t.Fatalf("event %q: data %q closes a bracket of the other type", p, in.Data)
		}
		if !json.Valid(p) || !utf8.Valid(p) {
			return // the fast path does not validate (readOne checks UTF-8)
		}
		var env envelope
		if err := json.Unmarshal(p, &env); err != nil {
			t.Fatal(err)
		}
		if env.Stream != string(in.Stream) {
			t.Fatalf("stream %q; encoding/json says %q", in.Stream, env.Stream)
		}
		var want, got bytes.Buffer
		if json.Compact(&want, env.Data) != nil || json.Compact(&got, in.Data) != nil || want.String() != got.String() {
			t.Fatalf("data %q; encoding/json says %q", in.Data, env.Data)
		}
	})
}

// bracketsMatch reports whether every '}' and ']' of b outside strings
// closes a bracket of its own type: the reference for skipValue's bit
// stack, with a slice.
func bracketsMatch(b []byte) bool {
	var open []byte
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			open = append(open, c)
		case '}', ']':
			if len(open) == 0 || (open[len(open)-1] == '{') != (c == '}') {
				return false
			}
			open = open[:len(open)-1]
		}
	}
	return len(open) == 0
}

func FuzzParseFuturesStream(f *testing.F) {
	for _, s := range []string{
		"btcusdt@aggTrade", "btcusdt_perpetual@continuousKline_1M", "ethusdt@depth20@500ms",
		"!markPrice@arr@1s", "!bookTicker", "btcusdt_260626@depth", "a@b@c", "!", "@",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		s, err := ParseFuturesStream(name)
		if err != nil {
			if !errors.Is(err, upstream.ErrInvalidStream) || s != (Stream{}) {
				t.Fatalf("ParseFuturesStream(%q) = %+v, %v", name, s, err)
			}
			return
		}
		if s.Name != name || s.Kind == KindInvalid || s.Kind.PerSymbol() != (s.Symbol != "") {
			t.Fatalf("ParseFuturesStream(%q) = %+v", name, s)
		}
		if strings.ContainsAny(name, "\"\\/ \t\r\n") {
			t.Fatalf("ParseFuturesStream(%q) accepted a character that needs care", name)
		}
		if again, err := ParseFuturesStream(name); err != nil || again != s {
			t.Fatalf("ParseFuturesStream is not stable on %q", name)
		}
	})
}
