package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// readProc samples /proc/<pid>; pid 0 is this process.
func readProc(pid int) (procSample, error) {
	dir := "/proc/self"
	if pid > 0 {
		dir = "/proc/" + strconv.Itoa(pid)
	}
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return procSample{}, err
	}
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return procSample{}, err
	}
	var p procSample
	if p.RSS, p.Threads, err = parseStatus(status); err != nil {
		return p, fmt.Errorf("%s/status: %w", dir, err)
	}
	if _, p.CPU, p.Sys, err = parseStat(stat); err != nil {
		return p, fmt.Errorf("%s/stat: %w", dir, err)
	}
	return p, nil
}

// kthreadd is the parent of every kernel thread.
const kthreadd = 2

// cpuByProcess returns the CPU seconds used so far by every process, and
// which of them are kernel threads. Processes that vanish while it reads
// are skipped.
func cpuByProcess() (cpu map[int]float64, kernel map[int]bool) {
	cpu, kernel = map[int]float64{}, map[int]bool{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		ppid, c, _, err := parseStat(b)
		if err != nil {
			continue
		}
		cpu[pid] = c
		kernel[pid] = pid == kthreadd || ppid == kthreadd
	}
	return cpu, kernel
}

// CPUSplit is how the machine's processes used CPU over a window, in cores.
type CPUSplit struct {
	// Setup is the processes named by --setup-pids (the exchange, other
	// servers), Kernel the kernel threads (ksoftirqd does loopback network
	// work there), Other every other process: someone else's jobs, which
	// make the run's figures doubtful.
	Setup  float64 `json:"setup_cores"`
	Kernel float64 `json:"kernel_cores"`
	Other  float64 `json:"other_cores"`
}

// splitCPU attributes the CPU used between two cpuByProcess samples taken
// secs apart. Processes in ours (the server, wsbench) are left out. A
// process that began in between counts whole; one that ended is missed.
func splitCPU(from, to map[int]float64, kernel map[int]bool, ours, setup map[int]bool, secs float64) CPUSplit {
	var s CPUSplit
	if secs <= 0 {
		return s
	}
	for pid, c := range to {
		d := (c - from[pid]) / secs
		switch {
		case ours[pid] || d <= 0:
		case setup[pid]:
			s.Setup += d
		case kernel[pid]:
			s.Kernel += d
		default:
			s.Other += d
		}
	}
	return s
}

// readHostCPU returns the machine's busy CPU seconds so far.
func readHostCPU() (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	return parseHostCPU(b)
}

// fetchGoroutines asks url for the server's goroutine count.
func fetchGoroutines(ctx context.Context, url string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, fmt.Errorf("goroutines %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("goroutines %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, fmt.Errorf("goroutines %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("goroutines %s: %s", url, resp.Status)
	}
	n, err := parseGoroutines(body)
	if err != nil {
		return 0, fmt.Errorf("goroutines %s: %w", url, err)
	}
	return n, nil
}

// handle is a worker as the parent sees it: in this process (--procs 1)
// or a child process.
type handle interface {
	// request asks for a snapshot; collect returns it. Splitting the two
	// lets all children answer at once.
	request() error
	collect() (Snapshot, error)
	// stop ends the worker (its connections send close frames) and waits
	// for it, at most until the given time.
	stop(deadline time.Time) error
	// pid is the worker's process.
	pid() int
}

// localWorker runs a worker in this process.
type localWorker struct {
	w      *worker
	cancel context.CancelFunc
	done   chan struct{}
}

func startLocal(ctx context.Context, cfg config, log *slog.Logger) *localWorker {
	ctx, cancel := context.WithCancel(ctx)
	l := &localWorker{w: newWorker(cfg, 0, log), cancel: cancel, done: make(chan struct{})}
	go func() { // waited for by stop
		defer close(l.done)
		l.w.run(ctx)
	}()
	return l
}

func (l *localWorker) pid() int                   { return os.Getpid() }
func (l *localWorker) request() error             { return nil }
func (l *localWorker) collect() (Snapshot, error) { return l.w.snapshot(), nil }

func (l *localWorker) stop(deadline time.Time) error {
	l.cancel()
	select {
	case <-l.done:
		return nil
	case <-time.After(time.Until(deadline)):
		return errors.New("local worker: connections still closing")
	}
}

// childWorker is a copy of this program started with --child i. The parent
// writes "snap" lines to its stdin and reads one JSON [Snapshot] line per
// request from its stdout; closing stdin stops it.
type childWorker struct {
	index int
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *os.File
	lines *bufio.Scanner
	once  sync.Once
	err   error
}

// startChild starts child index with the parent's own arguments and
// environment plus --child.
func startChild(index int) (*childWorker, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start child %d: %w", index, err)
	}
	args := append(append([]string{}, os.Args[1:]...), "--child", strconv.Itoa(index))
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	// A child whose parent dies gets SIGTERM (and EOF on stdin), so no
	// load generator outlives its run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("start child %d: %w", index, err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start child %d: %w", index, err)
	}
	cmd.Stdout = w
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("start child %d: %w", index, err)
	}
	w.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	return &childWorker{index: index, cmd: cmd, in: in, out: r, lines: sc}, nil
}

func (c *childWorker) pid() int { return c.cmd.Process.Pid }

func (c *childWorker) request() error {
	if _, err := io.WriteString(c.in, "snap\n"); err != nil {
		return fmt.Errorf("child %d: %w", c.index, err)
	}
	return nil
}

func (c *childWorker) collect() (Snapshot, error) {
	_ = c.out.SetReadDeadline(time.Now().Add(5 * time.Second))
	if !c.lines.Scan() {
		err := c.lines.Err()
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return Snapshot{}, fmt.Errorf("child %d: %w", c.index, err)
	}
	var s Snapshot
	if err := json.Unmarshal(c.lines.Bytes(), &s); err != nil {
		return s, fmt.Errorf("child %d: %w", c.index, err)
	}
	return s, nil
}

func (c *childWorker) stop(deadline time.Time) error {
	c.once.Do(func() {
		c.in.Close()
		done := make(chan error, 1)
		go func() { done <- c.cmd.Wait() }() // waited for below, or ends with the kill
		select {
		case c.err = <-done:
		case <-time.After(time.Until(deadline)):
			_ = c.cmd.Process.Kill()
			c.err = errors.Join(errors.New("killed after the stop deadline"), <-done)
		}
		c.out.Close()
		if c.err != nil {
			c.err = fmt.Errorf("child %d: %w", c.index, c.err)
		}
	})
	return c.err
}

// snapshotAll asks every worker at once and merges their answers.
func snapshotAll(hs []handle) (Snapshot, error) {
	var errs []error
	for _, h := range hs {
		errs = append(errs, h.request())
	}
	if err := errors.Join(errs...); err != nil {
		return Snapshot{}, err
	}
	snaps := make([]Snapshot, 0, len(hs))
	for _, h := range hs {
		s, err := h.collect()
		if err != nil {
			return Snapshot{}, err
		}
		snaps = append(snaps, s)
	}
	return Merge(snaps), nil
}

// runChild is the body of a child process: it runs its worker and answers
// the parent's requests until stdin ends, ctx ends or its time is up.
func runChild(ctx context.Context, cfg config, log *slog.Logger, in io.Reader, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.timeBound())
	defer cancel()
	w := newWorker(cfg, cfg.child, log)
	var wg sync.WaitGroup
	wg.Go(func() { w.run(ctx) })
	defer wg.Wait()
	defer cancel()

	// The stdin reader cannot be interrupted; it ends with stdin, or with
	// the process.
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	enc := json.NewEncoder(out)
	for {
		select {
		case <-ctx.Done():
			return nil
		case line, ok := <-lines:
			if !ok || line == "stop" {
				return nil
			}
			if err := enc.Encode(w.snapshot()); err != nil {
				return fmt.Errorf("write snapshot: %w", err)
			}
		}
	}
}
