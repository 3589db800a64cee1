//go:build unix

package deploy_test

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// releasedCommands reads the commands release.sh builds (its commands=(…)
// line), so the test and the Dockerfile check follow the script.
func releasedCommands(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("release.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^commands=\(([a-z ]+)\)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("release.sh has no commands=(…) line")
	}
	return strings.Fields(string(m[1]))
}

// TestRelease runs release.sh for this machine's architecture into a
// temporary folder (one architecture keeps it to the build cache's
// speed) and checks what it made: static binaries with build information,
// an archive of them with the license and changelog, and checksums.
func TestRelease(t *testing.T) {
	arch := runtime.GOARCH
	if arch != "amd64" && arch != "arm64" {
		arch = "amd64" // cross-built: still checked, not run
	}
	for _, tool := range []string{"bash", "git", "tar", "sha256sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("release.sh needs %s: %v", tool, err)
		}
	}
	dist := t.TempDir()
	cmd := exec.Command("bash", "release.sh")
	cmd.Env = append(os.Environ(), "DIST="+dist, "ARCHES="+arch, "VERSION=v0.0.0-test", "IMAGE=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("release.sh: %v\n%s", err, out)
	}
	commands := releasedCommands(t)
	revision, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse HEAD: %v", err)
	}
	// Go stamps the revision only where .git is a folder (a clone, as in
	// CI), not in a git worktree, where it is a file; release.sh warns.
	fi, err := os.Stat("../.git")
	clone := err == nil && fi.IsDir()
	if !clone {
		t.Logf("../.git is not a folder (a git worktree): the revision is not checked")
		if !strings.Contains(string(out), "will carry no vcs.revision") {
			t.Errorf("release.sh in a worktree did not warn that the binaries carry no revision:\n%s", out)
		}
	}

	for _, c := range commands {
		path := filepath.Join(dist, "linux_"+arch, c)
		t.Run(c, func(t *testing.T) {
			f, err := elf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			machine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
			if f.Machine != machine {
				t.Errorf("machine %v; want %v", f.Machine, machine)
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP {
					t.Errorf("has a program interpreter (PT_INTERP): dynamically linked")
				}
			}
			if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
				t.Errorf("needs shared libraries %v (%v); want none", libs, err)
			}
			bi, err := buildinfo.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			settings := map[string]string{}
			for _, s := range bi.Settings {
				settings[s.Key] = s.Value
			}
			want := map[string]string{"CGO_ENABLED": "0", "GOOS": "linux", "GOARCH": arch, "-trimpath": "true"}
			if clone {
				want["vcs"] = "git"
				want["vcs.revision"] = strings.TrimSpace(string(revision))
			}
			for k, v := range want {
				if settings[k] != v {
					t.Errorf("build setting %s = %q; want %q", k, settings[k], v)
				}
			}
			if (clone && settings["vcs.time"] == "") || bi.Main.Path != "github.com/marketgate/marketgate" {
				t.Errorf("vcs.time %q, main module %q; want a commit time and github.com/marketgate/marketgate", settings["vcs.time"], bi.Main.Path)
			}
		})
	}

	// The static healthcheck runs here as it does in the image.
	if arch == runtime.GOARCH && runtime.GOOS == "linux" {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/healthz" {
				http.NotFound(w, r)
				return
			}
			io.WriteString(w, `{"status":"ok"}`)
		}))
		defer srv.Close()
		hc := filepath.Join(dist, "linux_"+arch, "healthcheck")
		if out, err := exec.Command(hc, srv.URL+"/healthz").CombinedOutput(); err != nil {
			t.Errorf("healthcheck %s/healthz: %v\n%s", srv.URL, err, out)
		}
		if err := exec.Command(hc, srv.URL+"/nope").Run(); err == nil {
			t.Error("healthcheck of a 404 exited 0")
		}
	}

	// The archive holds the binaries, the license and the changelog under
	// one folder, and SHA256SUMS has its checksum.
	name := "marketgate_v0.0.0-test_linux_" + arch
	archive := filepath.Join(dist, name+".tar.gz")
	b, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var files []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, h.Name)
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s owned by %d:%d; want 0:0", h.Name, h.Uid, h.Gid)
		}
	}
	want := []string{name + "/CHANGELOG.md", name + "/LICENSE", name + "/README.md"}
	for _, c := range commands {
		want = append(want, name+"/"+c)
	}
	slices.Sort(files)
	slices.Sort(want)
	if !slices.Equal(files, want) {
		t.Errorf("archive holds %v; want %v", files, want)
	}
	sums, err := os.Open(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	defer sums.Close()
	var lines []string
	sc := bufio.NewScanner(sums)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	// And the npm client package, packed as npm pack does, at its
	// package.json version.
	tgz := "marketgate-client-" + clientVersion(t) + ".tgz"
	pkg, err := os.ReadFile(filepath.Join(dist, tgz))
	if err != nil {
		t.Fatalf("the npm client package: %v", err)
	}
	line := func(b []byte, name string) string {
		sum := sha256.Sum256(b)
		return hex.EncodeToString(sum[:]) + "  " + name
	}
	if want := []string{line(b, name+".tar.gz"), line(pkg, tgz)}; !slices.Equal(lines, want) {
		t.Errorf("SHA256SUMS = %q; want %q", lines, want)
	}
}

// clientVersion returns the npm client package's version.
func clientVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../web/client/package.json")
	if err != nil {
		t.Fatal(err)
	}
	var pkg struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(b, &pkg); err != nil || pkg.Version == "" {
		t.Fatalf("web/client/package.json: version %q, %v", pkg.Version, err)
	}
	return pkg.Version
}

// pathWithout returns a PATH of links to the tools release.sh needs
// before it builds, without tool.
func pathWithout(t *testing.T, tool string) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"bash", "git", "sed", "dirname", "mkdir", "go"} {
		if name == tool {
			continue
		}
		p, err := exec.LookPath(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(p, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestReleaseRefusals checks that release.sh says what is wrong with a bad
// setting before it builds anything.
func TestReleaseRefusals(t *testing.T) {
	for _, tc := range []struct{ env, want string }{
		{"ARCHES=386", "386 is not a released platform"},
		{"VERSION=v1/2", "VERSION v1/2"},
		// A release tag must be the npm client's version too.
		{"VERSION=v999.0.0", "web/client/package.json has version " + clientVersion(t) + ": set it to 999.0.0"},
		{"PATH=" + pathWithout(t, "npm"), "npm missing"},
	} {
		cmd := exec.Command("bash", "release.sh")
		cmd.Env = append(os.Environ(), "DIST="+t.TempDir(), tc.env)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("release.sh with %s: %v, %q; want a failure saying %q", tc.env, err, out, tc.want)
		}
	}
}

// TestDockerfile checks the image recipe (no Docker engine here to build
// it): the OCI labels, a HEALTHCHECK run by a binary the image has, and
// the same binaries built from source as release.sh hands it.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	// Join continuation lines, drop comments.
	text := regexp.MustCompile(`\\\n\s*`).ReplaceAllString(string(b), " ")
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	find := func(prefix string) []string {
		var out []string
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				out = append(out, l)
			}
		}
		return out
	}
	labels := strings.Join(find("LABEL "), " ")
	for _, k := range []string{"title", "description", "version", "revision", "created", "source", "licenses", "url", "documentation"} {
		if !strings.Contains(labels, "org.opencontainers.image."+k+"=") {
			t.Errorf("no LABEL org.opencontainers.image.%s", k)
		}
	}
	for _, arg := range []string{"VERSION", "REVISION", "CREATED"} {
		if !strings.Contains(labels, "${"+arg+"}") || len(find("ARG "+arg)) == 0 {
			t.Errorf("the labels do not take the build argument %s (release.sh passes it)", arg)
		}
	}
	if !strings.Contains(labels, `licenses="Apache-2.0"`) {
		t.Error(`org.opencontainers.image.licenses is not "Apache-2.0" (LICENSE)`)
	}
	hc := find("HEALTHCHECK ")
	if len(hc) != 1 || !strings.Contains(hc[0], `CMD ["/usr/local/bin/healthcheck"`) {
		t.Fatalf("HEALTHCHECK %q; want one, in exec form, running /usr/local/bin/healthcheck (the image has no shell)", hc)
	}
	commands := releasedCommands(t)
	build := strings.Join(find("RUN CGO_ENABLED=0 go build"), " ")
	for _, c := range commands {
		if !strings.Contains(build, "./cmd/"+c) {
			t.Errorf("the source build does not build ./cmd/%s", c)
		}
		if !strings.Contains(strings.Join(find("COPY ${DIST}/"), " "), "/"+c) {
			t.Errorf("the release stage does not copy %s from DIST", c)
		}
		if !strings.Contains(strings.Join(find("COPY --from=binaries "), " "), "/out/"+c) {
			t.Errorf("the image does not install %s", c)
		}
	}
	if !strings.Contains(string(b), "MARKETGATE_METRICS_LISTEN=:9090") || !strings.Contains(string(b), "EXPOSE 8080 9090 9091") {
		t.Error("the image does not serve metrics on :9090")
	}
}
