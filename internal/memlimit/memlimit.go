// Package memlimit sets the Go runtime's soft memory limit (GOMEMLIMIT)
// from the memory limit of the container the process runs in, so that the
// garbage collector works harder as the heap nears the limit instead of
// the kernel killing the process (OOM) first.
//
//	memlimit.Apply(memlimit.Config{Ratio: 0.9, Logger: log})
//
// The limit is read from the process's cgroup: memory.max on cgroup v2,
// memory.limit_in_bytes on v1, the lowest along the path from the
// process's cgroup up to the root.
package memlimit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
)

// v1Unlimited: cgroup v1 reports "no limit" as a huge number (the largest
// page-aligned int64), not as a word.
const v1Unlimited = 1 << 62

// Limit is a cgroup memory limit.
type Limit struct {
	// Bytes is the limit; 0: none found.
	Bytes int64
	// File is where it was read, relative to the file system's root
	// (sys/fs/cgroup/memory.max).
	File string
}

// CgroupLimit returns the memory limit of the process's cgroup, read
// from fsys, a view of the root file system (os.DirFS("/")): its
// proc/self/cgroup says which cgroup, and sys/fs/cgroup holds the
// limits. A process without a limit, or on a system without cgroups,
// gets a zero Limit and no error.
func CgroupLimit(fsys fs.FS) (Limit, error) {
	self, err := fs.ReadFile(fsys, "proc/self/cgroup")
	if errors.Is(err, fs.ErrNotExist) {
		return Limit{}, nil // not Linux, or no cgroups: no limit to follow
	}
	if err != nil {
		return Limit{}, fmt.Errorf("memlimit: %w", err)
	}
	var v1, v2 string
	hasV1, hasV2 := false, false
	sc := bufio.NewScanner(bytes.NewReader(self))
	for sc.Scan() {
		// hierarchy-ID:controller-list:cgroup-path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			v2, hasV2 = parts[2], true
		case slices.Contains(strings.Split(parts[1], ","), "memory"):
			v1, hasV1 = parts[2], true
		}
	}
	// A v1 memory controller wins over a v2 entry: in a hybrid setup
	// the v2 hierarchy has no memory controller.
	switch {
	case hasV1:
		return lowest(fsys, "sys/fs/cgroup/memory", v1, "memory.limit_in_bytes")
	case hasV2:
		return lowest(fsys, "sys/fs/cgroup", v2, "memory.max")
	}
	return Limit{}, nil
}

// lowest returns the lowest limit in file from the directory of the
// cgroup cg under mount up to mount itself. Directories that do not exist
// are passed over: in a container without its own cgroup namespace the
// path names the host's hierarchy while mount holds the container's.
func lowest(fsys fs.FS, mount, cg, file string) (Limit, error) {
	var best Limit
	dir := path.Join(mount, path.Clean("/" + cg)[1:])
	for {
		name := path.Join(dir, file)
		b, err := fs.ReadFile(fsys, name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return Limit{}, fmt.Errorf("memlimit: %w", err)
		default:
			s := strings.TrimSpace(string(b))
			if s != "max" {
				n, err := strconv.ParseInt(s, 10, 64)
				if err != nil || n <= 0 {
					return Limit{}, fmt.Errorf("memlimit: %s: %q is not a number of bytes", name, s)
				}
				if n < v1Unlimited && (best.Bytes == 0 || n < best.Bytes) {
					best = Limit{Bytes: n, File: name}
				}
			}
		}
		if dir == mount {
			return best, nil
		}
		dir = path.Dir(dir)
	}
}

// Config configures [Apply].
type Config struct {
	// Ratio is the share of the cgroup's limit given to the Go runtime
	// as its soft limit, in (0,1]; 0 turns Apply off. The rest is head
	// room for memory the runtime does not count (thread stacks, cgo,
	// the kernel's socket buffers charged to the cgroup).
	Ratio float64
	// FS is the root file system; nil: os.DirFS("/").
	FS fs.FS
	// Lookup reads the environment; nil: os.LookupEnv. A non-empty
	// GOMEMLIMIT wins: the runtime has applied it already.
	Lookup func(string) (string, bool)
	// Set sets the runtime's limit and returns the previous one; nil:
	// debug.SetMemoryLimit.
	Set func(int64) int64
	// Logger receives one line saying what was done; nil discards it.
	Logger *slog.Logger
}

// Apply sets the runtime's soft memory limit to cfg.Ratio of the cgroup's
// memory limit, unless GOMEMLIMIT is set, the ratio is 0, or there is no
// limit. It returns the limit it set, 0 if none. A cgroup it cannot read
// is logged, not fatal: the process runs as it would without Apply.
func Apply(cfg Config) int64 {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Ratio <= 0 {
		return 0
	}
	lookup := cfg.Lookup
	if lookup == nil {
		lookup = os.LookupEnv
	}
	if v, ok := lookup("GOMEMLIMIT"); ok && v != "" {
		log.Info("memory limit from GOMEMLIMIT; the cgroup's is not read", "gomemlimit", v)
		return 0
	}
	fsys := cfg.FS
	if fsys == nil {
		fsys = os.DirFS("/")
	}
	lim, err := CgroupLimit(fsys)
	if err != nil {
		log.Warn("no memory limit set: the cgroup's could not be read", "err", err)
		return 0
	}
	if lim.Bytes == 0 {
		log.Debug("no cgroup memory limit; GOMEMLIMIT left unset")
		return 0
	}
	set := cfg.Set
	if set == nil {
		set = debug.SetMemoryLimit
	}
	n := int64(float64(lim.Bytes) * min(cfg.Ratio, 1))
	set(n)
	log.Info("memory limit set from the cgroup's (as GOMEMLIMIT would)", "gomemlimit", n, "cgroup_limit", lim.Bytes, "ratio", cfg.Ratio, "file", "/"+lim.File)
	return n
}
