package deploy_test

import (
	"os"
	"strings"
	"testing"

	"github.com/marketgate/marketgate/deploy"
)

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
		{"no end marker", strings.Replace(conf, "# END marketgate nodes", "", 1), "1", []string{"a:1"}, ""},
		{"two begin markers", conf + "# BEGIN marketgate nodes" + "\n", "1", []string{"a:1"}, ""},
		{"markers reversed", "listen 8000;\n" + "# END marketgate nodes" + "\nserver a:1;\n" + "# BEGIN marketgate nodes", "1", []string{"a:1"}, ""},
		{"no server line", "listen 8000;\n" + "# BEGIN marketgate nodes" + "\n" + "# END marketgate nodes", "1", []string{"a:1"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := deploy.RenderNginx(tc.conf, tc.listen, tc.nodes)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("deploy.RenderNginx(%q, %q, %q) = %q; want an error", tc.conf, tc.listen, tc.nodes, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("deploy.RenderNginx(%q, %q, %q) = %q, %v; want %q", tc.conf, tc.listen, tc.nodes, got, err, tc.want)
			}
		})
	}
}

// TestCommittedNginxMatchesCompose checks the contract docker-compose.yml
// relies on: the committed nginx.conf listens on 8000 and names the
// compose services node1..node3, which compose publishes and defines.
func TestCommittedNginxMatchesCompose(t *testing.T) {
	conf := deploy.NginxConf
	got, err := deploy.RenderNginx(conf, "8000", []string{"node1:8080", "node2:8080", "node3:8080"})
	if err != nil {
		t.Fatalf("deploy.RenderNginx(nginx/nginx.conf): %v", err)
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
