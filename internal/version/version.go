// Package version reports what build of marketgate is running: its
// version, the VCS revision it was built from and the Go version, read
// from the build information the Go toolchain embeds in every binary
// (runtime/debug.ReadBuildInfo).
//
//	info := version.Get()
//	fmt.Println(info) // marketgate v1.2.0 (revision 3f2c1a9, go1.26.0)
//
// A release build may set the version and revision explicitly, for
// binaries built without VCS stamping (-buildvcs=false, a source archive,
// a container build without .git):
//
//	go build -ldflags "-X github.com/marketgate/marketgate/internal/version.version=v1.2.0 \
//	  -X github.com/marketgate/marketgate/internal/version.revision=$(git rev-parse HEAD)" ./cmd/marketgate
package version

import (
	"fmt"
	"runtime/debug"
)

// version and revision, when set by the linker (-X), override the module
// version and the VCS revision of the build information. They are never
// written at run time.
var version, revision string

// Unknown stands for a value the build information does not hold: a
// binary built without module or VCS information (go run, tests, a
// checkout without .git).
const Unknown = "unknown"

// Info describes a build.
type Info struct {
	// Version is the module version: a release tag (v1.2.0), a Go
	// pseudo-version of an untagged commit, "devel" for a build outside
	// version control, or the linker-set version.
	Version string
	// Revision is the VCS commit the binary was built from, with the
	// suffix "-dirty" when the work tree had local changes; [Unknown]
	// when the build did not record one.
	Revision string
	// GoVersion is the Go toolchain that built the binary (go1.26.0).
	GoVersion string
}

// Get returns the running binary's build information. It is cheap and
// safe for concurrent use.
func Get() Info {
	bi, ok := debug.ReadBuildInfo()
	info := FromBuildInfo(bi, ok, version)
	if revision != "" {
		info.Revision = revision
	}
	return info
}

// FromBuildInfo returns the Info of bi (ok as returned by
// debug.ReadBuildInfo), its version replaced by override when that is
// not empty.
func FromBuildInfo(bi *debug.BuildInfo, ok bool, override string) Info {
	info := Info{Version: "devel", Revision: Unknown, GoVersion: Unknown}
	if !ok || bi == nil {
		if override != "" {
			info.Version = override
		}
		return info
	}
	info.GoVersion = bi.GoVersion
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		info.Version = v
	}
	if override != "" {
		info.Version = override
	}
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && info.Revision != Unknown {
		info.Revision += "-dirty"
	}
	return info
}

// String is the one line marketgate version prints:
// "marketgate v1.2.0 (revision 3f2c1a9…, go1.26.0)".
func (i Info) String() string {
	return fmt.Sprintf("marketgate %s (revision %s, %s)", i.Version, i.Revision, i.GoVersion)
}
