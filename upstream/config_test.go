package upstream_test

import (
	"errors"
	"testing"
	"time"

	"github.com/marketgate/marketgate/hub"
	. "github.com/marketgate/marketgate/upstream"
	"github.com/marketgate/marketgate/upstream/binance"
)

// TestConfigErrorNamesTheField checks that every refusal of New is a
// *ConfigError naming the exchange and the Config field, which callers map
// to their own setting names.
func TestConfigErrorNamesTheField(t *testing.T) {
	tests := []struct {
		name  string
		mod   func(*Config)
		field string
	}{
		{"no dialect", func(c *Config) { c.Dialect = nil }, "Dialect"},
		{"no publisher", func(c *Config) { c.Publisher = nil }, "Publisher"},
		{"bad URL", func(c *Config) { c.URL = "http://x" }, "URL"},
		{"bad REST URL", func(c *Config) { c.RESTURL = "ws://x" }, "RESTURL"},
		{"negative duration", func(c *Config) { c.ReplyTimeout = -time.Second }, "ReplyTimeout"},
		{"negative count", func(c *Config) { c.MaxStreams = -1 }, "MaxStreams"},
		{"rotation after lifetime", func(c *Config) { c.RotateAfter = 25 * time.Hour }, "RotateAfter"},
		{"backoff order", func(c *Config) { c.BackoffMin, c.BackoffMax = time.Minute, time.Second }, "BackoffMin"},
		{"negative size", func(c *Config) { c.MaxMessageSize = -1 }, "MaxMessageSize"},
		{"drop share", func(c *Config) { c.SymbolMaxDrop = 2 }, "SymbolMaxDrop"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Dialect: binance.Spot, Publisher: hub.NewMemory()}
			tc.mod(&cfg)
			err := CheckConfig(cfg)
			ce, ok := errors.AsType[*ConfigError](err)
			if !ok || ce.Field != tc.field {
				t.Fatalf("CheckConfig = %v; want a *ConfigError for %s", err, tc.field)
			}
			if _, err := New(cfg); err == nil || err.Error() != ce.Error() {
				t.Errorf("New = %v; want the same error as CheckConfig", err)
			}
			if cfg.Dialect != nil && ce.Exchange != "binance" {
				t.Errorf("Exchange = %q; want binance", ce.Exchange)
			}
		})
	}
	if err := CheckConfig(Config{Dialect: binance.Spot, Publisher: hub.NewMemory()}); err != nil {
		t.Errorf("CheckConfig(defaults) = %v", err)
	}
}
