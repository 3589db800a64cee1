package upstream_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	. "github.com/marketgate/marketgate/upstream"
	"github.com/marketgate/marketgate/upstream/binance"

	"github.com/marketgate/marketgate/exchangesim/binancesim"
	"github.com/marketgate/marketgate/hub"
	"github.com/marketgate/marketgate/internal/waitfor"
)

// TestRouteCounts checks the messages and bytes in by stream kind, with
// what reaches no stream under "other".
func TestRouteCounts(t *testing.T) {
	pub := &recordPublisher{}
	f, s := NewTestFeed(t, binance.Spot, pub, "btcusdt@trade", "btcusdt@bookTicker")
	ctx := t.Context()
	trade := envelopeOf("btcusdt@trade", benchTrade)
	book := envelopeOf("btcusdt@bookTicker", benchBookTicker)
	stray := envelopeOf("ethusdt@trade", benchTrade) // not subscribed
	for _, p := range [][]byte{trade, trade, book, stray, []byte(`garbage`), []byte(`{"result":null,"id":999}`)} {
		s.CountIn(s.Route(ctx, p), len(p))
	}
	st := f.Status()
	wantMsgs := map[string]int64{"trade": 2, "bookTicker": 1, "other": 3}
	wantBytes := map[string]int64{
		"trade":      int64(2 * len(trade)),
		"bookTicker": int64(len(book)),
		"other":      int64(len(stray) + len("garbage") + len(`{"result":null,"id":999}`)),
	}
	for k, w := range wantMsgs {
		if st.MessagesIn[k] != w || st.BytesIn[k] != wantBytes[k] {
			t.Errorf("%s: %d messages, %d bytes; want %d, %d", k, st.MessagesIn[k], st.BytesIn[k], w, wantBytes[k])
		}
	}
	if len(st.MessagesIn) != len(wantMsgs) {
		t.Errorf("MessagesIn = %v; want %v", st.MessagesIn, wantMsgs)
	}
	// The published trade carries its event time in microseconds; the
	// bookTicker has none.
	if got := pub.times["binance:btcusdt@trade"]; got != 1672515782136000 {
		t.Errorf("trade EventTime = %d; want 1672515782136000", got)
	}
	if got, ok := pub.times["binance:btcusdt@bookTicker"]; !ok || got != 0 {
		t.Errorf("bookTicker EventTime = %d (published %v); want 0", got, ok)
	}
}

// recordPublisher keeps the EventTime of each stream's last message.
type recordPublisher struct{ times map[string]int64 }

func (p *recordPublisher) Publish(_ context.Context, m hub.Message) error {
	if p.times == nil {
		p.times = map[string]int64{}
	}
	p.times[m.Stream] = m.EventTime
	return nil
}

func (p *recordPublisher) Flush(context.Context) error { return nil }

// TestFeedCountsWithSim runs a feed against the simulator, in
// microseconds and in milliseconds: messages and bytes in are counted,
// the SUBSCRIBE's round trip is observed, and every published trade
// carries an event time near now.
func TestFeedCountsWithSim(t *testing.T) {
	for _, micro := range []bool{false, true} {
		t.Run(fmt.Sprintf("micro=%v", micro), func(t *testing.T) {
			_, addr := startSim(t, binancesim.Config{Symbols: []string{"BTCUSDT"}, TickInterval: 10 * time.Millisecond})
			rec := newRecorder()
			b := newSimBinance(t, addr, rec, func(c *Config) {
				if micro {
					c.Dialect = binance.Spot.WithMicrosecondTimes()
				}
			})
			runBinance(t, b)
			waitfor.Cond(t, 5*time.Second, b.Ready) // connected: the stream takes a request
			b.Subscribe([]string{"btcusdt@trade"})
			waitMessages(t, rec, []string{"btcusdt@trade"}, 3)
			now := time.Now().UnixMicro()
			for _, m := range rec.get("binance:btcusdt@trade") {
				if m.EventTime < now-60e6 || m.EventTime > now+60e6 {
					t.Fatalf("EventTime %d; want microseconds near %d", m.EventTime, now)
				}
			}
			waitfor.Cond(t, 5*time.Second, func() error {
				st := b.Status()
				switch {
				case st.MessagesIn["trade"] < 3 || st.BytesIn["trade"] < 3*int64(len(`{"stream":"btcusdt@trade","data":{}}`)):
					return fmt.Errorf("in: %v messages, %v bytes", st.MessagesIn, st.BytesIn)
				case st.MessagesIn["other"] < 1:
					return errors.New("the SUBSCRIBE reply is not counted")
				case st.RequestLatency.Count < 1:
					return errors.New("no request round trip observed")
				}
				return nil
			})
		})
	}
}

// TestMetricsPerFeed checks that each feed has its own metrics, shared
// by its sessions.
func TestMetricsPerFeed(t *testing.T) {
	f1, s1 := NewTestFeed(t, binance.Spot, &countPublisher{})
	f2, _ := NewTestFeed(t, binance.Spot, &countPublisher{})
	if !s1.SharesMetrics(f1) || !NewTestSession(f1, 0, 2).SharesMetrics(f1) {
		t.Error("sessions of one feed do not share its metrics")
	}
	if s1.SharesMetrics(f2) {
		t.Error("two feeds share metrics")
	}
}
