package admin

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// newTestServer returns a Server with token and a drain counter; it is
// driven through its handler, so tests can set the remote address.
func newTestServer(t *testing.T, token string) (*Server, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var drains atomic.Int32
	s, err := New(Config{Listener: ln, Token: token, Drain: func() { drains.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	return s, &drains
}

func TestDrainEndpoint(t *testing.T) {
	tests := []struct {
		name      string
		token     string // configured
		remote    string
		auth      string
		method    string
		wantCode  int
		wantDrain bool
	}{
		{"loopback, no token set", "", "127.0.0.1:5000", "", http.MethodPost, http.StatusAccepted, true},
		{"ipv6 loopback", "", "[::1]:5000", "", http.MethodPost, http.StatusAccepted, true},
		{"remote, no token set", "", "10.1.2.3:5000", "", http.MethodPost, http.StatusForbidden, false},
		{"token", "s3cret-s3cret-s3cret", "10.1.2.3:5000", "Bearer s3cret-s3cret-s3cret", http.MethodPost, http.StatusAccepted, true},
		{"no token sent", "s3cret-s3cret-s3cret", "127.0.0.1:5000", "", http.MethodPost, http.StatusUnauthorized, false},
		{"wrong token", "s3cret-s3cret-s3cret", "127.0.0.1:5000", "Bearer WRONG-WRONG-WRONG", http.MethodPost, http.StatusUnauthorized, false},
		{"not bearer", "s3cret-s3cret-s3cret", "127.0.0.1:5000", "Basic s3cret-s3cret-s3cret", http.MethodPost, http.StatusUnauthorized, false},
		{"GET", "", "127.0.0.1:5000", "", http.MethodGet, http.StatusMethodNotAllowed, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, drains := newTestServer(t, tc.token)
			req := newRequest(tc.method, "/api/v1/drain", tc.remote, tc.auth)
			rec := httptest.NewRecorder()
			s.http.Handler.ServeHTTP(rec, req)
			if rec.Code != tc.wantCode {
				t.Fatalf("status %d (%s); want %d", rec.Code, rec.Body, tc.wantCode)
			}
			if got := drains.Load() == 1; got != tc.wantDrain {
				t.Errorf("drained = %v; want %v", got, tc.wantDrain)
			}
			var body map[string]json.RawMessage
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q is not JSON: %v", rec.Body, err)
			}
			if tc.wantCode >= 400 {
				var e errorBody
				json.Unmarshal(rec.Body.Bytes(), &e)
				if e.Error.Code == "" || e.Error.Msg == "" || strings.Contains(rec.Body.String(), "goroutine") {
					t.Errorf("error body %s; want {\"error\":{\"code\":…,\"msg\":…}}", rec.Body)
				}
			}
		})
	}
}

// TestOpsPageRoutes checks who gets the ops page: anyone when a token is
// set (the page asks for it; the API stays guarded), loopback clients only
// when none is; and that / leads to it.
func TestOpsPageRoutes(t *testing.T) {
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("page " + r.URL.Path))
	})
	tests := []struct {
		name     string
		token    string // configured
		page     bool   // Config.Page set
		method   string
		target   string
		from     string
		wantCode int
		wantBody string // the page's, or where a redirect goes
	}{
		{"page, token set, none sent", "s3cret-s3cret-s3cret", true, http.MethodGet, "/ops/", remote, 200, "page /ops/"},
		{"page file, token set", "s3cret-s3cret-s3cret", true, http.MethodGet, "/ops/ops.js", remote, 200, "page /ops/ops.js"},
		{"root redirects", "s3cret-s3cret-s3cret", true, http.MethodGet, "/", remote, 302, "/ops/"},
		{"ops redirects", "s3cret-s3cret-s3cret", true, http.MethodGet, "/ops", remote, 302, "/ops/"},
		{"API still guarded", "s3cret-s3cret-s3cret", true, http.MethodGet, "/api/v1/openapi.json", remote, 401, ""},
		{"POST to the page guarded", "s3cret-s3cret-s3cret", true, http.MethodPost, "/ops/", remote, 401, ""},
		{"no token, loopback", "", true, http.MethodGet, "/ops/", loopback, 200, "page /ops/"},
		{"no token, remote", "", true, http.MethodGet, "/ops/", remote, 403, ""},
		{"no token, remote root", "", true, http.MethodGet, "/", remote, 403, ""},
		{"no page", "", false, http.MethodGet, "/ops/", loopback, 404, ""},
		{"no page, token set", "s3cret-s3cret-s3cret", false, http.MethodGet, "/ops/", remote, 401, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, tc.token, nil, func(c *Config) {
				if tc.page {
					c.Page = page
				}
			})
			rec := serve(s, tc.method, tc.target, tc.from, "")
			if rec.Code != tc.wantCode {
				t.Fatalf("status %d (%s); want %d", rec.Code, rec.Body, tc.wantCode)
			}
			switch {
			case tc.wantCode == 302:
				if loc := rec.Header().Get("Location"); loc != tc.wantBody {
					t.Errorf("redirect to %q; want %q", loc, tc.wantBody)
				}
			case tc.wantCode == 200:
				if rec.Body.String() != tc.wantBody {
					t.Errorf("body %q; want %q", rec.Body, tc.wantBody)
				}
			default:
				var e errorBody
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code == "" {
					t.Errorf("error body %q; want the JSON error shape", rec.Body)
				}
			}
		})
	}
}
