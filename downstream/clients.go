package downstream

import (
	"cmp"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// ClientInfo describes one open browser connection, for the control API.
type ClientInfo struct {
	// ID is the connection's id on this node, as logged under "conn".
	ID uint64 `json:"id"`
	// Remote is the client's address as the listener saw it (a proxy's,
	// behind one).
	Remote string `json:"remote"`
	// Origin is the handshake's Origin header; empty for non-browsers.
	Origin string `json:"origin"`
	// User is the sub of the connection's token; empty without one (or
	// for a token without sub).
	User string `json:"user,omitempty"`
	// Protocol is "native" (/ws) or "binance" (the dialect under /binance/).
	Protocol string `json:"protocol"`
	// Streams lists the stream keys the client is subscribed to, sorted.
	Streams []string `json:"streams"`
	// QueueBytes is the size of the frames waiting in its write queue.
	QueueBytes int `json:"queue_bytes"`
	// Drops counts the messages dropped from its queue because a newer
	// value of their stream replaced them (it read too slowly).
	Drops int64 `json:"drops"`
	// ConnectedSince is when its handshake completed.
	ConnectedSince time.Time `json:"connected_since"`
}

// The values of [ClientInfo.Protocol].
const (
	ProtocolNative  = "native"
	ProtocolBinance = "binance"
)

// OperatorCloseReason is the close reason [Server.Disconnect] sends when
// it is given none.
const OperatorCloseReason = "disconnected by operator"

// Clients returns the open connections sorted by id, from offset on and
// at most limit of them (every one from offset when limit <= 0), and the
// number of open connections. A connection whose close handshake has begun
// is not listed. The listing is a snapshot: connections come and go while
// it is taken.
func (s *Server) Clients(offset, limit int) (page []ClientInfo, total int) {
	open := s.snapshot()
	open = slices.DeleteFunc(open, func(c *conn) bool { return c.state.Load() != stateOpen })
	slices.SortFunc(open, func(a, b *conn) int { return cmp.Compare(a.id, b.id) })
	total = len(open)
	open = open[min(max(offset, 0), total):]
	if limit > 0 && limit < len(open) {
		open = open[:limit]
	}
	page = make([]ClientInfo, 0, len(open))
	for _, c := range open {
		page = append(page, c.info())
	}
	return page, total
}

// Client returns the open connection with id, if there is one.
func (s *Server) Client(id uint64) (ClientInfo, bool) {
	c := s.lookup(id)
	if c == nil {
		return ClientInfo{}, false
	}
	return c.info(), true
}

// Disconnect starts closing the open connection with id: the client gets
// a close frame with 1008 (policy violation) and reason, or
// [OperatorCloseReason] when reason is empty, and leaves its streams at
// once. The close is counted like every other 1008 ("policy_violation").
// It reports false when no open connection has id. It never blocks.
func (s *Server) Disconnect(id uint64, reason string) bool {
	c := s.lookup(id)
	if c == nil {
		return false
	}
	if reason == "" {
		reason = OperatorCloseReason
	}
	c.logAt(slog.LevelInfo, "disconnected by operator", "reason", reason)
	c.closeWith(ws.StatusPolicyViolation, truncateReason(reason))
	return true
}

// lookup returns the open connection with id, or nil.
func (s *Server) lookup(id uint64) *conn {
	s.mu.Lock()
	c := s.conns[id%wheelSlots][id]
	s.mu.Unlock()
	if c == nil || c.state.Load() != stateOpen {
		return nil
	}
	return c
}

// info describes c. It takes c.mu, then c.smu, one after the other.
func (c *conn) info() ClientInfo {
	c.mu.Lock()
	queued := c.queued
	c.mu.Unlock()
	streams := c.subscribed()
	slices.Sort(streams)
	return ClientInfo{
		ID:             c.id,
		Remote:         c.remoteString(),
		Origin:         c.origin,
		User:           c.user(),
		Protocol:       c.proto.name(),
		Streams:        streams,
		QueueBytes:     queued,
		Drops:          c.drops.Load(),
		ConnectedSince: time.Unix(0, c.connected),
	}
}

// maxCloseReason is the longest close reason a close frame carries: its
// payload is at most 125 bytes, two of them the code (RFC 6455 §5.5).
const maxCloseReason = 123

// truncateReason makes reason valid UTF-8 and cuts it to maxCloseReason
// bytes on a rune boundary: a client must fail a close frame whose reason
// is not UTF-8 (RFC 6455 §8.1).
func truncateReason(reason string) string {
	reason = strings.ToValidUTF8(reason, "\uFFFD")
	if len(reason) <= maxCloseReason {
		return reason
	}
	n := maxCloseReason
	for n > 0 && !utf8.RuneStart(reason[n]) {
		n--
	}
	return reason[:n]
}
