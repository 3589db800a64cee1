package binancesim

import (
	"strings"
	"testing"
)

func TestMethodReplies(t *testing.T) {
	ts := startServer(t, Config{TickInterval: quiet, MaxMessagesPerSecond: 1000})
	c := dial(t, ts.wsURL("/ws"))
	steps := []struct{ send, want string }{
		{`{"method":"SUBSCRIBE","params":["btcusdt@aggTrade","btcusdt@depth"],"id":1}`, `{"result":null,"id":1}`},
		{`{"method":"LIST_SUBSCRIPTIONS","id":3}`, `{"result":["btcusdt@aggTrade","btcusdt@depth"],"id":3}`},
		{`{"method":"UNSUBSCRIBE","params":["btcusdt@depth"],"id":312}`, `{"result":null,"id":312}`},
		{`{"method":"LIST_SUBSCRIPTIONS","id":3}`, `{"result":["btcusdt@aggTrade"],"id":3}`},
		{`{"method":"GET_PROPERTY","params":["combined"],"id":2}`, `{"result":false,"id":2}`},
		{`{"method":"SET_PROPERTY","params":["combined",true],"id":5}`, `{"result":null,"id":5}`},
		{`{"method":"GET_PROPERTY","params":["combined"],"id":2}`, `{"result":true,"id":2}`},
		{`{"method":"SET_PROPERTY","params":["combined",false],"id":6}`, `{"result":null,"id":6}`},
		{`{"method":"GET_PROPERTY","params":["combined"],"id":7}`, `{"result":false,"id":7}`},
		// Ids: signed 64-bit, alphanumeric strings up to 36, null.
		{`{"method":"LIST_SUBSCRIPTIONS","id":"abcDEF123"}`, `{"result":["btcusdt@aggTrade"],"id":"abcDEF123"}`},
		{`{"method":"LIST_SUBSCRIPTIONS","id":"` + strings.Repeat("z", 36) + `"}`, `{"result":["btcusdt@aggTrade"],"id":"` + strings.Repeat("z", 36) + `"}`},
		{`{"method":"LIST_SUBSCRIPTIONS","id":null}`, `{"result":["btcusdt@aggTrade"],"id":null}`},
		{`{"method":"LIST_SUBSCRIPTIONS","id":-9223372036854775808}`, `{"result":["btcusdt@aggTrade"],"id":-9223372036854775808}`},
		{`{"method":"LIST_SUBSCRIPTIONS","id":9223372036854775807}`, `{"result":["btcusdt@aggTrade"],"id":9223372036854775807}`},
		{` { "id" : 0 , "method" : "LIST_SUBSCRIPTIONS" , "extra": {"x":[1]} } `, `{"result":["btcusdt@aggTrade"],"id":0}`},
		// Re-subscribing and unsubscribing what is not held succeed.
		{`{"method":"SUBSCRIBE","params":["btcusdt@aggTrade"],"id":8}`, `{"result":null,"id":8}`},
		{`{"method":"UNSUBSCRIBE","params":["ethusdt@trade"],"id":9}`, `{"result":null,"id":9}`},
		{`{"method":"SUBSCRIBE","params":[],"id":10}`, `{"result":null,"id":10}`},
		// Every grammatical stream type is accepted.
		{`{"method":"SUBSCRIBE","params":["btcusdt@kline_1M","btcusdt@kline_1h@+08:00","btcusdt@ticker_4h","!ticker_1d@arr","!miniTicker@arr","btcusdt@depth20@100ms","btcusdt@avgPrice","btcusdt@blockTrade","btcusdt@referencePrice"],"id":11}`, `{"result":null,"id":11}`},
		{`{"method":"LIST_SUBSCRIPTIONS","id":12}`, `{"result":["btcusdt@aggTrade","btcusdt@kline_1M","btcusdt@kline_1h@+08:00","btcusdt@ticker_4h","!ticker_1d@arr","!miniTicker@arr","btcusdt@depth20@100ms","btcusdt@avgPrice","btcusdt@blockTrade","btcusdt@referencePrice"],"id":12}`},
	}
	for _, st := range steps {
		if got := c.call(st.send); got != st.want {
			t.Errorf("send %s\n got  %s\n want %s", st.send, got, st.want)
		}
	}
	st := lastClient(t, ts.Server)
	if st.Violations() != 0 || st.Redundant != 2 {
		t.Errorf("violations = %d, redundant = %d; want 0, 2 (%+v)", st.Violations(), st.Redundant, st)
	}
	if st.Requests[methodListSubscriptions] != 9 || st.Requests[methodSubscribe] != 4 {
		t.Errorf("Requests = %v", st.Requests)
	}
}

func TestErrorReplies(t *testing.T) {
	const variants = "expected one of `SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`"
	echo := `{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,"p":"0.001","q":"100","T":1672515782136,"m":true,"M":true}`
	idErr := `{"error":{"code":2,"msg":"Invalid request: request ID must be an unsigned integer"}}`
	tests := []struct {
		name, send, want string
		count            func(ClientStats) int
	}{
		{"code0 set", `{"method":"SET_PROPERTY","params":["speed",true],"id":10}`, `{"error":{"code":0,"msg":"Unknown property"},"id":10}`, invalidParams},
		{"code0 get", `{"method":"GET_PROPERTY","params":["foo"],"id":11}`, `{"error":{"code":0,"msg":"Unknown property"},"id":11}`, invalidParams},
		{"code1 string", `{"method":"SET_PROPERTY","params":["combined","yes"],"id":12}`, `{"error":{"code":1,"msg":"Invalid value type: expected Boolean"},"id":12}`, invalidParams},
		{"code1 missing", `{"method":"SET_PROPERTY","params":["combined"],"id":13}`, `{"error":{"code":1,"msg":"Invalid value type: expected Boolean"},"id":13}`, invalidParams},
		{"property name type", `{"method":"GET_PROPERTY","params":[1],"id":14}`, `{"error":{"code":2,"msg":"Invalid request: property name must be a string"},"id":14}`, invalidParams},
		{"property name missing", `{"method":"GET_PROPERTY","id":15}`, `{"error":{"code":2,"msg":"Invalid request: property name must be a string"},"id":15}`, invalidParams},
		{"too many get", `{"method":"GET_PROPERTY","params":["combined",true],"id":16}`, `{"error":{"code":2,"msg":"Invalid request: too many parameters"},"id":16}`, invalidParams},
		{"too many set", `{"method":"SET_PROPERTY","params":["combined",true,1],"id":16}`, `{"error":{"code":2,"msg":"Invalid request: too many parameters"},"id":16}`, invalidParams},
		{"too many list", `{"method":"LIST_SUBSCRIPTIONS","params":["x"],"id":16}`, `{"error":{"code":2,"msg":"Invalid request: too many parameters"},"id":16}`, invalidParams},
		{"unknown variant", `{"method":"SUBSCRIBEX","params":[],"id":17}`, `{"error":{"code":2,"msg":"Invalid request: unknown variant ` + "`SUBSCRIBEX`, " + variants + ` at line 1 column 22"},"id":17}`, unknownMethod},
		{"lower case method", `{"method":"subscribe","params":[],"id":18}`, `{"error":{"code":2,"msg":"Invalid request: unknown variant ` + "`subscribe`, " + variants + ` at line 1 column 21"},"id":18}`, unknownMethod},
		{"method not string", `{"method":5,"id":1}`, `{"error":{"code":3,"msg":"Invalid JSON: expected value at line 1 column 11"},"id":1}`, unknownMethod},
		{"missing method", `{"params":["btcusdt@trade"],"id":19}`, "{\"error\":{\"code\":2,\"msg\":\"Invalid request: missing field `method` at line 1 column 36\"},\"id\":19}", missingMethod},
		{"echoed event", echo, "{\"error\":{\"code\":2,\"msg\":\"Invalid request: missing field `method` at line 1 column 112\"}}", missingMethod},
		{"missing method multiline", "{\n  \"id\": 3\n}", "{\"error\":{\"code\":2,\"msg\":\"Invalid request: missing field `method` at line 3 column 1\"},\"id\":3}", missingMethod},
		{"array", `[{"e":"24hrMiniTicker"}]`, `{"error":{"code":2,"msg":"Invalid request: invalid type: sequence, expected struct Request at line 1 column 1"}}`, missingMethod},
		{"number", `42`, "{\"error\":{\"code\":2,\"msg\":\"Invalid request: invalid type: integer `42`, expected struct Request at line 1 column 2\"}}", missingMethod},
		{"id float", `{"method":"LIST_SUBSCRIPTIONS","id":1.5}`, idErr, invalidID},
		{"id bool", `{"method":"LIST_SUBSCRIPTIONS","id":true}`, idErr, invalidID},
		{"id dash", `{"method":"LIST_SUBSCRIPTIONS","id":"a-b"}`, idErr, invalidID},
		{"id empty", `{"method":"LIST_SUBSCRIPTIONS","id":""}`, idErr, invalidID},
		{"id too long", `{"method":"LIST_SUBSCRIPTIONS","id":"` + strings.Repeat("a", 37) + `"}`, idErr, invalidID},
		{"id overflow", `{"method":"LIST_SUBSCRIPTIONS","id":9223372036854775808}`, idErr, invalidID},
		{"id missing", `{"method":"LIST_SUBSCRIPTIONS"}`, idErr, invalidID},
		{"stream upper case", `{"method":"SUBSCRIBE","params":["BTCUSDT@trade"],"id":20}`, `{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":20}`, invalidStreams},
		{"stream type", `{"method":"SUBSCRIBE","params":["btcusdt@trades"],"id":21}`, `{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":21}`, invalidStreams},
		{"stream levels", `{"method":"UNSUBSCRIBE","params":["btcusdt@depth15"],"id":22}`, `{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":22}`, invalidStreams},
		{"stream interval", `{"method":"SUBSCRIBE","params":["btcusdt@kline_2m"],"id":23}`, `{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":23}`, invalidStreams},
		{"stream not string", `{"method":"SUBSCRIBE","params":[5],"id":24}`, `{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":24}`, invalidStreams},
		{"params not array", `{"method":"SUBSCRIBE","params":"btcusdt@trade","id":25}`, `{"error":{"code":2,"msg":"Invalid request: invalid type: string \"btcusdt@trade\", expected a sequence at line 1 column 46"},"id":25}`, invalidParams},
		{"params missing", `{"method":"SUBSCRIBE","id":26}`, "{\"error\":{\"code\":2,\"msg\":\"Invalid request: missing field `params` at line 1 column 30\"},\"id\":26}", invalidParams},
		{"duplicate field", `{"method":"LIST_SUBSCRIPTIONS","method":"LIST_SUBSCRIPTIONS","id":27}`, "{\"error\":{\"code\":2,\"msg\":\"Invalid request: duplicate field `method` at line 1 column 39\"},\"id\":27}", invalidParams},
		{"empty frame", ``, `{"error":{"code":3,"msg":"Invalid JSON: EOF while parsing a value"}}`, invalidJSON},
		{"not json", `hello`, `{"error":{"code":3,"msg":"Invalid JSON: expected value at line 1 column 1"}}`, invalidJSON},
		{"truncated", `{"method":`, `{"error":{"code":3,"msg":"Invalid JSON: EOF while parsing a value at line 1 column 10"}}`, invalidJSON},
		{"trailing comma", `{"method":"LIST_SUBSCRIPTIONS","id":1,}`, `{"error":{"code":3,"msg":"Invalid JSON: trailing comma at line 1 column 39"}}`, invalidJSON},
		{"missing comma", `{"method":"LIST_SUBSCRIPTIONS" "id":1}`, "{\"error\":{\"code\":3,\"msg\":\"Invalid JSON: expected `,` or `}` at line 1 column 32\"}}", invalidJSON},
		{"trailing characters", `{"method":"LIST_SUBSCRIPTIONS","id":1} x`, `{"error":{"code":3,"msg":"Invalid JSON: trailing characters at line 1 column 40"}}`, invalidJSON},
		{"whitespace", "  \n ", `{"error":{"code":3,"msg":"Invalid JSON: EOF while parsing a value at line 2 column 1"}}`, invalidJSON},
	}
	ts := startServer(t, Config{TickInterval: quiet, MaxMessagesPerSecond: 1000})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, ts.wsURL("/ws"))
			if got := c.call(tc.send); got != tc.want {
				t.Errorf("send %s\n got  %s\n want %s", tc.send, got, tc.want)
			}
			c.assertOpen()
			st := lastClient(t, ts.Server)
			if n := tc.count(st); n != 1 {
				t.Errorf("counter = %d; want 1 (%+v)", n, st)
			}
			if st.Violations() != 1 {
				t.Errorf("Violations() = %d; want 1", st.Violations())
			}
		})
	}
}

func invalidJSON(s ClientStats) int    { return s.InvalidJSON }
func missingMethod(s ClientStats) int  { return s.MissingMethod }
func unknownMethod(s ClientStats) int  { return s.UnknownMethod }
func invalidID(s ClientStats) int      { return s.InvalidID }
func invalidParams(s ClientStats) int  { return s.InvalidParams }
func invalidStreams(s ClientStats) int { return s.InvalidStreams }

func TestStrictMethod(t *testing.T) {
	tests := []struct {
		name   string
		strict bool
		send   string
	}{
		{"lenient missing method", false, `{"e":"trade"}`},
		{"strict missing method", true, `{"e":"trade"}`},
		{"strict not json", true, `ping`},
		{"strict valid request", true, `{"method":"LIST_SUBSCRIPTIONS","id":1}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, Config{TickInterval: quiet, StrictMethod: tc.strict})
			c := dial(t, ts.wsURL("/ws"))
			c.call(tc.send)
			wantClose := tc.strict && !strings.Contains(tc.send, "method")
			if !wantClose {
				c.assertOpen()
				return
			}
			code, reason := c.expectClose(2e9)
			if code != 1008 || reason != closeStrictReason {
				t.Errorf("close = %d %q; want 1008 %q", code, reason, closeStrictReason)
			}
		})
	}
}

func TestUnknownSymbolAcceptedSilently(t *testing.T) {
	ts := startServer(t, Config{TickInterval: quiet})
	c := dial(t, ts.wsURL("/stream?streams=nosuchusdt@trade/btcusdt@trade/btcusdt@tradez"))
	if got, want := c.call(`{"method":"SUBSCRIBE","params":["fooeur@depth","btcusdt@depth"],"id":1}`), `{"result":null,"id":1}`; got != want {
		t.Fatalf("SUBSCRIBE = %s; want %s", got, want)
	}
	if got, want := c.call(`{"method":"LIST_SUBSCRIPTIONS","id":2}`), `{"result":["nosuchusdt@trade","btcusdt@trade","fooeur@depth","btcusdt@depth"],"id":2}`; got != want {
		t.Fatalf("LIST = %s; want %s", got, want)
	}
	st := lastClient(t, ts.Server)
	// nosuchusdt@trade and fooeur@depth are unknown symbols; the malformed
	// URL name btcusdt@tradez is dropped silently but counted too.
	if st.InvalidStreams != 3 || st.Streams != 4 {
		t.Errorf("InvalidStreams = %d, Streams = %d; want 3, 4", st.InvalidStreams, st.Streams)
	}
	subs := ts.Subscriptions()
	if subs["nosuchusdt@trade"] != 1 || subs["btcusdt@depth"] != 1 || len(subs) != 4 {
		t.Errorf("Subscriptions() = %v", subs)
	}
}

func TestMaxStreams(t *testing.T) {
	ts := startServer(t, Config{TickInterval: quiet, MaxStreams: 3})
	c := dial(t, ts.wsURL("/ws/btcusdt@trade"))
	steps := []struct{ send, want string }{
		{`{"method":"SUBSCRIBE","params":["ethusdt@trade"],"id":1}`, `{"result":null,"id":1}`},
		{`{"method":"SUBSCRIBE","params":["bnbusdt@trade","solusdt@trade"],"id":7}`, `{"error":{"code":4,"msg":"Too many subscriptions"},"id":7}`},
		{`{"method":"LIST_SUBSCRIPTIONS","id":2}`, `{"result":["btcusdt@trade","ethusdt@trade"],"id":2}`},
		{`{"method":"SUBSCRIBE","params":["bnbusdt@trade","btcusdt@trade"],"id":3}`, `{"result":null,"id":3}`},
	}
	for _, st := range steps {
		if got := c.call(st.send); got != st.want {
			t.Errorf("send %s\n got  %s\n want %s", st.send, got, st.want)
		}
	}
	st := lastClient(t, ts.Server)
	if st.TooManyStreams != 1 || st.Streams != 3 {
		t.Errorf("TooManyStreams = %d, Streams = %d; want 1, 3", st.TooManyStreams, st.Streams)
	}
	if _, err := tryDial(t, ts.wsURL("/stream?streams=a@trade/b@trade/c@trade/d@trade")); err == nil {
		t.Errorf("dial with 4 URL streams succeeded; want HTTP 400")
	}
	if ts.Rejections() != 1 {
		t.Errorf("Rejections() = %d; want 1", ts.Rejections())
	}
}
