package version

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	tests := []struct {
		name     string
		bi       *debug.BuildInfo
		ok       bool
		override string
		want     Info
	}{
		{"no build info", nil, false, "", Info{"devel", Unknown, Unknown}},
		{"no build info, linker version", nil, false, "v1.0.0", Info{"v1.0.0", Unknown, Unknown}},
		{"devel, no vcs", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}}, true, "", Info{"devel", Unknown, "go1.26.0"}},
		{"tagged", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.0"}, Settings: vcs("3f2c1a9d0e", "false")}, true, "",
			Info{"v1.2.0", "3f2c1a9d0e", "go1.26.0"}},
		{"dirty pseudo-version", &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "v0.0.0-20261206030000-3f2c1a9d0e00+dirty"}, Settings: vcs("3f2c1a9d0e00", "true")}, true, "",
			Info{"v0.0.0-20261206030000-3f2c1a9d0e00+dirty", "3f2c1a9d0e00-dirty", "go1.26.1"}},
		{"linker version wins", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v0.0.0-x"}, Settings: vcs("abc", "false")}, true, "v2.0.0",
			Info{"v2.0.0", "abc", "go1.26.0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := FromBuildInfo(tc.bi, tc.ok, tc.override); got != tc.want {
				t.Errorf("FromBuildInfo = %+v; want %+v", got, tc.want)
			}
		})
	}
}

func TestGet(t *testing.T) {
	// A test binary has build information: at least the Go version.
	if got := Get(); got.GoVersion != runtime.Version() || got.Version == "" || got.Revision == "" {
		t.Errorf("Get() = %+v; want GoVersion %s and the other fields filled", got, runtime.Version())
	}
}

func TestString(t *testing.T) {
	i := Info{"v1.2.0", "0123456789abcdef0123-dirty", "go1.26.0"}
	if got, want := i.String(), "marketgate v1.2.0 (revision 0123456789abcdef0123-dirty, go1.26.0)"; got != want {
		t.Errorf("String() = %q; want %q", got, want)
	}
}
