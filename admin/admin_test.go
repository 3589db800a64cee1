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
		{"token", "s3cret", "10.1.2.3:5000", "Bearer s3cret", http.MethodPost, http.StatusAccepted, true},
		{"no token sent", "s3cret", "127.0.0.1:5000", "", http.MethodPost, http.StatusUnauthorized, false},
		{"wrong token", "s3cret", "127.0.0.1:5000", "Bearer s3cre", http.MethodPost, http.StatusUnauthorized, false},
		{"not bearer", "s3cret", "127.0.0.1:5000", "Basic s3cret", http.MethodPost, http.StatusUnauthorized, false},
		{"GET", "", "127.0.0.1:5000", "", http.MethodGet, http.StatusMethodNotAllowed, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, drains := newTestServer(t, tc.token)
			req := httptest.NewRequest(tc.method, "/api/v1/drain", nil)
			req.RemoteAddr = tc.remote
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
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
