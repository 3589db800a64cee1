package auth

import "errors"

// Errors of [Verifier.Verify]. Every refusal wraps one of them, with the
// reason after it; only ErrExpired tells a client that a new token of the
// same kind would do.
var (
	// ErrInvalid is a token that is malformed, badly signed, signed with
	// an algorithm or key not accepted, for another audience or issuer,
	// without an expiry, or with claims of the wrong shape.
	ErrInvalid = errors.New("auth: invalid token")
	// ErrExpired is a token whose expiry (exp) has passed.
	ErrExpired = errors.New("auth: token expired")
	// ErrNoKeys is a Config with no key source at all.
	ErrNoKeys = errors.New("auth: no HMAC secret, public key or JWKS URL")
)
