package upstream_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/marketgate/marketgate/upstream"

	"github.com/marketgate/marketgate/exchangesim/binancesim"
	"github.com/marketgate/marketgate/hub"
	"github.com/marketgate/marketgate/internal/waitfor"
)

// hubRecorder is a hub.Receiver that keeps, by stream, how many data
// messages it got and the Err messages.
type hubRecorder struct {
	mu   sync.Mutex
	data map[string]int
	errs map[string][]string
}

func newHubRecorder() *hubRecorder {
	return &hubRecorder{data: map[string]int{}, errs: map[string][]string{}}
}

func (r *hubRecorder) Receive(m hub.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m.Err != "" {
		r.errs[m.Stream] = append(r.errs[m.Stream], m.Err)
		return
	}
	r.data[m.Stream]++
}

func (r *hubRecorder) Flush() {}

func (r *hubRecorder) counts(stream string) (data int, errs []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.data[stream], append([]string(nil), r.errs[stream]...)
}

// subscribeThrough subscribes rec to the hub keys of names.
func subscribeThrough(t *testing.T, h hub.Hub, rec hub.Receiver, names []string) {
	t.Helper()
	for _, n := range names {
		if err := h.Subscribe(t.Context(), "binance:"+n, rec); err != nil {
			t.Fatal(err)
		}
	}
}

// waitOverLimit waits until the stream names[2] got an Err naming the
// limit through the hub, while names[:2] carry data.
func waitOverLimit(t *testing.T, rec *hubRecorder, names []string) {
	t.Helper()
	waitfor.Cond(t, 5*time.Second, func() error {
		for _, n := range names[:2] {
			if d, errs := rec.counts("binance:" + n); d == 0 || len(errs) > 0 {
				return fmt.Errorf("%s: %d data messages, errors %q", n, d, errs)
			}
		}
		_, errs := rec.counts("binance:" + names[2])
		if len(errs) == 0 {
			return fmt.Errorf("%s: no Err message", names[2])
		}
		if !strings.Contains(errs[0], "stream limit") || !strings.Contains(errs[0], names[2]) {
			return fmt.Errorf("%s: Err %q; want the stream limit, naming the stream", names[2], errs[0])
		}
		return nil
	})
}

// TestSubscribeOverCapacityFails checks that a stream Subscribe cannot
// place (MaxShards × MaxStreams are taken) fails with an Err message to
// its subscribers instead of vanishing.
func TestSubscribeOverCapacityFails(t *testing.T) {
	_, addr := startSim(t, binancesim.Config{TickInterval: 20 * time.Millisecond})
	h := hub.NewMemory()
	b := newSimBinance(t, addr, h, func(c *Config) { c.MaxShards, c.MaxStreams = 1, 2 })
	runBinance(t, b)
	names := []string{"btcusdt@trade", "ethusdt@trade", "bnbusdt@trade"}
	rec := newHubRecorder()
	subscribeThrough(t, h, rec, names)
	b.Subscribe(names) // what a cluster owner's carrier does with a batch of wants
	waitOverLimit(t, rec, names)
	st := b.Status()
	if len(st.Failed) != 1 || st.Failed[0].Stream != names[2] || st.Rejected != 1 {
		t.Errorf("status failed %+v, rejected %d; want %s failed and counted", st.Failed, st.Rejected, names[2])
	}
}

// TestClusterOwnerOverCapacityFails is the cluster's shape of it: a
// non-owner node validates against its lazy feed, which has room, while
// the owner's feed is full; the owner's Err must reach the hub, where
// the non-owner's browsers are subscribed.
func TestClusterOwnerOverCapacityFails(t *testing.T) {
	_, addr := startSim(t, binancesim.Config{TickInterval: 20 * time.Millisecond})
	h := hub.NewMemory()
	owner := newSimBinance(t, addr, h, func(c *Config) { c.MaxShards, c.MaxStreams, c.Lazy = 1, 2, true })
	other := newSimBinance(t, addr, h, func(c *Config) { c.MaxShards, c.MaxStreams, c.Lazy = 1, 2, true })
	runBinance(t, owner)
	runBinance(t, other)
	names := []string{"btcusdt@trade", "ethusdt@trade", "bnbusdt@trade"}
	rec := newHubRecorder()
	subscribeThrough(t, h, rec, names)
	waitfor.Cond(t, 5*time.Second, other.Ready)
	for _, n := range names {
		if err := other.Validate(n); err != nil {
			t.Fatalf("non-owner Validate(%s) = %v; want room", n, err)
		}
	}
	owner.Subscribe(names[:2])
	waitfor.Cond(t, 5*time.Second, func() error {
		for _, n := range names[:2] {
			if d, _ := rec.counts("binance:" + n); d == 0 {
				return fmt.Errorf("%s: no data", n)
			}
		}
		return nil
	})
	owner.Subscribe(names[2:])
	waitOverLimit(t, rec, names)
	if st := other.Status(); st.Desired != 0 || st.Connections != 0 {
		t.Errorf("non-owner status %+v; want nothing carried", st)
	}
}

// TestUnknownSymbolRefreshes checks that a stream whose symbol the feed
// does not know, subscribed without Validate (as a cluster owner gets
// streams that other nodes validated), fails and asks for a refresh of
// the symbol list, so a newly listed symbol works at the next try.
func TestUnknownSymbolRefreshes(t *testing.T) {
	_, addr := startSim(t, binancesim.Config{TickInterval: 20 * time.Millisecond})
	info := newExchangeInfoServer(t, `{"symbols":[{"symbol":"BTCUSDT","status":"TRADING"}]}`)
	h := hub.NewMemory()
	b := newSimBinance(t, addr, h, func(c *Config) {
		c.RESTURL = info.URL
		c.SymbolMissRefresh = 50 * time.Millisecond
	})
	runBinance(t, b)
	waitfor.Cond(t, 5*time.Second, b.Ready)
	info.set(`{"symbols":[{"symbol":"BTCUSDT","status":"TRADING"},{"symbol":"SOLUSDT","status":"TRADING"}]}`) // listed since
	time.Sleep(60 * time.Millisecond)                                                                         // past SymbolMissRefresh
	rec := newHubRecorder()
	names := []string{"solusdt@trade"}
	subscribeThrough(t, h, rec, names)
	b.Subscribe(names)
	waitfor.Cond(t, 5*time.Second, func() error {
		if _, errs := rec.counts("binance:solusdt@trade"); len(errs) == 0 || !strings.Contains(errs[0], "unknown symbol") {
			return fmt.Errorf("errors %q; want unknown symbol", errs)
		}
		if n := b.Status().Symbols; n != 2 {
			return fmt.Errorf("%d symbols known (%d fetches); want the refreshed 2", n, info.hits.Load())
		}
		return nil
	})
	b.Subscribe(names) // the next try
	waitfor.Cond(t, 5*time.Second, func() error {
		if d, _ := rec.counts("binance:solusdt@trade"); d == 0 {
			return fmt.Errorf("no data")
		}
		return nil
	})
}
