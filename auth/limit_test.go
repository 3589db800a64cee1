package auth_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/marketgate/marketgate/auth"
	"github.com/marketgate/marketgate/internal/redistest"
	"github.com/marketgate/marketgate/internal/waitfor"
)

func TestMemoryLimiter(t *testing.T) {
	var m auth.Memory
	ctx := context.Background()
	for i, tc := range []struct {
		user, conn string
		want       bool
	}{
		{"u", "a", true}, {"u", "b", true}, {"u", "c", false}, {"u", "a", true}, {"v", "c", true},
	} {
		if ok, err := m.Acquire(ctx, tc.user, tc.conn, 2); ok != tc.want || err != nil {
			t.Errorf("%d: Acquire(%s, %s) = %v, %v; want %v", i, tc.user, tc.conn, ok, err, tc.want)
		}
	}
	m.Release("u", "a")
	if ok, _ := m.Acquire(ctx, "u", "c", 2); !ok {
		t.Error("Acquire after a Release refused")
	}
	m.Release("u", "b")
	m.Release("u", "c")
	if n := m.Count("u"); n != 0 {
		t.Errorf("Count = %d after releasing all; want 0", n)
	}
}

// TestRedisLimiterAcrossNodes checks that two limiters (two nodes) on one
// real Redis count a user's connections together, that a release frees a
// place for the other node, and that the entries of a node that stops
// renewing them (it died) expire.
func TestRedisLimiterAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	ctx := t.Context()
	// newNode makes one node's limiter; run starts its renewals (a node
	// without them is one that died).
	newNode := func(run bool) (*auth.Redis, redis.UniversalClient, context.CancelFunc, chan error) {
		opt, err := redis.ParseURL(srv.URL())
		if err != nil {
			t.Fatal(err)
		}
		rc := redis.NewClient(opt)
		t.Cleanup(func() { rc.Close() })
		l, err := auth.NewRedis(auth.RedisConfig{Client: rc, TTL: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		if run {
			go func() { done <- l.Run(rctx) }()
		}
		return l, rc, cancel, done
	}
	a, rc, stopA, doneA := newNode(true)
	b, _, _, _ := newNode(false)
	acquire := func(l *auth.Redis, conn string, want bool) {
		t.Helper()
		ok, err := l.Acquire(ctx, "alice", conn, 2)
		if err != nil || ok != want {
			t.Fatalf("Acquire(alice, %s) = %v, %v; want %v", conn, ok, err, want)
		}
	}
	acquire(a, "n1/1", true)
	acquire(b, "n2/1", true)
	acquire(b, "n2/2", false) // two in the cluster already
	acquire(a, "n1/1", true)  // the same connection again counts once
	acquire(a, "n1/2", false)
	if ok, _ := b.Acquire(ctx, "bob", "n2/3", 1); !ok {
		t.Error("bob refused: users are counted apart")
	}

	a.Release("alice", "n1/1") // removed from Redis by a's Run
	waitfor.Cond(t, 5*time.Second, func() error {
		ok, err := b.Acquire(ctx, "alice", "n2/2", 2)
		if err != nil {
			return err
		}
		if !ok {
			return errAgain
		}
		return nil
	})

	// Node b renews nothing (it died): its entries expire within the
	// TTL, and node a may count alice's connections again.
	waitfor.Cond(t, 10*time.Second, func() error {
		n, err := rc.ZCard(ctx, "marketgate:auth:conns:{alice}").Result()
		if err != nil {
			return err
		}
		if n != 0 {
			return errAgain
		}
		return nil
	})
	acquire(a, "n1/3", true)
	acquire(a, "n1/4", true)
	// a renews its entries: their expiry moves on, and they still count.
	key := "marketgate:auth:conns:{alice}"
	first, err := rc.ZScore(ctx, key, "n1/3").Result()
	if err != nil {
		t.Fatal(err)
	}
	waitfor.Cond(t, 10*time.Second, func() error {
		if s, err := rc.ZScore(ctx, key, "n1/3").Result(); err != nil || s < first+2000 {
			return errAgain
		}
		return nil
	})
	acquire(a, "n1/5", false)
	stopA()
	if err := <-doneA; err != nil {
		t.Errorf("Run = %v; want nil", err)
	}
	if n, _ := rc.ZCard(ctx, "marketgate:auth:conns:{alice}").Result(); n != 0 {
		t.Errorf("%d entries of alice after the node stopped; want 0 (released at shutdown)", n)
	}
}

var errAgain = context.DeadlineExceeded
