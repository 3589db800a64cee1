package main

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/marketgate/marketgate/book/booktest"
	"github.com/marketgate/marketgate/downstream/downstreamtest"
	"github.com/marketgate/marketgate/internal/waitfor"
)

// followBook keeps stream's book from a native connection to url in the
// background.
func followBook(t *testing.T, url, stream string) *booktest.Follower {
	t.Helper()
	cl := downstreamtest.Dial(t, url)
	cl.Send(fmt.Sprintf(`{"op":"subscribe","id":1,"streams":[%q]}`, stream))
	f := &booktest.Follower{}
	go func() {
		for {
			p, err := cl.Read(time.Minute)
			if err != nil {
				return
			}
			var m struct {
				Stream string          `json:"stream"`
				Data   json.RawMessage `json:"data"`
			}
			if json.Unmarshal(p, &m) == nil && m.Stream == stream {
				f.Apply(m.Data)
			}
		}
	}()
	return f
}

// TestClusterBook: clients of binance:btcusdt@book@20 on three nodes,
// one of them joining late, all keep the same book, equal to the
// simulator's top 20 when the market pauses; the cluster carries the
// diff stream once and fetched one snapshot for all of them.
func TestClusterBook(t *testing.T) {
	c := startCluster(t)
	const stream = "binance:btcusdt@book@20"
	var fs []*booktest.Follower
	for _, g := range c.nodes[:2] {
		fs = append(fs, followBook(t, "ws://"+g.addr+"/ws", stream))
	}
	waitfor.Cond(t, 10*time.Second, func() error {
		if _, _, u, _ := fs[0].Counts(); u < 20 {
			return fmt.Errorf("%d updates", u)
		}
		return nil
	})
	fs = append(fs, followBook(t, "ws://"+c.nodes[2].addr+"/ws", stream)) // joins from the state
	time.Sleep(500 * time.Millisecond)
	c.sim.Pause()
	defer c.sim.Resume()
	_, bids, asks := c.sim.Book("BTCUSDT")
	for i, f := range fs {
		waitfor.Cond(t, 10*time.Second, func() error {
			if d := f.Diff(bids, asks, 20); d != "" {
				return fmt.Errorf("node %d: %s", i+1, d)
			}
			return nil
		})
		if b := f.Broken(); len(b) > 0 {
			t.Errorf("node %d: contract broken: %v", i+1, b)
		}
		if s, gaps, _, _ := f.Counts(); s != 1 || gaps != 0 {
			t.Errorf("node %d: %d snapshots, %d gaps; want 1 and 0", i+1, s, gaps)
		}
	}
	waitfor.Cond(t, 5*time.Second, c.carriedOnce("binance:btcusdt@depth@100ms"))
	if n := c.sim.RESTStats().Requests["/api/v3/depth"]; n != 1 {
		t.Errorf("%d depth snapshots asked of the exchange; want 1 for the cluster", n)
	}
}
