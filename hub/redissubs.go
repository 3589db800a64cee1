package hub

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/marketgate/marketgate/internal/backoff"
	"github.com/redis/go-redis/v9"
)

// subManager owns the subscriber connections and the Redis side of the
// subscriptions. Only its run goroutine uses its fields.
type subManager struct {
	r  *Redis
	wg *sync.WaitGroup
	// conns maps a group (-1 in standalone mode) to its connection.
	conns map[int]*subConn
	// inRedis holds the streams the connections' go-redis channel sets may
	// contain: SUBSCRIBE was attempted last, not UNSUBSCRIBE.
	inRedis map[string]bool
	// retry holds streams whose last command failed; their command is sent
	// again even if inRedis already matches.
	retry    map[string]struct{}
	failures int
	// bo paces the retries of failed commands.
	bo backoff.Backoff
}

// run applies subscription changes until ctx ends, then closes the
// connections, which ends their receive loops.
func (m *subManager) run(ctx context.Context) {
	defer func() {
		for _, c := range m.conns {
			_ = c.ps.Close()
		}
	}()
	m.conn(ctx, m.r.homeGroup())
	var retryC <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.r.wake:
		case <-retryC:
		}
		retryC = nil
		if !m.apply(ctx) {
			m.failures++
			retryC = time.After(m.bo.Next())
		} else if m.failures > 0 {
			m.r.log.Info("redis subscriptions restored")
			m.failures = 0
			m.bo.Reset()
		}
	}
}

// change is one stream whose Redis subscription may need a command.
type change struct {
	stream string
	want   bool // whether the stream has local receivers
}

// apply sends the commands that bring Redis in line with the receiver map
// and reports whether all of them succeeded.
func (m *subManager) apply(ctx context.Context) bool {
	r := m.r
	r.mu.Lock()
	changes := make([]change, 0, len(r.dirty)+len(m.retry))
	for s := range r.dirty {
		_, want := r.subs[s]
		changes = append(changes, change{s, want})
	}
	for s := range m.retry {
		if _, dup := r.dirty[s]; !dup {
			_, want := r.subs[s]
			changes = append(changes, change{s, want})
		}
	}
	clear(r.dirty)
	r.mu.Unlock()
	// Connections that broke and are back: go-redis resubscribed their
	// channels before anything else, so a PING round trip confirms them.
	var resync []*subConn
	for _, c := range m.conns {
		if c.resync.Swap(false) {
			resync = append(resync, c)
		}
	}
	retry := m.retry
	m.retry = make(map[string]struct{})

	type ops struct{ sub, unsub []string }
	byGroup := map[int]*ops{}
	// confirmed are the streams whose subscription is in place in Redis:
	// those subscribed by an earlier command (which was confirmed, or it
	// would be retried) and those subscribed now, once confirmed.
	var confirmed []string
	for _, c := range changes {
		_, force := retry[c.stream]
		if c.want == m.inRedis[c.stream] && !force {
			if c.want {
				confirmed = append(confirmed, c.stream)
			}
			continue
		}
		g := -1
		if r.cluster {
			g = groupOf(c.stream, r.cfg.Groups)
		}
		o := byGroup[g]
		if o == nil {
			o = &ops{}
			byGroup[g] = o
		}
		if c.want {
			o.sub = append(o.sub, c.stream)
		} else {
			o.unsub = append(o.unsub, c.stream)
		}
	}

	ok := true
	defer func() {
		// Only what is still subscribed, by a command that went through:
		// a stream unsubscribed meanwhile may have a new entry already.
		keep := confirmed[:0]
		for _, s := range confirmed {
			if _, again := m.retry[s]; m.inRedis[s] && !again {
				keep = append(keep, s)
			}
		}
		r.confirm(keep)
	}()
	for _, c := range resync {
		if err := m.syncConn(ctx, c); err != nil {
			if ctx.Err() != nil {
				return true
			}
			c.resync.Store(true)
			ok = false
			continue
		}
		confirmed = append(confirmed, r.streamsOf(c)...)
	}
	for g, o := range byGroup {
		c := m.conn(ctx, g)
		var subscribed []string
		for chunk := range slices.Chunk(o.sub, r.cfg.BatchSize) {
			if ctx.Err() != nil {
				return true
			}
			// go-redis adds the channels to the connection's set even on
			// failure and resubscribes the set on every reconnect.
			for _, s := range chunk {
				m.inRedis[s] = true
			}
			if err := m.command(ctx, c, true, chunk); err != nil {
				ok = false
			} else {
				subscribed = append(subscribed, chunk...)
			}
		}
		if len(subscribed) > 0 {
			if err := m.syncConn(ctx, c); err != nil {
				if ctx.Err() != nil {
					return true
				}
				ok = false
				r.subscribeErrors.Add(1)
				for _, s := range subscribed {
					m.retry[s] = struct{}{}
				}
				if m.failures == 0 {
					r.log.Warn("redis subscription not confirmed, retrying", "group", c.group, "err", err)
				}
			} else {
				confirmed = append(confirmed, subscribed...)
			}
		}
		for chunk := range slices.Chunk(o.unsub, r.cfg.BatchSize) {
			if ctx.Err() != nil {
				return true
			}
			for _, s := range chunk {
				delete(m.inRedis, s)
			}
			if err := m.command(ctx, c, false, chunk); err != nil {
				ok = false
			}
		}
	}
	return ok
}

// command sends one (S)SUBSCRIBE or (S)UNSUBSCRIBE for streams on c and
// queues the streams for a retry if it fails.
func (m *subManager) command(ctx context.Context, c *subConn, sub bool, streams []string) error {
	r := m.r
	chans := make([]string, len(streams))
	for i, s := range streams {
		chans[i] = c.prefix + s
	}
	cctx, cancel := context.WithTimeout(ctx, subscribeTimeout)
	defer cancel()
	var err error
	switch {
	case sub && r.cluster:
		err = c.ps.SSubscribe(cctx, chans...)
	case sub:
		err = c.ps.Subscribe(cctx, chans...)
	case r.cluster:
		err = c.ps.SUnsubscribe(cctx, chans...)
	default:
		err = c.ps.Unsubscribe(cctx, chans...)
	}
	if err == nil || ctx.Err() != nil {
		return nil
	}
	r.subscribeErrors.Add(1)
	for _, s := range streams {
		m.retry[s] = struct{}{}
	}
	verb := "unsubscribe"
	if sub {
		verb = "subscribe"
	}
	err = fmt.Errorf("%s %d channels: %w", verb, len(chans), err)
	if m.failures == 0 {
		r.log.Warn("redis subscription change failed, retrying", "group", c.group, "err", err)
	}
	return err
}

// conn returns the connection of group g, opening it and starting its
// reader and delivery goroutines the first time. The connection subscribes to the group's
// probe channel before anything else: in cluster mode go-redis picks the
// node of a (re)connection from the first channel of its set, so the set
// is never empty.
func (m *subManager) conn(ctx context.Context, g int) *subConn {
	if c := m.conns[g]; c != nil {
		return c
	}
	r := m.r
	c := &subConn{group: g, home: g == r.homeGroup(), opened: time.Now(), pongWaiters: make(map[string]chan struct{})}
	if r.cluster {
		c.prefix = r.groupPrefix[g]
	} else {
		c.prefix = r.cfg.Prefix
	}
	c.probeCh = c.prefix + probeStream + r.cfg.NodeID
	cctx, cancel := context.WithTimeout(ctx, subscribeTimeout)
	// A failure here leaves the channel in the set; the receive loop
	// connects and subscribes it, and the prober reports the failure.
	if r.cluster {
		c.ps = r.client.SSubscribe(cctx, c.probeCh)
	} else {
		c.ps = r.client.Subscribe(cctx, c.probeCh)
	}
	cancel()
	m.conns[g] = c
	r.connsMu.Lock()
	if c.home {
		r.conns = slices.Insert(r.conns, 0, c)
	} else {
		r.conns = append(r.conns, c)
	}
	r.connsMu.Unlock()
	q := make(chan *redis.Message, deliverQueue)
	m.wg.Go(func() { r.readLoop(ctx, c, q) })
	m.wg.Go(func() { r.deliverLoop(c, q) })
	return c
}
