package hub

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/marketgate/marketgate/internal/redistest"
	"github.com/marketgate/marketgate/internal/waitfor"
)

// TestRedisNoticeKeepsOrderThroughNoScript: a stream's failure notice
// (unnumbered) published between numbered messages reaches receivers in
// that place, also in the batch a server without the scripts refuses
// (the first ever, and after SCRIPT FLUSH) and that is sent again in full.
func TestRedisNoticeKeepsOrderThroughNoScript(t *testing.T) {
	tests := []struct {
		name  string
		start func(t *testing.T) (RedisConfig, []string)
	}{
		{"standalone", func(t *testing.T) (RedisConfig, []string) {
			srv := redistest.Start(t)
			return RedisConfig{URL: srv.URL(), NodeID: "n"}, []string{srv.Addr()}
		}},
		{"cluster", func(t *testing.T) (RedisConfig, []string) {
			c := redistest.StartCluster(t, 3)
			return RedisConfig{ClusterAddrs: c.Addrs(), NodeID: "n"}, c.Addrs()
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, addrs := tc.start(t)
			h := runHub(t, cfg)
			const stream = "x:trades"
			l := subscribed(t, h, stream)
			ctx := context.Background()
			var want []string
			seq := uint64(0)
			for round := range 2 {
				if round == 1 { // the servers forget the scripts
					for _, a := range addrs {
						rc := redis.NewClient(&redis.Options{Addr: a})
						err := rc.ScriptFlush(ctx).Err()
						rc.Close()
						if err != nil {
							t.Fatalf("SCRIPT FLUSH on %s: %v", a, err)
						}
					}
				}
				// One batch: two events, the notice, one more event.
				for i := range 4 {
					msg := Message{Stream: stream}
					if i == 2 {
						msg.Err = fmt.Sprintf("failed %d", round)
						want = append(want, "err "+msg.Err)
					} else {
						seq++
						msg.Seq, msg.ID, msg.Data = seq, EventID{Hi: int64(1000 + seq)}, fmt.Appendf(nil, `{"n":%d}`, seq)
						want = append(want, fmt.Sprintf("seq %d", seq))
					}
					if err := h.Publish(ctx, msg); err != nil {
						t.Fatalf("Publish = %v", err)
					}
				}
				if err := h.Flush(ctx); err != nil {
					t.Fatalf("Flush (round %d) = %v", round, err)
				}
			}
			var got []string
			waitfor.Cond(t, 10*time.Second, func() error {
				got = got[:0]
				for _, m := range l.of(stream) {
					if m.Err != "" {
						got = append(got, "err "+m.Err)
					} else {
						got = append(got, fmt.Sprintf("seq %d", m.Seq))
					}
				}
				if len(got) < len(want) {
					return fmt.Errorf("%d of %d messages", len(got), len(want))
				}
				return nil
			})
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("received %v; want %v", got, want)
			}
		})
	}
}
