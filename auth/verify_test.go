package auth_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/marketgate/marketgate/auth"
	"github.com/marketgate/marketgate/auth/authtest"
)

// clock is a settable time for the verifier and its tokens.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_800_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// claims returns valid claims at now, with the changes in kv applied (a
// nil value deletes a claim).
func claims(now time.Time, kv ...any) jwt.MapClaims {
	m := jwt.MapClaims{"sub": "42", "exp": now.Add(time.Hour).Unix(), "aud": "marketgate", "iss": "https://issuer.example"}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(m, kv[i].(string))
		} else {
			m[kv[i].(string)] = kv[i+1]
		}
	}
	return m
}

// forge makes a token from header and payload: unsigned ("alg":"none")
// when key is nil, else HS256 keyed with key, e.g. bytes an attacker
// knows (a public key's PEM): the algorithm confusion attacks.
func forge(header, payload string, key []byte) string {
	enc := base64.RawURLEncoding
	s := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	if key == nil {
		return s + "."
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return s + "." + enc.EncodeToString(m.Sum(nil))
}

func TestVerify(t *testing.T) {
	clk := newClock()
	now := clk.Now()
	hs := authtest.NewKey(t, auth.AlgHS256, "")
	rs := authtest.NewKey(t, auth.AlgRS256, "")
	es := authtest.NewKey(t, auth.AlgES256, "")
	ed := authtest.NewKey(t, auth.AlgEdDSA, "")
	otherES := authtest.NewKey(t, auth.AlgES256, "")
	otherHS := authtest.NewKey(t, auth.AlgHS256, "")
	var pems []byte
	for _, k := range []*authtest.Key{rs, es, ed} {
		pems = append(pems, k.PEM(t)...)
	}
	pks, err := auth.ParsePublicKeys(pems)
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.New(auth.Config{Keys: auth.Keys{HMACSecret: hs.Secret, PublicKeys: pks},
		Audience: "marketgate", Issuer: "https://issuer.example", Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	exp := now.Add(time.Hour).Unix()
	validPayload := `{"sub":"42","aud":"marketgate","iss":"https://issuer.example","exp":` + itoa(exp) + `}`

	for _, tc := range []struct {
		name    string
		token   string
		want    error // nil: accepted
		reason  string
		streams auth.Patterns
		conns   int
	}{
		{name: "HS256", token: hs.Sign(t, claims(now))},
		{name: "RS256", token: rs.Sign(t, claims(now))},
		{name: "ES256", token: es.Sign(t, claims(now))},
		{name: "EdDSA", token: ed.Sign(t, claims(now))},
		{name: "streams and conns", token: es.Sign(t, claims(now, "streams", []string{"binance:*@trade", "okx:*"}, "conns", 3)),
			streams: auth.Patterns{"binance:*@trade", "okx:*"}, conns: 3},
		{name: "audience in a list", token: hs.Sign(t, claims(now, "aud", []string{"other", "marketgate"}))},
		{name: "bad signature", token: otherES.Sign(t, claims(now)), want: auth.ErrInvalid, reason: "bad signature"},
		{name: "bad HMAC secret", token: otherHS.Sign(t, claims(now)), want: auth.ErrInvalid, reason: "bad signature"},
		{name: "tampered payload", token: tamper(hs.Sign(t, claims(now))), want: auth.ErrInvalid},
		{name: "wrong audience", token: hs.Sign(t, claims(now, "aud", "someone-else")), want: auth.ErrInvalid, reason: "wrong audience"},
		{name: "no audience", token: hs.Sign(t, claims(now, "aud", nil)), want: auth.ErrInvalid, reason: "aud"},
		{name: "wrong issuer", token: hs.Sign(t, claims(now, "iss", "https://evil.example")), want: auth.ErrInvalid, reason: "wrong issuer"},
		{name: "expired", token: hs.Sign(t, claims(now, "exp", now.Add(-time.Second).Unix())), want: auth.ErrExpired},
		{name: "no exp", token: hs.Sign(t, claims(now, "exp", nil)), want: auth.ErrInvalid, reason: "exp"},
		{name: "not yet valid", token: hs.Sign(t, claims(now, "nbf", now.Add(time.Minute).Unix())), want: auth.ErrInvalid},
		{name: "malformed", token: "not.a.jwt", want: auth.ErrInvalid, reason: "malformed"},
		{name: "empty", token: "", want: auth.ErrInvalid},
		{name: "too long", token: strings.Repeat("a", auth.MaxTokenLen+1), want: auth.ErrInvalid},
		{name: "alg none", token: forge(`{"alg":"none","typ":"JWT"}`, validPayload, nil), want: auth.ErrInvalid},
		{name: "HS256 keyed with the public key's PEM", token: forge(`{"alg":"HS256","typ":"JWT"}`, validPayload, rs.PEM(t)),
			want: auth.ErrInvalid, reason: "bad signature"},
		{name: "HS512 not accepted", token: signHS512(t, hs.Secret, claims(now)), want: auth.ErrInvalid},
		{name: "RS256 header on an ES256 signature", token: relabel(es.Sign(t, claims(now)), "RS256"), want: auth.ErrInvalid},
		{name: "streams not a list", token: hs.Sign(t, claims(now, "streams", "binance:*")), want: auth.ErrInvalid},
		{name: "empty pattern", token: hs.Sign(t, claims(now, "streams", []string{""})), want: auth.ErrInvalid},
		{name: "negative conns", token: hs.Sign(t, claims(now, "conns", -1)), want: auth.ErrInvalid},
		{name: "sub too long", token: hs.Sign(t, claims(now, "sub", strings.Repeat("x", auth.MaxSubjectLen+1))), want: auth.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := v.Verify(context.Background(), tc.token)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Verify = %v; want accepted", err)
				}
				if got.Subject != "42" || got.Expiry.Unix() != exp || !slices.Equal(got.Streams, tc.streams) || got.Conns != tc.conns {
					t.Errorf("Verify = %+v; want sub 42, exp %d, streams %v, conns %d", got, exp, tc.streams, tc.conns)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, %v; want %v", got, err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("Verify = %v; want the reason %q", err, tc.reason)
			}
		})
	}
}

// TestVerifyOnlyConfiguredAlgorithms checks that a verifier accepts only
// the algorithms of the keys it has.
func TestVerifyOnlyConfiguredAlgorithms(t *testing.T) {
	clk := newClock()
	hs := authtest.NewKey(t, auth.AlgHS256, "")
	es := authtest.NewKey(t, auth.AlgES256, "")
	v, err := auth.New(auth.Config{Keys: auth.Keys{HMACSecret: hs.Secret}, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), es.Sign(t, claims(clk.Now()))); !errors.Is(err, auth.ErrInvalid) {
		t.Errorf("ES256 token on an HMAC-only verifier: %v; want ErrInvalid", err)
	}
	// SetKeys swaps the keys: the old secret stops working.
	other := authtest.NewKey(t, auth.AlgHS256, "")
	if err := v.SetKeys(auth.Keys{HMACSecret: other.Secret}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), hs.Sign(t, claims(clk.Now()))); !errors.Is(err, auth.ErrInvalid) {
		t.Errorf("old secret after SetKeys: %v; want ErrInvalid", err)
	}
	if _, err := v.Verify(context.Background(), other.Sign(t, claims(clk.Now()))); err != nil {
		t.Errorf("new secret after SetKeys: %v", err)
	}
	if err := v.SetKeys(auth.Keys{HMACSecret: []byte("short")}); err == nil {
		t.Error("SetKeys took a 5-byte HMAC secret")
	}
}

func TestNewNeedsKeys(t *testing.T) {
	if _, err := auth.New(auth.Config{}); !errors.Is(err, auth.ErrNoKeys) {
		t.Errorf("New(no keys) = %v; want ErrNoKeys", err)
	}
}

func TestParsePublicKeys(t *testing.T) {
	es := authtest.NewKey(t, auth.AlgES256, "")
	if ks, err := auth.ParsePublicKeys(es.PEM(t)); err != nil || len(ks) != 1 {
		t.Errorf("ParsePublicKeys(ES256 PEM) = %v, %v", ks, err)
	}
	for _, bad := range []string{"", "not pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"} {
		if _, err := auth.ParsePublicKeys([]byte(bad)); err == nil {
			t.Errorf("ParsePublicKeys(%q) took it", bad)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// tamper changes one claim of a signed token, keeping its signature.
func tamper(token string) string {
	parts := strings.Split(token, ".")
	p, _ := base64.RawURLEncoding.DecodeString(parts[1])
	p = []byte(strings.Replace(string(p), `"sub":"42"`, `"sub":"43"`, 1))
	parts[1] = base64.RawURLEncoding.EncodeToString(p)
	return strings.Join(parts, ".")
}

// relabel replaces a token's header with one naming alg.
func relabel(token, alg string) string {
	parts := strings.Split(token, ".")
	parts[0] = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"` + alg + `","typ":"JWT"}`))
	return strings.Join(parts, ".")
}

func signHS512(t *testing.T, secret []byte, c jwt.MapClaims) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS512, c).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
