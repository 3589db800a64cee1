package deploy_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// The markers of nginx/nginx.conf that renderNginx replaces.
const (
	listenLine = "listen 8000;"
	beginNodes = "# BEGIN marketgate nodes"
	endNodes   = "# END marketgate nodes"
)

// renderNginx makes exactly the two substitutions that nginx/nginx.conf
// documents: its one `listen 8000;` line gets listen as its address, and
// the server lines between the node markers are replaced by one line per
// node, with the parameters of the first server line there (max_fails=…
// fail_timeout=…). Indentation and everything else are kept.
func renderNginx(conf, listen string, nodes []string) (string, error) {
	if listen == "" || strings.ContainsAny(listen, " \t\n;{}") {
		return "", fmt.Errorf("listen address %q is not one word", listen)
	}
	if len(nodes) == 0 {
		return "", errors.New("no nodes: an nginx upstream needs at least one server")
	}
	for _, n := range nodes {
		if n == "" || strings.ContainsAny(n, " \t\n;{}") {
			return "", fmt.Errorf("node %q is not one host:port word", n)
		}
	}
	lines := strings.Split(conf, "\n")
	listenAt, begin, end := -1, -1, -1
	for i, l := range lines {
		var at *int
		switch strings.TrimSpace(l) {
		case listenLine:
			at = &listenAt
		case beginNodes:
			at = &begin
		case endNodes:
			at = &end
		default:
			continue
		}
		if *at >= 0 {
			return "", fmt.Errorf("line %d repeats %q (first on line %d)", i+1, strings.TrimSpace(l), *at+1)
		}
		*at = i
	}
	switch {
	case listenAt < 0:
		return "", fmt.Errorf("no %q line", listenLine)
	case begin < 0 || end < 0:
		return "", fmt.Errorf("no %q … %q block", beginNodes, endNodes)
	case end < begin:
		return "", fmt.Errorf("%q (line %d) comes before %q (line %d)", endNodes, end+1, beginNodes, begin+1)
	}
	var indent, params string
	found := false
	for _, l := range lines[begin+1 : end] {
		f := strings.Fields(strings.TrimSuffix(strings.TrimSpace(l), ";"))
		if len(f) >= 2 && f[0] == "server" {
			indent = l[:len(l)-len(strings.TrimLeft(l, " \t"))]
			params = strings.Join(f[2:], " ")
			found = true
			break
		}
	}
	if !found {
		return "", fmt.Errorf("no server line between %q and %q", beginNodes, endNodes)
	}
	servers := make([]string, len(nodes))
	for i, n := range nodes {
		servers[i] = strings.TrimRight(indent+"server "+n+" "+params, " ") + ";"
	}
	l := lines[listenAt]
	lines[listenAt] = strings.Replace(l, listenLine, "listen "+listen+";", 1)
	out := append([]string{}, lines[:begin+1]...)
	out = append(out, servers...)
	out = append(out, lines[end:]...)
	return strings.Join(out, "\n"), nil
}

// committedNginx returns the nginx.conf of this directory.
func committedNginx(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("nginx/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRenderNodes(t *testing.T) {
	const conf = "x\n    listen 8000;\n  # BEGIN marketgate nodes\n  server a:1 max_fails=3 fail_timeout=10s;\n  server b:1 max_fails=3 fail_timeout=10s;\n  # END marketgate nodes\ny\n"
	tests := []struct {
		name   string
		conf   string
		listen string
		nodes  []string
		want   string // empty: an error is wanted
	}{
		{"two nodes", conf, "127.0.0.1:1234", []string{"127.0.0.1:1", "127.0.0.1:2"},
			"x\n    listen 127.0.0.1:1234;\n  # BEGIN marketgate nodes\n  server 127.0.0.1:1 max_fails=3 fail_timeout=10s;\n  server 127.0.0.1:2 max_fails=3 fail_timeout=10s;\n  # END marketgate nodes\ny\n"},
		{"one node", conf, "8001", []string{"n:9"},
			"x\n    listen 8001;\n  # BEGIN marketgate nodes\n  server n:9 max_fails=3 fail_timeout=10s;\n  # END marketgate nodes\ny\n"},
		{"no parameters", "listen 8000;\n# BEGIN marketgate nodes\nserver a:1;\n# END marketgate nodes", "[::1]:80", []string{"b:2", "c:3"},
			"listen [::1]:80;\n# BEGIN marketgate nodes\nserver b:2;\nserver c:3;\n# END marketgate nodes"},
		{"other listen lines kept", "listen 80;\n" + conf, "9", []string{"n:9"},
			"listen 80;\nx\n    listen 9;\n  # BEGIN marketgate nodes\n  server n:9 max_fails=3 fail_timeout=10s;\n  # END marketgate nodes\ny\n"},
		{"no nodes", conf, "1", nil, ""},
		{"node with a space", conf, "1", []string{"a:1 backup"}, ""},
		{"node with a semicolon", conf, "1", []string{"a:1;"}, ""},
		{"listen with a space", conf, "1 ssl", []string{"a:1"}, ""},
		{"no listen line", strings.Replace(conf, "listen 8000;", "listen 8001;", 1), "1", []string{"a:1"}, ""},
		{"two listen lines", conf + "listen 8000;\n", "1", []string{"a:1"}, ""},
		{"no markers", "listen 8000;\nserver a:1;\n", "1", []string{"a:1"}, ""},
		{"no end marker", strings.Replace(conf, endNodes, "", 1), "1", []string{"a:1"}, ""},
		{"two begin markers", conf + beginNodes + "\n", "1", []string{"a:1"}, ""},
		{"markers reversed", "listen 8000;\n" + endNodes + "\nserver a:1;\n" + beginNodes, "1", []string{"a:1"}, ""},
		{"no server line", "listen 8000;\n" + beginNodes + "\n" + endNodes, "1", []string{"a:1"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := renderNginx(tc.conf, tc.listen, tc.nodes)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("renderNginx(%q, %q, %q) = %q; want an error", tc.conf, tc.listen, tc.nodes, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("renderNginx(%q, %q, %q) = %q, %v; want %q", tc.conf, tc.listen, tc.nodes, got, err, tc.want)
			}
		})
	}
}

// TestCommittedNginxMatchesCompose checks the contract docker-compose.yml
// relies on: the committed nginx.conf listens on 8000 and names the
// compose services node1..node3, which compose publishes and defines.
func TestCommittedNginxMatchesCompose(t *testing.T) {
	conf := committedNginx(t)
	got, err := renderNginx(conf, "8000", []string{"node1:8080", "node2:8080", "node3:8080"})
	if err != nil {
		t.Fatalf("renderNginx(nginx/nginx.conf): %v", err)
	}
	if got != conf {
		t.Errorf("nginx/nginx.conf does not list exactly node1:8080, node2:8080, node3:8080 with one set of parameters; rendered:\n%s", got)
	}
	b, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	compose := string(b)
	for _, want := range []string{"\n  node1:", "\n  node2:", "\n  node3:", "./nginx/nginx.conf:/etc/nginx/nginx.conf:ro", `"8000:8000"`} {
		if !strings.Contains(compose, want) {
			t.Errorf("docker-compose.yml has no %q", want)
		}
	}
}
