package downstream

import (
	"sync/atomic"

	"github.com/gobwas/ws"
)

// closeReasons are the bounded labels connections are closed under.
var closeReasons = []string{
	"eof", "read_error", "write_error", "normal", "going_away", "protocol_error",
	"unsupported_data", "invalid_payload", "policy_violation", "message_too_big",
	"slow_consumer", "keepalive_timeout", "other",
}

// rejectReasons are the bounded labels handshakes are refused under.
var rejectReasons = []string{
	"bad_request", "not_running", "draining", "origin", "max_conns", "per_ip", "handshake", "early_data",
}

// dropReasons are the bounded labels messages are dropped under: conflated
// means a newer message of the same stream replaced it in a slow client's
// write queue.
var dropReasons = []string{"conflated"}

// metrics counts what the server did. Every label set is fixed, so the
// counters stay bounded whatever clients send.
type metrics struct {
	accepted       atomic.Int64
	upgrading      atomic.Int64 // handshakes between reserveSlot and registration
	messages       atomic.Int64 // hub messages fanned out
	superseded     atomic.Int64 // hub messages dropped by topic.admit
	internalErrors atomic.Int64
	closes         map[string]*atomic.Int64
	rejects        map[string]*atomic.Int64
	drops          map[string]*atomic.Int64
}

func newMetrics() *metrics {
	m := &metrics{closes: map[string]*atomic.Int64{}, rejects: map[string]*atomic.Int64{}, drops: map[string]*atomic.Int64{}}
	for _, r := range closeReasons {
		m.closes[r] = new(atomic.Int64)
	}
	for _, r := range rejectReasons {
		m.rejects[r] = new(atomic.Int64)
	}
	for _, r := range dropReasons {
		m.drops[r] = new(atomic.Int64)
	}
	return m
}

func (m *metrics) closed(reason string) {
	if c, ok := m.closes[reason]; ok {
		c.Add(1)
		return
	}
	m.closes["other"].Add(1)
}

func (m *metrics) rejected(reason string) { m.rejects[reason].Add(1) }

// dropped counts n messages dropped for reason, one of dropReasons.
func (m *metrics) dropped(reason string, n int) {
	if n > 0 {
		m.drops[reason].Add(int64(n))
	}
}

// closeReason maps a close code we send to its counter label.
func closeReason(code ws.StatusCode) string {
	switch code {
	case ws.StatusNormalClosure:
		return "normal"
	case ws.StatusGoingAway:
		return "going_away"
	case ws.StatusProtocolError:
		return "protocol_error"
	case ws.StatusUnsupportedData:
		return "unsupported_data"
	case ws.StatusInvalidFramePayloadData:
		return "invalid_payload"
	case ws.StatusPolicyViolation:
		return "policy_violation"
	case ws.StatusMessageTooBig:
		return "message_too_big"
	case StatusSlowConsumer:
		return "slow_consumer"
	}
	return "other"
}

// Stats is a snapshot of the server's counters.
type Stats struct {
	Conns    int   `json:"conns"`
	Accepted int64 `json:"accepted"`
	Messages int64 `json:"messages"`
	// Superseded counts hub messages not fanned out because another
	// publisher of their stream had delivered their event already, or
	// took over (see hub.Message.Origin).
	Superseded int64            `json:"superseded"`
	Closed     map[string]int64 `json:"closed"`
	Rejected   map[string]int64 `json:"rejected"`
	// Dropped counts messages not delivered to a client that stayed
	// connected, by reason.
	Dropped map[string]int64 `json:"dropped"`
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	st := Stats{
		Conns:      s.ConnCount(),
		Accepted:   s.metrics.accepted.Load(),
		Messages:   s.metrics.messages.Load(),
		Superseded: s.metrics.superseded.Load(),
		Closed:     map[string]int64{},
		Rejected:   map[string]int64{},
		Dropped:    map[string]int64{},
	}
	for k, v := range s.metrics.closes {
		st.Closed[k] = v.Load()
	}
	for k, v := range s.metrics.rejects {
		st.Rejected[k] = v.Load()
	}
	for k, v := range s.metrics.drops {
		st.Dropped[k] = v.Load()
	}
	return st
}
