package gateway

import (
	"context"
	"time"

	"github.com/marketgate/marketgate/cluster"
	"github.com/marketgate/marketgate/hub"
)

// successorHold is how long a node that carries an exchange as a
// handover's successor holds each message before publishing it. Both
// nodes read the same events from the exchange, within milliseconds of
// each other; held back, the successor's copies reach Redis after the old
// owner's, repeat them, and so prove the switch of owners continuous when
// the old owner stops. Without that proof, exchanges whose event ids skip
// (OKX and Bybit trades) get a gap notice at the switch although nothing
// is lost. It only delays the successor's messages, which nobody receives
// while the owner's go out, and ends when the successor becomes owner.
const successorHold = 250 * time.Millisecond

// originPublisher stamps each message with the fencing token under which
// this node carries the exchange (see [cluster.Tokens]), so receivers on
// every node prefer the newest owner's messages when two publish at once.
// Without a token (the lease is lost or given up) it drops the message:
// what the feed still reads until its unsubscribes take effect belongs to
// the new owner.
type originPublisher struct {
	hub.Publisher
	tokens   *cluster.Tokens // set by the cluster node
	exchange string
}

// Publish implements hub.Publisher.
func (p *originPublisher) Publish(ctx context.Context, msg hub.Message) error {
	if msg.Origin = p.tokens.Token(p.exchange); msg.Origin == 0 {
		return nil
	}
	return p.Publisher.Publish(ctx, msg)
}
