package okx

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/marketgate/marketgate/exchangesim/okxsim"
	"github.com/marketgate/marketgate/exchangesim/okxsim/simtest"
	"github.com/marketgate/marketgate/hub"
	"github.com/marketgate/marketgate/internal/waitfor"
	"github.com/marketgate/marketgate/upstream"
)

// TestFeedRedundancyDrops: with Redundancy 2, dropping one of the
// public connections at a time, three times, costs OKX's book updates no link of
// their prevSeqId chain and the trades no repeat, with no Gap anywhere;
// the lanes' second snapshots are not published again.
func TestFeedRedundancyDrops(t *testing.T) {
	sim, addr := simtest.Start(t, okxsim.Config{TickInterval: 20 * time.Millisecond, BookLevels: 20, IdleTimeout: time.Second})
	rec := &recorder{msgs: map[string][]hub.Message{}}
	d := V5
	d.every = 300 * time.Millisecond // within the simulator's 1 s idle timeout
	f := runFeed(t, upstream.Config{
		Dialect: d, URL: "ws://" + addr, RESTURL: "http://" + addr, Publisher: rec,
		RequestInterval: 50 * time.Millisecond, ReplyTimeout: 2 * time.Second, Redundancy: 2,
		// Drops come faster than a session needs to count as stable
		// (2 s), so a connection dropped again and again keeps its
		// backoff growing: capped below the waits further down.
		BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second,
	})
	names := []string{"trades:BTC-USDT", "trades:ETH-USDT", "books:BTC-USDT", "books:ETH-USDT"}
	f.Subscribe(names)
	waitMore(t, rec, names, 3)
	// Drops land on any connection, /ws/v5/business (idle here) included:
	// drop until three public connections carrying the streams went.
	dropped := func() int {
		n := 0
		for _, c := range sim.Clients() {
			if c.Closed && c.Path == "/ws/v5/public" {
				n++
			}
		}
		return n
	}
	for i := 0; dropped() < 3; i++ {
		if i == 20 {
			t.Fatalf("%d drops of public connections in 20; want 3", dropped())
		}
		waitfor.Cond(t, 15*time.Second, func() error {
			if st := f.Status(); st.LanesUp != 2 || st.Streams != 2*len(names) {
				return fmt.Errorf("%d lanes up, %d streams", st.LanesUp, st.Streams)
			}
			return nil
		})
		waitMore(t, rec, names, 3) // the rejoined lane is in line
		if !sim.DropOne() {
			t.Fatal("DropOne: no connection open")
		}
		waitMore(t, rec, names, 3)
	}
	for name, n := range checkStreams(t, rec, names) {
		t.Errorf("%s: %d gaps over drops of one lane; want none", name, n)
	}
	for _, name := range names[2:] {
		snapshots := 0
		for _, m := range rec.get("okx:" + name) {
			var b bookMsg
			if err := json.Unmarshal(m.Data, &b); err == nil && b.Action == "snapshot" {
				snapshots++
			}
		}
		if snapshots != 1 {
			t.Errorf("%s: %d snapshots published; want the first only", name, snapshots)
		}
	}
	// The third dropped lane may still be reconnecting.
	waitfor.Cond(t, 15*time.Second, func() error {
		if st := f.Status(); st.Dedup.Duplicates == 0 || st.Reconnects < 3 {
			return fmt.Errorf("status dedup %+v, %d reconnects; want duplicates dropped and 3 reconnects", st.Dedup, st.Reconnects)
		}
		return nil
	})
	if n := sim.Violations(); n != 0 {
		t.Errorf("simulator violations = %d", n)
	}
}
