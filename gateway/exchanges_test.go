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
			if x.Title == "" || x.StreamPath == "" || x.SymbolsPath == "" || x.New == nil || x.Simulate == nil || x.SimulatorMode == "" {
				t.Errorf("entry %+v lacks a title, a help path, its constructor or its simulator", x)
			}
			d := x.Defaults
			if d.URL == "" || d.RESTURL == "" || d.RequestInterval <= 0 || d.MaxStreams <= 0 || d.IdleTimeout <= 0 {
				t.Errorf("defaults %+v: want URLs, request interval, max streams and idle timeout", d)
			}
			for _, o := range x.Options {
				if o.Name == "" || o.Help == "" || o.Bool == nil || o.Bool(new(upstream.Config)) == nil {
					t.Errorf("option %+v: want a name, help and a field", o)
				}
			}
			c := d
			c.Publisher = hub.NewMemory()
			f, err := x.New(c)
			if err != nil {
				t.Fatalf("New(defaults) = %v", err)
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
