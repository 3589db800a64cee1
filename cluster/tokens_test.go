package cluster

import (
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestTokensShared: the node writes its fencing tokens into the Tokens of
// its Config, which the feeds' publisher reads, and refuses Tokens that
// lack one of its exchanges.
func TestTokensShared(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled: the node does not run
	defer rdb.Close()
	tests := []struct {
		name    string
		tokens  *Tokens
		wantErr string
	}{
		{"own", nil, ""},
		{"shared", NewTokens([]string{"binance", "binance-futures"}), ""},
		{"missing exchange", NewTokens([]string{"binance"}), `Tokens lacks exchange "binance-futures"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := New(Config{Client: rdb, NodeID: "n1", Exchanges: []string{"binance", "binance-futures"}, Local: newFakeLocal(), Tokens: tc.tokens})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("New = %v; want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			n.exchanges[1].carrying.Store(7)
			if got := n.Token("binance-futures"); got != 7 {
				t.Errorf("Token(binance-futures) = %d; want 7", got)
			}
			if tc.tokens != nil && tc.tokens.Token("binance-futures") != 7 {
				t.Errorf("Config.Tokens has %d; want the node's 7", tc.tokens.Token("binance-futures"))
			}
			if got := n.Token("binance"); got != 0 {
				t.Errorf("Token(binance) = %d; want 0 while not carried", got)
			}
			if got := n.Token("nosuch"); got != 0 {
				t.Errorf("Token(nosuch) = %d; want 0", got)
			}
		})
	}
}
