package auth

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/marketgate/marketgate/internal/redistest"
	"github.com/marketgate/marketgate/internal/waitfor"
)

// kickNode is one node's Kicks with the users it was asked to end.
type kickNode struct {
	k *Kicks
	// mu guards applied.
	mu      sync.Mutex
	applied []string
}

func (n *kickNode) got() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	// A node applies its own kicks at once and the others' as they
	// arrive, so the order between the two is not fixed.
	return slices.Sorted(slices.Values(n.applied))
}

// startKickNode runs a Kicks of node id on rc until the test ends.
func startKickNode(t *testing.T, rc redis.UniversalClient, id string) *kickNode {
	t.Helper()
	n := &kickNode{}
	k, err := NewKicks(KicksConfig{Client: rc, NodeID: id, Apply: func(user string) int {
		n.mu.Lock()
		defer n.mu.Unlock()
		n.applied = append(n.applied, user)
		return 2
	}})
	if err != nil {
		t.Fatal(err)
	}
	n.k = k
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Kicks.Run = %v", err)
		}
	})
	waitfor.Cond(t, 5*time.Second, func() error {
		if !k.listening.Load() {
			return fmt.Errorf("node %s not subscribed yet", id)
		}
		return nil
	})
	return n
}

// TestKicksAcrossNodes checks, on a real Redis, that a kick on one node
// ends the user's connections there once and on every other node once,
// and that malformed messages on the channel are ignored.
func TestKicksAcrossNodes(t *testing.T) {
	rs := redistest.Start(t)
	rc := redis.NewClient(rs.Options())
	t.Cleanup(func() { rc.Close() })
	n1, n2, n3 := startKickNode(t, rc, "n1"), startKickNode(t, rc, "n2"), startKickNode(t, rc, "n3")

	local, others, err := n1.k.Kick(t.Context(), "alice")
	if err != nil || local != 2 || others != 2 {
		t.Fatalf("Kick = %d, %d, %v; want 2 here, 2 other nodes, nil", local, others, err)
	}
	for _, bad := range []string{"{", `{"node":"n9"}`, `{"node":"n9","user":""}`, `"alice"`} {
		if err := rc.Publish(t.Context(), defaultKickChannel, bad).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := n2.k.Kick(t.Context(), "bob"); err != nil {
		t.Fatal(err)
	}
	want := map[*kickNode][]string{n1: {"alice", "bob"}, n2: {"alice", "bob"}, n3: {"alice", "bob"}}
	waitfor.Cond(t, 5*time.Second, func() error {
		for n, w := range want {
			if g := n.got(); fmt.Sprint(g) != fmt.Sprint(w) {
				return fmt.Errorf("node %s applied %q; want %q", n.k.cfg.NodeID, g, w)
			}
		}
		return nil
	})
	// Nothing more arrives: each node applied each kick exactly once.
	time.Sleep(100 * time.Millisecond)
	for n, w := range want {
		if g := n.got(); fmt.Sprint(g) != fmt.Sprint(w) {
			t.Errorf("node %s applied %q; want %q", n.k.cfg.NodeID, g, w)
		}
	}
}

// TestKickRefusesBadUser checks the user ids Kick refuses before doing
// anything.
func TestKickRefusesBadUser(t *testing.T) {
	k, err := NewKicks(KicksConfig{Client: redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), NodeID: "n1",
		Apply: func(string) int { t.Error("Apply called"); return 0 }})
	if err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"", string(make([]byte, maxKickUser+1))} {
		if _, _, err := k.Kick(t.Context(), user); err == nil {
			t.Errorf("Kick(%d bytes) = nil error", len(user))
		}
	}
}

// TestKickWithoutRedis checks that a kick still ends the local
// connections when Redis cannot be reached, and says so.
func TestKickWithoutRedis(t *testing.T) {
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	t.Cleanup(func() { rc.Close() })
	applied := 0
	k, err := NewKicks(KicksConfig{Client: rc, NodeID: "n1", Apply: func(string) int { applied++; return 3 }})
	if err != nil {
		t.Fatal(err)
	}
	local, others, err := k.Kick(t.Context(), "alice")
	if err == nil || local != 3 || others != 0 || applied != 1 {
		t.Errorf("Kick = %d, %d, %v (applied %d); want 3, 0, an error, applied once", local, others, err, applied)
	}
}
