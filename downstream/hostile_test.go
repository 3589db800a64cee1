package downstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/marketgate/marketgate/downstream/downstreamtest"
	"github.com/marketgate/marketgate/hub"
	"github.com/marketgate/marketgate/internal/waitfor"
)

// These tests are the reproductions of the review's findings H1, H2, L1,
// L6 and L8 (../shared/review/reliability.md), kept as regression tests.

// maskedFrame is one client frame as bytes.
func maskedFrame(op ws.OpCode, fin bool, p []byte) []byte {
	return ws.MustCompileFrame(ws.MaskFrame(ws.NewFrame(op, fin, bytes.Clone(p))))
}

// TestPartialFramesStallNoOne is H1: connections that send part of a frame
// and then nothing must not hold the workers. With 2 workers, 1,000 such
// connections (opened at once, twice over) leave a live client's pings
// answered at once and its stream without a gap, and each of them is
// closed with 1008 when its message is ReadTimeout late.
func TestPartialFramesStallNoOne(t *testing.T) {
	const readTimeout = 1500 * time.Millisecond
	env := startServer(t, Config{Workers: 2, ReadTimeout: readTimeout, MaxConnsPerIP: 5000})
	const key = "binance:btcusdt@trade"
	victim := downstreamtest.Dial(t, env.url+"/ws")
	victim.Send(`{"op":"subscribe","id":0,"streams":["` + key + `"]}`)
	victim.Next()

	full := maskedFrame(ws.OpText, true, []byte(`{"op":"ping","id":"attacker"}`))
	partials := [][]byte{
		{0x81},             // one byte of a header
		full[:4],           // a header without its whole mask key
		full[:6],           // a whole header, no payload
		full[:len(full)-3], // all but the end of the payload
		maskedFrame(ws.OpText, false, []byte(`{"op":`)), // the first fragment of a message
	}

	// The publisher sends a message every 5 ms while the attack lasts.
	stop := make(chan struct{})
	var pubWG sync.WaitGroup
	published := 0
	pubWG.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			published++
			publish(t, env.hub, key, uint64(published), fmt.Sprintf(`{"t":%d}`, published))
		}
	})
	// The victim reads everything and answers pings as they come.
	type reading struct {
		hdr ws.Header
		p   []byte
		at  time.Time
	}
	frames := make(chan reading, 1<<16)
	go func() {
		defer close(frames)
		for {
			hdr, p, err := victim.NextFrame(10 * time.Second)
			if err != nil {
				return
			}
			frames <- reading{hdr, p, time.Now()}
		}
	}()
	seq := uint64(0)
	// await reads the victim's frames until one matches, checking the
	// stream's continuity on the way, and returns when it came.
	await := func(what string, match func(ws.Header, []byte) bool) time.Time {
		t.Helper()
		for {
			select {
			case r, ok := <-frames:
				if !ok {
					t.Fatalf("victim's connection ended waiting for %s", what)
				}
				if match(r.hdr, r.p) {
					return r.at
				}
				var m struct {
					Seq uint64 `json:"seq"`
					Gap bool   `json:"gap"`
				}
				if r.hdr.OpCode == ws.OpText && json.Unmarshal(r.p, &m) == nil && m.Seq != 0 {
					if m.Seq != seq+1 || m.Gap {
						t.Fatalf("victim got seq %d (gap %t) after %d", m.Seq, m.Gap, seq)
					}
					seq = m.Seq
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("victim waited 10s for %s", what)
			}
		}
	}

	worst := time.Duration(0)
	for round := range 2 {
		attackers := make([]net.Conn, 1000)
		for i := range attackers {
			attackers[i] = downstreamtest.Dial(t, env.url+"/ws").Conn()
		}
		for i, nc := range attackers {
			if _, err := nc.Write(partials[i%len(partials)]); err != nil {
				t.Fatal(err)
			}
		}
		started := time.Now()
		// Pings and commands, one after the other, while every attacker
		// holds its partial frame.
		for i := 0; time.Since(started) < readTimeout*2/3; i++ {
			time.Sleep(10 * time.Millisecond) // within the command rate
			sent := time.Now()
			if i%2 == 0 {
				victim.Send(fmt.Sprintf(`{"op":"ping","id":%d}`, i))
				want := fmt.Sprintf(`{"id":%d,"result":"pong"}`, i)
				worst = max(worst, await("reply "+want, func(h ws.Header, p []byte) bool { return string(p) == want }).Sub(sent))
			} else {
				payload := fmt.Appendf(nil, "p%d", i)
				if err := wsutil.WriteClientMessage(victim.Conn(), ws.OpPing, payload); err != nil {
					t.Fatal(err)
				}
				worst = max(worst, await("pong", func(h ws.Header, p []byte) bool {
					return h.OpCode == ws.OpPong && bytes.Equal(p, payload)
				}).Sub(sent))
			}
		}
		// Each attacker is closed with 1008 once its frame is late.
		for i, nc := range attackers {
			if i%100 != 0 {
				continue
			}
			nc.SetReadDeadline(time.Now().Add(readTimeout + 5*time.Second))
			hdr, p, err := readServerFrame(nc)
			if err != nil || hdr.OpCode != ws.OpClose {
				t.Fatalf("round %d: attacker %d read %v %q, %v; want a close", round, i, hdr.OpCode, p, err)
			}
			if code, _ := ws.ParseCloseFrameData(p); code != ws.StatusPolicyViolation {
				t.Fatalf("round %d: attacker %d closed with %d; want 1008", round, i, code)
			}
		}
		for _, nc := range attackers {
			nc.Close()
		}
	}
	close(stop)
	pubWG.Wait()
	want := uint64(published)
	await(fmt.Sprintf("message %d", want), func(h ws.Header, p []byte) bool {
		return bytes.Contains(p, fmt.Appendf(nil, `"seq":%d,`, want))
	})
	t.Logf("worst reply or pong time during the attacks: %v; %d messages without a gap", worst, want)
	// Generous against scheduling noise, far below the ReadTimeout that a
	// blocked worker would cost.
	if worst > readTimeout/3 {
		t.Fatalf("the victim waited %v for an answer while attackers held partial frames", worst)
	}
}

// readServerFrame reads one whole server frame from nc, skipping data.
func readServerFrame(nc net.Conn) (ws.Header, []byte, error) {
	for {
		f, err := ws.ReadFrame(nc)
		if err != nil {
			return ws.Header{}, nil, err
		}
		if f.Header.OpCode.IsControl() {
			return f.Header, f.Payload, nil
		}
	}
}

// dialSmallBuffer opens a WebSocket whose socket has a 4 KiB receive
// buffer, so a client that does not read stops the server's writes soon.
func dialSmallBuffer(t *testing.T, url string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
	}}
	wd := ws.Dialer{NetDial: d.DialContext}
	nc, _, _, err := wd.Dial(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// TestUnreadRepliesAreBounded is H2: replies count against the write queue.
// A client that sends commands whose replies it does not read (or reads
// only a trickle of) is closed with 4008 once its queue is full, and its
// queue never passes the limit meanwhile.
func TestUnreadRepliesAreBounded(t *testing.T) {
	const limit = 64 << 10
	env := startServer(t, Config{WriteQueueBytes: limit, MaxCommandsPerSecond: 100000})
	keys := make([]string, 38)
	for i := range keys {
		keys[i] = `"` + strings.Repeat("<", 100) + `"`
	}
	cmd := []byte(`{"op":"subscribe","id":1,"streams":[` + strings.Join(keys, ",") + `]}`)
	for _, tc := range []struct {
		name    string
		trickle int // bytes read between commands
	}{
		{name: "never reads"},
		{name: "reads a trickle", trickle: 64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := env.srv.Stats().Closed["slow_consumer"]
			nc := dialSmallBuffer(t, env.url+"/ws")
			var got []byte
			closed := false
			for i := 0; i < 20000 && !closed; i++ {
				// A server that closed the connection stops reading it
				// until its close frame is out: do not wait on that.
				nc.SetWriteDeadline(time.Now().Add(2 * time.Second)) // a loaded machine reads slowly
				if err := wsutil.WriteClientText(nc, cmd); err != nil {
					break
				}
				if tc.trickle > 0 {
					buf := make([]byte, tc.trickle)
					nc.SetReadDeadline(time.Now().Add(time.Millisecond))
					n, _ := nc.Read(buf)
					got = append(got, buf[:n]...)
				}
				if i%50 == 0 {
					page, _ := env.srv.Clients(0, 100)
					for _, ci := range page {
						if ci.QueueBytes > limit {
							t.Fatalf("after %d commands the queue holds %d bytes; limit %d", i, ci.QueueBytes, limit)
						}
					}
					if env.srv.Stats().Closed["slow_consumer"] > before {
						closed = true
					}
				}
			}
			waitfor.Cond(t, 15*time.Second, func() error {
				if env.srv.Stats().Closed["slow_consumer"] == before {
					return errors.New("the client was not closed as a slow consumer")
				}
				return nil
			})
			// Read what is left: the replies that fit, then a 4008 close.
			nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			rest := new(bytes.Buffer)
			rest.Write(got)
			buf := make([]byte, 64<<10)
			for {
				n, err := nc.Read(buf)
				rest.Write(buf[:n])
				if err != nil {
					break
				}
			}
			code := lastCloseCode(t, rest.Bytes())
			if code != StatusSlowConsumer {
				t.Fatalf("close code %d; want %d", code, StatusSlowConsumer)
			}
		})
	}
}

// lastCloseCode parses server frames from b, from the first whole frame
// boundary it can find (a trickle read may have split a frame), and
// returns the code of the close frame at the end.
func lastCloseCode(t *testing.T, b []byte) ws.StatusCode {
	t.Helper()
	r := bytes.NewReader(b)
	for {
		f, err := ws.ReadFrame(r)
		if err != nil {
			t.Fatalf("no close frame in the %d bytes read: %v", len(b), err)
		}
		if f.Header.OpCode == ws.OpClose {
			code, _ := ws.ParseCloseFrameData(f.Payload)
			return code
		}
	}
}

// TestErrorRepliesAreSmall checks that an error reply does not amplify the
// command: it names at most maxNamedStreams streams, each clipped.
func TestErrorRepliesAreSmall(t *testing.T) {
	env := startServer(t, Config{})
	c := downstreamtest.Dial(t, env.url+"/ws")
	keys := make([]string, 38)
	for i := range keys {
		keys[i] = fmt.Sprintf(`"%d%s"`, i, strings.Repeat("<", 100))
	}
	cmd := `{"op":"subscribe","id":1,"streams":[` + strings.Join(keys, ",") + `]}`
	c.Send(cmd)
	reply := c.Next()
	var r struct {
		Error nativeError `json:"error"`
	}
	if err := json.Unmarshal(reply, &r); err != nil {
		t.Fatal(err)
	}
	if r.Error.Code != CodeInvalidStream || len(r.Error.Streams) != maxNamedStreams {
		t.Fatalf("reply names %d streams (code %s); want %d", len(r.Error.Streams), r.Error.Code, maxNamedStreams)
	}
	if len(reply) > 2*len(cmd)/3 {
		t.Fatalf("a %d-byte command got a %d-byte reply", len(cmd), len(reply))
	}
}

// TestPongFloodCloses is L1: unsolicited pongs count against the command
// rate like pings.
func TestPongFloodCloses(t *testing.T) {
	env := startServer(t, Config{MaxCommandsPerSecond: 5})
	c := downstreamtest.Dial(t, env.url+"/ws")
	for range 50 {
		if ws.WriteFrame(c.Conn(), ws.MaskFrame(ws.NewPongFrame(nil))) != nil {
			break
		}
	}
	if got := c.ExpectClose(); got != ws.StatusPolicyViolation {
		t.Fatalf("pong flooder closed with %d; want 1008", got)
	}
}

// TestQueueMemoryReturned is L8: the arrays a slow episode grew are let go
// once the client has caught up.
func TestQueueMemoryReturned(t *testing.T) {
	env := startServer(t, Config{})
	const key = "binance:btcusdt@trade"
	nc := dialSmallBuffer(t, env.url+"/ws")
	if err := wsutil.WriteClientText(nc, []byte(`{"op":"subscribe","id":1,"streams":["`+key+`"]}`)); err != nil {
		t.Fatal(err)
	}
	env.waitSubscribers(t, key, 1)
	var c *conn
	for _, sc := range env.srv.snapshot() {
		c = sc
	}
	// Publish until the queue holds many frames: how many the socket
	// takes first depends on the kernel's buffers.
	n, peak := 0, 0
	for n < 200000 && peak <= 4*maxKeptQueue {
		for range 500 {
			n++
			env.hub.Publish(context.Background(), hub.Message{Stream: key, Seq: uint64(n), Data: fmt.Appendf(nil, `{"t":%d}`, n)})
		}
		env.hub.Flush(context.Background())
		c.mu.Lock()
		peak = max(peak, len(c.queue))
		c.mu.Unlock()
	}
	if peak <= 4*maxKeptQueue {
		t.Fatalf("only %d frames queued: the client read too fast for the test", peak)
	}
	// Catch up: read every message.
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		p, err := wsutil.ReadServerText(nc)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(p, fmt.Appendf(nil, `"seq":%d,`, n)) {
			break
		}
	}
	waitfor.Cond(t, 2*time.Second, func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.writing || len(c.queue) > 0 {
			return errors.New("still flushing")
		}
		if cap(c.queue) > maxKeptQueue || cap(c.spare) > maxKeptQueue || c.out.capacity() > maxKeptQueue {
			return fmt.Errorf("queue arrays keep %d, %d and %d entries after a peak of %d",
				cap(c.queue), cap(c.spare), c.out.capacity(), peak)
		}
		return nil
	})
}

// panicSource panics when asked to validate "binance:panic@trade".
type panicSource struct{ *fakeSource }

func (p panicSource) Validate(key string) error {
	if key == "binance:panic@trade" {
		panic("validate: " + key)
	}
	return p.fakeSource.Validate(key)
}

// TestPanicEndsOnlyItsConnection is L6 for the workers: a panic while a
// connection's command is handled ends that connection, is counted, and
// leaves the worker and the other clients going.
func TestPanicEndsOnlyItsConnection(t *testing.T) {
	env := startServer(t, Config{Workers: 1, Source: panicSource{newFakeSource()}})
	other := downstreamtest.Dial(t, env.url+"/ws")
	bad := downstreamtest.Dial(t, env.url+"/ws")
	bad.Send(`{"op":"subscribe","id":1,"streams":["binance:panic@trade"]}`)
	if _, err := bad.Read(5 * time.Second); err == nil {
		t.Fatal("the panicking connection got an answer; want it dropped")
	}
	if n := env.srv.Stats().InternalErrors; n != 1 {
		t.Fatalf("internal errors = %d; want 1", n)
	}
	for i := range 3 {
		other.Send(fmt.Sprintf(`{"op":"ping","id":%d}`, i))
		expectJSON(t, other, fmt.Sprintf(`{"id":%d,"result":"pong"}`, i))
	}
}
