package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// routes has one successful request per route, for the guard's tests.
var routes = []struct{ method, target string }{
	{http.MethodPost, "/api/v1/drain"},
	{http.MethodGet, "/api/v1/openapi.json"},
	{http.MethodGet, "/api/v1/streams"},
	{http.MethodPut, "/api/v1/streams/binance:btcusdt@trade"},
	{http.MethodDelete, "/api/v1/streams/binance:ethusdt@depth5@100ms"},
	{http.MethodGet, "/api/v1/upstreams"},
	{http.MethodGet, "/api/v1/nodes"},
	{http.MethodGet, "/api/v1/clients"},
	{http.MethodDelete, "/api/v1/clients/1"},
	{http.MethodGet, "/metrics"},
	{http.MethodGet, "/debug/pprof/"},
	{http.MethodGet, "/debug/pprof/cmdline"},
	{http.MethodGet, "/debug/pprof/heap"},
}

func TestGuardEveryRoute(t *testing.T) {
	auths := []struct {
		name     string
		token    string // configured
		from     string
		auth     string
		wantCode int // 0: the route's own success
	}{
		{"loopback, no token set", "", loopback, "", 0},
		{"ipv6 loopback, no token set", "", "[::1]:5000", "", 0},
		{"remote, no token set", "", remote, "", http.StatusForbidden},
		{"remote, no token set, a token sent", "", remote, "Bearer s3cret-s3cret-s3cret", http.StatusForbidden},
		{"remote, token", "s3cret-s3cret-s3cret", remote, "Bearer s3cret-s3cret-s3cret", 0},
		{"no token sent", "s3cret-s3cret-s3cret", loopback, "", http.StatusUnauthorized},
		{"wrong token", "s3cret-s3cret-s3cret", loopback, "Bearer WRONG-WRONG-WRONG", http.StatusUnauthorized},
		{"not bearer", "s3cret-s3cret-s3cret", loopback, "Basic s3cret-s3cret-s3cret", http.StatusUnauthorized},
	}
	for _, a := range auths {
		for _, r := range routes {
			t.Run(a.name+"/"+r.method+" "+r.target, func(t *testing.T) {
				s := newServer(t, a.token, newFakeBackend(), nil)
				rec := serve(s, r.method, r.target, a.from, a.auth)
				if a.wantCode == 0 {
					if rec.Code >= 300 {
						t.Fatalf("status %d (%s); want success", rec.Code, rec.Body)
					}
					return
				}
				expectError(t, rec, a.wantCode)
			})
		}
	}
	// An unknown path is guarded like the others: no probing for routes.
	s := newServer(t, "s3cret-s3cret-s3cret", newFakeBackend(), nil)
	expectError(t, serve(s, http.MethodGet, "/api/v1/nope", remote, ""), http.StatusUnauthorized)
	expectError(t, serve(s, http.MethodGet, "/api/v1/nope", remote, "Bearer s3cret-s3cret-s3cret"), http.StatusNotFound)
}

// expectError fails t unless rec is an error answer with status code in
// the shape {"error":{"code":…,"msg":…}} and nothing else.
func expectError(t *testing.T, rec interface {
	Result() *http.Response
}, code int) errorBody {
	t.Helper()
	res := rec.Result()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != code {
		t.Fatalf("status %d (%s); want %d", res.StatusCode, body, code)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q; want application/json", ct)
	}
	var e errorBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("error body %s: %v", body, err)
	}
	wantCode := strings.ReplaceAll(strings.ToLower(http.StatusText(code)), " ", "_")
	if e.Error.Code != wantCode || e.Error.Msg == "" || strings.Contains(string(body), "goroutine") {
		t.Errorf("error body %s; want code %q and a msg", body, wantCode)
	}
	return e
}

// expectJSON fails t unless rec answered code with a JSON body equal to
// want.
func expectJSON(t *testing.T, rec interface {
	Result() *http.Response
}, code int, want string) {
	t.Helper()
	res := rec.Result()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != code {
		t.Fatalf("status %d (%s); want %d", res.StatusCode, body, code)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q; want application/json", ct)
	}
	if !jsonEqual(body, []byte(want)) {
		t.Errorf("body\n%s\nwant\n%s", body, want)
	}
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

func TestStreamsAndPins(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		target   string
		wantCode int
		wantBody string // for success
		wantMsg  string // in the error's msg
		pinned   string // a key pinned afterwards
	}{
		{"list", http.MethodGet, "/api/v1/streams", 200,
			`{"streams":[{"stream":"binance:btcusdt@trade","subscribers":2,"pinned":false,"messages_per_second":0},{"stream":"binance:ethusdt@depth5@100ms","subscribers":0,"pinned":true,"messages_per_second":0}]}`, "", ""},
		{"pin", http.MethodPut, "/api/v1/streams/binance:btcusdt@trade", 200,
			`{"stream":"binance:btcusdt@trade","pinned":true}`, "", "binance:btcusdt@trade"},
		{"pin escaped", http.MethodPut, "/api/v1/streams/binance%3Abtcusdt%40trade", 200,
			`{"stream":"binance:btcusdt@trade","pinned":true}`, "", "binance:btcusdt@trade"},
		{"pin escaped in lower case", http.MethodPut, "/api/v1/streams/binance%3abtcusdt%40bookTicker", 200,
			`{"stream":"binance:btcusdt@bookTicker","pinned":true}`, "", "binance:btcusdt@bookTicker"},
		{"pin partly escaped, two @", http.MethodPut, "/api/v1/streams/binance:ethusdt%40depth5@100ms", 200,
			`{"stream":"binance:ethusdt@depth5@100ms","pinned":true}`, "", "binance:ethusdt@depth5@100ms"},
		{"pin twice", http.MethodPut, "/api/v1/streams/binance:ethusdt@depth5@100ms", 200,
			`{"stream":"binance:ethusdt@depth5@100ms","pinned":true}`, "", "binance:ethusdt@depth5@100ms"},
		{"pin invalid", http.MethodPut, "/api/v1/streams/kraken:btcusd@trade", 400, "", `invalid stream key "kraken:btcusd@trade"`, ""},
		{"pin escaped slash", http.MethodPut, "/api/v1/streams/binance:btc%2Fusdt@trade", 400, "", `invalid stream name "btc/usdt@trade"`, ""},
		{"pin empty key", http.MethodPut, "/api/v1/streams/", 404, "", "", ""},
		// The key is the rest of the path; it does not validate.
		{"pin two segments", http.MethodPut, "/api/v1/streams/binance:btcusdt@trade/x", 400, "", `invalid stream name "btcusdt@trade/x"`, ""},
		{"unpin", http.MethodDelete, "/api/v1/streams/binance:ethusdt@depth5@100ms", 200,
			`{"stream":"binance:ethusdt@depth5@100ms","pinned":false}`, "", ""},
		{"unpin escaped", http.MethodDelete, "/api/v1/streams/binance%3Aethusdt%40depth5%40100ms", 200,
			`{"stream":"binance:ethusdt@depth5@100ms","pinned":false}`, "", ""},
		{"unpin not pinned", http.MethodDelete, "/api/v1/streams/binance:btcusdt@trade", 404, "", `stream "binance:btcusdt@trade" is not pinned`, ""},
		{"unpin empty key", http.MethodDelete, "/api/v1/streams/", 404, "", "", ""},
		{"GET one stream", http.MethodGet, "/api/v1/streams/binance:btcusdt@trade", 405, "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newFakeBackend()
			s := newServer(t, "", b, nil)
			rec := serve(s, tc.method, tc.target, loopback, "")
			if tc.wantCode >= 400 {
				e := expectError(t, rec, tc.wantCode)
				if !strings.Contains(e.Error.Msg, tc.wantMsg) {
					t.Errorf("msg %q; want it to contain %q", e.Error.Msg, tc.wantMsg)
				}
			} else {
				expectJSON(t, rec, tc.wantCode, tc.wantBody)
			}
			if tc.pinned != "" && !b.pinned(tc.pinned) {
				t.Errorf("%s not pinned", tc.pinned)
			}
			if tc.method == http.MethodDelete && tc.wantCode == 200 && b.pinned("binance:ethusdt@depth5@100ms") {
				t.Error("still pinned after DELETE")
			}
		})
	}
}

func TestListEndpoints(t *testing.T) {
	tests := []struct {
		target string
		want   string
	}{
		{"/api/v1/upstreams", `{"upstreams":[{
			"exchange":"binance","state":"connected","streams":3,"pending_streams":1,"desired":5,
			"failed":[{"stream":"foousdt@trade","error":"unknown symbol"}],
			"rejected":1,"symbols":1500,"connections":2,
			"shards":[{"endpoint":"/stream","shard":0,"state":"connected","assigned":4,"limit":1024,"streams":3,"pending_streams":1,"rotating":true,"connected_since":"2025-03-01T12:00:00.123456789Z"}],
			"connected_since":"2025-03-01T12:00:00.123456789Z","reconnects":2,"rotations":1,"handover_overflows":1,
			"closes":{"1008":2},"attempt_waits":1,"last_error":"read: EOF","last_error_at":"2025-03-01T12:00:00.123456789Z",
			"malformed":0,"internal_errors":0
		},{
			"exchange":"binance-futures","state":"idle","streams":0,"pending_streams":0,"desired":0,"rejected":0,"symbols":0,
			"connections":0,"shards":[],"reconnects":0,"rotations":0,"handover_overflows":0,"attempt_waits":0,"malformed":0,"internal_errors":0
		}]}`},
		{"/api/v1/nodes", `{"nodes":[
			{"id":"a","heartbeat":"2025-03-01T12:00:00.123456789Z","demand":12,"owns":["binance"]},
			{"id":"b","heartbeat":"2025-03-01T12:00:00.123456789Z","demand":0,"owns":[]}
		],"self":"b"}`},
	}
	for _, tc := range tests {
		t.Run(tc.target, func(t *testing.T) {
			s := newServer(t, "", newFakeBackend(), func(c *Config) { c.NodeID = "b" })
			expectJSON(t, serve(s, http.MethodGet, tc.target, loopback, ""), 200, tc.want)
		})
	}
}

func TestBackendFailure(t *testing.T) {
	tests := []struct{ op, method, target string }{
		{"streams", http.MethodGet, "/api/v1/streams"},
		{"pin", http.MethodPut, "/api/v1/streams/binance:btcusdt@trade"},
		{"unpin", http.MethodDelete, "/api/v1/streams/binance:btcusdt@trade"},
		{"upstreams", http.MethodGet, "/api/v1/upstreams"},
		{"nodes", http.MethodGet, "/api/v1/nodes"},
		{"clients", http.MethodGet, "/api/v1/clients"},
		{"disconnect", http.MethodDelete, "/api/v1/clients/1"},
	}
	for _, tc := range tests {
		t.Run(tc.op, func(t *testing.T) {
			b := newFakeBackend()
			b.fail[tc.op] = fmt.Errorf("read: %w", errRedisDown)
			s := newServer(t, "", b, nil)
			rec := serve(s, tc.method, tc.target, loopback, "")
			e := expectError(t, rec, http.StatusInternalServerError)
			if strings.Contains(rec.Body.String(), "redis") {
				t.Errorf("answer %s shows the Backend's error", rec.Body)
			}
			if !strings.HasPrefix(e.Error.Msg, tc.op+":") {
				t.Errorf("msg %q; want it to name %q", e.Error.Msg, tc.op)
			}
		})
	}
	// A sentinel wrapped by the Backend itself shows its whole text.
	b := newFakeBackend()
	b.fail["pin"] = fmt.Errorf("pin binance:x@trade: %w", ErrInvalid)
	s := newServer(t, "", b, nil)
	e := expectError(t, serve(s, http.MethodPut, "/api/v1/streams/binance:x@trade", loopback, ""), http.StatusBadRequest)
	if e.Error.Msg != "pin binance:x@trade: admin: invalid" {
		t.Errorf("msg %q", e.Error.Msg)
	}
}

func TestClientsEndpoint(t *testing.T) {
	client := func(id int) string {
		streams := `["binance:btcusdt@trade"]`
		proto, origin, user := "native", "https://app.example", `"user":"alice",`
		if id == 3 {
			streams, proto, origin, user = `[]`, "binance", "", ""
		}
		return fmt.Sprintf(`{"id":%d,"remote":"192.0.2.%d:5000","origin":%q,%s"protocol":%q,"streams":%s,"queue_bytes":%d,"drops":0,"connected_since":"2025-03-01T12:00:00.123456789Z"}`,
			id, id, origin, user, proto, streams, id*10)
	}
	tests := []struct {
		query      string
		wantCode   int
		wantPage   [2]int // offset and limit the Backend gets
		wantBody   string
		wantMsgHas string
	}{
		{"", 200, [2]int{0, 100}, `{"clients":[` + client(1) + `,` + client(2) + `,` + client(3) + `],"total":3,"offset":0,"limit":100}`, ""},
		{"?offset=1&limit=1", 200, [2]int{1, 1}, `{"clients":[` + client(2) + `],"total":3,"offset":1,"limit":1}`, ""},
		{"?offset=2", 200, [2]int{2, 100}, `{"clients":[` + client(3) + `],"total":3,"offset":2,"limit":100}`, ""},
		{"?offset=3", 200, [2]int{3, 100}, `{"clients":[],"total":3,"offset":3,"limit":100}`, ""},
		{"?offset=9999999", 200, [2]int{9999999, 100}, `{"clients":[],"total":3,"offset":9999999,"limit":100}`, ""},
		{"?limit=1000", 200, [2]int{0, 1000}, `{"clients":[` + client(1) + `,` + client(2) + `,` + client(3) + `],"total":3,"offset":0,"limit":1000}`, ""},
		{"?offset=&limit=", 200, [2]int{0, 100}, "", ""},
		{"?limit=1001", 400, [2]int{}, "", "limit must be an integer from 1 to 1000"},
		{"?limit=0", 400, [2]int{}, "", "limit must be"},
		{"?limit=-5", 400, [2]int{}, "", "limit must be"},
		{"?limit=1.5", 400, [2]int{}, "", "limit must be"},
		{"?limit=ten", 400, [2]int{}, "", `got "ten"`},
		{"?offset=-1", 400, [2]int{}, "", "offset must be an integer of at least 0"},
		{"?offset=x", 400, [2]int{}, "", "offset must be"},
		{"?offset=99999999999999999999", 400, [2]int{}, "", "offset must be"},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			b := newFakeBackend()
			b.lastPage = [2]int{-1, -1}
			s := newServer(t, "", b, nil)
			rec := serve(s, http.MethodGet, "/api/v1/clients"+tc.query, loopback, "")
			if tc.wantCode >= 400 {
				e := expectError(t, rec, tc.wantCode)
				if !strings.Contains(e.Error.Msg, tc.wantMsgHas) {
					t.Errorf("msg %q; want it to contain %q", e.Error.Msg, tc.wantMsgHas)
				}
				if b.lastPage != [2]int{-1, -1} {
					t.Errorf("Backend asked for %v on a bad request", b.lastPage)
				}
				return
			}
			if tc.wantBody != "" {
				expectJSON(t, rec, tc.wantCode, tc.wantBody)
			} else if rec.Code != tc.wantCode {
				t.Fatalf("status %d (%s); want %d", rec.Code, rec.Body, tc.wantCode)
			}
			if b.lastPage != tc.wantPage {
				t.Errorf("Backend.Clients(%d, %d); want (%d, %d)", b.lastPage[0], b.lastPage[1], tc.wantPage[0], tc.wantPage[1])
			}
		})
	}
}

// TestDisconnectUserEndpoint checks DELETE /api/v1/users/{user}: every
// connection of the user goes, others stay, and a user with none is 0.
func TestDisconnectUserEndpoint(t *testing.T) {
	for _, tc := range []struct {
		target   string
		wantCode int
		wantBody string
		left     int
	}{
		{"/api/v1/users/alice", 200, `{"user":"alice","disconnected":2,"other_nodes":0}`, 1},
		{"/api/v1/users/bob", 200, `{"user":"bob","disconnected":0,"other_nodes":0}`, 3},
		{"/api/v1/users/ali%63e", 200, `{"user":"alice","disconnected":2,"other_nodes":0}`, 1},
		{"/api/v1/users/", 404, "", 3},
	} {
		t.Run(tc.target, func(t *testing.T) {
			b := newFakeBackend()
			s := newServer(t, "", b, nil)
			rec := serve(s, http.MethodDelete, tc.target, loopback, "")
			if tc.wantCode >= 400 {
				expectError(t, rec, tc.wantCode)
			} else {
				expectJSON(t, rec, tc.wantCode, tc.wantBody)
			}
			if len(b.clients) != tc.left {
				t.Errorf("%d clients left; want %d", len(b.clients), tc.left)
			}
		})
	}
}

func TestDisconnectEndpoint(t *testing.T) {
	tests := []struct {
		target   string
		wantCode int
		wantBody string
		wantMsg  string
	}{
		{"/api/v1/clients/2", 200, `{"id":2,"disconnected":true}`, ""},
		{"/api/v1/clients/7", 404, "", "no client 7 on this node"},
		{"/api/v1/clients/0", 404, "", "no client 0"},
		{"/api/v1/clients/abc", 400, "", `client id must be a positive integer; got "abc"`},
		{"/api/v1/clients/-1", 400, "", "client id must be"},
		{"/api/v1/clients/1.0", 400, "", "client id must be"},
		{"/api/v1/clients/18446744073709551616", 400, "", "client id must be"}, // 2^64
		{"/api/v1/clients/", 404, "", ""},
		{"/api/v1/clients/1/2", 400, "", "client id must be"},
	}
	for _, tc := range tests {
		t.Run(tc.target, func(t *testing.T) {
			b := newFakeBackend()
			s := newServer(t, "", b, nil)
			rec := serve(s, http.MethodDelete, tc.target, loopback, "")
			if tc.wantCode >= 400 {
				e := expectError(t, rec, tc.wantCode)
				if !strings.Contains(e.Error.Msg, tc.wantMsg) {
					t.Errorf("msg %q; want it to contain %q", e.Error.Msg, tc.wantMsg)
				}
				if len(b.clients) != 3 {
					t.Errorf("%d clients left; want 3", len(b.clients))
				}
				return
			}
			expectJSON(t, rec, tc.wantCode, tc.wantBody)
			if len(b.clients) != 2 {
				t.Errorf("%d clients left; want 2", len(b.clients))
			}
		})
	}
}

func TestWithoutBackend(t *testing.T) {
	s := newServer(t, "", nil, func(c *Config) { c.Metrics = nil })
	for _, r := range routes {
		rec := serve(s, r.method, r.target, loopback, "")
		switch {
		case r.target == "/api/v1/drain", r.target == "/api/v1/openapi.json", strings.HasPrefix(r.target, "/debug/pprof/"):
			if rec.Code >= 300 {
				t.Errorf("%s %s: status %d (%s); want success", r.method, r.target, rec.Code, rec.Body)
			}
		default:
			t.Run(r.method+" "+r.target, func(t *testing.T) { expectError(t, rec, http.StatusNotFound) })
		}
	}
}

func TestMetrics(t *testing.T) {
	tests := []struct {
		name     string
		public   bool
		token    string
		from     string
		method   string
		target   string
		wantCode int
	}{
		{"guarded, loopback", false, "", loopback, http.MethodGet, "/metrics", 200},
		{"guarded, remote", false, "", remote, http.MethodGet, "/metrics", 403},
		{"guarded, token not sent", false, "s3cret-s3cret-s3cret", loopback, http.MethodGet, "/metrics", 401},
		{"public, remote", true, "", remote, http.MethodGet, "/metrics", 200},
		{"public, token not sent", true, "s3cret-s3cret-s3cret", remote, http.MethodGet, "/metrics", 200},
		{"public, POST stays guarded", true, "", remote, http.MethodPost, "/metrics", 403},
		{"public, the API stays guarded", true, "", remote, http.MethodGet, "/api/v1/streams", 403},
		{"public, drain stays guarded", true, "s3cret-s3cret-s3cret", remote, http.MethodPost, "/api/v1/drain", 401},
		{"public, pprof stays guarded", true, "", remote, http.MethodGet, "/debug/pprof/heap", 403},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, tc.token, newFakeBackend(), func(c *Config) { c.MetricsPublic = tc.public })
			rec := serve(s, tc.method, tc.target, tc.from, "")
			if tc.wantCode >= 400 {
				expectError(t, rec, tc.wantCode)
				return
			}
			if rec.Code != tc.wantCode || rec.Body.String() != metricsText {
				t.Errorf("status %d, body %q; want %d, %q", rec.Code, rec.Body, tc.wantCode, metricsText)
			}
		})
	}
	// Without a Metrics handler there is no /metrics, public or not.
	s := newServer(t, "", newFakeBackend(), func(c *Config) { c.Metrics, c.MetricsPublic = nil, true })
	expectError(t, serve(s, http.MethodGet, "/metrics", loopback, ""), http.StatusNotFound)
	expectError(t, serve(s, http.MethodGet, "/metrics", remote, ""), http.StatusForbidden)
}

func TestPprof(t *testing.T) {
	tests := []struct {
		target   string
		wantCode int
		wantCT   string
		wantBody string // a part of it
	}{
		{"/debug/pprof/", 200, "text/html", "goroutine"},
		{"/debug/pprof", 301, "", ""},
		{"/debug/pprof/cmdline", 200, "text/plain", "marketgate\x00--admin-token\x00***"}, // Config.Cmdline
		{"/debug/pprof/symbol", 200, "text/plain", "num_symbols"},
		{"/debug/pprof/heap?debug=1", 200, "text/plain", "heap profile"},
		{"/debug/pprof/goroutine?debug=2", 200, "text/plain", "goroutine"},
		{"/debug/pprof/allocs", 200, "application/octet-stream", ""},
		{"/debug/pprof/threadcreate", 200, "application/octet-stream", ""},
		{"/debug/pprof/nope", 404, "application/json", ""},
	}
	for _, tc := range tests {
		t.Run(tc.target, func(t *testing.T) {
			s := newServer(t, "", nil, func(c *Config) { c.Cmdline = []string{"marketgate", "--admin-token", "***"} })
			rec := serve(s, http.MethodGet, tc.target, loopback, "")
			if strings.Contains(rec.Body.String(), os.Args[0]) {
				t.Errorf("body %.200q shows the test's own command line", rec.Body)
			}
			if rec.Code != tc.wantCode || !strings.HasPrefix(rec.Header().Get("Content-Type"), tc.wantCT) || !strings.Contains(rec.Body.String(), tc.wantBody) {
				t.Errorf("status %d, Content-Type %q, body %.200q; want %d, %q, containing %q",
					rec.Code, rec.Header().Get("Content-Type"), rec.Body, tc.wantCode, tc.wantCT, tc.wantBody)
			}
		})
	}
}

// TestRunServesProfile runs the server on its listener: the API answers,
// a CPU profile is served over a real connection (with its own write
// deadline), and Run returns nil when ctx ends.
func TestRunServesProfile(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Listener: ln, Token: "s3cret-s3cret-s3cret", Drain: func() {}, Backend: newFakeBackend()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	base := "http://" + ln.Addr().String()
	get := func(path string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", "Bearer s3cret-s3cret-s3cret")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		return res
	}
	if res := get("/api/v1/streams/binance%3Abtcusdt%40trade"); res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET one stream: status %d; want 405", res.StatusCode)
	}
	res := get("/debug/pprof/profile?seconds=1")
	body, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/octet-stream" || len(body) == 0 {
		t.Errorf("CPU profile: status %d, Content-Type %q, %d bytes, err %v", res.StatusCode, res.Header.Get("Content-Type"), len(body), err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v; want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
}
