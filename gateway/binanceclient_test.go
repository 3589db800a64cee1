package gateway

import (
	"context"
	"strconv"
	"testing"
	"time"

	binanceapi "github.com/adshao/go-binance/v2"

	"github.com/marketgate/marketgate/exchangesim/binancesim"
)

// TestBinanceClientLibrary points an unchanged Binance client library
// (github.com/adshao/go-binance) at the gateway for both REST and
// WebSocket and keeps a local book by Binance's own procedure: buffer the
// @depth@100ms events, GET /api/v3/depth, drop what the snapshot holds,
// check that the first event left straddles it and that each next one
// starts where the last ended. With the market paused the book equals the
// simulator's, level for level; the library's snapshot cost the exchange
// nothing (the one depth call is the gateway's own, for its kept book).
func TestBinanceClientLibrary(t *testing.T) {
	sim, simAddr := startSim(t, binancesim.Config{Symbols: []string{"BTCUSDT", "ETHUSDT"}, TickInterval: 20 * time.Millisecond, Seed: 3})
	addr := startGateway(t, simAddr, Config{})
	oldWS := binanceapi.BaseWsMainURL
	binanceapi.BaseWsMainURL = "ws://" + addr + "/binance/ws"
	t.Cleanup(func() { binanceapi.BaseWsMainURL = oldWS })

	events := make(chan *binanceapi.WsDepthEvent, 100_000)
	errs := make(chan error, 1)
	_, stop, err := binanceapi.WsDepthServe100Ms("BTCUSDT", func(e *binanceapi.WsDepthEvent) { events <- e },
		func(err error) {
			select {
			case errs <- err:
			default:
			}
		})
	if err != nil {
		t.Fatalf("WsDepthServe100Ms: %v", err)
	}
	defer close(stop)
	next := func() *binanceapi.WsDepthEvent {
		t.Helper()
		select {
		case e := <-events:
			return e
		case err := <-errs:
			t.Fatalf("depth stream: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("no depth event within 10s")
		}
		return nil
	}
	client := binanceapi.NewClient("", "")
	client.BaseURL = "http://" + addr + "/binance"
	first := next() // subscribed and buffering
	var snap *binanceapi.DepthResponse
	for try := 0; ; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		snap, err = client.NewDepthService().Symbol("BTCUSDT").Limit(1000).Do(ctx)
		cancel()
		if err != nil {
			t.Fatalf("depth: %v", err)
		}
		if snap.LastUpdateID >= first.FirstUpdateID-1 || try == 5 {
			break // Binance: fetch again while lastUpdateId < the first buffered U
		}
	}
	bids, asks := map[string]string{}, map[string]string{}
	set := func(side map[string]string, p, q string) {
		if f, _ := strconv.ParseFloat(q, 64); f == 0 {
			delete(side, p)
		} else {
			side[p] = q
		}
	}
	for _, l := range snap.Bids {
		set(bids, l.Price, l.Quantity)
	}
	for _, l := range snap.Asks {
		set(asks, l.Price, l.Quantity)
	}
	id := snap.LastUpdateID
	applied := 0
	apply := func(e *binanceapi.WsDepthEvent) {
		t.Helper()
		if e.LastUpdateID <= id {
			return // in the snapshot already
		}
		if applied == 0 && !(e.FirstUpdateID <= id+1 && id+1 <= e.LastUpdateID) {
			t.Fatalf("first event %d-%d does not straddle the snapshot's %d", e.FirstUpdateID, e.LastUpdateID, id)
		}
		if applied > 0 && e.FirstUpdateID != id+1 {
			t.Fatalf("event %d-%d after %d: a gap", e.FirstUpdateID, e.LastUpdateID, id)
		}
		for _, l := range e.Bids {
			set(bids, l.Price, l.Quantity)
		}
		for _, l := range e.Asks {
			set(asks, l.Price, l.Quantity)
		}
		id = e.LastUpdateID
		applied++
	}
	apply(first)
	for applied < 50 {
		apply(next())
	}
	sim.Pause()
	defer sim.Resume()
	want, wantBids, wantAsks := sim.Book("BTCUSDT")
	for id < want {
		apply(next())
	}
	if id != want {
		t.Fatalf("local book at %d; the simulator's at %d", id, want)
	}
	check := func(side string, got map[string]string, want [][2]string) {
		if len(got) != len(want) {
			t.Errorf("%d %s levels; want %d", len(got), side, len(want))
		}
		for _, l := range want {
			if got[l[0]] != l[1] {
				t.Errorf("%s %s = %q; want %q", side, l[0], got[l[0]], l[1])
			}
		}
	}
	check("bid", bids, wantBids)
	check("ask", asks, wantAsks)
	t.Logf("local book of %d bids and %d asks equal to the simulator's at update %d after %d events", len(bids), len(asks), id, applied)
	if n := sim.RESTStats().Requests["/api/v3/depth"]; n != 1 {
		t.Errorf("%d depth calls reached the exchange; want 1 (the gateway's own snapshot)", n)
	}
}
