package market

import (
	"errors"
	"fmt"
	"time"
)

// Errors of [Client.Get], possibly wrapped.
var (
	// ErrBanned: the exchange answered 429 or 418 and every call to it
	// stops until the time in the [BannedError] the error also is.
	ErrBanned = errors.New("market: exchange calls stopped by a 429 or 418")
	// ErrBudget: the call would pass the local weight budget of the
	// current minute and the caller asked not to wait.
	ErrBudget = errors.New("market: weight budget spent for this minute")
	// ErrBackoff: the exchange failed (5xx or network) a moment ago and
	// calls pause briefly.
	ErrBackoff = errors.New("market: backing off after an exchange failure")
	// ErrUnknownExchange: no exchange of that name is configured.
	ErrUnknownExchange = errors.New("market: unknown exchange")
	// ErrBodyTooLarge: the exchange's answer was longer than
	// [Config.MaxBodyBytes].
	ErrBodyTooLarge = errors.New("market: exchange answer too large")
)

// BannedError is the error of a call refused because the exchange
// stopped the IP: Status 429 (rate limit, stop for its Retry-After) or 418
// (IP ban). It unwraps to [ErrBanned].
type BannedError struct {
	Exchange string
	Status   int
	Until    time.Time
}

// Error names the exchange, the status and the stop's end.
func (e *BannedError) Error() string {
	return fmt.Sprintf("market: %s: calls stopped by HTTP %d until %s", e.Exchange, e.Status, e.Until.UTC().Format(time.RFC3339))
}

// Unwrap returns [ErrBanned].
func (e *BannedError) Unwrap() error { return ErrBanned }

// BusyError is the error of a call refused without waiting: Err is
// [ErrBudget] or [ErrBackoff], and a call may succeed from Until on.
type BusyError struct {
	Err   error
	Until time.Time
}

// Error names the cause and when a call may go.
func (e *BusyError) Error() string {
	return fmt.Sprintf("%v until %s", e.Err, e.Until.UTC().Format(time.RFC3339Nano))
}

// Unwrap returns Err.
func (e *BusyError) Unwrap() error { return e.Err }
