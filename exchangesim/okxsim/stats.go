package okxsim

import (
	"maps"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/gobwas/ws"
)

// ClientStats describes one connection and counts what it did wrong.
type ClientStats struct {
	ID          uint64    // in accept order, from 1
	Remote      string    // the client's address
	Path        string    // /ws/v5/public or /ws/v5/business
	Connected   time.Time // accept time
	Closed      bool
	CloseCode   int    // the close code sent or echoed; 0 when the TCP connection just ended
	CloseReason string // its reason

	Requests  int // subscribe and unsubscribe requests within the rate limit
	Pings     int // text "ping" heartbeats
	Redundant int // subscribe of a subscribed stream or unsubscribe of an absent one: allowed

	BadRequests    int // 60012: not JSON, unknown op or field, bad id, args not [{channel, instId}], binary frames
	UnknownStreams int // 60018: a channel or instrument that does not exist
	WrongEndpoint  int // 60018: a channel asked for on the endpoint that does not serve it
	TooLarge       int // a request whose args exceed 64 KB
	RateLimited    int // 60014: requests beyond MaxRequestsPerHour
	TooManyBooks   int // a book channel beyond MaxBookChannels
	IdleClosed     int // 1 if closed for sending nothing for IdleTimeout
	SlowClosed     int // 1 if closed as a slow consumer
	BadFrames      int // 1 if closed for a fragmented, unmasked or too large frame

	Streams int // channels subscribed now
}

// Violations sums the counters that mark client misbehaviour.
func (c ClientStats) Violations() int {
	return c.BadRequests + c.UnknownStreams + c.WrongEndpoint + c.TooLarge + c.RateLimited +
		c.TooManyBooks + c.IdleClosed + c.SlowClosed + c.BadFrames
}

// Clients returns the stats of every connection ever accepted, in accept
// order.
func (s *Server) Clients() []ClientStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ClientStats, len(s.all))
	for i, c := range s.all {
		out[i] = c.stats
		out[i].Streams = len(c.subs)
		if c.stats.Closed {
			out[i].Streams = 0
		}
	}
	return out
}

// Violations returns the sum of [ClientStats.Violations] over every
// connection ever accepted, plus the handshakes refused over the
// connection-attempt limit.
func (s *Server) Violations() int {
	n := s.RefusedAttempts()
	for _, c := range s.Clients() {
		n += c.Violations()
	}
	return n
}

// RefusedAttempts returns the number of WebSocket handshakes refused
// with HTTP 429 for exceeding the per-IP attempt limit.
func (s *Server) RefusedAttempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

// OpenConnections returns the number of connections not yet closed.
func (s *Server) OpenConnections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Subscriptions returns, for every stream ("<channel>:<instId>") some
// open connection holds, the number of connections holding it.
func (s *Server) Subscriptions() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for c := range s.conns {
		for name := range c.subs {
			out[name]++
		}
	}
	return out
}

// Instruments returns the listed instruments.
func (s *Server) Instruments() []string { return slices.Clone(s.order) }

// SendShutdownNotice sends every open connection the notice 64008 ("The
// connection will soon be closed for a service upgrade") and closes each
// of them Config.NoticeGrace later. It returns the number noticed.
func (s *Server) SendShutdownNotice() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := time.Now().Add(s.cfg.NoticeGrace)
	n := 0
	for _, c := range slices.Collect(maps.Keys(s.conns)) {
		if !c.closeAt.IsZero() {
			continue
		}
		c.closeAt = at
		c.enqueue([]byte(`{"event":"notice","code":"64008","msg":"The connection will soon be closed for a service upgrade. Please reconnect.","connId":"` + c.connID + `"}`))
		n++
	}
	return n
}

// DropAll ends every open connection abruptly, without a close frame, as
// a network failure would. It returns the number dropped.
func (s *Server) DropAll() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.close(0, "")
	}
	return len(s.conns)
}

// DropOne ends one open connection, picked at random, abruptly, as
// DropAll ends them all. It reports whether there was one.
func (s *Server) DropOne() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	open := slices.Collect(maps.Keys(s.conns))
	if len(open) == 0 {
		return false
	}
	open[rand.IntN(len(open))].close(0, "")
	return true
}

// CloseAll closes every open connection with code and reason.
func (s *Server) CloseAll(code ws.StatusCode, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.close(code, reason)
	}
}
