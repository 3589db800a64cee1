package web

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestEndpoints(t *testing.T) {
	var notReady atomic.Value
	notReady.Store("")
	ws := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot) // stands in for the WebSocket server
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Listener: ln, WebSockets: ws, Ready: func() error {
		if r := notReady.Load().(string); r != "" {
			return errors.New(r)
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	base := "http://" + ln.Addr().String()

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tests := []struct {
		path, notReady string
		status         int
		contains       string
	}{
		{"/", "", 200, "<title>marketgate"},
		{"/healthz", "", 200, `"ok"`},
		{"/marketgate.js", "", 200, "export function connect("},
		{"/marketgate.d.ts", "", 200, "export declare function connect<"},
		{"/healthz", "hub down", 200, `"ok"`},
		{"/readyz", "", 200, `"ready"`},
		{"/readyz", "hub down", 503, `"reason":"hub down"`},
		{"/ws", "", http.StatusTeapot, ""},
		{"/binance/stream", "", http.StatusTeapot, ""},
		{"/nope", "", 404, ""},
	}
	for _, tc := range tests {
		notReady.Store(tc.notReady)
		status, body := get(tc.path)
		if status != tc.status || !strings.Contains(body, tc.contains) {
			t.Errorf("GET %s (not ready: %q) = %d %q; want %d containing %q", tc.path, tc.notReady, status, body, tc.status, tc.contains)
		}
		if strings.HasSuffix(tc.path, "z") && !json.Valid([]byte(body)) {
			t.Errorf("GET %s body %q is not JSON", tc.path, body)
		}
	}
	for path, want := range map[string]string{"/marketgate.js": "text/javascript", "/marketgate.d.ts": "application/typescript"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, want) {
			t.Errorf("GET %s Content-Type = %q; want %s", path, ct, want)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := New(Config{Addr: ":0"}); err == nil {
		t.Error("New without WebSockets succeeded")
	}
	if _, err := New(Config{WebSockets: http.NotFoundHandler()}); err == nil {
		t.Error("New without Addr or Listener succeeded")
	}
}

// TestSlowlorisHandshake opens a connection that trickles a WebSocket
// handshake one header at a time and checks that the server hangs up once
// HandshakeTimeout has passed.
func TestSlowlorisHandshake(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Listener: ln, WebSockets: http.NotFoundHandler(), HandshakeTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	start := time.Now()
	lines := []string{"GET /ws HTTP/1.1\r\n", "Host: x\r\n", "Upgrade: websocket\r\n", "Connection: Upgrade\r\n", "X-1: a\r\n", "X-2: b\r\n", "X-3: c\r\n"}
	var werr error
	for _, l := range lines {
		if _, werr = nc.Write([]byte(l)); werr != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, rerr := io.ReadAll(nc)
	if rerr != nil {
		t.Fatalf("server did not close the trickling connection: %v", rerr)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("closed after %v; want soon after the 300ms handshake timeout", d)
	}
}

// TestOpsPage checks the files the ops page handler serves, and the
// headers that keep the page to its own origin and out of frames.
func TestOpsPage(t *testing.T) {
	h := OpsPage()
	tests := []struct {
		path     string
		status   int
		ctype    string
		contains string
	}{
		{"/ops/", 200, "text/html", "<title>marketgate — ops</title>"},
		{"/ops/ops.js", 200, "text/javascript", "import { drawSeries } from './chart.js';"},
		{"/ops/ops.css", 200, "text/css", ".cards"},
		{"/ops/theme.css", 200, "text/css", "--bg:"},
		{"/ops/theme.js", 200, "text/javascript", "export function themeToggle("},
		{"/ops/chart.js", 200, "text/javascript", "export function drawSeries("},
		{"/ops/app.js", 404, "", ""},    // the market page's own files are not served here
		{"/ops/../web.go", 404, "", ""}, // nor anything outside
		{"/ops/nosuch.js", 404, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, tc.path, nil)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status %d; want %d", rec.Code, tc.status)
			}
			hd := rec.Header()
			if csp := hd.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "script-src 'self'") {
				t.Errorf("Content-Security-Policy %q; want self-only scripts and no framing", csp)
			}
			if hd.Get("X-Frame-Options") != "DENY" || hd.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("X-Frame-Options %q, X-Content-Type-Options %q", hd.Get("X-Frame-Options"), hd.Get("X-Content-Type-Options"))
			}
			if tc.status != 200 {
				return
			}
			if ct := hd.Get("Content-Type"); !strings.HasPrefix(ct, tc.ctype) {
				t.Errorf("Content-Type %q; want %s", ct, tc.ctype)
			}
			if !strings.Contains(rec.Body.String(), tc.contains) {
				t.Errorf("body does not contain %q", tc.contains)
			}
		})
	}
}
