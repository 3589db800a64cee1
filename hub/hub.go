// Package hub carries encoded market-data messages from the node that reads
// them from an exchange to every node that has browsers subscribed to them.
//
// A [Hub] is the only path between upstream and downstream: upstream
// publishes each exchange event once, downstream subscribes per stream while
// it has local subscribers. [Memory] is the in-process implementation used
// by a single node; a Redis implementation fans out across nodes.
//
// The hub also numbers each stream's messages as they are published, for
// the whole cluster ([Position]: an epoch and a seq), and keeps the last
// of them ([History]), so a client can move between nodes and recover
// what it missed.
package hub

import "context"

// Message is one event of one stream as it travels from upstream to
// downstream. Data belongs to the publisher and is valid only until Publish
// returns: receivers read it during Receive and copy what they keep (so the
// upstream can read every event into one reused buffer). Nobody modifies it.
type Message struct {
	// Stream is the gateway's stream key, "<exchange>:<exchange stream name>",
	// for example "binance:btcusdt@trade".
	Stream string
	// Seq is, as published, the publisher's own numbering: it increases
	// by exactly one between consecutive messages of Stream from one
	// upstream, starting at 1, and never goes back, not even across
	// reconnects and rotations. As received, it is the stream's position
	// for the whole cluster, which the hub assigns (see [Position]): the
	// same event has the same Seq on every node, one more than the event
	// before it in Epoch.
	Seq uint64
	// Epoch names the numbering of a received Seq: it changes only when
	// the stream's history was lost for good (see [Position]). The hub
	// sets it; publishers leave it empty.
	Epoch string
	// Origin names the publisher whose numbering Seq is: in a cluster, the
	// fencing token of the node that owned the stream's upstream when it
	// published, so a later owner has a larger Origin; zero on a single
	// node. The hub takes the newest origin's messages and drops an older
	// one's.
	Origin uint64
	// Gap reports that events may have been lost just before this one (the
	// upstream connection dropped, the stream was resubscribed, or a new
	// owner took it over without proof of continuity), though Seq skipped
	// nothing. A consumer resyncs on Gap.
	Gap bool
	// Data is the exchange's event, byte for byte.
	Data []byte
	// Conflate reports that the newest message of Stream supersedes older
	// ones (a ticker, a book ticker, a partial depth snapshot, a kline), so
	// a slow consumer may skip to it. Streams without it (trades, diff
	// depth, the all-market streams) must reach a consumer whole or not at
	// all: a gap corrupts what it builds.
	Conflate bool
	// Final, with Conflate, reports that this message ends what the earlier
	// messages of Stream were updating (a candle's close): it supersedes
	// them like any conflatable message, but no later message supersedes
	// it, so a slow consumer that skips to the newest message still gets
	// every final one. Without Conflate it means nothing.
	Final bool
	// ID is the event's identity where the exchange gives one (a trade
	// id, the last update id of a depth diff, a kline's time), increasing
	// along the stream; zero means none. For a moment two publishers may
	// carry one stream (an upstream handed over between nodes): a
	// receiver drops a message whose ID is not after the last one it
	// delivered, so the overlap costs no duplicate.
	ID EventID
	// EventTime is when the exchange says the event happened (its event
	// time field, "E" on Binance), in Unix microseconds; zero when
	// unknown. It only measures latency: nothing orders or drops
	// messages by it, since the exchange's clock is not ours.
	EventTime int64
	// State reports that Data is not an event but the state the stream's
	// messages build up to its newest one (an order book, as a snapshot),
	// published by the stream's publisher from time to time so that a
	// reader can start from it rather than from the first message. A
	// hub that keeps history ([History]) keeps the newest state with the
	// position of the stream's newest message, replacing the one before,
	// and neither numbers nor delivers it; empty Data forgets it. A state
	// from another origin than the newest message's is dropped.
	State bool
	// Err, when not empty, says the stream failed upstream (the exchange
	// refused or dropped it) and why, in words meant for clients. Such a
	// message carries no Data, and no data follows until the stream is
	// subscribed again.
	Err string
}

// Receiver takes delivered messages. Receive is called from the hub's own
// goroutines (or the publisher's), possibly concurrently for different
// streams, and must not block. msg.Data is valid only until it returns.
//
// Messages arrive in bursts (what one network read of the exchange or of
// Redis brought). After one or more Receive calls the hub calls Flush once
// it has no more messages at hand, so a receiver may hold what it queued
// until then and write a burst with one system call per client instead of
// one per message. A hub calls Flush at least once after every Receive.
type Receiver interface {
	Receive(Message)
	// Flush says the burst is over: write out what the Receive calls
	// since the last Flush queued. It must not block.
	Flush()
}

// Publisher is the half of a [Hub] that upstream needs.
type Publisher interface {
	// Publish delivers msg to every receiver subscribed to msg.Stream on any
	// node. It does not wait for remote receivers; it is done with msg.Data
	// when it returns.
	Publish(ctx context.Context, msg Message) error
	// Flush ends a burst of Publish calls: the publisher has no more
	// messages at hand (its read buffer is empty). A publisher calls it at
	// least once after every Publish; the hub then flushes its receivers
	// (or, across nodes, sends what it batched). With nothing to send
	// after a failed send, it returns [ErrNotSent].
	Flush(ctx context.Context) error
}

// Hub fans messages out to the receivers subscribed to their stream, and
// numbers them: every message it delivers carries the stream's position
// (Message.Seq and Message.Epoch), the same on every node. A hub that
// keeps history also implements [History]. Implementations are safe for
// concurrent use.
type Hub interface {
	Publisher
	// Subscribe makes r receive the messages of stream from now on.
	// Subscribing the same receiver twice to a stream is a no-op.
	Subscribe(ctx context.Context, stream string, r Receiver) error
	// Unsubscribe stops delivering stream to r. Unknown pairs are ignored.
	Unsubscribe(ctx context.Context, stream string, r Receiver) error
	// Ready returns nil while the hub can deliver, or an error saying why not.
	Ready() error
	// Run serves the hub until ctx ends and returns nil then.
	Run(ctx context.Context) error
}

// EventID orders the events of one stream: by Hi, then by Sub (a secondary
// key, such as a kline's event time within one candle). Where the
// stream's ids leave no holes (trade ids, diff depth update ids), Prev is
// the Hi of the event right before this one, so a receiver can tell that
// nothing lies between two events; zero when unknown.
type EventID struct {
	Hi, Sub, Prev int64
}

// Continues reports whether e is known to be the event right after l.
func (e EventID) Continues(l EventID) bool { return e.Prev != 0 && e.Prev == l.Hi }

// IsZero reports whether e is no identity at all.
func (e EventID) IsZero() bool { return e == EventID{} }

// After reports whether e is newer than l.
func (e EventID) After(l EventID) bool {
	return e.Hi > l.Hi || (e.Hi == l.Hi && e.Sub > l.Sub)
}

// Stats counts what a hub has done since it was made, in one shape for
// every implementation so that metrics read any hub alike; [Redis.Stats]
// and [Memory.Stats] return it. The counters only grow.
type Stats struct {
	// Published counts messages Redis accepted ([Memory]: Publish calls).
	Published uint64
	// PublishErrors counts messages that could not be sent or that Redis
	// refused; they are lost.
	PublishErrors uint64
	// Received counts well-formed messages received from Redis, whether or
	// not a local receiver still wanted them ([Memory]: messages handed to
	// at least one receiver).
	Received uint64
	// DecodeErrors counts malformed messages received and dropped.
	DecodeErrors uint64
	// SubscribeErrors counts failed SUBSCRIBE or UNSUBSCRIBE commands; the
	// hub retries them.
	SubscribeErrors uint64
	// InternalErrors counts panics recovered in receivers (a bug, logged
	// with its stack); delivery went on.
	InternalErrors uint64
	// Dropped counts published messages the hub's numbering dropped: an
	// older publisher's, or an event already numbered (a handover's
	// overlap). Not an error.
	Dropped uint64
}
