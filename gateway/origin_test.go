package gateway

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/marketgate/marketgate/cluster"
	"github.com/marketgate/marketgate/hub"
	"github.com/marketgate/marketgate/upstream"
)

// countPublisher counts what reaches it.
type countPublisher struct{ n int }

func (c *countPublisher) Publish(context.Context, hub.Message) error { c.n++; return nil }
func (c *countPublisher) Flush(context.Context) error                { return nil }

// TestOriginPublisherDropsWithoutToken: a node that does not carry an
// exchange (it lost or gave up the lease) publishes nothing of it, rather
// than messages with Origin 0 that fresh topics would take.
func TestOriginPublisherDropsWithoutToken(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled: the node does not run
	defer rdb.Close()
	tokens := cluster.NewTokens([]string{"binance"})
	if _, err := cluster.New(cluster.Config{Client: rdb, NodeID: "n1", Exchanges: []string{"binance"}, Local: upstream.NewRouter(), Tokens: tokens}); err != nil {
		t.Fatal(err)
	}
	under := &countPublisher{}
	p := &originPublisher{Publisher: under, tokens: tokens, exchange: "binance"}
	if err := p.Publish(t.Context(), hub.Message{Stream: "binance:btcusdt@trade", Seq: 1}); err != nil {
		t.Fatalf("Publish = %v; want nil", err)
	}
	if under.n != 0 {
		t.Errorf("%d messages published without a token; want none", under.n)
	}
}
