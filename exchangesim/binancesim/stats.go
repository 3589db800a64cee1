package binancesim

import (
	"maps"
	"slices"
	"time"
)

// ClientStats describes one connection: its identity, its close and what
// it sent. Violation counters count frames or events that are not
// well-formed requests within limits; see [ClientStats.Violations].
type ClientStats struct {
	ID        uint64    // assigned in accept order, from 1
	Remote    string    // the client's address
	Path      string    // request URI of the handshake, query included
	Connected time.Time // accept time (Config.Now clock)

	Closed      bool   // the TCP connection is closed
	CloseCode   int    // the close code sent (or echoed); 1006 when no close frame was exchanged
	CloseReason string // the reason sent by the side that started the close
	ClosedBy    string // "server", "client" or "network" (the TCP connection failed or ended without a close frame)

	Messages int            // incoming messages counted toward the rate limit
	Requests map[string]int // requests with a known method, by method, successful or not

	InvalidJSON     int // code 3 replies
	MissingMethod   int // code 2 "missing field `method`", or not a JSON object
	UnknownMethod   int // method not one of the five, or not a string
	InvalidID       int // id missing, or not an int64, alphanumeric string ≤36 or null
	InvalidParams   int // bad params: wrong type, property errors (codes 0, 1, 2), duplicate fields
	InvalidStreams  int // malformed stream names (one per refused request; one per name in a URL) and well-formed streams of unlisted symbols (one per stream)
	TooManyStreams  int // code 4 replies
	RateLimitClosed int // 1 if closed with "Too many requests"
	PongTimeouts    int // 1 if closed with "Pong timeout"
	BadPongs        int // pongs with a payload matching no outstanding ping
	ProtocolErrors  int // 1 if closed for a WebSocket protocol error (1002), bad UTF-8 (1007) or a too large frame (1009)
	SlowClosed      int // 1 if closed as a slow consumer
	// WrongRoute counts streams subscribed (in the URL or by SUBSCRIBE) on
	// a futures route that does not serve them, e.g. btcusdt@aggTrade on
	// /public or btcusdt@depth on /market or an unrouted path. Binance
	// accepts them and never sends their data, so this is the
	// only trace of the mistake. Always 0 in spot mode.
	WrongRoute int

	UnsolicitedPongs int // empty pongs matching no ping: allowed by Binance, not a violation
	Redundant        int // SUBSCRIBE of a subscribed stream or UNSUBSCRIBE of an absent one: allowed, not a violation

	Streams int // streams currently subscribed
}

// Violations sums the counters that mark client misbehaviour.
func (c ClientStats) Violations() int {
	return c.InvalidJSON + c.MissingMethod + c.UnknownMethod + c.InvalidID + c.InvalidParams +
		c.InvalidStreams + c.TooManyStreams + c.RateLimitClosed + c.PongTimeouts + c.BadPongs +
		c.ProtocolErrors + c.SlowClosed + c.WrongRoute
}

// Clients returns the stats of every connection ever accepted, in accept
// order.
func (s *Server) Clients() []ClientStats {
	s.mu.Lock()
	recs := make([]clientRecord, len(s.clients))
	for k, r := range s.clients {
		recs[k] = *r
	}
	s.mu.Unlock()
	out := make([]ClientStats, len(recs))
	for k, r := range recs {
		if r.conn != nil {
			out[k] = r.conn.stats()
		} else {
			out[k] = r.final
			out[k].Requests = maps.Clone(r.final.Requests)
		}
	}
	return out
}

// Accepted returns the number of connections accepted since [New]: the
// length of [Server.Clients] without copying every connection's stats.
// Like Clients it counts a connection before its 101 response is
// written, so it is current as soon as a client's dial returns.
func (s *Server) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.clients)
}

// OpenConnections returns the number of accepted connections that are not
// fully closed yet: those of [Server.Clients] with Closed false.
func (s *Server) OpenConnections() int {
	s.mu.Lock()
	var live []*conn
	for _, r := range s.clients {
		if r.conn != nil {
			live = append(live, r.conn)
		}
	}
	s.mu.Unlock()
	n := 0
	for _, c := range live {
		c.cmu.Lock()
		if !c.closed {
			n++
		}
		c.cmu.Unlock()
	}
	return n
}

// Violations returns the sum of [ClientStats.Violations] over every client
// plus the refused handshakes ([Server.Rejections]), plus, with
// [Config.StrictBook], [RESTStats.Violations].
func (s *Server) Violations() int {
	n := s.Rejections()
	if s.cfg.StrictBook {
		n += s.RESTStats().Violations
	}
	for _, c := range s.Clients() {
		n += c.Violations()
	}
	return n
}

// Rejections returns the number of WebSocket handshakes refused with an
// HTTP error: unknown path (404, /private in futures mode included), bad
// timeUnit or too many URL streams (400), too many attempts (429),
// shutting down (503).
func (s *Server) Rejections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rejections
}

// Subscriptions returns, for every stream some open connection holds, the
// number of connections holding it. Streams of unlisted symbols are
// included: they are what the client asked for. It reflects a SUBSCRIBE or
// UNSUBSCRIBE before the client can read its reply, and a connection's URL
// streams before its handshake completes.
func (s *Server) Subscriptions() map[string]int {
	return s.reg.counts()
}

// clientRecord is one entry of the connection history: the live
// connection while it is open, its final stats once it is closed (so a
// closed connection's buffers can be collected).
type clientRecord struct {
	conn  *conn
	final ClientStats
}

// addConn records a connection being accepted in the history.
func (s *Server) addConn(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.rec = &clientRecord{conn: c}
	s.clients = append(s.clients, c.rec)
}

// openConn makes an upgraded connection reachable by DropAll, CloseAll,
// SendServerShutdown and shutdown. It reports false if Run is shutting
// down, in which case the caller closes the connection.
func (s *Server) openConn(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.open = append(s.open, c)
	return !s.stopped
}

// forgetConn drops a connection whose upgrade failed from the history.
func (s *Server) forgetConn(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients = slices.DeleteFunc(s.clients, func(r *clientRecord) bool { return r == c.rec })
}

// removeConn freezes a closed connection's stats.
func (s *Server) removeConn(c *conn) {
	final := c.stats()
	s.mu.Lock()
	defer s.mu.Unlock()
	c.rec.final, c.rec.conn = final, nil
	if i := slices.Index(s.open, c); i >= 0 {
		s.open = slices.Delete(s.open, i, i+1)
	}
}
