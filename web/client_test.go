package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// clientDir is the npm package of the JS client, whose files the gateway
// embeds and serves.
const clientDir = "client"

// packageJSON is what TestClientPackage reads of client/package.json.
type packageJSON struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	License string `json:"license"`
	Type    string `json:"type"`
	Types   string `json:"types"`
	Exports map[string]json.RawMessage
	Files   []string          `json:"files"`
	DevDeps map[string]string `json:"devDependencies"`
}

// TestClientPackage checks the npm package in client/ the way a user
// meets it: its unit tests pass under node --test, tsc --strict
// --checkJs finds nothing in the JavaScript, npm pack makes a tarball of
// exactly the files the gateway serves (byte for byte) plus the README,
// that tarball installs into a fresh project, imports there in Node as
// ESM, and its declarations type-check a consumer (test/types.ts, which
// holds the typed-key tests) under both nodenext and bundler resolution.
// TypeScript comes from the npm registry, at the version package.json
// pins, and is cached under the user's cache directory.
func TestClientPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("runs node, npm pack and tsc")
	}
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: the JS client package is not checked (./.ci/test.sh installs nodejs and npm)", tool)
		}
	}
	raw, err := os.ReadFile(filepath.Join(clientDir, "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	var pkg packageJSON
	if err := json.Unmarshal(raw, &pkg); err != nil {
		t.Fatalf("client/package.json: %v", err)
	}
	checkManifest(t, pkg)

	t.Run("unit", func(t *testing.T) {
		tests, err := filepath.Glob(filepath.Join(clientDir, "test", "*.test.js"))
		if err != nil || len(tests) == 0 {
			t.Fatalf("no unit tests in client/test (%v)", err)
		}
		for i, f := range tests {
			tests[i] = strings.TrimPrefix(f, clientDir+string(filepath.Separator))
		}
		out := run(t, clientDir, "node", append([]string{"--test"}, tests...)...)
		if !strings.Contains(out, "# fail 0") {
			t.Errorf("node --test: no \"# fail 0\" in its report:\n%s", out)
		}
	})

	tsc := typescript(t, pkg.DevDeps["typescript"])
	t.Run("checkJs", func(t *testing.T) {
		run(t, clientDir, "node", tsc, "-p", "tsconfig.json")
	})

	app := t.TempDir()
	t.Run("pack", func(t *testing.T) {
		out := run(t, clientDir, "npm", "pack", "--json", "--ignore-scripts", "--pack-destination", app)
		var packed []struct {
			Filename string `json:"filename"`
			Files    []struct {
				Path string `json:"path"`
			} `json:"files"`
		}
		if err := json.Unmarshal([]byte(out), &packed); err != nil || len(packed) != 1 {
			t.Fatalf("npm pack --json: %v in %q", err, out)
		}
		var files []string
		for _, f := range packed[0].Files {
			files = append(files, f.Path)
		}
		slices.Sort(files)
		if want := []string{"README.md", "marketgate.d.ts", "marketgate.js", "package.json"}; !slices.Equal(files, want) {
			t.Errorf("npm pack packed %q; want %q", files, want)
		}
		writeFile(t, app, "package.json", `{"name":"app","private":true,"type":"module"}`)
		run(t, app, "npm", "install", "--ignore-scripts", "--no-audit", "--no-fund", "--offline", "./"+packed[0].Filename)

		installed := filepath.Join(app, "node_modules", "@marketgate", "client")
		for name, served := range map[string][]byte{"marketgate.js": clientJS, "marketgate.d.ts": clientDTS} {
			b, err := os.ReadFile(filepath.Join(installed, name))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, served) {
				t.Errorf("the package's %s differs from the one the gateway serves", name)
			}
		}
	})
	if t.Failed() {
		return
	}

	t.Run("import", func(t *testing.T) {
		writeFile(t, app, "check.mjs", importCheck)
		out := run(t, app, "node", "check.mjs")
		var got struct {
			Exports []string       `json:"exports"`
			Key     string         `json:"key"`
			URL     string         `json:"url"`
			Sent    map[string]any `json:"sent"`
			Version string         `json:"version"`
		}
		if err := json.Unmarshal([]byte(lastLine(out)), &got); err != nil {
			t.Fatalf("check.mjs printed %q: %v", out, err)
		}
		for _, name := range []string{"connect", "streamKey", "exchangeSymbol", "parseSymbol", "candleIntervals", "exchanges", "MarketgateClient", "OrderBook"} {
			if !slices.Contains(got.Exports, name) {
				t.Errorf("import('@marketgate/client') has no %s; it has %q", name, got.Exports)
			}
		}
		if got.Key != "binance:btcusdt@trade" {
			t.Errorf("streamKey('binance', 'trade', 'BTC/USDT') = %q; want binance:btcusdt@trade", got.Key)
		}
		if got.URL != "ws://127.0.0.1:9/ws" {
			t.Errorf("connect('http://127.0.0.1:9/ws') dialled %q; want ws://127.0.0.1:9/ws", got.URL)
		}
		if got.Sent["op"] != "subscribe" || fmt.Sprint(got.Sent["streams"]) != "[binance:btcusdt@trade]" {
			t.Errorf("the client sent %v; want a subscribe of binance:btcusdt@trade", got.Sent)
		}
		if got.Version != pkg.Version {
			t.Errorf("@marketgate/client/package.json says version %q; want %q", got.Version, pkg.Version)
		}
	})

	t.Run("types", func(t *testing.T) {
		types, err := os.ReadFile(filepath.Join(clientDir, "test", "types.ts"))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, app, "types.ts", string(types))
		for _, resolution := range []string{"nodenext", "bundler"} {
			module := "nodenext"
			if resolution == "bundler" {
				module = "esnext"
			}
			cfg := fmt.Sprintf(`{"compilerOptions":{"target":"es2022","module":%q,"moduleResolution":%q,`+
				`"lib":["es2022","dom"],"strict":true,"noEmit":true,"skipLibCheck":false,"types":[]},"files":["types.ts"]}`, module, resolution)
			name := "tsconfig." + resolution + ".json"
			writeFile(t, app, name, cfg)
			run(t, app, "node", tsc, "-p", name)
		}
	})
}

// importCheck imports the installed package as an app would, drives a
// client over a stand-in WebSocket just far enough to see the URL it
// dials and its first command, and prints what it saw as JSON.
const importCheck = `import * as mg from '@marketgate/client';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const out = { exports: Object.keys(mg).sort() };
out.key = mg.streamKey('binance', 'trade', 'BTC/USDT');
const require = createRequire(import.meta.url);
out.version = JSON.parse(readFileSync(require.resolve('@marketgate/client/package.json'), 'utf8')).version;

class Socket {
  constructor(url) { out.url = url; setTimeout(() => this.onopen && this.onopen({}), 0); }
  send(data) { out.sent = out.sent || JSON.parse(data); }
  close() {}
}
const client = mg.connect('http://127.0.0.1:9/ws', { WebSocket: Socket, pingInterval: 0 });
const sub = client.subscribe(['binance:btcusdt@trade'], () => {});
sub.catch(() => {});
await new Promise((resolve) => setTimeout(resolve, 50));
client.close();
console.log(JSON.stringify(out));
`

// checkManifest checks what npm and bundlers read of package.json.
func checkManifest(t *testing.T, pkg packageJSON) {
	t.Helper()
	if pkg.Name != "@marketgate/client" || pkg.License != "Apache-2.0" || pkg.Type != "module" || pkg.Types != "./marketgate.d.ts" {
		t.Errorf("package.json: name %q, license %q, type %q, types %q; want @marketgate/client, Apache-2.0, module, ./marketgate.d.ts",
			pkg.Name, pkg.License, pkg.Type, pkg.Types)
	}
	var dot struct {
		Types   string `json:"types"`
		Default string `json:"default"`
	}
	if err := json.Unmarshal(pkg.Exports["."], &dot); err != nil || dot.Types != "./marketgate.d.ts" || dot.Default != "./marketgate.js" {
		t.Errorf(`package.json exports["."] = %s; want {"types":"./marketgate.d.ts","default":"./marketgate.js"} (types first)`, pkg.Exports["."])
	}
	if !strings.HasPrefix(strings.Join(strings.Fields(string(pkg.Exports["."])), ""), `{"types"`) {
		t.Errorf(`package.json exports["."]: "types" must come first, as TypeScript takes the first condition that matches`)
	}
	if pkg.DevDeps["typescript"] == "" {
		t.Errorf("package.json pins no typescript in devDependencies")
	}
}

// typescript returns the path of tsc at version, installing TypeScript
// from the npm registry into the user's cache directory the first time
// (a temporary directory stands in when there is none).
func typescript(t *testing.T, version string) string {
	t.Helper()
	if version == "" {
		t.Fatal("no TypeScript version to install")
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = t.TempDir()
	}
	dir := filepath.Join(cache, "marketgate-test", "typescript-"+version)
	tsc := filepath.Join(dir, "node_modules", "typescript", "bin", "tsc")
	if _, err := os.Stat(tsc); err == nil {
		return tsc
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	// Installed beside its place and renamed into it, so a run cut short
	// or a concurrent one never leaves a half-installed compiler.
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "install-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	writeFile(t, tmp, "package.json", `{"name":"marketgate-typescript","private":true}`)
	run(t, tmp, "npm", "install", "--ignore-scripts", "--no-audit", "--no-fund", "typescript@"+version)
	if err := os.Rename(tmp, dir); err != nil && !errors.Is(err, fs.ErrExist) {
		if _, statErr := os.Stat(tsc); statErr != nil { // not another run's install either
			t.Fatalf("install typescript@%s: %v", version, err)
		}
	}
	return tsc
}

// run runs name with args in dir and returns its standard output; it
// fails t with everything the command printed when it fails.
func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "npm_config_update_notifier=false", "NO_COLOR=1", "NODE_NO_WARNINGS=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s%s", name, strings.Join(args, " "), dir, err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
