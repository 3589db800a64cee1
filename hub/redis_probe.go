package hub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
)

// Ready returns nil while the last probe came back in time on every
// subscriber connection, and otherwise an error saying why:
// "redis: starting" until the first probe returns; the network or Redis
// error while the subscriber connection or the probe's publish fails
// ("redis: probe: dial tcp 127.0.0.1:6380: connect: connection refused",
// "redis: subscriber connection: EOF"); "redis: probe not received for
// 3.2s" when probes are overdue; "redis: stopped" once Run has returned.
// In cluster mode the message names the group of the connection. Ready
// does no I/O.
func (r *Redis) Ready() error {
	switch r.state.Load() {
	case hubNew:
		return ErrStarting
	case hubStopped:
		return errors.New("redis: stopped")
	}
	r.connsMu.Lock()
	conns := slices.Clone(r.conns)
	r.connsMu.Unlock()
	if len(conns) == 0 {
		return ErrStarting
	}
	now := time.Now()
	for _, c := range conns {
		if err := c.health(now, r.cfg.ProbeTimeout); err != nil {
			if errors.Is(err, ErrStarting) {
				return err
			}
			if c.group >= 0 {
				return fmt.Errorf("redis: group %d: %w", c.group, err)
			}
			return fmt.Errorf("redis: %w", err)
		}
	}
	return nil
}

// health reports why c is not healthy at now, or nil.
func (c *subConn) health(now time.Time, timeout time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.recvErr != nil:
		return c.recvErr
	case c.probeErr != nil:
		return c.probeErr
	case !c.acked && c.home:
		if d := now.Sub(c.opened); d > timeout {
			return fmt.Errorf("probe not received for %v", d.Round(100*time.Millisecond))
		}
		return ErrStarting
	}
	last := c.lastAck
	if !c.acked {
		last = c.opened // a connection opened later gets one timeout to start
	}
	if d := now.Sub(last); d > timeout {
		return fmt.Errorf("probe not received for %v", d.Round(100*time.Millisecond))
	}
	return nil
}

// probeLoop publishes a probe on every subscriber connection each
// ProbeInterval, in one pipeline, and records the outcome per connection.
// The ticker paces it while Redis is down.
func (r *Redis) probeLoop(ctx context.Context) {
	t := time.NewTicker(r.cfg.ProbeInterval)
	defer t.Stop()
	for {
		r.probe(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probe sends one round of probes.
func (r *Redis) probe(ctx context.Context) {
	r.connsMu.Lock()
	conns := slices.Clone(r.conns)
	r.connsMu.Unlock()
	if len(conns) == 0 {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, r.cfg.ProbeTimeout)
	defer cancel()
	pipe := r.client.Pipeline()
	cmds := make([]*redis.IntCmd, len(conns))
	for i, c := range conns {
		if r.cluster {
			cmds[i] = pipe.SPublish(pctx, c.probeCh, r.token)
		} else {
			cmds[i] = pipe.Publish(pctx, c.probeCh, r.token)
		}
	}
	_, _ = pipe.Exec(pctx) // errors are per command
	if ctx.Err() != nil {
		return
	}
	for i, c := range conns {
		err := cmds[i].Err()
		if err != nil {
			err = fmt.Errorf("probe: %w", err)
		}
		c.mu.Lock()
		c.probeErr = err
		c.mu.Unlock()
	}
}
