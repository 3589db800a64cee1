package main

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/marketgate/marketgate/admin"
	"github.com/marketgate/marketgate/cluster"
	"github.com/marketgate/marketgate/downstream"
	"github.com/marketgate/marketgate/upstream"
)

// backend answers the control API from the node's parts.
type backend struct {
	ds     *downstream.Server
	feeds  []*upstream.Feed
	pins   *pins
	node   *cluster.Node // nil on a single node
	nodeID string
}

var _ admin.Backend = (*backend)(nil)

// Streams lists the streams with local subscribers and the pinned ones.
func (b *backend) Streams(ctx context.Context) ([]admin.StreamInfo, error) {
	owners := map[string]string{} // exchange → the node carrying it
	nodes, err := b.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		for _, ex := range n.Owns {
			owners[ex] = n.ID
		}
	}
	var out []admin.StreamInfo
	for _, s := range b.ds.Streams() {
		out = append(out, admin.StreamInfo{Stream: s.Stream, Subscribers: s.Subscribers,
			MessagesPerSecond: s.MessagesPerSecond, LastMessage: s.LastMessage})
	}
	for _, k := range b.pins.Pinned() {
		i := slices.IndexFunc(out, func(s admin.StreamInfo) bool { return s.Stream == k })
		if i < 0 {
			out = append(out, admin.StreamInfo{Stream: k})
			i = len(out) - 1
		}
		out[i].Pinned = true
	}
	for i := range out {
		if ex, _, ok := strings.Cut(out[i].Stream, ":"); ok {
			out[i].Owner = owners[ex]
		}
	}
	slices.SortFunc(out, func(a, b admin.StreamInfo) int { return strings.Compare(a.Stream, b.Stream) })
	return out, nil
}

// Pin keeps a stream subscribed upstream with no client.
func (b *backend) Pin(_ context.Context, stream string) error {
	return admin.Invalid(b.pins.Pin(stream))
}

// Unpin releases a pinned stream.
func (b *backend) Unpin(_ context.Context, stream string) error {
	if err := b.pins.Unpin(stream); errors.Is(err, errNotPinned) {
		return admin.NotFound("stream %q is not pinned", stream)
	} else {
		return err
	}
}

// Upstreams describes each exchange feed of this node.
func (b *backend) Upstreams(context.Context) ([]upstream.Status, error) {
	out := make([]upstream.Status, len(b.feeds))
	for i, f := range b.feeds {
		out[i] = f.Status()
	}
	return out, nil
}

// Nodes lists the cluster's nodes; a single node lists itself, owning
// every exchange it has.
func (b *backend) Nodes(ctx context.Context) ([]cluster.NodeInfo, error) {
	if b.node != nil {
		return b.node.Nodes(ctx)
	}
	self := cluster.NodeInfo{ID: b.nodeID, Heartbeat: time.Now(), Demand: int64(len(b.ds.Streams()) + len(b.pins.Pinned()))}
	for _, f := range b.feeds {
		self.Owns = append(self.Owns, f.Name())
	}
	return []cluster.NodeInfo{self}, nil
}

// Clients lists the connected browsers, a page at a time.
func (b *backend) Clients(_ context.Context, offset, limit int) ([]downstream.ClientInfo, int, error) {
	page, total := b.ds.Clients(offset, limit)
	return page, total, nil
}

// Disconnect closes one browser connection (close code 1008).
func (b *backend) Disconnect(_ context.Context, id uint64) (bool, error) {
	return b.ds.Disconnect(id, ""), nil
}
