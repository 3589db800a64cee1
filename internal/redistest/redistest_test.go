package redistest

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
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

	if err := s.ping(); err != nil {
		t.Fatalf("ping after Start: %v", err)
	}
	s.Kill()
	if err := s.ping(); err == nil {
		t.Fatal("ping after Kill succeeded")
	}
	s.Kill() // no-op
	s.Restart(t)
	if err := s.ping(); err != nil {
		t.Fatalf("ping after Restart: %v", err)
	}
	if _, err := redis.ParseURL(s.URL()); err != nil {
		t.Fatalf("redis.ParseURL(%q) = %v", s.URL(), err)
	}
	if err := s.withClient(func(rc *redis.Client) error {
		return rc.Set(t.Context(), "k", "v", 0).Err()
	}); err != nil {
		t.Fatalf("SET after Restart: %v", err)
	}
}

func TestStartCluster(t *testing.T) {
	tests := []struct {
		name    string
		masters int
		cfg     Config
		useCLI  bool
	}{
		{"redis-cli create", 3, Config{}, true},
		{"meet and addslots", 2, Config{}, false},
		{"password, redis-cli create", 3, Config{Password: "s3cret"}, true},
		{"password, meet and addslots", 2, Config{Password: "s3cret"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := startCluster(t, tc.masters, tc.cfg, tc.useCLI)
			if got := len(c.Addrs()); got != tc.masters {
				t.Fatalf("len(Addrs()) = %d; want %d", got, tc.masters)
			}
			opts, err := redis.ParseClusterURL(c.URL())
			if err != nil {
				t.Fatalf("redis.ParseClusterURL(%q) = %v", c.URL(), err)
			}
			if !slices.Equal(opts.Addrs, c.Addrs()) || opts.Password != tc.cfg.Password {
				t.Fatalf("URL %q names %v with password %q; want %v with %q", c.URL(), opts.Addrs, opts.Password, c.Addrs(), tc.cfg.Password)
			}
			rc := redis.NewClusterClient(opts)
			defer rc.Close()
			ctx := t.Context()
			if tc.cfg.Password != "" {
				noAuth := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), MaxRetries: -1})
				defer noAuth.Close()
				if err := noAuth.Set(ctx, "k", "v", 0).Err(); !redis.IsAuthError(err) {
					t.Fatalf("SET without the password = %v; want an auth error", err)
				}
			}
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

// TestStartWith starts a server with a password and one with TLS: each
// answers a client that has the password (and the certificates) and
// refuses one that lacks them.
func TestStartWith(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		// without changes good options into ones the server refuses.
		without func(*redis.Options)
		scheme  string
	}{
		{"password", Config{Password: "s3cret"}, func(o *redis.Options) { o.Password = "wrong" }, "redis"},
		{"tls", Config{TLS: true}, func(o *redis.Options) { o.TLSConfig.Certificates = nil }, "rediss"},
		{"tls and password", Config{TLS: true, Password: "s3cret"}, func(o *redis.Options) { o.TLSConfig = nil }, "rediss"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := StartWith(t, tc.cfg)
			u, err := redis.ParseURL(s.URL())
			if err != nil {
				t.Fatalf("redis.ParseURL(%q) = %v", s.URL(), err)
			}
			if u.Password != tc.cfg.Password || u.Addr != s.Addr() || (u.TLSConfig != nil) != tc.cfg.TLS || !strings.HasPrefix(s.URL(), tc.scheme+"://") {
				t.Fatalf("URL %q: password %q, addr %q, TLS %v; want %q, %q, %v", s.URL(), u.Password, u.Addr, u.TLSConfig != nil, tc.cfg.Password, s.Addr(), tc.cfg.TLS)
			}
			if (s.TLS() != nil) != tc.cfg.TLS {
				t.Fatalf("TLS() = %v; want files only with TLS", s.TLS())
			}
			ctx := t.Context()
			good := redis.NewClient(s.Options())
			defer good.Close()
			if err := good.Set(ctx, "k", "v", 0).Err(); err != nil {
				t.Fatalf("SET with the server's options: %v", err)
			}
			o := s.Options()
			o.MaxRetries = -1
			tc.without(o)
			bad := redis.NewClient(o)
			defer bad.Close()
			if err := bad.Get(ctx, "k").Err(); err == nil {
				t.Fatal("GET without the credentials succeeded")
			}
			s.Restart(t)
			if err := s.ping(); err != nil {
				t.Fatalf("ping after Restart: %v", err)
			}
		})
	}
}
