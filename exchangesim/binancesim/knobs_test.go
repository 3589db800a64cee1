package binancesim

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/marketgate/marketgate/internal/waitfor"
)

// Knobs a gateway soak test relies on: DropAll under reconnect churn and a
// lifetime counted from the accept.

// TestDropAllWhileReconnecting calls DropAll repeatedly and concurrently
// while clients keep reconnecting, as a gateway soak test does.
func TestDropAllWhileReconnecting(t *testing.T) {
	t.Parallel()
	ts := startFutures(t, Config{TickInterval: fast, MaxMessagesPerSecond: 1000, MaxConnectionAttempts: -1})
	const clients = 4
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := tryDial(t, ts.wsURL("/public/stream?streams=btcusdt@depth@100ms"))
				if err != nil {
					continue
				}
				// Read until the drop ends the connection.
				for {
					if _, err := c.next(2 * time.Second); err != nil {
						break
					}
				}
				c.nc.Close()
			}
		})
	}
	var drops sync.WaitGroup
	for range 3 {
		drops.Go(func() {
			for range 15 {
				ts.DropAll()
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	drops.Wait()
	close(stop)
	// A client may be dialling while a drop runs and connect after it:
	// keep dropping until every client has seen its connection end (one
	// left open would read until the pong timeout, minutes later).
	clientsDone := make(chan struct{})
	go func() { wg.Wait(); close(clientsDone) }()
	for done := false; !done; {
		ts.DropAll()
		select {
		case <-clientsDone:
			done = true
		case <-time.After(50 * time.Millisecond):
		}
	}
	waitfor.Cond(t, 5*time.Second, func() error {
		if n := ts.OpenConnections(); n != 0 {
			return fmt.Errorf("%d connections open", n)
		}
		return nil
	})
	all := ts.Clients()
	if ts.Accepted() != len(all) || len(all) < clients*2 {
		t.Errorf("Accepted() = %d, %d clients; want equal and >= %d", ts.Accepted(), len(all), clients*2)
	}
	for _, st := range all {
		if !st.Closed || st.Violations() != 0 {
			t.Errorf("client %d: closed %v, violations %d (%+v)", st.ID, st.Closed, st.Violations(), st)
		}
	}
}

// TestLifetimeFromAccept checks that MaxLifetime is counted from the
// accept: a client rotating a little sooner is never cut, one that stays
// is closed on time.
func TestLifetimeFromAccept(t *testing.T) {
	const life, slack = 600 * time.Millisecond, 400 * time.Millisecond
	ts := startFutures(t, Config{TickInterval: fast, MaxLifetime: life})
	// A client that rotates at half the lifetime closes first, every time.
	for range 2 {
		c := dial(t, ts.wsURL("/public/stream?streams=btcusdt@depth@100ms"))
		rotate := time.Now().Add(life / 2)
		for time.Now().Before(rotate) {
			c.data(time.Until(rotate) + time.Second)
		}
		c.write(ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, "rotate"))
		if st := waitClosed(t, ts.Server); st.ClosedBy != byClient {
			t.Fatalf("rotating client closed by %s %d %q; want by client", st.ClosedBy, st.CloseCode, st.CloseReason)
		}
	}
	// One that stays is closed at the lifetime, not before.
	start := time.Now()
	c := dial(t, ts.wsURL("/public/ws"))
	if Accepted := ts.Accepted(); Accepted != 3 {
		t.Errorf("Accepted() = %d; want 3", Accepted)
	}
	code, reason := c.expectClose(3 * time.Second)
	el := time.Since(start)
	if code != ws.StatusGoingAway || reason != closeLifetimeReason {
		t.Errorf("close = %d %q; want 1001 %q", code, reason, closeLifetimeReason)
	}
	if el < life || el > life+slack {
		t.Errorf("closed %v after dialing; want within [%v, %v]", el, life, life+slack)
	}
}
