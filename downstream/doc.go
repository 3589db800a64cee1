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
// Lock order: conn.mu (write queue), then conn.smu (its streams), then
// registry.mu (topics), then whatever the hub and the [Source] take inside
// Subscribe, Unsubscribe, Want and Unwant. Those calls therefore must not
// block and must not deliver messages (call Receive) synchronously. conn.rmu
// is taken only by a connection's read task, before any of the others.
package downstream
