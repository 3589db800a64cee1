package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/marketgate/marketgate/auth"
	"github.com/marketgate/marketgate/auth/authtest"
	"github.com/marketgate/marketgate/exchangesim/binancesim"
	"github.com/marketgate/marketgate/internal/syncbuf"
	"github.com/marketgate/marketgate/internal/waitfor"
)

// hexSecret returns a fresh HS256 key as 64 hex digits, the form an
// operator writes into a key file.
func hexSecret(t *testing.T) *authtest.Key {
	t.Helper()
	b := make([]byte, 32)
	rand.Read(b)
	return &authtest.Key{Alg: auth.AlgHS256, Secret: []byte(hex.EncodeToString(b))}
}

// elevenStreams are 11 Binance streams of one symbol, for a combined
// stream URL.
const elevenStreams = "btcusdt@trade/btcusdt@aggTrade/btcusdt@bookTicker/btcusdt@ticker/btcusdt@miniTicker/btcusdt@depth/" +
	"btcusdt@depth5/btcusdt@depth10/btcusdt@depth20/btcusdt@kline_1m/btcusdt@kline_5m"

// handshakeStatus opens a WebSocket handshake to the gateway at target,
// host:port (then /ws) or host:port/path, with the Origin origin and
// returns the HTTP status: 101 when accepted.
func handshakeStatus(t *testing.T, target, origin string) int {
	t.Helper()
	if !strings.Contains(target, "/") {
		target += "/ws"
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+target, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	req.Header.Set("Origin", origin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// adminStatus GETs path on the control listener adm, with token as the
// bearer token unless empty, and returns the status.
func adminStatus(t *testing.T, adm, path, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+adm+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestReload runs a gateway in-process, changes its configuration file
// (and a key file in place) and reloads: the live settings change (log
// level, origins, admin token, token key), the others are named as
// needing a restart, and an invalid file changes nothing.
func TestReload(t *testing.T) {
	_, simAddr := startSim(t, binancesim.Config{})
	key1, key2 := hexSecret(t), hexSecret(t)
	keyFile := writeFile(t, "hmac.key", string(key1.Secret)+"\n")
	addr, adm := freeAddr(t), freeAddr(t)
	const token = "reload-t0ken-0123456789"
	config := func(level, origin, adminToken string, maxConns, streamsPerConn int) string {
		s := fmt.Sprintf(`
listen: %s
admin-listen: %s
binance:
  url: ws://%s
  rest-url: http://%s
  futures:
    url: ""
log-level: %s
allowed-origins: [%s]
auth-hmac-secret: "@%s"
max-conns: %d
max-streams-per-conn: %d
`, addr, adm, simAddr, simAddr, level, origin, keyFile, maxConns, streamsPerConn)
		if adminToken != "" {
			s += "admin-token: " + adminToken + "\n"
		}
		return s
	}
	cfgFile := writeFile(t, "marketgate.yaml", config("info", "https://a.example", "", 100, 1024))
	args := []string{"--config", cfgFile}
	env := map[string]string{}
	cfg, err := parseConfig(args, env, nil)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncbuf.Buffer{}
	level := new(slog.LevelVar)
	level.Set(cfg.logLevel)
	log := cfg.loggerAt(io.MultiWriter(t.Output(), logs), level)
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		t.Fatal(err)
	}
	g, err := newGateway(cfg, ln, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v; want nil", err)
		}
	})
	waitReady(t, addr)
	r := &reloader{args: args, environ: func() map[string]string { return env }, cur: cfg, level: level, log: log, g: g}

	verifies := func(k *authtest.Key) bool {
		_, err := g.Verifier().Verify(t.Context(), k.Sign(t, jwt.MapClaims{"sub": "u1", "exp": time.Now().Add(time.Hour).Unix()}))
		return err == nil
	}
	// Before: origin a, no admin token (loopback clients only, with the
	// request header for changes), key 1.
	if got := handshakeStatus(t, addr, "https://b.example"); got != http.StatusForbidden {
		t.Fatalf("origin b before the reload: status %d; want 403", got)
	}
	if !verifies(key1) || verifies(key2) {
		t.Fatal("before the reload: want key 1 to verify, key 2 not")
	}
	if got := adminStatus(t, adm, "/api/v1/ready", ""); got != http.StatusOK {
		t.Fatalf("control API without a token before the reload: %d; want 200", got)
	}
	if got := handshakeStatus(t, addr+"/binance/stream?streams="+elevenStreams, "https://a.example"); got != http.StatusSwitchingProtocols {
		t.Fatalf("11 streams in the URL before the reload: %d; want 101", got)
	}

	// Reload: every live setting changes, and max-conns, which needs a
	// restart.
	writeFile2(t, cfgFile, config("debug", "https://b.example", token, 200, 10))
	writeFile2(t, keyFile, string(key2.Secret)+"\n") // same @FILE, new key
	applied, restart := r.reload()
	if want := []string{"admin-token", "allowed-origins", "auth-hmac-secret", "log-level", "max-streams-per-conn"}; !slices.Equal(applied, want) {
		t.Errorf("applied %q; want %q", applied, want)
	}
	if want := []string{"max-conns"}; !slices.Equal(restart, want) {
		t.Errorf("restart %q; want %q", restart, want)
	}
	if level.Level() != slog.LevelDebug {
		t.Errorf("level %v; want DEBUG", level.Level())
	}
	if got := handshakeStatus(t, addr, "https://b.example"); got != http.StatusSwitchingProtocols {
		t.Errorf("origin b after the reload: status %d; want 101", got)
	}
	if got := handshakeStatus(t, addr, "https://a.example"); got != http.StatusForbidden {
		t.Errorf("origin a after the reload: status %d; want 403", got)
	}
	if got := handshakeStatus(t, addr+"/binance/stream?streams="+elevenStreams, "https://b.example"); got != http.StatusBadRequest {
		t.Errorf("11 streams in the URL after --max-streams-per-conn 10: %d; want 400", got)
	}
	if verifies(key1) || !verifies(key2) {
		t.Error("after the reload: want key 2 to verify, key 1 not")
	}
	if got := adminStatus(t, adm, "/api/v1/ready", ""); got != http.StatusUnauthorized {
		t.Errorf("control API without the token after the reload: %d; want 401", got)
	}
	if got := adminStatus(t, adm, "/api/v1/ready", token); got != http.StatusOK {
		t.Errorf("control API with the token after the reload: %d; want 200", got)
	}
	out := logs.String()
	if !strings.Contains(out, "configuration reloaded") || !strings.Contains(out, "settings=max-conns") || strings.Contains(out, token) || strings.Contains(out, string(key2.Secret)) {
		t.Errorf("log after the reload lacks the changes or shows a secret:\n%s", out)
	}

	// An invalid file changes nothing.
	writeFile2(t, cfgFile, config("warn", "https://c.example", token, -1, 10))
	if applied, restart := r.reload(); applied != nil || restart != nil {
		t.Errorf("invalid file: applied %q, restart %q; want nothing", applied, restart)
	}
	if level.Level() != slog.LevelDebug || handshakeStatus(t, addr, "https://b.example") != http.StatusSwitchingProtocols {
		t.Error("an invalid file changed the running configuration")
	}
	waitfor.Cond(t, time.Second, func() error {
		if !strings.Contains(logs.String(), "reload refused") || !strings.Contains(logs.String(), "--max-conns") {
			return fmt.Errorf("no refusal naming --max-conns in the log")
		}
		return nil
	})

	// The same file again: nothing applied; the restart still pending
	// is named again.
	writeFile2(t, cfgFile, config("debug", "https://b.example", token, 200, 10))
	if applied, restart := r.reload(); applied != nil || !slices.Equal(restart, []string{"max-conns"}) {
		t.Errorf("unchanged file: applied %q, restart %q; want nothing, max-conns", applied, restart)
	}
}

// writeFile2 overwrites the file path with body.
func writeFile2(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}
