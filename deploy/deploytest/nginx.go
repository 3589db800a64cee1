//go:build unix

// Package deploytest runs the deploy/ nginx configuration for tests: the
// deploy package's own, and the cluster tests that put real gateway nodes
// behind it.
package deploytest

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/marketgate/marketgate/deploy"
)

// FindBinary returns the path of name: on PATH, or in /usr/sbin, where
// Debian installs nginx and haproxy and which a non-root PATH may lack.
func FindBinary(name string) (string, bool) {
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	p := filepath.Join("/usr/sbin", name)
	if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return p, true
	}
	return "", false
}

// NginxBinary returns nginx's path, or fails the test: the project's test
// command installs nginx, so a missing one is an error, not a skip.
func NginxBinary(t *testing.T) string {
	t.Helper()
	p, ok := FindBinary("nginx")
	if !ok {
		t.Fatal("nginx not installed: apt-get install -y nginx")
	}
	return p
}

// FreeAddr returns a loopback address with a port that was free a moment ago.
func FreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// WriteNginx renders nginx/nginx.conf to listen on listen and balance over
// nodes, writes it into a new temporary directory and returns that
// directory, the nginx prefix, with the file as nginx.conf.
func WriteNginx(t *testing.T, listen string, nodes []string) string {
	t.Helper()
	conf, err := deploy.RenderNginx(deploy.NginxConf, listen, nodes)
	if err != nil {
		t.Fatalf("renderNginx(nginx/nginx.conf): %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// NginxArgs are the arguments that run nginx with the prefix dir. -e sets
// the log used before the configuration is read, which by default is a
// system path an unprivileged user cannot open.
func NginxArgs(dir string, more ...string) []string {
	return append([]string{"-p", dir + "/", "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log")}, more...)
}

// StartNginx runs nginx in the foreground with nginx/nginx.conf rendered
// for nodes, waits until it answers /nginx-health and returns its address.
// Cleanup stops it (fast shutdown, then SIGKILL to its process group).
func StartNginx(t *testing.T, nodes []string) string {
	t.Helper()
	bin := NginxBinary(t)
	addr := FreeAddr(t)
	dir := WriteNginx(t, addr, nodes)
	var out bytes.Buffer
	cmd := exec.Command(bin, NginxArgs(dir, "-g", "daemon off;")...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // the workers too, for the kill below
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	errorLog := func() string {
		b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return string(b)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				t.Errorf("nginx still running 5s after SIGTERM; killing it")
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-exited
			}
		}
		if t.Failed() {
			t.Logf("nginx output:\n%s\nerror.log:\n%s", out.String(), errorLog())
		}
	})

	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("nginx exited at start: %v", err)
		default:
		}
		resp, err := client.Get("http://" + addr + "/nginx-health")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && string(body) == "ok\n" {
				return addr
			}
			err = fmt.Errorf("status %d, body %q", resp.StatusCode, body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx not serving /nginx-health after 10s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
