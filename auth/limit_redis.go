package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

var _ ConnLimiter = (*Redis)(nil)

// Defaults of [RedisConfig].
const (
	defaultLimitTTL    = 60 * time.Second
	defaultLimitPrefix = "marketgate:auth:conns:"
	// releaseQueue bounds the releases waiting for Redis; beyond, an
	// entry is left to expire (it is no longer renewed).
	releaseQueue = 4096
)

// RedisConfig configures a [Redis] limiter.
type RedisConfig struct {
	// Client is the Redis (or Redis Cluster) client; required. The
	// limiter does not close it.
	Client redis.UniversalClient
	// TTL is how long a counted connection stays counted unless its node
	// renews it; the node renews every TTL/3. A node that dies frees its
	// users' counts within TTL. Default 60 s.
	TTL time.Duration
	// Prefix starts each user's key. Default "marketgate:auth:conns:".
	Prefix string
	// Logger receives Redis errors; nil discards them.
	Logger *slog.Logger
}

// Redis counts connections for the whole cluster: one sorted set per user
// of connection id → expiry (Redis's clock), trimmed of expired entries
// and checked against the limit in one script. The connections this node
// counted are renewed by Run. Safe for concurrent use.
type Redis struct {
	cfg      RedisConfig
	releases chan [2]string

	// mu guards held: this node's counted connections, by user, which
	// Run renews.
	mu   sync.Mutex
	held map[string]map[string]struct{}
}

// NewRedis returns a Redis limiter configured by cfg. It starts nothing;
// call Run.
func NewRedis(cfg RedisConfig) (*Redis, error) {
	if cfg.Client == nil {
		return nil, errors.New("auth: RedisConfig: Client is required")
	}
	if cfg.TTL == 0 {
		cfg.TTL = defaultLimitTTL
	}
	if cfg.TTL < 3*time.Millisecond {
		return nil, fmt.Errorf("auth: RedisConfig: TTL %v is too short", cfg.TTL)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = defaultLimitPrefix
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Redis{cfg: cfg, releases: make(chan [2]string, releaseQueue), held: make(map[string]map[string]struct{})}, nil
}

// acquireScript trims expired entries of KEYS[1], then counts ARGV[1] with
// expiry now+ARGV[3] ms unless the set holds ARGV[2] others. 1: counted.
var acquireScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
`)

// renewScript pushes the expiry of the entries ARGV[2..] of KEYS[1] to
// now+ARGV[1] ms.
var renewScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
`)

func (r *Redis) key(user string) string { return r.cfg.Prefix + "{" + user + "}" }

// Acquire implements [ConnLimiter]; it makes one Redis call.
func (r *Redis) Acquire(ctx context.Context, user, conn string, limit int) (bool, error) {
	n, err := acquireScript.Run(ctx, r.cfg.Client, []string{r.key(user)}, conn, limit, r.cfg.TTL.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("auth: count connection of user: %w", err)
	}
	if n != 1 {
		return false, nil
	}
	r.mu.Lock()
	if r.held[user] == nil {
		r.held[user] = make(map[string]struct{})
	}
	r.held[user][conn] = struct{}{}
	r.mu.Unlock()
	return true, nil
}

// Release implements [ConnLimiter]: the entry is no longer renewed, and
// Run removes it from Redis.
func (r *Redis) Release(user, conn string) {
	r.mu.Lock()
	if h := r.held[user]; h != nil {
		delete(h, conn)
		if len(h) == 0 {
			delete(r.held, user)
		}
	}
	r.mu.Unlock()
	select {
	case r.releases <- [2]string{user, conn}:
	default: // it expires within TTL
	}
}

// Run renews this node's entries every TTL/3 and removes released ones,
// until ctx ends; then it removes the entries it still holds (with a
// bound of its own) and returns nil.
func (r *Redis) Run(ctx context.Context) error {
	tick := time.NewTicker(r.cfg.TTL / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			r.releaseAll(context.WithoutCancel(ctx))
			return nil
		case <-tick.C:
			r.renew(ctx)
		case rel := <-r.releases:
			if err := r.cfg.Client.ZRem(ctx, r.key(rel[0]), rel[1]).Err(); err != nil && ctx.Err() == nil {
				r.cfg.Logger.Warn("auth: release a counted connection; it expires on its own", "err", err)
			}
		}
	}
}

// renew pushes the expiry of every entry this node holds.
func (r *Redis) renew(ctx context.Context) {
	r.mu.Lock()
	batch := make(map[string][]any, len(r.held))
	for user, conns := range r.held {
		args := make([]any, 0, len(conns)+1)
		args = append(args, r.cfg.TTL.Milliseconds())
		for c := range conns {
			args = append(args, c)
		}
		batch[user] = args
	}
	r.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.TTL/3)
	defer cancel()
	pipe := r.cfg.Client.Pipeline()
	for user, args := range batch {
		renewScript.Eval(ctx, pipe, []string{r.key(user)}, args...)
	}
	if _, err := pipe.Exec(ctx); err != nil && ctx.Err() == nil {
		r.cfg.Logger.Warn("auth: renew counted connections", "err", err)
	}
}

// releaseAll removes what this node still counts, at shutdown.
func (r *Redis) releaseAll(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	r.mu.Lock()
	held := r.held
	r.held = make(map[string]map[string]struct{})
	r.mu.Unlock()
	pipe := r.cfg.Client.Pipeline()
	n := 0
	for user, conns := range held {
		for c := range conns {
			pipe.ZRem(ctx, r.key(user), c)
			n++
		}
	}
	for {
		select {
		case rel := <-r.releases:
			pipe.ZRem(ctx, r.key(rel[0]), rel[1])
			n++
			continue
		default:
		}
		break
	}
	if n > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			r.cfg.Logger.Warn("auth: release counted connections at shutdown", "err", err)
		}
	}
}
