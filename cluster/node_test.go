package cluster

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/marketgate/marketgate/internal/redistest"
	"github.com/redis/go-redis/v9"
)

func TestNewConfig(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: redistest.Start(t).Addr()})
	defer client.Close()
	local := newFakeLocal()
	ok := func(c *Config) {}
	tests := []struct {
		name   string
		modify func(*Config)
		errHas string // "" for success
	}{
		{"defaults", ok, ""},
		{"no client", func(c *Config) { c.Client = nil }, "Client is required"},
		{"no local", func(c *Config) { c.Local = nil }, "Local is required"},
		{"pipe in node", func(c *Config) { c.NodeID = "a|b" }, "contains '|'"},
		{"brace in prefix", func(c *Config) { c.Prefix = "mg{x}:" }, "Prefix"},
		{"colon in exchange", func(c *Config) { c.Exchanges = []string{"a:b"} }, "invalid exchange"},
		{"empty exchange", func(c *Config) { c.Exchanges = []string{""} }, "invalid exchange"},
		{"duplicate exchange", func(c *Config) { c.Exchanges = []string{"binance", "binance"} }, "duplicate"},
		{"renew not below ttl", func(c *Config) { c.LeaseTTL, c.RenewInterval = time.Second, time.Second }, "RenewInterval"},
		{"negative poll", func(c *Config) { c.PollInterval = -time.Second }, "PollInterval"},
		{"negative max", func(c *Config) { c.MaxStreams = -1 }, "MaxStreams"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Client: client, Local: local, Exchanges: testExchanges}
			tc.modify(&cfg)
			n, err := New(cfg)
			if tc.errHas == "" {
				if err != nil {
					t.Fatalf("New() = %v", err)
				}
				c := n.cfg
				if c.Prefix != defaultPrefix || c.LeaseTTL != defaultLeaseTTL || c.RenewInterval != defaultLeaseTTL/4 ||
					c.PollInterval != defaultPollInterval || c.HeartbeatInterval != defaultHeartbeatInterval ||
					c.HandoverOverlap != defaultHandoverOverlap || c.MaxStreams != defaultMaxStreams || c.NodeID == "" {
					t.Errorf("defaults not filled in: %+v", c)
				}
				if err := n.Ready(); err == nil || !strings.Contains(err.Error(), "starting") {
					t.Errorf("Ready() before Run = %v; want starting", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.errHas) || !strings.HasPrefix(err.Error(), "cluster: ") {
				t.Errorf("New() = %v; want an error containing %q", err, tc.errHas)
			}
		})
	}
}

// TestDemandSet checks the local demand: wants and pins merge, each is
// undone only by its own counterpart, and MaxStreams bounds the merged set.
func TestDemandSet(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: redistest.Start(t).Addr()})
	defer client.Close()
	type op struct {
		kind string // want, unwant, pin, unpin
		keys []string
	}
	tests := []struct {
		name    string
		ops     []op
		want    []string
		dropped uint64
		dirty   bool
	}{
		{"want", []op{{"want", []string{"b:1", "b:2"}}}, []string{"b:1", "b:2"}, 0, true},
		{"want twice", []op{{"want", []string{"b:1"}}, {"want", []string{"b:1"}}}, []string{"b:1"}, 0, true},
		{"unwant", []op{{"want", []string{"b:1", "b:2"}}, {"unwant", []string{"b:1", "b:9"}}}, []string{"b:2"}, 0, true},
		{"pin survives unwant", []op{{"pin", []string{"b:1"}}, {"want", []string{"b:1"}}, {"unwant", []string{"b:1"}}}, []string{"b:1"}, 0, true},
		{"want survives unpin", []op{{"want", []string{"b:1"}}, {"pin", []string{"b:1"}}, {"unpin", []string{"b:1"}}}, []string{"b:1"}, 0, true},
		{"max drops", []op{{"want", []string{"b:1", "b:2", "b:3", "b:4"}}}, []string{"b:1", "b:2", "b:3"}, 1, true},
		{"overlap counts once", []op{{"want", []string{"b:1", "b:2"}}, {"pin", []string{"b:1"}}, {"pin", []string{"b:3"}}, {"want", []string{"b:4"}}},
			[]string{"b:1", "b:2", "b:3"}, 1, true},
		{"room after unwant", []op{{"want", []string{"b:1", "b:2", "b:3"}}, {"unwant", []string{"b:1"}}, {"want", []string{"b:4"}}},
			[]string{"b:2", "b:3", "b:4"}, 0, true},
		{"no-op is not a change", []op{{"unwant", []string{"b:1"}}, {"unpin", []string{"b:1"}}}, nil, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := New(Config{Client: client, Local: newFakeLocal(), MaxStreams: 3})
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range tc.ops {
				switch o.kind {
				case "want":
					n.Want(o.keys)
				case "unwant":
					n.Unwant(o.keys)
				case "pin":
					n.Pin(o.keys[0])
				case "unpin":
					n.Unpin(o.keys[0])
				}
			}
			snap, _ := n.demandSnapshot(nil, 0)
			var got []string
			for _, k := range snap {
				got = append(got, k.(string))
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("demand = %v; want %v", got, tc.want)
			}
			if size := n.demand.Len(); size != len(tc.want) {
				t.Errorf("size = %d; want %d", size, len(tc.want))
			}
			if d := n.dropped.Load(); d != tc.dropped {
				t.Errorf("dropped = %d; want %d", d, tc.dropped)
			}
			if dirty := len(n.dirty) == 1; dirty != tc.dirty {
				t.Errorf("dirty signalled = %v; want %v", dirty, tc.dirty)
			}
		})
	}
}
