package upstream_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	. "github.com/marketgate/marketgate/upstream"

	"github.com/marketgate/marketgate/hub"
	"github.com/marketgate/marketgate/internal/redistest"
	"github.com/marketgate/marketgate/internal/syncbuf"
	"github.com/marketgate/marketgate/internal/waitfor"
)

// TestPublishRecoveredLog: while Redis is down, a feed on the Redis hub
// logs "publish failing" once and never "publish recovered", though most
// of its flushes have nothing to send and most publishes only batch;
// once Redis is back and a batch goes through, it logs the recovery once.
func TestPublishRecoveredLog(t *testing.T) {
	srv := redistest.Start(t)
	h, err := hub.NewRedis(hub.RedisConfig{URL: srv.URL(), NodeID: "n"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	var log syncbuf.Buffer
	f, err := newSpot(Config{Publisher: h, Lazy: true,
		Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	msg := hub.Message{Stream: "binance:btcusdt@trade", Data: []byte(`{}`)}
	// burst is what a shard does for one read: publish, then flush, and
	// then, for a read that brought no event (a pong), flush alone.
	burst := func() {
		msg.Seq++
		f.NotePublish(ctx, h.Publish(ctx, msg))
		f.Flush(ctx)
		f.Flush(ctx)
	}
	burst()
	srv.Kill()
	for range 20 {
		burst()
	}
	if got := strings.Count(log.String(), "publish failing"); got != 1 {
		t.Errorf("%d \"publish failing\" lines during the outage; want 1:\n%s", got, log.String())
	}
	if strings.Contains(log.String(), "publish recovered") {
		t.Fatalf("\"publish recovered\" logged while Redis is down:\n%s", log.String())
	}
	srv.Restart(t)
	waitfor.Cond(t, 10*time.Second, func() error {
		burst()
		if !strings.Contains(log.String(), "publish recovered") {
			return errors.New("no recovery logged yet")
		}
		return nil
	})
	for range 5 {
		burst()
	}
	if got := strings.Count(log.String(), "publish recovered"); got != 1 {
		t.Errorf("%d \"publish recovered\" lines; want 1:\n%s", got, log.String())
	}
}
