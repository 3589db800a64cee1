package gateway

import (
	"strings"
	"testing"

	"github.com/marketgate/marketgate/hub"
	"github.com/marketgate/marketgate/upstream"
)

// TestExchanges checks each entry of the table: a usable name, everything
// cmd/marketgate needs for its flags and --demo, and a constructor that
// builds a feed of that name from the entry's defaults.
func TestExchanges(t *testing.T) {
	seen := map[string]bool{}
	for _, x := range Exchanges() {
		t.Run(x.Name, func(t *testing.T) {
			if x.Name == "" || strings.ContainsAny(x.Name, ":|{} ") || x.Name != strings.ToLower(x.Name) {
				t.Errorf("name %q: want a lower-case name without ':', '|', braces or spaces", x.Name)
			}
			if seen[x.Name] {
				t.Errorf("name %q twice", x.Name)
			}
			seen[x.Name] = true
			if x.Title == "" || x.StreamPath == "" || x.Dialect == nil || x.Simulate == nil || x.SimulatorMode == "" {
				t.Errorf("entry %+v lacks a title, a help path, its dialect or its simulator", x)
			}
			if x.Dialect.Name() != x.Name || len(x.Dialect.SymbolsPaths()) == 0 {
				t.Errorf("dialect %q with symbols at %q; want %q's, with a symbol list", x.Dialect.Name(), x.Dialect.SymbolsPaths(), x.Name)
			}
			d := x.Dialect.Limits()
			if d.URL == "" || d.RESTURL == "" || d.RequestInterval <= 0 || d.MaxStreams <= 0 || d.IdleTimeout <= 0 ||
				d.MaxLifetime <= 0 || d.MaxConnAttempts <= 0 || d.ConnAttemptWindow <= 0 {
				t.Errorf("limits %+v: want URLs and every limit", d)
			}
			for _, o := range x.Options {
				if o.Name == "" || o.Help == "" || o.Apply == nil || o.Apply(x.Dialect) == nil || o.Apply(x.Dialect).Name() != x.Name {
					t.Errorf("option %+v: want a name, help and a dialect of the same exchange", o)
				}
			}
			f, err := upstream.New(upstream.Config{Dialect: x.Dialect, Publisher: hub.NewMemory()})
			if err != nil {
				t.Fatalf("upstream.New(defaults) = %v", err)
			}
			if f.Name() != x.Name {
				t.Errorf("New built feed %q; want %q", f.Name(), x.Name)
			}
			if _, err := x.Simulate(nil); err != nil {
				t.Errorf("Simulate = %v", err)
			}
		})
	}
}

// TestNewRefusesUnknownExchange: a name not in the table is a
// configuration error, not an exchange silently left out.
func TestNewRefusesUnknownExchange(t *testing.T) {
	_, err := New(Config{Listener: listen(t), Exchanges: map[string]upstream.Config{"nosuch": {}}})
	if err == nil || !strings.Contains(err.Error(), `no exchange "nosuch"`) {
		t.Fatalf("New = %v; want an error naming the exchange", err)
	}
}
