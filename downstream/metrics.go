package downstream

import (
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/marketgate/marketgate/internal/latency"
)

// fanoutBounds are the bucket bounds of the fan-out duration: 50 µs to
// 1 s, finer than latency.FanOut at the low end where a light burst ends.
var fanoutBounds = []time.Duration{
	50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second,
}

// closeReasons are the bounded labels connections are closed under.
var closeReasons = []string{
	"eof", "read_error", "write_error", "normal", "going_away", "protocol_error",
	"unsupported_data", "invalid_payload", "policy_violation", "message_too_big",
	"slow_consumer", "keepalive_timeout", "unauthorized", "token_expired", "user_conn_limit", "try_again_later", "other",
}

// rejectReasons are the bounded labels handshakes are refused under.
var rejectReasons = []string{
	"bad_request", "not_running", "draining", "origin", "max_conns", "per_ip", "handshake", "early_data",
}

// dropReasons are the bounded labels messages are dropped under: conflated
// means a newer message of the same stream replaced it in a slow client's
// write queue.
var dropReasons = []string{"conflated", "catchup"}

// commandOps are the bounded labels client commands are counted under: the
// native protocol's ops, the Binance dialect's methods, and "other" for
// anything else a client sends (an unknown or missing op, unreadable
// JSON). Only these strings ever become labels, whatever the client sent.
var commandOps = [...]string{
	opSubscribe:        "subscribe",
	opUnsubscribe:      "unsubscribe",
	opList:             "list",
	opPing:             "ping",
	opAuth:             "auth",
	opDialectSubscribe: "SUBSCRIBE",
	opDialectUnsub:     "UNSUBSCRIBE",
	opDialectList:      "LIST_SUBSCRIPTIONS",
	opDialectSetProp:   "SET_PROPERTY",
	opDialectGetProp:   "GET_PROPERTY",
	opOther:            "other",
}

// cmdOp indexes commandOps.
type cmdOp uint8

const (
	opSubscribe cmdOp = iota
	opUnsubscribe
	opList
	opPing
	opAuth
	opDialectSubscribe
	opDialectUnsub
	opDialectList
	opDialectSetProp
	opDialectGetProp
	opOther
	numOps
)

// nativeOp returns the label of a native command's op.
func nativeOp(op string) cmdOp {
	switch op {
	case "subscribe":
		return opSubscribe
	case "unsubscribe":
		return opUnsubscribe
	case "list":
		return opList
	case "ping":
		return opPing
	case "auth":
		return opAuth
	}
	return opOther
}

// dialectOp returns the label of a Binance dialect method.
func dialectOp(method string) cmdOp {
	switch method {
	case "SUBSCRIBE":
		return opDialectSubscribe
	case "UNSUBSCRIBE":
		return opDialectUnsub
	case "LIST_SUBSCRIPTIONS":
		return opDialectList
	case "SET_PROPERTY":
		return opDialectSetProp
	case "GET_PROPERTY":
		return opDialectGetProp
	}
	return opOther
}

// metrics counts what the server did. Every label set is fixed, so the
// counters stay bounded whatever clients send.
type metrics struct {
	accepted       atomic.Int64
	upgrading      atomic.Int64 // handshakes between reserveSlot and registration
	messages       atomic.Int64 // hub messages fanned out
	superseded     atomic.Int64 // hub messages dropped by topic.admit
	catchupErrors  atomic.Int64 // history reads that failed (see recover.go)
	internalErrors atomic.Int64
	refusedStreams atomic.Int64            // subscribe commands refused by a node or address stream limit, or by the hub
	framesOut      atomic.Int64            // stream frames queued on clients
	bytesOut       atomic.Int64            // their bytes
	commands       [numOps][2]atomic.Int64 // [op][0 ok, 1 error]
	latency        *latency.Histogram      // exchange event time to fan-out
	fanout         *latency.Histogram      // receive to the last frame's write; see round
	writes         atomic.Int64            // write system calls to clients
	closes         map[string]*atomic.Int64
	rejects        map[string]*atomic.Int64
	drops          map[string]*atomic.Int64
	auth           map[string]*atomic.Int64 // by authResults
}

func newMetrics() *metrics {
	m := &metrics{
		latency: latency.New(latency.FanOut...),
		fanout:  latency.New(fanoutBounds...),
		closes:  map[string]*atomic.Int64{}, rejects: map[string]*atomic.Int64{}, drops: map[string]*atomic.Int64{},
	}
	for _, r := range closeReasons {
		m.closes[r] = new(atomic.Int64)
	}
	for _, r := range rejectReasons {
		m.rejects[r] = new(atomic.Int64)
	}
	for _, r := range dropReasons {
		m.drops[r] = new(atomic.Int64)
	}
	m.auth = make(map[string]*atomic.Int64, len(authResults))
	for _, r := range authResults {
		m.auth[r] = new(atomic.Int64)
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

// authResult counts one auth outcome, one of authResults.
func (m *metrics) authResult(result string) { m.auth[result].Add(1) }

// command counts one client command by its op and whether it succeeded.
func (m *metrics) command(op cmdOp, ok bool) {
	r := 1
	if ok {
		r = 0
	}
	m.commands[op][r].Add(1)
}

// fannedOut counts one hub message queued as frames frames of size bytes
// in all, and observes the time since its exchange event when known
// (eventTime in Unix microseconds; 0 is unknown). Receive calls it once
// per message, not per subscriber.
func (m *metrics) fannedOut(frames, size int, eventTime int64) {
	m.messages.Add(1)
	if frames > 0 {
		m.framesOut.Add(int64(frames))
		m.bytesOut.Add(int64(size))
	}
	if eventTime > 0 {
		m.latency.Observe(time.Duration(time.Now().UnixMicro()-eventTime) * time.Microsecond)
	}
}

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
	case StatusUnauthorized:
		return "unauthorized"
	case StatusTokenExpired:
		return "token_expired"
	case StatusUserConnLimit:
		return "user_conn_limit"
	case statusTryAgainLater:
		return "try_again_later"
	}
	return "other"
}

// Stats is a snapshot of the server's counters.
type Stats struct {
	Conns int `json:"conns"`
	// Streams counts the streams with local subscribers.
	Streams  int   `json:"streams"`
	Accepted int64 `json:"accepted"`
	// Messages counts hub messages fanned out to local subscribers.
	Messages int64 `json:"messages"`
	// Superseded counts hub messages not fanned out because a message at
	// the same position or a later one was delivered already (a message
	// that came twice).
	Superseded int64 `json:"superseded"`
	// HistoryErrors counts the stream history reads that failed while a
	// subscribe caught up.
	HistoryErrors int64            `json:"history_errors"`
	Closed        map[string]int64 `json:"closed"`
	Rejected      map[string]int64 `json:"rejected"`
	// Dropped counts messages not delivered to a client that stayed
	// connected, by reason.
	Dropped map[string]int64 `json:"dropped"`
	// FramesOut counts the stream frames queued on clients at fan-out,
	// one per subscriber of each message (replies and control frames not
	// included), and BytesOut their bytes, WebSocket headers included. A
	// frame queued on a connection that then closes still counts.
	FramesOut int64 `json:"frames_out"`
	BytesOut  int64 `json:"bytes_out"`
	// Commands counts client commands by op (see commandOps: the native
	// ops, the dialect's methods, "other").
	Commands map[string]CommandCount `json:"commands"`
	// Auth counts authentication outcomes by result (see authResults in
	// auth.go): tokens accepted, refreshed, refused and why, connections
	// closed at expiry, subscribes refused as forbidden. No user ids.
	Auth map[string]int64 `json:"auth"`
	// InternalErrors counts what should not happen: a full worker queue,
	// a panic.
	InternalErrors int64 `json:"internal_errors"`
	// StreamsRefused counts subscribe commands refused because they would
	// take the node's or a client address's distinct streams past their
	// limit, or because the hub refused a new stream.
	StreamsRefused int64 `json:"streams_refused"`
	// FanOutLatency is the time from each message's exchange event time
	// (hub.Message.EventTime, when known) to its fan-out here, once per
	// message: exchange clock against ours, so it includes their skew.
	FanOutLatency latency.Snapshot `json:"-"`
	// FanOutDuration is, per message with local subscribers, the time
	// from its arrival here (from the exchange or the hub) to the end of
	// the writes that handed its last subscriber's frame to the kernel.
	// Frames a full socket buffer held back (slow clients, retried later)
	// are not waited for.
	FanOutDuration latency.Snapshot `json:"-"`
	// Writes counts the write system calls to clients (writev on Linux);
	// FramesOut/Writes is the frames per write.
	Writes int64 `json:"writes"`
}

// CommandCount counts the commands of one op by outcome.
type CommandCount struct {
	OK    int64 `json:"ok"`
	Error int64 `json:"error"`
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	s.topics.mu.RLock()
	streams := len(s.topics.topics)
	s.topics.mu.RUnlock()
	st := Stats{
		Conns:          s.ConnCount(),
		Streams:        streams,
		Accepted:       s.metrics.accepted.Load(),
		Messages:       s.metrics.messages.Load(),
		Superseded:     s.metrics.superseded.Load(),
		HistoryErrors:  s.metrics.catchupErrors.Load(),
		Closed:         map[string]int64{},
		Rejected:       map[string]int64{},
		Dropped:        map[string]int64{},
		Auth:           make(map[string]int64, len(authResults)),
		FramesOut:      s.metrics.framesOut.Load(),
		BytesOut:       s.metrics.bytesOut.Load(),
		Commands:       make(map[string]CommandCount, numOps),
		InternalErrors: s.metrics.internalErrors.Load(),
		StreamsRefused: s.metrics.refusedStreams.Load(),
		FanOutLatency:  s.metrics.latency.Snapshot(),
		FanOutDuration: s.metrics.fanout.Snapshot(),
		Writes:         s.metrics.writes.Load(),
	}
	for op, name := range commandOps {
		c := &s.metrics.commands[op]
		st.Commands[name] = CommandCount{OK: c[0].Load(), Error: c[1].Load()}
	}
	for k, v := range s.metrics.closes {
		st.Closed[k] = v.Load()
	}
	for k, v := range s.metrics.rejects {
		st.Rejected[k] = v.Load()
	}
	for k, v := range s.metrics.auth {
		st.Auth[k] = v.Load()
	}
	for k, v := range s.metrics.drops {
		st.Dropped[k] = v.Load()
	}
	return st
}
