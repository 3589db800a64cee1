package upstream_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"testing"

	. "github.com/marketgate/marketgate/upstream"

	"github.com/marketgate/marketgate/hub"
	"github.com/marketgate/marketgate/upstream/binance"
	"github.com/marketgate/marketgate/upstream/bybit"
)

// offer is one event a lane hands to the merger: id is a trade id or an
// update id (consecutive streams get Prev = id−1), the event time of an
// identity-less stream, or the payload's name for OrderSame.
type offer struct {
	lane int
	id   int64
	gap  bool
}

// TestMergerOrders: the merger publishes each event once, in order, by
// the identity each stream's Order gives it; a lane that lost its way
// (Gap) is held until seen in line.
func TestMergerOrders(t *testing.T) {
	const (
		trade  = "binance:btcusdt@trade"      // consecutive ids
		top    = "binance:btcusdt@bookTicker" // monotonic ids
		ticker = "binance:btcusdt@ticker"     // no identity: event times
		linear = "bybit-linear:publicTrade.BTCUSDT"
	)
	tests := []struct {
		name   string
		stream string
		hold   int
		offers []offer
		want   []int64 // ids published, in order
		gaps   []int64 // those published with Gap
		dups   int64
		forced int64
	}{
		{
			name: "interleaved lanes", stream: trade,
			offers: []offer{{0, 1, false}, {1, 1, false}, {0, 2, false}, {1, 2, false}, {1, 3, false}, {0, 3, false}},
			want:   []int64{1, 2, 3}, dups: 3,
		},
		{
			name: "a lane rejoins ahead: held until the other fills the hole", stream: trade,
			offers: []offer{{0, 1, false}, {1, 1, false}, {0, 2, false}, {0, 3, false},
				{1, 5, true}, {1, 6, false}, {0, 4, false}, {0, 5, false}, {0, 6, false}, {0, 7, false}, {1, 7, false}},
			want: []int64{1, 2, 3, 4, 5, 6, 7}, dups: 4,
		},
		{
			name: "a lane rejoins behind: in line at its first repeat", stream: trade,
			offers: []offer{{0, 1, false}, {0, 2, false}, {0, 3, false}, {1, 2, true}, {1, 3, false}, {1, 4, false}, {0, 4, false}},
			want:   []int64{1, 2, 3, 4}, dups: 3,
		},
		{
			name: "the lane in line is gone: the joining lane's buffer fills and it carries on", stream: trade, hold: 2,
			offers: []offer{{0, 1, false}, {1, 1, false}, {0, 2, false}, {1, 5, true}, {1, 6, false}, {1, 7, false}},
			want:   []int64{1, 2, 5, 6, 7}, gaps: []int64{5}, dups: 1, forced: 1,
		},
		{
			name: "every lane lost its way: Gap unless it continues", stream: trade,
			offers: []offer{{0, 1, false}, {0, 2, true}, {0, 5, true}},
			want:   []int64{1, 2, 5}, gaps: []int64{5},
		},
		{
			name: "monotonic ids: in line where both delivered the same", stream: top,
			offers: []offer{{0, 10, false}, {1, 10, false}, {0, 20, false}, {1, 30, true}, {0, 30, false}, {1, 40, false}, {0, 40, false}},
			want:   []int64{10, 20, 30, 40}, dups: 3,
		},
		{
			name: "same bytes: in line where the lane in line reaches what was held", stream: linear,
			offers: []offer{{0, 1, false}, {1, 1, false}, {0, 2, false}, {1, 3, true}, {0, 3, false}, {1, 4, false}, {0, 4, false}, {1, 4, false}},
			want:   []int64{1, 2, 3, 4}, dups: 4,
		},
		{
			name: "no identity: by event time", stream: ticker,
			offers: []offer{{0, 100, false}, {1, 100, false}, {1, 200, false}, {0, 200, false}, {0, 300, true}},
			want:   []int64{100, 200, 300}, dups: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var d Dialect = binance.Spot
			if tc.stream == linear {
				d = bybit.Linear
			}
			rec := newRecorder()
			m := NewTestMerger(t, d, rec, 2, tc.hold)
			for _, o := range tc.offers {
				msg := hub.Message{Stream: tc.stream, Gap: o.gap, Data: fmt.Appendf(nil, `{"id":%d}`, o.id)}
				switch tc.stream {
				case trade:
					msg.ID = hub.EventID{Hi: o.id, Prev: o.id - 1}
				case top:
					msg.ID = hub.EventID{Hi: o.id}
				case ticker:
					msg.EventTime = o.id
				}
				if err := m.Offer(t.Context(), o.lane, msg); err != nil {
					t.Fatal(err)
				}
			}
			var got, gaps []int64
			for i, msg := range rec.get(tc.stream) {
				var id int64
				fmt.Sscanf(string(msg.Data), `{"id":%d}`, &id)
				got = append(got, id)
				if msg.Gap {
					gaps = append(gaps, id)
				}
				if msg.Seq != uint64(i+1) {
					t.Errorf("message %d has Seq %d; want %d", i, msg.Seq, i+1)
				}
			}
			if !slices.Equal(got, tc.want) || !slices.Equal(gaps, tc.gaps) {
				t.Errorf("published %v with Gap on %v; want %v with Gap on %v", got, gaps, tc.want, tc.gaps)
			}
			if st := m.Stats(); st.Duplicates != tc.dups || st.Forced != tc.forced || st.Merged != int64(len(tc.want)) {
				t.Errorf("stats %+v; want %d merged, %d duplicates, %d forced", st, len(tc.want), tc.dups, tc.forced)
			}
		})
	}
}

// benchLinearTrade is a Bybit linear trade push (one trade), whose UUID
// has no order: the merger tells copies apart by a hash of the bytes.
const benchLinearTrade = `{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1672304486868,"data":[{"T":1672304486865,"s":"BTCUSDT","S":"Buy","v":"0.001","p":"16578.50","L":"PlusTick","i":"20f43950-d8dd-5b31-9112-a178eb6023af","BT":false,"seq":1783284617}]}`

// BenchmarkMerge measures what de-duplication costs per event on top of
// routing it once per lane (BenchmarkRoute): every op offers one new
// event from lane 0 and its copy from lane 1, as two lanes in line do.
// "direct" is the same Publish without a merger (Redundancy 1).
func BenchmarkMerge(b *testing.B) {
	for _, tc := range []struct {
		name, stream string
		d            Dialect
		data         string
	}{
		{"trade-ids", "binance:btcusdt@trade", binance.Spot, benchTrade},
		{"linear-trade-hash", "bybit-linear:publicTrade.BTCUSDT", bybit.Linear, benchLinearTrade},
	} {
		same := tc.d == Dialect(bybit.Linear)
		event := func(data []byte, id int64) hub.Message {
			msg := hub.Message{Stream: tc.stream, Data: data}
			if same {
				binary.LittleEndian.PutUint64(data[len(data)-12:], uint64(id)) // a new event, new bytes
			} else {
				msg.ID = hub.EventID{Hi: id, Prev: id - 1}
			}
			return msg
		}
		b.Run(tc.name+"/direct", func(b *testing.B) {
			pub := &countPublisher{}
			data := []byte(tc.data)
			ctx := context.Background()
			var id int64
			b.ReportAllocs()
			for b.Loop() {
				id++
				pub.Publish(ctx, event(data, id))
			}
		})
		b.Run(tc.name+"/lanes=2", func(b *testing.B) {
			pub := &countPublisher{}
			m := NewTestMerger(b, tc.d, pub, 2, 0)
			data := []byte(tc.data)
			ctx := context.Background()
			var id int64
			b.ReportAllocs()
			for b.Loop() {
				id++
				msg := event(data, id)
				m.Offer(ctx, 0, msg)
				m.Offer(ctx, 1, msg)
			}
			if st := m.Stats(); st.Merged != id || st.Duplicates != id {
				b.Fatalf("stats %+v after %d events; want each merged once and dropped once", st, id)
			}
		})
	}
}
