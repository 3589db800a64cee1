package binance

import (
	"strconv"
	"strings"
	"testing"

	"github.com/marketgate/marketgate/upstream"
)

func TestParseInbound(t *testing.T) {
	trade := `{"e":"trade","E":1672515782136,"s":"BTCUSDT","t":12345,"p":"0.001","q":"100","T":1672515782136,"m":true,"M":true}`
	tests := []struct {
		name       string
		in         string
		wantStream string
		wantData   string
		wantReply  bool
		wantID     int64
		wantCode   int
		wantErr    bool
	}{
		{name: "event", in: `{"stream":"btcusdt@trade","data":` + trade + `}`, wantStream: "btcusdt@trade", wantData: trade},
		{name: "event spaced", in: "{\"stream\":\"btcusdt@trade\",\"data\": " + trade + " }\n", wantStream: "btcusdt@trade", wantData: trade},
		{name: "event reordered", in: `{"data":` + trade + `,"stream":"btcusdt@trade"}`, wantStream: "btcusdt@trade", wantData: trade},
		{name: "array data", in: `{"stream":"!miniTicker@arr","data":[{"e":"24hrMiniTicker"},{"s":"币安"}]}`, wantStream: "!miniTicker@arr", wantData: `[{"e":"24hrMiniTicker"},{"s":"币安"}]`},
		{name: "escaped stream", in: `{"stream":"btc\u0075sdt@trade","data":{}}`, wantStream: "btcusdt@trade", wantData: `{}`},
		{name: "extra key", in: `{"stream":"a@trade","data":{"x":1},"extra":{"y":2}}`, wantStream: "a@trade", wantData: `{"x":1}`},
		{name: "ok reply", in: `{"result":null,"id":7}`, wantReply: true, wantID: 7},
		{name: "error reply", in: `{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":3}`, wantReply: true, wantID: 3, wantCode: 2},
		{name: "error no id", in: `{"error":{"code":3,"msg":"Invalid JSON"}}`, wantReply: true, wantCode: 3},
		{name: "string id", in: `{"result":null,"id":"abc"}`, wantErr: true},
		{name: "no data", in: `{"stream":"a@trade"}`, wantErr: true},
		{name: "garbage", in: `not json`, wantErr: true},
		{name: "truncated", in: `{"stream":"a@trade","data":{"x":1}`, wantErr: true},
		{name: "truncated data", in: `{"stream":"a@trade","data":{"x":"}"}`, wantErr: true},
		{name: "braces in strings", in: `{"stream":"a@trade","data":{"x":"}]{\"","y":[1,{"z":"]"}]}}`, wantStream: "a@trade", wantData: `{"x":"}]{\"","y":[1,{"z":"]"}]}`},
		{name: "scalar data", in: `{"stream":"a@trade","data":1}`, wantStream: "a@trade", wantData: `1`},
		{name: "empty object", in: `{}`, wantErr: true},
		// Brackets must close their own type (the fast path once took
		// ] for } and relayed these).
		{name: "object closed by ]", in: `{"stream":"btcusdt@trade","data":{"e":"trade","t":1]}`, wantErr: true},
		{name: "array closed by }", in: `{"stream":"btcusdt@trade","data":[1,2}}`, wantErr: true},
		{name: "inner mismatch", in: `{"stream":"a@trade","data":{"x":[1,{"y":2]}}}`, wantErr: true},
		{name: "brackets in strings", in: `{"stream":"a@trade","data":{"x":"{]","y":["}"]}}`, wantStream: "a@trade", wantData: `{"x":"{]","y":["}"]}`},
		{name: "deeper than the scan", in: `{"stream":"a@trade","data":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`,
			wantStream: "a@trade", wantData: strings.Repeat("[", 70) + strings.Repeat("]", 70)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.in)
			got, err := parseInbound(in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("parseInbound(%s) = %+v; want error", tc.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseInbound(%s) error = %v", tc.in, err)
			}
			if (got.Kind == upstream.InReply) != tc.wantReply || string(got.Stream) != tc.wantStream || string(got.Data) != tc.wantData {
				t.Fatalf("parseInbound(%s) = kind %v stream %q data %s", tc.in, got.Kind, got.Stream, got.Data)
			}
			if tc.wantReply {
				if tc.wantID != 0 && (!got.HasID || got.ID != tc.wantID) {
					t.Errorf("id = %d (%v); want %d", got.ID, got.HasID, tc.wantID)
				}
				if got.Err != nil {
					if code := strconv.Itoa(tc.wantCode); got.Err.Code != code || got.Err.Full != (tc.wantCode == 4) {
						t.Errorf("error code = %s (full %v); want %s", got.Err.Code, got.Err.Full, code)
					}
				} else if tc.wantCode != 0 {
					t.Errorf("no error; want code %d", tc.wantCode)
				}
			}

		})
	}
}

func BenchmarkParseInbound(b *testing.B) {
	msg := []byte(`{"stream":"btcusdt@trade","data":{"e":"trade","E":1672515782136,"s":"BTCUSDT","t":12345,"p":"0.001","q":"100","T":1672515782136,"m":true,"M":true}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseInbound(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func TestParseShutdownAndFull(t *testing.T) {
	in, err := Spot.Parse([]byte(`{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1}}`))
	if err != nil || in.Kind != upstream.InShutdown {
		t.Errorf("serverShutdown = %+v, %v; want a shutdown notice", in, err)
	}
	in, err = Spot.Parse([]byte(`{"error":{"code":4,"msg":"Too many subscriptions"},"id":9}`))
	if err != nil || in.Kind != upstream.InReply || in.Err == nil || !in.Err.Full || in.Err.Code != "4" || in.ID != 9 {
		t.Errorf("code 4 = %+v, %v; want a reply to 9 saying the connection is full", in, err)
	}
}

func TestEncode(t *testing.T) {
	tests := []struct {
		op   upstream.Op
		want string
	}{
		{upstream.OpSubscribe, `{"method":"SUBSCRIBE","params":["btcusdt@trade","ethusdt@depth5"],"id":42}`},
		{upstream.OpUnsubscribe, `{"method":"UNSUBSCRIBE","params":["btcusdt@trade","ethusdt@depth5"],"id":42}`},
	}
	for _, tc := range tests {
		p, err := Spot.Encode(tc.op, []string{"btcusdt@trade", "ethusdt@depth5"}, 42)
		if err != nil || string(p) != tc.want {
			t.Errorf("Encode(%v) = %s, %v; want %s", tc.op, p, err, tc.want)
		}
	}
}

func TestConnectURL(t *testing.T) {
	names := []string{"!miniTicker@arr", "btcusdt@kline_1m@+08:00", "btcusdt@trade", "币安usdt@trade"}
	got, n := Spot.ConnectURL("wss://h", "/stream", names, 8<<10)
	want := "wss://h/stream?streams=!miniTicker@arr/btcusdt@kline_1m@%2B08:00/btcusdt@trade/%E5%B8%81%E5%AE%89usdt@trade"
	if got != want || n != len(names) {
		t.Errorf("ConnectURL = %s, %d; want %s, %d", got, n, want, len(names))
	}
	if got, n := Spot.ConnectURL("wss://h", "/stream", nil, 8<<10); got != "wss://h/stream" || n != 0 {
		t.Errorf("ConnectURL without streams = %s, %d", got, n)
	}
	if got, n := Spot.ConnectURL("wss://h", "/stream", names, 0); got != "wss://h/stream" || n != 0 {
		t.Errorf("ConnectURL with no room = %s, %d", got, n)
	}
	if n := urlNameLen("币安usdt@trade"); n != len("%E5%B8%81%E5%AE%89usdt@trade") {
		t.Errorf("urlNameLen = %d", n)
	}
	// The room: base, path, "?streams=", the timeUnit parameter and one
	// separator per name.
	fixed := len("wss://h") + len("/stream") + len("?streams=") + len(microParam)
	for _, tc := range []struct{ max, want int }{
		{fixed + len("btcusdt@trade") + 1, 1},
		{fixed + len("btcusdt@trade"), 0},
		{fixed + 2*(len("btcusdt@trade")+1), 2},
	} {
		if _, n := Spot.ConnectURL("wss://h", "/stream", []string{"btcusdt@trade", "ethusdt@trade", "xrpusdt@trade"}, tc.max); n != tc.want {
			t.Errorf("ConnectURL(max %d) carries %d; want %d", tc.max, n, tc.want)
		}
	}
	got, _ = Spot.WithMicrosecondTimes().ConnectURL("wss://h", "/stream", []string{"btcusdt@trade"}, 8<<10)
	if want := "wss://h/stream?streams=btcusdt@trade&timeUnit=MICROSECOND"; got != want {
		t.Errorf("ConnectURL in µs = %s; want %s", got, want)
	}
	got, _ = Spot.WithMicrosecondTimes().ConnectURL("wss://h", "/stream", nil, 8<<10)
	if want := "wss://h/stream?timeUnit=MICROSECOND"; got != want {
		t.Errorf("ConnectURL in µs without streams = %s; want %s", got, want)
	}
	if !Spot.URLRefused(400) || Spot.URLRefused(429) {
		t.Error("URLRefused: want 400 only")
	}
}
