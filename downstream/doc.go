// Package downstream serves browser WebSockets: the gateway's native
// protocol at /ws and the Binance-compatible dialect under /binance/.
//
// A [Server] takes the handshake from net/http, then moves the connection
// to an epoll poller (easygo's, on the connection's own descriptor): an idle
// connection owns no goroutine and no buffer. A bounded worker pool reads a
// connection when epoll reports it readable and flushes its write queue
// when it has frames. Each hub message is framed once per wire form and the
// same bytes are queued on every subscriber.
//
// Stream frames queued by Receive wait for the hub's Flush, which ends the
// burst they came in; then every connection that got some is flushed with
// one writev for all of them, by the pool, in chunks of connections.
//
// Lock order: conn.mu (write queue), then conn.smu (its streams), then
// registry.mu (topics), then whatever the hub and the [Source] take inside
// Subscribe, Unsubscribe, Want and Unwant. Those calls therefore must not
// block and must not deliver messages (call Receive) synchronously. conn.rmu
// is taken only by a connection's read task, before any of the others.
// Server.pmu (the connections waiting for Flush) is taken under conn.mu
// and takes only Server.cmu (free flush tasks) and roundLog.mu (rounds in
// flight), which take nothing.
package downstream
