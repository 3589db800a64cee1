package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// writeFile writes body to name in a temporary directory and returns its
// path.
func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConfigFile checks --config: precedence (flag > environment > file
// > default), nested keys, lists, and the errors, each naming the file,
// the line and the key.
func TestConfigFile(t *testing.T) {
	const base = `
listen: 127.0.0.1:7001
max-conns: 50
binance:
  url: ws://file.example:9443
  futures:
    url: ""
ping-interval: 20s
allowed-origins: [https://a.example, https://b.example]
`
	tests := []struct {
		name    string
		file    string // the file's contents; "" for no --config
		args    []string
		env     map[string]string
		wantErr string
		check   func(config) error
	}{
		{name: "file sets, nested keys and lists", file: base, check: func(c config) error {
			if c.listen != "127.0.0.1:7001" || c.browsers.MaxConns != 50 || c.upstreams["binance"].URL != "ws://file.example:9443" ||
				c.upstreams["binance-futures"].URL != "" || c.browsers.PingInterval != 20*time.Second ||
				!slices.Equal(c.allowedOrigins, []string{"https://a.example", "https://b.example"}) {
				return errf("config %+v", c)
			}
			if c.sources["listen"] == "" || c.sources["listen"] == "env" || c.sources["pong-timeout"] != "" {
				return errf("sources %v", c.sources)
			}
			return nil
		}},
		{name: "env beats file", file: base, env: map[string]string{"MARKETGATE_LISTEN": "127.0.0.1:7002", "MARKETGATE_MAX_CONNS": "60"}, check: func(c config) error {
			if c.listen != "127.0.0.1:7002" || c.browsers.MaxConns != 60 || c.sources["listen"] != "env" {
				return errf("listen %q max-conns %d sources %v", c.listen, c.browsers.MaxConns, c.sources)
			}
			return nil
		}},
		{name: "flag beats env and file", file: base, args: []string{"--listen", "127.0.0.1:7003"}, env: map[string]string{"MARKETGATE_LISTEN": "127.0.0.1:7002"}, check: func(c config) error {
			if c.listen != "127.0.0.1:7003" || c.sources["listen"] != "flag" || c.browsers.MaxConns != 50 {
				return errf("listen %q sources %v", c.listen, c.sources)
			}
			return nil
		}},
		{name: "default under all", file: "log-level: warn\n", check: func(c config) error {
			if c.listen != ":8080" || c.logLevel.String() != "WARN" {
				return errf("listen %q level %v", c.listen, c.logLevel)
			}
			return nil
		}},
		{name: "config file from the environment", env: map[string]string{"MARKETGATE_CONFIG": "FILE"}, file: base, check: func(c config) error {
			if c.listen != "127.0.0.1:7001" {
				return errf("listen %q", c.listen)
			}
			return nil
		}},
		{name: "flat and nested spellings agree", file: "binance-futures-url: ws://f.example\nbinance:\n  max-conn-attempts: 3\n", check: func(c config) error {
			if c.upstreams["binance-futures"].URL != "ws://f.example" || c.upstreams["binance"].MaxConnAttempts != 3 {
				return errf("futures %q attempts %d", c.upstreams["binance-futures"].URL, c.upstreams["binance"].MaxConnAttempts)
			}
			return nil
		}},
		{name: "null turns a URL off", file: "binance-futures-url: ~\n", check: func(c config) error {
			if c.upstreams["binance-futures"].URL != "" {
				return errf("futures %q", c.upstreams["binance-futures"].URL)
			}
			return nil
		}},
		{name: "empty file", file: "# nothing yet\n", check: func(c config) error { return nil }},
		{name: "demo in the file carries every exchange", file: "demo: true\n", check: carried("binance", "binance-futures", "okx", "bybit", "bybit-linear")},
		{name: "exchanges in the file beat demo's all", file: "demo: true\nexchanges: [binance, okx]\n", check: carried("binance", "okx")},

		{name: "unknown key", file: "listen: :1\nmax-conn: 5\n", wantErr: `:2: unknown key "max-conn": no setting max-conn (marketgate --help lists them); did you mean max-conns?`},
		{name: "unknown nested key", file: "binance:\n  urll: ws://x\n", wantErr: `:2: unknown key "binance.urll"`},
		{name: "unknown prefix", file: "kraken:\n  url: ws://x\n", wantErr: `:1: unknown key "kraken"`},
		{name: "underscores", file: "max_conns: 5\n", wantErr: "did you mean max-conns?"},
		{name: "unknown key even when the flag is given", file: "nosuch: 1\n", args: []string{"--listen", ":1"}, wantErr: `unknown key "nosuch"`},
		{name: "wrong type int", file: "listen: :1\nmax-conns: lots\n", wantErr: `:2: max-conns: "lots" is not a whole number`},
		{name: "wrong type duration", file: "ping-interval: 30\n", wantErr: `:1: ping-interval: "30" is not a duration such as 500ms, 30s or 5m`},
		{name: "wrong type bool", file: "demo: sometimes\n", wantErr: `:1: demo: "sometimes" is not true or false`},
		{name: "nested wrong type", file: "binance:\n  max-streams: many\n", wantErr: `:2: binance.max-streams: "many" is not a whole number`},
		{name: "list for a single value", file: "max-conns: [1, 2]\n", wantErr: ":1: max-conns: a list, but the setting takes one value"},
		{name: "mapping for a value", file: "listen:\n  host: x\n", wantErr: ":2: listen: want a value, not a mapping"},
		{name: "set twice", file: "binance-url: ws://a\nbinance:\n  url: ws://b\n", wantErr: ":3: binance.url: binance-url is set already at line 1"},
		{name: "config in the file", file: "config: other.yaml\n", wantErr: ":1: config: cannot be set in a configuration file"},
		{name: "not a mapping", file: "- listen\n", wantErr: ":1: want a mapping of settings"},
		{name: "bad yaml", file: "listen: [\n", wantErr: "yaml"},
		{name: "two documents", file: "listen: :1\n---\nlisten: :2\n", wantErr: ":2: a second YAML document"},
		{name: "missing file", args: []string{"--config", "/nonexistent/marketgate.yaml"}, wantErr: "--config: open /nonexistent/marketgate.yaml"},
		{name: "a file value the later checks refuse", file: "allowed-origins: [example.com]\n", wantErr: "--allowed-origins"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			env := map[string]string{}
			for k, v := range tc.env {
				env[k] = v
			}
			if tc.file != "" {
				path := writeFile(t, "marketgate.yaml", tc.file)
				if env["MARKETGATE_CONFIG"] == "FILE" {
					env["MARKETGATE_CONFIG"] = path
				} else {
					args = append([]string{"--config", path}, args...)
				}
			}
			c, err := parseConfig(args, env, nil)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("parseConfig = %v; want one line containing %q", err, tc.wantErr)
				}
				if tc.file != "" && strings.HasPrefix(tc.wantErr, ":") && !strings.Contains(err.Error(), "marketgate.yaml"+tc.wantErr) {
					t.Fatalf("parseConfig = %v; want it to name the file before %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.check(c); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestEnvEmptyAndUnknown checks D1 and D10: an empty MARKETGATE_* value
// is a value (an empty URL turns the exchange off), and variables no
// setting reads are listed for the start-up warning.
func TestEnvEmptyAndUnknown(t *testing.T) {
	c, err := parseConfig(nil, map[string]string{
		"MARKETGATE_BINANCE_FUTURES_URL": "",
		"MARKETGATE_MAX_CONN":            "5",
		"MARKETGATE_VERSION":             "1",
		"HOME":                           "/root",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if u := c.upstreams["binance-futures"].URL; u != "" || c.sources["binance-futures-url"] != "env" {
		t.Errorf("futures URL %q (source %q); want it turned off by the empty variable", u, c.sources["binance-futures-url"])
	}
	if err := carried("binance")(c); err != nil {
		t.Error(err)
	}
	if want := []string{"MARKETGATE_MAX_CONN", "MARKETGATE_VERSION"}; !slices.Equal(c.unknownEnv, want) {
		t.Errorf("unknownEnv = %q; want %q", c.unknownEnv, want)
	}
	// An empty value where a number is wanted is refused, naming it.
	if _, err := parseConfig(nil, map[string]string{"MARKETGATE_MAX_CONNS": ""}, nil); err == nil || !strings.Contains(err.Error(), `MARKETGATE_MAX_CONNS: "" is not a whole number`) {
		t.Errorf("empty MARKETGATE_MAX_CONNS: %v; want a clear error", err)
	}
}

// TestExampleConfig validates deploy/marketgate.example.yaml with the
// check command, and checks that a few of its settings arrive.
func TestExampleConfig(t *testing.T) {
	path := filepath.Join("..", "..", "deploy", "marketgate.example.yaml")
	var stdout, stderr strings.Builder
	if code := run([]string{"check", "--config", path}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("marketgate check --config %s = %d; stderr %q", path, code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "configuration OK") {
		t.Errorf("stdout %q; want it to say the configuration is OK", stdout.String())
	}
	c, err := parseConfig([]string{"--config", path}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.upstreams["binance-futures"].URL != "wss://fstream.binance.com" || len(c.allowedOrigins) != 2 || c.sources["history-size"] == "" {
		t.Errorf("example: futures %q, origins %q, sources %v", c.upstreams["binance-futures"].URL, c.allowedOrigins, c.sources)
	}
}

// TestCheckCommand checks marketgate check's exit codes and messages.
func TestCheckCommand(t *testing.T) {
	good := writeFile(t, "good.yaml", "listen: 127.0.0.1:0\nlog-level: debug\n")
	bad := writeFile(t, "bad.yaml", "listen: 127.0.0.1:0\nmax-conns: -1\n")
	unknown := writeFile(t, "unknown.yaml", "lisen: :1\n")
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		code       int
		wantStdout string
		wantStderr string
	}{
		{"valid", []string{"--config", good}, nil, 0, "configuration OK (" + good, ""},
		{"valid, no file", nil, nil, 0, "configuration OK (flags and environment)", ""},
		{"invalid value", []string{"--config", bad}, nil, 1, "", "--max-conns: -1 is not a positive number"},
		{"unknown key", []string{"--config", unknown}, nil, 1, "", `unknown.yaml:1: unknown key "lisen"`},
		{"bad flag", []string{"--config", good, "--demo=perhaps"}, nil, 1, "", `--demo: "perhaps" is not true or false`},
		{"bad environment", []string{"--config", good}, map[string]string{"MARKETGATE_PING_INTERVAL": "1"}, 1, "", "MARKETGATE_PING_INTERVAL"},
		{"unknown variable warned", []string{"--config", good}, map[string]string{"MARKETGATE_LISTN": ":1"}, 0, "configuration OK", "warning: MARKETGATE_LISTN is not a setting's variable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			code := run(append([]string{"check"}, tc.args...), tc.env, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stdout.String(), tc.wantStdout) || !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("check %q = %d, stdout %q, stderr %q; want %d, %q, %q", tc.args, code, stdout.String(), stderr.String(), tc.code, tc.wantStdout, tc.wantStderr)
			}
		})
	}
}

// TestVersionCommand checks marketgate version and --version.
func TestVersionCommand(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}, {"--log-level", "debug", "--version"}} {
		var stdout, stderr strings.Builder
		if code := run(args, nil, &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "marketgate ") || !strings.Contains(stdout.String(), "(revision ") {
			t.Errorf("marketgate %q = %d, %q, %q; want 0 and the version line", args, code, stdout.String(), stderr.String())
		}
	}
	var stderr strings.Builder
	if code := run([]string{"version", "extra"}, nil, &strings.Builder{}, &stderr); code != 2 {
		t.Errorf("marketgate version extra = %d; want 2", code)
	}
}

func TestOneEditApart(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"max-conns", "max-conn", true},
		{"max-conns", "max-connz", true},
		{"max-conns", "mmax-conns", true},
		{"max-conns", "max-conns", false},
		{"max-conns", "max-co", false},
		{"listen", "lisen", true},
	}
	for _, tc := range tests {
		if got := oneEditApart(tc.a, tc.b); got != tc.want {
			t.Errorf("oneEditApart(%q, %q) = %v; want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func errf(format string, args ...any) error { return fmt.Errorf(format, args...) }
