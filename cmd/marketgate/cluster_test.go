//go:build unix

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/marketgate/marketgate/deploy/deploytest"
	"github.com/marketgate/marketgate/downstream/downstreamtest"
	"github.com/marketgate/marketgate/exchangesim/binancesim"
	"github.com/marketgate/marketgate/gateway"
	"github.com/marketgate/marketgate/internal/redistest"
	"github.com/marketgate/marketgate/internal/syncbuf"
	"github.com/marketgate/marketgate/internal/waitfor"
)

// The cluster tests run real processes: redis-server, three gateway
// binaries and nginx (with deploy/'s configuration) in front of them; the
// simulator runs in-process so the tests can ask it what it carries.

// leaseKey is where cluster.Node keeps the binance lease ("<node>|<token>").
const leaseKey = "marketgate:{cluster}:lease:binance"

var clusterStreams = []string{"binance:btcusdt@trade", "binance:ethusdt@trade", "binance:bnbusdt@trade"}

// buildGateway builds the marketgate binary into a temporary directory.
func buildGateway(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "marketgate")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = t.Output()
	if err := build.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	return bin
}

// gatewayNode is one gateway process of a cluster test.
type gatewayNode struct {
	id     string
	addr   string
	admin  string // the control listener
	cmd    *exec.Cmd
	exited chan error      // Wait's result, once
	stderr *syncbuf.Buffer // what the process logged
	mu     sync.Mutex
	err    error
	done   bool
}

// result returns the process's exit error and whether it exited.
func (g *gatewayNode) result() (error, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err, g.done
}

// startNode runs one gateway of the cluster; cleanup stops it.
func startNode(t *testing.T, bin, id, simAddr string, redisArgs []string) *gatewayNode {
	t.Helper()
	return runNode(t, bin, id, freeAddr(t), freeAddr(t), simAddr, redisArgs)
}

// runNode runs a gateway process with id that listens on addr and admin,
// against the simulator at simAddr, with extra arguments; cleanup stops it.
func runNode(t *testing.T, bin, id, addr, admin, simAddr string, extra []string) *gatewayNode {
	t.Helper()
	g := &gatewayNode{id: id, addr: addr, admin: admin, exited: make(chan error, 1), stderr: &syncbuf.Buffer{}}
	args := append([]string{"--listen", g.addr, "--admin-listen", g.admin, "--node-id", id,
		"--binance-url", "ws://" + simAddr, "--binance-rest-url", "http://" + simAddr,
		"--drain-timeout", "10s", "--log-level", "info"}, extra...)
	if !slices.Contains(extra, "--exchanges") {
		args = append(args, "--exchanges", "all") // each on or off by its URL, below
	}
	for _, a := range optionalOff() {
		if !slices.Contains(extra, a[0]) { // an exchange extra sets stays on
			args = append(args, a...)
		}
	}
	g.cmd = exec.Command(bin, args...)
	g.cmd.Stderr = io.MultiWriter(t.Output(), g.stderr)
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := g.cmd.Wait()
		g.mu.Lock()
		g.err, g.done = err, true
		g.mu.Unlock()
		g.exited <- err
	}()
	t.Cleanup(func() {
		if _, done := g.result(); done {
			return
		}
		g.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-g.exited:
		case <-time.After(20 * time.Second):
			g.cmd.Process.Kill()
			t.Errorf("node %s did not exit within 20s of SIGTERM", id)
		}
	})
	return g
}

// optionalOff returns the flags that turn every optional exchange off
// (an empty URL), one pair each: unless a test sets them up, these nodes
// carry Binance spot from the simulator only.
func optionalOff() [][]string {
	var args [][]string
	for _, x := range gateway.Exchanges() {
		if x.Optional {
			args = append(args, []string{"--" + x.Name + "-url", ""})
		}
	}
	return args
}

// testCluster is redis, the simulator, three nodes and nginx.
type testCluster struct {
	redis *redistest.Server // nil on a Redis Cluster
	rdb   redis.UniversalClient
	sim   *binancesim.Server
	nodes []*gatewayNode
	lb    string // nginx's address
	// What another node needs: the binary, the simulator's address and
	// the Redis arguments.
	bin, simAddr string
	redisArgs    []string
}

func startCluster(t *testing.T) *testCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("runs redis-server, three gateway binaries and nginx")
	}
	r := redistest.Start(t)
	c := &testCluster{redis: r, rdb: redis.NewClient(&redis.Options{Addr: r.Addr()})}
	return c.start(t, []string{"--redis", r.URL()})
}

// startRedisCluster is startCluster on a three-master Redis Cluster.
func startRedisCluster(t *testing.T) *testCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("runs a Redis Cluster, three gateway binaries and nginx")
	}
	addrs := redistest.StartCluster(t, 3).Addrs()
	u := "redis://" + addrs[0] + "?addr=" + addrs[1] + "&addr=" + addrs[2]
	c := &testCluster{rdb: redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})}
	return c.start(t, []string{"--redis", u, "--redis-cluster"})
}

func (c *testCluster) start(t *testing.T, redisArgs []string) *testCluster {
	t.Helper()
	bin := buildGateway(t)
	t.Cleanup(func() { c.rdb.Close() })
	var simAddr string
	defer func() { c.bin, c.simAddr, c.redisArgs = bin, simAddr, redisArgs }()
	c.sim, simAddr = startSim(t, binancesim.Config{Symbols: []string{"BTCUSDT", "ETHUSDT", "BNBUSDT"}, TickInterval: 20 * time.Millisecond})
	var addrs []string
	for i := range 3 {
		g := startNode(t, bin, fmt.Sprintf("node%d", i+1), simAddr, redisArgs)
		c.nodes = append(c.nodes, g)
		addrs = append(addrs, g.addr)
	}
	for _, g := range c.nodes {
		waitReady(t, g.addr)
	}
	c.lb = deploytest.StartNginx(t, addrs)
	return c
}

// owner returns the node that holds the binance lease, waiting for one.
func (c *testCluster) owner(t *testing.T) *gatewayNode {
	t.Helper()
	var owner *gatewayNode
	waitfor.Cond(t, 10*time.Second, func() error {
		v, err := c.rdb.Get(t.Context(), leaseKey).Result()
		if err != nil {
			return fmt.Errorf("lease: %w", err)
		}
		id, _, _ := strings.Cut(v, "|")
		for _, g := range c.nodes {
			if g.id == id {
				owner = g
				return nil
			}
		}
		return fmt.Errorf("lease held by %q, not a node", v)
	})
	return owner
}

// carriedOnce returns a check that the simulator has each of streams on
// exactly one connection: the cluster carries every stream once, not once
// per node.
func (c *testCluster) carriedOnce(streams ...string) func() error {
	return func() error { return c.carried(streams) }
}

func (c *testCluster) carried(streams []string) error {
	subs := c.sim.Subscriptions()
	for _, s := range streams {
		name := strings.TrimPrefix(s, "binance:")
		if subs[name] != 1 {
			return fmt.Errorf("%s carried by %d connections; want 1 (all: %v)", name, subs[name], subs)
		}
	}
	if n := c.sim.OpenConnections(); n != 1 {
		return fmt.Errorf("%d connections to the exchange; want 1", n)
	}
	return nil
}

// TestClusterFanOut: 60 clients through nginx over three nodes all
// receive every stream they subscribe, with consecutive trade ids, while
// the exchange sees each stream on exactly one connection; on one Redis
// and on a three-master Redis Cluster (sharded pub/sub).
func TestClusterFanOut(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(*testing.T) *testCluster
	}{{"redis", startCluster}, {"redis cluster", startRedisCluster}} {
		t.Run(tc.name, func(t *testing.T) { fanOut(t, tc.start(t)) })
	}
}

func fanOut(t *testing.T, c *testCluster) {
	var wg sync.WaitGroup
	errs := make(chan error, 60)
	for i := range 60 {
		cl := downstreamtest.Dial(t, "ws://"+c.lb+"/ws")
		streams := []string{clusterStreams[i%3], clusterStreams[(i+1)%3]}
		wg.Go(func() {
			if err := followTrades(cl, streams, 20); err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	waitfor.Cond(t, 5*time.Second, c.carriedOnce(clusterStreams...))
}

// tradeLog follows one stream on one client in the background and keeps
// every trade id, gap flag and arrival time.
type tradeLog struct {
	mu    sync.Mutex
	ids   []uint64
	gaps  []bool
	times []time.Time
	err   error
}

func follow(t *testing.T, url, stream string) *tradeLog {
	t.Helper()
	cl := downstreamtest.Dial(t, url)
	cl.Send(fmt.Sprintf(`{"op":"subscribe","id":1,"streams":[%q]}`, stream))
	l := &tradeLog{}
	go func() {
		for {
			p, err := cl.Read(time.Minute)
			if err != nil {
				l.mu.Lock()
				l.err = err
				l.mu.Unlock()
				return
			}
			var m nativeMsg
			if json.Unmarshal(p, &m) != nil || m.Stream != stream {
				continue
			}
			id, ok := m.trade()
			if !ok {
				continue
			}
			l.mu.Lock()
			l.ids, l.gaps, l.times = append(l.ids, id), append(l.gaps, m.Gap), append(l.times, time.Now())
			l.mu.Unlock()
		}
	}()
	return l
}

func (l *tradeLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.ids)
}

// after returns how many trades arrived after t0, and the first of them.
func (l *tradeLog) after(t0 time.Time) (int, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, at := range l.times {
		if at.After(t0) {
			return len(l.times) - i, at
		}
	}
	return 0, time.Time{}
}

// check returns the missing and repeated trade ids, ignoring what follows
// a gap notice (the gap says events may be lost there).
func (l *tradeLog) check() (missing, repeated int, gapNotices int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := 1; i < len(l.ids); i++ {
		if l.gaps[i] {
			gapNotices++
			continue
		}
		switch d := int64(l.ids[i]) - int64(l.ids[i-1]); {
		case d <= 0:
			repeated++
		case d > 1:
			missing += int(d - 1)
		}
	}
	return missing, repeated, gapNotices
}

// survivors returns the nodes other than g.
func (c *testCluster) survivors(g *gatewayNode) []*gatewayNode {
	var out []*gatewayNode
	for _, n := range c.nodes {
		if n != g {
			out = append(out, n)
		}
	}
	return out
}

// watchCarriers samples the simulator every 20 ms until stop is closed and
// returns the longest time any stream was carried by more than one
// connection at once.
func (c *testCluster) watchCarriers(stop <-chan struct{}) <-chan time.Duration {
	out := make(chan time.Duration, 1)
	go func() {
		var longest time.Duration
		since := map[string]time.Time{}
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				out <- longest
				return
			case now := <-tick.C:
				subs := c.sim.Subscriptions()
				for _, s := range clusterStreams {
					name := strings.TrimPrefix(s, "binance:")
					if subs[name] > 1 {
						if since[name].IsZero() {
							since[name] = now
						}
						longest = max(longest, now.Sub(since[name]))
					} else {
						delete(since, name)
					}
				}
			}
		}
	}()
	return out
}

// TestClusterFailover kills the owner of the upstream with SIGKILL: the
// survivors' clients get data again within 5 s, told of the gap, and the
// exchange never sees a stream carried twice for longer than a lease's
// life (2 s).
func TestClusterFailover(t *testing.T) {
	c := startCluster(t)
	owner := c.owner(t)
	var logs []*tradeLog
	for _, g := range c.survivors(owner) {
		logs = append(logs, follow(t, "ws://"+g.addr+"/ws", clusterStreams[0]))
	}
	waitTrades(t, logs, 10)
	stop := make(chan struct{})
	doubled := c.watchCarriers(stop)
	killed := time.Now()
	owner.cmd.Process.Kill()
	<-owner.exited
	resumed := waitTradesAfter(t, 10*time.Second, logs, killed, killed.Add(100*time.Millisecond))
	close(stop)
	t.Logf("failover: data again %v after the kill (new owner %s)", resumed.Round(time.Millisecond), c.owner(t).id)
	if resumed > 5*time.Second {
		t.Errorf("survivors' clients got data again %v after the kill; want within 5s", resumed)
	}
	for i, l := range logs {
		missing, repeated, gaps := l.check()
		if repeated > 0 || (missing > 0 && gaps == 0) || gaps == 0 {
			t.Errorf("survivor client %d: %d missing, %d repeated trade ids, %d gap notices; want the loss told by a gap notice and no repeat", i, missing, repeated, gaps)
		}
	}
	if d := <-doubled; d > 2*time.Second {
		t.Errorf("a stream was carried twice for %v; want at most the lease's 2s", d)
	}
	waitfor.Cond(t, 5*time.Second, c.carriedOnce(clusterStreams[0]))
}

// TestClusterDrain drains the owner, with SIGTERM or POST /api/v1/drain:
// it hands the upstream over make-before-break, so clients of the other
// nodes miss no trade id and see none twice; the drained node exits 0.
func TestClusterDrain(t *testing.T) {
	for _, tc := range []struct {
		name  string
		drain func(t *testing.T, g *gatewayNode)
	}{
		{"SIGTERM", func(t *testing.T, g *gatewayNode) { g.cmd.Process.Signal(syscall.SIGTERM) }},
		{"POST /api/v1/drain", func(t *testing.T, g *gatewayNode) {
			resp, err := http.Post("http://"+g.admin+"/api/v1/drain", "application/json", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("POST /api/v1/drain: %s; want 202", resp.Status)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { drain(t, tc.drain) })
	}
}

func drain(t *testing.T, how func(*testing.T, *gatewayNode)) {
	c := startCluster(t)
	owner := c.owner(t)
	var logs []*tradeLog
	for _, g := range c.survivors(owner) {
		for _, s := range clusterStreams {
			logs = append(logs, follow(t, "ws://"+g.addr+"/ws", s))
		}
	}
	waitTrades(t, logs, 10)
	stop := make(chan struct{})
	doubled := c.watchCarriers(stop)
	termed := time.Now()
	how(t, owner)
	select {
	case err := <-owner.exited:
		if err != nil {
			t.Errorf("drained node exited with %v; want 0", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("drained node did not exit within 20s")
	}
	exitedAfter := time.Since(termed)
	// Let trades flow on the new owner for a while.
	counts := make([]int, len(logs))
	for i, l := range logs {
		counts[i] = l.count()
	}
	waitfor.Cond(t, 10*time.Second, func() error {
		for i, l := range logs {
			if l.count() < counts[i]+20 {
				return fmt.Errorf("client %d: %d trades since the old owner exited", i, l.count()-counts[i])
			}
		}
		return nil
	})
	close(stop)
	t.Logf("drain: old owner exited %v after the request; new owner %s; carried twice for at most %v",
		exitedAfter.Round(time.Millisecond), c.owner(t).id, (<-doubled).Round(time.Millisecond))
	for i, l := range logs {
		if missing, repeated, gaps := l.check(); missing > 0 || repeated > 0 || gaps > 0 {
			t.Errorf("client %d: %d missing, %d repeated trade ids, %d gap notices; want none", i, missing, repeated, gaps)
		}
	}
	waitfor.Cond(t, 5*time.Second, c.carriedOnce(clusterStreams...))
}

// TestClusterRedisRestart kills Redis and starts it again on the same port:
// data flows to the clients again within 5 s of its return.
func TestClusterRedisRestart(t *testing.T) {
	c := startCluster(t)
	var logs []*tradeLog
	for _, g := range c.nodes {
		logs = append(logs, follow(t, "ws://"+g.addr+"/ws", clusterStreams[1]))
	}
	waitTrades(t, logs, 10)
	c.redis.Kill()
	time.Sleep(3 * time.Second) // down for a few seconds
	for _, g := range c.nodes {
		if _, done := g.result(); done {
			t.Fatalf("node %s exited while Redis was down", g.id)
		}
	}
	c.redis.Restart(t)
	back := time.Now()
	resumed := waitTradesAfter(t, 15*time.Second, logs, back, back)
	t.Logf("redis restart: data again %v after Redis came back", resumed.Round(time.Millisecond))
	if resumed > 5*time.Second {
		t.Errorf("data again %v after Redis came back; want within 5s", resumed)
	}
}

// TestClusterRedisDataLoss restarts Redis empty (no persistence) while the
// owner's fencing token is high, and lets a node started during the outage,
// which never saw a token, take the lease: clients on every node, those
// subscribed before included, get data again, with a gap notice where
// trades were lost. Receivers drop messages whose token is below the one
// they saw, so a token that went back would starve them silently.
func TestClusterRedisDataLoss(t *testing.T) {
	c := startCluster(t)
	// A long history of owners: the counter is far from 1. Deleting the
	// lease makes the owner step down and a node take it again.
	fence := strings.Replace(leaseKey, ":lease:", ":fence:", 1)
	if err := c.rdb.Set(t.Context(), fence, 1000, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.rdb.Del(t.Context(), leaseKey).Err(); err != nil {
		t.Fatal(err)
	}
	var before int64
	waitfor.Cond(t, 10*time.Second, func() error {
		v, err := c.rdb.Get(t.Context(), leaseKey).Result()
		if err != nil {
			return fmt.Errorf("lease: %w", err)
		}
		_, tok, _ := strings.Cut(v, "|")
		if before, _ = strconv.ParseInt(tok, 10, 64); before <= 1000 {
			return fmt.Errorf("lease %q: want a token above 1000", v)
		}
		return nil
	})
	var logs []*tradeLog
	for _, g := range c.nodes {
		logs = append(logs, follow(t, "ws://"+g.addr+"/ws", clusterStreams[0]))
	}
	waitTrades(t, logs, 10)

	// Redis dies; a new node starts meanwhile. The others pause while
	// Redis comes back empty, so that the new node takes the lease.
	c.redis.Kill()
	late := startNode(t, c.bin, "node4", c.simAddr, c.redisArgs)
	time.Sleep(3 * time.Second) // the old owner stops carrying (2s lease)
	for _, g := range c.nodes {
		g.cmd.Process.Signal(syscall.SIGSTOP)
		t.Cleanup(func() { g.cmd.Process.Signal(syscall.SIGCONT) })
	}
	c.redis.Restart(t)
	var after int64
	waitfor.Cond(t, 10*time.Second, func() error {
		v, err := c.rdb.Get(t.Context(), leaseKey).Result()
		if err != nil {
			return fmt.Errorf("lease: %w", err)
		}
		id, tok, _ := strings.Cut(v, "|")
		if id != late.id {
			return fmt.Errorf("lease %q; want %s's", v, late.id)
		}
		after, _ = strconv.ParseInt(tok, 10, 64)
		return nil
	})
	for _, g := range c.nodes {
		g.cmd.Process.Signal(syscall.SIGCONT)
	}
	resumed := time.Now()
	t.Logf("token %d before Redis lost its data, %d after (%s)", before, after, late.id)
	waitReady(t, late.addr)
	logs = append(logs, follow(t, "ws://"+late.addr+"/ws", clusterStreams[0]))
	took := waitTradesAfter(t, 15*time.Second, logs, resumed, resumed)
	t.Logf("data loss: every client has data again %v after the nodes resumed", took.Round(time.Millisecond))
	for i, l := range logs[:len(c.nodes)] {
		if missing, repeated, gaps := l.check(); repeated > 0 || gaps == 0 || (missing > 0 && gaps == 0) {
			t.Errorf("client %d: %d missing, %d repeated trade ids, %d gap notices; want the loss told by a gap notice and no repeat", i, missing, repeated, gaps)
		}
	}
	for _, g := range append(c.nodes, late) {
		waitReady(t, g.addr)
	}
}

// TestClusterCapacityRefusal is M4 across real nodes: the owner carries
// at most 2 streams (one connection of 2), and a client of another node
// asks for 3. That node validates them with room to spare (it carries
// nothing itself), so it answers success; the owner cannot place the
// third, and the client gets upstream_error naming it, never silence,
// while the two carried streams deliver.
func TestClusterCapacityRefusal(t *testing.T) {
	if testing.Short() {
		t.Skip("runs redis-server, three gateway binaries and nginx")
	}
	r := redistest.Start(t)
	c := &testCluster{redis: r, rdb: redis.NewClient(&redis.Options{Addr: r.Addr()})}
	c.start(t, []string{"--redis", r.URL(), "--binance-max-shards", "1", "--binance-max-streams", "2"})
	owner := c.owner(t)
	var other *gatewayNode
	for _, g := range c.nodes {
		if g != owner {
			other = g
			break
		}
	}
	cl := downstreamtest.Dial(t, "ws://"+other.addr+"/ws")
	cl.Send(`{"op":"subscribe","id":1,"streams":["` + strings.Join(clusterStreams, `","`) + `"]}`)
	failed := map[string]string{}
	trades := map[string]int{}
	deadline := time.Now().Add(20 * time.Second)
	for len(failed) == 0 || len(trades) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("after 20s: failed %v, trades %v; want one stream failed and two delivering", failed, trades)
		}
		p, err := cl.Read(time.Until(deadline))
		if err != nil {
			t.Fatalf("read: %v (failed %v, trades %v)", err, failed, trades)
		}
		var m struct {
			ID     *int   `json:"id"`
			Stream string `json:"stream"`
			Error  *struct {
				Code string `json:"code"`
				Msg  string `json:"msg"`
			} `json:"error"`
		}
		if err := json.Unmarshal(p, &m); err != nil {
			t.Fatalf("message %s: %v", p, err)
		}
		switch {
		case m.ID != nil && m.Error != nil:
			t.Fatalf("the subscribe was refused: %s", p)
		case m.Stream != "" && m.Error != nil:
			if m.Error.Code != "upstream_error" {
				t.Fatalf("stream notice %s; want upstream_error", p)
			}
			failed[m.Stream] = m.Error.Msg
		case m.Stream != "":
			trades[m.Stream]++
		}
	}
	if len(failed) != 1 {
		t.Fatalf("failed streams %v; want exactly one", failed)
	}
	for s := range failed {
		if trades[s] > 0 {
			t.Fatalf("%s delivered %d trades and failed", s, trades[s])
		}
	}
	t.Logf("refused: %v; delivering: %v", failed, trades)
}

// waitTrades waits, up to 10 s, until every log has at least n trades.
func waitTrades(t *testing.T, logs []*tradeLog, n int) {
	t.Helper()
	waitfor.Cond(t, 10*time.Second, func() error {
		for i, l := range logs {
			if got := l.count(); got < n {
				return fmt.Errorf("client %d has %d trades; want %d", i, got, n)
			}
		}
		return nil
	})
}

// waitTradesAfter waits, up to limit, until every log has 5 trades that
// arrived after since, and returns how long after base the last of the
// logs got its first one: the time until data flowed again everywhere.
func waitTradesAfter(t *testing.T, limit time.Duration, logs []*tradeLog, base, since time.Time) time.Duration {
	t.Helper()
	var took time.Duration
	waitfor.Cond(t, limit, func() error {
		for i, l := range logs {
			n, first := l.after(since)
			if n < 5 {
				return fmt.Errorf("client %d: %d trades since %v", i, n, since.Format("15:04:05.000"))
			}
			took = max(took, first.Sub(base))
		}
		return nil
	})
	return took
}
