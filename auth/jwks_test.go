package auth_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/marketgate/marketgate/auth"
	"github.com/marketgate/marketgate/auth/authtest"
)

// TestJWKSRotation checks keys chosen by kid, one fetch for many tokens,
// a fetch on a new kid (rotation), at most one fetch a minute however many
// unknown kids come, and that a key the endpoint dropped stops working
// once the set is fetched again.
func TestJWKSRotation(t *testing.T) {
	clk := newClock()
	k1 := authtest.NewKey(t, auth.AlgRS256, "k1")
	k2 := authtest.NewKey(t, auth.AlgES256, "k2")
	k3 := authtest.NewKey(t, auth.AlgEdDSA, "k3")
	jw := authtest.ServeJWKS(t, k1)
	v, err := auth.New(auth.Config{JWKSURL: jw.URL, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	verify := func(k *authtest.Key) error {
		_, err := v.Verify(context.Background(), k.Sign(t, claims(clk.Now(), "aud", nil, "iss", nil)))
		return err
	}
	for range 3 {
		if err := verify(k1); err != nil {
			t.Fatalf("k1: %v", err)
		}
	}
	if n := jw.Fetches.Load(); n != 1 {
		t.Errorf("%d fetches for three tokens of one kid; want 1", n)
	}

	// The IdP rotates: k2 is added. Within the minute, k2 is refused
	// without a fetch; after it, k2's first token fetches the set.
	jw.SetKeys(k1, k2)
	if err := verify(k2); !errors.Is(err, auth.ErrInvalid) {
		t.Errorf("k2 within a minute of the last fetch: %v; want ErrInvalid", err)
	}
	clk.Add(61 * time.Second)
	if err := verify(k2); err != nil {
		t.Fatalf("k2 after the minute: %v", err)
	}
	if n := jw.Fetches.Load(); n != 2 {
		t.Errorf("%d fetches; want 2", n)
	}
	// A flood of unknown kids costs at most one fetch a minute.
	for _, kid := range []string{"x1", "x2", "x3", "x4"} {
		if err := verify(authtest.NewKey(t, auth.AlgES256, kid)); !errors.Is(err, auth.ErrInvalid) {
			t.Errorf("unknown kid %s: %v; want ErrInvalid", kid, err)
		}
	}
	if n := jw.Fetches.Load(); n != 2 {
		t.Errorf("%d fetches after four unknown kids within a minute; want still 2", n)
	}

	// k1 is retired, k3 added: once fetched, k1's tokens stop working.
	jw.SetKeys(k2, k3)
	clk.Add(61 * time.Second)
	if err := verify(k3); err != nil {
		t.Fatalf("k3: %v", err)
	}
	if err := verify(k1); !errors.Is(err, auth.ErrInvalid) {
		t.Errorf("retired k1: %v; want ErrInvalid", err)
	}
	if err := verify(k2); err != nil {
		t.Errorf("k2 after the second rotation: %v", err)
	}
	// A token must name its key's algorithm: k3's key with an ES256 kid
	// of k2 is refused.
	forged := &authtest.Key{Alg: auth.AlgEdDSA, KID: "k2", Private: k3.Private}
	if err := verify(forged); !errors.Is(err, auth.ErrInvalid) {
		t.Errorf("EdDSA token naming ES256 key k2: %v; want ErrInvalid", err)
	}
}

// TestJWKSDown checks that a JWKS endpoint that fails keeps the keys held.
func TestJWKSDown(t *testing.T) {
	clk := newClock()
	k1 := authtest.NewKey(t, auth.AlgES256, "k1")
	jw := authtest.ServeJWKS(t, k1)
	v, err := auth.New(auth.Config{JWKSURL: jw.URL, Now: clk.Now, JWKSMaxAge: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	tok := k1.Sign(t, claims(clk.Now(), "aud", nil, "iss", nil))
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	jw.SetKeys() // an empty set is fine JSON; then the server stops
	jw.Close()
	clk.Add(2 * time.Minute) // the keys are old: a fetch is due, and fails
	tok = k1.Sign(t, claims(clk.Now(), "aud", nil, "iss", nil))
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Errorf("after a failed fetch: %v; want the held key to verify", err)
	}
}
