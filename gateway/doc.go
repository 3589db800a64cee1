// Package gateway composes one node of the market-data gateway from its
// parts: the exchange feeds (upstream), the router that sends each stream
// key to its exchange, the hub (in-process, or Redis in a cluster), the
// demand (what clients want plus the operator's pins), the cluster node
// with its fencing tokens, the browser-facing server (downstream), and the
// web, control (admin) and metrics (telemetry) listeners.
//
// The exchanges come from one table, [Exchanges]: each entry names an
// exchange and holds its feed constructor, the defaults and help of its
// settings, the options only it has and the simulator --demo runs.
// cmd/marketgate makes its flags from the table, so adding an exchange is
// one entry there, plus its upstream package and its simulator.
//
// Use:
//
//	g, err := gateway.New(gateway.Config{
//		Listener:  ln,
//		Exchanges: map[string]upstream.Config{"binance": {}},
//		Logger:    log,
//	})
//	if err != nil {
//		return err
//	}
//	return g.Run(ctx) // until ctx ends and the node has drained
//
// New builds everything and starts nothing; Run runs every part in one
// errgroup and, once ctx ends (or POST /api/v1/drain), drains: it takes
// no more clients, hands a cluster node's upstreams over, and closes the
// browsers with 1001 so that they reconnect elsewhere.
//
// On one node the clients' wants and the pins are merged by an
// internal/demand Set in front of the router. In a cluster (Config.Redis)
// [cluster.Node] merges them the same way and registers the union in
// Redis; the owner of each exchange's lease carries what any node wants,
// and stamps its messages with the lease's fencing token from the
// [cluster.Tokens] it shares with the node, so that receivers prefer the
// newest owner.
package gateway
