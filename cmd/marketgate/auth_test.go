package main

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/marketgate/marketgate/auth"
	"github.com/marketgate/marketgate/auth/authtest"
)

func TestAuthFlags(t *testing.T) {
	dir := t.TempDir()
	secret := strings.Repeat("s", 40)
	secretFile := filepath.Join(dir, "secret")
	os.WriteFile(secretFile, []byte(secret+"\n"), 0o600)
	key := authtest.NewKey(t, auth.AlgES256, "")
	pemFile := filepath.Join(dir, "key.pem")
	os.WriteFile(pemFile, key.PEM(t), 0o644)

	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string // "" for none
		check   func(t *testing.T, c config)
	}{
		{name: "off by default", check: func(t *testing.T, c config) {
			if c.auth != nil {
				t.Errorf("auth = %+v; want nil (off)", c.auth)
			}
		}},
		{name: "secret from the environment", env: map[string]string{"MARKETGATE_AUTH_HMAC_SECRET": secret},
			args: []string{"--auth-required", "--auth-audience", "marketgate", "--anonymous-streams", "binance:*@trade, binance:*@kline_*"},
			check: func(t *testing.T, c config) {
				if c.auth == nil || string(c.auth.Verify.Keys.HMACSecret) != secret || !c.auth.Required || c.auth.Verify.Audience != "marketgate" ||
					!slices.Equal(c.auth.AnonymousStreams, auth.Patterns{"binance:*@trade", "binance:*@kline_*"}) {
					t.Errorf("auth = %+v", c.auth)
				}
				for _, a := range c.effective {
					if strings.Contains(a.Value.String(), secret) {
						t.Errorf("the effective config shows the secret: %v", a)
					}
				}
			}},
		{name: "secret and key from files", args: []string{"--auth-hmac-secret", "@" + secretFile, "--auth-public-key", "@" + pemFile},
			check: func(t *testing.T, c config) {
				if string(c.auth.Verify.Keys.HMACSecret) != secret || len(c.auth.Verify.Keys.PublicKeys) != 1 {
					t.Errorf("auth = %+v", c.auth)
				}
			}},
		{name: "PEM text in the environment", env: map[string]string{"MARKETGATE_AUTH_PUBLIC_KEY": string(key.PEM(t))},
			check: func(t *testing.T, c config) {
				if c.auth == nil || len(c.auth.Verify.Keys.PublicKeys) != 1 {
					t.Errorf("auth = %+v", c.auth)
				}
			}},
		{name: "anonymous restricted without keys", args: []string{"--anonymous-streams", ""}, check: func(t *testing.T, c config) {
			if c.auth == nil || len(c.auth.AnonymousStreams) != 0 {
				t.Errorf("auth = %+v; want anonymous clients allowed nothing", c.auth)
			}
		}},
		{name: "required without keys", args: []string{"--auth-required"}, wantErr: "--auth-required: needs"},
		{name: "short secret", args: []string{"--auth-hmac-secret", "short"}, wantErr: "--auth-hmac-secret: 5 bytes is too short"},
		{name: "missing file", args: []string{"--auth-hmac-secret", "@" + filepath.Join(dir, "none")}, wantErr: "--auth-hmac-secret: open"},
		{name: "bad PEM", args: []string{"--auth-public-key", "nonsense"}, wantErr: "--auth-public-key: auth: no PEM public key"},
		{name: "bad JWKS URL", args: []string{"--auth-jwks-url", "ftp://x"}, wantErr: "--auth-jwks-url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(tc.args, tc.env, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseConfig = %v; want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
	if got := redactArgs([]string{"--auth-hmac-secret", secret, "--auth-hmac-secret=" + secret}); slices.ContainsFunc(got, func(a string) bool { return strings.Contains(a, secret) }) {
		t.Errorf("redactArgs = %q; want the secret masked", got)
	}
}
