package gateway

import (
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"

	"github.com/marketgate/marketgate/auth"
	"github.com/marketgate/marketgate/downstream"
)

// AuthConfig configures browser authentication (see the README's
// Authentication).
type AuthConfig struct {
	// Verify configures the token verifier: its keys, JWKS URL, audience
	// and issuer. Without any key, no token is accepted and every client
	// is anonymous (AnonymousStreams still applies).
	Verify auth.Config
	// Required closes clients that present no valid token (4001).
	Required bool
	// AnonymousStreams are the stream patterns a client without a token,
	// or whose token has no streams claim, may subscribe; nil allows
	// none.
	AnonymousStreams auth.Patterns
}

// hasKeys reports whether a verifier can be made from a.
func (a *AuthConfig) hasKeys() bool {
	k := a.Verify.Keys
	return len(k.HMACSecret) > 0 || len(k.PublicKeys) > 0 || a.Verify.JWKSURL != ""
}

// newAuth builds the browsers' authentication from cfg: the verifier, and
// the per-user connection count, in Redis when the node has one (for the
// whole cluster), else in memory. It returns nil when cfg is nil.
func newAuth(cfg *AuthConfig, nodeID string, rdb redis.UniversalClient, log *slog.Logger) (*downstream.AuthConfig, *auth.Verifier, *auth.Redis, error) {
	if cfg == nil {
		return nil, nil, nil, nil
	}
	ac := &downstream.AuthConfig{Required: cfg.Required, Anonymous: cfg.AnonymousStreams, NodeID: nodeID}
	var v *auth.Verifier
	if cfg.hasKeys() {
		vc := cfg.Verify
		vc.Logger = log.With("component", "auth")
		var err error
		if v, err = auth.New(vc); err != nil {
			return nil, nil, nil, fmt.Errorf("auth: %w", err)
		}
		ac.Verifier = v
	} else if cfg.Required {
		return nil, nil, nil, fmt.Errorf("auth: a token is required, but no key is given to verify it")
	}
	var rl *auth.Redis
	if rdb != nil {
		var err error
		if rl, err = auth.NewRedis(auth.RedisConfig{Client: rdb, Logger: log.With("component", "auth")}); err != nil {
			return nil, nil, nil, err
		}
		ac.Limiter = rl
	} else {
		ac.Limiter = &auth.Memory{}
	}
	return ac, v, rl, nil
}

// Verifier returns the browsers' token verifier, nil when none is
// configured. Its SetKeys swaps the keys at run time (a reload).
func (g *Gateway) Verifier() *auth.Verifier { return g.verifier }
