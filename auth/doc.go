// Package auth verifies the connection tokens (JWTs) browsers present to
// the gateway and keeps the per-user connection counts that the tokens'
// limits need.
//
// A [Verifier] checks a token's signature with the keys it is given (an
// HMAC secret for HS256, PEM public keys for RS256, ES256 and EdDSA) or
// with those of a JWKS endpoint, cached by key id and fetched again on an
// unknown id at most once a minute. The accepted algorithms are pinned to
// the key types configured, and a token must name the algorithm of the key
// that verifies it: there is no "none", and no HMAC check with a public
// key's bytes. Its claims come out as [Claims]: the user (sub), the expiry
// (exp, required), the stream patterns the user may subscribe (streams,
// [Patterns]) and the user's connection limit (conns).
//
//	v, err := auth.New(auth.Config{Keys: auth.Keys{HMACSecret: secret}, Audience: "marketgate"})
//	claims, err := v.Verify(ctx, token)
//	if claims.Streams.Allows("binance:btcusdt@trade") { … }
//
// A [ConnLimiter] counts each user's connections: [Memory] on one node,
// [Redis] for the whole cluster (a sorted set per user, whose entries
// expire unless the node holding them renews them, so a node that dies
// leaves no count behind for long).
package auth
