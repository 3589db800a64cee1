//go:build unix

package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/marketgate/marketgate/exchangesim/binancesim"
	"github.com/marketgate/marketgate/internal/syncbuf"
	"github.com/marketgate/marketgate/internal/waitfor"
)

// buildVersioned builds the binary with the version and revision set by
// the linker, as a release build does.
func buildVersioned(t *testing.T, ver, rev string) string {
	t.Helper()
	bin := t.TempDir() + "/marketgate"
	pkg := "github.com/marketgate/marketgate/internal/version"
	build := exec.Command("go", "build", "-ldflags", "-X "+pkg+".version="+ver+" -X "+pkg+".revision="+rev, "-o", bin, ".")
	build.Stderr = t.Output()
	if err := build.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	return bin
}

// TestBinaryReloadMetricsVersion runs the built binary: SIGHUP reloads
// its configuration file without stopping it (D2: it used to exit 129),
// the metrics listener serves /metrics without a token and nothing else,
// and the build information reaches both marketgate version and
// marketgate_build_info.
func TestBinaryReloadMetricsVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const ver, rev = "v9.9.9-test", "0123456789abcdef0123456789abcdef01234567"
	bin := buildVersioned(t, ver, rev)

	out, err := exec.Command(bin, "version").Output()
	if want := fmt.Sprintf("marketgate %s (revision %s, %s)\n", ver, rev, runtime.Version()); err != nil || string(out) != want {
		t.Errorf("marketgate version = %q, %v; want %q", out, err, want)
	}

	_, simAddr := startSim(t, binancesim.Config{})
	addr, adm, met := freeAddr(t), freeAddr(t), freeAddr(t)
	config := func(origin string, maxConns int) string {
		return fmt.Sprintf("listen: %s\nadmin-listen: %s\nmetrics-listen: %s\nbinance: {url: \"ws://%s\", rest-url: \"http://%s\"}\n"+
			"log-level: info\nallowed-origins: %s\nmax-conns: %d\ndrain-timeout: 5s\n", addr, adm, met, simAddr, simAddr, origin, maxConns)
	}
	cfgFile := writeFile(t, "marketgate.yaml", config("https://a.example", 100))
	cmd := exec.Command(bin, "--config", cfgFile)
	// D1: an empty variable turns futures off (the file leaves it on);
	// D10: a misspelt variable is warned about.
	cmd.Env = append(os.Environ(), "MARKETGATE_BINANCE_FUTURES_URL=", "MARKETGATE_MAX_CONN=5")
	logs := &syncbuf.Buffer{}
	cmd.Stderr = io.MultiWriter(t.Output(), logs)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	waitReady(t, addr)
	if out := logs.String(); !strings.Contains(out, "exchanges=1 ") || !regexp.MustCompile(`level=WARN msg="environment variables .*vars=\S*MARKETGATE_MAX_CONN`).MatchString(out) {
		t.Errorf("start-up log: want exchanges=1 (futures off by the empty variable) and a warning naming MARKETGATE_MAX_CONN")
	}

	t.Run("metrics listener", func(t *testing.T) {
		resp, err := http.Get("http://" + met + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := fmt.Sprintf(`marketgate_build_info{goversion="%s",revision="%s",version="%s"} 1`, runtime.Version(), rev, ver)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) || !strings.Contains(string(body), "marketgate_connections_current") {
			t.Errorf("GET /metrics on --metrics-listen: %d; want 200 with %s and the gateway's metrics", resp.StatusCode, want)
		}
		for _, path := range []string{"/api/v1/ready", "/debug/pprof/cmdline", "/"} {
			resp, err := http.Get("http://" + met + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("GET %s on --metrics-listen: %d; want 404", path, resp.StatusCode)
			}
		}
	})

	t.Run("SIGHUP reloads", func(t *testing.T) {
		if got := handshakeStatus(t, addr, "https://b.example"); got != http.StatusForbidden {
			t.Fatalf("origin b before SIGHUP: %d; want 403", got)
		}
		writeFile2(t, cfgFile, config("https://b.example", 200))
		// Two signals in a row: neither may end the process.
		for range 2 {
			if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
		}
		waitfor.Cond(t, 10*time.Second, func() error {
			if got := handshakeStatus(t, addr, "https://b.example"); got != http.StatusSwitchingProtocols {
				return fmt.Errorf("origin b after SIGHUP: %d; want 101", got)
			}
			if !strings.Contains(logs.String(), "settings=max-conns") {
				return fmt.Errorf("the log does not name max-conns as needing a restart")
			}
			return nil
		})
		if got := handshakeStatus(t, addr, "https://a.example"); got != http.StatusForbidden {
			t.Errorf("origin a after SIGHUP: %d; want 403", got)
		}
		if !regexp.MustCompile(`msg="configuration reloaded" changed=allowed-origins `).MatchString(logs.String()) {
			t.Errorf("the log does not say what the reload changed")
		}
		select {
		case err := <-exited:
			t.Fatalf("the process exited after SIGHUP: %v", err)
		default:
		}
	})

	// SIGTERM still drains and exits 0.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err != nil {
			t.Errorf("exit after SIGTERM: %v; want 0", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit within 20 s of SIGTERM")
	}
	if !strings.Contains(logs.String(), "marketgate stopped") {
		t.Error("the log does not say the gateway stopped")
	}
}
