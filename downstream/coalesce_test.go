package downstream

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/marketgate/marketgate/downstream/downstreamtest"
	"github.com/marketgate/marketgate/hub"
	"github.com/marketgate/marketgate/internal/waitfor"
)

// subscribed dials n native clients subscribed to key and waits until the
// server has them all.
func subscribed(t *testing.T, env *testEnv, key string, n int) []*downstreamtest.Client {
	t.Helper()
	var clients []*downstreamtest.Client
	for range n {
		c := downstreamtest.Dial(t, env.url+"/ws")
		c.Send(`{"op":"subscribe","id":1,"streams":["` + key + `"]}`)
		c.Next()
		clients = append(clients, c)
	}
	env.waitSubscribers(t, key, n)
	return clients
}

// TestFanOutDuration checks that the fan-out duration is observed once
// per message with subscribers, after its frames were written, and that
// each client's frames of one burst cost it one write.
func TestFanOutDuration(t *testing.T) {
	env := startServer(t, Config{})
	const key = "binance:btcusdt@trade"
	clients := subscribed(t, env, key, 3)
	ctx := t.Context()
	// The subscribe replies' writes are done once every client read its
	// reply, but their counting may trail by a moment.
	waitfor.Cond(t, 2*time.Second, func() error {
		if w := env.srv.Stats().Writes; w != 3 {
			return fmt.Errorf("Writes = %d; want 3 (the subscribe replies)", w)
		}
		return nil
	})
	before := env.srv.Stats()
	env.hub.Publish(ctx, hub.Message{Stream: key, Seq: 1, Data: []byte(`{"p":"1"}`)})
	env.hub.Publish(ctx, hub.Message{Stream: key, Seq: 2, Data: []byte(`{"p":"2"}`)})
	env.hub.Publish(ctx, hub.Message{Stream: "binance:ethusdt@trade", Seq: 1, Data: []byte(`{}`)}) // nobody's
	env.hub.Flush(ctx)
	for _, c := range clients {
		c.Next()
		c.Next()
	}
	waitfor.Cond(t, 2*time.Second, func() error {
		after := env.srv.Stats()
		if got := after.FanOutDuration.Count - before.FanOutDuration.Count; got != 2 {
			return fmt.Errorf("fan-out duration observed %d times; want 2 (once per message with subscribers)", got)
		}
		if got := after.Writes - before.Writes; got != 3 {
			return fmt.Errorf("Writes grew by %d; want 3 (one writev per client for both frames)", got)
		}
		if s := after.FanOutDuration.Sum; s <= 0 || s > time.Minute {
			return fmt.Errorf("fan-out duration sum %v; want a positive time", s)
		}
		return nil
	})
}

// TestWriteDelay checks that frames of bursts within the write delay go
// out in one write, and that the last burst's frames go out at the end of
// the window with no further Flush.
func TestWriteDelay(t *testing.T) {
	for _, tc := range []struct {
		name      string
		delay     time.Duration
		maxFrames int
		bursts    int
		perBurst  int
		// writes is the writes the client's frames take: exact when exact
		// is set, else at most.
		writes int
		exact  bool
	}{
		{name: "none", delay: 0, bursts: 4, perBurst: 1, writes: 4},
		{name: "window", delay: 100 * time.Millisecond, bursts: 4, perBurst: 1, writes: 1, exact: true},
		{name: "frames per write", delay: 100 * time.Millisecond, maxFrames: 2, bursts: 1, perBurst: 5, writes: 3, exact: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := startServer(t, Config{WriteDelay: tc.delay, MaxFramesPerWrite: tc.maxFrames})
			const key = "binance:btcusdt@trade"
			c := subscribed(t, env, key, 1)[0]
			waitfor.Cond(t, 2*time.Second, func() error {
				if w := env.srv.Stats().Writes; w != 1 {
					return fmt.Errorf("Writes = %d; want 1 (the subscribe reply)", w)
				}
				return nil
			})
			ctx := t.Context()
			seq := uint64(0)
			for range tc.bursts {
				for range tc.perBurst {
					seq++
					env.hub.Publish(ctx, hub.Message{Stream: key, Seq: seq, Data: fmt.Appendf(nil, `{"n":%d}`, seq)})
				}
				env.hub.Flush(ctx)
			}
			for i := range seq {
				if got, want := string(c.Next()), fmt.Sprintf(`"data":{"n":%d}`, i+1); !strings.Contains(got, want) {
					t.Fatalf("message %d = %s; want it to hold %s", i+1, got, want)
				}
			}
			waitfor.Cond(t, 2*time.Second, func() error {
				got := env.srv.Stats().Writes - 1
				if got < 1 || got > int64(tc.writes) || tc.exact && got != int64(tc.writes) {
					return fmt.Errorf("%d writes for %d frames; want %d (exact: %v)", got, seq, tc.writes, tc.exact)
				}
				return nil
			})
		})
	}
}

// TestWriteConfig checks that New refuses a write delay or frames per
// write out of range.
func TestWriteConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // in the error; empty: no error
	}{
		{"defaults", Config{}, ""},
		{"delay", Config{WriteDelay: 5 * time.Millisecond, MaxFramesPerWrite: 16}, ""},
		{"negative delay", Config{WriteDelay: -time.Millisecond}, "WriteDelay"},
		{"long delay", Config{WriteDelay: time.Second}, "WriteDelay"},
		{"too many frames", Config{MaxFramesPerWrite: 2000}, "MaxFramesPerWrite"},
		{"negative frames", Config{MaxFramesPerWrite: -1}, "MaxFramesPerWrite"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Hub, cfg.Source, cfg.MaxConns = hub.NewMemory(), newFakeSource(), 10
			_, err := New(cfg)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("New = %v; want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("New = %v; want an error naming %s", err, tc.want)
			}
		})
	}
}
