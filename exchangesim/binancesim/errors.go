package binancesim

import "errors"

var (
	// ErrInvalidConfig is wrapped by every error [New] returns for a bad
	// [Config] field; the message names the field.
	ErrInvalidConfig = errors.New("binancesim: invalid config")
	// ErrAlreadyRun is returned by [Server.Run] when Run was called before
	// on the same Server. A Server runs once.
	ErrAlreadyRun = errors.New("binancesim: server already run")
	// ErrNilListener is returned by [Server.Run] when given no listener.
	ErrNilListener = errors.New("binancesim: nil listener")
	// errStopReading tells the read loop that the frame it was reading
	// ended the connection (a close frame, or a failure already handled).
	errStopReading = errors.New("binancesim: stop reading")
)
