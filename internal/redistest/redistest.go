// Package redistest runs real redis-server processes for tests, the way
// net/http/httptest runs real HTTP servers: [Start] starts one standalone
// server and [StartCluster] a cluster of masters, each on ephemeral
// 127.0.0.1 ports (never 6379) in a t.TempDir, stopped by t.Cleanup.
//
//	srv := redistest.Start(t)
//	h, err := hub.NewRedis(hub.RedisConfig{URL: srv.URL()})
//
// [StartWith] and [StartClusterWith] add what production Redis has: a
// password (requirepass, and masterauth between cluster nodes) and, for a
// standalone server, TLS with certificates made for the test.
//
// The redis-server binary (and, for clusters of three or more masters,
// redis-cli) is looked up on PATH. Without it the test fails, never skips,
// with a message saying how to install it. A TLS server is skipped, saying
// so, when redis-server was built without TLS.
package redistest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// startTimeout bounds the wait for a started server to answer PING.
	startTimeout = 10 * time.Second
	// clusterTimeout bounds the wait for a cluster to report cluster_state:ok.
	clusterTimeout = 30 * time.Second
	// startAttempts is how often Start tries fresh ports when a server
	// exits at once, which happens when another process took the port
	// between picking and binding it.
	startAttempts = 5
	// systemPort is the port of the machine's own Redis, which tests must
	// never touch.
	systemPort = 6379
	// logLimit bounds the server output kept for failure messages.
	logLimit = 64 << 10
)

// Config is how [StartWith] and [StartClusterWith] set up their servers;
// the zero Config is what [Start] uses.
type Config struct {
	// Password, when set, is required from every client (requirepass)
	// and, in a cluster, used by the nodes among themselves (masterauth).
	Password string
	// TLS makes the server speak TLS only, on its one port, with a
	// certificate for 127.0.0.1 from a CA made for the test, and require
	// clients to present a certificate from that CA (see [Server.TLS]).
	// Standalone servers only.
	TLS bool
}

// Server is one redis-server process started by [Start] or [StartCluster].
// Its methods are safe for concurrent use.
type Server struct {
	bin  string
	dir  string
	port int
	cfg  Config
	// tls holds the certificate files when cfg.TLS is set.
	tls *TLSFiles
	// extra holds arguments added to every start (the cluster settings).
	extra []string

	// mu guards the following fields.
	mu   sync.Mutex
	proc *process
}

// process is one run of redis-server.
type process struct {
	cmd  *exec.Cmd
	out  *logBuffer
	done chan struct{} // closed when cmd.Wait has returned
}

// Start starts a standalone redis-server on a free 127.0.0.1 port with
// persistence off and its working directory in t.TempDir(), waits until it
// answers PING and stops it in t.Cleanup. It fails t if the server cannot
// be started, including when redis-server is not installed.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, Config{})
}

// StartWith is [Start] with a password or TLS, as cfg says. With cfg.TLS
// it makes a CA, a server and a client certificate in a t.TempDir, and it
// skips t when redis-server was built without TLS.
func StartWith(t testing.TB, cfg Config) *Server {
	t.Helper()
	bin := lookPath(t, "redis-server")
	return startServer(t, bin, cfg, nil)
}

// startServer starts a server with extra arguments, trying a few ports.
// extra may contain "{busport}", replaced with a second free port.
func startServer(t testing.TB, bin string, cfg Config, extra []string) *Server {
	t.Helper()
	var files *TLSFiles
	if cfg.TLS {
		files = NewTLSFiles(t)
	}
	var lastErr error
	for range startAttempts {
		port, err := freePort()
		if err != nil {
			t.Fatalf("redistest: %v", err)
		}
		args := slices.Clone(extra)
		for i, a := range args {
			if a == "{busport}" {
				bus, err := freePort()
				if err != nil {
					t.Fatalf("redistest: %v", err)
				}
				args[i] = strconv.Itoa(bus)
			}
		}
		s := &Server{bin: bin, dir: t.TempDir(), port: port, cfg: cfg, tls: files, extra: args}
		if lastErr = s.start(); lastErr == nil {
			t.Cleanup(s.Kill)
			return s
		}
		if cfg.TLS && errors.Is(lastErr, errNoTLS) {
			t.Skipf("redistest: %v", lastErr)
		}
	}
	t.Fatalf("redistest: start redis-server: %v", lastErr)
	return nil
}

// Addr returns the server's address, "127.0.0.1:<port>".
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// URL returns the server's URL for database 0: "redis://127.0.0.1:<port>/0",
// with ":<password>@" when it has a password, and the scheme rediss:// with
// TLS (a client also needs [Server.TLS]'s CA and client certificate).
func (s *Server) URL() string {
	u := url.URL{Scheme: "redis", Host: s.Addr(), Path: "/0"}
	if s.cfg.TLS {
		u.Scheme = "rediss"
	}
	if s.cfg.Password != "" {
		u.User = url.UserPassword("", s.cfg.Password)
	}
	return u.String()
}

// Password returns the server's password, "" for none.
func (s *Server) Password() string { return s.cfg.Password }

// TLS returns the server's certificate files, nil without TLS.
func (s *Server) TLS() *TLSFiles { return s.tls }

// Options returns go-redis options that reach the server: its address,
// password and TLS client configuration.
func (s *Server) Options() *redis.Options {
	o := &redis.Options{Addr: s.Addr(), Password: s.cfg.Password}
	if s.tls != nil {
		o.TLSConfig = s.tls.ClientConfig()
	}
	return o
}

// Kill stops the server with SIGKILL, the way a crash would, and waits for
// the process to exit. Connected clients see their connections reset. It
// is a no-op when the server is not running.
func (s *Server) Kill() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Restart starts the server again on the same port and directory, after a
// [Server.Kill] (it kills a running server first), and waits until it
// answers PING. Data is not kept: persistence is off. A cluster node
// rejoins its cluster from the nodes.conf in its directory.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Kill()
	if err := s.start(); err != nil {
		t.Fatalf("redistest: restart redis-server on %s: %v", s.Addr(), err)
	}
}

// errNoTLS is start's error when redis-server does not know --tls-port.
var errNoTLS = errors.New("redis-server was built without TLS support (BUILD_TLS=yes); skipping the TLS test")

// start runs redis-server and waits for PING. On failure nothing is left
// running.
func (s *Server) start() error {
	port := []string{"--port", strconv.Itoa(s.port)}
	if f := s.tls; f != nil {
		port = []string{"--port", "0", "--tls-port", strconv.Itoa(s.port),
			"--tls-cert-file", f.ServerCert, "--tls-key-file", f.ServerKey,
			"--tls-ca-cert-file", f.CA, "--tls-auth-clients", "yes"}
	}
	if s.cfg.Password != "" {
		port = append(port, "--requirepass", s.cfg.Password)
	}
	args := append(port,
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--dir", s.dir,
		"--logfile", "",
	)
	args = append(args, s.extra...)
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	out := &logBuffer{limit: logLimit}
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("exec %s: %w", s.bin, err)
	}
	p := &process{cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		// Kill waits on done, so this goroutine never outlives the server.
		_ = cmd.Wait()
		close(p.done)
	}()
	if err := waitPing(s.ping, p.done); err != nil {
		_ = cmd.Process.Kill()
		<-p.done
		if s.tls != nil && strings.Contains(out.String(), "tls-port") {
			return fmt.Errorf("%w:\n%s", errNoTLS, out.String())
		}
		return fmt.Errorf("%s on port %d: %w\n%s", s.bin, s.port, err, out.String())
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	return nil
}

// waitPing polls with ping until it succeeds, the process exits or
// startTimeout passes.
func waitPing(ping func() error, exited <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("server exited during start-up")
		default:
		}
		if lastErr = ping(); lastErr == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("no PONG within %v: %w", startTimeout, lastErr)
}

// ping sends one PING (after AUTH, over TLS, as the server needs) and
// expects +PONG.
func (s *Server) ping() error {
	d := &net.Dialer{Timeout: time.Second}
	var c net.Conn
	var err error
	if s.tls != nil {
		c, err = tls.DialWithDialer(d, "tcp", s.Addr(), s.tls.ClientConfig())
	} else {
		c, err = d.Dial("tcp", s.Addr())
	}
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	want := []string{"+PONG"}
	cmd := "PING\r\n"
	if pw := s.cfg.Password; pw != "" {
		cmd = fmt.Sprintf("*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n", len(pw), pw) + cmd
		want = []string{"+OK", "+PONG"}
	}
	if _, err := c.Write([]byte(cmd)); err != nil {
		return fmt.Errorf("write ping: %w", err)
	}
	r := bufio.NewReader(c)
	for _, w := range want {
		line, err := r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("read %s: %w", w, err)
		}
		if got := strings.TrimSpace(line); got != w {
			return fmt.Errorf("ping answered %q; want %q", got, w)
		}
	}
	return nil
}

// Cluster is a Redis Cluster of masters without replicas, started by
// [StartCluster] or [StartClusterWith].
type Cluster struct {
	servers  []*Server
	password string
}

// StartCluster starts masters redis-server instances with cluster mode on,
// each on its own free client and cluster-bus ports, joins them into one
// cluster covering all 16384 slots, waits until every node reports
// cluster_state:ok and knows every other node, and stops them all in
// t.Cleanup. It joins with `redis-cli --cluster create` when redis-cli is
// installed and masters >= 3 (redis-cli's minimum), and with CLUSTER
// ADDSLOTSRANGE and CLUSTER MEET otherwise.
func StartCluster(t testing.TB, masters int) *Cluster {
	t.Helper()
	return StartClusterWith(t, masters, Config{})
}

// StartClusterWith is [StartCluster] with the masters set up as cfg says;
// cfg.TLS is not supported for clusters.
func StartClusterWith(t testing.TB, masters int, cfg Config) *Cluster {
	t.Helper()
	_, err := exec.LookPath("redis-cli")
	return startCluster(t, masters, cfg, err == nil && masters >= 3)
}

// startCluster is StartClusterWith with the choice of join method.
func startCluster(t testing.TB, masters int, cfg Config, useCLI bool) *Cluster {
	t.Helper()
	if masters < 1 {
		t.Fatalf("redistest: StartCluster(%d): need at least one master", masters)
	}
	if cfg.TLS {
		t.Fatal("redistest: StartClusterWith: TLS clusters are not supported")
	}
	var extra []string
	if cfg.Password != "" {
		extra = []string{"--masterauth", cfg.Password}
	}
	bin := lookPath(t, "redis-server")
	c := &Cluster{password: cfg.Password}
	for range masters {
		c.servers = append(c.servers, startServer(t, bin, cfg, append([]string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "5000",
			"--cluster-port", "{busport}",
		}, extra...)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	var join func(context.Context) error = c.joinWithCommands
	if useCLI {
		cli := lookPath(t, "redis-cli")
		join = func(ctx context.Context) error { return c.joinWithCLI(ctx, cli) }
	}
	if err := join(ctx); err != nil {
		t.Fatalf("redistest: create cluster of %v: %v", c.Addrs(), err)
	}
	if err := c.waitOK(ctx); err != nil {
		t.Fatalf("redistest: cluster of %v: %v", c.Addrs(), err)
	}
	return c
}

// Addrs returns the addresses of the cluster's masters, the seeds for a
// cluster client.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.servers))
	for i, s := range c.servers {
		addrs[i] = s.Addr()
	}
	return addrs
}

// Servers returns the cluster's masters, to kill or restart one.
func (c *Cluster) Servers() []*Server { return slices.Clone(c.servers) }

// URL returns the cluster's URL in go-redis's ParseClusterURL form, the
// first master as host and the others as addr parameters, with the
// password: "redis://:<password>@<addr1>?addr=<addr2>&addr=…".
func (c *Cluster) URL() string {
	addrs := c.Addrs()
	u := url.URL{Scheme: "redis", Host: addrs[0]}
	if c.password != "" {
		u.User = url.UserPassword("", c.password)
	}
	q := url.Values{"addr": addrs[1:]}
	u.RawQuery = q.Encode()
	return u.String()
}

// Options returns go-redis cluster options that reach the cluster: its
// masters as seeds, and its password.
func (c *Cluster) Options() *redis.ClusterOptions {
	return &redis.ClusterOptions{Addrs: c.Addrs(), Password: c.password}
}

// joinWithCLI lets redis-cli assign the slots and introduce the nodes.
func (c *Cluster) joinWithCLI(ctx context.Context, cli string) error {
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	cmd := exec.CommandContext(ctx, cli, args...)
	if c.password != "" {
		// Not -a, which would show the password in the process list.
		cmd.Env = append(os.Environ(), "REDISCLI_AUTH="+c.password)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("redis-cli %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// joinWithCommands splits the slots evenly with CLUSTER ADDSLOTSRANGE and
// has the first node meet the others.
func (c *Cluster) joinWithCommands(ctx context.Context) error {
	const slots = 16384
	n := len(c.servers)
	for i, s := range c.servers {
		lo, hi := i*slots/n, (i+1)*slots/n-1
		if err := s.withClient(func(rc *redis.Client) error {
			return rc.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err()
		}); err != nil {
			return fmt.Errorf("addslotsrange %d %d on %s: %w", lo, hi, s.Addr(), err)
		}
	}
	return c.servers[0].withClient(func(rc *redis.Client) error {
		for _, s := range c.servers[1:] {
			bus, err := busPort(s)
			if err != nil {
				return err
			}
			if err := rc.Do(ctx, "CLUSTER", "MEET", "127.0.0.1", s.port, bus).Err(); err != nil {
				return fmt.Errorf("meet %s: %w", s.Addr(), err)
			}
		}
		return nil
	})
}

// busPort returns the --cluster-port a server was started with.
func busPort(s *Server) (int, error) {
	for i, a := range s.extra {
		if a == "--cluster-port" && i+1 < len(s.extra) {
			return strconv.Atoi(s.extra[i+1])
		}
	}
	return 0, fmt.Errorf("%s has no cluster port", s.Addr())
}

// waitOK polls CLUSTER INFO on every node until each reports
// cluster_state:ok and knows all nodes.
func (c *Cluster) waitOK(ctx context.Context) error {
	want := map[string]string{
		"cluster_state":          "ok",
		"cluster_slots_ok":       "16384",
		"cluster_known_nodes":    strconv.Itoa(len(c.servers)),
		"cluster_slots_assigned": "16384",
	}
	for _, s := range c.servers {
		err := s.withClient(func(rc *redis.Client) error {
			var last string
			for {
				info, err := rc.ClusterInfo(ctx).Result()
				if err == nil {
					if last = mismatch(info, want); last == "" {
						return nil
					}
				} else {
					last = err.Error()
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("node %s not ready: %s", s.Addr(), last)
				case <-time.After(20 * time.Millisecond):
				}
			}
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// mismatch returns the first field of a CLUSTER INFO reply that differs
// from want, as "field=value", or "" when all match.
func mismatch(info string, want map[string]string) string {
	got := map[string]string{}
	for line := range strings.SplitSeq(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok {
			got[k] = v
		}
	}
	for k, v := range want {
		if got[k] != v {
			return k + "=" + got[k]
		}
	}
	return ""
}

// withClient runs f with a single-connection client to s.
func (s *Server) withClient(f func(*redis.Client) error) error {
	o := s.Options()
	o.PoolSize, o.MaxRetries = 1, -1
	rc := redis.NewClient(o)
	defer rc.Close()
	return f(rc)
}

// lookPath finds a Redis binary or fails t saying how to install it.
func lookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("redistest: %s not found on PATH (%v); install Redis, e.g. `apt-get install -y redis-server` (it provides %s)", name, err, name)
	}
	return p
}

// freePort returns a 127.0.0.1 TCP port that was free a moment ago, never
// the system Redis port.
func freePort() (int, error) {
	for range 10 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("pick a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if port != systemPort {
			return port, nil
		}
	}
	return 0, errors.New("pick a free port: only got the system Redis port")
}

// logBuffer keeps the first limit bytes of a process's output (start-up
// errors come first) for failure messages; exec's copying goroutine
// writes it.
type logBuffer struct {
	limit int
	// mu guards the following fields.
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write keeps what fits and reports everything written, so the server
// never blocks on its output.
func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.limit - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// String returns the kept output.
func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
