package okx

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/marketgate/marketgate/hub"
	"github.com/marketgate/marketgate/upstream"
)

// Sample frames, as OKX sends them.
const (
	tradeFrame  = `{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"130639474","px":"42219.9","sz":"0.12060306","side":"buy","ts":"1630048897897","count":"3","source":"0","seqId":1234}]}`
	tradesFrame = `{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"tradeId":"7","px":"1","sz":"1","side":"sell","ts":"1630048897897"},{"tradeId":"9","px":"1","sz":"1","side":"sell","ts":"1630048897898"}]}`
	bookSnap    = `{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot","data":[{"asks":[["8476.98","415","0","13"]],"bids":[["8476.97","256","0","12"]],"ts":"1597026383085","checksum":0,"prevSeqId":-1,"seqId":123456}]}`
	bookUpdate  = `{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[["8476.98","0","0","0"]],"bids":[],"ts":"1597026383185","checksum":0,"prevSeqId":123456,"seqId":123470}]}`
	books5Frame = `{"arg":{"channel":"books5","instId":"BTC-USDT-SWAP"},"data":[{"asks":[["8476.98","415","0","13"]],"bids":[["8476.97","256","0","12"]],"instId":"BTC-USDT-SWAP","ts":"1597026383085","seqId":99}]}`
	bboFrame    = `{"arg":{"channel":"bbo-tbt","instId":"ETH-USDT"},"data":[{"asks":[["3000.1","1","0","1"]],"bids":[["3000","2","0","1"]],"ts":"1597026383085","seqId":5}]}`
	candleLive  = `{"arg":{"channel":"candle1m","instId":"BTC-USDT"},"data":[["1597026360000","8533.02","8553.74","8527.17","8548.26","45247","529.5858061","5.6","0"]]}`
	candleDone  = `{"arg":{"channel":"candle1m","instId":"BTC-USDT"},"data":[["1597026360000","8533.02","8553.74","8527.17","8548.26","45247","529.5858061","5.6","1"]]}`
	tickerFrame = `{"arg":{"channel":"tickers","instId":"ETH-USDT"},"data":[{"instType":"SPOT","instId":"ETH-USDT","last":"9999.99","lastSz":"0.1","askPx":"9999.99","askSz":"11","bidPx":"8888.88","bidSz":"5","open24h":"9000","high24h":"10000","low24h":"8888.88","volCcy24h":"2222","vol24h":"2222","sodUtc0":"2222","sodUtc8":"2222","ts":"1597026383085"}]}`
)

func TestParseStream(t *testing.T) {
	for _, tc := range []struct {
		name  string
		kind  Kind
		inst  string
		bar   string
		class upstream.Class
	}{
		{"trades:BTC-USDT", KindTrades, "BTC-USDT", "", upstream.ClassTrade},
		{"tickers:ETH-USDT", KindTickers, "ETH-USDT", "", upstream.ClassTicker},
		{"books5:BTC-USDT-SWAP", KindBooks5, "BTC-USDT-SWAP", "", upstream.ClassBookSnapshot},
		{"books:BTC-USDT", KindBooks, "BTC-USDT", "", upstream.ClassBookDelta},
		{"bbo-tbt:BTC-USDT", KindBBO, "BTC-USDT", "", upstream.ClassBookTop},
		{"candle1m:BTC-USDT", KindCandle, "BTC-USDT", "1m", upstream.ClassCandle},
		{"candle1M:BTC-USDT", KindCandle, "BTC-USDT", "1M", upstream.ClassCandle},
		{"candle1Dutc:1INCH-USDT", KindCandle, "1INCH-USDT", "1Dutc", upstream.ClassCandle},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseStream(tc.name)
			if err != nil {
				t.Fatalf("ParseStream(%q) = %v", tc.name, err)
			}
			if s.Kind != tc.kind || s.InstID != tc.inst || s.Bar != tc.bar || s.Name != tc.name {
				t.Errorf("ParseStream(%q) = %+v; want kind %v inst %q bar %q", tc.name, s, tc.kind, tc.inst, tc.bar)
			}
			n, err := V5.ParseStream(tc.name)
			if err != nil || n.Class != tc.class || n.Symbol != tc.inst || V5.Kinds()[n.Kind] != tc.kind.String() {
				t.Errorf("V5.ParseStream(%q) = %+v, %v; want class %v", tc.name, n, err, tc.class)
			}
		})
	}
	for _, name := range []string{
		"", "trades", "trades:", ":BTC-USDT", "trades:btc-usdt", "Trades:BTC-USDT", "trade:BTC-USDT",
		"trades:BTC", "trades:BTC-USDT-FUTURES", "trades:BTC-USDT-250627", "trades:BTC--USDT",
		"candle:BTC-USDT", "candle1h:BTC-USDT", "candle2m:BTC-USDT", "books50-l2-tbt:BTC-USDT",
		"trades:BTC-USDT:x", "trades:BTC-USDT-SWAP-SWAP", "trades-all:BTC-USDT", "trades: BTC-USDT",
		"trades:" + strings.Repeat("A", 60) + "-USDT",
	} {
		_, err := V5.ParseStream(name)
		var ve *upstream.ValidationError
		if !errors.As(err, &ve) || !errors.Is(err, upstream.ErrInvalidStream) {
			t.Errorf("ParseStream(%q) = %v; want a ValidationError wrapping ErrInvalidStream", name, err)
		}
	}
}

func TestEndpointOf(t *testing.T) {
	for name, want := range map[string]string{
		"trades:BTC-USDT": PublicPath, "books:BTC-USDT": PublicPath, "candle1m:BTC-USDT": BusinessPath,
		"candle3Mutc:BTC-USDT-SWAP": BusinessPath, "bbo-tbt:BTC-USDT": PublicPath,
	} {
		s, err := V5.ParseStream(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := V5.Endpoints()[V5.EndpointOf(s)]; got != want {
			t.Errorf("EndpointOf(%q) = %s; want %s", name, got, want)
		}
	}
	if u, n := V5.ConnectURL("wss://ws.okx.com:8443", PublicPath, []string{"trades:BTC-USDT"}, 8192); u != "wss://ws.okx.com:8443/ws/v5/public" || n != 0 {
		t.Errorf("ConnectURL = %q, %d; want the bare URL and 0", u, n)
	}
}

func TestEncode(t *testing.T) {
	p, err := V5.Encode(upstream.OpSubscribe, []string{"trades:BTC-USDT", "candle1m:BTC-USDT-SWAP"}, 42)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"42","op":"subscribe","args":[{"channel":"trades","instId":"BTC-USDT"},{"channel":"candle1m","instId":"BTC-USDT-SWAP"}]}`
	if string(p) != want {
		t.Errorf("Encode = %s; want %s", p, want)
	}
	p, _ = V5.Encode(upstream.OpUnsubscribe, []string{"books:ETH-USDT"}, 7)
	if want := `{"id":"7","op":"unsubscribe","args":[{"channel":"books","instId":"ETH-USDT"}]}`; string(p) != want {
		t.Errorf("Encode = %s; want %s", p, want)
	}
	if _, err := V5.Encode(upstream.OpSubscribe, []string{"nocolon"}, 1); err == nil {
		t.Error("Encode of a name without ':' succeeded")
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name    string
		msg     string
		kind    upstream.InboundKind
		stream  string
		id      int64
		hasID   bool
		streams []string
		code    string
	}{
		{"pong", "pong", upstream.InPong, "", 0, false, nil, ""},
		{"trade", tradeFrame, upstream.InEvent, "trades:BTC-USDT", 0, false, nil, ""},
		{"book snapshot", bookSnap, upstream.InEvent, "books:BTC-USDT", 0, false, nil, ""},
		{"candle", candleLive, upstream.InEvent, "candle1m:BTC-USDT", 0, false, nil, ""},
		{"other key order", `{"data":[{"x":1}],"arg":{"instId":"BTC-USDT","channel":"trades"}}`, upstream.InEvent, "trades:BTC-USDT", 0, false, nil, ""},
		{"subscribed", `{"id":"12","event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"},"connId":"a4d3ae55"}`,
			upstream.InReply, "", 12, true, []string{"books:BTC-USDT"}, ""},
		{"unsubscribed without id", `{"event":"unsubscribe","arg":{"channel":"trades","instId":"ETH-USDT"},"connId":"a"}`,
			upstream.InReply, "", 0, false, []string{"trades:ETH-USDT"}, ""},
		{"error naming a stream", `{"id":"3","event":"error","code":"60018","msg":"Wrong URL or channel:books,instId:BTC-USDTT doesn't exist. Please use the correct URL, channel and parameters referring to API document.","connId":"a"}`,
			upstream.InReply, "", 3, true, []string{"books:BTC-USDTT"}, "60018"},
		{"error of a request", `{"id":"4","event":"error","code":"60012","msg":"Invalid request: {\"op\": \"subscribe\", \"argss\":[]}","connId":"a"}`,
			upstream.InReply, "", 4, true, nil, "60012"},
		{"error without id", `{"event":"error","msg":"Requests too frequent","code":"60014","connId":"5f3f787a"}`,
			upstream.InReply, "", 0, false, nil, "60014"},
		{"shutdown notice", `{"event":"notice","code":"64008","msg":"The connection will soon be closed for a service upgrade. Please reconnect.","connId":"a4d3ae55"}`,
			upstream.InShutdown, "", 0, false, nil, ""},
		{"other notice", `{"event":"notice","code":"1","msg":"x"}`, upstream.InIgnore, "", 0, false, nil, ""},
		{"conn count", `{"event":"channel-conn-count","channel":"orders","connCount":"2","connId":"abc"}`, upstream.InIgnore, "", 0, false, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, err := V5.Parse([]byte(tc.msg))
			if err != nil {
				t.Fatalf("Parse(%q) = %v", tc.msg, err)
			}
			if in.Kind != tc.kind || string(in.Stream) != tc.stream || in.ID != tc.id || in.HasID != tc.hasID ||
				!slices.Equal(in.Streams, tc.streams) {
				t.Errorf("Parse(%q) = %+v; want kind %v stream %q id %d/%v streams %q", tc.msg, in, tc.kind, tc.stream, tc.id, tc.hasID, tc.streams)
			}
			if tc.kind == upstream.InEvent && string(in.Data) != tc.msg {
				t.Errorf("Parse(%q).Data = %q; want the whole frame", tc.msg, in.Data)
			}
			if code := ""; in.Err != nil {
				code = in.Err.Code
				if code != tc.code {
					t.Errorf("Parse(%q).Err.Code = %q; want %q", tc.msg, code, tc.code)
				}
			} else if tc.code != "" {
				t.Errorf("Parse(%q) carries no error; want code %s", tc.msg, tc.code)
			}
		})
	}
	for _, bad := range []string{"", "ping", "{", `{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[1}`, `{"foo":1}`, `{"event":"subscribe"}`, `[]`} {
		if in, err := V5.Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%q) = %+v; want an error", bad, in)
		}
	}
}

func TestIdentity(t *testing.T) {
	for _, tc := range []struct {
		stream, msg string
		want        upstream.EventID
		final       bool
		time        int64
	}{
		{"trades:BTC-USDT", tradeFrame, upstream.EventID{Lo: 130639474, Hi: 130639474}, false, 1630048897897000},
		{"trades:BTC-USDT", tradesFrame, upstream.EventID{Lo: 7, Hi: 9}, false, 1630048897897000},
		{"books:BTC-USDT", bookSnap, upstream.EventID{Lo: 123456, Hi: 123456, Prev: -1, HasPrev: true}, false, 1597026383085000},
		{"books:BTC-USDT", bookUpdate, upstream.EventID{Lo: 123470, Hi: 123470, Prev: 123456, HasPrev: true}, false, 1597026383185000},
		{"books5:BTC-USDT-SWAP", books5Frame, upstream.EventID{Lo: 99, Hi: 99}, false, 1597026383085000},
		{"bbo-tbt:ETH-USDT", bboFrame, upstream.EventID{Lo: 5, Hi: 5}, false, 1597026383085000},
		{"candle1m:BTC-USDT", candleLive, upstream.EventID{Lo: 1597026360000, Hi: 1597026360000, Sub: int64(math.Float64bits(45247))}, false, 0},
		{"candle1m:BTC-USDT", candleDone, upstream.EventID{Lo: 1597026360000, Hi: 1597026360000, Sub: math.MaxInt64}, true, 0},
	} {
		s, err := V5.ParseStream(tc.stream)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := V5.Identity(&s, []byte(tc.msg)); !ok || got != tc.want {
			t.Errorf("Identity(%s, %.60s…) = %+v, %v; want %+v", tc.stream, tc.msg, got, ok, tc.want)
		}
		if s.Class.Conflatable() {
			if got := V5.Final(&s, []byte(tc.msg)); got != tc.final {
				t.Errorf("Final(%s, %.60s…) = %v; want %v", tc.stream, tc.msg, got, tc.final)
			}
		}
		if got := V5.EventTime([]byte(tc.msg)); got != tc.time {
			t.Errorf("EventTime(%.60s…) = %d; want %d", tc.msg, got, tc.time)
		}
	}
	s, _ := V5.ParseStream("trades:BTC-USDT")
	if _, ok := V5.Identity(&s, []byte(`{"arg":{},"data":[]}`)); ok {
		t.Error("Identity of an event without items succeeded")
	}
}

// TestParseAllocs: the read path of every event allocates nothing once a
// stream's name has been seen.
func TestParseAllocs(t *testing.T) {
	for _, msg := range []string{tradeFrame, bookUpdate, candleLive, candleDone, tickerFrame} {
		p := []byte(msg)
		in, err := V5.Parse(p)
		if err != nil {
			t.Fatal(err)
		}
		s, err := V5.ParseStream(string(in.Stream))
		if err != nil {
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(100, func() {
			in, _ := V5.Parse(p)
			V5.EventTime(in.Data)
			if s.Order() != upstream.OrderNone {
				V5.Identity(&s, in.Data)
			}
			if s.Class.Conflatable() {
				V5.Final(&s, in.Data)
			}
		})
		if allocs != 0 {
			t.Errorf("Parse+EventTime+Identity+Final of %.40s… allocates %v times; want 0", msg, allocs)
		}
	}
}

func TestParseSymbols(t *testing.T) {
	list := `{"code":"0","msg":"","data":[
		{"instId":"BTC-USDT","instType":"SPOT","state":"live"},
		{"instId":"BTC-USDT-SWAP","instType":"SWAP","state":"live"},
		{"instId":"OLD-USDT","instType":"SPOT","state":"suspend"},
		{"instId":"BTC-USD-250627","instType":"FUTURES","state":"live"}]}`
	got, next, err := V5.ParseSymbols(InstrumentsPath+"?instType=SPOT", strings.NewReader(list))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Errorf("ParseSymbols = %v; want BTC-USDT and BTC-USDT-SWAP", got)
	}
	for _, s := range []string{"BTC-USDT", "BTC-USDT-SWAP"} {
		if _, ok := got[s]; !ok {
			t.Errorf("ParseSymbols lacks %s", s)
		}
	}
	if next != "" {
		t.Errorf("ParseSymbols next page = %q; OKX lists are not paged", next)
	}
	if _, _, err := V5.ParseSymbols("", strings.NewReader(`{"code":"51000","msg":"Parameter instType error","data":[]}`)); err == nil {
		t.Error("ParseSymbols of an error answer succeeded")
	}
	if p := strings.Join(V5.SymbolsPaths(), " "); !strings.Contains(p, "instType=SPOT") || !strings.Contains(p, "instType=SWAP") {
		t.Errorf("SymbolsPaths = %q; want the SPOT and SWAP lists", p)
	}
}

func TestLimitsAndHeartbeat(t *testing.T) {
	l := V5.Limits()
	if l.MaxRequests != 480 || l.RequestWindow != time.Hour || l.RequestInterval < 250*time.Millisecond {
		t.Errorf("Limits = %+v; want 480 requests an hour, frames at least 250 ms apart", l)
	}
	if l.MaxStreams >= 30 || l.MaxConnAttempts > 3 {
		t.Errorf("Limits = %+v; want < 30 streams and ≤ 3 attempts", l)
	}
	hb := V5.Heartbeat()
	if string(hb.Payload) != "ping" || hb.Every <= 0 || hb.Every >= 30e9 || hb.Every+l.RequestInterval >= 30e9 {
		t.Errorf("Heartbeat = %+v; want a text ping sent well within 30 s", hb)
	}
}

// FuzzParse compares the fast path with encoding/json.
func FuzzParse(f *testing.F) {
	for _, s := range []string{tradeFrame, tradesFrame, bookSnap, bookUpdate, candleDone, tickerFrame, "pong",
		`{"arg":{"channel":"trades","instId":"A-B"},"data":[{"x":"}]"}]}`,
		`{"arg":{"channel":"trades","instId":"A-B"},"data":[1,2}}`,
		`{"arg":{"channel":"trades","instId":"A-B"},"action":"x","data":[]} x`,
		`{"id":"1","event":"error","code":60018,"msg":"channel:a,instId:b"}`,
		`{"event":"notice","code":"64008"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		d := Dialect{names: newNameCache()}
		in, err := d.Parse(p)
		if err != nil || in.Kind != upstream.InEvent {
			return
		}
		if len(in.Stream) == 0 || string(in.Data) != string(p) {
			t.Fatalf("event %q: stream %q, data %q", p, in.Stream, in.Data)
		}
		if !json.Valid(p) || !utf8.Valid(p) {
			return // the fast path checks brackets, not JSON (readOne checks UTF-8)
		}
		var env envelope
		if err := json.Unmarshal(p, &env); err != nil || env.Arg == nil {
			t.Fatalf("event %q: encoding/json says %v", p, err)
		}
		if want := env.Arg.Channel + ":" + env.Arg.InstID; want != string(in.Stream) {
			t.Fatalf("stream %q; encoding/json says %q", in.Stream, want)
		}
		for _, k := range []Kind{KindTrades, KindBooks, KindCandle} {
			s := upstream.Stream{Kind: int(k) - 1, Class: k.Class()}
			d.Identity(&s, in.Data)
			d.Final(&s, in.Data)
		}
		d.EventTime(in.Data)
	})
}

// FuzzParseStream: a parsed name's parts spell it, and its channel and
// instrument survive a request round trip.
func FuzzParseStream(f *testing.F) {
	for _, s := range []string{"trades:BTC-USDT", "candle1Dutc:ETH-USDT-SWAP", "books:A-B", "x:y", "candle:1-2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		s, err := ParseStream(name)
		if err != nil {
			return
		}
		if s.Channel+":"+s.InstID != name || s.Kind == KindInvalid || !ValidInstID(s.InstID) {
			t.Fatalf("ParseStream(%q) = %+v", name, s)
		}
		p, err := V5.Encode(upstream.OpSubscribe, []string{name}, 1)
		if err != nil {
			t.Fatal(err)
		}
		var r request
		if err := json.Unmarshal(p, &r); err != nil || len(r.Args) != 1 || r.Args[0].Channel+":"+r.Args[0].InstID != name {
			t.Fatalf("Encode(%q) = %s", name, p)
		}
	})
}

// TestEncodeWithinArgLimit: a request of the core's largest batch
// (upstream.DefaultMaxParams) of the longest names stays within OKX's
// 64 KB of args.
func TestEncodeWithinArgLimit(t *testing.T) {
	inst := strings.Repeat("A", 20) + "-" + strings.Repeat("B", 20) + "-SWAP"
	name := "candle12Hutc:" + inst
	if _, err := ParseStream(name); err != nil {
		t.Fatal(err)
	}
	p, err := V5.Encode(upstream.OpSubscribe, slices.Repeat([]string{name}, upstream.DefaultMaxParams), 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) > 64<<10 {
		t.Errorf("request of %d args is %d bytes; OKX takes 64 KB", upstream.DefaultMaxParams, len(p))
	}
}

func BenchmarkParse(b *testing.B) {
	for _, tc := range []struct{ name, msg string }{{"trade", tradeFrame}, {"bookUpdate", bookUpdate}, {"candle", candleLive}} {
		b.Run(tc.name, func(b *testing.B) {
			p := []byte(tc.msg)
			V5.Parse(p)
			b.ReportAllocs()
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				V5.Parse(p)
			}
		})
	}
}

// TestCandleUpdatesOrder: a live candle's updates order by the volume
// traded so far, so a receiver that drops what is not newer (a hub
// receiver, a handover) drops only an update that changed nothing, and
// the confirmed candle orders after every live one.
func TestCandleUpdatesOrder(t *testing.T) {
	candle := func(vol, confirm string) upstream.EventID {
		msg := `{"arg":{"channel":"candle1m","instId":"BTC-USDT"},"data":[["1597026360000","1","2","0.5","1.5","` + vol + `","1","1","` + confirm + `"]]}`
		s, _ := V5.ParseStream("candle1m:BTC-USDT")
		id, ok := V5.Identity(&s, []byte(msg))
		if !ok {
			t.Fatalf("no identity for %s", msg)
		}
		return id
	}
	after := func(e, l upstream.EventID) bool {
		return hub.EventID{Hi: e.Hi, Sub: e.Sub}.After(hub.EventID{Hi: l.Hi, Sub: l.Sub})
	}
	seq := []upstream.EventID{candle("0", "0"), candle("0.5", "0"), candle("9.99", "0"), candle("10", "0"), candle("123456.789", "0"), candle("123456.789", "1")}
	for i := 1; i < len(seq); i++ {
		if !after(seq[i], seq[i-1]) {
			t.Errorf("update %d (%+v) does not order after update %d (%+v)", i, seq[i], i-1, seq[i-1])
		}
	}
	if after(candle("10", "0"), candle("10", "0")) {
		t.Error("an update that traded nothing orders after its twin")
	}
	if after(candle("1e400", "0"), candle("10", "1")) || after(candle("-1", "0"), candle("0", "0")) {
		t.Error("an unreadable volume orders after a readable one")
	}
}
