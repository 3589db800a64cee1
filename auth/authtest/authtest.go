// Package authtest makes real connection tokens for tests: keys of every
// accepted type, tokens signed with them by golang-jwt, and a JWKS served
// by an httptest server whose keys can be rotated.
//
//	k := authtest.NewKey(t, auth.AlgES256, "k1")
//	jw := authtest.ServeJWKS(t, k)
//	token := k.Sign(t, jwt.MapClaims{"sub": "42", "exp": time.Now().Add(time.Hour).Unix()})
package authtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/marketgate/marketgate/auth"
)

// Key is a signing key made for a test.
type Key struct {
	// Alg is the algorithm it signs with (auth.AlgRS256, …).
	Alg string
	// KID is its key id, put in the tokens' header when not empty.
	KID string
	// Secret is an HS256 key; Private a public-key algorithm's key.
	Secret  []byte
	Private crypto.Signer
}

// NewKey makes a fresh key for alg (auth.AlgHS256, AlgRS256, AlgES256 or
// AlgEdDSA) with key id kid.
func NewKey(t testing.TB, alg, kid string) *Key {
	t.Helper()
	k := &Key{Alg: alg, KID: kid}
	var err error
	switch alg {
	case auth.AlgHS256:
		k.Secret = make([]byte, 32)
		rand.Read(k.Secret)
	case auth.AlgRS256:
		k.Private, err = rsa.GenerateKey(rand.Reader, 2048)
	case auth.AlgES256:
		k.Private, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case auth.AlgEdDSA:
		_, k.Private, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("authtest: no key type for %q", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Public returns the public key (nil for HS256).
func (k *Key) Public() crypto.PublicKey {
	if k.Private == nil {
		return nil
	}
	return k.Private.Public()
}

// PEM returns the public key as a PEM "PUBLIC KEY" block.
func (k *Key) PEM(t testing.TB) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// Sign returns a token of claims signed with k.
func (k *Key) Sign(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(k.Alg), claims)
	if k.KID != "" {
		tok.Header["kid"] = k.KID
	}
	var key any = k.Private
	if k.Secret != nil {
		key = k.Secret
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// JWKS is a JWKS endpoint on an httptest server.
type JWKS struct {
	// URL is the endpoint.
	URL string
	// Fetches counts the requests it answered.
	Fetches atomic.Int64

	srv  *httptest.Server
	mu   sync.Mutex
	keys []*Key
}

// ServeJWKS serves keys' public halves as a JWKS until the test ends.
func ServeJWKS(t testing.TB, keys ...*Key) *JWKS {
	t.Helper()
	j := &JWKS{keys: keys}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		j.Fetches.Add(1)
		j.mu.Lock()
		var set jose.JSONWebKeySet
		for _, k := range j.keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.Public(), KeyID: k.KID, Algorithm: k.Alg, Use: "sig"})
		}
		j.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(srv.Close)
	j.URL, j.srv = srv.URL, srv
	return j
}

// Close stops serving: fetches fail from then on.
func (j *JWKS) Close() { j.srv.Close() }

// SetKeys replaces the keys served (a rotation).
func (j *JWKS) SetKeys(keys ...*Key) {
	j.mu.Lock()
	j.keys = keys
	j.mu.Unlock()
}
