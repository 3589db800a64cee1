package downstream

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/marketgate/marketgate/downstream/downstreamtest"
)

// startingSource is a node whose symbol lists are still loading until
// ready is set: every key then fails Validate with ErrUnavailable, except
// keys that are invalid whatever the lists say.
type startingSource struct {
	*fakeSource
	ready atomic.Bool
}

func (s *startingSource) Validate(key string) error {
	if key == "binance:btcusdt@tradez" || s.ready.Load() {
		return s.fakeSource.Validate(key)
	}
	return fmt.Errorf("%w: binance symbol list not loaded yet", ErrUnavailable)
}

// TestUnavailableAsksToRetry: while the node cannot check keys yet, a
// subscribe is refused as retryable (native: code unavailable; Binance
// dialect, which has no such reply: close 1013), never as invalid, and
// nothing is wanted; a key that is invalid anyway is still reported so.
// Once the node is ready the same command succeeds.
func TestUnavailableAsksToRetry(t *testing.T) {
	src := &startingSource{fakeSource: newFakeSource()}
	env := startServer(t, Config{Source: src})
	cases := []struct {
		name string
		path string
		send string
		want string // a reply; "" expects a close with 1013
	}{
		{"native", "/ws", `{"op":"subscribe","id":1,"streams":["binance:btcusdt@trade","binance:ethusdt@trade"]}`,
			`{"id":1,"error":{"code":"unavailable","msg":"not available yet, try again shortly: binance symbol list not loaded yet","streams":["binance:btcusdt@trade","binance:ethusdt@trade"]}}`},
		{"native invalid first", "/ws", `{"op":"subscribe","id":2,"streams":["binance:btcusdt@trade","binance:btcusdt@tradez"]}`,
			`{"id":2,"error":{"code":"invalid_stream","msg":"invalid stream name \"btcusdt@tradez\"","streams":["binance:btcusdt@tradez"]}}`},
		{"dialect command", "/binance/ws", `{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":3}`, ""},
		{"dialect URL", "/binance/stream?streams=btcusdt@trade", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := downstreamtest.Dial(t, env.url+tc.path)
			if tc.send != "" {
				c.Send(tc.send)
			}
			if tc.want == "" {
				expectCloseWith(t, c, statusTryAgainLater, "binance symbol list not loaded yet")
				return
			}
			expectJSON(t, c, tc.want)
		})
	}
	if n, _ := src.state("binance:btcusdt@trade"); n != 0 {
		t.Fatalf("source was asked for binance:btcusdt@trade %d times while unavailable; want 0", n)
	}

	src.ready.Store(true)
	c := downstreamtest.Dial(t, env.url+"/ws")
	c.Send(`{"op":"subscribe","id":4,"streams":["binance:btcusdt@trade"]}`)
	if r := c.Next(); !strings.Contains(string(r), `"id":4,"result":{"streams":["binance:btcusdt@trade"]`) {
		t.Fatalf("subscribe once ready: got %s; want a result", r)
	}
	downstreamtest.Dial(t, env.url+"/binance/stream?streams=btcusdt@trade")
	env.waitSubscribers(t, "binance:btcusdt@trade", 2)
}
