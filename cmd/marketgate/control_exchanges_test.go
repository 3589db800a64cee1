package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/marketgate/marketgate/admin"
	"github.com/marketgate/marketgate/downstream/downstreamtest"
	"github.com/marketgate/marketgate/exchangesim/bybitsim"
	bybitsimtest "github.com/marketgate/marketgate/exchangesim/bybitsim/simtest"
	"github.com/marketgate/marketgate/exchangesim/okxsim"
	okxsimtest "github.com/marketgate/marketgate/exchangesim/okxsim/simtest"
	"github.com/marketgate/marketgate/internal/waitfor"
	"github.com/marketgate/marketgate/upstream"
)

// TestControlOKXBybit checks the control listener with OKX, Bybit spot and
// Bybit linear carried: /metrics has each exchange's series, the control
// API lists their feeds and streams, pins and unpins their streams (and
// refuses an invalid key before anything goes upstream), and kicks their
// clients.
func TestControlOKXBybit(t *testing.T) {
	okx, okxAddr := okxsimtest.Start(t, okxsim.Config{})
	spot, spotAddr := bybitsimtest.Start(t, bybitsim.Config{})
	linear, linearAddr := bybitsimtest.Start(t, bybitsim.Config{Product: bybitsim.ProductLinear})
	adm := freeAddr(t)
	gw := startGatewayWith(t, "", func(c *config) {
		delete(c.upstreams, "binance")
		c.adminListen = adm
		for name, addr := range map[string]string{"okx": okxAddr, "bybit": spotAddr, "bybit-linear": linearAddr} {
			c.upstreams[name] = &upstream.Config{URL: "ws://" + addr, RESTURL: "http://" + addr}
		}
	})
	call := func(method, path string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+adm+path, nil)
		req.Header.Set(admin.RequestHeader, "1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	keys := []string{"okx:trades:BTC-USDT", "bybit:publicTrade.BTCUSDT", "bybit-linear:publicTrade.BTCUSDT"}
	c := downstreamtest.Dial(t, "ws://"+gw+"/ws")
	q, _ := json.Marshal(keys)
	c.Send(fmt.Sprintf(`{"op":"subscribe","id":1,"streams":%s}`, q))
	got := map[string]bool{}
	for len(got) < len(keys) {
		var m nativeMsg
		if p := c.Next(); json.Unmarshal(p, &m) != nil || m.Error != nil {
			t.Fatalf("subscribe: %s", p)
		} else if m.Stream != "" {
			got[m.Stream] = true
		}
	}

	// Metrics: each exchange's feed series.
	waitfor.Cond(t, 10*time.Second, func() error {
		code, body := call(http.MethodGet, "/metrics")
		if code != http.StatusOK {
			return fmt.Errorf("/metrics: %d", code)
		}
		for _, x := range []string{"okx", "bybit", "bybit-linear"} {
			for _, series := range []string{"marketgate_upstream_up", "marketgate_upstream_connections", "marketgate_upstream_streams"} {
				re := regexp.MustCompile(`(?m)^` + series + `\{exchange="` + regexp.QuoteMeta(x) + `"\} [1-9]`)
				if !re.Match(body) {
					return fmt.Errorf("/metrics has no %s{exchange=%q} of at least 1", series, x)
				}
			}
		}
		return nil
	})

	// Upstreams and streams.
	code, body := call(http.MethodGet, "/api/v1/upstreams")
	var ups struct{ Upstreams []upstream.Status }
	if code != http.StatusOK || json.Unmarshal(body, &ups) != nil {
		t.Fatalf("/api/v1/upstreams: %d %s", code, body)
	}
	for _, x := range []string{"okx", "bybit", "bybit-linear"} {
		found := false
		for _, u := range ups.Upstreams {
			if u.Exchange == x {
				found = true
				if u.Streams < 1 || u.Connections < 1 || u.Symbols < 1 {
					t.Errorf("upstream %s: %d streams, %d connections, %d symbols; want each at least 1", x, u.Streams, u.Connections, u.Symbols)
				}
			}
		}
		if !found {
			t.Errorf("/api/v1/upstreams lists no %s: %s", x, body)
		}
	}
	code, body = call(http.MethodGet, "/api/v1/streams")
	var sts struct{ Streams []admin.StreamInfo }
	if code != http.StatusOK || json.Unmarshal(body, &sts) != nil {
		t.Fatalf("/api/v1/streams: %d %s", code, body)
	}
	for _, k := range keys {
		found := false
		for _, s := range sts.Streams {
			found = found || (s.Stream == k && s.Subscribers == 1)
		}
		if !found {
			t.Errorf("/api/v1/streams has no %s with one subscriber: %s", k, body)
		}
	}

	// Pins: an invalid key is refused without a request upstream; valid
	// ones are subscribed upstream and let go on unpin.
	okxReqs := okx.Clients()[0].Requests
	for _, k := range []string{"okx:tickers:NOPE-USDT", "okx:nosuch:BTC-USDT", "bybit:publicTrade.NOPEUSDT", "bybit-linear:kline.7.BTCUSDT"} {
		if code, body := call(http.MethodPut, "/api/v1/streams/"+url.PathEscape(k)); code != http.StatusBadRequest {
			t.Errorf("pin %s: %d %s; want 400", k, code, body)
		}
	}
	if n := okx.Clients()[0].Requests; n != okxReqs {
		t.Errorf("invalid pins cost OKX %d requests", n-okxReqs)
	}
	pins := []struct {
		key, name string
		subs      func() map[string]int
	}{
		{"okx:tickers:ETH-USDT", "tickers:ETH-USDT", okx.Subscriptions},
		{"bybit:tickers.ETHUSDT", "tickers.ETHUSDT", spot.Subscriptions},
		{"bybit-linear:orderbook.50.ETHUSDT", "orderbook.50.ETHUSDT", linear.Subscriptions},
	}
	for _, p := range pins {
		if code, body := call(http.MethodPut, "/api/v1/streams/"+url.PathEscape(p.key)); code != http.StatusOK {
			t.Fatalf("pin %s: %d %s", p.key, code, body)
		}
	}
	waitfor.Cond(t, 30*time.Second, func() error { // OKX paces its requests 8 s apart
		for _, p := range pins {
			if n := p.subs()[p.name]; n != 1 {
				return fmt.Errorf("pinned %s carried on %d connections; want 1", p.key, n)
			}
		}
		return nil
	})
	for _, p := range pins {
		if code, body := call(http.MethodDelete, "/api/v1/streams/"+url.PathEscape(p.key)); code != http.StatusOK {
			t.Fatalf("unpin %s: %d %s", p.key, code, body)
		}
	}
	waitfor.Cond(t, 30*time.Second, func() error { // after the linger and OKX's pacing
		for _, p := range pins {
			if n := p.subs()[p.name]; n != 0 {
				return fmt.Errorf("unpinned %s still carried on %d connections", p.key, n)
			}
		}
		return nil
	})

	// Kick the client.
	code, body = call(http.MethodGet, "/api/v1/clients")
	var cls struct {
		Clients []struct {
			ID      uint64   `json:"id"`
			Streams []string `json:"streams"`
		}
	}
	if code != http.StatusOK || json.Unmarshal(body, &cls) != nil || len(cls.Clients) != 1 {
		t.Fatalf("/api/v1/clients: %d %s; want the one client", code, body)
	}
	for _, k := range keys {
		if !slices.Contains(cls.Clients[0].Streams, k) {
			t.Errorf("the client's streams %q do not name %s", cls.Clients[0].Streams, k)
		}
	}
	if code, body := call(http.MethodDelete, fmt.Sprintf("/api/v1/clients/%d", cls.Clients[0].ID)); code != http.StatusOK {
		t.Fatalf("kick: %d %s", code, body)
	}
	if got := c.ExpectClose(); got != ws.StatusPolicyViolation {
		t.Errorf("kicked client closed with %d; want 1008", got)
	}
	for name, v := range map[string]int{"OKX": okx.Violations(), "Bybit spot": spot.Violations(), "Bybit linear": linear.Violations()} {
		if v != 0 {
			t.Errorf("%s simulator counted %d violations", name, v)
		}
	}
}
