package web

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/marketgate/marketgate/internal/syncbuf"
)

// TestMarketPageHeaders checks that the market page and its files come
// with the policy that keeps them to their own origin and out of frames,
// as the ops page does. (TestMarketPage checks that the page still works
// under it.)
func TestMarketPageHeaders(t *testing.T) {
	s, err := New(Config{Addr: ":0", WebSockets: http.NotFoundHandler()})
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/", "/static/app.js", "/static/app.css"} {
		t.Run(path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
			if rec.Code != 200 {
				t.Fatalf("status %d; want 200", rec.Code)
			}
			hd := rec.Header()
			csp := hd.Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("Content-Security-Policy %q; want %s", csp, want)
				}
			}
			if hd.Get("X-Frame-Options") != "DENY" || hd.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("X-Frame-Options %q, X-Content-Type-Options %q; want DENY, nosniff", hd.Get("X-Frame-Options"), hd.Get("X-Content-Type-Options"))
			}
		})
	}
}

// emfileListener fails its first n Accepts as a process out of
// descriptors does, then accepts.
type emfileListener struct {
	net.Listener
	n atomic.Int32
}

func (l *emfileListener) Accept() (net.Conn, error) {
	if l.n.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestAcceptErrorsLogged runs the server on a listener that fails with
// EMFILE a few times: at the default level the operator sees it, once,
// and the server serves once descriptors are back.
func TestAcceptErrorsLogged(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &emfileListener{Listener: inner}
	ln.n.Store(4) // net/http retries after 5, 10, 20 and 40 ms
	var logs syncbuf.Buffer
	s, err := New(Config{Listener: ln, WebSockets: http.NotFoundHandler(), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	resp, err := http.Get("http://" + inner.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	var warns []string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "level=WARN") {
			warns = append(warns, line)
		}
	}
	if len(warns) != 1 || !strings.Contains(warns[0], "too many open files") {
		t.Errorf("WARN lines %q; want one naming the accept error", warns)
	}
}

// TestErrorLogRateLimit checks that accept errors are logged at most once
// per acceptLogEvery, with the number not logged, and other lines at
// DEBUG.
func TestErrorLogRateLimit(t *testing.T) {
	var logs syncbuf.Buffer
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newErrorLog(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), func() time.Time { return now })
	accept := "http: Accept error: accept tcp 127.0.0.1:8080: accept4: too many open files; retrying in 1s\n"
	steps := []struct {
		advance time.Duration
		line    string
		want    string // the log line's level and a part of it; "" for none
	}{
		{0, accept, `level=WARN msg="accepting connections fails; retrying (is the descriptor limit reached?)" err="accept tcp 127.0.0.1:8080: accept4: too many open files; retrying in 1s" not_logged=0`},
		{time.Second, accept, ""},
		{time.Second, accept, ""},
		{time.Second, "http: TLS handshake error from 192.0.2.1:5000: EOF\n", `level=DEBUG msg="http: TLS handshake error from 192.0.2.1:5000: EOF"`},
		{time.Second, accept, ""},
		{time.Second, accept, "level=WARN msg=\"accepting connections fails; retrying (is the descriptor limit reached?)\" err=\"accept tcp 127.0.0.1:8080: accept4: too many open files; retrying in 1s\" not_logged=3"},
		{time.Second, accept, ""},
	}
	for i, st := range steps {
		now = now.Add(st.advance)
		before := logs.String()
		if n, err := l.Write([]byte(st.line)); n != len(st.line) || err != nil {
			t.Fatalf("step %d: Write = %d, %v", i, n, err)
		}
		got := strings.TrimPrefix(logs.String(), before)
		if st.want == "" && got != "" || st.want != "" && !strings.Contains(got, st.want) {
			t.Errorf("step %d: logged %q; want %q", i, got, st.want)
		}
	}
}
