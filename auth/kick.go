package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// defaultKickChannel is the Redis channel of [Kicks] unless configured.
const defaultKickChannel = "marketgate:auth:kick"

// maxKickUser bounds the user id a kick message may carry; longer
// messages are ignored (a token's sub is never that long in practice).
const maxKickUser = 1024

// KicksConfig configures [Kicks].
type KicksConfig struct {
	// Client is the Redis (or Redis Cluster) client; required. Kicks
	// does not close it.
	Client redis.UniversalClient
	// NodeID names this node; a node ignores its own kicks, which it has
	// applied already. Required.
	NodeID string
	// Apply ends every connection of user on this node and returns how
	// many it ended. Required.
	Apply func(user string) int
	// Channel is the pub/sub channel. Default "marketgate:auth:kick".
	Channel string
	// Logger receives Redis errors and kicks received; nil discards them.
	Logger *slog.Logger
}

// Kicks ends a user's connections on every node of a cluster: Kick
// applies it here and publishes it on a Redis channel, and Run applies
// the kicks of the other nodes. A node that is cut off from Redis when a
// kick is published misses it (pub/sub keeps nothing); its clients of
// that user stay until kicked again or their token expires.
type Kicks struct {
	cfg KicksConfig
	// listening is set once this node's own subscription is confirmed,
	// so Kick does not count it among the other nodes.
	listening atomic.Bool
}

// kickMessage is what travels on the channel.
type kickMessage struct {
	Node string `json:"node"`
	User string `json:"user"`
}

// NewKicks returns Kicks configured by cfg. It starts nothing; call Run.
func NewKicks(cfg KicksConfig) (*Kicks, error) {
	switch {
	case cfg.Client == nil:
		return nil, errors.New("auth: KicksConfig: Client is required")
	case cfg.NodeID == "":
		return nil, errors.New("auth: KicksConfig: NodeID is required")
	case cfg.Apply == nil:
		return nil, errors.New("auth: KicksConfig: Apply is required")
	}
	if cfg.Channel == "" {
		cfg.Channel = defaultKickChannel
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Kicks{cfg: cfg}, nil
}

// Kick ends user's connections on this node and tells the other nodes to
// do the same. It returns the connections ended here and how many other
// nodes were listening when the kick was published.
func (k *Kicks) Kick(ctx context.Context, user string) (local int, nodes int64, err error) {
	if user == "" || len(user) > maxKickUser {
		return 0, 0, fmt.Errorf("auth: kick: a user id of %d bytes", len(user))
	}
	local = k.cfg.Apply(user)
	msg, _ := json.Marshal(kickMessage{Node: k.cfg.NodeID, User: user})
	n, err := k.cfg.Client.Publish(ctx, k.cfg.Channel, msg).Result()
	if err != nil {
		return local, 0, fmt.Errorf("auth: kick: tell the other nodes: %w", err)
	}
	if n > 0 && k.listening.Load() {
		n-- // this node's own subscription
	}
	return local, n, nil
}

// Run applies the kicks other nodes publish until ctx ends. The
// subscription reconnects by itself after a Redis outage.
func (k *Kicks) Run(ctx context.Context) error {
	sub := k.cfg.Client.Subscribe(ctx, k.cfg.Channel)
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil && ctx.Err() == nil {
		k.cfg.Logger.Warn("auth: subscribe to kicks; retrying", "err", err)
	} else {
		k.listening.Store(true)
	}
	ch := sub.Channel(redis.WithChannelSize(256))
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-ch:
			if !ok {
				return nil
			}
			k.receive(m.Payload)
		}
	}
}

// receive applies one published kick unless it is malformed or this
// node's own.
func (k *Kicks) receive(payload string) {
	var m kickMessage
	if len(payload) > 2*maxKickUser || json.Unmarshal([]byte(payload), &m) != nil || m.User == "" || len(m.User) > maxKickUser {
		k.cfg.Logger.Warn("auth: ignored a malformed kick message", "bytes", len(payload))
		return
	}
	if m.Node == k.cfg.NodeID {
		return
	}
	// The user id is not logged: only how many connections went.
	n := k.cfg.Apply(m.User)
	k.cfg.Logger.Info("user's clients disconnected at another node's request", "from", m.Node, "clients", n)
}
