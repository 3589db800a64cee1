package main

import (
	"flag"
	"io"
	"strings"
	"testing"
)

// FuzzParseConfigFile feeds arbitrary bytes to the configuration file
// parser: it must return settings of known flags or a one-line error
// naming the file, never panic.
func FuzzParseConfigFile(f *testing.F) {
	for _, seed := range []string{
		"listen: :8080\n",
		"binance:\n  url: ws://x\n  futures: {url: ~}\n",
		"allowed-origins: [https://a, https://b]\n",
		"a: &x {url: y}\nbinance: *x\n",
		"max-conns: [1, [2]]\n",
		"<<: {listen: x}\n",
		"--- \n...\n",
		"? [a]\n: b\n",
		"listen: :1\n---\nlisten: :2\n",
		"\t\"",
	} {
		f.Add([]byte(seed))
	}
	fs := flag.NewFlagSet("marketgate", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.String("listen", "", "")
	fs.String("allowed-origins", "", "")
	fs.Int("max-conns", 0, "")
	fs.String("binance-url", "", "")
	fs.String("binance-futures-url", "", "")
	fs.Bool("version", false, "")
	fs.String("config", "", "")
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := parseConfigFile("fuzz.yaml", b, fs)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		for name := range got {
			if fs.Lookup(name) == nil || name == "config" || name == "version" {
				t.Fatalf("setting %q is no flag a file may set", name)
			}
		}
	})
}
