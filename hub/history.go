package hub

import (
	"context"
	"crypto/rand"
	"errors"
	"time"
)

// Defaults of the history bounds (MemoryConfig and RedisConfig).
const (
	// DefaultHistorySize is how many messages per stream a hub keeps.
	DefaultHistorySize = 1000
	// DefaultHistoryTTL is how long a stream's history outlives its last
	// message.
	DefaultHistoryTTL = 5 * time.Minute
	// positionTTL is how long a stream's position (epoch and seq)
	// outlives its last message; longer than any history, so that a quiet
	// stream keeps its epoch (a client that missed nothing recovers)
	// after its history expired.
	positionTTL = 24 * time.Hour
)

// Position is a place in one stream's history: the Seq of a message in
// the numbering named by Epoch. Seq 0 is the place before the first
// message of an epoch.
//
// Positions are the same on every node: the hub numbers each stream's
// messages as they are published, one more per message, and keeps
// numbering across publishers (a stream handed over between nodes goes on
// where the old owner stopped). The epoch changes only when the
// numbering cannot go on: the stream's position was lost (a restarted
// single node, a Redis server that lost its data, a stream quiet for
// longer than a day). A client that holds a position of another epoch
// cannot know what it missed.
type Position struct {
	Epoch string `json:"epoch"`
	Seq   uint64 `json:"seq"`
}

// Recovery is what [History.Recover] read of a stream.
type Recovery struct {
	// Position is the stream's position when it was read: that of its
	// newest message (Seq 0 when the epoch has none yet).
	Position Position
	// Recovered reports that since was given, is of Position's epoch, is
	// not past Position, and every message after it is in Messages.
	Recovered bool
	// Messages are, when Recovered, the messages after since up to
	// Position, oldest first. Without since, they hold the newest message
	// kept, if any (a stream's latest value). With State, they are the
	// messages after the state up to Position. The caller owns them.
	Messages []Message
	// State, when not nil, is the stream's newest state (see
	// [Message.State]), its Seq and Epoch the position it is valid at,
	// and Messages every message after it: together they are the stream
	// up to Position. It is read when since was not given or could not
	// be recovered, and only when history holds every message after it.
	State *Message
}

// History is implemented by hubs that keep each stream's recent messages
// (the last HistorySize, for HistoryTTL after the stream's last message).
type History interface {
	// Recover reads stream's position and, with since, the messages after
	// it when history still holds every one of them; without since, the
	// newest message kept. When since is not given or not recovered and
	// the stream has a state with every message after it still in
	// history, it reads those instead (Recovery.State). A receiver that subscribed to stream before
	// calling Recover gets every message after Position live: together
	// they miss nothing (a message may come both ways; Seq tells which).
	Recover(ctx context.Context, stream string, since *Position) (Recovery, error)
}

// ErrNoHistory is what a catch-up reports for a hub that implements no
// History at all.
var ErrNoHistory = errors.New("hub: no history kept")

// newEpoch returns a fresh epoch name: 8 random characters.
func newEpoch() string {
	const alphabet = "abcdefghijkmnopqrstuvwxyz23456789"
	var b [8]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:])
}
