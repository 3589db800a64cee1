package gateway

import (
	"context"

	"github.com/marketgate/marketgate/cluster"
	"github.com/marketgate/marketgate/hub"
)

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
