package upstream

import (
	"errors"
	"fmt"
)

// Sentinel errors. Validation failures come wrapped in a [*ValidationError]
// whose message is meant for browsers; test for the kind with errors.Is.
var (
	// ErrInvalidStream means a stream name does not follow the exchange's
	// grammar.
	ErrInvalidStream = errors.New("upstream: invalid stream name")
	// ErrUnknownSymbol means the stream's symbol is not currently trading on
	// the exchange.
	ErrUnknownSymbol = errors.New("upstream: unknown symbol")
	// ErrUnknownExchange means a stream key names an exchange the [Router]
	// does not know.
	ErrUnknownExchange = errors.New("upstream: unknown exchange")
	// ErrInvalidKey means a stream key is not "<exchange>:<stream>".
	ErrInvalidKey = errors.New("upstream: invalid stream key")
	// ErrStreamLimit means the feed already carries as many streams as
	// its connections may (MaxShards × MaxStreams per endpoint).
	ErrStreamLimit = errors.New("upstream: stream limit reached")

	// ErrNotReady is returned by Ready (and by Validate before the symbol
	// list has been loaded).
	ErrNotReady = errors.New("upstream: not ready")
	// ErrAlreadyRunning is returned by a second concurrent call of Run.
	ErrAlreadyRunning = errors.New("upstream: already running")
	// ErrReplyTimeout ends an upstream connection when a request that was
	// already retried once got no reply within the reply timeout.
	ErrReplyTimeout = errors.New("upstream: reply timeout")
	// ErrSymbolsTooLarge means the symbol list response exceeded the size
	// bound.
	ErrSymbolsTooLarge = errors.New("upstream: symbol list response too large")
	// ErrSymbolsRefused is returned for a symbol list that is empty or
	// drops more than Config.SymbolMaxDrop of the known symbols.
	ErrSymbolsRefused = errors.New("upstream: symbol list refused")
)

// ValidationError is the error Validate returns for a stream the gateway
// cannot serve. Its message is meant to be shown to the client as is, for
// example `invalid stream name "btcusdt@tradez"` or `unknown symbol
// "foousdt"`. Err is one of [ErrInvalidStream], [ErrUnknownSymbol],
// [ErrUnknownExchange], [ErrInvalidKey] or [ErrStreamLimit].
type ValidationError struct {
	// Err is the sentinel naming the kind of failure.
	Err error
	// Value is the offending input: the stream name, symbol, exchange or key.
	Value string
}

// Error returns the client-facing message.
func (e *ValidationError) Error() string {
	switch e.Err {
	case ErrInvalidStream:
		return fmt.Sprintf("invalid stream name %q", e.Value)
	case ErrUnknownSymbol:
		return fmt.Sprintf("unknown symbol %q", e.Value)
	case ErrUnknownExchange:
		return fmt.Sprintf("unknown exchange %q", e.Value)
	case ErrInvalidKey:
		return fmt.Sprintf("invalid stream key %q: want <exchange>:<stream>", e.Value)
	case ErrStreamLimit:
		return fmt.Sprintf("stream limit reached, cannot add %q", e.Value)
	}
	return fmt.Sprintf("%v: %q", e.Err, e.Value)
}

// Unwrap returns the sentinel, so errors.Is(err, ErrUnknownSymbol) works.
func (e *ValidationError) Unwrap() error { return e.Err }

func invalidStream(name string) error {
	return &ValidationError{Err: ErrInvalidStream, Value: name}
}
