package upstream

import (
	"io"
	"time"
)

// Dialect is what one exchange product speaks. A [Feed] does everything
// else (sharding, pacing, replies, heartbeats, rotation, reconnects) the
// same way for every exchange; each exchange is a package implementing
// Dialect (upstream/binance). Implementations are immutable values, safe
// for concurrent use. Parse, EventTime, Identity and Final are on the read
// path of every message: they must not allocate on the common path.
type Dialect interface {
	// Name is the exchange name, the prefix of its stream keys, e.g.
	// "binance" or "binance-futures". It contains no ':'.
	Name() string

	// ParseStream checks a stream name's syntax (whether its symbol
	// trades is the Feed's business). Its error is a [*ValidationError]
	// wrapping [ErrInvalidStream].
	ParseStream(name string) (Stream, error)
	// Kinds are the labels of the exchange's stream types, for metrics;
	// [Stream.Kind] indexes it. A fixed, short list: metrics stay bounded
	// whatever the exchange sends.
	Kinds() []string

	// Endpoints are the paths of the WebSocket endpoints, appended to the
	// base URL; each has its own connections.
	Endpoints() []string
	// EndpointOf returns the index in Endpoints of the one serving s.
	EndpointOf(s Stream) int
	// ConnectURL returns the URL of a new connection to base+path and how
	// many of names (sorted: the streams the connection is to carry) the
	// URL subscribes by itself, keeping the URL within maxBytes (0 or
	// less: carry none). The rest are subscribed with requests. An
	// exchange whose URLs carry no streams returns base+path (plus any
	// fixed query it needs) and 0.
	ConnectURL(base, path string, names []string, maxBytes int) (url string, carried int)
	// URLRefused reports whether a handshake refused with this HTTP
	// status, by a URL that carried streams, means the exchange will not
	// take that many in a URL: the shard then subscribes by requests only.
	URLRefused(status int) bool

	// SymbolsPaths are the REST paths of the symbol lists, appended to
	// the REST base URL: the valid symbols are those of every list (OKX
	// lists one instrument type per call).
	SymbolsPaths() []string
	// ParseSymbols reads one page of the list fetched from path and
	// returns the symbols that trade, spelled as stream names carry them
	// ([Stream.Symbol]), and the path of the list's next page, or "" when
	// this page is its last (Bybit pages its linear list with a cursor).
	ParseSymbols(path string, r io.Reader) (syms map[string]struct{}, next string, err error)

	// Limits returns the exchange's documented limits, the defaults of
	// the [Config] fields of the same names.
	Limits() Limits

	// Encode encodes a live-subscription request for names with the
	// request id id (a dialect whose exchange wants string ids formats
	// it). Only the gateway's own typed values reach it.
	Encode(op Op, names []string, id int64) ([]byte, error)
	// Parse parses one text message. On the fast path Stream and Data of
	// an event alias p: they are valid only until p is reused.
	Parse(p []byte) (Inbound, error)
	// Heartbeat is the exchange's client-initiated keepalive: the writer
	// sends Payload as a text frame whenever a connection sent nothing
	// for Every. A zero Every means none (WebSocket pings from the
	// exchange are always answered with pongs).
	Heartbeat() Heartbeat

	// EventTime returns when the exchange says an event happened, in
	// Unix microseconds, or 0 when it does not say. It only measures lag.
	EventTime(data []byte) int64
	// Identity reads the identity of one event of s. It is called only
	// for streams whose [Stream.Order] is not [OrderNone] or [OrderSame].
	Identity(s *Stream, data []byte) (EventID, bool)
	// Final reports whether an event of s ends what the stream's earlier
	// events were updating, such as the close of a candle: like any event
	// of a conflatable stream it supersedes the earlier ones, but no later
	// event supersedes it, so a slow consumer that skips to the newest
	// event still gets every final one (hub.Message.Final). It is called
	// only for streams whose [Class.Conflatable]; a dialect whose events
	// are never final returns false.
	Final(s *Stream, data []byte) bool
}

// Limits are one exchange's defaults for the [Config] fields of the same
// names.
type Limits struct {
	URL, RESTURL      string
	RequestInterval   time.Duration
	MaxStreams        int
	IdleTimeout       time.Duration
	MaxLifetime       time.Duration
	MaxConnAttempts   int
	ConnAttemptWindow time.Duration
	// MaxParams bounds the streams of one subscribe request where the
	// exchange does (Bybit spot: 10); 0: DefaultMaxParams.
	MaxParams int
	// MaxRequests bounds the subscribe and unsubscribe requests of one
	// connection in any rolling RequestWindow (OKX: 480 an hour); 0: no
	// such limit.
	MaxRequests   int
	RequestWindow time.Duration
}

// Heartbeat is a client-initiated keepalive: Payload sent as a text frame
// after Every without any frame sent.
type Heartbeat struct {
	Every   time.Duration
	Payload []byte
}

// Op is a live-subscription operation. Only the constants below exist, so
// no caller can make the writer send anything else.
type Op uint8

// The operations.
const (
	OpSubscribe Op = iota + 1
	OpUnsubscribe
)

// String returns "SUBSCRIBE" or "UNSUBSCRIBE", for logs.
func (o Op) String() string {
	if o == OpUnsubscribe {
		return "UNSUBSCRIBE"
	}
	return "SUBSCRIBE"
}

// InboundKind says what a message from the exchange is.
type InboundKind uint8

// The kinds of inbound messages.
const (
	// InEvent is market data of one stream.
	InEvent InboundKind = iota + 1
	// InReply answers a request, or reports an error.
	InReply
	// InPong answers the client heartbeat.
	InPong
	// InShutdown announces that the exchange will close the connection
	// soon: the shard rotates it now, make before break.
	InShutdown
	// InIgnore is anything else the exchange may send (notices, welcome
	// messages); it is counted as "other" and dropped.
	InIgnore
)

// Inbound is a parsed message from the exchange.
type Inbound struct {
	Kind InboundKind
	// Stream and Data are an event's stream name and payload.
	Stream, Data []byte
	// ID is the id of the request a reply answers, when HasID. Exchanges
	// with string ids are answered by the dialect's parse of them.
	ID    int64
	HasID bool
	// Streams are the stream names a reply answers, for exchanges that
	// answer each stream of a request on its own (OKX's one event per
	// channel). Empty: the reply answers its whole request. A request
	// stays pending until every one of its streams is answered.
	Streams []string
	// Err is the error a reply carries; nil for a success.
	Err *ReplyError
}

// ReplyError is the error of a refused request.
type ReplyError struct {
	// Code is the exchange's error code, as text ("4", "60012").
	Code string
	// Msg is the exchange's message.
	Msg string
	// Full means the connection holds as many streams as the exchange
	// lets it: the streams are moved to other connections, not failed.
	Full bool
}
