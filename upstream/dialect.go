package upstream

import (
	"io"
	"time"
)

// Dialect is what one exchange product speaks: its name, stream grammar
// and which endpoint serves each stream, where its symbol list is and how
// it reads, its limits, how requests are encoded and messages parsed, and
// how events identify themselves. Everything else ([Feed]: sharding,
// pacing, rotation, reconnects) is exchange-neutral.
//
// The dialects are [BinanceSpot] and [BinanceFutures]. The methods are
// unexported: a new exchange is a new dialect file in this package.
type Dialect interface {
	// Name is the exchange name, the prefix of its stream keys, e.g.
	// "binance" or "binance-futures".
	Name() string

	// parseStream checks a stream name's syntax; its error is a
	// *ValidationError wrapping ErrInvalidStream.
	parseStream(name string) (Stream, error)
	// endpoints are the paths of the WebSocket endpoints, appended to the
	// base URL; each has its own connections.
	endpoints() []string
	// endpointOf returns the index in endpoints of the one serving s.
	endpointOf(s Stream) int
	// streamsURL returns the URL of a connection to an endpoint carrying
	// names from the start ("" names: none).
	streamsURL(base, path string, names []string) string

	// symbolsPath is the REST path listing the symbols, e.g.
	// "/api/v3/exchangeInfo".
	symbolsPath() string
	// parseSymbols reads that listing and returns the lowercase symbols
	// that trade.
	parseSymbols(r io.Reader) (map[string]struct{}, error)
	// validSymbol reports whether a lowercase symbol is well formed.
	validSymbol(sym string) bool

	// limits returns the exchange's documented limits, the defaults of
	// the corresponding Config fields.
	limits() limits

	// encodeRequest encodes a typed live-subscription request.
	encodeRequest(r *request) ([]byte, error)
	// parseInbound parses one text message without copying its payload.
	parseInbound(p []byte) (inbound, error)
	// isShutdown reports whether stream names the exchange's "about to
	// close this connection" event.
	isShutdown(stream []byte) bool
	// tooManyStreams reports whether an error reply means the connection
	// holds as many streams as it may (Binance's code 4).
	tooManyStreams(e *replyError) bool

	// idKind says how events of kind k identify themselves.
	idKind(k Kind) idKind
	// identity reads the identity of one event of kind k.
	identity(k Kind, data []byte) (evID, bool)
}

// limits are one exchange's defaults for the Config fields of the same
// names.
type limits struct {
	url, restURL    string
	requestInterval time.Duration
	maxStreams      int
	idleTimeout     time.Duration
	maxLifetime     time.Duration
	maxConnAttempts int
	attemptWindow   time.Duration
}
