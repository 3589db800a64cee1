package upstream

import (
	"slices"
	"strings"
	"time"

	"github.com/marketgate/marketgate/internal/latency"
)

// State is the lifecycle state of a feed or of one of its connections, as
// shown by [Status].
type State string

// The states of a feed and its connections.
const (
	StateIdle       State = "idle"       // Run has not been called
	StateLoading    State = "loading"    // loading the symbol list
	StateConnecting State = "connecting" // dialling
	StateConnected  State = "connected"  // connection up
	StateBackoff    State = "backoff"    // waiting to reconnect
	StateStopped    State = "stopped"    // Run returned
)

// Status is a snapshot of a feed for the control API.
type Status struct {
	// Exchange is the exchange name, e.g. "binance".
	Exchange string `json:"exchange"`
	// State is the feed's state: once connecting, "connected" when every
	// shard is, else the state of the first shard that is not.
	State State `json:"state"`
	// Streams counts streams the exchange confirmed on the connections
	// that subscribe (one per shard).
	Streams int `json:"streams"`
	// PendingStreams counts streams with a request in flight.
	PendingStreams int `json:"pending_streams"`
	// Desired counts streams in the desired set, lingering ones included.
	Desired int `json:"desired"`
	// Failed lists desired streams that are not subscribed because the
	// exchange refused them or their symbol does not trade; sorted by
	// stream.
	Failed []FailedStream `json:"failed,omitempty"`
	// Rejected counts names Subscribe dropped (invalid or over the limit).
	Rejected int `json:"rejected"`
	// Symbols counts the trading symbols known.
	Symbols int `json:"symbols"`
	// Connections counts open connections, those being replaced included.
	Connections int `json:"connections"`
	// Shards describes each connection slot, by endpoint.
	Shards []ShardStatus `json:"shards"`
	// ConnectedSince is when the first shard's connection was established;
	// zero while it is disconnected.
	ConnectedSince time.Time `json:"connected_since,omitzero"`
	// Reconnects counts connections made after one ended unplanned.
	Reconnects int `json:"reconnects"`
	// Rotations counts connections replaced before their lifetime ended.
	Rotations int `json:"rotations"`
	// HandoverOverflows counts streams that switched connections with Gap
	// because their handover buffer was full.
	HandoverOverflows int `json:"handover_overflows"`
	// Closes counts the close frames received from the exchange, by close
	// code (1008 is "Too many requests" or "Pong timeout").
	Closes map[int]int `json:"closes,omitempty"`
	// AttemptWaits counts the times the connection-attempt budget was
	// spent and a dial had to wait.
	AttemptWaits int `json:"attempt_waits"`
	// LastError says why the last connection (attempt) ended.
	LastError string `json:"last_error,omitempty"`
	// LastErrorAt is when it ended.
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// LastEventAt is the newest exchange event time the feed published
	// (the events' E), and LagMillis how long before the status that was:
	// how far behind the exchange the feed is, the clocks' skew included.
	// Zero when no event carried a time yet.
	LastEventAt time.Time `json:"last_event_at,omitzero"`
	LagMillis   float64   `json:"lag_ms,omitempty"`
	// MessagesIn counts the text messages read from the exchange, by the
	// type of the stream each was routed to (the dialect's Kinds, e.g.
	// "trade", "bookTicker"), or "other" for those routed to none:
	// replies, heartbeats, events of streams no longer subscribed,
	// unreadable messages. Types not seen yet are absent.
	MessagesIn map[string]int64 `json:"messages_in,omitempty"`
	// BytesIn counts the bytes of those messages (WebSocket payloads), by
	// the same keys.
	BytesIn map[string]int64 `json:"bytes_in,omitempty"`
	// Malformed counts the messages from the exchange that could not be
	// parsed (such as an event whose brackets do not match); they are
	// dropped, never relayed.
	Malformed int64 `json:"malformed"`
	// InternalErrors counts panics recovered in the feed's goroutines;
	// each ended its connection, which was made again.
	InternalErrors int64 `json:"internal_errors"`
	// Redundancy is the number of lanes carrying each stream (1 without
	// redundancy), and LanesUp how many of them have every connection up.
	Redundancy int `json:"redundancy,omitempty"`
	LanesUp    int `json:"lanes_up,omitempty"`
	// Dedup is what the merging of the lanes counted; absent without
	// redundancy.
	Dedup RedundancyStats `json:"dedup,omitzero"`
	// RequestLatency is the time from sending each SUBSCRIBE or
	// UNSUBSCRIBE to its reply; requests that time out are not in it.
	RequestLatency latency.Snapshot `json:"-"`
}

// ShardStatus describes one shard: a connection slot of an endpoint.
type ShardStatus struct {
	// Lane is the lane of a redundant feed the shard belongs to (0 to
	// Redundancy−1); each lane has its own shards. Absent for lane 0.
	Lane int `json:"lane,omitempty"`
	// Endpoint is the path of the endpoint, e.g. "/stream".
	Endpoint string `json:"endpoint"`
	// Shard numbers the endpoint's shards from 0, in creation order.
	Shard int `json:"shard"`
	// State is the state of its connection.
	State State `json:"state"`
	// Assigned counts the streams assigned to it.
	Assigned int `json:"assigned"`
	// Limit is the number of streams it may carry.
	Limit int `json:"limit"`
	// Streams counts the streams confirmed on its connection.
	Streams int `json:"streams"`
	// PendingStreams counts the streams with a request in flight.
	PendingStreams int `json:"pending_streams"`
	// Rotating reports a replacement in progress.
	Rotating bool `json:"rotating,omitempty"`
	// ConnectedSince is when its connection was established.
	ConnectedSince time.Time `json:"connected_since,omitzero"`
}

// FailedStream is a desired stream that is not subscribed, and why.
type FailedStream struct {
	// Stream is the exchange stream name.
	Stream string `json:"stream"`
	// Error is the reason, as sent to its subscribers in the Err message.
	Error string `json:"error"`
}

// Status returns a snapshot of the feed's state. A redundant feed's
// counts of connections, streams, shards, messages and closes cover every
// lane; its desired and failed streams and its state are lane 0's.
func (f *Feed) Status() Status {
	st := f.laneStatus()
	st.Redundancy = 1 + len(f.lanes)
	if st.State == StateConnected {
		st.LanesUp = 1
	}
	if f.merge == nil {
		return st
	}
	st.Dedup = f.merge.stats()
	for _, l := range f.lanes {
		ls := l.laneStatus()
		if ls.State == StateConnected {
			st.LanesUp++
		}
		st.Connections += ls.Connections
		st.Streams += ls.Streams
		st.PendingStreams += ls.PendingStreams
		st.Reconnects += ls.Reconnects
		st.Rotations += ls.Rotations
		st.HandoverOverflows += ls.HandoverOverflows
		st.Malformed += ls.Malformed
		st.InternalErrors += ls.InternalErrors
		st.Shards = append(st.Shards, ls.Shards...)
		st.MessagesIn = addCounts(st.MessagesIn, ls.MessagesIn)
		st.BytesIn = addCounts(st.BytesIn, ls.BytesIn)
		st.Closes = addCounts(st.Closes, ls.Closes)
	}
	return st
}

// addCounts adds the counts of b to a, which it returns.
func addCounts[K comparable, N int | int64](a, b map[K]N) map[K]N {
	if a == nil && len(b) > 0 {
		a = make(map[K]N, len(b))
	}
	for k, n := range b {
		a[k] += n
	}
	return a
}

// laneStatus returns the status of one lane of the feed.
func (f *Feed) laneStatus() Status {
	st := Status{
		Exchange:          f.name,
		Symbols:           f.symbols.len(),
		HandoverOverflows: int(f.overflows.Load()),
		AttemptWaits:      f.limiter.waitCount(),
	}
	m := f.metrics()
	st.RequestLatency = m.reqLatency.Snapshot()
	st.MessagesIn, st.BytesIn = m.in.snapshot()
	st.Malformed, st.InternalErrors = m.malformed.Load(), m.panics.Load()
	f.mu.Lock()
	defer f.mu.Unlock()
	st.State = f.state
	st.Rejected = f.rejected
	st.Reconnects = f.reconnects
	st.Rotations = f.rotations
	if len(f.closes) > 0 {
		st.Closes = make(map[int]int, len(f.closes))
		for c, n := range f.closes {
			st.Closes[c] = n
		}
	}
	if f.lastErr != nil {
		st.LastError, st.LastErrorAt = f.lastErr.Error(), f.lastErrAt
	}
	if e := f.m.lastEvent.Load(); e > 0 {
		st.LastEventAt = time.UnixMicro(e)
		st.LagMillis = float64(time.Since(st.LastEventAt).Microseconds()) / 1000
	}
	for name, s := range f.streams {
		if !s.wanted {
			continue
		}
		st.Desired++
		if s.failed != "" {
			st.Failed = append(st.Failed, FailedStream{Stream: name, Error: s.failed})
		}
	}
	slices.SortFunc(st.Failed, func(x, y FailedStream) int { return strings.Compare(x.Stream, y.Stream) })
	connected := true
	for _, ep := range f.endpoints {
		for _, sh := range ep.shards {
			ss := ShardStatus{
				Lane:           f.lane,
				Endpoint:       ep.path,
				Shard:          sh.id,
				State:          sh.state,
				Assigned:       len(sh.streams),
				Limit:          sh.limit,
				Rotating:       sh.rot != nil,
				ConnectedSince: sh.connectedSince,
			}
			if sh.cur != nil {
				ss.Streams, ss.PendingStreams = sh.cur.counts()
				st.Connections++
			}
			if sh.old != nil {
				st.Connections++
			}
			st.Streams += ss.Streams
			st.PendingStreams += ss.PendingStreams
			if st.ConnectedSince.IsZero() && ep.idx == 0 && sh.persistent {
				st.ConnectedSince = sh.connectedSince
			}
			if connected && sh.state != StateConnected && st.State == StateConnecting {
				connected = false
				if sh.state != StateIdle {
					st.State = sh.state
				}
			}
			st.Shards = append(st.Shards, ss)
		}
	}
	if connected && st.State == StateConnecting {
		st.State = StateConnected
	}
	return st
}
