package deploy_test

import (
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// folderTable reads the README's folder table: each row's folders (the
// backquoted paths of its first cell, without a trailing slash) and the
// names its second cell backquotes.
func folderTable(t *testing.T, readme string) (rows [][2][]string) {
	t.Helper()
	_, table, ok := strings.Cut(readme, "| folder | what it provides |\n| --- | --- |\n")
	if !ok {
		t.Fatal("README.md has no folder table (| folder | what it provides |)")
	}
	quoted := regexp.MustCompile("`([^`]+)`")
	for _, line := range strings.Split(table, "\n") {
		if !strings.HasPrefix(line, "| ") {
			break
		}
		cells := strings.SplitN(strings.TrimPrefix(line, "| "), " | ", 2)
		if len(cells) != 2 {
			t.Fatalf("folder table row %q has no second cell", line)
		}
		var folders, names []string
		for _, m := range quoted.FindAllStringSubmatch(cells[0], -1) {
			folders = append(folders, strings.TrimSuffix(m[1], "/"))
		}
		for _, m := range quoted.FindAllStringSubmatch(cells[1], -1) {
			names = append(names, m[1])
		}
		rows = append(rows, [2][]string{folders, names})
	}
	return rows
}

// TestReadmeFolders checks the README's folder table against the
// module's packages (go list ./...): every package folder is a row, or is
// named in the row of its nearest listed parent (`internal/` names
// `pause`); and every folder a row lists exists.
func TestReadmeFolders(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := folderTable(t, string(b))
	listed := map[string][]string{} // folder → names its row mentions
	for _, r := range rows {
		for _, f := range r[0] {
			listed[f] = r[1]
			if fi, err := os.Stat(filepath.Join("..", f)); err != nil || !fi.IsDir() {
				t.Errorf("README folder table lists %s, which is not a folder of the repository", f)
			}
		}
	}
	cmd := exec.Command("go", "list", "-f", "{{.Dir}}", "./...")
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list ./...: %v", err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, dir := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(root, dir)
		if err != nil || rel == "." {
			continue
		}
		n++
		pkg := filepath.ToSlash(rel)
		if _, ok := listed[pkg]; ok {
			continue
		}
		covered := false
		for parent := path.Dir(pkg); parent != "."; parent = path.Dir(parent) {
			if names, ok := listed[parent]; ok {
				for _, name := range names {
					if name == path.Base(pkg) || name == strings.TrimPrefix(pkg, parent+"/") {
						covered = true
					}
				}
				break
			}
		}
		if !covered {
			t.Errorf("package folder %s is not in the README's folder table (a row of its own, or named in its parent's row)", pkg)
		}
	}
	if n < 20 {
		t.Fatalf("go list found %d package folders; want the module's", n)
	}
}

// TestNoStaleStatements keeps statements that the code outgrew (issue 19,
// D7) out of the README and the deployment files.
func TestNoStaleStatements(t *testing.T) {
	files := []string{"../README.md", "README.md", "Dockerfile", "docker-compose.yml"}
	k8s, err := filepath.Glob("k8s/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, k8s...)
	stale := []string{
		"does not serve `/metrics` yet",        // the control listener does, and --metrics-listen
		"is not built yet",                     // the control listener and its pprof exist
		"once the gateway exports it",          // marketgate_connections_current exists
		"have no healthcheck",                  // the image has one
		"no container healthcheck",             // the same, in deploy/README.md
		"manifests are not\nexercised",         // they are rendered and decoded
		"`admin` 9090",                         // the admin port left the load-balanced Service
		"scales 3 to 10 pods on CPU (60%) and", // it scales on connections first
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range stale {
			if strings.Contains(string(b), s) {
				t.Errorf("%s still says %q", f, s)
			}
		}
	}
}
