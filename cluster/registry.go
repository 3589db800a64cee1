package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/marketgate/marketgate/internal/pause"
	"github.com/redis/go-redis/v9"
)

// heartbeatLoop writes this node's demand and heartbeat every
// HeartbeatInterval, and within minWriteGap of a change, until ctx ends;
// then it unregisters the node (unless crashing). After a failed write it
// waits for the next heartbeat, so a Redis outage costs one attempt per
// HeartbeatInterval.
func (n *Node) heartbeatLoop(ctx context.Context) {
	t := time.NewTicker(n.cfg.HeartbeatInterval)
	defer t.Stop()
	var (
		members []any
		args    []any // the script's arguments: TTL, node, members
		version uint64
		last    time.Time
		failed  bool
		joined  bool // a heartbeat has been written
	)
	write := func() {
		var v uint64
		members, v = n.demandSnapshot(members, version)
		if args == nil || v != version {
			args = append(append(make([]any, 0, 2+len(members)), n.liveTTL().Milliseconds(), n.cfg.NodeID), members...)
			version = v
		}
		prev := last
		last = time.Now()
		added, err := n.writeDemand(ctx, args)
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil:
			err = fmt.Errorf("cluster: redis: heartbeat: %w", err)
			prev := n.health.Load()
			h := &health{err: err}
			if prev != nil {
				h.ok = prev.ok
			}
			n.health.Store(h)
			if !failed {
				n.log.Warn("cluster coordination down", "err", err)
			}
			failed = true
		default:
			n.health.Store(&health{ok: time.Now()})
			if failed {
				n.log.Info("cluster coordination up again")
			} else if added && joined {
				// Not after an outage: the heartbeats came too late
				// (by Redis's clock) or Redis lost its data.
				n.log.Warn("this node's heartbeat had been removed from the cluster registry: owners left its demand out until now",
					"since_previous_heartbeat", last.Sub(prev).Round(time.Millisecond))
			}
			failed, joined = false, true
		}
	}
	write()
	for {
		select {
		case <-ctx.Done():
			n.unregister(ctx)
			return
		case <-t.C:
			write()
		case <-n.dirty:
			if failed {
				continue // the ticker paces retries
			}
			if d := minWriteGap - time.Since(last); d > 0 && !pause.For(ctx, d) {
				n.unregister(ctx)
				return
			}
			write()
		}
	}
}

// liveTTL is how long a node and its demand outlive its last heartbeat.
func (n *Node) liveTTL() time.Duration { return liveBeats * n.cfg.HeartbeatInterval }

// writeDemand replaces this node's demand set in Redis and renews its
// heartbeat on Redis's clock, in one script (args: see heartbeatScript),
// and removes the nodes whose heartbeat is overdue. It reports whether
// this node was missing from the registry.
func (n *Node) writeDemand(ctx context.Context, args []any) (added bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, n.opTimeout)
	defer cancel()
	key := n.keys.demand(n.cfg.NodeID)
	res, err := heartbeatScript.Run(ctx, n.cfg.Client, []string{n.keys.nodes(), key}, args...).Int64()
	if err != nil {
		return false, fmt.Errorf("write %s: %w", key, err)
	}
	return res == 1, nil
}

// unregister removes this node's demand and heartbeat from Redis when Run
// ends, unless the node is crashing (then they expire).
func (n *Node) unregister(ctx context.Context) {
	if n.crash.Load() {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.opTimeout)
	defer cancel()
	_, err := n.cfg.Client.TxPipelined(cctx, func(p redis.Pipeliner) error {
		p.Del(cctx, n.keys.demand(n.cfg.NodeID))
		p.ZRem(cctx, n.keys.nodes(), n.cfg.NodeID)
		return nil
	})
	if err != nil {
		n.log.Warn("unregister from the cluster; the registration expires by itself", "err", err)
	}
}

// readLoop reads the cluster's demand every PollInterval while this node
// holds a valid claim on some exchange, and at once when kicked (a claim
// was won), and hands it to the carrier.
func (n *Node) readLoop(ctx context.Context) {
	t := time.NewTicker(n.cfg.PollInterval)
	defer t.Stop()
	failed := false
	for {
		if n.carrier.valid() {
			union, err := n.readUnion(ctx)
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				if !failed {
					n.log.Warn("read the cluster's demand", "err", err)
				}
				failed = true
			default:
				failed = false
				n.carrier.setUnion(union)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-n.kick:
		}
	}
}

// readUnion returns the union of the live nodes' demand, grouped by
// exchange and restricted to Config.Exchanges.
func (n *Node) readUnion(ctx context.Context) (map[string]map[string]struct{}, error) {
	ctx, cancel := context.WithTimeout(ctx, n.opTimeout)
	defer cancel()
	live, err := n.liveNodes(ctx)
	if err != nil {
		return nil, err
	}
	if len(live) == 0 {
		return map[string]map[string]struct{}{}, nil
	}
	keys := make([]string, len(live))
	for i, b := range live {
		keys[i] = n.keys.demand(b.id)
	}
	members, err := n.cfg.Client.SUnion(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("sunion of %d nodes' demand: %w", len(keys), err)
	}
	return groupByExchange(members, n.known), nil
}
