package main

import (
	"bytes"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

// TestFrameCounter feeds a stream of server frames to frameCounter in
// every split and checks the counts and the control frames it reports.
func TestFrameCounter(t *testing.T) {
	var stream bytes.Buffer
	frame := func(op ws.OpCode, fin bool, n int) {
		f := ws.NewFrame(op, fin, bytes.Repeat([]byte{'x'}, n))
		if err := ws.WriteFrame(&stream, f); err != nil {
			t.Fatal(err)
		}
	}
	frame(ws.OpText, true, 10)
	frame(ws.OpText, true, 300)   // 16-bit length
	frame(ws.OpText, true, 70000) // 64-bit length
	frame(ws.OpPing, true, 4)     // a control frame
	frame(ws.OpText, false, 5)    // a fragmented message
	frame(ws.OpContinuation, true, 7)
	frame(ws.OpPong, true, 0)
	b := stream.Bytes()
	const wantMsgs, wantBytes = 4, 10 + 300 + 70000 + 5 + 7
	for _, chunk := range []int{1, 2, 3, 7, 100, 4096, len(b)} {
		var f frameCounter
		var ctl []string
		for i := 0; i < len(b); i += chunk {
			err := f.scan(b[i:min(i+chunk, len(b))], func(op ws.OpCode, p []byte) error {
				ctl = append(ctl, string(rune('0'+op))+":"+string(p))
				return nil
			})
			if err != nil {
				t.Fatalf("chunk %d: scan = %v", chunk, err)
			}
		}
		if f.msgs != wantMsgs || f.bytes != wantBytes {
			t.Errorf("chunk %d: msgs %d, bytes %d; want %d, %d", chunk, f.msgs, f.bytes, wantMsgs, wantBytes)
		}
		if got, want := strings.Join(ctl, ","), string(rune('0'+ws.OpPing))+":xxxx,"+string(rune('0'+ws.OpPong))+":"; got != want {
			t.Errorf("chunk %d: control frames %q", chunk, got)
		}
	}
	var f frameCounter
	if err := f.scan([]byte{0x81, 0x85, 1, 2, 3, 4}, func(ws.OpCode, []byte) error { return nil }); err == nil {
		t.Error("scan of a masked frame = nil; want an error")
	}
}

// TestSamples checks that the sampled connections are as many as asked,
// cover every stream and reach the end of the connection order.
func TestSamples(t *testing.T) {
	for _, tc := range []struct {
		conns, streams, sample, want int
	}{
		{conns: 4000, streams: 4, sample: 20, want: 20},
		{conns: 10000, streams: 5, sample: 5, want: 5},
		{conns: 10, streams: 4, sample: 100, want: 10}, // more than there are: all
		{conns: 100, streams: 1, sample: 0, want: 100}, // 0: all
		{conns: 100, streams: 1, sample: 1, want: 1},
	} {
		cfg := config{conns: tc.conns, streams: make([]string, tc.streams), sampleConns: tc.sample}
		n, last := 0, -1
		perStream := map[int]int{}
		for g := range tc.conns {
			if cfg.samples(g) {
				n++
				last = g
				perStream[g%tc.streams]++
			}
		}
		if n != tc.want {
			t.Errorf("%+v: %d sampled; want %d", tc, n, tc.want)
		}
		if n > 0 && len(perStream) != tc.streams {
			t.Errorf("%+v: samples cover streams %v; want all %d", tc, perStream, tc.streams)
		}
		if tc.sample > 1 && tc.sample < tc.conns && last < tc.conns/2 {
			t.Errorf("%+v: last sampled connection %d; want them spread to the end", tc, last)
		}
	}
}

// TestParseCPUs checks CPU lists as taskset takes them.
func TestParseCPUs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		fail bool
	}{
		{"1", 1, false}, {"0,2", 2, false}, {"2-3", 2, false}, {"0-1,1", 2, false},
		{"", 0, true}, {"a", 0, true}, {"3-1", 0, true}, {"-1", 0, true}, {"5000", 0, true},
	} {
		_, n, err := parseCPUs(tc.in)
		if (err != nil) != tc.fail || n != tc.n {
			t.Errorf("parseCPUs(%q) = %d, %v; want %d, error %v", tc.in, n, err, tc.n, tc.fail)
		}
	}
}

// TestFanOutBetween checks the server's fan-out figures from two scrapes.
func TestFanOutBetween(t *testing.T) {
	scrape := func(c1, c2, c3, inf uint64, sum, writes, frames float64) serverMetrics {
		t.Helper()
		text := "# TYPE marketgate_fanout_duration_seconds histogram\n" +
			"marketgate_fanout_duration_seconds_bucket{le=\"0.001\"} " + itoa(c1) + "\n" +
			"marketgate_fanout_duration_seconds_bucket{le=\"0.002\"} " + itoa(c2) + "\n" +
			"marketgate_fanout_duration_seconds_bucket{le=\"0.005\"} " + itoa(c3) + "\n" +
			"marketgate_fanout_duration_seconds_bucket{le=\"+Inf\"} " + itoa(inf) + "\n" +
			"marketgate_fanout_duration_seconds_sum " + ftoa(sum) + "\n" +
			"marketgate_fanout_duration_seconds_count " + itoa(inf) + "\n" +
			"# TYPE marketgate_client_writes_total counter\nmarketgate_client_writes_total " + ftoa(writes) + "\n" +
			"# TYPE marketgate_frames_out_total counter\nmarketgate_frames_out_total " + ftoa(frames) + "\n"
		m, err := parseServerMetrics(strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	a := scrape(5, 5, 5, 5, 0.001, 100, 100)
	// 100 more events: 50 under 1 ms, 40 in (1, 2], 10 in (2, 5].
	b := scrape(55, 95, 105, 105, 0.001+0.15, 1100, 4100)
	f := fanOutBetween(a, b)
	near := func(got, want float64) bool { return math.Abs(got-want) < 1e-9 }
	if f.Events != 100 || !near(f.MeanMS, 1.5) || !near(f.P50MS, 1) || !near(f.P90MS, 2) || !near(f.P99MS, 4.7) || !near(f.FramesPerWrite, 4) {
		t.Errorf("fanOutBetween = %+v; want 100 events, mean 1.5, p50 1, p90 2, p99 4.7 ms, 4 frames/write", f)
	}
	if _, err := parseServerMetrics(strings.NewReader("# TYPE go_goroutines gauge\ngo_goroutines 5\n")); err == nil {
		t.Error("parseServerMetrics without the histogram = nil error; want one")
	}
}

func itoa(v uint64) string  { return strconv.FormatUint(v, 10) }
func ftoa(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
