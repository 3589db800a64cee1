package deploy

import (
	_ "embed"
	"errors"
	"fmt"
	"strings"
)

// NginxConf is nginx/nginx.conf as committed: the configuration docker
// compose mounts and the cluster tests run, rendered by [RenderNginx].
//
//go:embed nginx/nginx.conf
var NginxConf string

// The markers of nginx/nginx.conf that renderNginx replaces.
const (
	listenLine = "listen 8000;"
	beginNodes = "# BEGIN marketgate nodes"
	endNodes   = "# END marketgate nodes"
)

// RenderNginx makes exactly the two substitutions that nginx/nginx.conf
// documents: its one `listen 8000;` line gets listen as its address, and
// the server lines between the node markers are replaced by one line per
// node, with the parameters of the first server line there (max_fails=…
// fail_timeout=…). Indentation and everything else are kept.
func RenderNginx(conf, listen string, nodes []string) (string, error) {
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
