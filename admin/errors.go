package admin

import (
	"errors"
	"fmt"
)

// Errors a [Backend] returns, possibly wrapped, to choose the answer's
// status. The answer's msg is the returned error's text: build it with
// [Invalid] or [NotFound] to show the cause's text alone, or wrap the
// sentinel yourself (fmt.Errorf("…: %w", admin.ErrNotFound)) to show
// the whole text. Any other error answers 500 with no details and is
// logged.
var (
	// ErrInvalid answers 400 (bad_request): the request names something
	// the gateway cannot carry, e.g. a stream key that does not validate.
	ErrInvalid = errors.New("admin: invalid")
	// ErrNotFound answers 404 (not_found): the request names something
	// that does not exist, e.g. Unpin of a stream that is not pinned.
	ErrNotFound = errors.New("admin: not found")
)

// Invalid returns an error that is [ErrInvalid], and err too, with err's
// text; nil for a nil err.
func Invalid(err error) error {
	if err == nil {
		return nil
	}
	return &statusError{kind: ErrInvalid, err: err}
}

// NotFound returns an error that is [ErrNotFound] with the text of
// fmt.Sprintf(format, args...); %w wraps as in fmt.Errorf.
func NotFound(format string, args ...any) error {
	return &statusError{kind: ErrNotFound, err: fmt.Errorf(format, args...)}
}

// statusError is a Backend's error marked with the answer it gets.
type statusError struct {
	kind error // ErrInvalid or ErrNotFound
	err  error
}

func (e *statusError) Error() string   { return e.err.Error() }
func (e *statusError) Unwrap() []error { return []error{e.kind, e.err} }
