package admin

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// longToken is a configured token of the least accepted length.
const longToken = "0123456789abcdef"

// TestGuardBrowsers checks that, without a token, a loopback listener is
// no browser's to use: a page on another origin cannot change anything
// (it can send neither a foreign-Origin request nor one without a
// preflight-only header), and a DNS-rebinding page (a Host of its own)
// can read nothing; while curl, the ops page and the node's tools still
// can. With a token, Host and Origin do not matter.
func TestGuardBrowsers(t *testing.T) {
	_, router := loadOpenAPI(t)
	drain := route{http.MethodPost, "/api/v1/drain"}
	pin := route{http.MethodPut, "/api/v1/streams/binance:btcusdt@trade"}
	kick := route{http.MethodDelete, "/api/v1/clients/1"}
	list := route{http.MethodGet, "/api/v1/streams"}
	cmdline := route{http.MethodGet, "/debug/pprof/cmdline"}
	tests := []struct {
		name     string
		token    string // configured
		r        route
		host     string
		header   map[string]string // beyond Host; "" values are left out
		wantCode int               // 0: the route's own success
	}{
		// What a browser on another site can send.
		{"foreign Origin", "", drain, "127.0.0.1:9090", h("Origin", "https://evil.example", "X-Marketgate-Admin", "1"), 403},
		{"foreign Origin, JSON", "", pin, "localhost:9090", h("Origin", "http://evil.example", "Content-Type", "application/json"), 403},
		{"foreign Origin, other port", "", kick, "127.0.0.1:9090", h("Origin", "http://127.0.0.1:8080", "X-Marketgate-Admin", "1"), 403},
		{"opaque Origin", "", drain, "127.0.0.1:9090", h("Origin", "null", "X-Marketgate-Admin", "1"), 403},
		{"text/plain", "", drain, "127.0.0.1:9090", h("Content-Type", "text/plain"), 403},
		{"form", "", pin, "127.0.0.1:9090", h("Content-Type", "application/x-www-form-urlencoded"), 403},
		{"multipart", "", kick, "127.0.0.1:9090", h("Content-Type", "multipart/form-data; boundary=x"), 403},
		{"no content type", "", drain, "127.0.0.1:9090", nil, 403},
		{"header not 1", "", drain, "127.0.0.1:9090", h("X-Marketgate-Admin", "true"), 403},
		// What a DNS-rebinding page sends: its own name.
		{"rebound Host, read", "", list, "rebind.evil.example:9090", nil, 403},
		{"rebound Host, pprof", "", cmdline, "rebind.evil.example:9090", nil, 403},
		{"rebound Host, no port", "", list, "rebind.evil.example", nil, 403},
		{"rebound Host, change", "", drain, "rebind.evil.example:9090", h("X-Marketgate-Admin", "1", "Origin", "http://rebind.evil.example:9090"), 403},
		{"localhost suffix", "", list, "localhost.evil.example", nil, 403},
		// Legitimate clients.
		{"curl with the header", "", drain, "127.0.0.1:9090", h("X-Marketgate-Admin", "1"), 0},
		{"JSON", "", pin, "localhost:9090", h("Content-Type", "application/json; charset=utf-8"), 0},
		{"ops page", "", kick, "127.0.0.1:9090", h("Origin", "http://127.0.0.1:9090", "X-Marketgate-Admin", "1"), 0},
		{"port-forward", "", drain, "localhost:8888", h("Origin", "http://localhost:8888", "X-Marketgate-Admin", "1"), 0},
		{"ipv6 Host", "", pin, "[::1]:9090", h("X-Marketgate-Admin", "1"), 0},
		{"Host without port", "", list, "localhost", nil, 0},
		{"read needs no header", "", list, "127.0.0.1:9090", nil, 0},
		{"pprof", "", cmdline, "127.0.0.1:9090", nil, 0},
		// With a token, the token decides.
		{"token, any Host", longToken, list, "gateway.internal.example", h("Authorization", "Bearer "+longToken), 0},
		{"token, foreign Origin", longToken, drain, "gateway.internal.example", h("Authorization", "Bearer "+longToken, "Origin", "https://ops.example"), 0},
		{"token, no header", longToken, pin, "gateway.internal.example", h("Authorization", "Bearer "+longToken, "Content-Type", "text/plain"), 0},
		{"token, rebound Host, no token", longToken, cmdline, "rebind.evil.example", nil, 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newFakeBackend()
			var drains atomic.Int32
			s := newServer(t, tc.token, b, func(c *Config) { c.Drain = func() { drains.Add(1) } })
			from := loopback
			if tc.token != "" {
				from = remote
			}
			req := httptest.NewRequest(tc.r.method, tc.r.target, nil)
			req.RemoteAddr, req.Host = from, tc.host
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			s.http.Handler.ServeHTTP(rec, req)
			if tc.wantCode != 0 {
				expectError(t, rec, tc.wantCode)
			} else if rec.Code >= 300 {
				t.Fatalf("status %d (%s); want success", rec.Code, rec.Body)
			}
			changed := drains.Load() > 0 || b.pinned("binance:btcusdt@trade") || len(b.clients) != 3
			if want := tc.wantCode == 0 && tc.r.method != http.MethodGet; changed != want {
				t.Errorf("changed the node = %v; want %v", changed, want)
			}
			validateAnswer(t, router, req, rec.Code, rec.Header(), rec.Body.Bytes())
		})
	}
}

type route struct{ method, target string }

// h returns a header map from key, value pairs.
func h(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// TestBearerScheme checks that the scheme's name is case-insensitive (RFC
// 7235, 2.1) and the token is not.
func TestBearerScheme(t *testing.T) {
	tests := []struct {
		auth     string
		wantCode int
	}{
		{"Bearer " + longToken, 202},
		{"bearer " + longToken, 202},
		{"BEARER " + longToken, 202},
		{"bEaReR " + longToken, 202},
		{"Bearer  " + longToken, 202}, // 1*SP
		{"Bearer " + strings.ToUpper(longToken), 401},
		{"Bearer" + longToken, 401},
		{"Basic " + longToken, 401},
		{"Bearer", 401},
		{longToken, 401},
	}
	for _, tc := range tests {
		t.Run(tc.auth, func(t *testing.T) {
			s := newServer(t, longToken, nil, nil)
			rec := serve(s, http.MethodPost, "/api/v1/drain", remote, tc.auth)
			if rec.Code != tc.wantCode {
				t.Errorf("Authorization %q: status %d (%s); want %d", tc.auth, rec.Code, rec.Body, tc.wantCode)
			}
		})
	}
}

// TestTokenLength checks that a short token is refused at construction.
func TestTokenLength(t *testing.T) {
	tests := []struct {
		token   string
		wantErr bool
	}{
		{"", false}, // no token: loopback only
		{"x", true},
		{"s3cret", true},
		{longToken[:15], true},
		{longToken, false},
		{longToken + longToken, false},
	}
	for _, tc := range tests {
		t.Run(tc.token, func(t *testing.T) {
			_, err := New(Config{Listener: newListener(t), Token: tc.token, Drain: func() {}})
			if (err != nil) != tc.wantErr {
				t.Errorf("New with a %d-byte token: err %v; want an error: %v", len(tc.token), err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "16") {
				t.Errorf("error %q does not say the least length", err)
			}
		})
	}
}

// TestThrottleFailures checks that an address that keeps sending wrong
// tokens is refused with 429 for a while, the right token included
// (limits: 10 failures at once, then one a second), while other
// addresses are not; an IPv6 client is counted by its /64.
func TestThrottleFailures(t *testing.T) {
	_, router := loadOpenAPI(t)
	bearer := "Bearer " + longToken
	tests := []struct {
		name     string
		attacker string
		then     string // the next request's remote address, with the right token
		wantCode int
	}{
		{"same address", "10.1.2.3:5000", "10.1.2.3:6000", 429},
		{"other address", "10.1.2.3:5000", "10.1.2.4:5000", 202},
		{"loopback counted too", "127.0.0.1:5000", "127.0.0.1:5001", 429},
		{"same ipv6 /64", "[2001:db8:1:2::1]:5000", "[2001:db8:1:2:ffff::9]:5000", 429},
		{"other ipv6 /64", "[2001:db8:1:2::1]:5000", "[2001:db8:1:3::1]:5000", 202},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, longToken, nil, nil)
			for i := range 10 {
				if rec := serve(s, http.MethodPost, "/api/v1/drain", tc.attacker, "Bearer wrong-token-wrong-token"); rec.Code != 401 {
					t.Fatalf("wrong token #%d: status %d; want 401", i+1, rec.Code)
				}
			}
			req := newRequest(http.MethodPost, "/api/v1/drain", tc.then, bearer)
			rec := httptest.NewRecorder()
			s.http.Handler.ServeHTTP(rec, req)
			if tc.wantCode != 429 {
				if rec.Code != tc.wantCode {
					t.Fatalf("status %d (%s); want %d", rec.Code, rec.Body, tc.wantCode)
				}
				return
			}
			expectError(t, rec, 429)
			if ra := rec.Header().Get("Retry-After"); ra == "" || ra == "0" {
				t.Errorf("Retry-After %q; want a positive number of seconds", ra)
			}
			validateAnswer(t, router, req, rec.Code, rec.Header(), rec.Body.Bytes())
		})
	}
}

// TestThrottleBounded checks that failures from ever new addresses keep
// memory bounded: past the bound they share one budget, which throttles
// them.
func TestThrottleBounded(t *testing.T) {
	s := newServer(t, longToken, nil, nil)
	var throttled int
	for i := range 5000 {
		from := fmt.Sprintf("[2001:db8:%x::1]:5000", i)
		if rec := serve(s, http.MethodGet, "/api/v1/openapi.json", from, "Bearer x"); rec.Code == 429 {
			throttled++
		}
	}
	if n := len(s.failures.byAddr); n > maxTracked+1 {
		t.Errorf("%d addresses remembered; want at most %d", n, maxTracked+1)
	}
	if throttled == 0 {
		t.Error("no request of 5000 new addresses was throttled")
	}
}

// newListener returns a loopback listener closed when the test ends.
func newListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}
