package redistest

import (
	"fmt"
	"net/url"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestStart(t *testing.T) {
	s := Start(t)
	u, err := url.Parse(s.URL())
	if err != nil {
		t.Fatalf("url.Parse(%q) = %v", s.URL(), err)
	}
	if got, want := u.Host, s.Addr(); got != want {
		t.Errorf("URL host = %q; want %q", got, want)
	}
	if u.Scheme != "redis" || u.Path != "/0" {
		t.Errorf("URL = %q; want redis://<addr>/0", s.URL())
	}
	if got := u.Port(); got == strconv.Itoa(systemPort) || u.Hostname() != "127.0.0.1" {
		t.Fatalf("Addr = %q; want 127.0.0.1 and not port %d", s.Addr(), systemPort)
	}

	if err := ping(s.Addr()); err != nil {
		t.Fatalf("ping after Start: %v", err)
	}
	s.Kill()
	if err := ping(s.Addr()); err == nil {
		t.Fatal("ping after Kill succeeded")
	}
	s.Kill() // no-op
	s.Restart(t)
	if err := ping(s.Addr()); err != nil {
		t.Fatalf("ping after Restart: %v", err)
	}
	opt, err := redis.ParseURL(s.URL())
	if err != nil {
		t.Fatalf("redis.ParseURL(%q) = %v", s.URL(), err)
	}
	if err := withClient(opt.Addr, func(rc *redis.Client) error {
		return rc.Set(t.Context(), "k", "v", 0).Err()
	}); err != nil {
		t.Fatalf("SET after Restart: %v", err)
	}
}

func TestStartCluster(t *testing.T) {
	tests := []struct {
		name    string
		masters int
		useCLI  bool
	}{
		{"redis-cli create", 3, true},
		{"meet and addslots", 2, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := startCluster(t, tc.masters, tc.useCLI)
			if got := len(c.Addrs()); got != tc.masters {
				t.Fatalf("len(Addrs()) = %d; want %d", got, tc.masters)
			}
			rc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
			defer rc.Close()
			ctx := t.Context()
			// Keys spread over all slots, so every master serves some.
			for i := range 50 {
				k := fmt.Sprintf("key%d", i)
				if err := rc.Set(ctx, k, i, 0).Err(); err != nil {
					t.Fatalf("SET %s: %v", k, err)
				}
				got, err := rc.Get(ctx, k).Int()
				if err != nil || got != i {
					t.Fatalf("GET %s = %d, %v; want %d", k, got, err, i)
				}
			}
			shards, err := rc.ClusterShards(ctx).Result()
			if err != nil {
				t.Fatalf("CLUSTER SHARDS: %v", err)
			}
			if len(shards) != tc.masters {
				t.Errorf("CLUSTER SHARDS has %d shards; want %d", len(shards), tc.masters)
			}
		})
	}
}
