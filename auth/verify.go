package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The signing algorithms a [Verifier] accepts, each with one key type:
// HS256 with the HMAC secret, RS256 with RSA keys, ES256 with P-256 keys,
// EdDSA with Ed25519 keys.
const (
	AlgHS256 = "HS256"
	AlgRS256 = "RS256"
	AlgES256 = "ES256"
	AlgEdDSA = "EdDSA"
)

// MaxTokenLen bounds the tokens Verify reads, in bytes.
const MaxTokenLen = 8 << 10

// MaxSubjectLen bounds the sub claim, which becomes a key in Redis.
const MaxSubjectLen = 256

// minHMACSecret is the shortest HMAC secret New accepts: HS256 wants at
// least as many bytes as the hash (RFC 7518 §3.2).
const minHMACSecret = 32

// Keys are the keys a [Verifier] checks signatures with, besides a JWKS.
type Keys struct {
	// HMACSecret verifies HS256 tokens; at least 32 bytes. Empty: none.
	HMACSecret []byte
	// PublicKeys verify RS256 (*rsa.PublicKey), ES256 (*ecdsa.PublicKey on
	// P-256) and EdDSA (ed25519.PublicKey) tokens; see [ParsePublicKeys].
	PublicKeys []crypto.PublicKey
}

// Config configures a [Verifier]. At least one of Keys and JWKSURL gives
// keys.
type Config struct {
	// Keys are the static keys; [Verifier.SetKeys] replaces them.
	Keys Keys
	// JWKSURL is a JSON Web Key Set endpoint (an identity provider's
	// jwks_uri). Its keys verify RS256, ES256 and EdDSA tokens by their
	// kid; they are fetched on first use and again, at most once per
	// JWKSRefetch, on a kid not known or once they are JWKSMaxAge old.
	JWKSURL string
	// JWKSRefetch is the least time between two JWKS fetches: a kid is
	// attacker-controlled, and must not make the gateway hammer the
	// endpoint. Default 1 minute.
	JWKSRefetch time.Duration
	// JWKSMaxAge is how long fetched keys are used before they are
	// fetched again (a failed fetch keeps them). Default 1 hour.
	JWKSMaxAge time.Duration
	// HTTPClient fetches the JWKS; nil: a client with a 5 s timeout.
	HTTPClient *http.Client
	// Audience and Issuer, when set, must be the token's aud (one of
	// them) and iss.
	Audience string
	Issuer   string
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// Logger receives JWKS fetch errors; nil discards them.
	Logger *slog.Logger
}

// Claims are what a verified token says about its holder.
type Claims struct {
	// Subject is the user (sub); may be empty.
	Subject string
	// Expiry is when the token, and a connection that relies on it,
	// expires (exp, required).
	Expiry time.Time
	// Streams are the stream patterns the user may subscribe; nil when
	// the token has no streams claim (the holder gets the anonymous set).
	Streams Patterns
	// Conns is the most connections the user may hold at once in the
	// whole cluster; 0: no limit.
	Conns int
}

// tokenClaims is the JSON of a token's claims.
type tokenClaims struct {
	jwt.RegisteredClaims
	Streams *[]string `json:"streams,omitempty"`
	Conns   *int      `json:"conns,omitempty"`
}

// Verifier checks connection tokens. It is safe for concurrent use;
// Verify may fetch the JWKS, so call it where waiting is allowed.
type Verifier struct {
	cfg    Config
	keys   atomic.Pointer[Keys]
	jwks   *jwks // nil without JWKSURL
	parser *jwt.Parser
}

// New returns a Verifier configured by cfg.
func New(cfg Config) (*Verifier, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.JWKSRefetch == 0 {
		cfg.JWKSRefetch = time.Minute
	}
	if cfg.JWKSMaxAge == 0 {
		cfg.JWKSMaxAge = time.Hour
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	if len(cfg.Keys.HMACSecret) == 0 && len(cfg.Keys.PublicKeys) == 0 && cfg.JWKSURL == "" {
		return nil, ErrNoKeys
	}
	v := &Verifier{cfg: cfg}
	if err := v.SetKeys(cfg.Keys); err != nil {
		return nil, err
	}
	if cfg.JWKSURL != "" {
		v.jwks = &jwks{url: cfg.JWKSURL, client: cfg.HTTPClient, every: cfg.JWKSRefetch, maxAge: cfg.JWKSMaxAge, now: cfg.Now, log: cfg.Logger}
	}
	opts := []jwt.ParserOption{
		// Every algorithm is listed; the key function accepts only those
		// of the keys configured, each with its own key type.
		jwt.WithValidMethods([]string{AlgHS256, AlgRS256, AlgES256, AlgEdDSA}),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(cfg.Now),
		jwt.WithStrictDecoding(),
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// SetKeys replaces the static keys (for a reload, e.g. on SIGHUP): tokens
// verified from then on use k. The JWKS, if any, is kept. It refuses an
// HMAC secret shorter than 32 bytes and a public key of a type no
// accepted algorithm uses, changing nothing.
func (v *Verifier) SetKeys(k Keys) error {
	if n := len(k.HMACSecret); n > 0 && n < minHMACSecret {
		return fmt.Errorf("auth: HMAC secret of %d bytes; HS256 needs at least %d", n, minHMACSecret)
	}
	for _, pk := range k.PublicKeys {
		if algOf(pk) == "" {
			return fmt.Errorf("auth: public key of type %T: not RSA, ECDSA P-256 or Ed25519", pk)
		}
	}
	if len(k.HMACSecret) == 0 && len(k.PublicKeys) == 0 && v.jwks == nil && v.cfg.JWKSURL == "" {
		return ErrNoKeys
	}
	v.keys.Store(&k)
	return nil
}

// algOf returns the one algorithm a public key verifies, or "".
func algOf(pk crypto.PublicKey) string {
	switch k := pk.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() >= 2048 {
			return AlgRS256
		}
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return AlgES256
		}
	case ed25519.PublicKey:
		return AlgEdDSA
	}
	return ""
}

// Verify checks token and returns its claims. Its error wraps
// [ErrExpired] for a token past its expiry and [ErrInvalid] for any other
// refusal; the text after it says why and holds nothing secret. ctx bounds
// a JWKS fetch.
func (v *Verifier) Verify(ctx context.Context, token string) (Claims, error) {
	if len(token) > MaxTokenLen {
		return Claims{}, fmt.Errorf("%w: longer than %d bytes", ErrInvalid, MaxTokenLen)
	}
	var tc tokenClaims
	_, err := v.parser.ParseWithClaims(token, &tc, func(t *jwt.Token) (any, error) { return v.key(ctx, t) })
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return Claims{}, fmt.Errorf("%w", ErrExpired)
	case err != nil:
		return Claims{}, fmt.Errorf("%w: %s", ErrInvalid, reason(err))
	}
	c := Claims{Subject: tc.Subject, Expiry: tc.ExpiresAt.Time}
	if len(c.Subject) > MaxSubjectLen {
		return Claims{}, fmt.Errorf("%w: sub longer than %d bytes", ErrInvalid, MaxSubjectLen)
	}
	if tc.Streams != nil {
		if c.Streams, err = ParsePatterns(*tc.Streams); err != nil {
			return Claims{}, fmt.Errorf("%w: streams: %v", ErrInvalid, err)
		}
	}
	if tc.Conns != nil {
		if *tc.Conns < 0 {
			return Claims{}, fmt.Errorf("%w: conns must not be negative", ErrInvalid)
		}
		c.Conns = *tc.Conns
	}
	return c, nil
}

// reason is a refusal's text for the client: jwt's, without the "token
// is unverifiable:" style prefixes it repeats.
func reason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bad signature"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong audience"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong issuer"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return lastPart(err) // names the claim
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "not valid yet"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "issued in the future"
	case errors.Is(err, errNoKey):
		return err.Error()
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "unverifiable: " + lastPart(err)
	}
	return lastPart(err)
}

// lastPart keeps a jwt error's text short: its last clause.
func lastPart(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}

// errNoKey is a token no configured key can verify.
var errNoKey = errors.New("no key for this algorithm or key id")

// key is the jwt key function: the key (or keys) of the token's
// algorithm, and only of its type. The library has checked that the
// algorithm is one of the four.
func (v *Verifier) key(ctx context.Context, t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	k := v.keys.Load()
	if alg == AlgHS256 {
		if len(k.HMACSecret) == 0 {
			return nil, fmt.Errorf("%w (HS256)", errNoKey)
		}
		return k.HMACSecret, nil
	}
	var set jwt.VerificationKeySet
	kid, _ := t.Header["kid"].(string)
	for _, pk := range k.PublicKeys {
		if algOf(pk) == alg {
			set.Keys = append(set.Keys, pk)
		}
	}
	if v.jwks != nil {
		keys, err := v.jwks.keys(ctx, kid)
		if err != nil && len(set.Keys) == 0 {
			return nil, err
		}
		for _, jk := range keys {
			if algOf(jk.Key) == alg && (jk.Algorithm == "" || jk.Algorithm == alg) {
				set.Keys = append(set.Keys, jk.Key)
			}
		}
	}
	if len(set.Keys) == 0 {
		return nil, fmt.Errorf("%w (%s)", errNoKey, alg)
	}
	return set, nil
}

// ParsePublicKeys reads the public keys of PEM blocks ("PUBLIC KEY",
// PKIX; or "RSA PUBLIC KEY", PKCS #1; or a "CERTIFICATE"'s key): RSA of
// at least 2048 bits, ECDSA on P-256 or Ed25519.
func ParsePublicKeys(data []byte) ([]crypto.PublicKey, error) {
	var out []crypto.PublicKey
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		var pk any
		var err error
		switch b.Type {
		case "PUBLIC KEY":
			pk, err = x509.ParsePKIXPublicKey(b.Bytes)
		case "RSA PUBLIC KEY":
			pk, err = x509.ParsePKCS1PublicKey(b.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(b.Bytes); err == nil {
				pk = cert.PublicKey
			}
		default:
			return nil, fmt.Errorf("auth: PEM block %q is no public key (a private key must not be given here)", b.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("auth: PEM block %q: %w", b.Type, err)
		}
		if algOf(pk) == "" {
			return nil, fmt.Errorf("auth: public key of type %T: not RSA of 2048 bits or more, ECDSA P-256 or Ed25519", pk)
		}
		out = append(out, pk)
	}
	if len(out) == 0 {
		return nil, errors.New("auth: no PEM public key found")
	}
	return out, nil
}
