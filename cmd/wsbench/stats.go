package main

import (
	"fmt"
	"io"
	"time"
)

// Snapshot is the cumulative state of one worker process (or, merged, of
// all of them). Children send it to the parent as one JSON line per
// request; the parent subtracts two snapshots to get a window's figures.
type Snapshot struct {
	// Ready: every connection of the worker was attempted and has either
	// failed or settled (subscribe answered; in idle mode: opened).
	Ready bool `json:"ready"`
	// Attempted, Opened and Closed count connections; Opened-Closed are
	// open now.
	Attempted int64 `json:"attempted"`
	Opened    int64 `json:"opened"`
	Closed    int64 `json:"closed"`
	// Subscribed counts subscribe commands answered with a result.
	Subscribed int64 `json:"subscribed"`

	// DialErrors are TCP connects that failed, HandshakeErrors WebSocket
	// upgrades refused (HTTP 503 and the like), SubscribeErrors subscribes
	// answered with an error or not at all within the timeout, Dropped
	// connections the server closed or broke while the run went on.
	DialErrors      int64 `json:"dial_errors"`
	HandshakeErrors int64 `json:"handshake_errors"`
	SubscribeErrors int64 `json:"subscribe_errors"`
	Dropped         int64 `json:"dropped"`
	// StreamErrors counts {"stream":…,"error":…} notices.
	StreamErrors int64 `json:"stream_errors"`

	// Msgs and Bytes count stream messages (payload bytes) received.
	Msgs  int64 `json:"msgs"`
	Bytes int64 `json:"bytes"`
	// SeqGaps counts messages whose seq was not the previous one's + 1
	// on the same connection and stream (gap notices excluded), Missing
	// the seq numbers skipped.
	SeqGaps int64 `json:"seq_gaps"`
	Missing int64 `json:"missing"`
	// Latency holds now − E, in µs, of every stream message with an E.
	Latency Hist `json:"latency"`

	// CPU is the worker process's own CPU time, seconds.
	CPU float64 `json:"cpu"`
}

// Open returns the number of connections open.
func (s Snapshot) Open() int64 { return s.Opened - s.Closed }

// Errors returns all errors counted.
func (s Snapshot) Errors() int64 {
	return s.DialErrors + s.HandshakeErrors + s.SubscribeErrors + s.Dropped + s.StreamErrors
}

// Merge sums the snapshots of several workers; the result is Ready when
// every one is (and there is at least one).
func Merge(snaps []Snapshot) Snapshot {
	var m Snapshot
	m.Ready = len(snaps) > 0
	for _, s := range snaps {
		m.Ready = m.Ready && s.Ready
		m.Attempted += s.Attempted
		m.Opened += s.Opened
		m.Closed += s.Closed
		m.Subscribed += s.Subscribed
		m.DialErrors += s.DialErrors
		m.HandshakeErrors += s.HandshakeErrors
		m.SubscribeErrors += s.SubscribeErrors
		m.Dropped += s.Dropped
		m.StreamErrors += s.StreamErrors
		m.Msgs += s.Msgs
		m.Bytes += s.Bytes
		m.SeqGaps += s.SeqGaps
		m.Missing += s.Missing
		m.Latency.Merge(s.Latency)
		m.CPU += s.CPU
	}
	return m
}

// Sub returns what happened between prev and s (cumulative snapshots of
// the same workers). Ready is s's.
func (s Snapshot) Sub(prev Snapshot) Snapshot {
	return Snapshot{
		Ready:           s.Ready,
		Attempted:       s.Attempted - prev.Attempted,
		Opened:          s.Opened - prev.Opened,
		Closed:          s.Closed - prev.Closed,
		Subscribed:      s.Subscribed - prev.Subscribed,
		DialErrors:      s.DialErrors - prev.DialErrors,
		HandshakeErrors: s.HandshakeErrors - prev.HandshakeErrors,
		SubscribeErrors: s.SubscribeErrors - prev.SubscribeErrors,
		Dropped:         s.Dropped - prev.Dropped,
		StreamErrors:    s.StreamErrors - prev.StreamErrors,
		Msgs:            s.Msgs - prev.Msgs,
		Bytes:           s.Bytes - prev.Bytes,
		SeqGaps:         s.SeqGaps - prev.SeqGaps,
		Missing:         s.Missing - prev.Missing,
		Latency:         s.Latency.Sub(prev.Latency),
		CPU:             s.CPU - prev.CPU,
	}
}

// Latencies are a histogram's percentiles in milliseconds.
type Latencies struct {
	Samples uint64  `json:"samples"`
	P50     float64 `json:"p50"`
	P90     float64 `json:"p90"`
	P99     float64 `json:"p99"`
	P999    float64 `json:"p999"`
	Max     float64 `json:"max"`
}

func latencies(h Hist) Latencies {
	ms := func(q float64) float64 { return float64(h.Quantile(q)) / 1000 }
	return Latencies{Samples: h.Total(), P50: ms(0.5), P90: ms(0.9), P99: ms(0.99), P999: ms(0.999), Max: ms(1)}
}

// ServerReport is what the run did to the server process (--pid).
type ServerReport struct {
	PID int `json:"pid"`
	// RSSBaseline is sampled before the first connection, RSS at the end
	// of the window; RSSPerConn is their difference over the connections
	// open then.
	RSSBaseline int64   `json:"rss_baseline_bytes"`
	RSS         int64   `json:"rss_bytes"`
	RSSPerConn  float64 `json:"rss_per_conn_bytes"`
	Threads     int     `json:"threads"`
	// Goroutines is -1 when --goroutines-url is not set or failed.
	Goroutines int `json:"goroutines"`
	// CPU is the server's user+system CPU seconds within the window
	// (SysCPU the system part: mostly socket writes, which on loopback
	// include the receiving side's TCP work); MsgsPerCPUSecond the frames
	// delivered per server CPU-second.
	CPU              float64 `json:"cpu_seconds"`
	SysCPU           float64 `json:"cpu_sys_seconds"`
	CPUUtilization   float64 `json:"cpu_utilization"`
	MsgsPerCPUSecond float64 `json:"msgs_per_cpu_second"`
}

// Report is the final result, printed as JSON with --json.
type Report struct {
	URL       string   `json:"url"`
	Idle      bool     `json:"idle"`
	Streams   []string `json:"streams"`
	PerConn   int      `json:"per_conn"`
	Procs     int      `json:"procs"`
	Target    int      `json:"conns_target"`
	Open      int64    `json:"conns_open"`
	RampSecs  float64  `json:"ramp_seconds"`
	Window    float64  `json:"window_seconds"`
	Msgs      int64    `json:"msgs"`
	Bytes     int64    `json:"bytes"`
	MsgsPerS  float64  `json:"msgs_per_second"`
	BytesPerS float64  `json:"bytes_per_second"`
	// Latency covers the window only.
	Latency Latencies `json:"latency_ms"`
	// Errors and sequence gaps over the whole run, ramp included.
	DialErrors      int64   `json:"dial_errors"`
	HandshakeErrors int64   `json:"handshake_errors"`
	SubscribeErrors int64   `json:"subscribe_errors"`
	Dropped         int64   `json:"dropped"`
	StreamErrors    int64   `json:"stream_errors"`
	SeqGaps         int64   `json:"seq_gaps"`
	Missing         int64   `json:"missing"`
	ClientCPU       float64 `json:"client_cpu_seconds"`
	// HostCPU is the machine's busy cores over the window, everyone's:
	// server, wsbench, the exchange and anything else running.
	HostCPU float64 `json:"host_cpu_cores"`
	// Machine splits the CPU that neither the server nor wsbench used.
	Machine CPUSplit `json:"machine"`
	// Server is absent without --pid.
	Server *ServerReport `json:"server,omitempty"`
	// FanOut is the server's own fan-out figures (--metrics-url).
	FanOut *FanOut `json:"server_fanout,omitempty"`
	// Warnings say when the load generator may have been the
	// bottleneck, so that the figures measure it rather than the server.
	Warnings []string `json:"warnings,omitempty"`
}

// buildReport computes the report of a window from the snapshots at its
// start and end (and the ramp's duration).
func buildReport(cfg config, ramp, window time.Duration, start, end Snapshot) Report {
	w := end.Sub(start)
	r := Report{
		URL: cfg.url, Idle: cfg.idle, Streams: cfg.streams, PerConn: cfg.perConn, Procs: cfg.procs,
		Target: cfg.conns, Open: end.Open(), RampSecs: ramp.Seconds(), Window: window.Seconds(),
		Msgs: w.Msgs, Bytes: w.Bytes, Latency: latencies(w.Latency),
		DialErrors: end.DialErrors, HandshakeErrors: end.HandshakeErrors, SubscribeErrors: end.SubscribeErrors,
		Dropped: end.Dropped, StreamErrors: end.StreamErrors, SeqGaps: end.SeqGaps, Missing: end.Missing,
		ClientCPU: w.CPU,
	}
	if s := window.Seconds(); s > 0 {
		r.MsgsPerS = float64(w.Msgs) / s
		r.BytesPerS = float64(w.Bytes) / s
	}
	return r
}

// addServer fills the server part of r from /proc samples taken before
// connecting (base), at the window's start (from) and end (to).
func (r *Report) addServer(pid int, base, from, to procSample, goroutines int) {
	s := &ServerReport{PID: pid, RSSBaseline: base.RSS, RSS: to.RSS, Threads: to.Threads, Goroutines: goroutines,
		CPU: to.CPU - from.CPU, SysCPU: to.Sys - from.Sys}
	if r.Open > 0 {
		s.RSSPerConn = float64(to.RSS-base.RSS) / float64(r.Open)
	}
	if r.Window > 0 {
		s.CPUUtilization = s.CPU / r.Window
	}
	if s.CPU > 0 {
		s.MsgsPerCPUSecond = float64(r.Msgs) / s.CPU
	}
	r.Server = s
}

// writeText prints r for people.
func (r Report) writeText(w io.Writer) {
	fmt.Fprintf(w, "url %s  idle %v  streams %d  per-conn %d  procs %d\n", r.URL, r.Idle, len(r.Streams), r.PerConn, r.Procs)
	fmt.Fprintf(w, "connections  %d open of %d (ramp %.1fs)\n", r.Open, r.Target, r.RampSecs)
	fmt.Fprintf(w, "window       %.1fs: %d msgs, %.0f msgs/s, %.1f MiB/s\n", r.Window, r.Msgs, r.MsgsPerS, r.BytesPerS/(1<<20))
	l := r.Latency
	fmt.Fprintf(w, "latency ms   p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  (%d samples)\n", l.P50, l.P90, l.P99, l.P999, l.Max, l.Samples)
	fmt.Fprintf(w, "errors       dial %d  handshake %d  subscribe %d  dropped %d  stream %d  seq gaps %d (missing %d)\n",
		r.DialErrors, r.HandshakeErrors, r.SubscribeErrors, r.Dropped, r.StreamErrors, r.SeqGaps, r.Missing)
	fmt.Fprintf(w, "client cpu   %.1fs\n", r.ClientCPU)
	m := r.Machine
	fmt.Fprintf(w, "machine      busy %.2f cores; besides server and wsbench: setup %.2f, kernel threads %.2f, other processes %.2f\n",
		r.HostCPU, m.Setup, m.Kernel, m.Other)
	if f := r.FanOut; f != nil {
		fmt.Fprintf(w, "server fan-out  %d events: mean %.3f ms  p50 %.3f  p90 %.3f  p99 %.3f ms; %.0f writes for %.0f frames (%.2f frames/write)\n",
			f.Events, f.MeanMS, f.P50MS, f.P90MS, f.P99MS, f.Writes, f.Frames, f.FramesPerWrite)
	}
	for _, s := range r.Warnings {
		fmt.Fprintf(w, "WARNING      %s\n", s)
	}
	if s := r.Server; s != nil {
		fmt.Fprintf(w, "server %d   rss %.1f MiB (baseline %.1f MiB), %.0f B/conn, %d threads, %d goroutines\n",
			s.PID, float64(s.RSS)/(1<<20), float64(s.RSSBaseline)/(1<<20), s.RSSPerConn, s.Threads, s.Goroutines)
		fmt.Fprintf(w, "server cpu   %.2fs (%.2fs system, %.0f%% of a core), %.0f msgs per CPU-second\n",
			s.CPU, s.SysCPU, 100*s.CPUUtilization, s.MsgsPerCPUSecond)
	}
}
