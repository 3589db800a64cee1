package hub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/marketgate/marketgate/internal/pause"
	"github.com/redis/go-redis/v9"
)

// readLoop reads the messages of c and queues them for deliverLoop until
// ctx ends or c is closed, then closes out. go-redis reconnects and
// resubscribes inside Receive; the loop backs off while that fails. When
// delivery falls behind, the full queue stops the reads, and Redis holds
// the messages in its output buffer for the connection (or drops the
// connection when that exceeds its client-output-buffer-limit).
func (r *Redis) readLoop(ctx context.Context, c *subConn, out chan<- *redis.Message) {
	defer close(out)
	var failures int
	bo := newBackoff()
	for {
		v, err := c.ps.Receive(ctx)
		if ctx.Err() != nil || errors.Is(err, redis.ErrClosed) {
			return
		}
		if err != nil {
			c.mu.Lock()
			c.recvErr = fmt.Errorf("subscriber connection: %w", err)
			c.mu.Unlock()
			if failures == 0 {
				r.unconfirm(c) // messages are lost until it is back
				r.log.Warn("redis subscriber connection down", "group", c.group, "err", err)
			}
			failures++
			if !pause.For(ctx, bo.Next()) {
				return
			}
			continue
		}
		if failures > 0 {
			r.log.Info("redis subscriber connection up again", "group", c.group, "failures", failures)
			failures = 0
			bo.Reset()
			c.mu.Lock()
			c.recvErr = nil
			c.mu.Unlock()
			c.resync.Store(true)
			select {
			case r.wake <- struct{}{}:
			default:
			}
		}
		switch v := v.(type) {
		case *redis.Message:
			select {
			case out <- v:
			case <-ctx.Done():
				return
			}
		case *redis.Pong:
			c.pongMu.Lock()
			if w := c.pongWaiters[v.Payload]; w != nil {
				close(w)
				delete(c.pongWaiters, v.Payload)
			}
			c.pongMu.Unlock()
		}
	}
}

// deliverLoop hands the messages readLoop queued to the receivers and
// flushes the receivers it gave messages each time the queue runs empty,
// the end of what the reads brought (see [Receiver]). It returns when in
// is closed. A receiver's panic is recovered and logged; delivery goes on.
func (r *Redis) deliverLoop(c *subConn, in <-chan *redis.Message) {
	var touched []Receiver // given a message since their last Flush
	for m := range in {
		touched = r.dispatch(c, m, touched)
	burst:
		for {
			select {
			case m, ok := <-in:
				if !ok {
					break burst
				}
				touched = r.dispatch(c, m, touched)
			default:
				break burst
			}
		}
		g := r.guard()
		for _, rc := range touched {
			g.flush(rc)
		}
		clear(touched)
		touched = touched[:0]
	}
}

// dispatch hands one received Redis message to the local receivers of its
// stream, adding them to touched, or takes it as a probe.
func (r *Redis) dispatch(c *subConn, m *redis.Message, touched []Receiver) []Receiver {
	if m.Channel == c.probeCh {
		if m.Payload == r.token {
			now := time.Now()
			c.mu.Lock()
			c.acked, c.lastAck = true, now
			c.mu.Unlock()
		}
		return touched
	}
	msg, err := decodeFrame(m.Payload)
	if err == nil && (!strings.HasPrefix(m.Channel, c.prefix) || m.Channel[len(c.prefix):] != msg.Stream) {
		err = fmt.Errorf("frame of stream %q on channel %q", msg.Stream, m.Channel)
	}
	if err != nil {
		// Log the 1st, 2nd, 4th, 8th... so a flood cannot flood the log.
		if n := r.decodeErrors.Add(1); n&(n-1) == 0 {
			r.log.Warn("dropped malformed redis message", "channel", m.Channel, "err", err, "count", n)
		}
		return touched
	}
	r.received.Add(1)
	r.mu.RLock()
	e := r.subs[msg.Stream]
	var rs []Receiver
	if e != nil {
		rs = e.rs
		msg.Stream = e.key
	}
	r.mu.RUnlock()
	g := r.guard()
	for _, rc := range rs {
		g.receive(rc, msg)
		// Receivers are few (one downstream server per node), so a
		// linear search beats a map.
		if !slices.Contains(touched, rc) {
			touched = append(touched, rc)
		}
	}
	return touched
}

// guard returns what recovers the receivers' panics.
func (r *Redis) guard() receiverGuard { return receiverGuard{log: r.log, panics: &r.panics} }
