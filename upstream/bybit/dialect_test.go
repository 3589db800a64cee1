package bybit

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/marketgate/marketgate/upstream"
)

const (
	spotTrade = `{"topic":"publicTrade.BTCUSDT","ts":1672304486868,"type":"snapshot","data":[` +
		`{"T":1672304486865,"s":"BTCUSDT","S":"Buy","v":"0.001","p":"16578.50","i":"2290000000061666327","BT":false,"seq":1783284617},` +
		`{"T":1672304486866,"s":"BTCUSDT","S":"Sell","v":"0.002","p":"16578.40","i":"2290000000061666330","BT":false,"seq":1783284618}]}`
	linearTrade = `{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1672304486868,"data":[` +
		`{"T":1672304486865,"s":"BTCUSDT","S":"Buy","v":"0.001","p":"16578.50","L":"PlusTick","i":"20f43950-d8dd-5b31-9112-a178eb6023af","BT":false,"seq":1783284617}]}`
	bookDelta = `{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1687940967466,"data":{"s":"BTCUSDT",` +
		`"b":[["30247.20","30.028"],["30245.40","0"]],"a":[["30248.70","0"]],"u":177400507,"seq":66544703342},"cts":1687940967464}`
	bookTop = `{"topic":"orderbook.1.BTCUSDT","ts":1687940967466,"type":"snapshot","data":{"s":"BTCUSDT","b":[["30247.20","30.028"]],"a":[["30248.70","1"]],"u":42,"seq":7}}`
	kline   = `{"topic":"kline.5.BTCUSDT","data":[{"start":1672324800000,"end":1672325099999,"interval":"5","open":"16649.5","close":"16677","high":"16677","low":"16608","volume":"2.081","turnover":"34666.4005","confirm":false,"timestamp":1672324988882}],"ts":1672324988882,"type":"snapshot"}`
	ticker  = `{"topic":"tickers.BTCUSDT","ts":1673853746003,"type":"snapshot","cs":2588407389,"data":{"symbol":"BTCUSDT","lastPrice":"21109.77","usdIndexPrice":"21115.9"}}`
)

func TestParseStream(t *testing.T) {
	type want struct {
		sym   string
		class upstream.Class
		order upstream.Order
		kind  Kind
	}
	for _, c := range []struct {
		d    Dialect
		name string
		want want
	}{
		{Spot, "publicTrade.BTCUSDT", want{"BTCUSDT", upstream.ClassTrade, upstream.OrderMonotonic, KindTrade}},
		{Linear, "publicTrade.BTCUSDT", want{"BTCUSDT", upstream.ClassTrade, upstream.OrderSame, KindTrade}},
		{Spot, "tickers.ETHUSDT", want{"ETHUSDT", upstream.ClassTicker, upstream.OrderNone, KindTicker}},
		{Linear, "tickers.ETHUSDT", want{"ETHUSDT", upstream.ClassOther, upstream.OrderNone, KindTicker}},
		{Linear, "orderbook.50.BTCUSDT", want{"BTCUSDT", upstream.ClassBookDelta, upstream.OrderConsecutive, KindBook}},
		{Spot, "orderbook.1000.BTCUSDT", want{"BTCUSDT", upstream.ClassBookDelta, upstream.OrderConsecutive, KindBook}},
		{Spot, "orderbook.1.BTCUSDT", want{"BTCUSDT", upstream.ClassBookTop, upstream.OrderMonotonic, KindBookTop}},
		{Spot, "kline.D.BTCUSDT", want{"BTCUSDT", upstream.ClassCandle, upstream.OrderMonotonic, KindKline}},
		{Linear, "kline.1.BTCUSDT-26DEC25", want{"BTCUSDT-26DEC25", upstream.ClassCandle, upstream.OrderMonotonic, KindKline}},
		{Linear, "publicTrade.1000PEPEUSDT", want{"1000PEPEUSDT", upstream.ClassTrade, upstream.OrderSame, KindTrade}},
	} {
		s, err := c.d.ParseStream(c.name)
		if err != nil {
			t.Errorf("%s ParseStream(%q): %v", c.d.Name(), c.name, err)
			continue
		}
		got := want{s.Symbol, s.Class, s.Order(), Kind(s.Kind)}
		if got != c.want || s.Name != c.name {
			t.Errorf("%s ParseStream(%q) = %+v, want %+v", c.d.Name(), c.name, got, c.want)
		}
	}
	for _, name := range []string{
		"", "publicTrade", "publicTrade.", "publicTrade.btcusdt", "trade.BTCUSDT", "orderbook.BTCUSDT",
		"orderbook.25.BTCUSDT", "orderbook.500.BTCUSDT", "orderbook.full.BTCUSDT", "kline.2.BTCUSDT",
		"kline.1m.BTCUSDT", "tickers.BTC.USDT", "tickers.-BTC", "tickers.BTC-", "tickers.BTC USDT",
		"tickers." + strings.Repeat("A", MaxSymbolLen+1), "publicTrade.BTCUSDT\"", "Tickers.BTCUSDT",
	} {
		for _, d := range []Dialect{Spot, Linear} {
			if s, err := d.ParseStream(name); !errors.Is(err, upstream.ErrInvalidStream) {
				t.Errorf("%s ParseStream(%q) = %+v, %v; want ErrInvalidStream", d.Name(), name, s, err)
			}
		}
	}
}

func TestKinds(t *testing.T) {
	if len(Spot.Kinds()) != int(numKinds) {
		t.Fatalf("Kinds = %v", Spot.Kinds())
	}
	for k := KindTrade; k < numKinds; k++ {
		if k.String() == "" || k.String() == "invalid" {
			t.Errorf("kind %d unnamed", k)
		}
	}
}

func TestProducts(t *testing.T) {
	if Spot.Name() != "bybit" || Linear.Name() != "bybit-linear" {
		t.Fatal(Spot.Name(), Linear.Name())
	}
	if !slices.Equal(Spot.Endpoints(), []string{"/v5/public/spot"}) || !slices.Equal(Linear.Endpoints(), []string{"/v5/public/linear"}) {
		t.Fatal(Spot.Endpoints(), Linear.Endpoints())
	}
	u, n := Spot.ConnectURL("wss://stream.bybit.com", "/v5/public/spot", []string{"publicTrade.BTCUSDT"}, 8192)
	if u != "wss://stream.bybit.com/v5/public/spot" || n != 0 {
		t.Fatal(u, n)
	}
	if Spot.URLRefused(400) {
		t.Fatal("URLRefused")
	}
	if Spot.MaxArgs() != 10 || Linear.MaxArgs() != 0 {
		t.Fatal("MaxArgs")
	}
	if s, l := Spot.SymbolsPaths(), Linear.SymbolsPaths(); len(s) != 1 || !strings.Contains(s[0], "category=spot") || len(l) != 1 || !strings.Contains(l[0], "category=linear") {
		t.Fatal(s, l)
	}
	hb := Spot.Heartbeat()
	if string(hb.Payload) != `{"op":"ping"}` || hb.Every != HeartbeatEvery {
		t.Fatal(hb)
	}
	lim := Linear.Limits()
	if lim.URL != DefaultURL || lim.RESTURL != DefaultRESTURL || lim.MaxStreams <= 0 || lim.MaxLifetime <= 0 ||
		lim.MaxConnAttempts > 500 || lim.IdleTimeout <= HeartbeatEvery {
		t.Fatalf("%+v", lim)
	}
}

func TestParseSymbols(t *testing.T) {
	body := `{"retCode":0,"retMsg":"OK","result":{"category":"spot","list":[` +
		`{"symbol":"BTCUSDT","status":"Trading"},{"symbol":"OLDUSDT","status":"Closed"},` +
		`{"symbol":"BTCUSDT-26DEC25","status":"Trading"},{"symbol":"bad sym","status":"Trading"}]}}`
	m, next, err := Spot.ParseSymbols(Spot.SymbolsPaths()[0], strings.NewReader(body))
	if err != nil || next != "" {
		t.Fatal(next, err)
	}
	if len(m) != 2 {
		t.Fatalf("symbols %v", m)
	}
	for _, s := range []string{"BTCUSDT", "BTCUSDT-26DEC25"} {
		if _, ok := m[s]; !ok {
			t.Errorf("%s missing", s)
		}
	}
	if _, _, err := Spot.ParseSymbols("", strings.NewReader(`{"retCode":10001,"retMsg":"params error"}`)); err == nil {
		t.Error("retCode 10001 accepted")
	}
	if _, _, err := Spot.ParseSymbols("", strings.NewReader(`{`)); err == nil {
		t.Error("bad JSON accepted")
	}
}

func TestParseSymbolsPages(t *testing.T) {
	page := func(cursor string) string {
		return `{"retCode":0,"retMsg":"OK","result":{"category":"linear","list":[{"symbol":"BTCUSDT","status":"Trading"}],"nextPageCursor":"` + cursor + `"}}`
	}
	first := Linear.SymbolsPaths()[0]
	tests := []struct {
		name, path, cursor, wantNext string
		wantErr                      bool
	}{
		{"last page", first, "", "", false},
		{"first page", first, "c1", "/v5/market/instruments-info?category=linear&cursor=c1&limit=1000", false},
		{"cursor replaced", first + "&cursor=c1", "c2", "/v5/market/instruments-info?category=linear&cursor=c2&limit=1000", false},
		{"cursor escaped", first, "a=b&c", "/v5/market/instruments-info?category=linear&cursor=a%3Db%26c&limit=1000", false},
		{"cursor repeats its page", first + "&cursor=c1", "c1", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, next, err := Linear.ParseSymbols(tc.path, strings.NewReader(page(tc.cursor)))
			if (err != nil) != tc.wantErr || next != tc.wantNext {
				t.Fatalf("ParseSymbols = next %q, %v; want %q (error %v)", next, err, tc.wantNext, tc.wantErr)
			}
			if err == nil && len(m) != 1 {
				t.Fatalf("symbols %v", m)
			}
		})
	}
}

func TestEncode(t *testing.T) {
	p, err := Spot.Encode(upstream.OpSubscribe, []string{"publicTrade.BTCUSDT", "orderbook.50.BTCUSDT"}, 17)
	if err != nil || string(p) != `{"req_id":"17","op":"subscribe","args":["publicTrade.BTCUSDT","orderbook.50.BTCUSDT"]}` {
		t.Fatalf("%s, %v", p, err)
	}
	p, err = Linear.Encode(upstream.OpUnsubscribe, []string{"tickers.BTCUSDT"}, 3)
	if err != nil || string(p) != `{"req_id":"3","op":"unsubscribe","args":["tickers.BTCUSDT"]}` {
		t.Fatalf("%s, %v", p, err)
	}
}

func TestParse(t *testing.T) {
	type want struct {
		kind    upstream.InboundKind
		stream  string
		id      int64
		hasID   bool
		streams []string
		code    string
		full    bool
	}
	for _, c := range []struct {
		msg  string
		want want
	}{
		{spotTrade, want{kind: upstream.InEvent, stream: "publicTrade.BTCUSDT"}},
		{bookDelta, want{kind: upstream.InEvent, stream: "orderbook.50.BTCUSDT"}},
		{kline, want{kind: upstream.InEvent, stream: "kline.5.BTCUSDT"}},
		{`{"type":"snapshot","topic":"tickers.BTCUSDT","data":{"a":1}}`, want{kind: upstream.InEvent, stream: "tickers.BTCUSDT"}},
		{`{"topic":"tickers.B\u0054C","data":{}}`, want{kind: upstream.InEvent, stream: "tickers.BTC"}},
		{`{"success":true,"ret_msg":"subscribe","conn_id":"c1","req_id":"10001","op":"subscribe"}`, want{kind: upstream.InReply, id: 10001, hasID: true}},
		{`{"success":true,"ret_msg":"","conn_id":"c1","req_id":"7","op":"unsubscribe"}`, want{kind: upstream.InReply, id: 7, hasID: true}},
		{`{"success":false,"ret_msg":"error:handler not found,topic:orderbook.50.NOPE","conn_id":"c1","req_id":"8","op":"subscribe"}`,
			want{kind: upstream.InReply, id: 8, hasID: true, streams: []string{"orderbook.50.NOPE"}, code: "handler not found"}},
		{`{"success":false,"ret_msg":"args size >10","conn_id":"c1","req_id":"9","op":"subscribe"}`,
			want{kind: upstream.InReply, id: 9, hasID: true, code: "args size >10"}},
		{`{"success":false,"ret_msg":"` + FullMsg + `,topic:tickers.X","req_id":"4","op":"subscribe"}`,
			want{kind: upstream.InReply, id: 4, hasID: true, streams: []string{"tickers.X"}, code: "args length exceeded", full: true}},
		{`{"success":true,"ret_msg":"pong","conn_id":"c1","op":"ping"}`, want{kind: upstream.InPong}},
		{`{"args":["1672916271846"],"op":"pong"}`, want{kind: upstream.InPong}},
		{`{"op":"shutdown","ret_msg":"the connection will be closed soon"}`, want{kind: upstream.InShutdown}},
		{`{"success":true,"conn_id":"c","data":{"failTopics":[]},"type":"COMMAND_RESP"}`, want{kind: upstream.InIgnore}},
	} {
		in, err := Spot.Parse([]byte(c.msg))
		if err != nil {
			t.Errorf("Parse(%s): %v", c.msg, err)
			continue
		}
		got := want{kind: in.Kind, stream: string(in.Stream), id: in.ID, hasID: in.HasID, streams: in.Streams}
		if in.Err != nil {
			got.code, got.full = in.Err.Code, in.Err.Full
		}
		if got.kind != c.want.kind || got.stream != c.want.stream || got.id != c.want.id || got.hasID != c.want.hasID ||
			!slices.Equal(got.streams, c.want.streams) || got.code != c.want.code || got.full != c.want.full {
			t.Errorf("Parse(%s) = %+v, want %+v", c.msg, got, c.want)
		}
		if in.Kind == upstream.InEvent && string(in.Data) != c.msg {
			t.Errorf("Parse(%s): data %s, want the whole message", c.msg, in.Data)
		}
	}
	for _, bad := range []string{``, `{`, `{"topic":"a"}`, `[1]`, `{"topic":"a","data":{}`} {
		if in, err := Spot.Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%s) = %+v, want an error", bad, in)
		}
	}
}

func TestIdentity(t *testing.T) {
	stream := func(d Dialect, name string) *upstream.Stream {
		s, err := d.ParseStream(name)
		if err != nil {
			t.Fatal(err)
		}
		return &s
	}
	for _, c := range []struct {
		s    *upstream.Stream
		msg  string
		want upstream.EventID
		ok   bool
	}{
		{stream(Spot, "publicTrade.BTCUSDT"), spotTrade, upstream.EventID{Lo: 2290000000061666327, Hi: 2290000000061666330}, true},
		{stream(Linear, "publicTrade.BTCUSDT"), linearTrade, upstream.EventID{}, false},
		{stream(Spot, "orderbook.50.BTCUSDT"), bookDelta, upstream.EventID{Lo: 177400507, Hi: 177400507}, true},
		{stream(Spot, "orderbook.1.BTCUSDT"), bookTop, upstream.EventID{Lo: 42, Hi: 42}, true},
		{stream(Spot, "kline.5.BTCUSDT"), kline, upstream.EventID{Lo: 1672324800000, Hi: 1672324800000, Sub: 1672324988882}, true},
		{stream(Spot, "tickers.BTCUSDT"), ticker, upstream.EventID{}, false},
		{stream(Spot, "publicTrade.BTCUSDT"), `{"topic":"x","data":[]}`, upstream.EventID{}, false},
		{stream(Spot, "publicTrade.BTCUSDT"), `{"topic":"x","data":[{"i":"99999999999999999999"}]}`, upstream.EventID{}, false},
	} {
		id, ok := Spot.Identity(c.s, []byte(c.msg))
		if ok != c.ok || (ok && id != c.want) {
			t.Errorf("Identity(%s, %.40s…) = %+v, %v; want %+v, %v", c.s.Name, c.msg, id, ok, c.want, c.ok)
		}
	}
	k := stream(Spot, "kline.5.BTCUSDT")
	if Spot.Final(k, []byte(kline)) {
		t.Error("open candle final")
	}
	closed := strings.Replace(kline, `"confirm":false`, `"confirm":true`, 1)
	if !Spot.Final(k, []byte(closed)) {
		t.Error("closed candle not final")
	}
	if Spot.Final(stream(Spot, "tickers.BTCUSDT"), []byte(closed)) {
		t.Error("ticker final")
	}
	if got := Spot.EventTime([]byte(bookDelta)); got != 1687940967466000 {
		t.Errorf("EventTime = %d", got)
	}
	if got := Spot.EventTime([]byte(`{"op":"ping"}`)); got != 0 {
		t.Errorf("EventTime = %d", got)
	}
}

func TestHotPathAllocs(t *testing.T) {
	trade, _ := Spot.ParseStream("publicTrade.BTCUSDT")
	book, _ := Spot.ParseStream("orderbook.50.BTCUSDT")
	kl, _ := Spot.ParseStream("kline.5.BTCUSDT")
	msgs := [][]byte{[]byte(spotTrade), []byte(bookDelta), []byte(kline)}
	n := testing.AllocsPerRun(200, func() {
		for _, m := range msgs {
			in, err := Spot.Parse(m)
			if err != nil || in.Kind != upstream.InEvent {
				t.Fatal(err)
			}
			Spot.EventTime(in.Data)
		}
		Spot.Identity(&trade, msgs[0])
		Spot.Identity(&book, msgs[1])
		Spot.Identity(&kl, msgs[2])
		Spot.Final(&kl, msgs[2])
	})
	if n != 0 {
		t.Fatalf("%v allocations per run on the hot path", n)
	}
}

func BenchmarkParseBook(b *testing.B) {
	m := []byte(bookDelta)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Spot.Parse(m); err != nil {
			b.Fatal(err)
		}
	}
}
