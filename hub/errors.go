package hub

import "errors"

// ErrNotSent is what a Publisher's Flush returns when it had nothing to
// send while its last send failed: nothing has reached the other nodes
// since, so it cannot tell whether publishing works again. It reports no
// new failure; a publisher that logs failures and recoveries takes it
// as neither.
var ErrNotSent = errors.New("hub: nothing sent since the last failed send")

// ErrTooManyStreams is returned by [Redis.Subscribe] when the hub already
// has receivers for RedisConfig.MaxStreams distinct streams.
var ErrTooManyStreams = errors.New("hub: too many streams")

// ErrStarting is what [Redis.Ready] returns until the first probe comes
// back.
var ErrStarting = errors.New("redis: starting")
