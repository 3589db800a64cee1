package upstream_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	. "github.com/marketgate/marketgate/upstream"
	"github.com/marketgate/marketgate/upstream/binance"
	"github.com/marketgate/marketgate/upstream/binance/binancetest"
	"github.com/marketgate/marketgate/upstream/bybit"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/marketgate/marketgate/hub"
)

const (
	benchTrade      = binancetest.Trade
	benchBookTicker = binancetest.BookTicker
)

var benchDepth = binancetest.Depth

// countPublisher counts messages and checks Data without keeping it.
type countPublisher struct {
	n    int
	last hub.Message
}

func (p *countPublisher) Publish(_ context.Context, m hub.Message) error {
	p.n++
	p.last.Stream, p.last.Seq = m.Stream, m.Seq
	return nil
}

func (p *countPublisher) Flush(context.Context) error { return nil }

func envelopeOf(stream, data string) []byte {
	return []byte(`{"stream":"` + stream + `","data":` + data + `}`)
}

func TestRoutePublishesAliasedData(t *testing.T) {
	rec := newRecorder()
	_, s := NewTestFeed(t, binance.Spot, rec, "btcusdt@trade")
	msg := envelopeOf("btcusdt@trade", benchTrade)
	s.Route(t.Context(), msg)
	s.Route(t.Context(), envelopeOf("ethusdt@trade", benchTrade)) // not on the connection
	got := rec.get("binance:btcusdt@trade")
	if len(got) != 1 || got[0].Seq != 1 || got[0].Gap || string(got[0].Data) != benchTrade {
		t.Fatalf("published %+v; want the trade with seq 1", got)
	}
	if n := len(rec.streams()); n != 1 {
		t.Errorf("%d streams published; want 1", n)
	}
	if allocs := testing.AllocsPerRun(100, func() { s.Route(t.Context(), msg) }); allocs != 1 {
		// The recorder's copy of Data is the only allocation.
		t.Errorf("route allocates %v times per message with a copying publisher; want 1", allocs)
	}
}

// loopReader yields data over and over.
type loopReader struct {
	data []byte
	off  int
}

func (r *loopReader) Read(p []byte) (int, error) {
	n := copy(p, r.data[r.off:])
	r.off = (r.off + n) % len(r.data)
	return n, nil
}

// BenchmarkRoute measures the hot path per upstream message: parsing the
// envelope, finding the stream, reading its event identity and publishing
// with Data aliasing the read buffer. "frames" adds reading the WebSocket
// frame into the reused buffer, UTF-8 check included.
func BenchmarkRoute(b *testing.B) {
	for _, tc := range []struct{ name, stream, data string }{
		{"trade", "btcusdt@trade", benchTrade},
		{"bookTicker", "btcusdt@bookTicker", benchBookTicker},
		{"depth", "btcusdt@depth@100ms", benchDepth},
	} {
		msg := envelopeOf(tc.stream, tc.data)
		b.Run(tc.name, func(b *testing.B) {
			pub := &countPublisher{}
			_, s := NewTestFeed(b, binance.Spot, pub, tc.stream)
			ctx := context.Background()
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				s.Route(ctx, msg)
			}
			if pub.n == 0 {
				b.Fatal("nothing published")
			}
		})
		b.Run(tc.name+"/json-baseline", func(b *testing.B) {
			// What a gateway that decodes each envelope does: the baseline
			// the zero-allocation path is measured against in the same run.
			streams := map[string]uint64{tc.stream: 0}
			var env struct {
				Stream string          `json:"stream"`
				Data   json.RawMessage `json:"data"`
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				if err := json.Unmarshal(msg, &env); err != nil {
					b.Fatal(err)
				}
				streams[env.Stream]++
			}
		})
		b.Run(tc.name+"/frames", func(b *testing.B) {
			pub := &countPublisher{}
			_, s := NewTestFeed(b, binance.Spot, pub, tc.stream)
			frame := ws.MustCompileFrame(ws.NewTextFrame(msg))
			rd := s.NewReader(&loopReader{data: frame})
			var buf bytes.Buffer
			ctx := context.Background()
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				if err := s.ReadOne(ctx, rd, &buf); err != nil {
					b.Fatal(err)
				}
			}
			if pub.n == 0 {
				b.Fatal("nothing published")
			}
		})
	}
}

func TestRouteZeroAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts")
	}
	pub := &countPublisher{}
	_, s := NewTestFeed(t, binance.Spot, pub, "btcusdt@trade", "btcusdt@depth@100ms")
	frame := ws.MustCompileFrame(ws.NewTextFrame(envelopeOf("btcusdt@depth@100ms", benchDepth)))
	rd := s.NewReader(&loopReader{data: frame})
	var buf bytes.Buffer
	ctx := context.Background()
	msg := envelopeOf("btcusdt@trade", benchTrade)
	if a := testing.AllocsPerRun(200, func() { s.Route(ctx, msg) }); a != 0 {
		t.Errorf("route: %v allocs per message; want 0", a)
	}
	if a := testing.AllocsPerRun(200, func() {
		if err := s.ReadOne(ctx, rd, &buf); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("readOne: %v allocs per message; want 0", a)
	}
}

// handoverCase drives one stream through a handover between two
// connections, old and new, event by event.
type handoverCase struct {
	t      *testing.T
	f      *Feed
	rec    *recorder
	old    *Session
	nw     *Session
	st     *StreamState
	stream string
}

func newHandoverCase(t *testing.T, d Dialect, stream string, bufSize int) *handoverCase {
	rec := newRecorder()
	f, err := New(Config{Dialect: d, URL: "ws://127.0.0.1:1", RESTURL: "http://127.0.0.1:1",
		Publisher: rec, HandoverBuffer: bufSize, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ep := EndpointOf(t, f, stream)
	old := NewTestSession(f, ep, 1)
	nw := NewTestSession(f, ep, 2)
	st := AddTestStream(t, f, old, stream)
	AddTestStream(t, f, nw, stream)
	return &handoverCase{t: t, f: f, rec: rec, old: old, nw: nw, st: st, stream: stream}
}

func (h *handoverCase) from(s *Session, data ...string) {
	for _, d := range data {
		h.st.Deliver(context.Background(), s, []byte(d))
	}
}

func (h *handoverCase) begin() { h.st.BeginHandover(h.nw, time.Now().Add(time.Hour)) }

// published returns the ids (key) of the published events, "!" marking Gap.
func (h *handoverCase) published(key string) string {
	h.t.Helper()
	var out []string
	for i, m := range h.rec.get(h.f.Name() + ":" + h.stream) {
		if m.Seq != uint64(i+1) {
			h.t.Errorf("message %d has seq %d", i, m.Seq)
		}
		ev := decodeEvent(h.t, m.Data)
		s := fmt.Sprint(ev[key])
		if m.Gap {
			s = "!" + s
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

func trade(id int) string {
	return fmt.Sprintf(`{"e":"trade","E":1,"s":"X","t":%d,"p":"1","q":"1","T":1}`, id)
}

func book(u int) string { return fmt.Sprintf(`{"u":%d,"s":"X","b":"1","B":"1","a":"2","A":"1"}`, u) }

func depth(lo, hi int) string {
	return fmt.Sprintf(`{"e":"depthUpdate","E":1,"s":"X","U":%d,"u":%d,"b":[],"a":[]}`, lo, hi)
}

func fdepth(lo, hi, pu int) string {
	return fmt.Sprintf(`{"e":"depthUpdate","E":1,"T":1,"s":"X","U":%d,"u":%d,"pu":%d,"b":[],"a":[]}`, lo, hi, pu)
}

func TestHandoverSwitchPoints(t *testing.T) {
	t.Run("trade new behind", func(t *testing.T) {
		h := newHandoverCase(t, binance.Spot, "btcusdt@trade", 100)
		h.from(h.old, trade(1), trade(2), trade(3), trade(4))
		h.begin()
		h.from(h.nw, trade(3), trade(4)) // repeats: dropped
		h.from(h.old, trade(5))          // still the source
		h.from(h.nw, trade(5), trade(6)) // 5 repeats, 6 continues
		h.from(h.old, trade(6), trade(7))
		h.from(h.nw, trade(7))
		if got, want := h.published("t"), "1 2 3 4 5 6 7"; got != want {
			t.Errorf("published %s; want %s", got, want)
		}
	})
	t.Run("trade new ahead", func(t *testing.T) {
		h := newHandoverCase(t, binance.Spot, "btcusdt@trade", 100)
		h.from(h.old, trade(1), trade(2))
		h.begin()
		h.from(h.nw, trade(4), trade(5)) // buffered: 3 not yet published
		h.from(h.old, trade(3))          // 4 continues 3: switch
		h.from(h.old, trade(4), trade(5), trade(6))
		h.from(h.nw, trade(6))
		if got, want := h.published("t"), "1 2 3 4 5 6"; got != want {
			t.Errorf("published %s; want %s", got, want)
		}
	})
	t.Run("trade new next", func(t *testing.T) {
		h := newHandoverCase(t, binance.Spot, "btcusdt@trade", 100)
		h.from(h.old, trade(1))
		h.begin()
		h.from(h.nw, trade(2)) // continues: switch at once
		h.from(h.old, trade(2), trade(3))
		h.from(h.nw, trade(3))
		if got, want := h.published("t"), "1 2 3"; got != want {
			t.Errorf("published %s; want %s", got, want)
		}
	})
	t.Run("bookTicker caught up", func(t *testing.T) {
		h := newHandoverCase(t, binance.Spot, "btcusdt@bookTicker", 100)
		h.from(h.old, book(10), book(20))
		h.begin()
		h.from(h.nw, book(40), book(50)) // newer, but is 40 next? unknown
		h.from(h.old, book(30))
		h.from(h.old, book(40)) // the old one reaches the new one's first: switch
		h.from(h.old, book(50), book(60))
		h.from(h.nw, book(60))
		if got, want := h.published("u"), "10 20 30 40 50 60"; got != want {
			t.Errorf("published %s; want %s", got, want)
		}
	})
	t.Run("bookTicker new behind", func(t *testing.T) {
		h := newHandoverCase(t, binance.Spot, "btcusdt@bookTicker", 100)
		h.from(h.old, book(10), book(20), book(30))
		h.begin()
		h.from(h.nw, book(20), book(30)) // seen: in line
		h.from(h.nw, book(45))           // the successor of 30
		h.from(h.old, book(45))
		if got, want := h.published("u"), "10 20 30 45"; got != want {
			t.Errorf("published %s; want %s", got, want)
		}
	})
	t.Run("diff depth overlap", func(t *testing.T) {
		h := newHandoverCase(t, binance.Spot, "btcusdt@depth", 100)
		h.from(h.old, depth(1, 10), depth(11, 20))
		h.begin()
		h.from(h.nw, depth(15, 25)) // U ≤ 21 ≤ u: continues
		h.from(h.old, depth(21, 25))
		if got, want := h.published("u"), "10 20 25"; got != want {
			t.Errorf("published %s; want %s", got, want)
		}
	})
	t.Run("futures depth pu", func(t *testing.T) {
		h := newHandoverCase(t, binance.Futures, "btcusdt@depth", 100)
		h.from(h.old, fdepth(1, 10, 0), fdepth(14, 20, 10))
		h.begin()
		h.from(h.nw, fdepth(25, 30, 22)) // pu 22 ≠ 20: wait
		h.from(h.old, fdepth(21, 22, 20))
		h.from(h.old, fdepth(25, 30, 22))
		h.from(h.nw, fdepth(31, 33, 30))
		if got, want := h.published("u"), "10 20 22 30 33"; got != want {
			t.Errorf("published %s; want %s", got, want)
		}
	})
	t.Run("ticker first new", func(t *testing.T) {
		h := newHandoverCase(t, binance.Spot, "btcusdt@ticker", 100)
		h.from(h.old, `{"e":"24hrTicker","E":1}`)
		h.begin()
		h.from(h.nw, `{"e":"24hrTicker","E":2}`)
		h.from(h.old, `{"e":"24hrTicker","E":2}`, `{"e":"24hrTicker","E":3}`)
		h.from(h.nw, `{"e":"24hrTicker","E":3}`)
		if got, want := h.published("E"), "1 2 3"; got != want {
			t.Errorf("published %s; want %s", got, want)
		}
	})
	t.Run("overflow", func(t *testing.T) {
		h := newHandoverCase(t, binance.Spot, "btcusdt@trade", 2)
		h.from(h.old, trade(1))
		h.begin()
		h.from(h.nw, trade(5), trade(6), trade(7)) // 3 > 2 buffered: switch with Gap
		h.from(h.old, trade(2))
		if got, want := h.published("t"), "1 !5 6 7"; got != want {
			t.Errorf("published %s; want %s", got, want)
		}
		if n := h.f.Status().HandoverOverflows; n != 1 {
			t.Errorf("%d overflows; want 1", n)
		}
	})
	t.Run("old dropped, continuous", func(t *testing.T) {
		h := newHandoverCase(t, binance.Spot, "btcusdt@trade", 100)
		h.from(h.old, trade(1), trade(2))
		h.begin()
		h.from(h.nw, trade(4))
		h.old.Detach(true) // 3 never came
		h.from(h.nw, trade(5))
		if got, want := h.published("t"), "1 2 !4 5"; got != want {
			t.Errorf("published %s; want %s", got, want)
		}
	})
	t.Run("old closed, in line", func(t *testing.T) {
		h := newHandoverCase(t, binance.Spot, "btcusdt@bookTicker", 100)
		h.from(h.old, book(10))
		h.begin()
		h.old.Detach(false)              // no event in between
		h.from(h.nw, book(10), book(20)) // 10 repeats
		if got, want := h.published("u"), "10 20"; got != want {
			t.Errorf("published %s; want %s", got, want)
		}
	})
	t.Run("old closed before the new one carried it", func(t *testing.T) {
		h := newHandoverCase(t, binance.Spot, "btcusdt@bookTicker", 100)
		h.from(h.old, book(10))
		h.begin()
		h.nw.Unconfirm(h.stream) // its subscribe is not answered yet
		h.old.Detach(false)      // closed after 20 and 30, which the new one never had
		h.from(h.nw, book(40))
		if got, want := h.published("u"), "10 !40"; got != want {
			t.Errorf("published %s; want %s", got, want)
		}
	})
	t.Run("new dropped", func(t *testing.T) {
		h := newHandoverCase(t, binance.Spot, "btcusdt@trade", 100)
		h.from(h.old, trade(1))
		h.begin()
		h.from(h.nw, trade(3))
		h.nw.Detach(true) // the old one carries on
		h.from(h.old, trade(2), trade(3))
		if got, want := h.published("t"), "1 2 3"; got != want {
			t.Errorf("published %s; want %s", got, want)
		}
	})
}

// linearTrade is a Bybit linear publicTrade push of one trade whose id
// is a UUID ending in n (no order the gateway can read).
func linearTrade(n int) string {
	return fmt.Sprintf(`{"topic":"publicTrade.BTCUSDT","ts":%d,"type":"snapshot","data":[{"i":"0a1b2c3d-4e5f-5000-9000-%012x","T":%d,"p":"1","v":"1","S":"Buy","s":"BTCUSDT","seq":%d}]}`, 1000+n, n, 1000+n, n)
}

// TestHandoverSameBytes: a stream whose ids have no order (Bybit linear
// trades, OrderSame) switches where both connections deliver the same
// push, so nothing is lost or repeated; it used to switch at the new
// connection's first event, repeating or losing what the old one had
// in flight. The "ts" field names each push in the test's output.
func TestHandoverSameBytes(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(h *handoverCase)
		want string
	}{
		{"new behind", func(h *handoverCase) {
			h.from(h.old, linearTrade(1), linearTrade(2), linearTrade(3), linearTrade(4))
			h.begin()
			h.from(h.nw, linearTrade(3), linearTrade(4)) // published already: in line, dropped
			h.from(h.old, linearTrade(5))                // the old one is no longer the source
			h.from(h.nw, linearTrade(5), linearTrade(6))
		}, "1001 1002 1003 1004 1005 1006"},
		{"new ahead", func(h *handoverCase) {
			h.from(h.old, linearTrade(1), linearTrade(2))
			h.begin()
			h.from(h.nw, linearTrade(4), linearTrade(5)) // unknown yet: buffered
			h.from(h.old, linearTrade(3))
			h.from(h.old, linearTrade(4)) // the old one reaches the buffer: switch
			h.from(h.old, linearTrade(5), linearTrade(6))
			h.from(h.nw, linearTrade(6))
		}, "1001 1002 1003 1004 1005 1006"},
		{"new at the next", func(h *handoverCase) {
			h.from(h.old, linearTrade(1))
			h.begin()
			h.from(h.nw, linearTrade(2)) // buffered: the old one may not have had it
			h.from(h.old, linearTrade(2), linearTrade(3))
			h.from(h.nw, linearTrade(3), linearTrade(4))
		}, "1001 1002 1003 1004"},
		{"old ends without reaching the new", func(h *handoverCase) {
			h.from(h.old, linearTrade(1))
			h.begin()
			h.from(h.nw, linearTrade(3))
			h.old.Detach(true) // 2 never came
			h.from(h.nw, linearTrade(4))
		}, "1001 !1003 1004"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHandoverCase(t, bybit.Linear, "publicTrade.BTCUSDT", 100)
			tc.run(h)
			if got := h.published("ts"); got != tc.want {
				t.Errorf("published %s; want %s", got, tc.want)
			}
		})
	}
}

func TestReadOneRejectsInvalidUTF8(t *testing.T) {
	rec := newRecorder()
	_, s := NewTestFeed(t, binance.Spot, rec, "btcusdt@trade")
	bad := envelopeOf("btcusdt@trade", `{"e":"trade","t":1,"s":"`+"\xff"+`"}`)
	rd := s.NewReader(bytes.NewReader(ws.MustCompileFrame(ws.NewTextFrame(bad))))
	var buf bytes.Buffer
	if err := s.ReadOne(t.Context(), rd, &buf); !errors.Is(err, wsutil.ErrInvalidUTF8) {
		t.Errorf("readOne = %v; want ErrInvalidUTF8", err)
	}
	if n := len(rec.streams()); n != 0 {
		t.Errorf("published %d streams; want nothing", n)
	}
}

// TestRouteDropsMalformed checks that an event whose brackets do not
// match is dropped and counted, not published.
func TestRouteDropsMalformed(t *testing.T) {
	for _, msg := range []string{
		`{"stream":"btcusdt@trade","data":{"e":"trade","t":1]}`,
		`{"stream":"btcusdt@trade","data":[1,2}}`,
	} {
		rec := newRecorder()
		f, s := NewTestFeed(t, binance.Spot, rec, "btcusdt@trade")
		if k := s.Route(t.Context(), []byte(msg)); k != -1 {
			t.Errorf("route(%s) = %v; want -1 (none)", msg, k)
		}
		s.Route(t.Context(), envelopeOf("btcusdt@trade", trade(1)))
		if got := rec.get("binance:btcusdt@trade"); len(got) != 1 || string(got[0].Data) != trade(1) {
			t.Errorf("after %s published %d messages; want only the valid trade", msg, len(got))
		}
		if st := f.Status(); st.Malformed != 1 {
			t.Errorf("after %s: Status.Malformed = %d; want 1", msg, st.Malformed)
		}
	}
}
