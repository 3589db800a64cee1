//go:build unix

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/marketgate/marketgate/downstream/downstreamtest"
	"github.com/marketgate/marketgate/exchangesim/binancesim"
	"github.com/marketgate/marketgate/internal/redistest"
	"github.com/marketgate/marketgate/internal/waitfor"
)

const redisPassword = "s3cret-pw"

// TestRedisCredentialsEndToEnd runs gateway binaries against Redis set up
// as people run it, with a password and with TLS: browsers on every node
// get data, so every Redis client of the node (hub commands, hub
// subscriber connections, cluster coordination) carries the credentials.
// No log line shows the password.
func TestRedisCredentialsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs redis-server and gateway binaries")
	}
	bin := buildGateway(t)
	tests := []struct {
		name  string
		nodes int
		args  func(t *testing.T) []string
	}{
		{"password redis cluster", 2, func(t *testing.T) []string {
			c := redistest.StartClusterWith(t, 3, redistest.Config{Password: redisPassword})
			return []string{"--redis", c.URL(), "--redis-cluster"}
		}},
		{"tls client certificate and password", 1, func(t *testing.T) []string {
			s := redistest.StartWith(t, redistest.Config{Password: redisPassword, TLS: true})
			f := s.TLS()
			return []string{"--redis", s.URL(), "--redis-tls-ca", f.CA, "--redis-tls-cert", f.ClientCert, "--redis-tls-key", f.ClientKey}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args(t)
			_, simAddr := startSim(t, binancesim.Config{Symbols: []string{"BTCUSDT", "ETHUSDT"}, TickInterval: 20 * time.Millisecond})
			var nodes []*gatewayNode
			for i := range tc.nodes {
				nodes = append(nodes, startNode(t, bin, fmt.Sprintf("node%d", i+1), simAddr, args))
			}
			for _, g := range nodes {
				waitReady(t, g.addr)
			}
			streams := []string{"binance:btcusdt@trade", "binance:ethusdt@trade"}
			for _, g := range nodes {
				cl := downstreamtest.Dial(t, "ws://"+g.addr+"/ws")
				if err := followTrades(cl, streams, 10); err != nil {
					t.Errorf("client of %s: %v", g.id, err)
				}
			}
			for _, g := range nodes {
				if log := g.stderr.String(); strings.Contains(log, redisPassword) {
					t.Errorf("%s logged the Redis password", g.id)
				}
			}
		})
	}
}

// TestRedisWrongPassword: a node given the wrong password is not ready;
// the public /readyz says "redis auth failed" and nothing more, the
// control listener and the log say what Redis answered, and neither shows
// the password.
func TestRedisWrongPassword(t *testing.T) {
	if testing.Short() {
		t.Skip("runs redis-server and a gateway binary")
	}
	bin := buildGateway(t)
	c := redistest.StartClusterWith(t, 3, redistest.Config{Password: redisPassword})
	_, simAddr := startSim(t, binancesim.Config{Symbols: []string{"BTCUSDT"}})
	const wrong = "wrong-pw"
	url := strings.Replace(c.URL(), redisPassword, wrong, 1)
	g := startNode(t, bin, "node1", simAddr, []string{"--redis", url, "--redis-cluster"})
	get := func(u string) (int, map[string]string, error) {
		resp, err := http.Get(u)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var body map[string]string
		if err := json.Unmarshal(b, &body); err != nil {
			return 0, nil, fmt.Errorf("%s: %v", b, err)
		}
		return resp.StatusCode, body, nil
	}
	waitfor.Cond(t, 15*time.Second, func() error {
		code, body, err := get("http://" + g.addr + "/readyz")
		if err != nil {
			return err
		}
		if code != http.StatusServiceUnavailable || body["reason"] != "redis auth failed" {
			return fmt.Errorf("/readyz = %d %v; want 503 with reason %q alone", code, body, "redis auth failed")
		}
		return nil
	})
	code, body, err := get("http://" + g.admin + "/api/v1/ready")
	if err != nil || code != http.StatusServiceUnavailable || !strings.Contains(body["reason"], "WRONGPASS") {
		t.Errorf("/api/v1/ready = %d %v, %v; want 503 with Redis's WRONGPASS answer", code, body, err)
	}
	waitfor.Cond(t, 10*time.Second, func() error {
		if log := g.stderr.String(); !strings.Contains(log, "WRONGPASS") {
			return fmt.Errorf("the log does not show Redis's WRONGPASS answer")
		}
		return nil
	})
	for name, text := range map[string]string{"the log": g.stderr.String(), "/api/v1/ready": body["reason"]} {
		if strings.Contains(text, wrong) || strings.Contains(text, redisPassword) {
			t.Errorf("%s shows a password", name)
		}
	}
}
