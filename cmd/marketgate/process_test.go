//go:build unix

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/marketgate/marketgate/exchangesim/binancesim"
	"github.com/marketgate/marketgate/internal/waitfor"
)

// TestSecondSignalExitsAtOnce runs the gateway binary, holds its drain
// open with a CPU profile in flight on the control listener (whose
// shutdown waits 5 s for it), and checks that a second SIGTERM during the
// drain ends the process at once instead of being swallowed.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	_, simAddr := startSim(t, binancesim.Config{})
	bin := buildGateway(t)
	addr, adm := freeAddr(t), freeAddr(t)
	g := runNode(t, bin, "n1", addr, adm, simAddr, nil)
	waitReady(t, addr)

	// A profile that samples for a minute keeps a request in flight.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+adm+"/debug/pprof/profile?seconds=60", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	waitfor.Cond(t, 10*time.Second, func() error {
		resp, err := http.Get("http://" + adm + "/debug/pprof/goroutine?debug=2")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(b), "runtime/pprof.StartCPUProfile") && !strings.Contains(string(b), "net/http/pprof.Profile") {
			return errors.New("no CPU profile in flight yet")
		}
		return nil
	})

	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The public listener closes once the drain has begun.
	waitfor.Cond(t, 10*time.Second, func() error {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return fmt.Errorf("%s still accepts", addr)
		}
		return nil
	})
	if _, done := g.result(); done {
		t.Fatal("the drain ended before the second signal; nothing to test")
	}
	second := time.Now()
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-g.exited:
		t.Logf("exited %v after the second SIGTERM: %v", time.Since(second).Round(time.Millisecond), err)
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Errorf("exit: %v; want an exit by SIGTERM", err)
		} else if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
			t.Errorf("exit: %v; want an exit by SIGTERM", err)
		}
	case <-time.After(2500 * time.Millisecond):
		t.Fatal("the gateway was still draining 2.5 s after the second SIGTERM")
	}
}

// TestCmdlineHidesSecrets runs the binary with its secrets given as flags
// and checks that /debug/pprof/cmdline shows neither the admin token nor
// the Redis password.
func TestCmdlineHidesSecrets(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const (
		token    = "cmdline-t0ken-0123456789"
		password = "hunter2-hunter2"
	)
	_, simAddr := startSim(t, binancesim.Config{})
	bin := buildGateway(t)
	adm := freeAddr(t)
	// Nothing listens at the Redis address: the node runs without it.
	g := runNode(t, bin, "n1", freeAddr(t), adm, simAddr, []string{
		"--admin-token", token, "--redis", "redis://:" + password + "@" + freeAddr(t) + "/0"})
	t.Cleanup(func() {
		g.cmd.Process.Kill() // no drain: it would wait for the absent Redis
		<-g.exited
	})
	var body string
	waitfor.Cond(t, 15*time.Second, func() error {
		req, _ := http.NewRequest(http.MethodGet, "http://"+adm+"/debug/pprof/cmdline", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d: %s", resp.StatusCode, b)
		}
		body = string(b)
		return nil
	})
	if strings.Contains(body, token) || strings.Contains(body, password) {
		t.Errorf("/debug/pprof/cmdline shows a secret: %q", body)
	}
	if !strings.Contains(body, "--admin-token\x00***") || !strings.Contains(body, "--node-id\x00n1") {
		t.Errorf("/debug/pprof/cmdline = %q; want the command line with the secrets masked", body)
	}
}
