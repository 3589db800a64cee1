package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/marketgate/marketgate/auth"
	"github.com/marketgate/marketgate/gateway"
)

// authSettings are the browser authentication flags as given.
type authSettings struct {
	hmacSecret string // secret, or @file
	publicKey  string // PEM, or @file
	jwksURL    string
	audience   string
	issuer     string
	required   bool
	anonymous  string // comma-separated patterns
}

// authFlags registers the browser authentication flags.
func authFlags(fs *flag.FlagSet, a *authSettings) {
	fs.StringVar(&a.hmacSecret, "auth-hmac-secret", "", "HS256 secret of browser connection tokens, at least 32 bytes, or @FILE to read it from FILE (one trailing newline dropped). "+
		"A secret: give it as MARKETGATE_AUTH_HMAC_SECRET or @FILE, not on the command line")
	fs.StringVar(&a.publicKey, "auth-public-key", "", "PEM public key(s) of connection tokens (RS256: RSA ≥ 2048 bits, ES256: P-256, EdDSA: Ed25519), as PEM text or @FILE")
	fs.StringVar(&a.jwksURL, "auth-jwks-url", "", "JWKS endpoint of connection tokens' keys (an identity provider's jwks_uri): keys by kid, fetched again on an unknown kid at most once a minute")
	fs.StringVar(&a.audience, "auth-audience", "", "required aud of connection tokens; empty: not checked (set it when the issuer also signs tokens for others)")
	fs.StringVar(&a.issuer, "auth-issuer", "", "required iss of connection tokens; empty: not checked")
	fs.BoolVar(&a.required, "auth-required", false, "every browser must present a valid token: native clients as their first command within --handshake-timeout, Binance-dialect clients as ?token= (else close 4001)")
	fs.StringVar(&a.anonymous, "anonymous-streams", "*", `comma-separated stream patterns ('*' the only wildcard, e.g. "binance:*@trade,binance:*@kline_*") that clients without a token, or whose token has no streams claim, may subscribe; empty: none`)
}

// authFlagNames are the flags authFlags registers, for --help.
var authFlagNames = []string{"auth-hmac-secret", "auth-public-key", "auth-jwks-url", "auth-audience", "auth-issuer", "auth-required", "anonymous-streams"}

// config returns the gateway's authentication settings, nil when they
// change nothing (no key, no requirement, every stream anonymous). Files
// named @FILE are read here.
func (a *authSettings) config() (*gateway.AuthConfig, error) {
	var patterns []string
	for _, p := range strings.Split(a.anonymous, ",") {
		if p = strings.TrimSpace(p); p != "" {
			patterns = append(patterns, p)
		}
	}
	anon, err := auth.ParsePatterns(patterns)
	if err != nil {
		return nil, fmt.Errorf("--anonymous-streams: %v", err)
	}
	ac := &gateway.AuthConfig{Required: a.required, AnonymousStreams: anon,
		Verify: auth.Config{JWKSURL: a.jwksURL, Audience: a.audience, Issuer: a.issuer}}
	if a.hmacSecret != "" {
		secret, err := valueOrFile("auth-hmac-secret", a.hmacSecret)
		if err != nil {
			return nil, err
		}
		if len(secret) < 32 {
			return nil, fmt.Errorf("--auth-hmac-secret: %d bytes is too short; HS256 needs at least 32 random bytes, e.g. $(openssl rand -hex 32)", len(secret))
		}
		ac.Verify.Keys.HMACSecret = secret
	}
	if a.publicKey != "" {
		pemText, err := valueOrFile("auth-public-key", a.publicKey)
		if err != nil {
			return nil, err
		}
		if ac.Verify.Keys.PublicKeys, err = auth.ParsePublicKeys(pemText); err != nil {
			return nil, fmt.Errorf("--auth-public-key: %v", err)
		}
	}
	if a.jwksURL != "" {
		if u, err := url.Parse(a.jwksURL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			return nil, fmt.Errorf("--auth-jwks-url: %q is not an http:// or https:// URL", a.jwksURL)
		}
	}
	keys := a.hmacSecret != "" || a.publicKey != "" || a.jwksURL != ""
	if a.required && !keys {
		return nil, fmt.Errorf("--auth-required: needs --auth-hmac-secret, --auth-public-key or --auth-jwks-url to verify tokens with")
	}
	if !keys && !a.required && len(anon) == 1 && anon[0] == "*" {
		return nil, nil // authentication off: nothing to check
	}
	return ac, nil
}

// valueOrFile returns v, or the contents of the file v names as @FILE
// (without one trailing newline).
func valueOrFile(name, v string) ([]byte, error) {
	path, ok := strings.CutPrefix(v, "@")
	if !ok {
		return []byte(v), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", name, err)
	}
	return []byte(strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")), nil
}

// maskAuth hides the secret of an auth flag's value for the start-up log
// and /debug/pprof/cmdline; ok is false for other flags.
func maskAuth(name, value string) (masked string, ok bool) {
	switch name {
	case "auth-hmac-secret":
		if strings.HasPrefix(value, "@") {
			return value, true // a file name is no secret
		}
		return "***", true
	case "auth-public-key":
		if strings.HasPrefix(value, "-----") {
			return fmt.Sprintf("(PEM, %d bytes)", len(value)), true
		}
		return value, true
	}
	return "", false
}
