package downstream

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/marketgate/marketgate/downstream/downstreamtest"
)

// upperNormalizer "normalizes" trade events by wrapping them, and counts
// its calls; kline streams have no normalized form.
type upperNormalizer struct{ calls atomic.Int64 }

func (n *upperNormalizer) Normalizable(key string) bool { return strings.HasSuffix(key, "@trade") }

func (n *upperNormalizer) Normalize(dst []byte, key string, data []byte) ([]byte, bool) {
	n.calls.Add(1)
	if strings.Contains(string(data), "unreadable") {
		return dst, false
	}
	dst = append(dst, `{"normalized":`...)
	dst = append(dst, data...)
	return append(dst, '}'), true
}

// TestNormalizedFormat: a native client asking "format":"normalized" gets
// the normalized form of its streams, another on the same stream the
// exchange's events; each message is normalized once however many take
// it; an event with no normalized form goes as it is; a stream without
// one, or an unknown format, is refused whole; unsubscribing and
// subscribing again raw ends the normalized form.
func TestNormalizedFormat(t *testing.T) {
	const key = "binance:btcusdt@trade"
	norm := &upperNormalizer{}
	env := startServer(t, Config{Normalizer: norm})
	var normal []*downstreamtest.Client
	for range 3 {
		c := downstreamtest.Dial(t, env.url+"/ws")
		c.Send(`{"op":"subscribe","id":1,"streams":["` + key + `"],"format":"normalized"}`)
		if r := readMsg(t, c); r.Result == nil {
			t.Fatalf("reply %+v", r)
		}
		normal = append(normal, c)
	}
	raw := downstreamtest.Dial(t, env.url+"/ws")
	raw.Send(`{"op":"subscribe","id":1,"streams":["` + key + `"]}`)
	readMsg(t, raw)
	env.waitSubscribers(t, key, 4)

	publish(t, env.hub, key, 1, `{"t":1}`)
	publish(t, env.hub, key, 2, `{"unreadable":true}`)
	for i, c := range normal {
		if m := readMsg(t, c); string(m.Data) != `{"normalized":{"t":1}}` || m.Seq != 1 {
			t.Errorf("normalized client %d: %+v", i, m)
		}
		if m := readMsg(t, c); string(m.Data) != `{"unreadable":true}` {
			t.Errorf("normalized client %d, an event with no normalized form: %s", i, m.Data)
		}
	}
	if m := readMsg(t, raw); string(m.Data) != `{"t":1}` {
		t.Errorf("raw client: %s", m.Data)
	}
	if n := norm.calls.Load(); n != 2 {
		t.Errorf("Normalize called %d times for 2 messages and 3 clients; want 2", n)
	}

	tests := []struct{ name, cmd, code string }{
		{"a stream without a normalized form", `{"op":"subscribe","id":5,"streams":["binance:btcusdt@kline_1m","` + key + `"],"format":"normalized"}`, CodeInvalidStream},
		{"an unknown format", `{"op":"subscribe","id":6,"streams":["` + key + `"],"format":"tardis"}`, CodeBadRequest},
	}
	c := normal[0]
	for _, tc := range tests {
		c.T = t
		c.Send(tc.cmd)
		for {
			m := readMsg(t, c)
			if m.Error == nil && m.Result == nil {
				continue // a data message
			}
			if m.Error == nil || m.Error.Code != tc.code {
				t.Errorf("%s: reply %+v; want error %s", tc.name, m, tc.code)
			}
			break
		}
	}
	c.Send(`{"op":"unsubscribe","id":7,"streams":["` + key + `"]}`)
	readMsg(t, c)
	c.Send(`{"op":"subscribe","id":8,"streams":["` + key + `"]}`)
	readMsg(t, c)
	publish(t, env.hub, key, 3, `{"t":3}`)
	for {
		m := readMsg(t, c)
		if m.Seq == 3 {
			if string(m.Data) != `{"t":3}` {
				t.Errorf("after a raw subscribe: %s", m.Data)
			}
			break
		}
	}
}
