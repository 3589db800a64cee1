// Package cluster lets several identical gateway nodes that share Redis
// carry each stream upstream once, cluster-wide.
//
// Each node registers its demand, the streams its clients want (plus the
// pinned ones), in Redis. For each exchange one node holds a lease and is
// the owner of the exchange's upstream: it carries the union of every live
// node's demand for that exchange through its [Local] (the node's upstream
// router), which publishes into the shared hub, and every node delivers
// from the hub to its own clients. The other nodes carry nothing of that
// exchange and take the lease over when it expires (the owner died) or
// when the owner hands it over ([Node.Handover], make before break).
//
// A [Node] is the downstream server's Source in a cluster:
//
//	node, err := cluster.New(cluster.Config{
//		Client:    rdb, // *redis.Client or *redis.ClusterClient
//		NodeID:    "gw-1",
//		Exchanges: []string{"binance", "binance-futures"},
//		Local:     upstream.NewRouter(spot, futures),
//		Logger:    log,
//	})
//	// downstream.Config{Source: node, …}
//	g.Go(func() error { return node.Run(ctx) })
//	// on SIGTERM, before closing the clients:
//	err = node.Handover(drainCtx)
//
// # Redis keys
//
// All keys start with Config.Prefix and the hash tag "{cluster}", so they
// share one Redis Cluster slot and scripts and MULTI work on a cluster:
//
//	<prefix>{cluster}:nodes               ZSET node → last heartbeat (Unix ms, Redis's clock)
//	<prefix>{cluster}:demand:<node>       SET of stream keys, expires 3 heartbeats after the last
//	<prefix>{cluster}:lease:<exchange>    "<node>|<token>", PX LeaseTTL
//	<prefix>{cluster}:fence:<exchange>    the last fencing token
//	<prefix>{cluster}:handover:<exchange> the owner's lease value while it hands over
//	<prefix>{cluster}:next:<exchange>     the successor's "<node>|<token>" during a handover
//
// # Safety
//
// An owner renews its lease every RenewInterval. It carries only until the
// start of its last successful renewal plus LeaseTTL, on its monotonic
// clock; Redis expires the lease no sooner. A watchdog stops carrying at
// that moment even while a Redis call hangs, so after a partition or a
// Redis crash two nodes carry the same exchange for about LeaseTTL at most.
// A node whose claim ends unsubscribes its streams upstream at once
// ([Local].UnwantNow, no linger) and publishes nothing more of the
// exchange ([Node.Token] is 0). During a handover both carry for
// Config.HandoverOverlap on purpose.
//
// The nodes' wall clocks may differ: heartbeats and the liveness of nodes
// are judged on Redis's clock (TIME in the scripts), lease deadlines on
// each node's monotonic clock. Only their rates are assumed equal.
//
// Each claim takes a fencing token, the highest of the per-exchange
// counter plus one, the highest token the claiming node has seen plus one,
// and Redis's clock in Unix milliseconds. Receivers keep the publisher
// with the highest token, so tokens must never go back: when Redis lost
// its data (a restart without persistence, a failover to a lagging
// replica, FLUSHALL), the clock makes a new token later than every earlier
// one, even if the winner never saw one. Redis needs no persistence for
// that. Only a Redis clock stepped back by more than the time since the
// last claim, together with such a data loss and a winner that saw no
// token, could make a token go back.
//
// # Goroutines and locks
//
// Run owns every goroutine: a heartbeat loop that writes the demand, a
// demand reader, a watchdog, and one lease loop per exchange of
// Config.Exchanges. Local is called only from these, one call at a time
// under the carrier's lock, never under the lock that Want and Unwant take;
// the two locks are never held together. A panic in one of these loops
// (in Local, say) is logged with its stack and ends only the iteration it
// hit: the loop starts again a second later, and what Local did not take
// is offered again.
package cluster
