package memlimit

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeTree writes files (path relative to the root: contents) under a
// temporary directory and returns it.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, body := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestCgroupLimit(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		want    Limit
		wantErr string
	}{
		{"v2 in its own namespace", map[string]string{
			"proc/self/cgroup":         "0::/\n",
			"sys/fs/cgroup/memory.max": "536870912\n",
			"sys/fs/cgroup/cpu.max":    "max 100000\n",
		}, Limit{536870912, "sys/fs/cgroup/memory.max"}, ""},
		{"v2 unlimited", map[string]string{
			"proc/self/cgroup":         "0::/\n",
			"sys/fs/cgroup/memory.max": "max\n",
		}, Limit{}, ""},
		{"v2 nested: the lowest along the path", map[string]string{
			"proc/self/cgroup":                          "0::/kubepods/pod1/c1\n",
			"sys/fs/cgroup/kubepods/memory.max":         "8589934592\n",
			"sys/fs/cgroup/kubepods/pod1/memory.max":    "1073741824\n",
			"sys/fs/cgroup/kubepods/pod1/c1/memory.max": "max\n",
		}, Limit{1073741824, "sys/fs/cgroup/kubepods/pod1/memory.max"}, ""},
		{"v2 host path, container mount", map[string]string{
			"proc/self/cgroup":         "0::/docker/abc123\n",
			"sys/fs/cgroup/memory.max": "268435456\n",
		}, Limit{268435456, "sys/fs/cgroup/memory.max"}, ""},
		{"v1", map[string]string{
			"proc/self/cgroup": "12:pids:/docker/abc\n11:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n0::/\n",
			"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "2147483648\n",
		}, Limit{2147483648, "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes"}, ""},
		{"v1 unlimited", map[string]string{
			"proc/self/cgroup":                           "4:memory:/\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
		}, Limit{}, ""},
		{"no cgroup files", map[string]string{"proc/self/cgroup": "0::/user.slice\n"}, Limit{}, ""},
		{"garbage", map[string]string{
			"proc/self/cgroup":         "0::/\n",
			"sys/fs/cgroup/memory.max": "lots\n",
		}, Limit{}, `"lots" is not a number of bytes`},
		{"no cgroups (not Linux)", map[string]string{}, Limit{}, ""},
		{"unreadable limit", map[string]string{"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max/x": ""}, Limit{}, "memory.max"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CgroupLimit(os.DirFS(writeTree(t, tc.files)))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("CgroupLimit = %v, %v; want an error with %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("CgroupLimit = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestApply(t *testing.T) {
	limited := map[string]string{"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": "1000000000\n"}
	tests := []struct {
		name  string
		ratio float64
		env   map[string]string
		files map[string]string
		want  int64
	}{
		{"90% of the cgroup's", 0.9, nil, limited, 900000000},
		{"GOMEMLIMIT wins", 0.9, map[string]string{"GOMEMLIMIT": "512MiB"}, limited, 0},
		{"empty GOMEMLIMIT is unset", 0.5, map[string]string{"GOMEMLIMIT": ""}, limited, 500000000},
		{"off", 0, nil, limited, 0},
		{"no limit", 0.9, nil, map[string]string{"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": "max\n"}, 0},
		{"unreadable", 0.9, nil, map[string]string{}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var set int64
			var logs strings.Builder
			got := Apply(Config{
				Ratio:  tc.ratio,
				FS:     os.DirFS(writeTree(t, tc.files)),
				Lookup: func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok },
				Set:    func(n int64) int64 { set = n; return 0 },
				Logger: slog.New(slog.NewTextHandler(&logs, nil)),
			})
			if got != tc.want || set != tc.want {
				t.Errorf("Apply = %d (set %d); want %d; log:\n%s", got, set, tc.want, logs.String())
			}
			if tc.want > 0 && !strings.Contains(logs.String(), "gomemlimit=") {
				t.Errorf("log %q; want a line with the limit set", logs.String())
			}
		})
	}
}
