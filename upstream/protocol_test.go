package upstream

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/gobwas/ws"
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
			got, err := parseBinanceInbound(in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("parseBinanceInbound(%s) = %+v; want error", tc.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseBinanceInbound(%s) error = %v", tc.in, err)
			}
			if got.isReply != tc.wantReply || string(got.stream) != tc.wantStream || string(got.data) != tc.wantData {
				t.Fatalf("parseBinanceInbound(%s) = reply %v stream %q data %s", tc.in, got.isReply, got.stream, got.data)
			}
			if tc.wantReply {
				if tc.wantID != 0 && (!got.idOK || got.id != tc.wantID) {
					t.Errorf("id = %d (%v); want %d", got.id, got.idOK, tc.wantID)
				}
				if code := 0; got.err != nil {
					code = got.err.Code
					if code != tc.wantCode {
						t.Errorf("error code = %d; want %d", code, tc.wantCode)
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
		if _, err := parseBinanceInbound(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// readClientFrame parses p as one frame a client sent.
func readClientFrame(t *testing.T, p []byte) ws.Frame {
	t.Helper()
	r := bytes.NewReader(p)
	h, err := ws.ReadHeader(r)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Masked {
		t.Fatalf("client frame is not masked")
	}
	payload := make([]byte, h.Length)
	if _, err := io.ReadFull(r, payload); err != nil {
		t.Fatal(err)
	}
	if r.Len() != 0 {
		t.Fatalf("%d bytes after the frame", r.Len())
	}
	return ws.UnmaskFrameInPlace(ws.Frame{Header: h, Payload: payload})
}

func TestOutFrameCompile(t *testing.T) {
	req := outFrame{req: &request{Method: methodSubscribe.String(), Params: []string{"btcusdt@trade", "ethusdt@depth5"}, ID: 42}}
	p, err := req.compile(encodeBinanceRequest)
	if err != nil {
		t.Fatal(err)
	}
	f := readClientFrame(t, p)
	if f.Header.OpCode != ws.OpText {
		t.Errorf("request opcode = %v; want text", f.Header.OpCode)
	}
	if got, want := string(f.Payload), `{"method":"SUBSCRIBE","params":["btcusdt@trade","ethusdt@depth5"],"id":42}`; got != want {
		t.Errorf("request = %s; want %s", got, want)
	}

	ping := []byte("hello")
	p, err = outFrame{isPong: true, pong: ping}.compile(encodeBinanceRequest)
	if err != nil {
		t.Fatal(err)
	}
	f = readClientFrame(t, p)
	if f.Header.OpCode != ws.OpPong || string(f.Payload) != "hello" || string(ping) != "hello" {
		t.Errorf("pong = %v %q (ping now %q); want pong \"hello\", ping untouched", f.Header.OpCode, f.Payload, ping)
	}

	p, err = outFrame{closeCode: ws.StatusNormalClosure}.compile(encodeBinanceRequest)
	if err != nil {
		t.Fatal(err)
	}
	f = readClientFrame(t, p)
	code, _ := ws.ParseCloseFrameData(f.Payload)
	if f.Header.OpCode != ws.OpClose || code != ws.StatusNormalClosure {
		t.Errorf("close = %v %v", f.Header.OpCode, code)
	}
	if _, err := (outFrame{}).compile(encodeBinanceRequest); err == nil {
		t.Error("empty outFrame compiled")
	}
}
