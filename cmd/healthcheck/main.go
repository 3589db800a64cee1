// Command healthcheck asks a marketgate node whether it is alive and exits
// 0 when it answers 200, 1 otherwise, with one line saying why. It exists
// for the container image's HEALTHCHECK: the image (distroless) has no
// shell, curl or wget.
//
//	healthcheck                                  # GET /healthz on the port of MARKETGATE_LISTEN (default :8080)
//	healthcheck http://127.0.0.1:8080/readyz     # any URL
//
// Without an argument the URL is http://127.0.0.1:<port>/healthz with the
// port of MARKETGATE_LISTEN, so a container that moves the listener
// needs no other change. It waits at most 2 s (HEALTHCHECK_TIMEOUT, a Go
// duration, changes that).
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		os.Exit(1)
	}
}

// run checks the URL that args and getenv name.
func run(args []string, getenv func(string) string) error {
	target, err := target(args, getenv)
	if err != nil {
		return err
	}
	timeout := 2 * time.Second
	if v := getenv("HEALTHCHECK_TIMEOUT"); v != "" {
		if timeout, err = time.ParseDuration(v); err != nil || timeout <= 0 {
			return fmt.Errorf("HEALTHCHECK_TIMEOUT %q: want a positive duration such as 2s", v)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", target, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s %s", target, resp.Status, body)
	}
	return nil
}

// target is the URL to check: the one argument, else /healthz on
// loopback at MARKETGATE_LISTEN's port.
func target(args []string, getenv func(string) string) (string, error) {
	switch len(args) {
	case 0:
	case 1:
		u, err := url.Parse(args[0])
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", fmt.Errorf("%q is not an http:// or https:// URL", args[0])
		}
		return args[0], nil
	default:
		return "", fmt.Errorf("takes at most one argument, the URL; got %d", len(args))
	}
	listen := getenv("MARKETGATE_LISTEN")
	if listen == "" {
		listen = ":8080"
	}
	_, port, err := net.SplitHostPort(listen)
	if err != nil || port == "" {
		return "", fmt.Errorf("MARKETGATE_LISTEN %q: want host:port or :port", listen)
	}
	return "http://" + net.JoinHostPort("127.0.0.1", port) + "/healthz", nil
}
