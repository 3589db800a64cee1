//go:build unix

package deploy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/marketgate/marketgate/deploy/deploytest"
)

func TestNginxConfig(t *testing.T) {
	bin := deploytest.NginxBinary(t)
	dir := deploytest.WriteNginx(t, deploytest.FreeAddr(t), []string{"127.0.0.1:1", "127.0.0.1:2"})
	out, err := exec.Command(bin, deploytest.NginxArgs(dir, "-t")...).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("test is successful")) {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	t.Logf("nginx -t:\n%s", out)
}

// fakeNode stands in for a gateway node: GET /readyz, GET /whoami (which
// reports the forwarding headers it got) and GET /ws, which answers a
// WebSocket handshake with 101, a greeting line, and then echoes bytes.
type fakeNode struct {
	name string
	addr string

	refuse   atomic.Bool  // answer handshakes with 503, as a draining node does
	refused  atomic.Int32 // handshakes answered 503
	upgrades atomic.Int32 // handshakes answered 101

	wg sync.WaitGroup // echo goroutines
	// mu guards the following fields
	mu    sync.Mutex
	conns map[net.Conn]bool // upgraded connections still open
}

func startNode(t *testing.T, name string) *fakeNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &fakeNode{name: name, addr: ln.Addr().String(), conns: map[net.Conn]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, `{"status":"ready"}`)
	})
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(whoami{Node: name, Host: r.Host, XForwardedFor: r.Header.Get("X-Forwarded-For"),
			XRealIP: r.Header.Get("X-Real-IP"), XForwardedProto: r.Header.Get("X-Forwarded-Proto")})
	})
	mux.HandleFunc("GET /ws", n.upgrade)
	mux.HandleFunc("GET /binance/", n.upgrade)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		<-served
		n.mu.Lock()
		for c := range n.conns {
			c.Close()
		}
		n.mu.Unlock()
		n.wg.Wait()
	})
	return n
}

// whoami is what a fakeNode's /whoami reports.
type whoami struct {
	Node            string `json:"node"`
	Host            string `json:"host"`
	XForwardedFor   string `json:"xForwardedFor"`
	XRealIP         string `json:"xRealIP"`
	XForwardedProto string `json:"xForwardedProto"`
}

func (n *fakeNode) upgrade(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || !strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade") {
		http.Error(w, fmt.Sprintf("not a WebSocket handshake: Upgrade %q, Connection %q", r.Header.Get("Upgrade"), r.Header.Get("Connection")), http.StatusBadRequest)
		return
	}
	if n.refuse.Load() {
		n.refused.Add(1)
		http.Error(w, `{"status":"not ready","reason":"draining"}`, http.StatusServiceUnavailable)
		return
	}
	c, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	n.mu.Lock()
	n.conns[c] = true
	n.mu.Unlock()
	fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Node: %s\r\nX-Seen-Forwarded-For: %s\r\n\r\nhello from %s\n",
		n.name, r.Header.Get("X-Forwarded-For"), n.name)
	rw.Flush()
	n.upgrades.Add(1)
	n.wg.Go(func() {
		io.Copy(c, rw.Reader) // echo until the proxy closes
		c.Close()
		n.mu.Lock()
		delete(n.conns, c)
		n.mu.Unlock()
	})
}

// open returns how many upgraded connections the node holds.
func (n *fakeNode) open() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.conns)
}

// wsConn is the client side of a proxied WebSocket handshake.
type wsConn struct {
	net.Conn
	resp *http.Response
	r    *bufio.Reader
}

// dialWS sends a WebSocket handshake for path to addr and reads the answer.
// The connection is closed when the test ends.
func dialWS(t *testing.T, addr, path string) *wsConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: gateway.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: http://gateway.test\r\n\r\n", path)
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("handshake through nginx: %v", err)
	}
	return &wsConn{Conn: c, resp: resp, r: r}
}

// upgraded checks that the handshake got 101 with Upgrade: websocket and
// that the node's greeting follows; it returns the node's name.
func (c *wsConn) upgraded(t *testing.T) string {
	t.Helper()
	if c.resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(c.resp.Body, 512))
		t.Fatalf("handshake: status %d (%s); want 101", c.resp.StatusCode, body)
	}
	if got := c.resp.Header.Get("Upgrade"); !strings.EqualFold(got, "websocket") {
		t.Errorf("handshake: Upgrade %q; want websocket", got)
	}
	if got := c.resp.Header.Get("Connection"); !strings.EqualFold(got, "upgrade") {
		t.Errorf("handshake: Connection %q; want upgrade", got)
	}
	node := c.resp.Header.Get("X-Node")
	line, err := c.r.ReadString('\n')
	if want := "hello from " + node + "\n"; err != nil || line != want {
		t.Fatalf("first bytes after the 101: %q, %v; want %q", line, err, want)
	}
	return node
}

func TestNginxProxiesWebSockets(t *testing.T) {
	a, b := startNode(t, "A"), startNode(t, "B")
	nodes := map[string]*fakeNode{"A": a, "B": b}
	addr := deploytest.StartNginx(t, []string{a.addr, b.addr})

	// closeAll closes cs and waits until each node in of sees all its proxied
	// connections closed, so that nginx counts none for it any more.
	closeAll := func(t *testing.T, cs []*wsConn, of ...*fakeNode) {
		t.Helper()
		for _, c := range cs {
			c.Close()
		}
		deadline := time.Now().Add(5 * time.Second)
		for _, n := range of {
			for n.open() > 0 {
				if time.Now().After(deadline) {
					t.Fatalf("node %s still holds %d connections 5s after the clients closed", n.name, n.open())
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}

	t.Run("upgrade and echo", func(t *testing.T) {
		for _, path := range []string{"/ws", "/binance/ws/btcusdt@trade"} {
			c := dialWS(t, addr, path)
			node := c.upgraded(t)
			if nodes[node] == nil {
				t.Fatalf("%s: X-Node %q; want A or B", path, node)
			}
			// Larger than any proxy buffer, so both directions must stream.
			msg := bytes.Repeat([]byte("0123456789abcdef"), 64<<10/16)
			msg[len(msg)-1] = '\n'
			errc := make(chan error, 1)
			go func() { _, err := c.Write(msg); errc <- err }()
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c.r, got); err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("%s: echo of %d bytes: %v (equal %v)", path, len(msg), err, bytes.Equal(got, msg))
			}
			if err := <-errc; err != nil {
				t.Fatalf("%s: write: %v", path, err)
			}
			closeAll(t, []*wsConn{c}, a, b)
		}
	})

	t.Run("forwarded headers", func(t *testing.T) {
		req, err := http.NewRequest("GET", "http://"+addr+"/whoami", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "gateway.test"
		req.Header.Set("X-Forwarded-For", "203.0.113.7")
		client := &http.Client{Timeout: 5 * time.Second}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got whoami
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
			t.Fatalf("GET /whoami: status %d: %v", resp.StatusCode, err)
		}
		want := whoami{Node: got.Node, Host: "gateway.test", XForwardedFor: "203.0.113.7, 127.0.0.1", XRealIP: "127.0.0.1", XForwardedProto: "http"}
		if got != want || nodes[got.Node] == nil {
			t.Errorf("GET /whoami through nginx = %+v; want %+v from A or B", got, want)
		}

		c := dialWS(t, addr, "/ws")
		c.upgraded(t)
		if got := c.resp.Header.Get("X-Seen-Forwarded-For"); got != "127.0.0.1" {
			t.Errorf("X-Forwarded-For of the handshake at the node = %q; want 127.0.0.1", got)
		}
		closeAll(t, []*wsConn{c}, a, b)
	})

	t.Run("least_conn spreads held connections", func(t *testing.T) {
		var cs []*wsConn
		count := map[string]int{}
		for range 6 {
			c := dialWS(t, addr, "/ws")
			count[c.upgraded(t)]++
			cs = append(cs, c)
		}
		t.Logf("6 held connections: %v", count)
		if count["A"] == 0 || count["B"] == 0 {
			t.Fatalf("6 held connections went %v; want some on each node", count)
		}
		// Close A's: least_conn then sends every new connection to A until
		// it holds as many as B (round robin would alternate).
		var onA, onB []*wsConn
		for _, c := range cs {
			if c.resp.Header.Get("X-Node") == "A" {
				onA = append(onA, c)
			} else {
				onB = append(onB, c)
			}
		}
		closeAll(t, onA, a)
		for i := range count["B"] {
			c := dialWS(t, addr, "/ws")
			if node := c.upgraded(t); node != "A" {
				t.Errorf("new connection %d with A holding %d and B %d: went to %s; want A (least connections)", i, i, count["B"], node)
			}
			onB = append(onB, c)
		}
		closeAll(t, onB, a, b)
	})

	// Last: B ends up marked failed (max_fails) for fail_timeout.
	t.Run("503 handshake retried on the other node", func(t *testing.T) {
		b.refuse.Store(true)
		var cs []*wsConn
		for i := range 4 {
			c := dialWS(t, addr, "/ws")
			if node := c.upgraded(t); node != "A" {
				t.Errorf("connection %d: answered by %q; want A (B refuses)", i, node)
			}
			cs = append(cs, c)
		}
		// With A holding connections and B none, least_conn picks B at
		// least once; each of those handshakes must have been retried on A.
		if b.refused.Load() == 0 {
			t.Errorf("B refused no handshake: nginx never tried it, so the retry was not exercised")
		}
		t.Logf("B refused %d handshakes, all retried on A", b.refused.Load())
		closeAll(t, cs, a, b)
	})
}

func TestHAProxyConfig(t *testing.T) {
	bin, ok := deploytest.FindBinary("haproxy")
	if !ok {
		t.Skip("haproxy not installed; HAProxy is optional (apt-get install -y haproxy to check haproxy/haproxy.cfg)")
	}
	out, err := exec.Command(bin, "-c", "-f", "haproxy/haproxy.cfg").CombinedOutput()
	if err != nil {
		t.Fatalf("haproxy -c -f haproxy/haproxy.cfg: %v\n%s", err, out)
	}
	t.Logf("haproxy -c:\n%s", out)
}
