package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/marketgate/marketgate/downstream/downstreamtest"
	"github.com/marketgate/marketgate/exchangesim/binancesim"
	"github.com/marketgate/marketgate/internal/waitfor"
	"github.com/marketgate/marketgate/upstream"
)

// TestControlAPI drives the control listener of a running gateway: pin
// (the exchange then carries the stream with no client) and unpin, the
// client list and kicking a client (it gets a close frame), upstreams and
// nodes, and the token.
func TestControlAPI(t *testing.T) {
	sim, simAddr := startSim(t, binancesim.Config{Symbols: []string{"BTCUSDT", "ETHUSDT"}})
	aln := listen(t)
	adminAddr := aln.Addr().String()
	addr := startGateway(t, simAddr, Config{
		AdminListener: aln, AdminToken: "t0ken-t0ken-t0ken",
		Exchanges: map[string]upstream.Config{"binance": {Linger: 100 * time.Millisecond}},
	})
	call := func(method, path, token string) (int, map[string]json.RawMessage) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+adminAddr+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("%s %s: body %q is not a JSON object", method, path, body)
		}
		return resp.StatusCode, m
	}
	const key = "binance:ethusdt@trade"
	carried := func(want int) func() error {
		return func() error {
			if n := sim.Subscriptions()["ethusdt@trade"]; n != want {
				return fmt.Errorf("simulator carries ethusdt@trade on %d connections; want %d", n, want)
			}
			return nil
		}
	}

	if code, _ := call(http.MethodPut, "/api/v1/streams/"+key, ""); code != http.StatusUnauthorized {
		t.Fatalf("pin without the token: %d; want 401", code)
	}
	if code, _ := call(http.MethodPut, "/api/v1/streams/"+key, "t0ken-t0ken-t0ken"); code != http.StatusOK {
		t.Fatalf("pin: %d; want 200", code)
	}
	waitfor.Cond(t, 5*time.Second, carried(1))
	if code, body := call(http.MethodGet, "/api/v1/streams", "t0ken-t0ken-t0ken"); code != http.StatusOK || !strings.Contains(string(body["streams"]), `{"stream":"binance:ethusdt@trade","subscribers":0,"pinned":true,"messages_per_second":0,"owner":"test"}`) {
		t.Fatalf("streams: %d %s; want the pinned stream with no subscriber", code, body["streams"])
	}
	if code, _ := call(http.MethodPut, "/api/v1/streams/binance:nosuch@trade", "t0ken-t0ken-t0ken"); code != http.StatusBadRequest {
		t.Errorf("pin of an invalid stream: %d; want 400", code)
	}
	if code, _ := call(http.MethodDelete, "/api/v1/streams/"+key, "t0ken-t0ken-t0ken"); code != http.StatusOK {
		t.Fatalf("unpin: %d; want 200", code)
	}
	waitfor.Cond(t, 5*time.Second, carried(0))
	if code, _ := call(http.MethodDelete, "/api/v1/streams/"+key, "t0ken-t0ken-t0ken"); code != http.StatusNotFound {
		t.Errorf("unpin of an unpinned stream: %d; want 404", code)
	}

	c := downstreamtest.Dial(t, "ws://"+addr+"/ws")
	c.Send(`{"op":"subscribe","id":1,"streams":["binance:btcusdt@trade"]}`)
	c.Next()
	c.Next() // a trade: the stream has a last message
	if code, body := call(http.MethodGet, "/api/v1/streams", "t0ken-t0ken-t0ken"); code != http.StatusOK ||
		!strings.Contains(string(body["streams"]), `{"stream":"binance:btcusdt@trade","subscribers":1,"pinned":false,"messages_per_second":`) ||
		!strings.Contains(string(body["streams"]), `"last_message":"`) {
		t.Fatalf("streams: %d %s; want the client's stream with its last message", code, body["streams"])
	}
	code, body := call(http.MethodGet, "/api/v1/clients", "t0ken-t0ken-t0ken")
	var clients []struct {
		ID      uint64   `json:"id"`
		Streams []string `json:"streams"`
	}
	if code != http.StatusOK || json.Unmarshal(body["clients"], &clients) != nil || len(clients) != 1 || clients[0].Streams[0] != "binance:btcusdt@trade" {
		t.Fatalf("clients: %d %s; want the test's client", code, body["clients"])
	}
	if code, _ := call(http.MethodDelete, fmt.Sprintf("/api/v1/clients/%d", clients[0].ID), "t0ken-t0ken-t0ken"); code != http.StatusOK {
		t.Fatalf("kick: %d; want 200", code)
	}
	if got := c.ExpectClose(); got != ws.StatusPolicyViolation {
		t.Errorf("kicked client got close %d; want 1008", got)
	}
	if code, _ := call(http.MethodDelete, fmt.Sprintf("/api/v1/clients/%d", clients[0].ID), "t0ken-t0ken-t0ken"); code != http.StatusNotFound {
		t.Errorf("kick of a gone client: %d; want 404", code)
	}

	if code, body := call(http.MethodGet, "/api/v1/upstreams", "t0ken-t0ken-t0ken"); code != http.StatusOK || !strings.Contains(string(body["upstreams"]), `"exchange":"binance"`) {
		t.Errorf("upstreams: %d %s", code, body["upstreams"])
	}
	if code, body := call(http.MethodGet, "/api/v1/nodes", "t0ken-t0ken-t0ken"); code != http.StatusOK || !strings.Contains(string(body["nodes"]), `"id":"test"`) {
		t.Errorf("nodes: %d %s", code, body["nodes"])
	}

	// /metrics is behind the token too (no --metrics-public).
	for _, tc := range []struct {
		token string
		want  int
	}{{"", http.StatusUnauthorized}, {"t0ken-t0ken-t0ken", http.StatusOK}} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+adminAddr+"/metrics", nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET /metrics with token %q: %d; want %d", tc.token, resp.StatusCode, tc.want)
		}
		if tc.want == http.StatusOK && !strings.Contains(string(body), "marketgate_connections_accepted_total 1\n") {
			t.Errorf("/metrics does not count the one accepted client:\n%.2000s", body)
		}
	}
}
