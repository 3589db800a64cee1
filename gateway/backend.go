package gateway

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

// Streams lists the streams with local subscribers and the pinned ones,
// with the node carrying each (admin.Backend).
func (g *Gateway) Streams(ctx context.Context) ([]admin.StreamInfo, error) {
	owners := map[string]string{} // exchange → the node carrying it
	nodes, err := g.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		for _, ex := range n.Owns {
			owners[ex] = n.ID
		}
	}
	var out []admin.StreamInfo
	for _, s := range g.ds.Streams() {
		out = append(out, admin.StreamInfo{Stream: s.Stream, Subscribers: s.Subscribers,
			MessagesPerSecond: s.MessagesPerSecond, LastMessage: s.LastMessage})
	}
	for _, k := range g.pins.Pinned() {
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

// Pin keeps a stream subscribed upstream with no client (admin.Backend).
func (g *Gateway) Pin(_ context.Context, stream string) error {
	return admin.Invalid(g.pins.Pin(stream))
}

// Unpin releases a pinned stream (admin.Backend).
func (g *Gateway) Unpin(_ context.Context, stream string) error {
	if err := g.pins.Unpin(stream); errors.Is(err, errNotPinned) {
		return admin.NotFound("stream %q is not pinned", stream)
	} else {
		return err
	}
}

// Upstreams describes each exchange feed of this node (admin.Backend).
func (g *Gateway) Upstreams(context.Context) ([]upstream.Status, error) {
	out := make([]upstream.Status, len(g.feeds))
	for i, f := range g.feeds {
		out[i] = f.Status()
	}
	return out, nil
}

// Nodes lists the cluster's nodes; a single node lists itself, owning
// every exchange it has (admin.Backend).
func (g *Gateway) Nodes(ctx context.Context) ([]cluster.NodeInfo, error) {
	if g.node != nil {
		return g.node.Nodes(ctx)
	}
	self := cluster.NodeInfo{ID: g.nodeID, Heartbeat: time.Now(), Demand: int64(len(g.ds.Streams()) + len(g.pins.Pinned()))}
	for _, f := range g.feeds {
		self.Owns = append(self.Owns, f.Name())
	}
	return []cluster.NodeInfo{self}, nil
}

// Clients lists the connected browsers, a page at a time (admin.Backend).
func (g *Gateway) Clients(_ context.Context, offset, limit int) ([]downstream.ClientInfo, int, error) {
	page, total := g.ds.Clients(offset, limit)
	return page, total, nil
}

// Disconnect closes one browser connection with close code 1008
// (admin.Backend).
func (g *Gateway) Disconnect(_ context.Context, id uint64) (bool, error) {
	return g.ds.Disconnect(id, ""), nil
}

// DisconnectUser closes every browser connection of user with close code
// 1008: on this node, and in a cluster on every node through Redis
// (admin.Backend).
func (g *Gateway) DisconnectUser(ctx context.Context, user string) (int, int64, error) {
	if g.kicks == nil {
		return g.ds.DisconnectUser(user, ""), 0, nil
	}
	return g.kicks.Kick(ctx, user)
}
