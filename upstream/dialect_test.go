package upstream

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/marketgate/marketgate/internal/jsonscan"
)

// fakeDialect is an exchange unlike Binance, the way OKX and Bybit are:
// string request ids, one reply per stream without an id, topics in
// request arguments only (no URL carries streams), text "ping"/"pong"
// heartbeats and string error codes. Stream names are
// "<INSTRUMENT>.<channel>", e.g. "BTC-USDT.trades". An event with
// "closed":true is final (whatever its channel, so that tests see the core
// ask only for conflatable streams).
type fakeDialect struct{}

var fakeKinds = []string{"trades", "books", "ticker", "candles"}

func (fakeDialect) Name() string { return "fake" }

func (fakeDialect) ParseStream(name string) (Stream, error) {
	sym, ch, ok := strings.Cut(name, ".")
	if !ok || sym == "" {
		return Stream{}, &ValidationError{Err: ErrInvalidStream, Value: name}
	}
	for i, k := range fakeKinds {
		if k == ch {
			class := [...]Class{ClassTrade, ClassBookDelta, ClassTicker, ClassCandle}[i]
			return Stream{Name: name, Symbol: sym, Class: class, Kind: i}, nil
		}
	}
	return Stream{}, &ValidationError{Err: ErrInvalidStream, Value: name}
}

func (fakeDialect) Kinds() []string        { return fakeKinds }
func (fakeDialect) Endpoints() []string    { return []string{"/ws/public"} }
func (fakeDialect) EndpointOf(Stream) int  { return 0 }
func (fakeDialect) URLRefused(int) bool    { return false }
func (fakeDialect) SymbolsPaths() []string { return []string{"/instruments"} }
func (fakeDialect) EventTime([]byte) int64 { return 0 }
func (fakeDialect) Heartbeat() Heartbeat {
	return Heartbeat{Every: 150 * time.Millisecond, Payload: []byte("ping")}
}
func (fakeDialect) ConnectURL(base, path string, _ []string, _ int) (string, int) {
	return base + path, 0
}

func (fakeDialect) ParseSymbols(_ string, r io.Reader) (map[string]struct{}, string, error) {
	var list []string
	if err := json.NewDecoder(r).Decode(&list); err != nil {
		return nil, "", err
	}
	m := make(map[string]struct{}, len(list))
	for _, s := range list {
		m[s] = struct{}{}
	}
	return m, "", nil
}

func (fakeDialect) Limits() Limits {
	return Limits{URL: "ws://127.0.0.1:1", RESTURL: "http://127.0.0.1:1", RequestInterval: 50 * time.Millisecond,
		MaxStreams: 100, IdleTimeout: 5 * time.Second, MaxLifetime: time.Hour, MaxConnAttempts: 100, ConnAttemptWindow: time.Minute}
}

func (fakeDialect) Encode(op Op, names []string, id int64) ([]byte, error) {
	return json.Marshal(struct {
		Op   string   `json:"op"`
		Args []string `json:"args"`
		ID   string   `json:"id"`
	}{op.String(), names, fmt.Sprint(id)})
}

// Parse reads "pong", {"event":"subscribe","arg":…},
// {"event":"error","code":…,"msg":…,"arg":…}, {"event":"notice"} and
// events {"arg":…,"data":…}.
func (fakeDialect) Parse(p []byte) (Inbound, error) {
	if string(p) == "pong" {
		return Inbound{Kind: InPong}, nil
	}
	var m struct {
		Event string          `json:"event"`
		Arg   string          `json:"arg"`
		Code  string          `json:"code"`
		Msg   string          `json:"msg"`
		Data  json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(p, &m); err != nil {
		return Inbound{}, err
	}
	switch m.Event {
	case "":
		d, _ := jsonscan.Field(p, "data")
		return Inbound{Kind: InEvent, Stream: []byte(m.Arg), Data: d}, nil
	case "subscribe", "unsubscribe":
		return Inbound{Kind: InReply, Streams: []string{m.Arg}}, nil
	case "error":
		return Inbound{Kind: InReply, Streams: []string{m.Arg}, Err: &ReplyError{Code: m.Code, Msg: m.Msg}}, nil
	case "notice":
		return Inbound{Kind: InShutdown}, nil
	}
	return Inbound{Kind: InIgnore}, nil
}

func (fakeDialect) Identity(*Stream, []byte) (EventID, bool) { return EventID{}, false }

func (fakeDialect) Final(_ *Stream, data []byte) bool {
	v, ok := jsonscan.Field(data, "closed")
	return ok && string(v) == "true"
}

// TestPublishFinal checks that a published message is Final where the
// dialect says so, and that the dialect is asked only about streams whose
// class is conflatable.
func TestPublishFinal(t *testing.T) {
	tests := []struct {
		name, stream, data  string
		conflate, wantFinal bool
	}{
		{"open candle", "BTC-USDT.candles", `{"t":1,"closed":false}`, true, false},
		{"closed candle", "BTC-USDT.candles", `{"t":1,"closed":true}`, true, true},
		{"candle that does not say", "BTC-USDT.candles", `{"t":1}`, true, false},
		{"final ticker", "BTC-USDT.ticker", `{"closed":true}`, true, true},
		{"trade: not asked", "BTC-USDT.trades", `{"closed":true}`, false, false},
		{"book delta: not asked", "BTC-USDT.books", `{"closed":true}`, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pub := &messages{}
			f, err := New(Config{Dialect: fakeDialect{}, Publisher: pub})
			if err != nil {
				t.Fatal(err)
			}
			s, err := fakeDialect{}.ParseStream(tc.stream)
			if err != nil {
				t.Fatal(err)
			}
			st := &streamState{name: tc.stream, key: "fake:" + tc.stream, stream: s, order: s.Order()}
			st.pmu.Lock()
			st.publishLocked(t.Context(), f, EventID{}, false, []byte(tc.data))
			st.pmu.Unlock()
			got := pub.of(st.key)
			if len(got) != 1 {
				t.Fatalf("published %d messages; want 1", len(got))
			}
			if got[0].Conflate != tc.conflate || got[0].Final != tc.wantFinal {
				t.Errorf("published Conflate %v, Final %v; want %v, %v", got[0].Conflate, got[0].Final, tc.conflate, tc.wantFinal)
			}
		})
	}
}
