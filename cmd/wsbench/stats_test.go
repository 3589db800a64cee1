package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

func snap(ready bool, opened, closed, msgs int64, lat ...uint64) Snapshot {
	s := Snapshot{Ready: ready, Attempted: opened, Opened: opened, Closed: closed, Msgs: msgs, Bytes: 100 * msgs, Dropped: closed}
	for _, v := range lat {
		s.Latency.Record(v)
	}
	return s
}

func TestMerge(t *testing.T) {
	tests := []struct {
		name      string
		in        []Snapshot
		wantReady bool
		wantOpen  int64
		wantMsgs  int64
		wantLat   uint64
	}{
		{"none", nil, false, 0, 0, 0},
		{"one", []Snapshot{snap(true, 10, 1, 5, 1, 2)}, true, 9, 5, 2},
		{"all ready", []Snapshot{snap(true, 10, 0, 5, 1), snap(true, 20, 2, 7, 3, 4)}, true, 28, 12, 3},
		{"one not ready", []Snapshot{snap(true, 10, 0, 5), snap(false, 20, 0, 7)}, false, 30, 12, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := Merge(tc.in)
			if m.Ready != tc.wantReady || m.Open() != tc.wantOpen || m.Msgs != tc.wantMsgs || m.Latency.Total() != tc.wantLat {
				t.Errorf("Merge = ready %v open %d msgs %d samples %d; want %v %d %d %d",
					m.Ready, m.Open(), m.Msgs, m.Latency.Total(), tc.wantReady, tc.wantOpen, tc.wantMsgs, tc.wantLat)
			}
			if m.Bytes != 100*tc.wantMsgs {
				t.Errorf("Merge Bytes = %d; want %d", m.Bytes, 100*tc.wantMsgs)
			}
		})
	}
}

func TestSnapshotJSONRoundTrip(t *testing.T) {
	s := snap(true, 3, 1, 9, 10, 20, 3000)
	s.SeqGaps, s.Missing, s.CPU = 2, 5, 1.5
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back Snapshot
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if d := back.Sub(s); d.Msgs != 0 || d.Latency.Total() != 0 || back.Latency.Total() != 3 || back.SeqGaps != 2 || back.CPU != 1.5 {
		t.Errorf("round trip of %s = %+v", b, back)
	}
}

func TestBuildReport(t *testing.T) {
	cfg := config{url: "ws://x/ws", conns: 10, streams: []string{"a"}, perConn: 1, procs: 2}
	start := snap(true, 10, 0, 1000, 500)
	end := snap(true, 10, 0, 3000, 500)
	for v := uint64(1000); v < 3000; v++ { // 2000 samples of 1–3 ms in the window
		end.Latency.Record(v)
	}
	start.CPU, end.CPU = 1, 2
	r := buildReport(cfg, time.Second, 2*time.Second, start, end)
	if r.Msgs != 2000 || r.MsgsPerS != 1000 || r.Open != 10 || r.ClientCPU != 1 {
		t.Errorf("report msgs %d rate %v open %d client cpu %v; want 2000, 1000, 10, 1", r.Msgs, r.MsgsPerS, r.Open, r.ClientCPU)
	}
	if r.Latency.Samples != 2000 || r.Latency.P50 < 1.999 || r.Latency.P50 > 2.04 {
		t.Errorf("latency %+v; want 2000 samples, p50 about 2 ms", r.Latency)
	}
	mib := int64(1 << 20)
	r.addServer(7, procSample{RSS: 10 * mib, CPU: 5}, procSample{CPU: 6}, procSample{RSS: 20 * mib, Threads: 9, CPU: 6.5}, -1)
	s := r.Server
	if s.RSSPerConn != float64(mib) || s.CPU != 0.5 || s.MsgsPerCPUSecond != 4000 || s.CPUUtilization != 0.25 {
		t.Errorf("server %+v; want 1 MiB/conn, 0.5 s CPU, 4000 msgs per CPU-second, 25%%", *s)
	}
	var out bytes.Buffer
	r.writeText(&out)
	if !strings.Contains(out.String(), "4000 msgs per CPU-second") {
		t.Errorf("writeText = %q", out.String())
	}
}

func TestSplitCPU(t *testing.T) {
	from := map[int]float64{1: 10, 2: 5, 3: 1, 4: 7, 5: 2}
	to := map[int]float64{1: 12, 2: 6, 3: 1.5, 4: 9, 5: 2, 6: 0.5} // 6 began in the window
	kernel := map[int]bool{3: true}
	ours := map[int]bool{1: true}
	setup := map[int]bool{2: true}
	tests := []struct {
		name string
		secs float64
		want CPUSplit
	}{
		{"two seconds", 2, CPUSplit{Setup: 0.5, Kernel: 0.25, Other: 1.25}},
		{"no window", 0, CPUSplit{}},
	}
	for _, tc := range tests {
		if got := splitCPU(from, to, kernel, ours, setup, tc.secs); got != tc.want {
			t.Errorf("%s: splitCPU = %+v; want %+v", tc.name, got, tc.want)
		}
	}
	if cpu, _ := cpuByProcess(); cpu[os.Getpid()] < 0 || len(cpu) < 2 {
		t.Errorf("cpuByProcess = %d processes, this one %v; want this one among others", len(cpu), cpu[os.Getpid()])
	}
}
