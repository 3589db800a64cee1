package upstream_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/marketgate/marketgate/upstream"
	"github.com/marketgate/marketgate/upstream/binance"

	"github.com/marketgate/marketgate/exchangesim/binancesim"
	"github.com/marketgate/marketgate/internal/waitfor"
)

// panicDialect is Binance spot with a bug: the n-th call of one of its
// methods panics (each counter panics when it reaches zero, once).
type panicDialect struct {
	Dialect
	parse, encode, url atomic.Int32
}

func (d *panicDialect) Parse(p []byte) (Inbound, error) {
	if d.parse.Add(-1) == 0 {
		panic("test: Parse")
	}
	return d.Dialect.Parse(p)
}

func (d *panicDialect) Encode(op Op, names []string, id int64) ([]byte, error) {
	if d.encode.Add(-1) == 0 {
		panic("test: Encode")
	}
	return d.Dialect.Encode(op, names, id)
}

func (d *panicDialect) ConnectURL(base, path string, names []string, maxBytes int) (string, int) {
	if d.url.Add(-1) == 0 {
		panic("test: ConnectURL")
	}
	return d.Dialect.ConnectURL(base, path, names, maxBytes)
}

// TestSessionPanicReconnects checks that a panic on a connection's
// reader, its writer, or its shard's goroutine (which rotates) is
// recovered and counted, and ends only that connection: the feed
// reconnects and the stream's data flows again.
func TestSessionPanicReconnects(t *testing.T) {
	tests := []struct {
		name string
		set  func(d *panicDialect)
	}{
		{"reader", func(d *panicDialect) { d.parse.Store(5) }},  // the 5th message read
		{"writer", func(d *panicDialect) { d.encode.Store(1) }}, // the first SUBSCRIBE
		{"rotation", func(d *panicDialect) { d.url.Store(2) }},  // the rotation's dial
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, addr := startSim(t, binancesim.Config{TickInterval: 20 * time.Millisecond})
			d := &panicDialect{Dialect: binance.Spot}
			tc.set(d)
			rec := newRecorder()
			f, err := New(Config{
				Dialect:     d,
				URL:         "ws://" + addr,
				RESTURL:     "http://" + addr,
				Publisher:   rec,
				Logger:      testLogger(t),
				BackoffMin:  50 * time.Millisecond,
				BackoffMax:  200 * time.Millisecond,
				MaxLifetime: 4 * time.Second,
				RotateAfter: 500 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			runBinance(t, f)
			waitfor.Cond(t, 5*time.Second, f.Ready)
			const name = "btcusdt@trade"
			f.Subscribe([]string{name})
			waitfor.Cond(t, 5*time.Second, func() error {
				if st := f.Status(); st.InternalErrors != 1 || st.Reconnects < 1 {
					return fmt.Errorf("internal errors %d, reconnects %d; want 1 and a reconnect", st.InternalErrors, st.Reconnects)
				}
				return nil
			})
			n := len(rec.get("binance:" + name))
			waitMessages(t, rec, []string{name}, n+5) // data flows after the panic
			if st := f.Status(); st.InternalErrors != 1 {
				t.Errorf("internal errors %d; want 1", st.InternalErrors)
			}
		})
	}
}
