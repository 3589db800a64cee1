package httprun

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	tests := []struct {
		name string
		// act runs while the server serves at url; it returns the error
		// Run must return (matched with errors.Is; nil: none).
		act func(t *testing.T, url string, ln net.Listener, stop context.CancelFunc) error
	}{
		{"stopped by its context", func(t *testing.T, url string, _ net.Listener, stop context.CancelFunc) error {
			resp, err := http.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			stop()
			return nil
		}},
		{"listener fails", func(t *testing.T, _ string, ln net.Listener, _ context.CancelFunc) error {
			ln.Close()
			return net.ErrClosed
		}},
		{"a request outlives the grace", func(t *testing.T, url string, _ net.Listener, stop context.CancelFunc) error {
			go func() {
				if resp, err := http.Get(url + "/hang"); err == nil {
					resp.Body.Close()
				}
			}()
			time.Sleep(100 * time.Millisecond) // the request is in flight
			stop()
			return context.DeadlineExceeded
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			release := make(chan struct{})
			defer close(release)
			mux := http.NewServeMux()
			mux.HandleFunc("/", func(http.ResponseWriter, *http.Request) {})
			mux.HandleFunc("/hang", func(_ http.ResponseWriter, r *http.Request) {
				select {
				case <-release:
				case <-r.Context().Done(): // closed after the grace
				}
			})
			ctx, stop := context.WithCancel(context.Background())
			defer stop()
			done := make(chan error, 1)
			go func() { done <- Run(ctx, &http.Server{Handler: mux}, ln, 200*time.Millisecond) }()
			want := tc.act(t, "http://"+ln.Addr().String(), ln, stop)
			select {
			case err := <-done:
				if want == nil && err != nil || want != nil && !errors.Is(err, want) {
					t.Errorf("Run = %v; want %v", err, want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return")
			}
		})
	}
}
