package downstream

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/marketgate/marketgate/downstream/downstreamtest"
	"github.com/marketgate/marketgate/internal/waitfor"
)

func TestKeepalive(t *testing.T) {
	env := startServer(t, Config{PingInterval: 250 * time.Millisecond, PongTimeout: 750 * time.Millisecond})
	alive := downstreamtest.Dial(t, env.url+"/ws")
	silent := downstreamtest.Dial(t, env.url+"/ws")

	// alive answers every ping for two seconds: well past PingInterval +
	// PongTimeout, so it stays.
	pings := 0
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		hdr, p, err := alive.NextFrame(time.Second)
		if err != nil {
			t.Fatalf("answering client: %v", err)
		}
		if hdr.OpCode == ws.OpPing {
			pings++
			if err := wsutil.WriteClientMessage(alive.Conn(), ws.OpPong, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	if pings < 3 {
		t.Errorf("answering client got %d pings in 2s at a 250ms interval; want at least 3", pings)
	}
	// silent never answered: it got pings, then its connection was dropped.
	var got []ws.OpCode
	for {
		hdr, _, err := silent.NextFrame(3 * time.Second)
		if err != nil {
			break
		}
		got = append(got, hdr.OpCode)
	}
	if len(got) == 0 || got[0] != ws.OpPing {
		t.Errorf("silent client read %v before the drop; want pings", got)
	}
	if n := env.srv.Stats().Closed["keepalive_timeout"]; n != 1 {
		t.Errorf("keepalive_timeout closes = %d; want 1", n)
	}
	alive.Send(`{"op":"ping","id":1}`)
	for {
		hdr, p, err := alive.NextFrame(time.Second)
		if err != nil {
			t.Fatalf("answering client after the drop: %v", err)
		}
		if hdr.OpCode == ws.OpText {
			if string(p) != `{"id":1,"result":"pong"}` {
				t.Fatalf("reply = %s", p)
			}
			break
		}
		if hdr.OpCode == ws.OpPing {
			wsutil.WriteClientMessage(alive.Conn(), ws.OpPong, p)
		}
	}
}

func TestFloodClosesOnlyTheFlooder(t *testing.T) {
	env := startServer(t, Config{MaxCommandsPerSecond: 5})
	const key = "binance:btcusdt@trade"
	victim := downstreamtest.Dial(t, env.url+"/ws")
	victim.Send(`{"op":"subscribe","id":1,"streams":["` + key + `"]}`)
	victim.Next()
	flooder := downstreamtest.Dial(t, env.url+"/ws")
	for i := range 50 {
		if err := wsutil.WriteClientText(flooder.Conn(), fmt.Appendf(nil, `{"op":"ping","id":%d}`, i)); err != nil {
			break // closed under us
		}
		publish(t, env.hub, key, uint64(i+1), fmt.Sprintf(`{"t":%d}`, i+1))
	}
	if got := flooder.ExpectClose(); got != ws.StatusPolicyViolation {
		t.Fatalf("flooder closed with %d; want 1008", got)
	}
	for i := range 50 {
		want := fmt.Sprintf(`{"stream":"%s","seq":%d,"data":{"t":%d}}`, key, i+1, i+1)
		if got := string(victim.Next()); got != want {
			t.Fatalf("victim message %d = %s; want %s", i, got, want)
		}
	}
}

func TestPingFloodCounts(t *testing.T) {
	env := startServer(t, Config{MaxCommandsPerSecond: 5})
	c := downstreamtest.Dial(t, env.url+"/ws")
	for range 20 {
		if ws.WriteFrame(c.Conn(), ws.MaskFrame(ws.NewPingFrame([]byte("x")))) != nil {
			break
		}
	}
	if got := c.ExpectClose(); got != ws.StatusPolicyViolation {
		t.Fatalf("ping flooder closed with %d; want 1008", got)
	}
}

func TestMaxConnsPerIP(t *testing.T) {
	env := startServer(t, Config{MaxConnsPerIP: 2})
	a := downstreamtest.Dial(t, env.url+"/ws")
	downstreamtest.Dial(t, env.url+"/ws")
	if _, err := downstreamtest.TryDial(env.url+"/ws", nil); !errors.Is(err, ws.StatusError(http.StatusTooManyRequests)) {
		t.Fatalf("third connection from one address: err = %v; want 429", err)
	}
	a.Close()
	waitfor.Cond(t, 2*time.Second, func() error {
		c, err := downstreamtest.TryDial(env.url+"/ws", nil)
		if err != nil {
			return err
		}
		c.Close()
		return nil
	})
	if n := env.srv.Stats().Rejected["per_ip"]; n < 1 {
		t.Fatalf("per_ip rejections = %d; want at least 1", n)
	}
}

// TestOneDescriptorPerConnection counts this process's descriptors around
// opening connections: each costs two here (the client's socket and the
// server's), so the server side costs exactly one; easygo's Handle would
// have cost two.
func TestOneDescriptorPerConnection(t *testing.T) {
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skip("no /proc/self/fd")
		}
		return len(ents)
	}
	env := startServer(t, Config{})
	downstreamtest.Dial(t, env.url+"/ws").Close() // warm up the listener's own descriptors
	waitfor.Cond(t, 2*time.Second, func() error {
		if n := env.srv.ConnCount(); n != 0 {
			return fmt.Errorf("%d connections", n)
		}
		return nil
	})
	before := fds()
	const n = 200
	for range n {
		downstreamtest.Dial(t, env.url+"/ws")
	}
	waitfor.Cond(t, 2*time.Second, func() error {
		if c := env.srv.ConnCount(); c != n {
			return fmt.Errorf("%d connections", c)
		}
		return nil
	})
	// A descriptor or two may come and go meanwhile (the runtime, a closing
	// warm-up socket); two per connection on the server would show as 3n.
	if got := fds() - before; got < 2*n-2 || got > 2*n+2 {
		t.Fatalf("%d connections cost %d descriptors in client and server together; want %d", n, got, 2*n)
	}
}
