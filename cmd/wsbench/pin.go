package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// parseCPUs reads a CPU list as taskset -c takes it: "1", "0,2", "2-3".
func parseCPUs(s string) (unix.CPUSet, int, error) {
	var set unix.CPUSet
	n := 0
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(hi)
		}
		if err != nil || a < 0 || b < a || b >= 1024 {
			return set, 0, fmt.Errorf("%q is not a CPU list such as 1 or 0,2 or 2-3", s)
		}
		for i := a; i <= b; i++ {
			if !set.IsSet(i) {
				set.Set(i)
				n++
			}
		}
	}
	return set, n, nil
}

// pinCPUs binds every thread of this process to set, as taskset would
// have at exec: threads made later inherit the mask of the thread that
// makes them, and child processes that of their parent. GOMAXPROCS
// follows the number of CPUs.
func pinCPUs(set unix.CPUSet, n int) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("pin to CPUs: %w", err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil {
			return fmt.Errorf("pin thread %d to CPUs: %w", tid, err)
		}
	}
	runtime.GOMAXPROCS(n)
	return nil
}
